//! Intel 8254 programmable interval timer (0x40-0x43) and the PC/AT's port 0x61.
//!
//! Register-level model of the 82C54 (Intel datasheet 231244, "82C54 CHMOS
//! Programmable Interval Timer"): three 16-bit down counters with their
//! count registers, output latches and status latches; the control word,
//! the counter latch command and the read-back command; binary and BCD
//! counting; modes 0-5 with their GATE behaviour. Port 0x40-0x42 are the
//! counters and 0x43 the control word register (region 0); port 0x61, the
//! AT's "system control port B", is region 1.
//!
//! Time. The counters run from the PC's 1.193182 MHz clock (14.31818 MHz /
//! 12), counted in *virtual* time: CLK edge k happens at the first virtual
//! nanosecond t with `ns_to_ticks(t, PIT_HZ) >= k`. A counter keeps the CLK
//! edge at which its counting element (CE) was loaded and the count; its CE
//! and OUT at any instant are computed from that and [`IoCtx::now`] with
//! integer arithmetic, never stepped, so reads are deterministic, nothing
//! runs per tick, and periodic output edges stay exactly on their
//! `load + k * N` grid however long the machine runs.
//!
//! "Loaded on the next CLK pulse" (datasheet, "Operation"): a count written
//! at time t is transferred to CE at the first CLK edge after t, and that
//! edge does not decrement it. GATE is sampled the same way: a trigger (a
//! rising GATE) loads CE at the next edge.
//!
//! IRQ0. Counter 0's OUT drives ISA line 0. The model delivers each rising
//! edge of OUT0 as a pulse ([`IoCtx::pulse_irq`]): mode 0 at terminal
//! count, mode 2 when OUT returns high at the reload (the end of the
//! one-clock low pulse), mode 3 at the start of each high half-period, mode
//! 4 after the strobe. The line is left high between edges, so an edge
//! stays requested in an edge-triggered 8259A until acknowledged (real
//! hardware would drop the request during mode 3's low half; no PC software
//! depends on that, and it would double the number of deadlines). If the
//! machine jumped over several edges (a halted CPU warping ahead, or a long
//! block), one pulse stands for all of them, as a real 8259A's IRR latches
//! only one, and the next deadline is the next edge on the grid after now.
//!
//! Gates. Counters 0 and 1 have GATE tied high; counter 2's GATE is port
//! 0x61 bit 0. Counter 2's OUT is readable at port 0x61 bit 5 (and, with
//! bit 1, drives the speaker, which is not modelled).
//!
//! Power-on. The datasheet leaves mode, count and OUT undefined. Every
//! counter starts as if control word "LSB then MSB, mode 3, binary" had
//! been written and no count yet: OUT high, not counting, null count set.
//! Nothing ticks until the guest programs a counter, so an idle machine has
//! no deadline (there is no BIOS here to start counter 0 at 18.2 Hz).
//!
//! Accesses wider than a byte act on the low byte; reads return it
//! zero-extended.

use crate::bus::{Device, IoCtx};
use crate::clock::{ns_to_ticks, ticks_to_ns};

/// The counters' input clock: 14.31818 MHz / 12.
pub const PIT_HZ: u64 = 1_193_182;

/// Counter 1 refreshes DRAM: the AT BIOS programs it in mode 2 with count
/// 18 (15.085 µs), and port 0x61 bit 4 toggles on every refresh request.
const REFRESH_TICKS: u64 = 18;

/// Port offsets in region 0.
const CONTROL: u16 = 3;

// Control word fields.
const CW_SC_SHIFT: u8 = 6;
const CW_SC_READ_BACK: u8 = 3;
const CW_RW_SHIFT: u8 = 4;
const CW_RW_LATCH: u8 = 0;
const CW_MODE_SHIFT: u8 = 1;
const CW_BCD: u8 = 0x01;
/// RW, mode and BCD: the bits the status byte reports back.
const CW_PROGRAM_BITS: u8 = 0x3F;
/// What every counter holds at power-on: LSB then MSB, mode 3, binary.
const POWER_ON_CONTROL: u8 = 0x36;

// Read-back command: COUNT and STATUS are active low; CNT2-0 select.
const RB_NO_COUNT: u8 = 0x20;
const RB_NO_STATUS: u8 = 0x10;
const RB_COUNTER0: u8 = 0x02;

// Status byte.
const STATUS_OUT: u8 = 0x80;
const STATUS_NULL_COUNT: u8 = 0x40;

