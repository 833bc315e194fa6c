//! One ATA hard disk drive behind an [`AtaChannel`](super::AtaChannel): its
//! copy of the registers, its commands and its PIO data phases.
//!
//! T13 ATA/ATAPI-6 (d1410r3b), the command descriptions of the commands
//! below and the IDENTIFY DEVICE data table; the CHS translation of
//! INITIALIZE DEVICE PARAMETERS and the default translation of IDENTIFY
//! words 1, 3 and 6; the PIO data-in and data-out protocols, one DRQ block
//! (a sector, or `multiple` sectors for READ/WRITE MULTIPLE) at a time, an
//! interrupt for each block read and each block written. Errors: ABRT for
//! unsupported commands and parameters, for writes to a read-only disk and
//! for writes and flushes the host failed (a full file system: see
//! `disk.rs`), IDNF for addresses outside the disk or the translation, UNC
//! when the image cannot be read.

use super::{AtaStats, DRQ, ERR, READY};
use crate::disk::{DiskImage, SECTOR_SIZE};

// Error register.
pub(super) const ABRT: u8 = 0x04;
const IDNF: u8 = 0x10;
const UNC: u8 = 0x40;
/// Diagnostic code: device 0 passed, device 1 passed or absent.
const DIAG_PASSED: u8 = 0x01;

// Device register.
const DEV_LBA: u8 = 0x40;
const DEV_HEAD: u8 = 0x0F;

/// Largest READ/WRITE MULTIPLE block (IDENTIFY word 47).
const MAX_MULTIPLE: u32 = 16;
/// 28-bit addressing reaches 0x0FFF_FFFF sectors (IDENTIFY words 60-61).
const LBA28_SECTORS: u64 = 0x0FFF_FFFF;
/// The default translation's limits (ATA-6, IDENTIFY words 1, 3, 6).
const MAX_CYLINDERS: u64 = 16383;
const MAX_HEADS: u64 = 16;
const MAX_SPT: u64 = 63;

/// A CHS translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Chs {
    pub(super) cylinders: u64,
    pub(super) heads: u64,
    pub(super) sectors: u64,
}

impl Chs {
    /// The default translation for `total` sectors, as ATA-6 and BIOSes
    /// compute it: 16 heads and 63 sectors per track (fewer for images too
    /// small for one such cylinder), at most 16383 cylinders.
    pub(super) fn default_for(total: u64) -> Chs {
        let t = total.clamp(1, MAX_CYLINDERS * MAX_HEADS * MAX_SPT);
        let sectors = t.min(MAX_SPT);
        let heads = (t / sectors).min(MAX_HEADS);
        Chs {
            cylinders: (t / (heads * sectors)).min(MAX_CYLINDERS),
            heads,
            sectors,
        }
    }
    fn capacity(&self) -> u64 {
        self.cylinders * self.heads * self.sectors
    }
}

/// A command's data phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    /// Data-in of IDENTIFY DEVICE's one block.
    Identify,
    /// Data-in: the buffer holds a block; `lba` is the next sector to load
    /// and `left` the sectors not yet loaded; `block` sectors per DRQ block.
    Read {
        lba: u64,
        left: u32,
        block: u32,
    },
    /// Data-out: the buffer takes the block for sectors from `lba`; `left`
    /// counts the sectors still to write, this block included.
    Write {
        lba: u64,
        left: u32,
        block: u32,
    },
}

/// A drive on the channel: its disk and its copy of the registers.
pub(super) struct Drive {
    pub(super) disk: DiskImage,
    serial: String,
    pub(super) features: u8,
    pub(super) sector_count: u8,
    pub(super) lba_low: u8,
    pub(super) lba_mid: u8,
    pub(super) lba_high: u8,
    pub(super) device: u8,
    pub(super) error: u8,
    pub(super) status: u8,
    /// INTRQ asserted and not yet cleared.
    pub(super) intrq: bool,
    default_chs: Chs,
    chs: Chs,
    /// READ/WRITE MULTIPLE block size; 0 = disabled (power-on).
    multiple: u32,
    write_cache: bool,
    look_ahead: bool,
    standby: bool,
    buf: Box<[u8; MAX_MULTIPLE as usize * SECTOR_SIZE]>,
    pos: usize,
    end: usize,
    phase: Phase,
}

