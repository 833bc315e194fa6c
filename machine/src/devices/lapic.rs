//! Intel local APIC (xAPIC) of CPU 0: its registers, priorities, timer and IPIs.
//!
//! Register-level model of the local APIC of a Pentium 4/Xeon-class CPU
//! (xAPIC, version 14h), after the Intel SDM Vol. 3A chapter "Advanced
//! Programmable Interrupt Controller (APIC)" (chapter 10; chapter 11 in
//! editions from 2023). Sections followed, by their chapter-10 numbers:
//! 10.4.1 and Table 10-1 (the register address map), 10.4.3 (enabling and
//! disabling), 10.4.4 (IA32_APIC_BASE), 10.4.6 (local APIC ID), 10.4.7.1-4
//! (the states after power-up, software disable, INIT, INIT de-assert),
//! 10.4.8 (version register), 10.5.1 (the LVT), 10.5.3 (ESR), 10.5.4 (the
//! timer), 10.6.1-2 (ICR, IPI destinations, logical and physical), 10.8.3
//! (TPR, PPR and APR), 10.8.4 (IRR, ISR, TMR), 10.8.5 (EOI), 10.9
//! (spurious interrupt). QEMU's hw/intc/apic.c and Bochs' cpu/apic.cc were
//! read for the behaviour the SDM leaves open; those choices are named below.
//!
//! Where it is. The board maps one 4 KiB region at 0xFEE00000 ([`LAPIC_BASE`])
//! and hands the guest's IA32_APIC_BASE MSR accesses to [`Lapic::apic_base`]
//! and [`Lapic::set_apic_base`]. Relocation is refused with
//! [`ApicBaseError::Relocation`] (one fixed mapping, as the board is built).
//!
//! No references to other chips. Everything from outside arrives by a call
//! and everything going out is queued for the board to take:
//! - in: [`Lapic::accept`] (an I/O APIC message), [`Lapic::set_lint`] (the
//!   LINT0/LINT1 pins), `tick` (the timer, in virtual time);
//! - out: [`Lapic::pending_vector`] / [`Lapic::acknowledge`] (the CPU's
//!   INTR and INTA), [`Lapic::lint0_extint`] and [`Lapic::extint_pending`]
//!   (the 8259A's path), [`Lapic::take_nmi`], [`Lapic::take_init`],
//!   [`Lapic::take_eoi_broadcasts`] (for the I/O APIC's `eoi`), and the
//!   record of IPIs sent to CPUs that do not exist.
//!
//! Board choice: power-on in virtual-wire mode. The SDM's power-up state
//! (10.4.7.1) masks every LVT entry, and SVR = 0FFh leaves the APIC software
//! disabled. A BIOS then programs LINT0 as ExtINT and LINT1 as NMI (MP spec
//! 3.6.2.2 "virtual wire mode"), so the 8259A pair reaches the CPU through
//! LINT0 and nothing else changes for 8259-only guests. ringlab has no BIOS
//! doing that before a multiboot kernel runs, so [`Lapic::new`] starts the
//! way QEMU's boot CPU does: SVR = 0FFh, LINT0 = 00000700h (ExtINT,
//! unmasked), LINT1 = 00000400h (NMI, unmasked), every other entry masked.
//! INIT and a global disable return to the SDM's state, LINT0 masked.
//!
//! The 8259A path. [`Lapic::lint0_extint`] is true when LINT0 is unmasked
//! with ExtINT delivery, or when the APIC is globally disabled (then LINT0
//! *is* the CPU's INTR pin and LINT1 its NMI pin). ExtINT has no priority in
//! the APIC: the board offers the CPU the 8259A's INTR when this is true,
//! before any APIC vector (QEMU's order), and takes the vector from the
//! 8259A's INTA. An I/O APIC pin in ExtINT mode (virtual wire through the
//! I/O APIC) instead sends an ExtINT message: [`Lapic::extint_pending`]
//! holds it until the board runs the 8259A's INTA and calls
//! [`Lapic::acknowledge_extint`].
//!
//! NMI. An NMI message, an NMI IPI to self, or a rising edge on a LINT pin
//! programmed for NMI delivery (LINT1 at power-on) latches one NMI that the
//! board takes with [`Lapic::take_nmi`]. INIT likewise: the APIC resets
//! itself (10.4.7.3: everything but the ID and IA32_APIC_BASE) and
//! [`Lapic::take_init`] tells the board to reset the CPU. SMI and start-up
//! messages are counted and ignored (no SMM; the BSP never waits for SIPI).
//!
//! Priorities (10.8.3.1). PPR = TPR when `TPR[7:4] >= ISRV[7:4]`, else
//! `ISRV[7:4]:0`, ISRV being the highest vector in service. A fixed
//! interrupt is offered to the CPU when its class `IRRV[7:4]` exceeds
//! `PPR[7:4]`, while
//! the APIC is software enabled. Vectors 0-15 are illegal: they set ESR bit
//! 6 (received) or 5 (sent) and never reach the IRR. INTA with nothing
//! deliverable left (TPR raised meanwhile) gives the spurious vector, sets
//! no ISR bit (10.9). EOI clears the highest ISR bit; if its TMR bit says it
//! was accepted level-triggered, the vector is queued as an EOI broadcast
//! for the I/O APIC (SVR bit 12, EOI-broadcast suppression, does not exist
//! on this version). The TMR bit is rewritten by each acceptance, as in
//! QEMU. Fixed messages arriving while software disabled are held in the
//! IRR and offered once enabled again (10.4.7.2 "held"; QEMU does the same).
//!
//! Software disable (SVR bit 8 written 0) sets every LVT mask bit and keeps
//! it set on later LVT writes until SVR bit 8 is written 1 (10.4.7.2). The
//! power-on state is not "explicitly cleared", so LINT0 stays unmasked then.
//!
//! The timer (10.5.4). Its input is the bus clock, which QEMU models as
//! 1 GHz: one count per virtual nanosecond at divide-by-1. ringlab does the
//! same, so a guest's calibration against the 8254 finds a 1 GHz bus and
//! counts stay exact integers of nanoseconds. The divide configuration
//! (bits 0, 1, 3) selects 2, 4, ..., 128 or 1. Like the 8254 model, the
//! count is computed from virtual time, never stepped: a running timer
//! keeps the instant its counter last held a known count; the current count
//! and the next expiry follow by integer arithmetic. A one-shot timer
//! expires `initial * divide` ns after the write of the initial count (the
//! SDM's count-to-zero; QEMU counts one more); a periodic one on the grid
//! `load + k * initial * divide` for ever, however late `tick` runs, and an
//! expiry that finds the vector still in the IRR is one interrupt, not two.
//! A new divide value or mode takes effect from the last count. Writing 0
//! stops the timer. TSC-deadline mode (timer mode 10b) is not offered
//! (CPUID.1:ECX bit 24 is clear), so bit 18 is reserved: it reads 0 and
//! mode 10b acts as one-shot, 11b as periodic, as in Bochs. While the timer
//! LVT is masked the counter keeps counting but [`Device::next_deadline`]
//! says nothing, so a masked timer never wakes the machine; its expiries
//! are settled (and lost) at the next register access.
//!
//! ICR (10.6.1). A write of the low half sends. Destinations that include
//! this APIC (self, all-including-self, a physical ID equal to its own, a
//! logical address matching LDR/DFR, broadcast) get the IPI; the rest of the
//! system has no CPUs, so IPIs to others are counted, their last
//! [`RECENT_IPIS`] ICR values kept for the trace, and dropped. No ESR send
//! accept error is raised: on an xAPIC those bits do not exist. INIT level
//! de-assert (trigger level, level 0) only synchronises arbitration IDs
//! (10.4.7.4) and does nothing here. Delivery status always reads idle.
//!
//! Accesses. The SDM wants 32-bit loads and stores at the 16-byte aligned
//! register addresses and calls anything else undefined. Here loads within
//! a register's first four bytes return those bytes (Bochs), the other 12
//! bytes of each 16-byte slot read 0, and stores that are not at the start
//! of a slot or narrower than 32 bits are dropped (QEMU); an 8-byte store
//! writes its low half. All of these are counted. Unimplemented offsets
//! (reserved lines of Table 10-1, LVT CMCI, 400h up) read 0 and set ESR
//! bit 7. The ESR follows 10.5.3: errors collect unseen until a write of
//! the ESR copies them into it and starts a new collection; each error also
//! raises the LVT error interrupt if it is unmasked. While the APIC is
//! globally disabled the region reads all-ones and ignores writes, as an
//! empty bus would (the processor "is functionally equivalent to one without
//! an on-chip APIC", 10.4.3).
//!
//! IA32_APIC_BASE (10.4.4). 0xFEE00900 at power-on: base FEE00000h, BSP
//! (bit 8, read-only), global enable (bit 11). Bits 0-7, 9 and 10 (x2APIC
//! is not offered) and bits 32 up (ringlab's CPUID gives no leaf 80000008h
//! and no PAE, so MAXPHYADDR is 32) are reserved: such a write is refused
//! with [`ApicBaseError::Reserved`] and the board raises #GP. Clearing
//! bit 11 returns the APIC to its power-up state (10.4.3: "may return to
//! the state described in 10.4.7.1"); setting it again re-enables the APIC
//! without a hardware reset, as FSB-era processors allow (10.4.3), with that
//! state (so LINT0 masked).