// Port 0x61 (IBM AT Technical Reference, "System Control Port B").
const P61_GATE2: u8 = 0x01;
/// Gate 2, speaker data, parity check enable, channel check enable:
/// read back as written.
const P61_WRITABLE: u8 = 0x0F;
const P61_REFRESH: u8 = 0x10;
const P61_OUT2: u8 = 0x20;

/// Reading the control word register is a no-operation: the 82C54 leaves
/// the data bus floating.
const FLOATING_BUS: u8 = 0xFF;

const BINARY_MODULUS: u64 = 0x1_0000;
const BCD_MODULUS: u64 = 10_000;

/// Counters for `--stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PitStats {
    /// Pulses sent on IRQ0.
    pub irq0_pulses: u64,
    /// Pulses that stood for more than one rising edge of OUT0 (time jumped
    /// over a period or more).
    pub irq0_coalesced: u64,
    /// Control words, latch and read-back commands written to 0x43.
    pub commands: u64,
}

/// How a counter's count is read and written (control word RW1-RW0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Lsb,
    Msb,
    /// LSB then MSB.
    Word,
}

/// A stretch of counting with one count: CE was loaded at CLK edge
/// `anchor`, and `k` edges later the counter is at position `k + offset`
/// of its sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Segment {
    /// The count in effect (1-65536 binary, 1-10000 BCD).
    n: u32,
    anchor: u64,
    /// Mode 3: where in the period the segment starts (0, or the start of
    /// the low half when a new count took over there).
    offset: u64,
    /// GATE low stopped counting after this many edges (modes 0, 2, 3, 4).
    paused: Option<u64>,
}

/// A count written in mode 2 or 3 while counting: it takes over at the end
/// of the current period (mode 2) or half-period (mode 3).
#[derive(Clone, Copy, Debug)]
struct Pending {
    n: u32,
    at: u64,
    offset: u64,
}

/// Until when the status byte's Null Count bit is set: from a control word
/// or count write until the count register reaches CE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NullCount {
    /// Until this CLK edge (in the past once the count is loaded).
    Until(u64),
    /// Until a trigger (GATE rising) loads the count.
    UntilTrigger,
}

struct Counter {
    /// RW, mode and BCD as programmed (status byte bits 5-0).
    control: u8,
    mode: u8,
    bcd: bool,
    access: Access,
    gate: bool,
    /// The count register: the last complete count written.
    cr: u32,
    cr_written: bool,
    /// The LSB of a two-byte count, waiting for its MSB.
    write_lsb: Option<u8>,
    /// Two-byte reads: the MSB comes next.
    read_msb: bool,
    /// The output latch, when a latch command froze it.
    latched: Option<u16>,
    status: Option<u8>,
    null_count: NullCount,
    run: Option<Segment>,
    pending: Option<Pending>,
    /// CE and OUT while nothing counts, and before `run`'s anchor.
    frozen_ce: u32,
    frozen_out: bool,
}

impl Counter {
    fn new(gate: bool) -> Counter {
        let mut c = Counter {
            control: 0,
            mode: 0,
            bcd: false,
            access: Access::Word,
            gate,
            cr: 0,
            cr_written: false,
            write_lsb: None,
            read_msb: false,
            latched: None,
            status: None,
            null_count: NullCount::UntilTrigger,
            run: None,
            pending: None,
            frozen_ce: 0,
            frozen_out: true,
        };
        c.program(POWER_ON_CONTROL, 0);
        c
    }

    fn modulus(&self) -> u64 {
        if self.bcd {
            BCD_MODULUS
        } else {
            BINARY_MODULUS
        }
    }

    /// The counting segment in effect at edge `e` (a pending count that
    /// has taken over by then included).
    fn segment_at(&self, e: u64) -> Option<Segment> {
        match (self.run, self.pending) {
            (Some(_), Some(p)) if e >= p.at => Some(Segment {
                n: p.n,
                anchor: p.at,
                offset: p.offset,
                paused: None,
            }),
            (run, _) => run,
        }
    }

    /// Commits a pending count whose time has come.
    fn settle(&mut self, e: u64) {
        if self.pending.is_some_and(|p| e >= p.at) {
            self.run = self.segment_at(e);
            self.pending = None;
        }
    }

