//! ATA/IDE channel with PIO hard disks: the PC/AT's disk ports (0x1F0, 0x170).
//!
//! Register-level model of one ATA channel (a cable with a master and a
//! slave) following T13 ATA/ATAPI-6 (d1410r3b; the behaviour used here is
//! the same in ATA-1 to ATA-5): the register descriptions (Data, Error and
//! Features, Sector Count, LBA Low/Mid/High, Device, Status and Command,
//! Alternate Status and Device Control), the command descriptions of the
//! commands listed at [`AtaChannel`], the IDENTIFY DEVICE data table, and the
//! protocols: PIO data-in, PIO data-out, non-data, EXECUTE DEVICE
//! DIAGNOSTIC, software reset, and "device 0 only" configurations. Region 0
//! is the command block (8 ports, 0x1F0-0x1F7); region 1 the control block
//! (1 port, 0x3F6). INTRQ drives the ISA line given to [`AtaChannel::new`].
//!
//! Registers. Each device keeps its own copy of the command block registers
//! and both latch every host write, as on the cable; the Device register's
//! DEV bit chooses which device answers reads and runs commands. A command
//! leaves the address registers pointing at the sector after the last one
//! moved and Sector Count at the sectors still to move (0 at the end), as
//! ATA-1 to ATA-3 specified (ATA-6 leaves them undefined) and QEMU and
//! Bochs do; on an error they point at the sector that failed: the first
//! sector of a block that could not be read, or the sector a write the
//! host could not finish stopped at (ATA-1, WRITE SECTORS), the sectors
//! before it written whole. Non-data registers act on one byte whatever
//! the access size. The drives themselves (commands, IDENTIFY data, data
//! phases) are in `ata/drive.rs`.
//!
//! Absent devices. With no drive on the channel every port reads all ones,
//! as an empty ISA bus does (Linux and SeaBIOS take a status of 0xFF as "no
//! device"). With one drive, the absent one is answered for by the present
//! one as ATA's "device 0 only" configuration specifies: Status and
//! Alternate Status read 00h when it is selected, the other registers read
//! the present drive's values, and commands to it are ignored except
//! EXECUTE DEVICE DIAGNOSTIC, which device 0 runs for the channel. QEMU and
//! Bochs also read status 0 and ignore commands for an absent slave; xv6's
//! probe (select drive 1, poll 0x1F7 for non-zero) and Linux's (signature
//! plus status 0) then find no slave.
//!
//! Interrupts. Each drive has an interrupt-pending flag, set at the points
//! the protocols assert INTRQ (each DRQ block of a read, each block written,
//! the end of a non-data command or of an error) and cleared by reading
//! Status, writing Command, or a reset; reading Alternate Status leaves it.
//! The IRQ line is high while the *selected* drive has one pending and
//! Device Control's nIEN is 0 (ATA-6: a device not selected, or with nIEN
//! set, releases INTRQ), so changing selection or nIEN moves the line.
//!
//! Timing. Commands complete during the access that starts them and blocks
//! move during the access that ends the previous one, in zero virtual time,
//! as QEMU does for PIO: disk images are local files and a learner's driver
//! is no more correct for waiting on a simulated seek. So BSY is never seen
//! except while the host holds SRST; drivers that poll BSY/DRQ find the
//! drive ready at once, and interrupt-driven ones get their interrupt right
//! after the command write. Nothing here reads a clock, so runs are
//! deterministic.
//!
//! Data port. 16-bit accesses move two bytes of the sector buffer (little
//! endian), 32-bit (INSD/OUTSD) four, 8-bit one: every access moves its own
//! size. An access that runs past the end of the DRQ block moves what is
//! left and reads zeros for the rest. Outside a data phase the port reads 0
//! and ignores writes (as QEMU and Bochs). The bulk hooks move whole items
//! up to the end of the current DRQ block and no further, so a REP INSW of a
//! whole transfer goes block by block, each block exactly as single
//! accesses would have moved it.
//!
//! Addressing: CHS through the current translation (INITIALIZE DEVICE
//! PARAMETERS) or 28-bit LBA (Device bit 6). No 48-bit commands, no DMA, no
//! PACKET: they end with ABRT, as every unknown command does.

use std::collections::BTreeMap;

use crate::bus::{all_ones, Device, IoCtx};
use crate::disk::{DiskImage, DiskIoError};

mod drive;

use drive::Drive;