use std::collections::VecDeque;

use crate::bus::{all_ones, Device, IoCtx};

/// Where the local APIC's registers are (IA32_APIC_BASE at power-on).
pub const LAPIC_BASE: u64 = 0xFEE0_0000;
/// Size of the register page.
pub const LAPIC_SIZE: u64 = 0x1000;
/// How many ICR values of IPIs to absent CPUs are kept for the trace.
pub const RECENT_IPIS: usize = 8;
/// The bus clock the timer counts: 1 GHz, one count per nanosecond.
pub const BUS_HZ: u64 = 1_000_000_000;

// IA32_APIC_BASE (MSR 1Bh) fields.
const BASE_BSP: u64 = 1 << 8;
const BASE_ENABLE: u64 = 1 << 11;
const BASE_ADDRESS: u64 = 0xFFFF_F000;
/// Bits 0-7, 9, 10 (EXTD: no x2APIC) and 32-63 (MAXPHYADDR 32).
const BASE_RESERVED: u64 = !(BASE_ADDRESS | BASE_BSP | BASE_ENABLE);
const BASE_POWER_ON: u64 = LAPIC_BASE | BASE_BSP | BASE_ENABLE;

/// Version register: version 14h (xAPIC), highest LVT entry 5 (timer,
/// thermal, performance, LINT0, LINT1, error; no CMCI).
const VERSION: u32 = 0x0005_0014;

// Spurious-interrupt vector register.
const SVR_ENABLE: u32 = 1 << 8;
/// Vector, software enable, focus processor checking (bits 0-9).
const SVR_WRITABLE: u32 = 0x3FF;
const SVR_POWER_ON: u32 = 0xFF;

// LVT entries (10.5.1, Figure 10-8).
const LVT_VECTOR: u32 = 0xFF;
const LVT_DELIVERY_SHIFT: u32 = 8;
const LVT_POLARITY_LOW: u32 = 1 << 13;
const LVT_REMOTE_IRR: u32 = 1 << 14;
const LVT_LEVEL: u32 = 1 << 15;
const LVT_MASKED: u32 = 1 << 16;
const LVT_TIMER_PERIODIC: u32 = 1 << 17;
/// What a guest can set in each entry: vector, delivery mode where there is
/// one, polarity and trigger on the LINT pins, mask, timer mode bit 17.
const LVT_WRITABLE: [u32; LVT_COUNT] = [
    0x0003_00FF, // timer
    0x0001_07FF, // thermal
    0x0001_07FF, // performance counters
    0x0001_A7FF, // LINT0
    0x0001_A7FF, // LINT1
    0x0001_00FF, // error
];
const LVT_COUNT: usize = 6;
const LVT_TIMER: usize = 0;
const LVT_LINT0: usize = 3;
const LVT_ERROR: usize = 5;
/// The virtual-wire entries the board starts with (module comment).
const LINT0_POWER_ON: u32 = (DeliveryMode::ExtInt as u32) << LVT_DELIVERY_SHIFT;
const LINT1_POWER_ON: u32 = (DeliveryMode::Nmi as u32) << LVT_DELIVERY_SHIFT;

// Error status register bits (10.5.3, Figure 10-9).
const ESR_SEND_ILLEGAL_VECTOR: u32 = 1 << 5;
const ESR_RECEIVE_ILLEGAL_VECTOR: u32 = 1 << 6;
const ESR_ILLEGAL_REGISTER: u32 = 1 << 7;

// Interrupt command register (10.6.1, Figure 10-12).
const ICR_LOW_WRITABLE: u32 = 0x000C_CFFF;
const ICR_HIGH_WRITABLE: u32 = 0xFF00_0000;
const ICR_LOGICAL: u32 = 1 << 11;
const ICR_ASSERT: u32 = 1 << 14;
const ICR_LEVEL: u32 = 1 << 15;
const ICR_SHORTHAND_SHIFT: u32 = 18;

/// DFR bits 0-27 are reserved and read as ones; bits 28-31 hold the model.
const DFR_RESERVED_ONES: u32 = 0x0FFF_FFFF;
const DFR_FLAT: u8 = 0xF;
const DFR_CLUSTER: u8 = 0x0;
/// Vectors 0-15 are reserved for exceptions: illegal in the APIC.
const FIRST_LEGAL_VECTOR: u8 = 16;
/// Destination 0xFF: every APIC (physical) or every APIC (logical).
const BROADCAST: u8 = 0xFF;
/// The divide configuration register's bits 0, 1 and 3.
const DIVIDE_WRITABLE: u32 = 0xB;
/// EOI broadcasts the board has not taken yet are kept up to this many.
const EOI_QUEUE_LIMIT: usize = 256;

/// How an interrupt message asks to be delivered (SDM 10.6.1, ICR bits
/// 10:8; the same encoding in the I/O APIC's redirection table and LVT).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum DeliveryMode {
    Fixed = 0,
    LowestPriority = 1,
    Smi = 2,
    Nmi = 4,
    Init = 5,
    StartUp = 6,
    ExtInt = 7,
}

impl DeliveryMode {
    /// The mode a 3-bit field encodes; `None` for the reserved 011b.
    pub fn from_bits(bits: u32) -> Option<DeliveryMode> {
        Some(match bits & 7 {
            0 => DeliveryMode::Fixed,
            1 => DeliveryMode::LowestPriority,
            2 => DeliveryMode::Smi,
            4 => DeliveryMode::Nmi,
            5 => DeliveryMode::Init,
            6 => DeliveryMode::StartUp,
            7 => DeliveryMode::ExtInt,
            _ => return None,
        })
    }
}

