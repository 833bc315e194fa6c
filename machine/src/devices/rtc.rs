//! Motorola MC146818A real-time clock plus RAM (0x70-0x71): the PC/AT's CMOS.
//!
//! Register-level model of the MC146818A (Motorola, "MC146818A Real-Time
//! Clock Plus RAM (RTC)", Advance Information), following its sections
//! "Address Map", "Time, Calendar, and Alarm Locations", "Static CMOS RAM",
//! "Interrupts", "Divider Stages" (Table 4, Divider Configurations),
//! "Periodic Interrupt Selection" (Table 5, Periodic Interrupt Rate), "Update
//! Cycle" (Table 6, Update Cycle Times) and "Registers" (Register A to D).
//! The NVRAM holds what a PC BIOS and Linux read there, after the IBM PC AT
//! Technical Reference ("CMOS RAM Configuration Information") and Ralf
//! Brown's CMOS memory map, with the Bochs/QEMU extensions a SeaBIOS-style
//! firmware reads.
//!
//! Ports. 0x70 (offset 0) selects a register: bits 0-6 the index into the
//! 128 bytes, bit 7 masks NMI on the PC board ([`Rtc::nmi_masked`]). 0x70 is
//! write-only on the AT and reads 0xFF, as in Bochs and QEMU. The data port
//! 0x71 (offset 1) reads and writes the selected register. Accesses wider
//! than a byte act on the low byte.
//!
//! Time. The chip runs from a 32.768 kHz time base (register A DV = 010, the
//! only one a PC uses), counted in *virtual* time like the 8254: time-base
//! period k ends at the first virtual nanosecond t with
//! `ns_to_ticks(t, 32768) >= k`. One divider chain produces both the 1 Hz
//! update and the periodic taps, so its phase is one number: the tick of an
//! update edge. Every edge, and what the registers read, is computed from
//! that phase and [`IoCtx::now`] with integer arithmetic; nothing is stepped
//! and nothing drifts. At virtual 0 the clock reads the instant given to
//! [`Rtc::new`], an update has just happened, and the next ones come at 1 s,
//! 2 s, ... Leaving divider reset (DV = 11x) puts the first update 500 ms
//! later ("Divider Stages"); the test modes (011, 10x) stop the clock like a
//! reset. DV = 000 and 001 (4.194304 and 1.048576 MHz bases) run as 010, as
//! in QEMU, since the PC's crystal is 32.768 kHz whatever the bits say.
//!
//! Update cycle (Table 6, 32.768 kHz): UIP rises tBUC = 244 µs before the
//! cycle (modelled as 8 time-base periods, 244.140625 µs) and falls when it
//! ends, tUC = 1984 µs after it starts. The time registers show the new
//! second from the start of the cycle (the datasheet leaves them undefined
//! while UIP is 1); UF, and AF on an alarm match, are set at its end. An
//! alarm byte of 0xC0-0xFF is "don't care" and matches every value; the
//! comparison is of the register bytes, as the chip's, so it follows BCD and
//! 12-hour formats.
//!
//! Calendar. The clock is kept as seconds since 1970-01-01T00:00:00 of the
//! CMOS's (local, unzoned) time; the registers are encoded from it in the
//! format register B selects (BCD or binary, 24- or 12-hour with PM in bit
//! 7 of the hours). A format change therefore converts the time at once
//! (the real chip keeps the bytes and miscounts until software rewrites
//! them; Bochs and QEMU convert too). The century byte 0x32 (the one PCs and
//! the ACPI FADT name) is a clock register here, kept consistent with the
//! year, and the Gregorian leap rule applies (the chip's own rule is "every
//! fourth year", wrong in 2100). Daylight-saving (DSE) is stored and ignored:
//! PC firmware keeps it off. Day of week (1-7, Sunday = 1) is computed from
//! the date unless the guest writes register 6; then it keeps the written
//! value and advances at midnight, as the chip counts it independently.
//!
//! Setting the time. SET = 1 stops updates and clears UIP and UIE (Register
//! B); the guest writes the time registers, which read back exactly as
//! written; clearing SET resumes counting from the written time at the
//! next update edge of the still-running divider. Written bytes are shown
//! unchanged until that first update, then normalised (seconds 75 become the
//! next minute, February 30 becomes March 1 or 2). Writes with SET = 0 act
//! the same and take effect at once. The time stays an offset from virtual
//! time, so nothing is stepped. An update cycle interrupted by SET, a
//! divider reset or a clock write is aborted: its UF and AF are not set.
//!
//! Interrupts. Register C holds PF, AF and UF; IRQF and the IRQ 8 line are
//! (PF & PIE) | (AF & AIE) | (UF & UIE), driven as a level with
//! [`IoCtx::set_irq`]; reading C clears every flag and drops the line. PF is
//! set at every edge of the selected tap (Table 5: rates 1 and 2 give 256
//! and 128 Hz with a 32.768 kHz base, rates 3-15 give 8192 Hz down to 2 Hz)
//! whether or not PIE is set, and the edges lie on the divider's grid, so
//! they are aligned with the update edges and do not depend on when the rate
//! was written. Flags are folded in lazily from virtual time whenever the
//! chip is accessed; [`Device::next_deadline`] is only the next event that
//! would raise a low line (a periodic edge with PIE, an update end with UIE,
//! an alarm match with AIE), so an idle RTC, or one whose line is already
//! high, costs nothing.
//!
//! NVRAM (0x0E-0x7F, less 0x32). Power-on contents are zero except what the
//! setters write at build time: memory sizes, equipment byte, hard-disk
//! types and parameters; the floppy byte 0x10 stays 0 (no drives), the
//! diagnostic byte 0x0E and the shutdown status 0x0F stay 0 (normal POST).
//! The standard checksum of 0x10-0x2D at 0x2E (high) and 0x2F (low) is
//! recomputed by every setter, never on guest writes: real BIOSes write it
//! themselves after changing the configuration.
//!
//! Power-on registers as Bochs and QEMU leave them: A = 0x26 (32.768 kHz,
//! 1024 Hz periodic rate), B = 0x02 (24-hour, BCD, no interrupts), C = 0,
//! D = 0x80 (VRT: the battery is good), index 0, NMI not masked.