// Command block register offsets (region 0).
const REG_DATA: u16 = 0;
const REG_ERROR_FEATURES: u16 = 1;
const REG_SECTOR_COUNT: u16 = 2;
const REG_LBA_LOW: u16 = 3; // sector number in CHS
const REG_LBA_MID: u16 = 4; // cylinder low
const REG_LBA_HIGH: u16 = 5; // cylinder high
const REG_DEVICE: u16 = 6;
const REG_STATUS_COMMAND: u16 = 7;
const REGION_COMMAND: usize = 0;
const REGION_CONTROL: usize = 1;

// Status register.
const BSY: u8 = 0x80;
const DRDY: u8 = 0x40;
const DSC: u8 = 0x10; // device seek complete (ATA-1..3; set when ready, as drives do)
const DRQ: u8 = 0x08;
const ERR: u8 = 0x01;
const READY: u8 = DRDY | DSC;

// Device register: the drive select bit.
const DEV_DRV: u8 = 0x10;

// Device Control register.
const CTL_NIEN: u8 = 0x02;
const CTL_SRST: u8 = 0x04;

/// Counters for `--stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct AtaStats {
    /// Commands run, by kind ("read_sectors", "identify", "unsupported", ...).
    pub commands: BTreeMap<&'static str, u64>,
    pub sectors_read: u64,
    pub sectors_written: u64,
    pub sectors_verified: u64,
    /// Times a drive asserted INTRQ (protocol interrupts, masked or not).
    pub interrupts: u64,
    /// Low-to-high transitions of the IRQ line.
    pub irq_edges: u64,
    /// Bulk string transfers (REP INS/OUTS through the data port) served.
    pub bulk_reads: u64,
    pub bulk_writes: u64,
    /// Commands that ended with ERR.
    pub errors: u64,
    /// Software resets (SRST released).
    pub soft_resets: u64,
}

/// One ATA channel: up to two PIO hard disks, master (slot 0) and slave
/// (slot 1). Commands: IDENTIFY DEVICE, READ/WRITE SECTORS, READ/WRITE
/// MULTIPLE, SET MULTIPLE MODE, READ VERIFY SECTORS, INITIALIZE DEVICE
/// PARAMETERS, RECALIBRATE, SEEK, EXECUTE DEVICE DIAGNOSTIC, FLUSH CACHE,
/// SET FEATURES (write cache, look-ahead, PIO transfer modes, revert to
/// defaults), IDLE, STANDBY, SLEEP, CHECK POWER MODE and NOP.
pub struct AtaChannel {
    irq: u8,
    drives: [Option<Drive>; 2],
    /// The Device register's DEV bit.
    selected: usize,
    /// Device Control as last written.
    control: u8,
    /// SRST is held: every drive is busy.
    resetting: bool,
    irq_level: bool,
    stats: AtaStats,
}

impl AtaChannel {
    /// A channel with no drives, driving ISA line `irq` (14 for the
    /// primary channel, 15 for the secondary).
    /// The default CHS translation of a disk of `sectors` (cylinders,
    /// heads, sectors per track), as IDENTIFY reports it and a BIOS's
    /// CMOS disk type entry records it.
    pub fn default_geometry(sectors: u64) -> (u16, u8, u8) {
        let c = drive::Chs::default_for(sectors);
        (c.cylinders as u16, c.heads as u8, c.sectors as u8)
    }

    pub fn new(irq: u8) -> AtaChannel {
        AtaChannel {
            irq,
            drives: [None, None],
            selected: 0,
            control: 0,
            resetting: false,
            irq_level: false,
            stats: AtaStats::default(),
        }
    }

    /// Connects `disk` as the master (`slot` 0) or slave (1), in its
    /// power-on state; returns the disk it replaces.
    ///
    /// # Panics
    /// If `slot` is not 0 or 1.
    pub fn attach(&mut self, slot: usize, disk: DiskImage) -> Option<DiskImage> {
        assert!(
            slot < 2,
            "an ATA channel has slots 0 (master) and 1 (slave)"
        );
        let serial = format!("RINGLAB-{}-{slot}", self.irq);
        self.drives[slot]
            .replace(Drive::new(disk, serial))
            .map(|d| d.disk)
    }

    /// The disk in `slot`, if any.
    pub fn disk(&self, slot: usize) -> Option<&DiskImage> {
        self.drives.get(slot)?.as_ref().map(|d| &d.disk)
    }

    /// Disconnects and returns the disk in `slot`.
    pub fn take_disk(&mut self, slot: usize) -> Option<DiskImage> {
        self.drives.get_mut(slot)?.take().map(|d| d.disk)
    }