    /// CE (as a number, before BCD encoding) and OUT after edge `e`.
    fn state_at(&self, e: u64) -> (u32, bool) {
        match self.segment_at(e) {
            Some(s) if e >= s.anchor => {
                let k = s.paused.unwrap_or(e - s.anchor);
                let (ce, out) = sequence(self.mode, s.n, k + s.offset, self.modulus());
                // Modes 2 and 3: GATE low sets OUT high at once.
                let forced_high = s.paused.is_some() && matches!(self.mode, 2 | 3);
                (ce, out || forced_high)
            }
            _ => (self.frozen_ce, self.frozen_out),
        }
    }

    fn out_at(&self, e: u64) -> bool {
        self.state_at(e).1
    }

    /// CE as the counter's register holds it (BCD digits in BCD mode).
    fn register_at(&self, e: u64) -> u16 {
        let ce = self.state_at(e).0 as u64 % self.modulus();
        if self.bcd {
            to_bcd(ce as u32)
        } else {
            ce as u16
        }
    }

    fn null_count_at(&self, e: u64) -> bool {
        match self.null_count {
            NullCount::Until(x) => e < x,
            NullCount::UntilTrigger => true,
        }
    }

    fn status_at(&self, e: u64) -> u8 {
        let mut s = self.control;
        if self.out_at(e) {
            s |= STATUS_OUT;
        }
        if self.null_count_at(e) {
            s |= STATUS_NULL_COUNT;
        }
        s
    }

    /// The first rising edge of OUT at a CLK edge after `after`, within
    /// segment `s` alone. `out_before` is OUT before the anchor, when the
    /// load itself may raise it.
    fn segment_rise(&self, s: &Segment, after: u64, out_before: Option<bool>) -> Option<u64> {
        if s.paused.is_some() {
            return None;
        }
        let n = s.n as u64;
        if after < s.anchor
            && out_before == Some(false)
            && sequence(self.mode, s.n, s.offset, self.modulus()).1
        {
            return Some(s.anchor);
        }
        // The first k worth looking at (k = 0, the load, was just handled).
        let kmin = after.saturating_sub(s.anchor).saturating_add(1).max(1);
        let k = match self.mode {
            // OUT goes high at terminal count.
            0 | 1 => n,
            // OUT returns high one clock after the strobe.
            4 | 5 => n + 1,
            // Periodic: high again whenever the position wraps to 0.
            _ => {
                if n < 2 {
                    return None;
                }
                let r = (kmin + s.offset) % n;
                return Some(s.anchor + kmin + (n - r) % n);
            }
        };
        (k >= kmin).then_some(s.anchor + k)
    }

    /// The first rising edge of OUT at a CLK edge after `after`.
    fn next_rise_after(&self, after: u64) -> Option<u64> {
        let run = self.run?;
        let Some(p) = self.pending else {
            return self.segment_rise(&run, after, Some(self.frozen_out));
        };
        let next = Segment {
            n: p.n,
            anchor: p.at,
            offset: p.offset,
            paused: None,
        };
        if after >= p.at {
            return self.segment_rise(&next, after, None);
        }
        match self.segment_rise(&run, after, Some(self.frozen_out)) {
            Some(r) if r <= p.at => Some(r),
            _ => self.segment_rise(&next, p.at, None),
        }
    }

    /// Where a count written at edge `e` into running segment `s` takes
    /// over, and at which position of its sequence it starts.
    fn reload_point(&self, s: &Segment, e: u64, new_n: u32) -> Pending {
        let k = e - s.anchor;
        let n = s.n as u64;
        if self.mode == 2 {
            // The end of the current counting cycle.
            return Pending {
                n: new_n,
                at: s.anchor + (k / n + 1) * n,
                offset: 0,
            };
        }
        // Mode 3: the end of the current half-cycle.
        let high = n.div_ceil(2);
        let q = k + s.offset;
        let r = q % n;
        // Positions q - r + high and q - r + n are the next half-cycle
        // boundaries; both lie after q, so after the segment's start.
        if r < high && high < n {
            Pending {
                n: new_n,
                at: s.anchor + (q - r + high) - s.offset,
                offset: (new_n as u64).div_ceil(2),
            }
        } else {
            Pending {
                n: new_n,
                at: s.anchor + (q - r + n) - s.offset,
                offset: 0,
            }
        }
    }