impl Drive {
    /// A drive in its power-on state; `serial` is its IDENTIFY serial number.
    pub(super) fn new(disk: DiskImage, serial: String) -> Drive {
        let chs = Chs::default_for(disk.sectors().min(LBA28_SECTORS));
        let mut d = Drive {
            disk,
            serial,
            features: 0,
            sector_count: 0,
            lba_low: 0,
            lba_mid: 0,
            lba_high: 0,
            device: 0,
            error: 0,
            status: 0,
            intrq: false,
            default_chs: chs,
            chs,
            multiple: 0,
            write_cache: true,
            look_ahead: true,
            standby: false,
            buf: Box::new([0; MAX_MULTIPLE as usize * SECTOR_SIZE]),
            pos: 0,
            end: 0,
            phase: Phase::Idle,
        };
        d.reset();
        d
    }

    /// The state after power-on, SRST or EXECUTE DEVICE DIAGNOSTIC: the ATA
    /// signature in the task file (Sector Count 1, LBA Low 1, LBA Mid and
    /// High 0, Device 0) and the diagnostic code in Error. Multiple mode and
    /// the CHS translation are kept, as a drive does when "revert to
    /// power-on defaults" is disabled.
    pub(super) fn reset(&mut self) {
        self.sector_count = 1;
        self.lba_low = 1;
        self.lba_mid = 0;
        self.lba_high = 0;
        self.device = 0;
        self.error = DIAG_PASSED;
        self.status = READY;
        self.intrq = false;
        self.phase = Phase::Idle;
        self.pos = 0;
        self.end = 0;
    }

    /// SRST asserted: stop any transfer; busy until released.
    pub(super) fn abort(&mut self) {
        self.phase = Phase::Idle;
        self.intrq = false;
    }

    /// Sectors addressable with 28-bit commands.
    fn capacity(&self) -> u64 {
        self.disk.sectors().min(LBA28_SECTORS)
    }

    fn count(&self) -> u32 {
        match self.sector_count {
            0 => 256,
            n => n as u32,
        }
    }

    /// The address in the task file, or None for a CHS address outside the
    /// current translation.
    fn address(&self) -> Option<u64> {
        let head = (self.device & DEV_HEAD) as u64;
        if self.device & DEV_LBA != 0 {
            return Some(
                head << 24
                    | (self.lba_high as u64) << 16
                    | (self.lba_mid as u64) << 8
                    | self.lba_low as u64,
            );
        }
        let (c, s, g) = (
            (self.lba_high as u64) << 8 | self.lba_mid as u64,
            self.lba_low as u64,
            self.chs,
        );
        if s == 0 || s > g.sectors || head >= g.heads || c >= g.cylinders {
            return None;
        }
        Some((c * g.heads + head) * g.sectors + s - 1)
    }

    /// Writes `lba` back into the address registers, in the addressing
    /// mode of the command.
    fn set_address(&mut self, lba: u64) {
        let (head, high, mid, low) = if self.device & DEV_LBA != 0 {
            (lba >> 24, lba >> 16, lba >> 8, lba)
        } else {
            let g = self.chs;
            let c = lba / (g.heads * g.sectors);
            (lba / g.sectors % g.heads, c >> 8, c, lba % g.sectors + 1)
        };
        self.device = (self.device & !DEV_HEAD) | (head as u8 & DEV_HEAD);
        self.lba_high = high as u8;
        self.lba_mid = mid as u8;
        self.lba_low = low as u8;
    }

    pub(super) fn interrupt(&mut self, stats: &mut AtaStats) {
        self.intrq = true;
        stats.interrupts += 1;
    }

    /// Ends the command successfully, with an interrupt.
    fn complete(&mut self, stats: &mut AtaStats) {
        self.status = READY;
        self.phase = Phase::Idle;
        self.interrupt(stats);
    }

    /// Ends the command with ERR and `error`, with an interrupt.
    fn fail(&mut self, error: u8, stats: &mut AtaStats) {
        self.status = READY | ERR;
        self.error = error;
        self.phase = Phase::Idle;
        stats.errors += 1;
        self.interrupt(stats);
    }

    /// Starts the DRQ block of a data command at `lba` with `left` sectors
    /// still to move: a read loads it (and interrupts), a write opens the
    /// buffer for it (the caller interrupts when the protocol says so).
    fn start_block(&mut self, write: bool, lba: u64, left: u32, block: u32, stats: &mut AtaStats) {
        let k = left.min(block);
        if lba + k as u64 > self.capacity() {
            return self.fail(IDNF, stats);
        }
        let bytes = k as usize * SECTOR_SIZE;
        self.pos = 0;
        self.end = bytes;
        if write {
            self.phase = Phase::Write { lba, left, block };
            self.status = READY | DRQ;
            return;
        }
        if self.disk.read_sectors(lba, &mut self.buf[..bytes]).is_err() {
            return self.fail(UNC, stats);
        }
        stats.sectors_read += k as u64;
        self.set_address(lba + k as u64);
        self.sector_count = (left - k) as u8;
        self.phase = Phase::Read {
            lba: lba + k as u64,
            left: left - k,
            block,
        };
        self.status = READY | DRQ;
        self.interrupt(stats);
    }