use crate::bus::{Device, IoCtx};
use crate::clock::{ticks_to_ns, NS_PER_SEC};

/// The ISA interrupt line the chip drives on a PC.
pub const RTC_IRQ: u8 = 8;
/// First port of the index/data pair.
pub const RTC_PORT: u16 = 0x70;
/// Ports in the region: index and data.
pub const RTC_PORTS: u16 = 2;

/// 2026-01-01T00:00:00 (a Thursday): the clock's start when none is given,
/// so that runs are reproducible.
pub const DEFAULT_START: i64 = 1_767_225_600;

/// The PC's time base.
const TIME_BASE_HZ: u64 = 32_768;
const TICKS_PER_SECOND: i64 = 32_768;
/// "When the divider reset is removed the first update cycle begins
/// one-half second later" (Register A, DV2-DV0).
const FIRST_UPDATE_TICKS: i64 = TICKS_PER_SECOND / 2;
/// tBUC, Table 6: UIP rises 244 µs before the update cycle begins.
const TBUC_TICKS: i64 = 8;
/// tUC, Table 6: the update cycle lasts 1984 µs with a 32.768 kHz base.
const TUC_NS: i128 = 1_984_000;

// Clock, calendar and alarm registers ("Address Map").
const REG_SECONDS: u8 = 0x00;
const REG_SECONDS_ALARM: u8 = 0x01;
const REG_MINUTES: u8 = 0x02;
const REG_MINUTES_ALARM: u8 = 0x03;
const REG_HOURS: u8 = 0x04;
const REG_HOURS_ALARM: u8 = 0x05;
const REG_DAY_OF_WEEK: u8 = 0x06;
const REG_DAY_OF_MONTH: u8 = 0x07;
const REG_MONTH: u8 = 0x08;
const REG_YEAR: u8 = 0x09;
const REG_A: u8 = 0x0A;
const REG_B: u8 = 0x0B;
const REG_C: u8 = 0x0C;
const REG_D: u8 = 0x0D;
/// The century byte of PCs (IBM AT; the ACPI FADT's CENTURY index).
const REG_CENTURY: u8 = 0x32;

// PC NVRAM layout (IBM AT Technical Reference; Bochs/QEMU extensions).
const REG_EQUIPMENT: u8 = 0x14;
/// Base memory in KiB, low byte first.
const REG_BASE_MEMORY: u8 = 0x15;
/// Extended memory above 1 MiB in KiB, as configured.
const REG_EXTENDED_MEMORY: u8 = 0x17;
/// Hard disk types: drive 0 in bits 7-4, drive 1 in bits 3-0 (0xF: see
/// the extended type bytes).
const REG_DISK_TYPES: u8 = 0x12;
/// Extended hard disk types for drives 0 and 1 (0x19, 0x1A).
const REG_DISK_EXT_TYPES: u8 = 0x19;
/// User-defined (type 47) drive parameters, 9 bytes each (0x1B, 0x24).
const REG_DISK_PARAMS: [u8; 2] = [0x1B, 0x24];
const CHECKSUM_FIRST: u8 = 0x10;
const CHECKSUM_LAST: u8 = 0x2D;
/// Checksum of 0x10-0x2D, high byte (low byte at 0x2F).
const REG_CHECKSUM: u8 = 0x2E;
/// Extended memory above 1 MiB in KiB, as found by POST.
const REG_EXTENDED_MEMORY_POST: u8 = 0x30;
/// Memory between 16 MiB and 4 GiB in 64 KiB units (QEMU, SeaBIOS).
const REG_MEMORY_ABOVE_16M: u8 = 0x34;
/// Memory above 4 GiB in 64 KiB units, 3 bytes (QEMU, SeaBIOS).
const REG_MEMORY_ABOVE_4G: u8 = 0x5B;

/// The AT's conventional memory below the video buffer.
const BASE_MEMORY_KIB: u64 = 640;
/// Extended memory as 0x17/0x30 report it stops at 63 MiB (Bochs: the
/// field ends at 64 MiB of total memory; memory above 16 MiB is in 0x34).
const EXTENDED_MEMORY_MAX_KIB: u64 = 0xFC00;
/// The AT drive type whose parameters are in NVRAM.
const DISK_TYPE_USER: u8 = 47;
/// Write precompensation cylinder 0xFFFF: none.
const NO_PRECOMP: u16 = 0xFFFF;
/// Control byte of the drive parameters: retries disabled (bits 7-6),
/// more than 8 heads (bit 3).
const DISK_CONTROL: u8 = 0xC0;
const DISK_CONTROL_MANY_HEADS: u8 = 0x08;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

// Register A.
const A_UIP: u8 = 0x80;
const A_DV_SHIFT: u8 = 4;
const A_DV_MASK: u8 = 7;
/// DV2-DV0 at or below this run the divider (000, 001, 010).
const A_DV_LAST_RUNNING: u8 = 2;
const A_RS_MASK: u8 = 0x0F;
const A_WRITABLE: u8 = 0x7F;