    /// A control word for this counter (not a latch command): all control
    /// logic is reset, OUT goes to its mode's initial level (low in mode 0,
    /// high otherwise), and counting waits for a count.
    fn program(&mut self, value: u8, e: u64) {
        self.settle(e);
        let ce = self.state_at(e).0;
        self.control = value & CW_PROGRAM_BITS;
        self.access = match (value >> CW_RW_SHIFT) & 3 {
            1 => Access::Lsb,
            2 => Access::Msb,
            _ => Access::Word,
        };
        // M2 is a don't-care in modes 2 and 3 (codes 110 and 111).
        self.mode = match (value >> CW_MODE_SHIFT) & 7 {
            m @ 0..=5 => m,
            m => m & 3,
        };
        self.bcd = value & CW_BCD != 0;
        self.frozen_ce = ce;
        self.frozen_out = self.mode != 0;
        self.run = None;
        self.pending = None;
        self.cr_written = false;
        self.write_lsb = None;
        self.read_msb = false;
        self.latched = None;
        self.status = None;
        self.null_count = NullCount::UntilTrigger;
    }

    /// A counter latch command: the first one freezes the output latch
    /// until it is read; more before that are ignored.
    fn latch_count(&mut self, e: u64) {
        if self.latched.is_none() {
            self.latched = Some(self.register_at(e));
        }
    }

    /// Read-back status latch: likewise only the first counts.
    fn latch_status(&mut self, e: u64) {
        if self.status.is_none() {
            self.status = Some(self.status_at(e));
        }
    }

    fn write(&mut self, value: u8, e: u64) {
        match self.access {
            Access::Lsb => self.write_count(value as u16, e),
            Access::Msb => self.write_count((value as u16) << 8, e),
            Access::Word => match self.write_lsb.take() {
                Some(lsb) => self.write_count(lsb as u16 | (value as u16) << 8, e),
                None => {
                    self.write_lsb = Some(value);
                    // Mode 0: "writing the first byte disables counting.
                    // OUT is set low immediately". Other modes ignore it.
                    if self.mode == 0 {
                        self.settle(e);
                        self.frozen_ce = self.state_at(e).0;
                        self.frozen_out = false;
                        self.run = None;
                        self.pending = None;
                    }
                }
            },
        }
    }

    /// A complete count has been written to the count register.
    fn write_count(&mut self, raw: u16, e: u64) {
        self.settle(e);
        let n = decode_count(raw, self.bcd);
        let (ce, out) = self.state_at(e);
        self.cr = n;
        self.cr_written = true;
        let load_now = |c: &mut Counter, out: bool| {
            c.frozen_ce = ce;
            c.frozen_out = out;
            c.run = Some(Segment {
                n,
                anchor: e + 1,
                offset: 0,
                paused: (!c.gate).then_some(0),
            });
            c.pending = None;
            c.null_count = NullCount::Until(e + 1);
        };
        match self.mode {
            // Mode 0 restarts with OUT low; mode 4 restarts with OUT as it
            // is. Both load on the next CLK even with GATE low.
            0 => load_now(self, false),
            4 => load_now(self, out),
            2 | 3 => match self.run {
                Some(s) if s.paused.is_none() && e >= s.anchor => {
                    // Counting: the current sequence is not affected.
                    let p = self.reload_point(&s, e, n);
                    self.null_count = NullCount::Until(p.at);
                    self.pending = Some(p);
                }
                Some(ref mut s) if e < s.anchor => s.n = n, // not loaded yet
                Some(_) => self.null_count = NullCount::UntilTrigger,
                None => load_now(self, out),
            },
            // Modes 1 and 5 load only on a trigger.
            _ => self.null_count = NullCount::UntilTrigger,
        }
    }

    fn read(&mut self, e: u64) -> u8 {
        // With both latched, the status comes first.
        if let Some(s) = self.status.take() {
            return s;
        }
        let value = self.latched.unwrap_or_else(|| self.register_at(e));
        let (byte, last) = match self.access {
            Access::Lsb => (value as u8, true),
            Access::Msb => ((value >> 8) as u8, true),
            Access::Word => {
                let msb = self.read_msb;
                self.read_msb = !msb;
                (if msb { (value >> 8) as u8 } else { value as u8 }, msb)
            }
        };
        if last {
            self.latched = None;
        }
        byte
    }