    /// The host has taken the whole block: load the next or finish.
    fn read_block_done(&mut self, stats: &mut AtaStats) {
        match self.phase {
            Phase::Read { lba, left, block } if left > 0 => {
                self.start_block(false, lba, left, block, stats)
            }
            _ => {
                // PIO data-in: no interrupt after the last block.
                self.status = READY;
                self.phase = Phase::Idle;
            }
        }
    }

    /// The host has filled the block: write it, then open the next block or
    /// finish; either way the protocol interrupts.
    fn write_block_done(&mut self, stats: &mut AtaStats) {
        let Phase::Write { lba, left, block } = self.phase else {
            return;
        };
        let k = (self.end / SECTOR_SIZE) as u32;
        let written = self.disk.write_sectors(lba, &self.buf[..self.end]);
        // With the write cache disabled a write is done only when durable.
        let durable = match written {
            Ok(()) if !self.write_cache => self.disk.flush(),
            other => other,
        };
        if let Err(e) = durable {
            // The host could not write (a full file system, an I/O
            // error): the sectors before the failing one are written
            // whole, and the address registers point at the failing one
            // with Sector Count at what is left, as ATA-1 to ATA-3 specify
            // for an error during a multi-sector write. ABRT, which ATA
            // gives for a command the device could not complete (ATA-1
            // names a write fault among its causes); not DF, the device
            // fault status bit, after which drivers such as Linux's reset
            // the device, nor UNC, which is for data that cannot be read.
            self.disk.note_failure(&e);
            let done = e.sectors_written() as u32;
            stats.sectors_written += done as u64;
            self.set_address(lba + done as u64);
            self.sector_count = (left - done) as u8;
            return self.fail(ABRT, stats);
        }
        stats.sectors_written += k as u64;
        self.set_address(lba + k as u64);
        self.sector_count = (left - k) as u8;
        if left > k {
            self.start_block(true, lba + k as u64, left - k, block, stats);
            if self.status & ERR != 0 {
                return; // start_block failed and interrupted
            }
            return self.interrupt(stats);
        }
        self.complete(stats);
    }

    /// Bytes of the current DRQ block the host can still read (`write`
    /// false) or write.
    pub(super) fn data_left(&self, write: bool) -> usize {
        let phase_ok = match self.phase {
            Phase::Identify | Phase::Read { .. } => !write,
            Phase::Write { .. } => write,
            Phase::Idle => false,
        };
        if phase_ok && self.status & DRQ != 0 {
            self.end - self.pos
        } else {
            0
        }
    }

    /// Moves `out.len()` bytes (or what is left of the block, the rest
    /// zero) from the buffer to the host.
    pub(super) fn read_data(&mut self, out: &mut [u8], stats: &mut AtaStats) {
        let n = out.len().min(self.data_left(false));
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        out[n..].fill(0);
        if n == 0 {
            return;
        }
        self.pos += n;
        if self.pos == self.end {
            if self.phase == Phase::Identify {
                self.status = READY;
                self.phase = Phase::Idle;
            } else {
                self.read_block_done(stats);
            }
        }
    }

    /// Moves bytes from the host into the buffer (those past the end of the
    /// block are dropped).
    pub(super) fn write_data(&mut self, data: &[u8], stats: &mut AtaStats) {
        let n = data.len().min(self.data_left(true));
        if n == 0 {
            return;
        }
        self.buf[self.pos..self.pos + n].copy_from_slice(&data[..n]);
        self.pos += n;
        if self.pos == self.end {
            self.write_block_done(stats);
        }
    }