/// How the destination field is read (SDM 10.6.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum DestMode {
    /// An APIC ID (0xFF: all).
    Physical,
    /// A logical address matched against each APIC's LDR and DFR.
    Logical,
}

/// Edge or level triggered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum TriggerMode {
    Edge,
    Level,
}

/// An interrupt message on the APIC bus: what the I/O APIC sends and what
/// an IPI carries (SDM 10.6.1; 82093AA datasheet 3.2.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ApicMessage {
    pub vector: u8,
    pub delivery: DeliveryMode,
    pub dest_mode: DestMode,
    pub dest: u8,
    pub trigger: TriggerMode,
}

/// One of the two local interrupt pins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lint {
    Lint0 = 0,
    Lint1 = 1,
}

/// Where an interrupt in the IRR came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Timer,
    /// A message given to [`Lapic::accept`] (from the I/O APIC).
    IoApic,
    /// An IPI this APIC sent itself through the ICR.
    SelfIpi,
    /// A LINT pin in fixed delivery mode.
    Lint,
    /// The LVT error entry.
    Error,
    /// An ExtINT message: the vector comes from the 8259A.
    ExtInt,
}

/// Counts per [`Source`].
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SourceCounts {
    pub timer: u64,
    pub io_apic: u64,
    pub self_ipi: u64,
    pub lint: u64,
    pub error: u64,
    pub extint: u64,
}

impl SourceCounts {
    fn add(&mut self, s: Source) {
        match s {
            Source::Timer => self.timer += 1,
            Source::IoApic => self.io_apic += 1,
            Source::SelfIpi => self.self_ipi += 1,
            Source::Lint => self.lint += 1,
            Source::Error => self.error += 1,
            Source::ExtInt => self.extint += 1,
        }
    }
}

/// A register of a chip, for per-register access counts.
pub trait Register: Copy + 'static {
    /// Every register, in the order of their counters.
    const ALL: &'static [Self];
    /// The register's position in [`Register::ALL`].
    fn index(self) -> usize;
    /// A short name for statistics ("EOI", "ICR low").
    fn name(self) -> &'static str;
}

/// Reads and writes per register; serialized as a map from register name to
/// `{reads, writes}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterCounts<R: Register> {
    reads: Vec<u64>,
    writes: Vec<u64>,
    _r: std::marker::PhantomData<R>,
}

impl<R: Register> Default for RegisterCounts<R> {
    fn default() -> Self {
        RegisterCounts {
            reads: vec![0; R::ALL.len()],
            writes: vec![0; R::ALL.len()],
            _r: std::marker::PhantomData,
        }
    }
}

impl<R: Register> RegisterCounts<R> {
    pub fn reads(&self, r: R) -> u64 {
        self.reads[r.index()]
    }
    pub fn writes(&self, r: R) -> u64 {
        self.writes[r.index()]
    }
    /// (register, reads, writes) for every register.
    pub fn iter(&self) -> impl Iterator<Item = (R, u64, u64)> + '_ {
        R::ALL
            .iter()
            .map(|&r| (r, self.reads[r.index()], self.writes[r.index()]))
    }
    pub(crate) fn count(&mut self, r: R, write: bool) {
        let v = if write {
            &mut self.writes
        } else {
            &mut self.reads
        };
        v[r.index()] += 1;
    }
    pub(crate) fn count_reads(&mut self, r: R, n: u64) {
        self.reads[r.index()] += n;
    }
}

impl<R: Register> serde::Serialize for RegisterCounts<R> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        #[derive(serde::Serialize)]
        struct Rw {
            reads: u64,
            writes: u64,
        }
        let mut m = s.serialize_map(Some(R::ALL.len()))?;
        for (r, reads, writes) in self.iter() {
            m.serialize_entry(r.name(), &Rw { reads, writes })?;
        }
        m.end()
    }
}

/// The local APIC's registers (SDM Table 10-1), for access counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reg {
    Id,
    Version,
    Tpr,
    Apr,
    Ppr,
    Eoi,
    Rrd,
    Ldr,
    Dfr,
    Svr,
    Isr,
    Tmr,
    Irr,
    Esr,
    IcrLow,
    IcrHigh,
    LvtTimer,
    LvtThermal,
    LvtPerf,
    LvtLint0,
    LvtLint1,
    LvtError,
    TimerInitial,
    TimerCurrent,
    TimerDivide,
    /// Unimplemented offsets (ESR bit 7).
    Reserved,
}

impl Reg {
    /// The register at `offset` into the page (bits 3:0 ignored).
    pub fn at(offset: u64) -> Reg {
        match offset & 0xFF0 {
            0x020 => Reg::Id,
            0x030 => Reg::Version,
            0x080 => Reg::Tpr,
            0x090 => Reg::Apr,
            0x0A0 => Reg::Ppr,
            0x0B0 => Reg::Eoi,
            0x0C0 => Reg::Rrd,
            0x0D0 => Reg::Ldr,
            0x0E0 => Reg::Dfr,
            0x0F0 => Reg::Svr,
            0x100..=0x170 => Reg::Isr,
            0x180..=0x1F0 => Reg::Tmr,
            0x200..=0x270 => Reg::Irr,
            0x280 => Reg::Esr,
            0x300 => Reg::IcrLow,
            0x310 => Reg::IcrHigh,
            0x320 => Reg::LvtTimer,
            0x330 => Reg::LvtThermal,
            0x340 => Reg::LvtPerf,
            0x350 => Reg::LvtLint0,
            0x360 => Reg::LvtLint1,
            0x370 => Reg::LvtError,
            0x380 => Reg::TimerInitial,
            0x390 => Reg::TimerCurrent,
            0x3E0 => Reg::TimerDivide,
            _ => Reg::Reserved,
        }
    }
}

impl Register for Reg {
    const ALL: &'static [Reg] = &[
        Reg::Id,
        Reg::Version,
        Reg::Tpr,
        Reg::Apr,
        Reg::Ppr,
        Reg::Eoi,
        Reg::Rrd,
        Reg::Ldr,
        Reg::Dfr,
        Reg::Svr,
        Reg::Isr,
        Reg::Tmr,
        Reg::Irr,
        Reg::Esr,
        Reg::IcrLow,
        Reg::IcrHigh,
        Reg::LvtTimer,
        Reg::LvtThermal,
        Reg::LvtPerf,
        Reg::LvtLint0,
        Reg::LvtLint1,
        Reg::LvtError,
        Reg::TimerInitial,
        Reg::TimerCurrent,
        Reg::TimerDivide,
        Reg::Reserved,
    ];
    fn index(self) -> usize {
        self as usize
    }
    fn name(self) -> &'static str {
        match self {
            Reg::Id => "ID",
            Reg::Version => "version",
            Reg::Tpr => "TPR",
            Reg::Apr => "APR",
            Reg::Ppr => "PPR",
            Reg::Eoi => "EOI",
            Reg::Rrd => "RRD",
            Reg::Ldr => "LDR",
            Reg::Dfr => "DFR",
            Reg::Svr => "SVR",
            Reg::Isr => "ISR",
            Reg::Tmr => "TMR",
            Reg::Irr => "IRR",
            Reg::Esr => "ESR",
            Reg::IcrLow => "ICR low",
            Reg::IcrHigh => "ICR high",
            Reg::LvtTimer => "LVT timer",
            Reg::LvtThermal => "LVT thermal",
            Reg::LvtPerf => "LVT perf",
            Reg::LvtLint0 => "LVT LINT0",
            Reg::LvtLint1 => "LVT LINT1",
            Reg::LvtError => "LVT error",
            Reg::TimerInitial => "timer initial count",
            Reg::TimerCurrent => "timer current count",
            Reg::TimerDivide => "timer divide",
            Reg::Reserved => "reserved",
        }
    }
}