    /// GATE changes at edge `e` (datasheet Figure "Gate Pin Operations").
    fn set_gate(&mut self, level: bool, e: u64) {
        if level == self.gate {
            return;
        }
        self.settle(e);
        self.gate = level;
        match self.mode {
            // GATE low suspends counting; high resumes it where it stopped.
            0 | 4 => {
                if let Some(s) = self.run.as_mut() {
                    if !level {
                        s.paused.get_or_insert(e.saturating_sub(s.anchor));
                    } else if let Some(k) = s.paused.take() {
                        s.anchor = s.anchor.max(e.saturating_sub(k));
                    }
                }
            }
            // GATE low stops counting and sets OUT high; a rising GATE
            // reloads the count register (with any new count) on the next
            // CLK.
            2 | 3 => {
                if !level {
                    let pending = self.pending.take();
                    if let Some(s) = self.run.as_mut() {
                        s.paused.get_or_insert(e.saturating_sub(s.anchor));
                    }
                    if pending.is_some() {
                        self.null_count = NullCount::UntilTrigger;
                    }
                } else {
                    self.trigger(e);
                }
            }
            // Modes 1 and 5: a rising GATE triggers; the level does not
            // matter.
            _ => {
                if level {
                    self.trigger(e);
                }
            }
        }
    }

    /// A trigger: the count register goes to CE on the next CLK.
    fn trigger(&mut self, e: u64) {
        if !self.cr_written {
            return;
        }
        let (ce, out) = self.state_at(e);
        self.frozen_ce = ce;
        self.frozen_out = out;
        self.run = Some(Segment {
            n: self.cr,
            anchor: e + 1,
            offset: 0,
            paused: None,
        });
        self.pending = None;
        if self.null_count_at(e) {
            self.null_count = NullCount::Until(e + 1);
        }
    }
}

/// CE and OUT at position `q` (edges since the load, plus the segment's
/// offset) of a mode's sequence with count `n` (datasheet, "Mode
/// Definitions").
fn sequence(mode: u8, n: u32, q: u64, modulus: u64) -> (u32, bool) {
    let n64 = n as u64;
    // One-shot modes keep counting down past zero, wrapping.
    let wrapped = || ((n64 % modulus + modulus - q % modulus) % modulus) as u32;
    match mode {
        // Mode 0: OUT low until terminal count, then high. Mode 1: the
        // same after a trigger.
        0 | 1 => (wrapped(), q >= n64),
        // Modes 4 and 5: OUT low for the one clock at which CE is 0.
        4 | 5 => (wrapped(), q != n64),
        // Mode 2: N, N-1, ..., 1 (OUT low while CE is 1), reload.
        2 => {
            let p = q % n64;
            ((n64 - p) as u32, p != n64 - 1)
        }
        // Mode 3: by twos, high for ceil(N/2) clocks and low for floor(N/2).
        // Even N: N, N-2, ..., 2 each half. Odd N: N-1, ..., 0 while high
        // (OUT falls one clock after the count expires), N-1, ..., 2 while
        // low (OUT rises as it expires).
        _ => {
            let p = q % n64;
            let high = n64.div_ceil(2);
            let start = if n64 & 1 == 0 { n64 } else { n64 - 1 };
            if p < high {
                ((start - 2 * p) as u32, true)
            } else {
                ((start - 2 * (p - high)) as u32, false)
            }
        }
    }
}

/// The count a raw register value stands for: 0 is the largest (65536, or
/// 10000 in BCD). BCD digits above 9 count at their binary weight.
fn decode_count(raw: u16, bcd: bool) -> u32 {
    let v = if bcd {
        (0..4)
            .map(|i| ((raw >> (4 * i)) & 0xF) as u32 * 10u32.pow(i))
            .sum()
    } else {
        raw as u32
    };
    match v {
        0 if bcd => BCD_MODULUS as u32,
        0 => BINARY_MODULUS as u32,
        v => v,
    }
}

fn to_bcd(v: u32) -> u16 {
    (0..4)
        .map(|i| (((v / 10u32.pow(i)) % 10) as u16) << (4 * i))
        .sum()
}

/// CLK edges from power-on up to virtual time `now`.
fn edges(now: u64) -> u64 {
    ns_to_ticks(now, PIT_HZ)
}

/// The three counters and port 0x61.
pub struct Pit {
    counters: [Counter; 3],
    /// Port 0x61 bits 0-3 as written.
    port61: u8,
    /// Rising edges of OUT0 up to this CLK edge have been delivered.
    irq0_done: u64,
    stats: PitStats,
}

impl Default for Pit {
    fn default() -> Self {
        Self::new()
    }
}

impl Pit {
    /// The power-on state described in the module comment.
    pub fn new() -> Pit {
        Pit {
            // Counters 0 and 1 have GATE tied high; port 0x61 starts at 0.
            counters: [Counter::new(true), Counter::new(true), Counter::new(false)],
            port61: 0,
            irq0_done: 0,
            stats: PitStats::default(),
        }
    }

    /// The input clock in Hz.
    pub fn frequency_hz() -> u64 {
        PIT_HZ
    }