    /// Runs the command `code` (not EXECUTE DEVICE DIAGNOSTIC, which is the
    /// channel's) on this drive.
    pub(super) fn execute(&mut self, code: u8, stats: &mut AtaStats) {
        self.intrq = false;
        self.phase = Phase::Idle;
        self.error = 0;
        let kind = command_name(code);
        *stats.commands.entry(kind).or_insert(0) += 1;
        match code {
            0xEC => {
                let words = self.identify();
                for (i, w) in words.iter().enumerate() {
                    self.buf[2 * i..2 * i + 2].copy_from_slice(&w.to_le_bytes());
                }
                self.pos = 0;
                self.end = SECTOR_SIZE;
                self.phase = Phase::Identify;
                self.status = READY | DRQ;
                self.interrupt(stats);
            }
            0x20 | 0x21 | 0xC4 | 0x30 | 0x31 | 0xC5 => {
                let write = matches!(code, 0x30 | 0x31 | 0xC5);
                let block = if matches!(code, 0xC4 | 0xC5) {
                    if self.multiple == 0 {
                        return self.fail(ABRT, stats);
                    }
                    self.multiple
                } else {
                    1
                };
                if write && self.disk.read_only() {
                    return self.fail(ABRT, stats);
                }
                let Some(lba) = self.address() else {
                    return self.fail(IDNF, stats);
                };
                self.standby = false;
                // PIO data-out: no interrupt before the first block.
                self.start_block(write, lba, self.count(), block, stats);
            }
            0x40 | 0x41 => self.verify(stats),
            0x10..=0x1F => self.complete(stats), // RECALIBRATE
            0x70..=0x7F => match self.address() {
                Some(lba) if lba < self.capacity() => {
                    self.standby = false;
                    self.complete(stats)
                }
                _ => self.fail(IDNF, stats),
            },
            0x91 => {
                // INITIALIZE DEVICE PARAMETERS: sectors per track in Sector
                // Count, heads - 1 in the Device register's head bits.
                let (heads, sectors) = (
                    (self.device & DEV_HEAD) as u64 + 1,
                    self.sector_count as u64,
                );
                let cylinders = match sectors {
                    0 => 0,
                    _ => (self.capacity() / (heads * sectors)).min(u16::MAX as u64),
                };
                if cylinders == 0 {
                    return self.fail(ABRT, stats);
                }
                self.chs = Chs {
                    cylinders,
                    heads,
                    sectors,
                };
                self.complete(stats);
            }
            0xC6 => {
                // SET MULTIPLE MODE: 0 disables; an unsupported size aborts
                // and disables, as drives document.
                let n = self.sector_count as u32;
                if n == 0 || (n.is_power_of_two() && n <= MAX_MULTIPLE) {
                    self.multiple = n;
                    self.complete(stats);
                } else {
                    self.multiple = 0;
                    self.fail(ABRT, stats);
                }
            }
            0xE7 => match self.disk.flush() {
                Ok(()) => self.complete(stats),
                Err(e) => {
                    self.disk.note_failure(&e);
                    self.fail(ABRT, stats)
                }
            },
            0xEF => {
                let ok = match self.features {
                    0x02 | 0x82 => {
                        self.write_cache = self.features == 0x02;
                        true
                    }
                    0x55 | 0xAA => {
                        self.look_ahead = self.features == 0xAA;
                        true
                    }
                    0x66 | 0xCC => true, // settings are kept across SRST either way
                    // Set transfer mode: PIO default, or PIO flow-control
                    // mode 0-4. No DMA modes.
                    0x03 => matches!(self.sector_count, 0x00 | 0x01 | 0x08..=0x0C),
                    _ => false,
                };
                if ok {
                    self.complete(stats)
                } else {
                    self.fail(ABRT, stats)
                }
            }
            0xE0 | 0x94 | 0xE2 | 0x96 | 0xE6 | 0x99 => {
                // STANDBY (IMMEDIATE), SLEEP: nothing spins; remember the
                // mode for CHECK POWER MODE. SLEEP is treated as standby.
                self.standby = true;
                self.complete(stats)
            }
            0xE1 | 0x95 | 0xE3 | 0x97 => {
                self.standby = false;
                self.complete(stats)
            }
            0xE5 | 0x98 => {
                self.sector_count = if self.standby { 0x00 } else { 0xFF };
                self.complete(stats)
            }
            // NOP always aborts (ATA-6 NOP); PACKET, IDENTIFY PACKET
            // DEVICE, 48-bit, DMA and everything else are not supported.
            _ => self.fail(ABRT, stats),
        }
    }

    /// READ VERIFY SECTORS: reads the sectors, transfers nothing.
    fn verify(&mut self, stats: &mut AtaStats) {
        let Some(mut lba) = self.address() else {
            return self.fail(IDNF, stats);
        };
        let mut left = self.count();
        if lba + left as u64 > self.capacity() {
            return self.fail(IDNF, stats);
        }
        self.standby = false;
        while left > 0 {
            let k = left.min(MAX_MULTIPLE);
            let bytes = k as usize * SECTOR_SIZE;
            if self.disk.read_sectors(lba, &mut self.buf[..bytes]).is_err() {
                self.set_address(lba);
                return self.fail(UNC, stats);
            }
            stats.sectors_verified += k as u64;
            lba += k as u64;
            left -= k;
        }
        self.set_address(lba);
        self.sector_count = 0;
        self.complete(stats);
    }

