//! The ATA channel through the `Device` interface, as a driver drives it:
//! the protocol sequences of ATA/ATAPI-6 (PIO data-in, data-out, non-data,
//! software reset), IDENTIFY data, CHS and LBA addressing, interrupts,
//! absent-device probes, bulk string I/O, and the disk files behind it.

use machine::bus::{Device, IoCtx, Request};
use machine::devices::ata::AtaChannel;
use machine::disk::{DiskError, DiskImage, DiskOpenOptions, SECTOR_SIZE};

const IRQ: u8 = 14;

// Status and error bits.
const BSY: u8 = 0x80;
const DRDY: u8 = 0x40;
const DSC: u8 = 0x10;
const DRQ: u8 = 0x08;
const ERR: u8 = 0x01;
const ABRT: u8 = 0x04;
const IDNF: u8 = 0x10;
const READY: u8 = DRDY | DSC;

/// A channel at the primary ports, with the IRQ line it drove.
struct Rig {
    ch: AtaChannel,
    irq: Vec<(u8, bool)>,
    req: Vec<Request>,
    /// The line's level before the changes in `irq`.
    level: bool,
}

fn region(port: u16) -> (usize, u16) {
    match port {
        0x1F0..=0x1F7 => (0, port - 0x1F0),
        0x3F6 => (1, 0),
        _ => panic!("not an ATA port: {port:#x}"),
    }
}

impl Rig {
    fn new(master: Option<DiskImage>, slave: Option<DiskImage>) -> Rig {
        let mut ch = AtaChannel::new(IRQ);
        if let Some(d) = master {
            ch.attach(0, d);
        }
        if let Some(d) = slave {
            ch.attach(1, d);
        }
        Rig {
            ch,
            irq: vec![],
            req: vec![],
            level: false,
        }
    }

    fn with_disk(sectors: usize) -> Rig {
        Rig::new(Some(DiskImage::from_bytes(tagged(sectors)).unwrap()), None)
    }

    fn read(&mut self, port: u16, size: u8) -> u32 {
        let (r, off) = region(port);
        let mut cx = IoCtx::new(0, &mut self.irq, &mut self.req);
        self.ch.pio_read(r, off, size, &mut cx)
    }

    fn write(&mut self, port: u16, size: u8, v: u32) {
        let (r, off) = region(port);
        let mut cx = IoCtx::new(0, &mut self.irq, &mut self.req);
        self.ch.pio_write(r, off, size, v, &mut cx);
    }

    fn inb(&mut self, port: u16) -> u8 {
        self.read(port, 1) as u8
    }

    fn outb(&mut self, port: u16, v: u8) {
        self.write(port, 1, v as u32)
    }

    /// Reads `bytes` bytes from the data port with `size`-byte accesses.
    fn ins(&mut self, size: u8, bytes: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes);
        for _ in 0..bytes / size as usize {
            let v = self.read(0x1F0, size);
            out.extend_from_slice(&v.to_le_bytes()[..size as usize]);
        }
        out
    }

    fn outs(&mut self, size: u8, data: &[u8]) {
        for c in data.chunks(size as usize) {
            let mut b = [0u8; 4];
            b[..c.len()].copy_from_slice(c);
            self.write(0x1F0, size, u32::from_le_bytes(b));
        }
    }

    /// Programs an LBA28 address and count on drive `dev` and issues `cmd`.
    fn lba_command(&mut self, dev: u8, cmd: u8, lba: u32, count: u8) {
        self.outb(0x1F6, 0xE0 | dev << 4 | (lba >> 24) as u8 & 0x0F);
        self.outb(0x1F2, count);
        self.outb(0x1F3, lba as u8);
        self.outb(0x1F4, (lba >> 8) as u8);
        self.outb(0x1F5, (lba >> 16) as u8);
        self.outb(0x1F7, cmd);
    }

    /// Programs a CHS address and count on drive 0 and issues `cmd`.
    fn chs_command(&mut self, cmd: u8, c: u16, h: u8, s: u8, count: u8) {
        self.outb(0x1F6, 0xA0 | h & 0x0F);
        self.outb(0x1F2, count);
        self.outb(0x1F3, s);
        self.outb(0x1F4, c as u8);
        self.outb(0x1F5, (c >> 8) as u8);
        self.outb(0x1F7, cmd);
    }

    fn simple_command(&mut self, cmd: u8) {
        self.outb(0x1F7, cmd);
    }

    /// Rising edges of the IRQ line since the last call.
    fn edges(&mut self) -> usize {
        assert!(self.irq.iter().all(|&(l, _)| l == IRQ));
        let mut level = self.level;
        let mut n = 0;
        for &(_, v) in &self.irq {
            n += (v && !level) as usize;
            level = v;
        }
        self.level = level;
        self.irq.clear();
        n
    }

    /// The IRQ line's level now.
    fn line(&self) -> bool {
        self.irq.last().map_or(self.level, |&(_, v)| v)
    }

    /// Reads the registers a driver checks after a command:
    /// error, sector count, LBA low/mid/high, device.
    fn task_file(&mut self) -> [u8; 6] {
        [0x1F1, 0x1F2, 0x1F3, 0x1F4, 0x1F5, 0x1F6].map(|p| self.inb(p))
    }
}

