//! The local APIC and the 82093AA I/O APIC, through the `Device` interface
//! and their message APIs, after the Intel SDM Vol. 3A APIC chapter and
//! datasheet 290566; xv6's own initialization sequences included.

use machine::bus::{Device, IoCtx, Request};
use machine::devices::ioapic::{Ioapic, IoapicStats, IOAPIC_BASE};
use machine::devices::lapic::{
    ApicBaseError, ApicMessage, DeliveryMode, DestMode, Lapic, Lint, Reg, TriggerMode, LAPIC_BASE,
};

// Local APIC register offsets (SDM Table 10-1), as xv6 names them.
const ID: u64 = 0x20;
const VER: u64 = 0x30;
const TPR: u64 = 0x80;
const PPR: u64 = 0xA0;
const EOI: u64 = 0xB0;
const LDR: u64 = 0xD0;
const DFR: u64 = 0xE0;
const SVR: u64 = 0xF0;
const ISR: u64 = 0x100;
const TMR: u64 = 0x180;
const IRR: u64 = 0x200;
const ESR: u64 = 0x280;
const ICRLO: u64 = 0x300;
const ICRHI: u64 = 0x310;
const TIMER: u64 = 0x320;
const THERMAL: u64 = 0x330;
const PCINT: u64 = 0x340;
const LINT0: u64 = 0x350;
const LINT1: u64 = 0x360;
const ERROR: u64 = 0x370;
const TICR: u64 = 0x380;
const TCCR: u64 = 0x390;
const TDCR: u64 = 0x3E0;

const ENABLE: u32 = 0x100;
const MASKED: u32 = 0x10000;
const PERIODIC: u32 = 0x20000;
const X1: u32 = 0xB;
const DIV16: u32 = 0x3;

// xv6's traps.h.
const T_IRQ0: u32 = 32;
const IRQ_KBD: u32 = 1;
const IRQ_COM1: u32 = 4;
const IRQ_ERROR: u32 = 19;
const IRQ_SPURIOUS: u32 = 31;

/// A device with a clock.
struct Rig<D> {
    dev: D,
    now: u64,
    irq: Vec<(u8, bool)>,
    req: Vec<Request>,
}

impl<D: Device> Rig<D> {
    fn new(dev: D) -> Self {
        Rig {
            dev,
            now: 0,
            irq: vec![],
            req: vec![],
        }
    }

    fn read_sized(&mut self, offset: u64, size: u8) -> u64 {
        let mut cx = IoCtx::new(self.now, &mut self.irq, &mut self.req);
        self.dev.mmio_read(0, offset, size, &mut cx)
    }

    fn write_sized(&mut self, offset: u64, size: u8, value: u64) {
        let mut cx = IoCtx::new(self.now, &mut self.irq, &mut self.req);
        self.dev.mmio_write(0, offset, size, value, &mut cx);
    }

    fn read(&mut self, offset: u64) -> u32 {
        self.read_sized(offset, 4) as u32
    }

    fn write(&mut self, offset: u64, value: u32) {
        self.write_sized(offset, 4, value as u64);
    }

    /// Moves time to `ns`, ticking whenever the deadline passes, as the bus
    /// does.
    fn run_to(&mut self, ns: u64) {
        self.now = ns;
        while let Some(d) = self.dev.next_deadline() {
            if d > self.now {
                break;
            }
            let mut cx = IoCtx::new(self.now, &mut self.irq, &mut self.req);
            self.dev.tick(&mut cx);
        }
    }
}

type LapicRig = Rig<Lapic>;

impl LapicRig {
    fn lapic() -> Self {
        Rig::new(Lapic::new())
    }

    /// xv6's lapicw: the write, then a read of ID "to wait for it".
    fn lapicw(&mut self, reg: u64, value: u32) {
        self.write(reg, value);
        self.read(ID);
    }

    /// SVR: software enabled, spurious vector 0xFF.
    fn enable(&mut self) {
        self.write(SVR, ENABLE | 0xFF);
    }

    fn fixed(&mut self, vector: u8, trigger: TriggerMode) -> bool {
        self.dev.accept(ApicMessage {
            vector,
            delivery: DeliveryMode::Fixed,
            dest_mode: DestMode::Physical,
            dest: 0,
            trigger,
        })
    }

    /// Bit `v` of a 256-bit register (ISR, TMR, IRR) through MMIO.
    fn bit(&mut self, base: u64, v: u8) -> bool {
        self.read(base + 0x10 * (v as u64 / 32)) & (1 << (v % 32)) != 0
    }

    /// The ESR after the write that latches it.
    fn esr(&mut self) -> u32 {
        self.write(ESR, 0);
        self.read(ESR)
    }
}

#[test]
fn power_on_state() {
    let mut r = LapicRig::lapic();
    // Version 14h, highest LVT entry 5 (10.4.8).
    assert_eq!(r.read(VER), 0x0005_0014);
    assert_eq!(r.read(ID), 0);
    assert_eq!(r.read(SVR), 0xFF, "software disabled (10.4.7.1)");
    assert_eq!(r.read(TPR), 0);
    assert_eq!(r.read(PPR), 0);
    assert_eq!(r.read(LDR), 0);
    assert_eq!(r.read(DFR), 0xFFFF_FFFF);
    for lvt in [TIMER, THERMAL, PCINT, ERROR] {
        assert_eq!(r.read(lvt), MASKED, "LVT {lvt:#x}");
    }
    // The board's virtual-wire choice.
    assert_eq!(r.read(LINT0), 0x700);
    assert_eq!(r.read(LINT1), 0x400);
    for base in [ISR, TMR, IRR] {
        for i in 0..8 {
            assert_eq!(r.read(base + 0x10 * i), 0);
        }
    }
    assert_eq!(r.read(ICRLO), 0);
    assert_eq!(r.read(TICR), 0);
    assert_eq!(r.read(TCCR), 0);
    assert_eq!(r.read(TDCR), 0);
    assert_eq!(r.dev.apic_base(), 0xFEE0_0900);
    assert_eq!(LAPIC_BASE, 0xFEE0_0000);
    assert!(
        r.dev.lint0_extint(),
        "the 8259A reaches the CPU through LINT0"
    );
    assert_eq!(r.dev.pending_vector(), None);
    assert_eq!(r.dev.next_deadline(), None);
    assert_eq!(r.esr(), 0);
}