/// Counters for `--stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LapicStats {
    /// Guest accesses per register.
    pub registers: RegisterCounts<Reg>,
    /// Accesses that were not aligned 32-bit ones (module comment).
    pub odd_accesses: u64,
    /// Accesses while globally disabled (all-ones, ignored).
    pub disabled_accesses: u64,
    /// Interrupts that entered the IRR (ExtINT: were latched), by source.
    pub accepted: SourceCounts,
    /// Interrupts the CPU acknowledged, by source.
    pub delivered: SourceCounts,
    /// Interrupts that found their vector already in the IRR.
    pub coalesced: u64,
    /// INTA cycles answered with the spurious vector.
    pub spurious: u64,
    pub eois: u64,
    /// EOIs of level-triggered vectors, queued for the I/O APIC.
    pub eoi_broadcasts: u64,
    /// EOIs written with nothing in service.
    pub eois_without_isr: u64,
    pub nmis: u64,
    pub smis: u64,
    pub inits: u64,
    pub init_deasserts: u64,
    pub startups_ignored: u64,
    /// ICR writes (IPIs sent).
    pub ipis: u64,
    /// IPIs addressed (also) to CPUs that do not exist.
    pub ipis_to_absent: u64,
    /// Messages given to `accept` not addressed to this APIC.
    pub messages_not_for_us: u64,
    /// Messages given to `accept` while globally disabled.
    pub messages_while_disabled: u64,
    /// Errors recorded (ESR bits set).
    pub errors: u64,
    pub timer_expiries: u64,
    /// Expiries while the timer LVT was masked (no interrupt).
    pub timer_masked_expiries: u64,
    /// Expiries that shared one interrupt with the next (a late tick).
    pub timer_coalesced: u64,
    /// IA32_APIC_BASE writes refused.
    pub apic_base_refused: u64,
}

/// Why an IA32_APIC_BASE write was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApicBaseError {
    #[error(
        "IA32_APIC_BASE write {value:#x} would move the local APIC to {base:#x}: \
         relocation is not supported, it stays at {LAPIC_BASE:#x}"
    )]
    Relocation { value: u64, base: u64 },
    #[error("IA32_APIC_BASE write {value:#x} sets reserved bits {bits:#x} (#GP)")]
    Reserved { value: u64, bits: u64 },
}

/// 256 bits, one per vector (IRR, ISR, TMR).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Vectors([u32; 8]);

impl Vectors {
    fn get(&self, v: u8) -> bool {
        self.0[v as usize / 32] & (1 << (v % 32)) != 0
    }
    fn put(&mut self, v: u8, on: bool) {
        let w = &mut self.0[v as usize / 32];
        if on {
            *w |= 1 << (v % 32);
        } else {
            *w &= !(1 << (v % 32));
        }
    }
    fn highest(&self) -> Option<u8> {
        (0..8)
            .rev()
            .find(|&i| self.0[i] != 0)
            .map(|i| (i * 32 + 31 - self.0[i].leading_zeros() as usize) as u8)
    }
}

/// A running timer: at `start` the counter held `count` (> 0), and it
/// decrements every `div` ns; `next` is the first expiry not yet handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    start: u64,
    count: u32,
    div: u64,
    next: u64,
}

/// The divisor a divide configuration value selects (10.5.4, Figure 10-10).
fn divisor(cfg: u32) -> u64 {
    match (cfg & 3) | ((cfg >> 1) & 4) {
        7 => 1,
        n => 2 << n,
    }
}

/// The local APIC.
pub struct Lapic {
    /// IA32_APIC_BASE.
    base: u64,
    /// The ID the hardware assigns (restored by a global disable).
    hw_id: u8,
    id: u8,
    tpr: u8,
    ldr: u8,
    dfr_model: u8,
    svr: u32,
    irr: Vectors,
    isr: Vectors,
    tmr: Vectors,
    /// Where each IRR/ISR bit came from, for the statistics.
    source: [Source; 256],
    /// The ESR as the guest reads it, and errors seen since its last write.
    esr: u32,
    esr_pending: u32,
    icr_low: u32,
    icr_high: u32,
    lvt: [u32; LVT_COUNT],
    /// Electrical levels of LINT0 and LINT1.
    lint_level: [bool; 2],
    timer_initial: u32,
    timer_divide: u32,
    timer: Option<Run>,
    nmi: bool,
    init: bool,
    extint: bool,
    eoi_out: Vec<u8>,
    absent_ipis: VecDeque<u64>,
    stats: LapicStats,
}

impl Default for Lapic {
    fn default() -> Self {
        Self::new()
    }
}

impl Lapic {
    /// CPU 0's local APIC at power-on, as the board starts it (module
    /// comment: the SDM's state plus virtual-wire LINT0 and LINT1).
    pub fn new() -> Lapic {
        let mut a = Lapic {
            base: BASE_POWER_ON,
            hw_id: 0,
            id: 0,
            tpr: 0,
            ldr: 0,
            dfr_model: DFR_FLAT,
            svr: SVR_POWER_ON,
            irr: Vectors::default(),
            isr: Vectors::default(),
            tmr: Vectors::default(),
            source: [Source::IoApic; 256],
            esr: 0,
            esr_pending: 0,
            icr_low: 0,
            icr_high: 0,
            lvt: [LVT_MASKED; LVT_COUNT],
            lint_level: [false; 2],
            timer_initial: 0,
            timer_divide: 0,
            timer: None,
            nmi: false,
            init: false,
            extint: false,
            eoi_out: Vec::new(),
            absent_ipis: VecDeque::with_capacity(RECENT_IPIS),
            stats: LapicStats::default(),
        };
        a.power_on_lvts();
        a
    }

    /// A machine reset: the power-on state again; statistics are kept.
    pub fn reset(&mut self) {
        let stats = std::mem::take(&mut self.stats);
        *self = Lapic::new();
        self.stats = stats;
    }

    fn power_on_lvts(&mut self) {
        self.lvt[LVT_LINT0] = LINT0_POWER_ON;
        self.lvt[LVT_LINT0 + 1] = LINT1_POWER_ON;
    }

    /// The SDM's power-up register state (10.4.7.1), without the board's
    /// virtual-wire entries; the ID and IA32_APIC_BASE are left alone.
    fn architectural_reset(&mut self) {
        self.tpr = 0;
        self.ldr = 0;
        self.dfr_model = DFR_FLAT;
        self.svr = SVR_POWER_ON;
        self.irr = Vectors::default();
        self.isr = Vectors::default();
        self.tmr = Vectors::default();
        self.esr = 0;
        self.esr_pending = 0;
        self.icr_low = 0;
        self.icr_high = 0;
        self.lvt = [LVT_MASKED; LVT_COUNT];
        self.timer_initial = 0;
        self.timer_divide = 0;
        self.timer = None;
        self.nmi = false;
        self.extint = false;
    }