    /// Flushes every disk to stable storage (machine shutdown); the first
    /// error, after trying all.
    pub fn flush(&mut self) -> Result<(), DiskIoError> {
        let mut result = Ok(());
        for d in self.drives.iter_mut().flatten() {
            let r = d.disk.flush();
            if result.is_ok() {
                result = r;
            }
        }
        result
    }

    /// The first host failure of each disk not yet taken (one line each,
    /// see `DiskImage::take_failure`).
    pub fn take_disk_failures(&mut self) -> Vec<String> {
        self.drives
            .iter_mut()
            .flatten()
            .filter_map(|d| d.disk.take_failure())
            .collect()
    }

    pub fn irq(&self) -> u8 {
        self.irq
    }

    pub fn stats(&self) -> &AtaStats {
        &self.stats
    }

    fn any_drive(&self) -> bool {
        self.drives.iter().any(Option::is_some)
    }

    /// The drive whose registers answer reads: the selected one, or the
    /// present one when the selected one is absent.
    fn responder(&self) -> Option<&Drive> {
        let [a, b] = &self.drives;
        let (sel, other) = if self.selected == 0 { (a, b) } else { (b, a) };
        sel.as_ref().or(other.as_ref())
    }

    fn update_irq(&mut self, cx: &mut IoCtx) {
        let level = self.control & CTL_NIEN == 0
            && !self.resetting
            && self.drives[self.selected].as_ref().is_some_and(|d| d.intrq);
        if level != self.irq_level {
            self.irq_level = level;
            if level {
                self.stats.irq_edges += 1;
            }
            cx.set_irq(self.irq, level);
        }
    }

    fn read_status(&mut self, clear: bool) -> u8 {
        if self.resetting {
            return BSY;
        }
        match &mut self.drives[self.selected] {
            Some(d) => {
                if clear {
                    d.intrq = false;
                }
                d.status
            }
            None => 0, // device 0 answers for an absent device 1 with 00h
        }
    }

    fn read_register(&mut self, offset: u16) -> u8 {
        if self.resetting {
            return BSY; // while BSY, every register reads as Status
        }
        let Some(d) = self.responder() else {
            return 0xFF;
        };
        match offset {
            REG_ERROR_FEATURES => d.error,
            REG_SECTOR_COUNT => d.sector_count,
            REG_LBA_LOW => d.lba_low,
            REG_LBA_MID => d.lba_mid,
            REG_LBA_HIGH => d.lba_high,
            _ => d.device, // REG_DEVICE
        }
    }

    fn write_register(&mut self, offset: u16, v: u8, cx: &mut IoCtx) {
        if self.resetting {
            return; // BSY: the drives take no register writes
        }
        if offset == REG_DEVICE {
            self.selected = (v & DEV_DRV != 0) as usize;
        }
        for d in self.drives.iter_mut().flatten() {
            match offset {
                REG_ERROR_FEATURES => d.features = v,
                REG_SECTOR_COUNT => d.sector_count = v,
                REG_LBA_LOW => d.lba_low = v,
                REG_LBA_MID => d.lba_mid = v,
                REG_LBA_HIGH => d.lba_high = v,
                _ => d.device = v, // REG_DEVICE
            }
        }
        self.update_irq(cx);
    }

    fn command(&mut self, code: u8, cx: &mut IoCtx) {
        if self.resetting {
            return;
        }
        if code == 0x90 {
            // EXECUTE DEVICE DIAGNOSTIC runs on both devices whichever is
            // selected; device 0 reports for the pair and interrupts.
            *self.stats.commands.entry("execute_diagnostic").or_insert(0) += 1;
            for d in self.drives.iter_mut().flatten() {
                d.reset();
            }
            self.selected = 0;
            if let Some(d) = self.drives.iter_mut().flatten().next() {
                d.interrupt(&mut self.stats);
            }
        } else if let Some(d) = &mut self.drives[self.selected] {
            d.execute(code, &mut self.stats);
        }
        // Commands to an absent device are ignored.
        self.update_irq(cx);
    }

    fn write_control(&mut self, v: u8, cx: &mut IoCtx) {
        let was = self.control;
        self.control = v;
        if v & CTL_SRST != 0 && was & CTL_SRST == 0 {
            // SRST asserted: every drive stops what it does and is busy.
            self.resetting = true;
            for d in self.drives.iter_mut().flatten() {
                d.abort();
            }
        } else if v & CTL_SRST == 0 && self.resetting {
            // Released: both drives post the signature; no interrupt.
            self.resetting = false;
            self.selected = 0;
            self.stats.soft_resets += 1;
            for d in self.drives.iter_mut().flatten() {
                d.reset();
            }
        }
        self.update_irq(cx);
    }