#[test]
fn software_enable_and_disable() {
    let mut r = LapicRig::lapic();
    // Disabled: a fixed interrupt is held in the IRR but not offered.
    assert!(r.fixed(0x40, TriggerMode::Edge));
    assert!(r.bit(IRR, 0x40));
    assert_eq!(r.dev.pending_vector(), None);
    r.enable();
    assert_eq!(r.read(SVR), 0x1FF);
    assert_eq!(r.dev.pending_vector(), Some(0x40));
    r.write(TIMER, 0x30);
    assert_eq!(r.read(TIMER), 0x30);
    // Clearing SVR bit 8 masks every LVT and keeps them masked (10.4.7.2).
    r.write(SVR, 0xFF);
    assert!(!r.dev.software_enabled());
    for lvt in [TIMER, THERMAL, PCINT, LINT0, LINT1, ERROR] {
        assert_ne!(r.read(lvt) & MASKED, 0, "LVT {lvt:#x}");
    }
    assert!(!r.dev.lint0_extint());
    r.write(LINT0, 0x700);
    assert_eq!(
        r.read(LINT0),
        0x10700,
        "unmasking is ignored while disabled"
    );
    r.enable();
    r.write(LINT0, 0x700);
    assert_eq!(r.read(LINT0), 0x700);
    assert!(r.dev.lint0_extint());
}

#[test]
fn tpr_holds_back_a_lower_class_until_it_drops() {
    let mut r = LapicRig::lapic();
    r.enable();
    r.write(TPR, 0x50);
    assert!(r.fixed(0x55, TriggerMode::Edge));
    // Class 5 is not above PPR's class 5 (10.8.3.1).
    assert_eq!(r.read(PPR), 0x50);
    assert_eq!(r.dev.pending_vector(), None);
    assert!(r.fixed(0x61, TriggerMode::Edge));
    assert_eq!(r.dev.pending_vector(), Some(0x61));
    assert_eq!(r.dev.acknowledge(), 0x61);
    r.write(EOI, 0);
    assert_eq!(r.dev.pending_vector(), None);
    r.write(TPR, 0x4F);
    assert_eq!(r.dev.pending_vector(), Some(0x55));
    assert_eq!(r.dev.acknowledge(), 0x55);
}

#[test]
fn priority_order_and_nesting() {
    let mut r = LapicRig::lapic();
    r.enable();
    r.fixed(0x30, TriggerMode::Edge);
    r.fixed(0x80, TriggerMode::Edge);
    assert_eq!(r.dev.pending_vector(), Some(0x80));
    assert_eq!(r.dev.acknowledge(), 0x80);
    assert!(r.bit(ISR, 0x80) && !r.bit(IRR, 0x80));
    // In service: PPR = ISRV's class, 0x30 waits.
    assert_eq!(r.read(PPR), 0x80);
    assert_eq!(r.dev.pending_vector(), None);
    // Same class as the one in service: waits too.
    r.fixed(0x8F, TriggerMode::Edge);
    assert_eq!(r.dev.pending_vector(), None);
    // A higher class nests.
    r.fixed(0x90, TriggerMode::Edge);
    assert_eq!(r.dev.acknowledge(), 0x90);
    assert!(r.bit(ISR, 0x80) && r.bit(ISR, 0x90));
    // EOI clears the highest ISR bit first.
    r.write(EOI, 0);
    assert!(r.bit(ISR, 0x80) && !r.bit(ISR, 0x90));
    assert_eq!(r.dev.pending_vector(), None);
    r.write(EOI, 0);
    assert!(!r.bit(ISR, 0x80));
    assert_eq!(r.dev.acknowledge(), 0x8F);
    r.write(EOI, 0);
    assert_eq!(r.dev.acknowledge(), 0x30);
    r.write(EOI, 0);
    // An EOI with nothing in service is harmless.
    r.write(EOI, 0);
    let s = r.dev.stats();
    assert_eq!(s.eois, 5);
    assert_eq!(s.eois_without_isr, 1);
    assert_eq!(s.registers.writes(Reg::Eoi), 5);
    assert_eq!(s.delivered.io_apic, 4);
    assert!(r.dev.take_eoi_broadcasts().is_empty(), "all edge-triggered");
}

#[test]
fn spurious_vector_when_tpr_rises_before_inta() {
    let mut r = LapicRig::lapic();
    r.write(SVR, ENABLE | 0x3F);
    r.fixed(0x41, TriggerMode::Edge);
    assert_eq!(r.dev.pending_vector(), Some(0x41));
    r.write(TPR, 0xF0);
    // 10.9: the spurious vector, no ISR bit.
    assert_eq!(r.dev.acknowledge(), 0x3F);
    assert!(!r.bit(ISR, 0x41) && r.bit(IRR, 0x41));
    assert_eq!(r.dev.stats().spurious, 1);
}

#[test]
fn level_triggered_eoi_is_broadcast() {
    let mut r = LapicRig::lapic();
    r.enable();
    r.fixed(0x41, TriggerMode::Level);
    r.fixed(0x42, TriggerMode::Edge);
    assert!(r.bit(TMR, 0x41) && !r.bit(TMR, 0x42));
    assert_eq!(r.dev.acknowledge(), 0x42);
    r.write(EOI, 0);
    assert!(r.dev.take_eoi_broadcasts().is_empty());
    assert_eq!(r.dev.acknowledge(), 0x41);
    r.write(EOI, 0);
    assert_eq!(r.dev.take_eoi_broadcasts(), vec![0x41]);
    assert!(r.dev.take_eoi_broadcasts().is_empty());
    assert_eq!(r.dev.stats().eoi_broadcasts, 1);
}