    /// IDENTIFY DEVICE data (ATA-6, IDENTIFY DEVICE information table).
    fn identify(&self) -> [u16; 256] {
        let mut w = [0u16; 256];
        let (d, c) = (self.default_chs, self.chs);
        w[0] = 0x0040; // ATA device, not removable
        w[1] = d.cylinders as u16;
        w[3] = d.heads as u16;
        w[6] = d.sectors as u16;
        put_string(&mut w[10..20], &self.serial);
        put_string(&mut w[23..27], "1.0");
        put_string(&mut w[27..47], "RINGLAB HARDDISK");
        w[47] = 0x8000 | MAX_MULTIPLE as u16; // bits 15-8 are 80h
        w[49] = 1 << 11 | 1 << 9; // IORDY supported, LBA supported
        w[50] = 0x4000;
        w[51] = 0x0200; // PIO mode 2 timing (obsolete field)
        w[53] = 0x0003; // words 54-58 and 64-70 valid
        w[54] = c.cylinders as u16;
        w[55] = c.heads as u16;
        w[56] = c.sectors as u16;
        let cur = c.capacity() as u32;
        w[57] = cur as u16;
        w[58] = (cur >> 16) as u16;
        if self.multiple != 0 {
            w[59] = 0x0100 | self.multiple as u16;
        }
        let total = self.capacity() as u32;
        w[60] = total as u16;
        w[61] = (total >> 16) as u16;
        w[64] = 0x0003; // PIO modes 3 and 4
        w[67] = 120; // minimum PIO cycle time without flow control, ns
        w[68] = 120; // with IORDY
        w[80] = 0x007E; // ATA-1 to ATA-6

        // Command sets: NOP (14), look-ahead (6), write cache (5), power
        // management (3) supported; FLUSH CACHE (83 bit 12); 14 = 1, 15 = 0
        // in words 83, 84 and 87.
        w[82] = 1 << 14 | 1 << 6 | 1 << 5 | 1 << 3;
        w[83] = 1 << 14 | 1 << 12;
        w[84] = 1 << 14;
        w[85] = 1 << 14 | (self.look_ahead as u16) << 6 | (self.write_cache as u16) << 5 | 1 << 3;
        w[86] = 1 << 12;
        w[87] = 1 << 14;
        // Integrity word: signature A5h, and a checksum making all 512
        // bytes sum to 0.
        let sum = w[..255].iter().fold(0xA5u8, |s, &x| {
            s.wrapping_add(x as u8).wrapping_add((x >> 8) as u8)
        });
        w[255] = (sum.wrapping_neg() as u16) << 8 | 0xA5;
        w
    }
}

/// An ATA string: ASCII padded with spaces, the first character of each
/// pair in bits 15-8 of its word.
fn put_string(words: &mut [u16], s: &str) {
    let mut bytes = s.bytes().chain(std::iter::repeat(b' '));
    for w in words {
        let hi = bytes.next().unwrap_or(b' ');
        let lo = bytes.next().unwrap_or(b' ');
        *w = (hi as u16) << 8 | lo as u16;
    }
}

/// The statistics name of a command code.
fn command_name(code: u8) -> &'static str {
    match code {
        0x00 => "nop",
        0x10..=0x1F => "recalibrate",
        0x20 | 0x21 => "read_sectors",
        0x30 | 0x31 => "write_sectors",
        0x40 | 0x41 => "read_verify",
        0x70..=0x7F => "seek",
        0x90 => "execute_diagnostic",
        0x91 => "initialize_parameters",
        0xC4 => "read_multiple",
        0xC5 => "write_multiple",
        0xC6 => "set_multiple",
        0xE0..=0xE3 | 0xE5 | 0xE6 | 0x94..=0x99 => "power",
        0xE7 => "flush_cache",
        0xEC => "identify",
        0xEF => "set_features",
        _ => "unsupported",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_translation_limits() {
        let chs = |t| {
            let g = Chs::default_for(t);
            (g.cylinders, g.heads, g.sectors)
        };
        assert_eq!(chs(16383 * 16 * 63), (16383, 16, 63));
        assert_eq!(chs(LBA28_SECTORS), (16383, 16, 63));
        assert_eq!(chs(1008 * 100 + 5), (100, 16, 63));
        assert_eq!(chs(62), (1, 1, 62));
    }
}