/// A disk whose sector n starts with n (u64, little endian) and is filled
/// with a pattern of n and the offset.
fn tagged(sectors: usize) -> Vec<u8> {
    let mut v = vec![0u8; sectors * SECTOR_SIZE];
    for (n, s) in v.chunks_mut(SECTOR_SIZE).enumerate() {
        for (i, b) in s.iter_mut().enumerate() {
            *b = (n * 31 + i * 7) as u8;
        }
        s[..8].copy_from_slice(&(n as u64).to_le_bytes());
    }
    v
}

fn sector_of(data: &[u8]) -> u64 {
    u64::from_le_bytes(data[..8].try_into().unwrap())
}

/// Decodes an ATA string (first character in the high byte of each word).
fn ata_string(words: &[u16]) -> String {
    let bytes: Vec<u8> = words
        .iter()
        .flat_map(|w| [(w >> 8) as u8, *w as u8])
        .collect();
    String::from_utf8(bytes).unwrap().trim_end().to_string()
}

fn identify(rig: &mut Rig) -> Vec<u16> {
    rig.simple_command(0xEC);
    assert_eq!(rig.inb(0x1F7), READY | DRQ);
    let data = rig.ins(2, 512);
    assert_eq!(rig.inb(0x1F7), READY, "DRQ ends after 256 words");
    data.chunks(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect()
}

#[test]
fn identify_device_contents() {
    let mut rig = Rig::with_disk(20_000);
    let w = identify(&mut rig);
    assert_eq!(w.len(), 256);
    assert_eq!(w[0] & 0x8000, 0, "an ATA (not ATAPI) device");
    // Model string, byte-swapped per word: "RI" is 'R' << 8 | 'I'.
    assert_eq!(w[27], (b'R' as u16) << 8 | b'I' as u16);
    assert_eq!(ata_string(&w[27..47]), "RINGLAB HARDDISK");
    assert_eq!(ata_string(&w[10..20]), "RINGLAB-14-0");
    assert_eq!(ata_string(&w[23..27]), "1.0");
    // Default geometry: 16 heads, 63 sectors, 20000 / 1008 cylinders.
    assert_eq!((w[1], w[3], w[6]), (19, 16, 63));
    assert_eq!((w[54], w[55], w[56]), (19, 16, 63));
    assert_eq!(w[57] as u32 | (w[58] as u32) << 16, 19 * 16 * 63);
    assert_eq!(w[60] as u32 | (w[61] as u32) << 16, 20_000);
    assert_eq!(w[47], 0x8010, "READ/WRITE MULTIPLE up to 16 sectors");
    assert_ne!(w[49] & 1 << 9, 0, "LBA supported");
    assert_eq!(w[53] & 1, 1, "words 54-58 valid");
    assert_eq!(w[59], 0, "multiple mode off at power-on");
    assert_eq!(w[80], 0x7E, "ATA-1 to ATA-6");
    assert_ne!(w[83] & 1 << 12, 0, "FLUSH CACHE");
    assert_eq!(w[83] >> 14, 1);
    // Integrity word: A5h and a checksum making the 512 bytes sum to 0.
    assert_eq!(w[255] & 0xFF, 0xA5);
    let sum = w.iter().fold(0u8, |s, &x| {
        s.wrapping_add(x as u8).wrapping_add((x >> 8) as u8)
    });
    assert_eq!(sum, 0);
    assert_eq!(rig.edges(), 1, "one interrupt for the one DRQ block");
}

#[test]
fn geometry_of_small_disks_and_data_port_widths() {
    for (sectors, chs) in [
        (1, (1, 1, 1)),
        (100, (1, 1, 63)),
        (1000, (1, 15, 63)),
        (2048, (2, 16, 63)),
    ] {
        let mut rig = Rig::with_disk(sectors);
        let w = identify(&mut rig);
        assert_eq!((w[1], w[3], w[6]), chs, "{sectors} sectors");
    }
    // The same IDENTIFY block through 8-, 16- and 32-bit accesses.
    let mut rig = Rig::with_disk(64);
    let mut blocks = vec![];
    for size in [1u8, 2, 4] {
        rig.simple_command(0xEC);
        blocks.push(rig.ins(size, 512));
        assert_eq!(rig.inb(0x1F7), READY, "{size}-byte accesses end the block");
    }
    assert_eq!(blocks[0], blocks[1]);
    assert_eq!(blocks[1], blocks[2]);
    // Outside a data phase the data port reads 0.
    assert_eq!(rig.read(0x1F0, 2), 0);
}

#[test]
fn chs_and_lba_address_the_same_sector() {
    let mut rig = Rig::with_disk(4000);
    // C/H/S 1/2/5 with 16 heads, 63 sectors per track is LBA (1*16+2)*63+4.
    let lba = (16 + 2) * 63 + 4;
    rig.chs_command(0x20, 1, 2, 5, 1);
    let via_chs = rig.ins(2, 512);
    rig.lba_command(0, 0x20, lba, 1);
    let via_lba = rig.ins(2, 512);
    assert_eq!(sector_of(&via_chs), lba as u64);
    assert_eq!(via_chs, via_lba);

    // INITIALIZE DEVICE PARAMETERS: 4 heads (head bits = 3), 17 sectors.
    rig.outb(0x1F6, 0xA3);
    rig.outb(0x1F2, 17);
    rig.simple_command(0x91);
    assert_eq!(rig.inb(0x1F7), READY);
    rig.chs_command(0x20, 1, 2, 5, 1);
    assert_eq!(sector_of(&rig.ins(2, 512)), (4 + 2) * 17 + 4);
    let w = identify(&mut rig);
    assert_eq!((w[54], w[55], w[56]), (4000 / 68, 4, 17));
    assert_eq!(
        (w[1], w[3], w[6]),
        (3, 16, 63),
        "default geometry unchanged"
    );
    // After a CHS read the registers hold the next sector in CHS form:
    // 1/2/5 + 1 = 1/2/6.
    rig.chs_command(0x20, 1, 2, 5, 1);
    rig.ins(2, 512);
    assert_eq!(rig.task_file()[1..], [0, 6, 1, 0, 0xA2]);
    // CHS outside the translation, and sector 0, are IDNF.
    for (c, h, s) in [(0, 4, 1), (0, 0, 18), (0, 0, 0), (58, 0, 1)] {
        rig.chs_command(0x20, c, h, s, 1);
        assert_eq!(rig.inb(0x1F7), READY | ERR, "{c}/{h}/{s}");
        assert_eq!(rig.inb(0x1F1), IDNF);
    }
    // Zero sectors per track is refused.
    rig.outb(0x1F2, 0);
    rig.simple_command(0x91);
    assert_eq!((rig.inb(0x1F7), rig.inb(0x1F1)), (READY | ERR, ABRT));
}

#[test]
fn read_sectors_interrupts_once_per_sector() {
    let mut rig = Rig::with_disk(100);
    rig.lba_command(0, 0x20, 10, 5);
    for n in 0..5u64 {
        assert_eq!(rig.edges(), 1, "interrupt for sector {n}");
        assert!(rig.line());
        // Alternate status does not acknowledge; status does.
        assert_eq!(rig.inb(0x3F6), READY | DRQ);
        assert!(rig.line());
        assert_eq!(rig.inb(0x1F7), READY | DRQ);
        assert!(!rig.line());
        let data = rig.ins(2, 512);
        assert_eq!(data, tagged(100)[(10 + n as usize) * 512..][..512]);
    }
    assert_eq!(rig.edges(), 0, "no interrupt after the last block");
    assert_eq!(rig.inb(0x1F7), READY);
    // Registers: next sector 15, count 0.
    assert_eq!(rig.task_file(), [0, 0, 15, 0, 0, 0xE0]);
    let st = rig.ch.stats();
    assert_eq!(st.sectors_read, 5);
    assert_eq!(st.commands["read_sectors"], 1);
    assert_eq!((st.interrupts, st.irq_edges), (5, 5));
}

#[test]
fn sector_count_zero_means_256() {
    let mut rig = Rig::with_disk(300);
    rig.lba_command(0, 0x20, 0, 0);
    let mut got = vec![];
    for _ in 0..256 {
        assert_eq!(rig.inb(0x1F7), READY | DRQ);
        got.extend(rig.ins(4, 512));
    }
    assert_eq!(rig.inb(0x1F7), READY);
    assert_eq!(got, tagged(300)[..256 * 512]);
    assert_eq!(rig.edges(), 256);
    assert_eq!(rig.task_file()[1..5], [0, 0, 1, 0], "next LBA 256");
}

#[test]
fn write_sectors_then_read_back() {
    let mut rig = Rig::with_disk(50);
    let data: Vec<u8> = (0..3 * 512).map(|i| (i * 13 + 5) as u8).collect();
    rig.lba_command(0, 0x30, 7, 3);
    // PIO data-out: DRQ for the first block without an interrupt.
    assert_eq!(rig.inb(0x3F6), READY | DRQ);
    assert_eq!(rig.edges(), 0);
    for (i, s) in data.chunks(512).enumerate() {
        rig.outs(2, s);
        assert_eq!(rig.edges(), 1, "interrupt after block {i}");
        let st = rig.inb(0x1F7);
        assert_eq!(st, if i < 2 { READY | DRQ } else { READY });
    }
    assert_eq!(rig.task_file(), [0, 0, 10, 0, 0, 0xE0]);
    let mut on_disk = vec![0; 3 * 512];
    rig.ch
        .disk(0)
        .unwrap()
        .read_sectors(7, &mut on_disk)
        .unwrap();
    assert_eq!(on_disk, data);
    rig.lba_command(0, 0x20, 7, 3);
    let mut back = vec![];
    for _ in 0..3 {
        back.extend(rig.ins(2, 512));
    }
    assert_eq!(back, data);
    assert_eq!(rig.ch.stats().sectors_written, 3);
    // Writes to the data port outside a data phase change nothing.
    rig.outs(2, &[0xFF; 512]);
    rig.ch
        .disk(0)
        .unwrap()
        .read_sectors(7, &mut on_disk)
        .unwrap();
    assert_eq!(on_disk, data);
}

#[test]
fn multiple_mode_interrupts_once_per_block() {
    let mut rig = Rig::with_disk(100);
    // Before SET MULTIPLE MODE, READ/WRITE MULTIPLE abort.
    rig.lba_command(0, 0xC4, 0, 4);
    assert_eq!((rig.inb(0x1F7), rig.inb(0x1F1)), (READY | ERR, ABRT));
    rig.outb(0x1F2, 4);
    rig.simple_command(0xC6);
    assert_eq!(rig.inb(0x1F7), READY);
    assert_eq!(identify(&mut rig)[59], 0x0104);
    rig.edges();

    // 10 sectors in blocks of 4, 4, 2.
    rig.lba_command(0, 0xC4, 20, 10);
    let mut got = vec![];
    for block in [4, 4, 2] {
        assert_eq!(rig.edges(), 1);
        assert_eq!(rig.inb(0x1F7), READY | DRQ);
        got.extend(rig.ins(2, block * 512));
    }
    assert_eq!(rig.inb(0x1F7), READY);
    assert_eq!(rig.edges(), 0);
    assert_eq!(got, tagged(100)[20 * 512..30 * 512]);

    let data: Vec<u8> = (0..10 * 512).map(|i| (i * 3) as u8).collect();
    rig.lba_command(0, 0xC5, 50, 10);
    assert_eq!(rig.edges(), 0);
    let mut at = 0;
    for (i, block) in [4usize, 4, 2].into_iter().enumerate() {
        assert_eq!(rig.inb(0x1F7), READY | DRQ);
        rig.outs(4, &data[at..at + block * 512]);
        at += block * 512;
        assert_eq!(rig.edges(), 1, "block {i}");
    }
    assert_eq!(rig.inb(0x1F7), READY);
    let mut on_disk = vec![0; 10 * 512];
    rig.ch
        .disk(0)
        .unwrap()
        .read_sectors(50, &mut on_disk)
        .unwrap();
    assert_eq!(on_disk, data);
    let st = rig.ch.stats();
    assert_eq!(
        (st.commands["read_multiple"], st.commands["write_multiple"]),
        (2, 1)
    );
}

#[test]
fn set_multiple_mode_refuses_bad_counts() {
    let mut rig = Rig::with_disk(10);
    for bad in [3u8, 5, 32, 255] {
        rig.outb(0x1F2, 8);
        rig.simple_command(0xC6);
        assert_eq!(rig.inb(0x1F7), READY);
        rig.outb(0x1F2, bad);
        rig.simple_command(0xC6);
        assert_eq!(rig.edges(), 2, "both commands interrupt");
        assert_eq!(rig.inb(0x1F7), READY | ERR, "count {bad}");
        assert_eq!(rig.inb(0x1F1), ABRT);
        // A refused count disables multiple mode.
        rig.lba_command(0, 0xC4, 0, 1);
        assert_eq!(rig.inb(0x1F7), READY | ERR);
        rig.edges();
    }
    // 0 disables without error.
    rig.outb(0x1F2, 0);
    rig.simple_command(0xC6);
    assert_eq!(rig.inb(0x1F7), READY);
}

#[test]
fn nien_keeps_the_line_low() {
    let mut rig = Rig::with_disk(10);
    rig.outb(0x3F6, 0x02);
    rig.lba_command(0, 0x20, 0, 2);
    assert_eq!(rig.inb(0x3F6), READY | DRQ);
    rig.ins(2, 512);
    assert_eq!(rig.inb(0x3F6), READY | DRQ);
    rig.ins(2, 512);
    assert_eq!(rig.inb(0x3F6), READY);
    assert_eq!(rig.edges(), 0);
    assert!(!rig.line());
    // The interrupt is still pending in the drive (only Status clears it):
    // enabling INTRQ again asserts it, as ATA-6 describes nIEN.
    rig.outb(0x3F6, 0x00);
    assert_eq!(rig.edges(), 1);
    rig.inb(0x1F7);
    assert!(!rig.line());
    // Setting nIEN while pending drops the line.
    rig.simple_command(0xE7);
    assert!(rig.line());
    rig.outb(0x3F6, 0x02);
    assert!(!rig.line());
    assert_eq!(rig.ch.stats().interrupts, 3);
}

#[test]
fn soft_reset_posts_the_signature() {
    let two = || DiskImage::from_bytes(tagged(10)).unwrap();
    let mut rig = Rig::new(Some(two()), Some(two()));
    rig.lba_command(0, 0x20, 3, 2); // leave a transfer half done
    rig.ins(2, 100);
    rig.outb(0x1F2, 0x55);
    rig.outb(0x3F6, 0x04);
    // While SRST is held the drives are busy and every register reads as
    // Status.
    assert_eq!(rig.inb(0x1F7), BSY);
    assert_eq!(rig.inb(0x3F6), BSY);
    assert_eq!(rig.inb(0x1F2), BSY);
    rig.outb(0x3F6, 0x00);
    assert_eq!(rig.inb(0x1F7), READY, "transfer aborted");
    assert_eq!(rig.task_file(), [0x01, 1, 1, 0, 0, 0x00]);
    rig.outb(0x1F6, 0xB0);
    assert_eq!(rig.inb(0x1F7), READY);
    assert_eq!(rig.task_file(), [0x01, 1, 1, 0, 0, 0xB0]);
    // The pending interrupt was cleared and SRST raises none.
    assert!(!rig.line());
    rig.edges();
    rig.outb(0x3F6, 0x04);
    rig.outb(0x3F6, 0x00);
    assert_eq!(rig.edges(), 0);
    assert_eq!(rig.ch.stats().soft_resets, 2);
}

#[test]
fn execute_device_diagnostic() {
    let mut rig = Rig::with_disk(10);
    rig.lba_command(1, 0x90, 0x123, 9); // sent with the absent slave selected
    assert_eq!(rig.edges(), 1);
    assert_eq!(rig.inb(0x1F7), READY);
    assert_eq!(rig.task_file(), [0x01, 1, 1, 0, 0, 0x00]);
}

#[test]
fn an_empty_channel_floats() {
    let mut rig = Rig::new(None, None);
    for p in 0x1F1..=0x1F7 {
        assert_eq!(rig.inb(p), 0xFF, "port {p:#x}");
    }
    assert_eq!(rig.inb(0x3F6), 0xFF);
    assert_eq!(rig.read(0x1F0, 2), 0xFFFF);
    assert_eq!(rig.read(0x1F0, 4), 0xFFFF_FFFF);
    rig.outb(0x1F6, 0xE0);
    rig.simple_command(0xEC);
    assert_eq!(rig.inb(0x1F7), 0xFF);
    assert!(rig.irq.is_empty());
}

#[test]
fn an_absent_slave_probes_as_absent() {
    let mut rig = Rig::with_disk(10);
    // xv6's ideinit: select disk 1 and poll status up to 1000 times.
    rig.outb(0x1F6, 0xE0 | 1 << 4);
    assert!(
        (0..1000).all(|_| rig.inb(0x1F7) == 0),
        "xv6 finds no disk 1"
    );
    assert_eq!(rig.inb(0x3F6), 0);
    // The shared registers still answer (device 0 responds for device 1).
    rig.outb(0x1F2, 0x55);
    rig.outb(0x1F3, 0xAA);
    assert_eq!((rig.inb(0x1F2), rig.inb(0x1F3)), (0x55, 0xAA));
    // Commands to it do nothing.
    rig.simple_command(0xEC);
    assert_eq!(rig.inb(0x1F7), 0);
    assert_eq!(rig.read(0x1F0, 2), 0);
    assert!(rig.irq.is_empty());
    rig.outb(0x1F6, 0xE0);
    assert_eq!(rig.inb(0x1F7), READY, "the master did not run it");
    // Linux after SRST: device 1 shows diag code 01h and the ATA signature
    // with status 0, which it classifies as no device.
    rig.outb(0x3F6, 0x04);
    rig.outb(0x3F6, 0x00);
    rig.outb(0x1F6, 0xB0);
    assert_eq!(rig.task_file()[..5], [0x01, 1, 1, 0, 0]);
    assert_eq!(rig.inb(0x1F7), 0);
    // A slave on its own: the master slot reads status 0.
    let mut rig = Rig::new(None, Some(DiskImage::from_bytes(tagged(4)).unwrap()));
    assert_eq!(rig.inb(0x1F7), 0);
    rig.outb(0x1F6, 0xF0);
    assert_eq!(rig.inb(0x1F7), READY);
    assert_eq!(identify(&mut rig)[60], 4);
}

#[test]
fn interrupts_follow_the_selected_drive() {
    let two = || DiskImage::from_bytes(tagged(10)).unwrap();
    let mut rig = Rig::new(Some(two()), Some(two()));
    rig.simple_command(0xE7); // master: FLUSH CACHE
    assert!(rig.line());
    rig.outb(0x1F6, 0xB0); // selecting the slave releases INTRQ
    assert!(!rig.line());
    rig.outb(0x1F6, 0xA0);
    assert!(rig.line());
    rig.inb(0x1F7);
    assert!(!rig.line());
    // Each drive runs its own commands: the slave's IDENTIFY serial.
    rig.outb(0x1F6, 0xB0);
    assert_eq!(ata_string(&identify(&mut rig)[10..20]), "RINGLAB-14-1");
}

#[test]
fn unsupported_commands_abort() {
    let mut rig = Rig::with_disk(10);
    // NOP, PACKET, IDENTIFY PACKET DEVICE, READ SECTORS EXT, READ DMA,
    // SET FEATURES (enable APM), and unassigned codes.
    for (cmd, features) in [
        (0x00, 0),
        (0xA0, 0),
        (0xA1, 0),
        (0x24, 0),
        (0xC8, 0),
        (0xEF, 0x05),
        (0xFF, 0),
        (0x01, 0),
    ] {
        rig.outb(0x1F1, features);
        rig.lba_command(0, cmd, 0, 1);
        assert_eq!(rig.edges(), 1, "command {cmd:#x} interrupts");
        assert_eq!(rig.inb(0x1F7), READY | ERR, "command {cmd:#x}");
        assert_eq!(rig.inb(0x1F1), ABRT);
        assert_eq!(rig.read(0x1F0, 2), 0, "no data phase");
    }
    assert_eq!(rig.ch.stats().errors, 8);
    assert_eq!(rig.ch.stats().commands["unsupported"], 6);
    // A good command clears ERR.
    rig.simple_command(0x10);
    assert_eq!((rig.inb(0x1F7), rig.inb(0x1F1)), (READY, 0));
}

#[test]
fn addresses_past_the_end_are_idnf() {
    let mut rig = Rig::with_disk(10);
    rig.lba_command(0, 0x20, 10, 1);
    assert_eq!((rig.inb(0x1F7), rig.inb(0x1F1)), (READY | ERR, IDNF));
    rig.lba_command(0, 0x30, 1 << 27, 1);
    assert_eq!((rig.inb(0x1F7), rig.inb(0x1F1)), (READY | ERR, IDNF));
    rig.edges();
    // A read running off the end transfers the sectors that exist, then
    // stops with IDNF and the registers at the missing sector.
    rig.lba_command(0, 0x20, 8, 3);
    for n in 8..10 {
        assert_eq!(rig.inb(0x1F7), READY | DRQ);
        assert_eq!(sector_of(&rig.ins(2, 512)), n);
    }
    assert_eq!(rig.inb(0x1F7), READY | ERR);
    assert_eq!(rig.task_file()[..5], [IDNF, 1, 10, 0, 0]);
    assert_eq!(rig.edges(), 3);
    // Likewise a write: two sectors written, the third refused.
    rig.lba_command(0, 0x30, 8, 3);
    rig.outs(2, &[0xEE; 1024]);
    assert_eq!(rig.inb(0x1F7), READY | ERR);
    assert_eq!(rig.inb(0x1F1), IDNF);
    let mut buf = vec![0; 1024];
    rig.ch.disk(0).unwrap().read_sectors(8, &mut buf).unwrap();
    assert!(buf.iter().all(|&b| b == 0xEE));
    // SEEK and READ VERIFY check the range too.
    rig.lba_command(0, 0x70, 10, 0);
    assert_eq!(rig.inb(0x1F1), IDNF);
    rig.lba_command(0, 0x40, 5, 6);
    assert_eq!(rig.inb(0x1F1), IDNF);
    rig.lba_command(0, 0x40, 5, 5);
    assert_eq!(rig.inb(0x1F7), READY);
    assert_eq!(rig.task_file()[1..3], [0, 10]);
    assert_eq!(rig.ch.stats().sectors_verified, 5);
}

#[test]
fn housekeeping_commands() {
    let mut rig = Rig::with_disk(10);
    let check_power = |rig: &mut Rig| {
        rig.simple_command(0xE5);
        assert_eq!(rig.inb(0x1F7), READY);
        rig.inb(0x1F2)
    };
    assert_eq!(check_power(&mut rig), 0xFF, "active");
    rig.simple_command(0xE0);
    assert_eq!(check_power(&mut rig), 0x00, "standby");
    rig.lba_command(0, 0x20, 0, 1);
    rig.ins(2, 512);
    assert_eq!(check_power(&mut rig), 0xFF, "a read spins it up");
    // SET FEATURES: write cache off shows in IDENTIFY word 85 bit 5.
    for (features, count, ok) in [
        (0x82, 0, true),
        (0x03, 0x0C, true),
        (0x03, 0x45, false),
        (0xAA, 0, true),
        (0x66, 0, true),
    ] {
        rig.outb(0x1F1, features);
        rig.outb(0x1F2, count);
        rig.simple_command(0xEF);
        let want = if ok { READY } else { READY | ERR };
        assert_eq!(
            rig.inb(0x1F7),
            want,
            "SET FEATURES {features:#x}/{count:#x}"
        );
    }
    assert_eq!(identify(&mut rig)[85] & 1 << 5, 0);
    // Writes with the write cache off still land.
    rig.lba_command(0, 0x30, 1, 1);
    rig.outs(2, &[7; 512]);
    assert_eq!(rig.inb(0x1F7), READY);
    for cmd in [0x10, 0x1F, 0xE7, 0xE1, 0xE3, 0x97] {
        rig.simple_command(cmd);
        assert_eq!(rig.inb(0x1F7), READY, "command {cmd:#x}");
    }
    rig.lba_command(0, 0x7F, 9, 0);
    assert_eq!(rig.inb(0x1F7), READY, "SEEK");
}

/// Runs `f` against two channels on equal disks: one moved with single
/// accesses, one with the bulk hooks as an engine calls them (falling back
/// to single accesses when the hook takes nothing).
struct Pair {
    single: Rig,
    bulk: Rig,
}

impl Pair {
    fn new(sectors: usize) -> Pair {
        Pair {
            single: Rig::with_disk(sectors),
            bulk: Rig::with_disk(sectors),
        }
    }

    fn both(&mut self, f: impl Fn(&mut Rig)) {
        f(&mut self.single);
        f(&mut self.bulk);
    }

    /// A REP INS of `bytes` bytes with `size`-byte items; returns what each
    /// channel produced and the bulk call sizes.
    fn rep_ins(&mut self, size: u8, bytes: usize) -> (Vec<u8>, Vec<u8>, Vec<usize>) {
        let single = self.single.ins(size, bytes);
        let mut out = vec![0u8; bytes];
        let mut at = 0;
        let mut calls = vec![];
        let rig = &mut self.bulk;
        while at < bytes {
            let mut cx = IoCtx::new(0, &mut rig.irq, &mut rig.req);
            let n = rig.ch.pio_read_bulk(0, 0, size, &mut out[at..], &mut cx);
            if n == 0 {
                let v = rig.read(0x1F0, size);
                out[at..at + size as usize].copy_from_slice(&v.to_le_bytes()[..size as usize]);
                at += size as usize;
            } else {
                assert_eq!(n % size as usize, 0);
                calls.push(n);
                at += n;
            }
        }
        (single, out, calls)
    }

    fn rep_outs(&mut self, size: u8, data: &[u8]) -> Vec<usize> {
        self.single.outs(size, data);
        let rig = &mut self.bulk;
        let mut at = 0;
        let mut calls = vec![];
        while at < data.len() {
            let mut cx = IoCtx::new(0, &mut rig.irq, &mut rig.req);
            let n = rig.ch.pio_write_bulk(0, 0, size, &data[at..], &mut cx);
            if n == 0 {
                let mut b = [0u8; 4];
                b[..size as usize].copy_from_slice(&data[at..at + size as usize]);
                rig.write(0x1F0, size, u32::from_le_bytes(b));
                at += size as usize;
            } else {
                calls.push(n);
                at += n;
            }
        }
        calls
    }

    fn assert_same(&mut self) {
        assert_eq!(self.single.irq, self.bulk.irq, "IRQ line history");
        let a = self.single.task_file();
        let b = self.bulk.task_file();
        assert_eq!(a, b);
        assert_eq!(self.single.inb(0x3F6), self.bulk.inb(0x3F6));
    }
}

#[test]
fn bulk_transfers_equal_single_accesses() {
    for size in [1u8, 2, 4] {
        let mut p = Pair::new(64);
        // READ SECTORS: a REP INS over three sectors (more than the guest
        // should ask for at once) stops at each DRQ block.
        p.both(|r| r.lba_command(0, 0x20, 5, 3));
        let (single, bulk, calls) = p.rep_ins(size, 3 * 512);
        assert_eq!(single, bulk);
        assert_eq!(calls, [512, 512, 512], "{size}-byte items");
        p.assert_same();

        // READ MULTIPLE with 8-sector blocks and a REP that ends mid-block.
        p.both(|r| {
            r.outb(0x1F2, 8);
            r.simple_command(0xC6);
            r.inb(0x1F7);
            r.lba_command(0, 0xC4, 30, 12);
        });
        let (single, bulk, calls) = p.rep_ins(size, 1000);
        assert_eq!((single, calls), (bulk, vec![1000]));
        p.assert_same();
        let (single, bulk, calls) = p.rep_ins(size, 12 * 512 - 1000);
        assert_eq!(single, bulk);
        assert_eq!(calls, [8 * 512 - 1000, 4 * 512]);
        p.assert_same();

        // WRITE MULTIPLE and WRITE SECTORS.
        let data: Vec<u8> = (0..12 * 512)
            .map(|i| (i * 11 + size as usize) as u8)
            .collect();
        p.both(|r| r.lba_command(0, 0xC5, 40, 12));
        assert_eq!(p.rep_outs(size, &data), [8 * 512, 4 * 512]);
        p.assert_same();
        p.both(|r| r.lba_command(0, 0x30, 2, 2));
        assert_eq!(p.rep_outs(size, &data[..1024]), [512, 512]);
        p.assert_same();
        let (mut a, mut b) = (vec![0; 64 * 512], vec![0; 64 * 512]);
        p.single
            .ch
            .disk(0)
            .unwrap()
            .read_sectors(0, &mut a)
            .unwrap();
        p.bulk.ch.disk(0).unwrap().read_sectors(0, &mut b).unwrap();
        assert_eq!(a, b);
        assert_eq!(a[40 * 512..52 * 512], data[..]);

        // IDENTIFY.
        p.both(|r| r.simple_command(0xEC));
        let (single, bulk, _) = p.rep_ins(size, 512);
        assert_eq!(single, bulk);
        p.assert_same();
        assert!(p.bulk.ch.stats().bulk_reads > 0 && p.bulk.ch.stats().bulk_writes > 0);
        assert_eq!(p.single.ch.stats().bulk_reads, 0);
    }
    // No data phase, another port, or an empty channel: no bulk path.
    let mut rig = Rig::with_disk(4);
    let mut out = [0u8; 16];
    let mut cx = IoCtx::new(0, &mut rig.irq, &mut rig.req);
    assert_eq!(rig.ch.pio_read_bulk(0, 0, 2, &mut out, &mut cx), 0);
    assert_eq!(rig.ch.pio_read_bulk(0, 7, 1, &mut out, &mut cx), 0);
    assert_eq!(rig.ch.pio_write_bulk(0, 0, 2, &out, &mut cx), 0);
    let mut empty = AtaChannel::new(IRQ);
    assert_eq!(empty.pio_read_bulk(0, 0, 2, &mut out, &mut cx), 0);
}

/// A file in the temp directory, removed on drop.
struct TempImage(std::path::PathBuf);

impl TempImage {
    fn new(tag: &str, bytes: &[u8]) -> TempImage {
        let path =
            std::env::temp_dir().join(format!("ringlab-ata-{tag}-{}.img", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        TempImage(path)
    }
}

impl Drop for TempImage {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn write_one_sector(rig: &mut Rig, lba: u32, byte: u8) -> u8 {
    rig.lba_command(0, 0x30, lba, 1);
    rig.outs(2, &[byte; 512]);
    rig.inb(0x1F7)
}

#[test]
fn guest_writes_reach_the_file_at_once() {
    let img = TempImage::new("through", &tagged(8));
    let disk = DiskImage::open(&img.0, DiskOpenOptions::default()).unwrap();
    let mut rig = Rig::new(Some(disk), None);
    assert_eq!(write_one_sector(&mut rig, 3, 0x5A), READY);
    // Before flush or drop: the file already holds the sector.
    let file = std::fs::read(&img.0).unwrap();
    assert!(file[3 * 512..4 * 512].iter().all(|&b| b == 0x5A));
    assert_eq!(file[..3 * 512], tagged(8)[..3 * 512]);
    // The image is locked while the channel holds it.
    let e = DiskImage::open(&img.0, DiskOpenOptions::default()).unwrap_err();
    assert!(matches!(e, DiskError::InUse { .. }), "{e}");
    rig.ch.flush().unwrap();
    let disk = rig.ch.take_disk(0).unwrap();
    drop(disk);
    DiskImage::open(&img.0, DiskOpenOptions::default()).unwrap();
}

#[test]
fn snapshot_disks_leave_the_file_alone() {
    let img = TempImage::new("snapshot", &tagged(8));
    let disk = DiskImage::open(&img.0, DiskOpenOptions { snapshot: true }).unwrap();
    let mut rig = Rig::new(Some(disk), None);
    assert_eq!(write_one_sector(&mut rig, 2, 0x77), READY);
    rig.lba_command(0, 0x20, 2, 1);
    assert_eq!(rig.ins(2, 512), [0x77; 512], "the guest reads its write");
    rig.simple_command(0xE7);
    assert_eq!(rig.inb(0x1F7), READY);
    drop(rig);
    assert_eq!(std::fs::read(&img.0).unwrap(), tagged(8));
}

#[test]
fn stats_serialize() {
    let mut rig = Rig::with_disk(4);
    identify(&mut rig);
    let json = serde_json::to_value(rig.ch.stats()).unwrap();
    assert_eq!(json["commands"]["identify"], 1);
    assert_eq!(json["interrupts"], 1);
}

/// Whatever a guest writes to whichever port, in any order and size, the
/// channel answers without panicking (xorshift-driven accesses).
#[test]
fn random_guest_accesses_never_panic() {
    let two = || DiskImage::from_bytes(tagged(40)).unwrap();
    let mut rig = Rig::new(Some(two()), Some(two()));
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let ports = [
        0x1F0, 0x1F0, 0x1F0, 0x1F1, 0x1F2, 0x1F3, 0x1F4, 0x1F5, 0x1F6, 0x1F7, 0x3F6,
    ];
    // Commands worth hitting often, plus every other code.
    let commands = [0x20, 0x30, 0xC4, 0xC5, 0xC6, 0x91, 0xEC, 0x40, 0x90, 0xEF];
    let mut buf = [0u8; 1500];
    for _ in 0..200_000 {
        let r = next();
        let port = ports[(r % ports.len() as u64) as usize];
        let size = [1u8, 2, 4][(r >> 8) as usize % 3];
        let value = (r >> 16) as u32;
        match (r >> 12) % 8 {
            0..=2 => {
                rig.read(port, size);
            }
            3 if port == 0x1F0 => {
                let n = (r >> 40) as usize % buf.len();
                let mut cx = IoCtx::new(0, &mut rig.irq, &mut rig.req);
                let got = if r & 1 == 0 {
                    rig.ch.pio_read_bulk(0, 0, size, &mut buf[..n], &mut cx)
                } else {
                    rig.ch.pio_write_bulk(0, 0, size, &buf[..n], &mut cx)
                };
                assert!(got <= n && got % size as usize == 0);
            }
            4 if port == 0x1F7 && r & 0x100 != 0 => {
                // A plausible command: LBA mode, a small address and count.
                let c = commands[(r >> 24) as usize % commands.len()];
                rig.lba_command(
                    (r >> 32) as u8 & 1,
                    c,
                    (r >> 40) as u32 % 48,
                    (r >> 56) as u8 % 20,
                );
            }
            // SRST now and then, so that transfers get to run.
            _ if port == 0x3F6 => {
                let srst = if r % 64 == 0 { 0x04 } else { 0 };
                rig.write(port, size, (value & !0x04) | srst)
            }
            _ => rig.write(port, size, value),
        }
        if rig.irq.len() > 1000 {
            rig.edges();
        }
    }
    let st = rig.ch.stats();
    assert!(
        st.commands.values().sum::<u64>() > 1000
            && st.sectors_read > 100
            && st.sectors_written > 10
    );
}

/// The board's wiring: command block at 0x1F0 (region 0), control block at
/// 0x3F6 (region 1), through the bus.
#[test]
fn mapped_on_the_bus() {
    let mut bus = machine::Bus::new();
    let mut ch = AtaChannel::new(IRQ);
    ch.attach(0, DiskImage::from_bytes(tagged(8)).unwrap());
    let id = bus.add(ch);
    bus.map_pio(id, 0x1F0, 8).unwrap();
    bus.map_pio(id, 0x3F6, 1).unwrap();
    let (mut irq, mut req) = (vec![], vec![]);
    let mut cx = IoCtx::new(0, &mut irq, &mut req);
    for (port, v) in [
        (0x1F6, 0xE0),
        (0x1F2, 1),
        (0x1F3, 5),
        (0x1F4, 0),
        (0x1F5, 0),
        (0x1F7, 0x20),
    ] {
        bus.pio_write(port, 1, v, &mut cx);
    }
    assert_eq!(bus.pio_read(0x3F6, 1, &mut cx), (READY | DRQ) as u32);
    let first = bus.pio_read(0x1F0, 4, &mut cx);
    assert_eq!(first, 5, "sector 5's tag, low half");
    assert_eq!(bus.port_owner(0x3F6), Some("ATA channel"));
    bus.get_mut(id).flush().unwrap();
    assert_eq!(irq, [(IRQ, true)]);
}