/// Found by the device fuzzer (tests/tests/fuzz_devices.rs): a self-IPI
/// with the ICR's trigger-mode bit set was accepted as level-triggered,
/// setting its TMR bit (left set after the EOI, so no reset of the
/// registers a guest can reach recovered it) and broadcasting its EOI to
/// the I/O APIC. The bit only matters to INIT level de-assert (SDM Vol 3A
/// 10.6.1): every other IPI is edge-triggered.
#[test]
fn self_ipis_are_edge_triggered_whatever_the_trigger_bit() {
    let mut r = LapicRig::lapic();
    r.enable();
    // Fixed, vector 0x41, level assert, trigger mode level, to self.
    r.write(ICRLO, 0x4_0000 | 0x8000 | 0x4000 | 0x41);
    assert!(r.bit(IRR, 0x41));
    assert!(!r.bit(TMR, 0x41), "a self-IPI is edge-triggered");
    assert_eq!(r.dev.acknowledge(), 0x41);
    r.write(EOI, 0);
    assert!(r.dev.take_eoi_broadcasts().is_empty());
}

#[test]
fn one_shot_timer_at_divide_1_and_16() {
    for (tdcr, div) in [(X1, 1u64), (DIV16, 16)] {
        let mut r = LapicRig::lapic();
        r.enable();
        r.write(TDCR, tdcr);
        r.write(TIMER, 0x40);
        r.now = 1000;
        r.write(TICR, 1000);
        let expiry = 1000 + 1000 * div;
        assert_eq!(r.dev.next_deadline(), Some(expiry), "divide {div}");
        // Halfway: 500 counts left.
        r.run_to(1000 + 500 * div);
        assert_eq!(r.read(TCCR), 500);
        // One count is `div` ns.
        r.run_to(1000 + 500 * div + div - 1);
        assert_eq!(r.read(TCCR), 500);
        r.run_to(1000 + 501 * div);
        assert_eq!(r.read(TCCR), 499);
        r.run_to(expiry - 1);
        assert_eq!(r.read(TCCR), 1);
        assert_eq!(r.dev.pending_vector(), None);
        r.run_to(expiry);
        assert_eq!(r.dev.pending_vector(), Some(0x40));
        assert_eq!(r.read(TCCR), 0);
        assert_eq!(r.read(TICR), 1000);
        assert_eq!(r.dev.next_deadline(), None);
        assert_eq!(r.dev.acknowledge(), 0x40);
        r.write(EOI, 0);
        r.run_to(expiry * 10);
        assert_eq!(r.dev.pending_vector(), None, "once");
        assert_eq!(r.dev.stats().accepted.timer, 1);
        assert_eq!(r.dev.stats().delivered.timer, 1);
    }
}

#[test]
fn periodic_timer_keeps_its_grid() {
    let mut r = LapicRig::lapic();
    r.enable();
    r.write(TDCR, 0x1); // divide by 4
    r.write(TIMER, PERIODIC | 0x40);
    r.now = 7;
    r.write(TICR, 250);
    let period = 1000;
    let n = 200;
    let mut interrupts = 0;
    for k in 1..=n {
        let d = r.dev.next_deadline().unwrap();
        assert_eq!(d, 7 + k * period, "period {k}");
        // The board may be late by anything less than a period.
        r.run_to(d + (k * 37) % period);
        while r.dev.pending_vector().is_some() {
            r.dev.acknowledge();
            interrupts += 1;
            r.write(EOI, 0);
        }
        // Current count reloads from the initial count each period.
        let t = r.now;
        assert_eq!(r.read(TCCR) as u64, 250 - ((t - 7) % period) / 4);
    }
    assert_eq!(interrupts, n);
    assert_eq!(r.dev.next_deadline(), Some(7 + (n + 1) * period));
    // A tick three and a half periods late is one interrupt, and the grid
    // stays.
    let d = r.dev.next_deadline().unwrap();
    r.run_to(d + 3 * period + period / 2);
    assert_eq!(r.dev.acknowledge(), 0x40);
    assert_eq!(r.dev.pending_vector(), None);
    assert_eq!(r.dev.stats().timer_coalesced, 3);
    assert_eq!(r.dev.next_deadline(), Some(d + 4 * period));
    // Writing 0 stops it.
    r.write(TICR, 0);
    assert_eq!(r.dev.next_deadline(), None);
    assert_eq!(r.read(TCCR), 0);
}

#[test]
fn masked_timer_counts_but_never_interrupts() {
    let mut r = LapicRig::lapic();
    r.enable();
    r.write(TDCR, X1);
    r.write(TIMER, MASKED | PERIODIC | 0x40);
    r.write(TICR, 1000);
    assert_eq!(r.dev.next_deadline(), None, "a masked timer does not wake");
    r.run_to(5250);
    assert_eq!(r.read(TCCR), 750);
    assert_eq!(r.dev.pending_vector(), None);
    // Unmasked: the next expiry on the grid, the masked ones lost.
    r.write(TIMER, PERIODIC | 0x40);
    assert_eq!(r.dev.next_deadline(), Some(6000));
    assert_eq!(r.dev.pending_vector(), None);
    assert_eq!(r.dev.stats().timer_masked_expiries, 5);
    r.run_to(6000);
    assert_eq!(r.dev.pending_vector(), Some(0x40));
}

#[test]
fn timer_mode_10b_is_one_shot_without_tsc_deadline() {
    let mut r = LapicRig::lapic();
    r.enable();
    r.write(TDCR, X1);
    r.write(TIMER, 0x40000 | 0x40);
    assert_eq!(r.read(TIMER), 0x40, "bit 18 is reserved");
    r.write(TICR, 100);
    r.run_to(100);
    assert_eq!(r.dev.pending_vector(), Some(0x40));
    assert_eq!(r.dev.next_deadline(), None);
}

#[test]
fn divide_change_takes_effect_from_the_current_count() {
    let mut r = LapicRig::lapic();
    r.enable();
    r.write(TDCR, X1);
    r.write(TIMER, 0x40);
    r.write(TICR, 1000);
    r.now = 400;
    r.write(TDCR, 0x0); // divide by 2: 600 counts left, 2 ns each
    assert_eq!(r.read(TCCR), 600);
    assert_eq!(r.dev.next_deadline(), Some(400 + 1200));
}