// Register B.
const B_SET: u8 = 0x80;
const B_PIE: u8 = 0x40;
const B_AIE: u8 = 0x20;
const B_UIE: u8 = 0x10;
/// Data mode: 1 = binary, 0 = BCD.
const B_DM: u8 = 0x04;
/// 1 = 24-hour mode, 0 = 12-hour mode.
const B_24H: u8 = 0x02;

// Register C: each flag sits at the bit of its enable in register B.
const C_IRQF: u8 = 0x80;
const C_PF: u8 = B_PIE;
const C_AF: u8 = B_AIE;
const C_UF: u8 = B_UIE;

/// Register D: valid RAM and time.
const D_VRT: u8 = 0x80;

/// Alarm bytes with both top bits set match any value.
const ALARM_DONT_CARE: u8 = 0xC0;
/// In 12-hour mode bit 7 of the hours is PM.
const HOURS_PM: u8 = 0x80;

/// Written by an index port read: the AT's 0x70 is write-only.
const INDEX_READ: u8 = 0xFF;

const POWER_ON_A: u8 = 0x26;
const POWER_ON_B: u8 = B_24H;

const SECONDS_PER_DAY: i64 = 86_400;
/// 1970-01-01 was a Thursday (weekday 4, Sunday = 0).
const EPOCH_WEEKDAY: i64 = 4;

/// Slots of the clock registers in a register image.
const SLOT_SECONDS: usize = 0;
const SLOT_MINUTES: usize = 1;
const SLOT_HOURS: usize = 2;
const SLOT_DAY_OF_WEEK: usize = 3;
const SLOT_DAY_OF_MONTH: usize = 4;
const SLOT_MONTH: usize = 5;
const SLOT_YEAR: usize = 6;
const SLOT_CENTURY: usize = 7;
const SLOTS: usize = 8;

/// The clock registers' bytes: seconds, minutes, hours, day of week, day of
/// month, month, year, century.
type Image = [u8; SLOTS];

fn slot(index: u8) -> Option<usize> {
    Some(match index {
        REG_SECONDS => SLOT_SECONDS,
        REG_MINUTES => SLOT_MINUTES,
        REG_HOURS => SLOT_HOURS,
        REG_DAY_OF_WEEK => SLOT_DAY_OF_WEEK,
        REG_DAY_OF_MONTH => SLOT_DAY_OF_MONTH,
        REG_MONTH => SLOT_MONTH,
        REG_YEAR => SLOT_YEAR,
        REG_CENTURY => SLOT_CENTURY,
        _ => return None,
    })
}

/// Counters for `--stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RtcStats {
    /// Writes to the index port 0x70.
    pub index_writes: u64,
    /// Clock, calendar and alarm registers (0x00-0x09 and the century).
    pub time_reads: u64,
    pub time_writes: u64,
    /// Registers A-D.
    pub control_reads: u64,
    pub control_writes: u64,
    /// NVRAM bytes.
    pub nvram_reads: u64,
    pub nvram_writes: u64,
    /// Rises of IRQ 8, by the enabled flag(s) that raised it.
    pub periodic_irqs: u64,
    pub alarm_irqs: u64,
    pub update_irqs: u64,
    /// Update cycles completed, as of the last access or tick.
    pub updates: u64,
}

/// A hard disk's geometry as the BIOS's type-47 parameters hold it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskGeometry {
    pub cylinders: u16,
    pub heads: u8,
    pub sectors: u8,
}

/// Why an RTC start time was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RtcTimeError {
    #[error("RTC start {0:?}: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS")]
    Format(String),
    #[error("RTC start year {0} out of range 1970-2099")]
    Year(i64),
    #[error("RTC start month {0} out of range 1-12")]
    Month(i64),
    #[error("RTC start day {day} out of range 1-{last} for {year:04}-{month:02}")]
    Day {
        year: i64,
        month: i64,
        day: i64,
        last: i64,
    },
    #[error("RTC start hour {0} out of range 0-23")]
    Hour(i64),
    #[error("RTC start minute {0} out of range 0-59")]
    Minute(i64),
    #[error("RTC start second {0} out of range 0-59")]
    Second(i64),
}