    /// INIT (10.4.7.3): every register as at power-up but the APIC ID.
    pub fn init_reset(&mut self) {
        self.architectural_reset();
    }

    /// The LVT timer's vector, unless the entry is masked.
    pub fn timer_vector(&self) -> Option<u8> {
        let lvt = self.lvt[LVT_TIMER];
        (lvt & LVT_MASKED == 0).then_some((lvt & LVT_VECTOR) as u8)
    }

    pub fn stats(&self) -> &LapicStats {
        &self.stats
    }

    /// The APIC ID (bits 31:24 of the ID register).
    pub fn id(&self) -> u8 {
        self.id
    }

    /// IA32_APIC_BASE bit 11.
    pub fn globally_enabled(&self) -> bool {
        self.base & BASE_ENABLE != 0
    }

    /// SVR bit 8.
    pub fn software_enabled(&self) -> bool {
        self.svr & SVR_ENABLE != 0
    }

    // ---- IA32_APIC_BASE -----------------------------------------------

    /// RDMSR IA32_APIC_BASE (1Bh).
    pub fn apic_base(&self) -> u64 {
        self.base
    }

    /// WRMSR IA32_APIC_BASE. On an error nothing changes: `Reserved` is a
    /// #GP for the board to raise, `Relocation` a request ringlab refuses.
    pub fn set_apic_base(&mut self, value: u64) -> Result<(), ApicBaseError> {
        let reserved = value & BASE_RESERVED;
        if reserved != 0 {
            self.stats.apic_base_refused += 1;
            return Err(ApicBaseError::Reserved {
                value,
                bits: reserved,
            });
        }
        let base = value & BASE_ADDRESS;
        if base != LAPIC_BASE {
            self.stats.apic_base_refused += 1;
            return Err(ApicBaseError::Relocation { value, base });
        }
        let enable = value & BASE_ENABLE != 0;
        if self.globally_enabled() && !enable {
            self.architectural_reset();
            self.id = self.hw_id;
        }
        self.base = (self.base & !BASE_ENABLE) | (value & BASE_ENABLE);
        Ok(())
    }

    // ---- interrupts in ------------------------------------------------

    /// A message from the APIC bus (the I/O APIC). Returns false when it is
    /// not addressed to this APIC, or the APIC is globally disabled.
    /// LowestPriority is Fixed here: this is the only CPU.
    pub fn accept(&mut self, msg: ApicMessage) -> bool {
        if !self.globally_enabled() {
            self.stats.messages_while_disabled += 1;
            return false;
        }
        if !self.is_destination(msg.dest_mode, msg.dest) {
            self.stats.messages_not_for_us += 1;
            return false;
        }
        let level = msg.trigger == TriggerMode::Level;
        self.deliver(msg.delivery, msg.vector, level, Source::IoApic);
        true
    }

    /// Drives LINT0 or LINT1 to an electrical `level`. What an asserted pin
    /// does depends on its LVT entry (polarity, trigger, delivery mode);
    /// ExtINT does nothing here (see [`Lapic::lint0_extint`]). While the
    /// APIC is globally disabled LINT1 is the CPU's NMI pin.
    pub fn set_lint(&mut self, pin: Lint, level: bool) {
        let i = LVT_LINT0 + pin as usize;
        let was = self.lint_asserted(pin);
        self.lint_level[pin as usize] = level;
        let now = self.lint_asserted(pin);
        if !self.globally_enabled() {
            if pin == Lint::Lint1 && now && !was {
                self.raise_nmi();
            }
            return;
        }
        let lvt = self.lvt[i];
        if lvt & LVT_MASKED != 0 {
            return;
        }
        let rising = now && !was;
        match DeliveryMode::from_bits(lvt >> LVT_DELIVERY_SHIFT) {
            Some(DeliveryMode::Fixed) if self.lint_level_triggered(pin) => self.service_lint(pin),
            Some(DeliveryMode::Fixed) if rising => {
                self.set_irr((lvt & LVT_VECTOR) as u8, false, Source::Lint);
            }
            Some(DeliveryMode::Nmi) if rising => self.raise_nmi(),
            Some(DeliveryMode::Smi) if rising => self.stats.smis += 1,
            Some(DeliveryMode::Init) if rising => self.do_init(),
            _ => {}
        }
    }

    fn lint_asserted(&self, pin: Lint) -> bool {
        let low = self.lvt[LVT_LINT0 + pin as usize] & LVT_POLARITY_LOW != 0;
        self.lint_level[pin as usize] != low
    }

    /// LINT1 is always edge-sensitive (10.5.1: level is not supported).
    fn lint_level_triggered(&self, pin: Lint) -> bool {
        pin == Lint::Lint0 && self.lvt[LVT_LINT0] & LVT_LEVEL != 0
    }

    /// A level-triggered fixed LINT0: asserted and not awaiting its EOI
    /// (remote IRR clear) sends it again.
    fn service_lint(&mut self, pin: Lint) {
        let i = LVT_LINT0 + pin as usize;
        let lvt = self.lvt[i];
        if lvt & (LVT_MASKED | LVT_REMOTE_IRR) == 0
            && self.lint_asserted(pin)
            && DeliveryMode::from_bits(lvt >> LVT_DELIVERY_SHIFT) == Some(DeliveryMode::Fixed)
            && self.set_irr((lvt & LVT_VECTOR) as u8, true, Source::Lint)
        {
            self.lvt[i] |= LVT_REMOTE_IRR;
        }
    }

    /// Acts on one interrupt addressed to this APIC.
    fn deliver(&mut self, mode: DeliveryMode, vector: u8, level: bool, source: Source) {
        match mode {
            DeliveryMode::Fixed | DeliveryMode::LowestPriority => {
                self.set_irr(vector, level, source);
            }
            DeliveryMode::Smi => self.stats.smis += 1,
            DeliveryMode::Nmi => self.raise_nmi(),
            DeliveryMode::Init => self.do_init(),
            DeliveryMode::StartUp => self.stats.startups_ignored += 1,
            DeliveryMode::ExtInt => {
                self.extint = true;
                self.stats.accepted.add(Source::ExtInt);
            }
        }
    }

    fn raise_nmi(&mut self) {
        self.nmi = true;
        self.stats.nmis += 1;
    }

    fn do_init(&mut self) {
        self.stats.inits += 1;
        self.init_reset();
        self.init = true;
    }

    /// Puts `vector` in the IRR (and TMR as `level`); false if illegal.
    fn set_irr(&mut self, vector: u8, level: bool, source: Source) -> bool {
        if vector < FIRST_LEGAL_VECTOR {
            self.error(ESR_RECEIVE_ILLEGAL_VECTOR);
            return false;
        }
        if self.irr.get(vector) {
            self.stats.coalesced += 1;
        }
        self.irr.put(vector, true);
        self.tmr.put(vector, level);
        self.source[vector as usize] = source;
        self.stats.accepted.add(source);
        true
    }

    /// Records an error (10.5.3) and raises the LVT error interrupt.
    fn error(&mut self, bits: u32) {
        self.stats.errors += 1;
        self.esr_pending |= bits;
        let lvt = self.lvt[LVT_ERROR];
        if lvt & LVT_MASKED == 0 && self.globally_enabled() {
            let v = (lvt & LVT_VECTOR) as u8;
            if v < FIRST_LEGAL_VECTOR {
                // Not through set_irr: that would report this error again.
                self.esr_pending |= ESR_RECEIVE_ILLEGAL_VECTOR;
            } else {
                self.set_irr(v, false, Source::Error);
            }
        }
    }