#[test]
fn self_ipi_through_the_icr() {
    let mut r = LapicRig::lapic();
    r.enable();
    // Shorthand "self".
    r.write(ICRLO, 0x4_0000 | 0x50);
    assert_eq!(r.dev.pending_vector(), Some(0x50));
    assert_eq!(r.read(ICRLO) & 0x1000, 0, "delivery status idle");
    assert_eq!(r.dev.acknowledge(), 0x50);
    r.write(EOI, 0);
    // Physical destination = own ID (0), no shorthand.
    r.write(ICRHI, 0);
    r.write(ICRLO, 0x51);
    assert_eq!(r.dev.acknowledge(), 0x51);
    r.write(EOI, 0);
    // Logical, flat model, matching LDR.
    r.write(LDR, 0x0100_0000);
    r.write(ICRHI, 0x0100_0000);
    r.write(ICRLO, 0x800 | 0x52);
    assert_eq!(r.dev.acknowledge(), 0x52);
    r.write(EOI, 0);
    assert_eq!(r.dev.stats().delivered.self_ipi, 3);
    assert_eq!(r.dev.stats().ipis_to_absent, 0);
    // An illegal vector is not sent: ESR "send illegal vector".
    r.write(ICRLO, 0x4_0000 | 0x05);
    assert_eq!(r.dev.pending_vector(), None);
    assert_eq!(r.esr(), 0x20);
    // NMI to self.
    r.write(ICRLO, 0x4_0000 | 0x400);
    assert!(r.dev.take_nmi());
    assert!(!r.dev.take_nmi());
}

#[test]
fn ipis_to_absent_cpus_are_recorded_and_dropped() {
    let mut r = LapicRig::lapic();
    r.enable();
    // xv6's lapicstartap for APIC ID 1: INIT assert, INIT de-assert, two
    // start-ups.
    let id1 = 1 << 24;
    r.write(ICRHI, id1);
    r.write(ICRLO, 0x500 | 0x8000 | 0x4000);
    r.write(ICRLO, 0x500 | 0x8000);
    for _ in 0..2 {
        r.write(ICRHI, id1);
        r.write(ICRLO, 0x600 | (0x7000 >> 12));
    }
    assert!(!r.dev.take_init(), "not for this CPU");
    let s = r.dev.stats();
    assert_eq!(s.ipis, 4);
    assert_eq!(s.init_deasserts, 1);
    assert_eq!(s.ipis_to_absent, 3);
    let recent: Vec<u64> = r.dev.recent_absent_ipis().collect();
    assert_eq!(
        recent,
        vec![
            0x0100_0000_0000_C500,
            0x0100_0000_0000_0607,
            0x0100_0000_0000_0607
        ]
    );
    assert_eq!(r.esr(), 0, "no send-accept error on an xAPIC");
    // Only the last few are kept.
    for v in 0..20 {
        r.write(ICRLO, 0xC_0000 | (0x40 + v));
    }
    assert_eq!(r.dev.recent_absent_ipis().count(), 8);
    assert_eq!(
        r.dev.recent_absent_ipis().last(),
        Some(0x0100_0000_000C_0053)
    );
    // Fixed to "all excluding self" did not reach this APIC.
    assert_eq!(r.dev.pending_vector(), None);
}

#[test]
fn illegal_vectors_set_esr_and_stay_out_of_the_irr() {
    let mut r = LapicRig::lapic();
    r.enable();
    r.write(ERROR, 0x33);
    assert!(r.fixed(0x05, TriggerMode::Edge));
    assert!(!r.bit(IRR, 0x05));
    // Errors show only after a write of the ESR (10.5.3).
    assert_eq!(r.read(ESR), 0);
    r.write(ESR, 0);
    assert_eq!(r.read(ESR), 0x40, "received illegal vector");
    r.write(ESR, 0);
    assert_eq!(r.read(ESR), 0);
    // The error LVT raised its interrupt.
    assert_eq!(r.dev.acknowledge(), 0x33);
    assert_eq!(r.dev.stats().delivered.error, 1);
    // An unimplemented register: ESR bit 7, reads 0.
    assert_eq!(r.read(0x2F0), 0);
    r.write(0x400, 1);
    assert_eq!(r.esr(), 0x80);
    assert_eq!(r.dev.stats().registers.reads(Reg::Reserved), 1);
}

#[test]
fn narrow_and_misaligned_accesses() {
    let mut r = LapicRig::lapic();
    assert_eq!(r.read_sized(VER, 1), 0x14);
    assert_eq!(r.read_sized(VER + 2, 1), 0x05);
    assert_eq!(r.read_sized(VER, 2), 0x0014);
    assert_eq!(r.read_sized(VER + 4, 4), 0, "bytes 4-15 of a slot");
    assert_eq!(r.read_sized(VER, 8), 0x0005_0014);
    // Narrow or misaligned stores are dropped, 8-byte ones write the low half.
    r.write_sized(TPR, 1, 0x20);
    r.write_sized(TPR + 4, 4, 0x20);
    assert_eq!(r.read(TPR), 0);
    r.write_sized(TPR, 8, 0xFFFF_FFFF_0000_0030);
    assert_eq!(r.read(TPR), 0x30);
    assert_eq!(r.dev.stats().odd_accesses, 8);
}