/// Parses `YYYY-MM-DDTHH:MM:SS` (a space may stand for the T, a final Z is
/// allowed; the time is UTC) or `YYYY-MM-DD` (midnight) into seconds since
/// the Unix epoch. Years 1970-2099: what a two-digit year register plus the
/// century byte shows unambiguously to every guest.
pub fn parse_rtc_start(s: &str) -> Result<i64, RtcTimeError> {
    let bad = || RtcTimeError::Format(s.to_string());
    let t = s.trim();
    let t = t.strip_suffix(['Z', 'z']).unwrap_or(t);
    let (date, time) = match t.split_once(['T', 't', ' ']) {
        Some((d, tm)) => (d, Some(tm)),
        None => (t, None),
    };
    let fields = |text: &str, sep: char, widths: &[usize]| -> Option<Vec<i64>> {
        let parts: Vec<&str> = text.split(sep).collect();
        if parts.len() != widths.len() {
            return None;
        }
        parts
            .iter()
            .zip(widths)
            .map(|(p, &w)| {
                (p.len() == w && p.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| p.parse::<i64>().ok())
                    .flatten()
            })
            .collect()
    };
    let d = fields(date, '-', &[4, 2, 2]).ok_or_else(bad)?;
    let hms = match time {
        Some(tm) => fields(tm, ':', &[2, 2, 2]).ok_or_else(bad)?,
        None => vec![0, 0, 0],
    };
    let (year, month, day) = (d[0], d[1], d[2]);
    if !(1970..=2099).contains(&year) {
        return Err(RtcTimeError::Year(year));
    }
    if !(1..=12).contains(&month) {
        return Err(RtcTimeError::Month(month));
    }
    let last = days_in_month(year, month);
    if !(1..=last).contains(&day) {
        return Err(RtcTimeError::Day {
            year,
            month,
            day,
            last,
        });
    }
    let (hour, minute, second) = (hms[0], hms[1], hms[2]);
    if hour > 23 {
        return Err(RtcTimeError::Hour(hour));
    }
    if minute > 59 {
        return Err(RtcTimeError::Minute(minute));
    }
    if second > 59 {
        return Err(RtcTimeError::Second(second));
    }
    Ok(days_from_civil(year, month, day) * SECONDS_PER_DAY + hour * 3600 + minute * 60 + second)
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to `year-month-day` in the proleptic Gregorian
/// calendar (month 1-12; `day` may run past the month, counting on). The
/// algorithm counts from 0000-03-01 in 400-year eras so that February, the
/// irregular month, comes last (H. Hinnant, "chrono-Compatible Low-Level
/// Date Algorithms").
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`]: (year, month, day).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Day of the week, Sunday = 0.
fn weekday(secs: i64) -> i64 {
    (secs.div_euclid(SECONDS_PER_DAY) + EPOCH_WEEKDAY).rem_euclid(7)
}

/// The time-base period in progress at virtual time `ns` (which may be
/// negative when an offset is subtracted): floor(ns * 32768 / 10^9).
fn tick_at(ns: i128) -> i64 {
    (ns * TIME_BASE_HZ as i128).div_euclid(NS_PER_SEC as i128) as i64
}

/// The virtual time at which time-base period `t` has elapsed.
fn tick_ns(t: i64) -> u64 {
    ticks_to_ns(t.max(0) as u64, TIME_BASE_HZ)
}

/// Points of the grid `phase + k * period` in (lo, hi].
fn grid_count(phase: i64, period: i64, lo: i64, hi: i64) -> i64 {
    ((hi - phase).div_euclid(period) - (lo - phase).div_euclid(period)).max(0)
}

/// The first point of the grid `phase + k * period` after `t`.
fn grid_after(phase: i64, period: i64, t: i64) -> i64 {
    phase + ((t - phase).div_euclid(period) + 1) * period
}

/// The clock: the time the registers held at the anchor, counted on by the
/// update edges after it.
#[derive(Clone, Debug)]
struct Timekeeping {
    /// Seconds since 1970-01-01T00:00:00 (CMOS time) at the anchor.
    base: i64,
    /// The registers exactly as the guest wrote them, shown until the first
    /// update after the anchor (`base` is their normalised value).
    raw: Option<Image>,
    /// Register 6 reads (weekday + offset) mod 7 + 1.
    dow_offset: i64,
    /// Updates count from the time-base tick after this one; `None` while
    /// SET is 1 or the divider is stopped.
    anchor: Option<i64>,
}

/// The MC146818A and its 114 bytes of NVRAM.
pub struct Rtc {
    index: u8,
    nmi_masked: bool,
    /// Register A bits 6-0 (UIP is computed).
    reg_a: u8,
    reg_b: u8,
    /// Seconds, minutes and hours alarm bytes.
    alarm: [u8; 3],
    ram: [u8; 128],
    /// PF, AF and UF as of `settled`.
    flags: u8,
    /// The IRQ 8 level last driven.
    irq: bool,
    /// Events up to this virtual time are in `flags`.
    settled: u64,
    /// Cached [`Device::next_deadline`].
    deadline: Option<u64>,
    /// A time-base tick at which an update edge falls (the divider's phase).
    phase: i64,
    /// The divider last left reset at this tick: no periodic edge before.
    released: i64,
    time: Timekeeping,
    stats: RtcStats,
}

impl Rtc {
    /// A chip whose clock reads `start_unix_seconds` (UTC, clamped to years
    /// 0-9999) at virtual time 0, with the power-on registers and empty
    /// NVRAM described in the module comment.
    pub fn new(start_unix_seconds: i64) -> Rtc {
        let first = days_from_civil(0, 1, 1) * SECONDS_PER_DAY;
        let last = days_from_civil(10_000, 1, 1) * SECONDS_PER_DAY - 1;
        let mut rtc = Rtc {
            index: 0,
            nmi_masked: false,
            reg_a: POWER_ON_A,
            reg_b: POWER_ON_B,
            alarm: [0; 3],
            ram: [0; 128],
            flags: 0,
            irq: false,
            settled: 0,
            deadline: None,
            phase: 0,
            released: 0,
            time: Timekeeping {
                base: start_unix_seconds.clamp(first, last),
                raw: None,
                dow_offset: 0,
                anchor: Some(0),
            },
            stats: RtcStats::default(),
        };
        rtc.update_checksum();
        rtc
    }

    /// Bit 7 of the last index written: the PC board's NMI mask.
    pub fn nmi_masked(&self) -> bool {
        self.nmi_masked
    }

    /// The clock at virtual time `now`, in seconds since the Unix epoch.
    pub fn time_at(&self, now: u64) -> i64 {
        self.clock_at(now).0
    }

    /// Register `index` (0-127) as a guest would read it at `now`, without
    /// the side effects of a read (register C is not cleared).
    pub fn peek(&self, index: u8, now: u64) -> u8 {
        let index = index & 0x7F;
        if index == REG_C {
            let now = now.max(self.settled);
            let flags = self.flags | self.events(self.settled, now).0;
            return flags | if self.irqf_of(flags) { C_IRQF } else { 0 };
        }
        self.register(index, now)
    }

    pub fn stats(&self) -> &RtcStats {
        &self.stats
    }

    /// Fills the memory size bytes for `ram_bytes` of RAM from address 0:
    /// base memory (0x15-0x16, 640 KiB), extended memory above 1 MiB in KiB
    /// capped at 63 MiB (0x17-0x18 and POST's copy 0x30-0x31), memory
    /// between 16 MiB and 4 GiB in 64 KiB units (0x34-0x35) and above 4 GiB
    /// (0x5B-0x5D), as QEMU and SeaBIOS use them.
    pub fn set_memory_sizes(&mut self, ram_bytes: u64) {
        let base = (ram_bytes / KIB).min(BASE_MEMORY_KIB);
        let extended = (ram_bytes.saturating_sub(MIB) / KIB).min(EXTENDED_MEMORY_MAX_KIB);
        let above_16m = (ram_bytes.min(4 * GIB).saturating_sub(16 * MIB) / (64 * KIB)).min(0xFFFF);
        let above_4g = (ram_bytes.saturating_sub(4 * GIB) / (64 * KIB)).min(0xFF_FFFF);
        self.put_le(REG_BASE_MEMORY, base, 2);
        self.put_le(REG_EXTENDED_MEMORY, extended, 2);
        self.put_le(REG_EXTENDED_MEMORY_POST, extended, 2);
        self.put_le(REG_MEMORY_ABOVE_16M, above_16m, 2);
        self.put_le(REG_MEMORY_ABOVE_4G, above_4g, 3);
        self.update_checksum();
    }

    /// The equipment byte 0x14 (IBM AT: bit 0 diskette drives present, bit 1
    /// math coprocessor, bits 5-4 primary display with 00 = EGA/VGA, bits
    /// 7-6 diskette drives - 1).
    pub fn set_equipment(&mut self, byte: u8) {
        self.ram[REG_EQUIPMENT as usize] = byte;
        self.update_checksum();
    }

    /// Hard disks 0 and 1 as Bochs and QEMU describe them: type 0xF in 0x12
    /// (see extended type), type 47 (user defined) in 0x19/0x1A, and the
    /// parameters at 0x1B (drive 0) and 0x24 (drive 1): cylinders (2
    /// bytes), heads, write precompensation 0xFFFF (none), control byte,
    /// landing zone (= cylinders, 2 bytes), sectors per track. An absent
    /// drive has type 0 and zero parameters.
    pub fn set_hard_disks(&mut self, disks: [Option<DiskGeometry>; 2]) {
        let mut types = 0;
        for (i, disk) in disks.iter().enumerate() {
            let p = REG_DISK_PARAMS[i] as usize;
            self.ram[REG_DISK_EXT_TYPES as usize + i] = 0;
            self.ram[p..p + 9].fill(0);
            let Some(g) = disk else { continue };
            types |= 0xF0 >> (4 * i);
            self.ram[REG_DISK_EXT_TYPES as usize + i] = DISK_TYPE_USER;
            let control = DISK_CONTROL
                | if g.heads > 8 {
                    DISK_CONTROL_MANY_HEADS
                } else {
                    0
                };
            let [cl, ch] = g.cylinders.to_le_bytes();
            let [pl, ph] = NO_PRECOMP.to_le_bytes();
            self.ram[p..p + 9]
                .copy_from_slice(&[cl, ch, g.heads, pl, ph, control, cl, ch, g.sectors]);
        }
        self.ram[REG_DISK_TYPES as usize] = types;
        self.update_checksum();
    }

    /// Any NVRAM byte (0x0E-0x7F except the century byte 0x32, which is the
    /// clock's), for what the other setters do not cover (QEMU's CPU count
    /// at 0x5F, boot order at 0x3D, ...). Keeps the checksum.
    pub fn set_nvram(&mut self, index: u8, value: u8) {
        let index = index & 0x7F;
        if Self::is_nvram(index) {
            self.ram[index as usize] = value;
            self.update_checksum();
        }
    }

    /// The stored NVRAM byte at `index` (0 for clock and control registers).
    pub fn nvram(&self, index: u8) -> u8 {
        let index = index & 0x7F;
        if Self::is_nvram(index) {
            self.ram[index as usize]
        } else {
            0
        }
    }

    fn is_nvram(index: u8) -> bool {
        index > REG_D && index != REG_CENTURY
    }

    fn put_le(&mut self, at: u8, value: u64, bytes: usize) {
        let at = at as usize;
        self.ram[at..at + bytes].copy_from_slice(&value.to_le_bytes()[..bytes]);
    }

    fn update_checksum(&mut self) {
        let sum: u16 = self.ram[CHECKSUM_FIRST as usize..=CHECKSUM_LAST as usize]
            .iter()
            .map(|&b| b as u16)
            .fold(0, u16::wrapping_add);
        let [hi, lo] = sum.to_be_bytes();
        self.ram[REG_CHECKSUM as usize] = hi;
        self.ram[REG_CHECKSUM as usize + 1] = lo;
    }

    // ---- formats ("Time, Calendar, and Alarm Data Modes") ----

    fn binary(&self) -> bool {
        self.reg_b & B_DM != 0
    }

    fn encode(&self, v: i64) -> u8 {
        if self.binary() {
            v as u8
        } else {
            let v = v.rem_euclid(100) as u8;
            ((v / 10) << 4) | (v % 10)
        }
    }

    fn decode(&self, b: u8) -> i64 {
        if self.binary() {
            b as i64
        } else {
            (b >> 4) as i64 * 10 + (b & 0xF) as i64
        }
    }

    fn encode_hour(&self, hour: i64) -> u8 {
        if self.reg_b & B_24H != 0 {
            return self.encode(hour);
        }
        let h12 = match hour % 12 {
            0 => 12,
            h => h,
        };
        self.encode(h12) | if hour >= 12 { HOURS_PM } else { 0 }
    }

    fn decode_hour(&self, b: u8) -> i64 {
        if self.reg_b & B_24H != 0 {
            return self.decode(b);
        }
        self.decode(b & !HOURS_PM) % 12 + if b & HOURS_PM != 0 { 12 } else { 0 }
    }

    /// The clock registers for `secs` in the current format.
    fn image(&self, secs: i64) -> Image {
        let days = secs.div_euclid(SECONDS_PER_DAY);
        let sod = secs.rem_euclid(SECONDS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        let dow = (weekday(secs) + self.time.dow_offset).rem_euclid(7) + 1;
        let mut img = [0; SLOTS];
        img[SLOT_SECONDS] = self.encode(sod % 60);
        img[SLOT_MINUTES] = self.encode(sod / 60 % 60);
        img[SLOT_HOURS] = self.encode_hour(sod / 3600);
        img[SLOT_DAY_OF_WEEK] = self.encode(dow);
        img[SLOT_DAY_OF_MONTH] = self.encode(day);
        img[SLOT_MONTH] = self.encode(month);
        img[SLOT_YEAR] = self.encode(year.rem_euclid(100));
        img[SLOT_CENTURY] = self.encode(year.div_euclid(100));
        img
    }

    /// What written registers stand for, normalised: out-of-range fields
    /// carry into the next one (seconds 75, day 31 of a 30-day month).
    fn secs_from_image(&self, img: &Image) -> i64 {
        let year = self.decode(img[SLOT_CENTURY]) * 100 + self.decode(img[SLOT_YEAR]);
        let m = self.decode(img[SLOT_MONTH]) - 1;
        let days = days_from_civil(year + m.div_euclid(12), m.rem_euclid(12) + 1, 1)
            + self.decode(img[SLOT_DAY_OF_MONTH])
            - 1;
        days * SECONDS_PER_DAY
            + self.decode_hour(img[SLOT_HOURS]) * 3600
            + self.decode(img[SLOT_MINUTES]) * 60
            + self.decode(img[SLOT_SECONDS])
    }

    // ---- the divider chain ----

    fn divider_running(&self) -> bool {
        (self.reg_a >> A_DV_SHIFT) & A_DV_MASK <= A_DV_LAST_RUNNING
    }

    /// The periodic tap's period in time-base ticks (Table 5, 32.768 kHz
    /// column): rate 1 and 2 are 256 and 128 Hz, rate n >= 3 is
    /// 65536 / 2^n Hz.
    fn period_ticks(&self) -> Option<i64> {
        if !self.divider_running() {
            return None;
        }
        match self.reg_a & A_RS_MASK {
            0 => None,
            1 => Some(1 << 7),
            2 => Some(1 << 8),
            r => Some(1 << (r - 1)),
        }
    }

    /// The clock at `now`, and the written registers if they still show.
    fn clock_at(&self, now: u64) -> (i64, Option<Image>) {
        let t = &self.time;
        match t.anchor {
            Some(a) => match grid_count(self.phase, TICKS_PER_SECOND, a, tick_at(now as i128)) {
                0 => (t.base, t.raw),
                n => (t.base.saturating_add(n), None),
            },
            None => (t.base, t.raw),
        }
    }

    /// UIP at `now`: from tBUC before an update edge to the end of its cycle.
    fn uip(&self, now: u64) -> bool {
        let Some(anchor) = self.time.anchor else {
            return false;
        };
        let lo = tick_at(now as i128 - TUC_NS).max(anchor);
        let next = grid_after(self.phase, TICKS_PER_SECOND, lo);
        tick_ns(next - TBUC_TICKS) <= now
    }

    /// Stops counting (SET, or the divider stopped) at `now`.
    fn freeze(&mut self, now: u64) {
        if self.time.anchor.is_some() {
            let (base, raw) = self.clock_at(now);
            self.time.base = base;
            self.time.raw = raw;
            self.time.anchor = None;
        }
    }

    /// The smallest k >= `k1` such that the k-th update after the anchor
    /// matches the alarm, if any.
    fn next_alarm(&self, k1: i64) -> Option<i64> {
        let [sa, ma, ha] = self.alarm;
        let any = |b: u8| b & ALARM_DONT_CARE == ALARM_DONT_CARE;
        let sec_ok = |s: i64| any(sa) || self.encode(s) == sa;
        let min_ok = |m: i64| any(ma) || self.encode(m) == ma;
        let hour_ok = |h: i64| any(ha) || self.encode_hour(h) == ha;
        if !(0..60).any(sec_ok) || !(0..60).any(min_ok) || !(0..24).any(hour_ok) {
            return None;
        }
        // Skip whole hours and minutes that cannot match: a match is found
        // within a day, in at most 24 + 2 * 60 + 2 * 60 steps.
        let mut t = self.time.base.saturating_add(k1);
        for _ in 0..1024 {
            let sod = t.rem_euclid(SECONDS_PER_DAY);
            if !hour_ok(sod / 3600) {
                t += 3600 - sod % 3600;
            } else if !min_ok(sod / 60 % 60) {
                t += 60 - sod % 60;
            } else if !sec_ok(sod % 60) {
                t += 1;
            } else {
                return Some(t - self.time.base);
            }
        }
        None
    }

    // ---- interrupts ----

    /// The flags the chip sets in (from, to], and the update cycles that
    /// end there.
    fn events(&self, from: u64, to: u64) -> (u8, u64) {
        let mut flags = 0;
        let mut updates = 0;
        if to <= from {
            return (0, 0);
        }
        if let Some(p) = self.period_ticks() {
            let lo = tick_at(from as i128).max(self.released);
            if grid_count(self.phase, p, lo, tick_at(to as i128)) > 0 {
                flags |= C_PF;
            }
        }
        if let Some(anchor) = self.time.anchor {
            // Cycle ends are tUC after the update edges.
            let lo = tick_at(from as i128 - TUC_NS).max(anchor);
            let hi = tick_at(to as i128 - TUC_NS);
            let n = grid_count(self.phase, TICKS_PER_SECOND, lo, hi);
            if n > 0 {
                flags |= C_UF;
                updates = n as u64;
                let k1 = grid_count(self.phase, TICKS_PER_SECOND, anchor, lo) + 1;
                if self.flags & C_AF == 0 && self.next_alarm(k1).is_some_and(|k| k < k1 + n) {
                    flags |= C_AF;
                }
            }
        }
        (flags, updates)
    }

    /// Folds the events up to `now` into the flags.
    fn settle(&mut self, now: u64) {
        let now = now.max(self.settled);
        let (flags, updates) = self.events(self.settled, now);
        self.flags |= flags;
        self.stats.updates += updates;
        self.settled = now;
    }

    fn irqf_of(&self, flags: u8) -> bool {
        flags & self.reg_b & (B_PIE | B_AIE | B_UIE) != 0
    }

    /// Drives IRQ 8 to IRQF and recomputes the deadline.
    fn sync(&mut self, cx: &mut IoCtx) {
        let level = self.irqf_of(self.flags);
        if level != self.irq {
            cx.set_irq(RTC_IRQ, level);
            self.irq = level;
            if level {
                let causes = self.flags & self.reg_b;
                self.stats.periodic_irqs += u64::from(causes & C_PF != 0);
                self.stats.alarm_irqs += u64::from(causes & C_AF != 0);
                self.stats.update_irqs += u64::from(causes & C_UF != 0);
            }
        }
        self.deadline = self.compute_deadline();
    }

    /// The first future event that would raise the (low) line.
    fn compute_deadline(&self) -> Option<u64> {
        if self.irq {
            return None;
        }
        let from = self.settled;
        let mut best: Option<u64> = None;
        let mut consider = |t: u64| best = Some(best.map_or(t, |b| b.min(t)));
        if self.reg_b & B_PIE != 0 {
            if let Some(p) = self.period_ticks() {
                let after = tick_at(from as i128).max(self.released);
                consider(tick_ns(grid_after(self.phase, p, after)));
            }
        }
        if let Some(anchor) = self.time.anchor {
            let tuc = TUC_NS as u64;
            let lo = tick_at(from as i128 - TUC_NS).max(anchor);
            if self.reg_b & B_UIE != 0 {
                let edge = grid_after(self.phase, TICKS_PER_SECOND, lo);
                consider(tick_ns(edge).saturating_add(tuc));
            }
            if self.reg_b & B_AIE != 0 {
                let k1 = grid_count(self.phase, TICKS_PER_SECOND, anchor, lo) + 1;
                if let Some(k) = self.next_alarm(k1) {
                    let first = grid_after(self.phase, TICKS_PER_SECOND, anchor);
                    let edge = first.saturating_add((k - 1).saturating_mul(TICKS_PER_SECOND));
                    consider(tick_ns(edge).saturating_add(tuc));
                }
            }
        }
        best
    }

    // ---- registers ----

    /// A register's value at `now` (register C's flags as last settled).
    fn register(&self, index: u8, now: u64) -> u8 {
        if let Some(s) = slot(index) {
            let (secs, raw) = self.clock_at(now);
            return raw.unwrap_or_else(|| self.image(secs))[s];
        }
        match index {
            REG_SECONDS_ALARM => self.alarm[0],
            REG_MINUTES_ALARM => self.alarm[1],
            REG_HOURS_ALARM => self.alarm[2],
            REG_A => self.reg_a | if self.uip(now) { A_UIP } else { 0 },
            REG_B => self.reg_b,
            REG_C => self.flags | if self.irqf_of(self.flags) { C_IRQF } else { 0 },
            REG_D => D_VRT,
            _ => self.ram[index as usize],
        }
    }

    fn count_access(&mut self, index: u8, write: bool) {
        let s = &mut self.stats;
        let counter = match index {
            0..=REG_YEAR | REG_CENTURY => [&mut s.time_reads, &mut s.time_writes],
            REG_A..=REG_D => [&mut s.control_reads, &mut s.control_writes],
            _ => [&mut s.nvram_reads, &mut s.nvram_writes],
        };
        let [r, w] = counter;
        *(if write { w } else { r }) += 1;
    }

    fn read_data(&mut self, now: u64) -> u8 {
        let index = self.index;
        self.count_access(index, false);
        let v = self.register(index, now);
        if index == REG_C {
            // "All flag bits are cleared after Register C is read."
            self.flags = 0;
        }
        v
    }

    fn write_data(&mut self, value: u8, now: u64) {
        let index = self.index;
        self.count_access(index, true);
        if let Some(s) = slot(index) {
            self.write_time(s, value, now);
            return;
        }
        match index {
            REG_SECONDS_ALARM => self.alarm[0] = value,
            REG_MINUTES_ALARM => self.alarm[1] = value,
            REG_HOURS_ALARM => self.alarm[2] = value,
            REG_A => self.write_a(value, now),
            REG_B => self.write_b(value, now),
            // C and D are read-only.
            REG_C | REG_D => {}
            _ => self.ram[index as usize] = value,
        }
    }

    /// A clock register write: the registers read back as written, the
    /// clock counts on from their normalised value.
    fn write_time(&mut self, s: usize, value: u8, now: u64) {
        let (secs, raw) = self.clock_at(now);
        let mut img = raw.unwrap_or_else(|| self.image(secs));
        img[s] = value;
        let base = self.secs_from_image(&img);
        let dow = self.decode(img[SLOT_DAY_OF_WEEK]) - 1;
        self.time.base = base;
        self.time.dow_offset = (dow - weekday(base)).rem_euclid(7);
        self.time.raw = Some(img);
        if self.time.anchor.is_some() {
            self.time.anchor = Some(tick_at(now as i128));
        }
    }

    fn write_a(&mut self, value: u8, now: u64) {
        let was_running = self.divider_running();
        self.reg_a = value & A_WRITABLE;
        match (was_running, self.divider_running()) {
            (true, false) => self.freeze(now),
            (false, true) => {
                let t = tick_at(now as i128);
                self.released = t;
                self.phase = t + FIRST_UPDATE_TICKS;
                if self.reg_b & B_SET == 0 {
                    self.time.anchor = Some(t);
                }
            }
            _ => {}
        }
    }

    fn write_b(&mut self, mut value: u8, now: u64) {
        // "The SET bit going high clears the UIE bit" (Register B, UIE).
        if value & B_SET != 0 {
            value &= !B_UIE;
        }
        let old = self.reg_b;
        self.reg_b = value;
        if old & B_SET == 0 && value & B_SET != 0 {
            self.freeze(now);
        } else if old & B_SET != 0 && value & B_SET == 0 && self.divider_running() {
            self.time.anchor = Some(tick_at(now as i128));
        }
    }
}

impl Device for Rtc {
    fn name(&self) -> &'static str {
        "MC146818A RTC"
    }

    fn pio_read(&mut self, _region: usize, offset: u16, _size: u8, cx: &mut IoCtx) -> u32 {
        if offset != 1 {
            return INDEX_READ as u32;
        }
        self.settle(cx.now);
        let v = self.read_data(cx.now);
        self.sync(cx);
        v as u32
    }

    fn pio_write(&mut self, _region: usize, offset: u16, _size: u8, value: u32, cx: &mut IoCtx) {
        let value = value as u8;
        match offset {
            0 => {
                self.stats.index_writes += 1;
                self.index = value & 0x7F;
                self.nmi_masked = value & 0x80 != 0;
            }
            1 => {
                // Events before the write happen under the old settings.
                self.settle(cx.now);
                self.write_data(value, cx.now);
                self.sync(cx);
            }
            _ => {}
        }
    }

    fn next_deadline(&self) -> Option<u64> {
        self.deadline
    }

    fn tick(&mut self, cx: &mut IoCtx) {
        self.settle(cx.now);
        self.sync(cx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_conversions_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2026, 1, 1) * SECONDS_PER_DAY, DEFAULT_START);
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert!((1..=12).contains(&m) && (1..=days_in_month(y, m)).contains(&d));
            assert_eq!(days_from_civil(y, m, d), days);
        }
        // A day past the month's end counts on.
        assert_eq!(days_from_civil(2023, 2, 29), days_from_civil(2023, 3, 1));
        // 2026-01-01 is a Thursday; 2000-01-01 a Saturday.
        assert_eq!(weekday(DEFAULT_START), 4);
        assert_eq!(weekday(days_from_civil(2000, 1, 1) * SECONDS_PER_DAY), 6);
    }

    #[test]
    fn leap_years() {
        assert!(is_leap(2000) && is_leap(2024) && !is_leap(1900) && !is_leap(2100));
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2100, 2), 28);
    }

    #[test]
    fn grid_helpers() {
        assert_eq!(grid_count(0, 32, 0, 32), 1);
        assert_eq!(grid_count(0, 32, 0, 31), 0);
        assert_eq!(grid_count(16, 32, -100, 100), 6);
        assert_eq!(grid_count(0, 32, 100, 50), 0);
        assert_eq!(grid_after(0, 32, 0), 32);
        assert_eq!(grid_after(16, 32, -17), -16);
        assert_eq!(tick_at(-1), -1);
        assert_eq!(tick_at(30_517), 0);
        assert_eq!(tick_at(30_518), 1);
        assert_eq!(tick_ns(1), 30_518);
    }

    #[test]
    fn clock_is_clamped_not_overflowed() {
        let rtc = Rtc::new(i64::MAX);
        assert_eq!(rtc.register(REG_CENTURY, 0), 0x99);
        let rtc = Rtc::new(i64::MIN);
        assert_eq!(rtc.register(REG_YEAR, 0), 0x00);
        assert_eq!(rtc.register(REG_CENTURY, 0), 0x00);
        // 584 years of virtual time later.
        assert_eq!(rtc.register(REG_CENTURY, u64::MAX), 0x05);
    }
}