    // ---- interrupts out -----------------------------------------------

    /// PPR (10.8.3.1).
    pub fn ppr(&self) -> u8 {
        let isrv = self.isr.highest().unwrap_or(0);
        if self.tpr >> 4 >= isrv >> 4 {
            self.tpr
        } else {
            isrv & 0xF0
        }
    }

    /// APR (10.6.2.4, Figure 10-15).
    fn apr(&self) -> u8 {
        let tpr = self.tpr >> 4;
        let isrv = self.isr.highest().unwrap_or(0) >> 4;
        let irrv = self.irr.highest().unwrap_or(0) >> 4;
        if tpr >= irrv && tpr > isrv {
            self.tpr
        } else {
            (tpr & isrv).max(irrv) << 4
        }
    }

    /// The vector the CPU would get now: the highest in the IRR, if its
    /// priority class is above the PPR's and the APIC is enabled.
    pub fn pending_vector(&self) -> Option<u8> {
        if !self.globally_enabled() || !self.software_enabled() {
            return None;
        }
        self.irr.highest().filter(|&v| v >> 4 > self.ppr() >> 4)
    }

    /// The CPU's INTA: moves the vector from IRR to ISR and returns it, or
    /// returns the spurious vector (`SVR[7:0]`) when nothing is deliverable
    /// any more (10.9), touching no ISR bit.
    pub fn acknowledge(&mut self) -> u8 {
        match self.pending_vector() {
            Some(v) => {
                self.irr.put(v, false);
                self.isr.put(v, true);
                self.stats.delivered.add(self.source[v as usize]);
                v
            }
            None => {
                self.stats.spurious += 1;
                self.svr as u8
            }
        }
    }

    /// True when the CPU's INTR is the 8259A's: LINT0 unmasked in ExtINT
    /// mode, or the APIC globally disabled.
    pub fn lint0_extint(&self) -> bool {
        if !self.globally_enabled() {
            return true;
        }
        let lvt = self.lvt[LVT_LINT0];
        lvt & LVT_MASKED == 0
            && DeliveryMode::from_bits(lvt >> LVT_DELIVERY_SHIFT) == Some(DeliveryMode::ExtInt)
    }

    /// An ExtINT message is waiting: the board should run the 8259A's INTA
    /// and then call [`Lapic::acknowledge_extint`].
    pub fn extint_pending(&self) -> bool {
        self.extint
    }

    /// The CPU took a vector from the 8259A through this APIC (an ExtINT
    /// message or the LINT0 path): clears the ExtINT latch and counts it.
    pub fn acknowledge_extint(&mut self) {
        self.extint = false;
        self.stats.delivered.add(Source::ExtInt);
    }

    /// Takes the latched NMI, if any.
    pub fn take_nmi(&mut self) -> bool {
        std::mem::take(&mut self.nmi)
    }

    /// Something waits for the board: an NMI, an INIT or EOI broadcasts.
    #[inline]
    pub fn has_outputs(&self) -> bool {
        self.nmi || self.init || !self.eoi_out.is_empty()
    }

    /// Takes the latched INIT, if any: the board resets the CPU (the APIC
    /// has already reset itself).
    pub fn take_init(&mut self) -> bool {
        std::mem::take(&mut self.init)
    }