#[test]
fn apic_base_msr() {
    let mut r = LapicRig::lapic();
    let e = r.dev.set_apic_base(0xFEC0_0900).unwrap_err();
    assert_eq!(
        e,
        ApicBaseError::Relocation {
            value: 0xFEC0_0900,
            base: 0xFEC0_0000
        }
    );
    assert!(e.to_string().contains("relocation is not supported"), "{e}");
    assert!(matches!(
        r.dev.set_apic_base(0xFEE0_0D00),
        Err(ApicBaseError::Reserved { bits: 0x400, .. })
    ));
    assert!(r.dev.set_apic_base(0x1_FEE0_0900).is_err());
    assert_eq!(r.dev.apic_base(), 0xFEE0_0900);
    // Program something, then disable globally.
    r.enable();
    r.write(TPR, 0x20);
    r.fixed(0x40, TriggerMode::Edge);
    r.dev.set_apic_base(0xFEE0_0100).unwrap();
    assert_eq!(r.dev.apic_base(), 0xFEE0_0100);
    assert!(r.dev.lint0_extint(), "no APIC: the 8259A is the INTR");
    assert_eq!(r.dev.pending_vector(), None);
    assert!(!r.fixed(0x41, TriggerMode::Edge));
    assert_eq!(r.read(VER), 0xFFFF_FFFF, "nothing decodes the page");
    r.write(TPR, 0x30);
    // LINT1 is the NMI pin of an APIC-less CPU.
    r.dev.set_lint(Lint::Lint1, true);
    assert!(r.dev.take_nmi());
    // Re-enabled: the power-up state of 10.4.7.1, LINT0 masked.
    r.dev.set_apic_base(0xFEE0_0900).unwrap();
    assert_eq!(r.read(SVR), 0xFF);
    assert_eq!(r.read(TPR), 0);
    assert_eq!(r.read(LINT0), MASKED);
    assert_eq!(r.read(LINT1), MASKED);
    assert!(!r.bit(IRR, 0x40));
    assert!(!r.dev.lint0_extint());
    assert_eq!(r.dev.stats().apic_base_refused, 3);
}

#[test]
fn lint_pins_at_power_on() {
    let mut r = LapicRig::lapic();
    assert!(r.dev.lint0_extint());
    // LINT1 is NMI, edge-triggered: one NMI per rising edge.
    r.dev.set_lint(Lint::Lint1, true);
    r.dev.set_lint(Lint::Lint1, true);
    assert!(r.dev.take_nmi());
    assert!(!r.dev.take_nmi());
    r.dev.set_lint(Lint::Lint1, false);
    r.dev.set_lint(Lint::Lint1, true);
    assert!(r.dev.take_nmi());
    // LINT0 in ExtINT mode puts nothing in the IRR.
    r.dev.set_lint(Lint::Lint0, true);
    assert_eq!(r.dev.irr(), [0; 8]);
    // LINT0 as a level-triggered fixed interrupt: once per EOI while high.
    r.enable();
    r.write(LINT0, 0x8000 | 0x45);
    assert_eq!(r.read(LINT0), 0xC045, "remote IRR set");
    assert_eq!(r.dev.acknowledge(), 0x45);
    r.write(EOI, 0);
    assert_eq!(r.dev.acknowledge(), 0x45, "still asserted");
    r.dev.set_lint(Lint::Lint0, false);
    r.write(EOI, 0);
    assert_eq!(r.dev.pending_vector(), None);
    assert_eq!(r.read(LINT0), 0x8045);
}

#[test]
fn extint_message_goes_to_the_8259() {
    let mut r = LapicRig::lapic();
    r.enable();
    assert!(r.dev.accept(ApicMessage {
        vector: 0,
        delivery: DeliveryMode::ExtInt,
        dest_mode: DestMode::Physical,
        dest: 0,
        trigger: TriggerMode::Edge,
    }));
    assert!(r.dev.extint_pending());
    assert_eq!(r.dev.pending_vector(), None);
    r.dev.acknowledge_extint();
    assert!(!r.dev.extint_pending());
    assert_eq!(r.dev.stats().delivered.extint, 1);
}

#[test]
fn destinations() {
    let mut r = LapicRig::lapic();
    r.enable();
    let msg = |dest_mode, dest| ApicMessage {
        vector: 0x40,
        delivery: DeliveryMode::LowestPriority,
        dest_mode,
        dest,
        trigger: TriggerMode::Edge,
    };
    assert!(!r.dev.accept(msg(DestMode::Physical, 1)));
    assert!(r.dev.accept(msg(DestMode::Physical, 0xFF)));
    assert!(!r.dev.accept(msg(DestMode::Logical, 1)), "LDR is 0");
    r.write(LDR, 0x0200_0000);
    assert!(r.dev.accept(msg(DestMode::Logical, 0x03)));
    assert!(!r.dev.accept(msg(DestMode::Logical, 0x01)));
    // Cluster model: cluster 2, member bit 1.
    r.write(DFR, 0x0FFF_FFFF);
    r.write(LDR, 0x2100_0000);
    assert!(r.dev.accept(msg(DestMode::Logical, 0x21)));
    assert!(!r.dev.accept(msg(DestMode::Logical, 0x11)));
    // A new ID is matched from then on.
    r.write(ID, 0x0300_0000);
    assert!(r.dev.accept(msg(DestMode::Physical, 3)));
    assert_eq!(r.dev.stats().messages_not_for_us, 4);
}

#[test]
fn init_message_resets_the_apic() {
    let mut r = LapicRig::lapic();
    r.enable();
    r.write(ID, 0x0500_0000);
    r.write(TPR, 0x20);
    assert!(r.dev.accept(ApicMessage {
        vector: 0,
        delivery: DeliveryMode::Init,
        dest_mode: DestMode::Physical,
        dest: 5,
        trigger: TriggerMode::Edge,
    }));
    assert!(r.dev.take_init());
    assert_eq!(r.read(ID), 0x0500_0000, "ID kept (10.4.7.3)");
    assert_eq!(r.read(TPR), 0);
    assert_eq!(r.read(SVR), 0xFF);
    assert_eq!(r.read(LINT0), MASKED);
}

/// xv6's lapicinit (lapic.c), register for register.
fn xv6_lapicinit(r: &mut LapicRig) {
    r.lapicw(SVR, ENABLE | (T_IRQ0 + IRQ_SPURIOUS));
    r.lapicw(TDCR, X1);
    r.lapicw(TIMER, PERIODIC | T_IRQ0);
    r.lapicw(TICR, 10_000_000);
    r.lapicw(LINT0, MASKED);
    r.lapicw(LINT1, MASKED);
    if (r.read(VER) >> 16) & 0xFF >= 4 {
        r.lapicw(PCINT, MASKED);
    }
    r.lapicw(ERROR, T_IRQ0 + IRQ_ERROR);
    r.lapicw(ESR, 0);
    r.lapicw(ESR, 0);
    r.lapicw(EOI, 0);
    const BCAST: u32 = 0x0008_0000;
    const INIT: u32 = 0x0000_0500;
    const LEVEL: u32 = 0x0000_8000;
    const DELIVS: u32 = 0x0000_1000;
    r.lapicw(ICRHI, 0);
    r.lapicw(ICRLO, BCAST | INIT | LEVEL);
    let mut polls = 0;
    while r.read(ICRLO) & DELIVS != 0 {
        polls += 1;
        assert!(polls < 10, "delivery status never idle");
    }
    r.lapicw(TPR, 0);
}