    /// The selected drive and the statistics, unless absent or in reset.
    fn data_drive(&mut self) -> Option<(&mut Drive, &mut AtaStats)> {
        if self.resetting {
            return None;
        }
        let d = self.drives[self.selected].as_mut()?;
        Some((d, &mut self.stats))
    }
}

impl Device for AtaChannel {
    fn name(&self) -> &'static str {
        "ATA channel"
    }

    fn pio_read(&mut self, region: usize, offset: u16, size: u8, cx: &mut IoCtx) -> u32 {
        if !self.any_drive() {
            return all_ones(size);
        }
        match (region, offset) {
            (REGION_COMMAND, REG_DATA) => {
                let mut bytes = [0u8; 4];
                let n = (size as usize).clamp(1, 4);
                if let Some((d, stats)) = self.data_drive() {
                    d.read_data(&mut bytes[..n], stats);
                }
                self.update_irq(cx);
                u32::from_le_bytes(bytes)
            }
            (REGION_COMMAND, REG_STATUS_COMMAND) => {
                let v = self.read_status(true);
                self.update_irq(cx);
                v as u32
            }
            (REGION_COMMAND, 1..=6) => self.read_register(offset) as u32,
            (REGION_CONTROL, 0) => self.read_status(false) as u32,
            _ => all_ones(size),
        }
    }

    fn pio_write(&mut self, region: usize, offset: u16, size: u8, value: u32, cx: &mut IoCtx) {
        if !self.any_drive() {
            return;
        }
        match (region, offset) {
            (REGION_COMMAND, REG_DATA) => {
                let n = (size as usize).clamp(1, 4);
                let bytes = value.to_le_bytes();
                if let Some((d, stats)) = self.data_drive() {
                    d.write_data(&bytes[..n], stats);
                }
                self.update_irq(cx);
            }
            (REGION_COMMAND, REG_STATUS_COMMAND) => self.command(value as u8, cx),
            (REGION_COMMAND, 1..=6) => self.write_register(offset, value as u8, cx),
            (REGION_CONTROL, 0) => self.write_control(value as u8, cx),
            _ => {}
        }
    }

    fn pio_read_bulk(
        &mut self,
        region: usize,
        offset: u16,
        size: u8,
        out: &mut [u8],
        cx: &mut IoCtx,
    ) -> usize {
        if (region, offset) != (REGION_COMMAND, REG_DATA) || !matches!(size, 1 | 2 | 4) {
            return 0;
        }
        let size = size as usize;
        let Some((d, stats)) = self.data_drive() else {
            return 0;
        };
        let n = out.len().min(d.data_left(false)) / size * size;
        if n == 0 {
            return 0;
        }
        d.read_data(&mut out[..n], stats);
        stats.bulk_reads += 1;
        self.update_irq(cx);
        n
    }

    fn pio_write_bulk(
        &mut self,
        region: usize,
        offset: u16,
        size: u8,
        data: &[u8],
        cx: &mut IoCtx,
    ) -> usize {
        if (region, offset) != (REGION_COMMAND, REG_DATA) || !matches!(size, 1 | 2 | 4) {
            return 0;
        }
        let size = size as usize;
        let Some((d, stats)) = self.data_drive() else {
            return 0;
        };
        let n = data.len().min(d.data_left(true)) / size * size;
        if n == 0 {
            return 0;
        }
        d.write_data(&data[..n], stats);
        stats.bulk_writes += 1;
        self.update_irq(cx);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::drive::ABRT;
    use super::*;
    use crate::bus::Request;
    use crate::disk::tests::TempImage;
    use crate::disk::SECTOR_SIZE;

    #[test]
    fn writes_to_a_read_only_disk_abort_and_change_nothing() {
        let bytes: Vec<u8> = (0..4 * SECTOR_SIZE).map(|i| i as u8).collect();
        let img = TempImage::new("ata-ro", &bytes);
        let disk = DiskImage::open_refusing_write(&img.0).unwrap();
        assert!(disk.read_only());
        let mut ch = AtaChannel::new(14);
        ch.attach(0, disk);
        let (mut irq, mut req) = (Vec::<(u8, bool)>::new(), Vec::<Request>::new());
        let mut cx = IoCtx::new(0, &mut irq, &mut req);
        for code in [0x30u8, 0xC5] {
            if code == 0xC5 {
                ch.pio_write(0, REG_SECTOR_COUNT, 1, 2, &mut cx);
                ch.pio_write(0, REG_STATUS_COMMAND, 1, 0xC6, &mut cx);
            }
            ch.pio_write(0, REG_DEVICE, 1, 0xE0, &mut cx);
            ch.pio_write(0, REG_SECTOR_COUNT, 1, 1, &mut cx);
            ch.pio_write(0, REG_LBA_LOW, 1, 1, &mut cx);
            ch.pio_write(0, REG_STATUS_COMMAND, 1, code as u32, &mut cx);
            assert_eq!(
                ch.pio_read(0, REG_STATUS_COMMAND, 1, &mut cx),
                (READY | ERR) as u32
            );
            assert_eq!(ch.pio_read(0, REG_ERROR_FEATURES, 1, &mut cx), ABRT as u32);
            // No data phase: the guest's words go nowhere.
            for _ in 0..256 {
                ch.pio_write(0, REG_DATA, 2, 0xFFFF, &mut cx);
            }
        }
        // Reads still work.
        ch.pio_write(0, REG_STATUS_COMMAND, 1, 0x20, &mut cx);
        assert_eq!(ch.pio_read(0, REG_DATA, 2, &mut cx), 0x0100);
        drop(ch);
        assert_eq!(std::fs::read(&img.0).unwrap(), bytes);
    }

    #[test]
    fn a_write_the_host_cannot_finish_ends_with_abrt_at_the_failing_sector() {
        let bytes: Vec<u8> = (0..8 * SECTOR_SIZE).map(|i| (i / 3) as u8).collect();
        let img = TempImage::new("ata-full", &bytes);
        let mut disk = DiskImage::open(&img.0, Default::default()).unwrap();
        // Room for one sector and 300 bytes: the second sector of a
        // four-sector block fails in its middle.
        disk.fill_after(SECTOR_SIZE as u64 + 300);
        let mut ch = AtaChannel::new(14);
        ch.attach(0, disk);
        let (mut irq, mut req) = (Vec::<(u8, bool)>::new(), Vec::<Request>::new());
        let mut cx = IoCtx::new(0, &mut irq, &mut req);
        ch.pio_write(0, REG_DEVICE, 1, 0xE0, &mut cx);
        ch.pio_write(0, REG_SECTOR_COUNT, 1, 4, &mut cx);
        ch.pio_write(0, REG_STATUS_COMMAND, 1, 0xC6, &mut cx); // SET MULTIPLE 4
        ch.pio_write(0, REG_SECTOR_COUNT, 1, 4, &mut cx);
        ch.pio_write(0, REG_LBA_LOW, 1, 2, &mut cx);
        ch.pio_write(0, REG_STATUS_COMMAND, 1, 0xC5, &mut cx); // WRITE MULTIPLE
        for _ in 0..4 * SECTOR_SIZE / 2 {
            ch.pio_write(0, REG_DATA, 2, 0xBEEF, &mut cx);
        }
        assert_eq!(
            ch.pio_read(0, REG_STATUS_COMMAND, 1, &mut cx),
            (READY | ERR) as u32
        );
        assert_eq!(ch.pio_read(0, REG_ERROR_FEATURES, 1, &mut cx), ABRT as u32);
        // The failing sector (3) and the sectors left, this one included.
        assert_eq!(ch.pio_read(0, REG_LBA_LOW, 1, &mut cx), 3);
        assert_eq!(ch.pio_read(0, REG_SECTOR_COUNT, 1, &mut cx), 3);
        assert_eq!(ch.stats().sectors_written, 1);
        // Sector 2 is new, 3 (where the host stopped) and 4-5 are old.
        let mut expect = bytes.clone();
        for w in expect[2 * SECTOR_SIZE..3 * SECTOR_SIZE].chunks_exact_mut(2) {
            w.copy_from_slice(&0xBEEFu16.to_le_bytes());
        }
        assert_eq!(std::fs::read(&img.0).unwrap(), expect);
        let failures = ch.take_disk_failures();
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(
            failures[0].contains("writing sector 3 failed"),
            "{failures:?}"
        );
        assert!(ch.take_disk_failures().is_empty(), "once");
        // The drive still works: reads, and FLUSH CACHE.
        ch.pio_write(0, REG_SECTOR_COUNT, 1, 1, &mut cx);
        ch.pio_write(0, REG_LBA_LOW, 1, 2, &mut cx);
        ch.pio_write(0, REG_STATUS_COMMAND, 1, 0x20, &mut cx);
        assert_eq!(ch.pio_read(0, REG_DATA, 2, &mut cx), 0xBEEF);
        ch.pio_write(0, REG_STATUS_COMMAND, 1, 0xE7, &mut cx);
        assert_eq!(ch.pio_read(0, REG_STATUS_COMMAND, 1, &mut cx), READY as u32);
    }
}