    /// Vectors of level-triggered interrupts EOIed since the last call, in
    /// order: the board gives each to the I/O APIC's `eoi`.
    pub fn take_eoi_broadcasts(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.eoi_out)
    }

    /// ICR values (high half in bits 63:32) of the last IPIs sent to CPUs
    /// that do not exist, oldest first.
    pub fn recent_absent_ipis(&self) -> impl Iterator<Item = u64> + '_ {
        self.absent_ipis.iter().copied()
    }

    /// The IRR, ISR and TMR as 256-bit sets: bit v of word v / 32.
    pub fn irr(&self) -> [u32; 8] {
        self.irr.0
    }
    pub fn isr(&self) -> [u32; 8] {
        self.isr.0
    }
    pub fn tmr(&self) -> [u32; 8] {
        self.tmr.0
    }

    // ---- EOI and IPIs -------------------------------------------------

    fn eoi(&mut self) {
        self.stats.eois += 1;
        let Some(v) = self.isr.highest() else {
            self.stats.eois_without_isr += 1;
            return;
        };
        self.isr.put(v, false);
        if self.tmr.get(v) {
            self.stats.eoi_broadcasts += 1;
            if self.eoi_out.len() < EOI_QUEUE_LIMIT {
                self.eoi_out.push(v);
            }
        }
        for pin in [Lint::Lint0, Lint::Lint1] {
            let i = LVT_LINT0 + pin as usize;
            if self.lvt[i] & LVT_REMOTE_IRR != 0 && (self.lvt[i] & LVT_VECTOR) as u8 == v {
                self.lvt[i] &= !LVT_REMOTE_IRR;
                self.service_lint(pin);
            }
        }
    }

    /// Does a message for (`mode`, `dest`) address this APIC (10.6.2)?
    fn is_destination(&self, mode: DestMode, dest: u8) -> bool {
        match mode {
            DestMode::Physical => dest == BROADCAST || dest == self.id,
            DestMode::Logical => {
                dest == BROADCAST
                    || match self.dfr_model {
                        DFR_FLAT => dest & self.ldr != 0,
                        DFR_CLUSTER => dest >> 4 == self.ldr >> 4 && dest & self.ldr & 0xF != 0,
                        _ => false,
                    }
            }
        }
    }

    /// A write of ICR low: sends the IPI it describes.
    fn send_ipi(&mut self) {
        self.stats.ipis += 1;
        let icr = self.icr_low;
        let vector = icr as u8;
        let dest = (self.icr_high >> 24) as u8;
        let mode = DeliveryMode::from_bits(icr >> 8);
        let level = icr & ICR_LEVEL != 0;
        if mode == Some(DeliveryMode::Init) && level && icr & ICR_ASSERT == 0 {
            self.stats.init_deasserts += 1;
            return;
        }
        let dest_mode = if icr & ICR_LOGICAL != 0 {
            DestMode::Logical
        } else {
            DestMode::Physical
        };
        let (to_self, to_others) = match (icr >> ICR_SHORTHAND_SHIFT) & 3 {
            0 => {
                let me = self.is_destination(dest_mode, dest);
                let others = match dest_mode {
                    DestMode::Physical => dest != self.id,
                    DestMode::Logical => !me || dest == BROADCAST || dest & !self.ldr != 0,
                };
                (me, others)
            }
            1 => (true, false),
            2 => (true, true),
            _ => (false, true),
        };
        let fixed = matches!(
            mode,
            Some(DeliveryMode::Fixed | DeliveryMode::LowestPriority)
        );
        if fixed && vector < FIRST_LEGAL_VECTOR {
            self.error(ESR_SEND_ILLEGAL_VECTOR);
            return;
        }
        if to_others {
            self.stats.ipis_to_absent += 1;
            if self.absent_ipis.len() == RECENT_IPIS {
                self.absent_ipis.pop_front();
            }
            self.absent_ipis
                .push_back((self.icr_high as u64) << 32 | icr as u64);
        }
        match mode {
            // The ICR's trigger mode only matters to INIT level de-assert
            // (handled above): every IPI arrives edge-triggered (SDM Vol 3A
            // 10.6.1, "Trigger Mode"). Taken as level, a self-IPI would set
            // its TMR bit and its EOI be broadcast to the I/O APIC, clearing
            // the Remote IRR of whatever pin uses the same vector.
            Some(m) if to_self && m != DeliveryMode::ExtInt => {
                self.deliver(m, vector, false, Source::SelfIpi)
            }
            // ExtINT (111b) and 011b are reserved in the ICR.
            _ => {}
        }
    }

    // ---- the timer ----------------------------------------------------

    fn timer_periodic(&self) -> bool {
        self.lvt[LVT_TIMER] & LVT_TIMER_PERIODIC != 0
    }

    /// Handles every expiry up to `now` with the registers as they are.
    fn advance_timer(&mut self, now: u64) {
        let Some(mut run) = self.timer else {
            return;
        };
        if now < run.next {
            return;
        }
        let fired = if self.timer_periodic() {
            let period = self.timer_initial as u64 * run.div;
            let k = (now - run.next) / period + 1;
            run.next += k * period;
            self.timer = Some(run);
            k
        } else {
            self.timer = None;
            1
        };
        self.stats.timer_expiries += fired;
        let lvt = self.lvt[LVT_TIMER];
        if lvt & LVT_MASKED != 0 || !self.globally_enabled() {
            self.stats.timer_masked_expiries += fired;
        } else {
            self.stats.timer_coalesced += fired - 1;
            self.set_irr((lvt & LVT_VECTOR) as u8, false, Source::Timer);
        }
    }

    /// The current count at `now` (expiries up to `now` handled).
    fn current_count(&self, now: u64) -> u32 {
        let Some(run) = self.timer else {
            return 0;
        };
        let ticks = now.saturating_sub(run.start) / run.div;
        let ic = self.timer_initial as u64;
        if ticks < run.count as u64 {
            run.count - ticks as u32
        } else if ic != 0 {
            // Periodic, after reloads: each period counts ic down to 1.
            (ic - (ticks - run.count as u64) % ic) as u32
        } else {
            0
        }
    }

    /// Restarts the running count from its last decrement before `now`,
    /// counting every `div` ns from there (a new divide or mode).
    fn rebase_timer(&mut self, now: u64, div: u64) {
        if let Some(run) = self.timer {
            let at = run.start + (now.saturating_sub(run.start) / run.div) * run.div;
            let count = self.current_count(now).max(1);
            self.timer = Some(Run {
                start: at,
                count,
                div,
                next: at + count as u64 * div,
            });
        }
    }

    fn load_timer(&mut self, count: u32, now: u64) {
        self.timer_initial = count;
        let div = divisor(self.timer_divide);
        self.timer = (count != 0).then(|| Run {
            start: now,
            count,
            div,
            next: now + count as u64 * div,
        });
    }

    // ---- registers ----------------------------------------------------

    /// An MMIO read of `reg` (at `offset`) with the APIC globally
    /// enabled: `mmio_read` and `mmio_read_pure` past their checks.
    fn read_enabled(&mut self, reg: Reg, offset: u64, size: u8, cx: &mut IoCtx) -> u64 {
        self.advance_timer(cx.now);
        self.stats.registers.count(reg, false);
        let lane = offset & 0xF;
        if size != 4 || lane != 0 {
            self.stats.odd_accesses += 1;
        }
        if lane >= 4 {
            return 0;
        }
        let v = self.read_register(reg, offset, cx.now) as u64 >> (lane * 8);
        match size {
            1 => v & 0xFF,
            2 => v & 0xFFFF,
            _ => v,
        }
    }

    fn read_register(&mut self, reg: Reg, offset: u64, now: u64) -> u32 {
        if reg == Reg::Reserved {
            self.error(ESR_ILLEGAL_REGISTER);
            return 0;
        }
        self.peek_register(reg, offset, now)
    }

    /// What reading `reg` returns at `now`, without the read's effects
    /// (none but a reserved offset's ESR bit, which this leaves alone).
    fn peek_register(&self, reg: Reg, offset: u64, now: u64) -> u32 {
        let word = ((offset >> 4) & 7) as usize;
        match reg {
            Reg::Id => (self.id as u32) << 24,
            Reg::Version => VERSION,
            Reg::Tpr => self.tpr as u32,
            Reg::Apr => self.apr() as u32,
            Reg::Ppr => self.ppr() as u32,
            Reg::Eoi | Reg::Rrd => 0,
            Reg::Ldr => (self.ldr as u32) << 24,
            Reg::Dfr => (self.dfr_model as u32) << 28 | DFR_RESERVED_ONES,
            Reg::Svr => self.svr,
            Reg::Isr => self.isr.0[word],
            Reg::Tmr => self.tmr.0[word],
            Reg::Irr => self.irr.0[word],
            Reg::Esr => self.esr,
            Reg::IcrLow => self.icr_low,
            Reg::IcrHigh => self.icr_high,
            Reg::LvtTimer
            | Reg::LvtThermal
            | Reg::LvtPerf
            | Reg::LvtLint0
            | Reg::LvtLint1
            | Reg::LvtError => self.lvt[lvt_index(reg)],
            Reg::TimerInitial => self.timer_initial,
            Reg::TimerCurrent => self.current_count(now),
            Reg::TimerDivide => self.timer_divide,
            Reg::Reserved => 0,
        }
    }

    /// The register page as a read of each register at `now` would see it
    /// (each register's 32 bits at its 16-byte-aligned offset; the other
    /// 12 bytes, as a lane read beyond the first dword gives, and the
    /// reserved offsets read 0): what a hypervisor can map read-only for
    /// the guest so that reads need no exit (engine-kvm's shadow page).
    /// Nothing is counted or changed. `page` is 4096 bytes, zero where no
    /// register is: only the registers' dwords are written (so a page
    /// rendered into again and again costs some 50 register reads).
    pub fn render(&self, now: u64, page: &mut [u8]) {
        static REGISTERS: std::sync::OnceLock<Vec<(usize, Reg)>> = std::sync::OnceLock::new();
        let registers = REGISTERS.get_or_init(|| {
            (0..0x1000)
                .step_by(16)
                .map(|o| (o, Reg::at(o as u64)))
                .filter(|&(_, r)| r != Reg::Reserved)
                .collect()
        });
        for &(offset, reg) in registers {
            let v = self.peek_register(reg, offset as u64, now);
            page[offset..offset + 4].copy_from_slice(&v.to_le_bytes());
        }
    }

    fn write_register(&mut self, reg: Reg, value: u32, now: u64) {
        match reg {
            Reg::Id => self.id = (value >> 24) as u8,
            Reg::Tpr => self.tpr = value as u8,
            Reg::Eoi => self.eoi(),
            Reg::Ldr => self.ldr = (value >> 24) as u8,
            Reg::Dfr => self.dfr_model = (value >> 28) as u8,
            Reg::Svr => {
                self.svr = value & SVR_WRITABLE;
                if !self.software_enabled() {
                    for e in &mut self.lvt {
                        *e |= LVT_MASKED;
                    }
                }
            }
            Reg::Esr => {
                self.esr = self.esr_pending;
                self.esr_pending = 0;
            }
            Reg::IcrLow => {
                self.icr_low = value & ICR_LOW_WRITABLE;
                self.send_ipi();
            }
            Reg::IcrHigh => self.icr_high = value & ICR_HIGH_WRITABLE,
            Reg::LvtTimer
            | Reg::LvtThermal
            | Reg::LvtPerf
            | Reg::LvtLint0
            | Reg::LvtLint1
            | Reg::LvtError => self.write_lvt(lvt_index(reg), value, now),
            Reg::TimerInitial => self.load_timer(value, now),
            Reg::TimerDivide => {
                self.timer_divide = value & DIVIDE_WRITABLE;
                self.rebase_timer(now, divisor(self.timer_divide));
            }
            Reg::Reserved => self.error(ESR_ILLEGAL_REGISTER),
            // Read-only: version, APR, PPR, RRD, ISR, TMR, IRR, current count.
            _ => {}
        }
    }

    fn write_lvt(&mut self, i: usize, value: u32, now: u64) {
        let keep = self.lvt[i] & LVT_REMOTE_IRR;
        let mut v = (value & LVT_WRITABLE[i]) | keep;
        if !self.software_enabled() {
            v |= LVT_MASKED;
        }
        // An edge-triggered entry has no remote IRR.
        if v & LVT_LEVEL == 0 {
            v &= !LVT_REMOTE_IRR;
        }
        self.lvt[i] = v;
        if i == LVT_TIMER {
            let div = divisor(self.timer_divide);
            self.rebase_timer(now, div);
        } else if i == LVT_LINT0 && self.lint_level_triggered(Lint::Lint0) {
            self.service_lint(Lint::Lint0);
        }
    }
}