#[test]
fn xv6_lapicinit_sequence() {
    let mut r = LapicRig::lapic();
    assert!(r.dev.lint0_extint(), "before: the 8259A through LINT0");
    r.now = 1_000;
    xv6_lapicinit(&mut r);
    assert!(!r.dev.lint0_extint(), "LINT0 masked: the 8259A is cut off");
    assert_eq!(r.read(SVR), 0x13F);
    assert_eq!(r.read(PCINT), MASKED);
    assert_eq!(r.read(ERROR), 51);
    // The INIT level de-assert broadcast only syncs arbitration IDs.
    assert!(!r.dev.take_init());
    assert_eq!(r.dev.stats().init_deasserts, 1);
    assert_eq!(r.dev.stats().ipis_to_absent, 0);
    assert_eq!(r.esr(), 0);
    // LINT1 masked: no NMI.
    r.dev.set_lint(Lint::Lint1, true);
    assert!(!r.dev.take_nmi());
    // The timer ticks every 10 ms of virtual time at 1 GHz, divide 1.
    assert_eq!(r.dev.next_deadline(), Some(1_000 + 10_000_000));
    r.run_to(1_000 + 10_000_000);
    assert_eq!(r.dev.acknowledge(), T_IRQ0 as u8);
    // trap(): lapiceoi().
    r.lapicw(EOI, 0);
    assert_eq!(r.dev.next_deadline(), Some(1_000 + 20_000_000));
    assert!(r.dev.take_eoi_broadcasts().is_empty());
    // Accesses per register, for the lesson on MMIO exits.
    let s = r.dev.stats();
    assert_eq!(s.registers.writes(Reg::Eoi), 2);
    assert_eq!(s.registers.writes(Reg::Esr), 3);
    // One ID read after each of xv6's 15 lapicw calls.
    assert_eq!(s.registers.reads(Reg::Id), 15);
    let json = serde_json::to_value(s).unwrap();
    assert_eq!(json["registers"]["EOI"]["writes"], 2);
}

// ---- the I/O APIC -------------------------------------------------------

type IoapicRig = Rig<Ioapic>;

const IOREGSEL: u64 = 0x00;
const IOWIN: u64 = 0x10;
const REG_ID: u32 = 0x00;
const REG_VER: u32 = 0x01;
const REG_ARB: u32 = 0x02;
const REG_TABLE: u32 = 0x10;
// xv6's ioapic.c.
const INT_DISABLED: u32 = 0x0001_0000;
const INT_LEVEL: u32 = 0x0000_8000;
const INT_ACTIVELOW: u32 = 0x0000_2000;

impl IoapicRig {
    fn ioapic() -> Self {
        Rig::new(Ioapic::new())
    }
    fn ioapicread(&mut self, reg: u32) -> u32 {
        self.write_sized(IOREGSEL, 4, reg as u64);
        self.read(IOWIN)
    }
    fn ioapicwrite(&mut self, reg: u32, data: u32) {
        self.write_sized(IOREGSEL, 4, reg as u64);
        self.write(IOWIN, data);
    }
    /// Programs pin `pin`'s entry (low half, then high half).
    fn route(&mut self, pin: u32, low: u32, high: u32) {
        self.ioapicwrite(REG_TABLE + 2 * pin, low);
        self.ioapicwrite(REG_TABLE + 2 * pin + 1, high);
    }
    fn messages(&mut self) -> Vec<ApicMessage> {
        self.dev.take_messages()
    }
    fn stats(&self) -> &IoapicStats {
        self.dev.stats()
    }
}

fn edge(vector: u8, dest: u8) -> ApicMessage {
    ApicMessage {
        vector,
        delivery: DeliveryMode::Fixed,
        dest_mode: DestMode::Physical,
        dest,
        trigger: TriggerMode::Edge,
    }
}

#[test]
fn ioapic_registers() {
    let mut r = IoapicRig::ioapic();
    assert_eq!(IOAPIC_BASE, 0xFEC0_0000);
    assert_eq!(r.ioapicread(REG_VER), 0x0017_0011);
    assert_eq!(r.ioapicread(REG_ID), 0);
    r.ioapicwrite(REG_ID, 0xFF00_0000);
    assert_eq!(r.ioapicread(REG_ID), 0x0F00_0000, "4-bit ID");
    assert_eq!(r.ioapicread(REG_ARB), 0x0F00_0000, "loaded with the ID");
    r.ioapicwrite(REG_VER, 0);
    assert_eq!(r.ioapicread(REG_VER), 0x0017_0011, "read-only");
    assert_eq!(Ioapic::with_id(2).id(), 2);
    // Power-on: every entry masked.
    for pin in 0..24 {
        assert_eq!(r.ioapicread(REG_TABLE + 2 * pin), INT_DISABLED);
        assert_eq!(r.ioapicread(REG_TABLE + 2 * pin + 1), 0);
    }
    assert_eq!(r.ioapicread(0x40), 0, "past the table");
    // IOREGSEL reads back; IOWIN wants 32-bit accesses.
    r.write_sized(IOREGSEL, 1, 0x11);
    assert_eq!(r.read_sized(IOREGSEL, 1), 0x11);
    r.write_sized(IOWIN, 1, 0xFF);
    assert_eq!(r.read_sized(IOWIN, 1), 0);
    assert_eq!(r.read(IOWIN), 0);
    // Writable bits only: delivery status, remote IRR, reserved bits stay 0.
    r.route(5, 0xFFFF_FFFF, 0xFFFF_FFFF);
    assert_eq!(r.ioapicread(REG_TABLE + 10), 0x0001_AFFF);
    assert_eq!(r.ioapicread(REG_TABLE + 11), 0xFF00_0000);
    assert_eq!(r.dev.entry(5), 0xFF00_0000_0001_AFFF);
}