    /// Counter `ch`'s OUT pin at virtual time `now`.
    pub fn channel_out(&self, ch: usize, now: u64) -> bool {
        self.counters[ch % 3].out_at(edges(now))
    }

    /// Counter `ch`'s counting element at virtual time `now`, as its
    /// register holds it (BCD digits in BCD mode; 0 for a full 65536).
    /// Unlike a guest read this touches no latch or flip-flop.
    pub fn count(&self, ch: usize, now: u64) -> u16 {
        self.counters[ch % 3].register_at(edges(now))
    }

    /// Counter `ch`'s GATE input.
    pub fn gate(&self, ch: usize) -> bool {
        self.counters[ch % 3].gate
    }

    /// Counter `ch`'s mode (0-5), as last programmed.
    pub fn mode(&self, ch: usize) -> u8 {
        self.counters[ch % 3].mode
    }

    pub fn stats(&self) -> &PitStats {
        &self.stats
    }

    /// Sends IRQ0 if OUT0 rose since the last delivery, once however many
    /// edges went by, and marks everything up to edge `e` delivered.
    fn deliver_irq0(&mut self, e: u64, cx: &mut IoCtx) {
        let c = &self.counters[0];
        if let Some(r) = c.next_rise_after(self.irq0_done).filter(|&r| r <= e) {
            cx.pulse_irq(0);
            self.stats.irq0_pulses += 1;
            if c.next_rise_after(r).is_some_and(|r2| r2 <= e) {
                self.stats.irq0_coalesced += 1;
            }
        }
        self.irq0_done = self.irq0_done.max(e);
        self.counters[0].settle(e);
    }

    fn command(&mut self, value: u8, e: u64) {
        self.stats.commands += 1;
        let sc = value >> CW_SC_SHIFT;
        if sc == CW_SC_READ_BACK {
            for (i, c) in self.counters.iter_mut().enumerate() {
                if value & (RB_COUNTER0 << i) == 0 {
                    continue;
                }
                if value & RB_NO_COUNT == 0 {
                    c.latch_count(e);
                }
                if value & RB_NO_STATUS == 0 {
                    c.latch_status(e);
                }
            }
            return;
        }
        let c = &mut self.counters[sc as usize];
        if (value >> CW_RW_SHIFT) & 3 == CW_RW_LATCH {
            c.latch_count(e);
        } else {
            c.program(value, e);
        }
    }

    fn read_port61(&self, now: u64) -> u8 {
        let e = edges(now);
        let mut v = self.port61;
        if (e / REFRESH_TICKS) & 1 == 1 {
            v |= P61_REFRESH;
        }
        if self.counters[2].out_at(e) {
            v |= P61_OUT2;
        }
        v
    }
}

impl Device for Pit {
    fn name(&self) -> &'static str {
        "8254 PIT"
    }

    fn pio_read(&mut self, region: usize, offset: u16, _size: u8, cx: &mut IoCtx) -> u32 {
        let e = edges(cx.now);
        let v = match (region, offset) {
            (0, 0..=2) => self.counters[offset as usize].read(e),
            (1, 0) => self.read_port61(cx.now),
            _ => FLOATING_BUS,
        };
        v as u32
    }

    fn pio_write(&mut self, region: usize, offset: u16, _size: u8, value: u32, cx: &mut IoCtx) {
        let e = edges(cx.now);
        // Edges that happened before this write are delivered first, in
        // order; the write then defines what comes next.
        self.deliver_irq0(e, cx);
        let out0 = self.counters[0].out_at(e);
        let value = value as u8;
        match (region, offset) {
            (0, 0..=2) => self.counters[offset as usize].write(value, e),
            (0, CONTROL) => self.command(value, e),
            (1, 0) => {
                self.port61 = value & P61_WRITABLE;
                self.counters[2].set_gate(value & P61_GATE2 != 0, e);
            }
            _ => {}
        }
        // A control word can raise OUT0 at once (mode 0's low OUT going to
        // another mode's high): that is an edge on IRQ0 too.
        if !out0 && self.counters[0].out_at(e) {
            cx.pulse_irq(0);
            self.stats.irq0_pulses += 1;
        }
    }

    fn next_deadline(&self) -> Option<u64> {
        self.counters[0]
            .next_rise_after(self.irq0_done)
            .map(|r| ticks_to_ns(r, PIT_HZ))
    }

    fn tick(&mut self, cx: &mut IoCtx) {
        self.deliver_irq0(edges(cx.now), cx);
    }
}