fn lvt_index(reg: Reg) -> usize {
    match reg {
        Reg::LvtTimer => 0,
        Reg::LvtThermal => 1,
        Reg::LvtPerf => 2,
        Reg::LvtLint0 => 3,
        Reg::LvtLint1 => 4,
        _ => LVT_ERROR,
    }
}

impl Device for Lapic {
    fn name(&self) -> &'static str {
        "local APIC"
    }

    fn mmio_register_name(&self, _region: usize, offset: u64) -> Option<&'static str> {
        Some(Reg::at(offset).name())
    }

    /// Every register but the timer's current count, which runs with time,
    /// reads without effect (the timer's expiry is settled up to the
    /// reading's time, and a stretch of translated code never runs past
    /// the timer's deadline).
    fn mmio_read_is_pure(&self, _region: usize, offset: u64) -> bool {
        self.globally_enabled() && Reg::at(offset) != Reg::TimerCurrent
    }

    fn mmio_read_pure(
        &mut self,
        _region: usize,
        offset: u64,
        size: u8,
        cx: &mut IoCtx,
    ) -> Option<u64> {
        // Within one register's 16 bytes (every read a driver makes), the
        // first byte's register is the last byte's.
        let last = offset + size as u64 - 1;
        let reg = Reg::at(offset);
        let same = offset >> 4 == last >> 4;
        if !self.globally_enabled()
            || reg == Reg::TimerCurrent
            || !same && Reg::at(last) == Reg::TimerCurrent
        {
            return None;
        }
        Some(self.read_enabled(reg, offset, size, cx))
    }

    /// The ID and version registers, read whole (what xv6's `mycpu`
    /// reads on every spinlock): they change only through a write to the
    /// page (ID) or IA32_APIC_BASE (whether the page answers at all, by
    /// `Bus::get_mut`), never with time.
    fn mmio_read_is_stable(&self, _region: usize, offset: u64, size: u8) -> bool {
        size == 4 && matches!(offset, 0x20 | 0x30) && self.globally_enabled()
    }

    fn count_stable_reads(&mut self, _region: usize, offset: u64, _size: u8, n: u64) {
        self.stats.registers.count_reads(Reg::at(offset), n);
    }

    fn mmio_read(&mut self, _region: usize, offset: u64, size: u8, cx: &mut IoCtx) -> u64 {
        if !self.globally_enabled() {
            self.stats.disabled_accesses += 1;
            return all_ones(size) as u64 | if size == 8 { u64::MAX } else { 0 };
        }
        self.read_enabled(Reg::at(offset), offset, size, cx)
    }

    fn mmio_write(&mut self, _region: usize, offset: u64, size: u8, value: u64, cx: &mut IoCtx) {
        if !self.globally_enabled() {
            self.stats.disabled_accesses += 1;
            return;
        }
        self.advance_timer(cx.now);
        let reg = Reg::at(offset);
        self.stats.registers.count(reg, true);
        if size != 4 || offset & 0xF != 0 {
            self.stats.odd_accesses += 1;
            if size < 4 || offset & 0xF != 0 {
                return;
            }
        }
        self.write_register(reg, value as u32, cx.now);
    }

    fn next_deadline(&self) -> Option<u64> {
        let run = self.timer?;
        (self.lvt[LVT_TIMER] & LVT_MASKED == 0 && self.globally_enabled()).then_some(run.next)
    }

    fn tick(&mut self, cx: &mut IoCtx) {
        self.advance_timer(cx.now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divide_configuration_encodings() {
        // Figure 10-10: bits 3, 1, 0.
        let table = [
            (0b0000, 2),
            (0b0001, 4),
            (0b0010, 8),
            (0b0011, 16),
            (0b1000, 32),
            (0b1001, 64),
            (0b1010, 128),
            (0b1011, 1),
        ];
        for (cfg, div) in table {
            assert_eq!(divisor(cfg), div, "cfg {cfg:#06b}");
        }
    }

    #[test]
    fn highest_vector() {
        let mut v = Vectors::default();
        assert_eq!(v.highest(), None);
        v.put(0x31, true);
        v.put(0xFE, true);
        assert_eq!(v.highest(), Some(0xFE));
        v.put(0xFE, false);
        assert_eq!(v.highest(), Some(0x31));
    }

    #[test]
    fn register_names_cover_all() {
        for (i, r) in Reg::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        assert_eq!(Reg::at(0x0B0).name(), "EOI");
        assert_eq!(Reg::at(0x2F0), Reg::Reserved);
        assert_eq!(Reg::at(0x3F0), Reg::Reserved);
    }

    #[test]
    fn every_register_but_the_current_count_reads_purely() {
        let mut l = Lapic::new();
        assert!(l.mmio_read_is_pure(0, 0x020), "ID");
        assert!(l.mmio_read_is_pure(0, 0x0F0), "SVR");
        assert!(l.mmio_read_is_pure(0, 0x100), "ISR");
        assert!(
            !l.mmio_read_is_pure(0, 0x390),
            "the current count runs with time"
        );
        // The read itself: the ID as mmio_read gives it; nothing for the
        // current count, nor for a read whose last byte is in it.
        let (mut irq, mut req) = (vec![], vec![]);
        let mut cx = IoCtx::new(0, &mut irq, &mut req);
        let id = l.mmio_read(0, 0x020, 4, &mut cx);
        assert_eq!(l.mmio_read_pure(0, 0x020, 4, &mut cx), Some(id));
        assert_eq!(l.mmio_read_pure(0, 0x390, 4, &mut cx), None);
        assert_eq!(l.mmio_read_pure(0, 0x38E, 4, &mut cx), None, "into it");
        assert_eq!(l.mmio_read_pure(0, 0x38C, 2, &mut cx), Some(0));
        // Globally disabled, a read counts as a disabled access: not pure.
        l.set_apic_base(LAPIC_BASE).unwrap();
        assert!(!l.mmio_read_is_pure(0, 0x020));
        assert_eq!(l.mmio_read_pure(0, 0x020, 4, &mut cx), None);
    }
}