#[test]
fn ioapic_edge_pins_send_on_rising_edges_only() {
    let mut r = IoapicRig::ioapic();
    r.route(2, 0x20, 0);
    r.dev.set_irq(2, true);
    assert_eq!(r.messages(), vec![edge(0x20, 0)]);
    r.dev.set_irq(2, true);
    r.dev.set_irq(2, false);
    assert!(r.messages().is_empty());
    r.dev.set_irq(2, true);
    assert_eq!(r.messages().len(), 1);
    // The PIT's pulse: low then high.
    r.dev.set_irq(2, false);
    r.dev.set_irq(2, true);
    assert_eq!(r.messages().len(), 1);
    assert_eq!(r.stats().messages[2], 3);
    // An EOI does nothing for an edge pin.
    r.dev.eoi(0x20);
    assert!(r.messages().is_empty());
}

#[test]
fn ioapic_level_pins_wait_for_the_eoi() {
    let mut r = IoapicRig::ioapic();
    r.route(10, INT_LEVEL | 0x3A, 0);
    r.dev.set_irq(10, true);
    let level = ApicMessage {
        trigger: TriggerMode::Level,
        ..edge(0x3A, 0)
    };
    assert_eq!(r.messages(), vec![level]);
    assert_ne!(r.ioapicread(REG_TABLE + 20) & 0x4000, 0, "remote IRR");
    r.dev.set_irq(10, false);
    r.dev.set_irq(10, true);
    assert!(r.messages().is_empty(), "remote IRR holds it");
    r.dev.eoi(0x3B);
    assert!(r.messages().is_empty(), "another vector");
    // Still asserted: the EOI sends it again.
    r.dev.eoi(0x3A);
    assert_eq!(r.messages(), vec![level]);
    // Withdrawn before the EOI: nothing more.
    r.dev.set_irq(10, false);
    r.dev.eoi(0x3A);
    assert!(r.messages().is_empty());
    assert_eq!(r.ioapicread(REG_TABLE + 20) & 0x4000, 0);
    assert_eq!(r.stats().remote_irr_cleared, 2);
    // Active low: the idle-high line is deasserted, low asserts.
    r.dev.set_irq(11, true);
    r.route(11, INT_LEVEL | INT_ACTIVELOW | 0x3C, 0);
    assert!(r.messages().is_empty());
    r.dev.set_irq(11, false);
    assert_eq!(r.messages().len(), 1);
    // Switching to edge clears remote IRR (Linux relies on it).
    r.route(11, 0x3C, 0);
    assert_eq!(r.ioapicread(REG_TABLE + 22) & 0x4000, 0);
}

#[test]
fn ioapic_masked_pins() {
    let mut r = IoapicRig::ioapic();
    // An edge on a masked pin is ignored, not held.
    r.route(3, INT_DISABLED | 0x23, 0);
    r.dev.set_irq(3, true);
    r.route(3, 0x23, 0);
    assert!(r.messages().is_empty());
    assert_eq!(r.stats().masked_edges, 1);
    // A level pin asserted while masked sends when unmasked.
    r.route(9, INT_DISABLED | INT_LEVEL | 0x29, 0);
    r.dev.set_irq(9, true);
    assert!(r.messages().is_empty());
    r.route(9, INT_LEVEL | 0x29, 0);
    assert_eq!(r.messages().len(), 1);
    // Pins that do not exist are counted.
    r.dev.set_irq(24, true);
    assert_eq!(r.stats().bad_pins, 1);
    // NMI is edge-triggered even with the level bit set: no remote IRR.
    r.route(7, INT_LEVEL | 0x400, 0);
    r.dev.set_irq(7, true);
    r.dev.set_irq(7, true);
    let nmi = r.messages();
    assert_eq!(nmi.len(), 1);
    assert_eq!(
        (nmi[0].delivery, nmi[0].trigger),
        (DeliveryMode::Nmi, TriggerMode::Edge)
    );
    assert_eq!(r.dev.entry(7) & 0x4000, 0);
    r.dev.set_irq(7, false);
    r.dev.set_irq(7, true);
    assert_eq!(r.messages().len(), 1);
    // Reserved delivery mode 011b sends nothing.
    r.route(4, 0x300 | 0x24, 0);
    r.dev.set_irq(4, true);
    assert!(r.messages().is_empty());
    assert_eq!(r.stats().reserved_mode, 1);
}

#[test]
fn xv6_ioapicinit_and_ioapicenable() {
    let mut r = IoapicRig::ioapic();
    // ioapicinit.
    let maxintr = (r.ioapicread(REG_VER) >> 16) & 0xFF;
    let id = r.ioapicread(REG_ID) >> 24;
    assert_eq!((maxintr, id), (23, 0));
    for i in 0..=maxintr {
        r.ioapicwrite(REG_TABLE + 2 * i, INT_DISABLED | (T_IRQ0 + i));
        r.ioapicwrite(REG_TABLE + 2 * i + 1, 0);
    }
    // ioapicenable(IRQ_KBD, 0), ioapicenable(IRQ_COM1, 0).
    for irq in [IRQ_KBD, IRQ_COM1] {
        r.ioapicwrite(REG_TABLE + 2 * irq, T_IRQ0 + irq);
        r.ioapicwrite(REG_TABLE + 2 * irq + 1, 0);
    }
    assert_eq!(r.dev.entry(1), 33);
    assert_eq!(r.dev.entry(14), INT_DISABLED as u64 | 46);
    // The keyboard's IRQ1 reaches CPU 0's APIC as vector 33.
    r.dev.set_irq(1, true);
    let msgs = r.messages();
    assert_eq!(msgs, vec![edge(33, 0)]);
    r.dev.set_irq(14, true);
    assert!(r.messages().is_empty(), "IDE still masked");
    let mut apic = LapicRig::lapic();
    xv6_lapicinit(&mut apic);
    assert!(apic.dev.accept(msgs[0]));
    assert_eq!(apic.dev.acknowledge(), 33);
    let reads = r.stats().registers.iter().map(|(_, rd, _)| rd).sum::<u64>();
    assert_eq!(reads, 2);
}

#[test]
fn level_interrupt_round_trip() {
    // I/O APIC -> local APIC -> CPU -> EOI -> I/O APIC, as the board wires it.
    let mut io = IoapicRig::ioapic();
    let mut apic = LapicRig::lapic();
    apic.enable();
    io.route(9, INT_LEVEL | 0x29, 0);
    io.dev.set_irq(9, true);
    let mut delivered = 0;
    for _ in 0..3 {
        for m in io.messages() {
            assert!(apic.dev.accept(m));
        }
        assert_eq!(apic.dev.acknowledge(), 0x29);
        delivered += 1;
        apic.write(EOI, 0);
        for v in apic.dev.take_eoi_broadcasts() {
            io.dev.eoi(v);
        }
    }
    // The device withdraws its request in the handler of the third one.
    io.dev.set_irq(9, false);
    for m in io.messages() {
        apic.dev.accept(m);
    }
    assert_eq!(delivered, 3);
    assert_eq!(apic.dev.pending_vector(), Some(0x29), "sent on the 3rd EOI");
    apic.dev.acknowledge();
    apic.write(EOI, 0);
    for v in apic.dev.take_eoi_broadcasts() {
        io.dev.eoi(v);
    }
    assert!(io.messages().is_empty());
    assert_eq!(apic.dev.pending_vector(), None);
    assert_eq!(io.stats().messages[9], 4);
}

#[test]
fn arbitrary_guest_accesses_never_panic() {
    // A fixed xorshift sequence of accesses, sizes, values and pin changes.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut apic = LapicRig::lapic();
    let mut io = IoapicRig::ioapic();
    for _ in 0..200_000 {
        let r = next();
        let size = [1u8, 2, 4, 8][(r & 3) as usize];
        let value = next();
        apic.now += (r >> 60) * 97;
        match (r >> 2) & 15 {
            0..=4 => apic.write_sized((r >> 8) & 0xFFF, size, value),
            5..=7 => {
                apic.read_sized((r >> 8) & 0xFFF, size);
            }
            8 => io.write_sized((r >> 8) & 0x1F, size, value),
            9 => {
                io.read_sized((r >> 8) & 0x1F, size);
            }
            10 => io.dev.set_irq((r >> 8) as u8 % 26, value & 1 != 0),
            11 => {
                apic.dev.acknowledge();
            }
            12 => apic.dev.set_lint(
                if value & 2 != 0 {
                    Lint::Lint1
                } else {
                    Lint::Lint0
                },
                value & 1 != 0,
            ),
            13 => {
                let _ = apic
                    .dev
                    .set_apic_base(value & 0xFFFF_FFFF_FFFF_F9FF | 0x800);
            }
            _ => apic.run_to(apic.now + (value & 0xFFFF)),
        }
        for m in io.dev.take_messages() {
            apic.dev.accept(m);
        }
        for v in apic.dev.take_eoi_broadcasts() {
            io.dev.eoi(v);
        }
        apic.dev.take_nmi();
        apic.dev.take_init();
    }
}

#[test]
fn the_rendered_page_is_what_each_read_returns() {
    // A hypervisor's read-only shadow of the page (engine-kvm) must answer
    // every register as a read would: in a busy state, with the timer
    // counting, vectors requested and in service, an error latched.
    let mut r = LapicRig::lapic();
    r.enable();
    r.lapicw(TDCR, DIV16);
    r.lapicw(TIMER, PERIODIC | T_IRQ0);
    r.lapicw(TICR, 1_000_000);
    r.lapicw(TPR, 0x20);
    r.lapicw(LINT1, MASKED);
    assert!(r.fixed(0x41, TriggerMode::Edge));
    assert!(r.fixed(0x52, TriggerMode::Level));
    assert_eq!(r.dev.acknowledge(), 0x52);
    assert!(r.fixed(0x61, TriggerMode::Edge));
    r.write(ICRHI, 0x0500_0000);
    r.run_to(123_456_789);
    let mut page = vec![0u8; 4096];
    r.dev.render(r.now, &mut page);
    let word = |p: &[u8], o: usize| u32::from_le_bytes(p[o..o + 4].try_into().unwrap());
    for offset in (0..4096usize).step_by(16) {
        assert_eq!(
            &page[offset + 4..offset + 16],
            &[0u8; 12],
            "{offset:#x}: only the first dword of a register"
        );
        let rendered = word(&page, offset);
        if Reg::at(offset as u64) == Reg::Reserved {
            assert_eq!(rendered, 0, "{offset:#x}");
            continue;
        }
        assert_eq!(rendered, r.read(offset as u64), "{offset:#x}");
    }
    // The timer's count as of that instant, mid-period; nothing counted.
    let tccr = word(&page, TCCR as usize);
    assert!(tccr > 0 && tccr < 1_000_000, "{tccr}");
    assert_eq!(word(&page, ISR as usize + 0x20), 1 << (0x52 - 0x40));
    assert_eq!(word(&page, IRR as usize + 0x20), 1 << (0x41 - 0x40));
    assert_eq!(word(&page, IRR as usize + 0x30), 1 << (0x61 - 0x60));
    // Rendered again a moment later, only the count has moved.
    let mut again = page.clone();
    r.dev.render(r.now + 16_000, &mut again);
    for offset in (0..4096usize).step_by(4) {
        if offset != TCCR as usize {
            assert_eq!(word(&again, offset), word(&page, offset), "{offset:#x}");
        }
    }
    assert!(word(&again, TCCR as usize) < tccr);
    let before = r.dev.stats().registers.reads(Reg::Id);
    r.dev.render(r.now, &mut page);
    assert_eq!(
        r.dev.stats().registers.reads(Reg::Id),
        before,
        "rendering reads nothing"
    );
}
