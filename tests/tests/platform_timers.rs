//! The PC platform's timers and interrupt controllers from a driver's
//! side: the MC146818A's periodic and update interrupts against the 8254,
//! the local APIC's timer, TPR and priorities, and the I/O APIC routing
//! the ISA devices with the 8259A masked. Guests in tests/guests, run on
//! every engine with one transcript (tests::platform).
//!
//! Counts that depend on two timers' ratio are printed by the guests as
//! pass/fail against a tolerance (on KVM virtual time follows the host
//! clock). The guests also leave the counts themselves in RAM
//! ([`results`]), which the tests check exactly on the interpreter and the
//! translator, where virtual time makes them deterministic, so a verdict
//! cannot pass by accident.

use machine::Machine;
use ringlab::engines::EngineKind;
use tests::platform::run_everywhere_inspecting;

/// Where the guests keep their count of results and the results (words),
/// `nresults` and `results` in each guest.
const NRESULTS: u64 = 0x20_003C;
const RESULTS: u64 = 0x20_0040;

/// The counts a guest recorded, in order.
fn results(m: &Machine) -> Vec<u32> {
    let word = |a: u64| {
        let mut b = [0u8; 4];
        m.mem.read(a, &mut b).expect("results are in RAM");
        u32::from_le_bytes(b)
    };
    let n = word(NRESULTS).min(64) as u64;
    (0..n).map(|i| word(RESULTS + 4 * i)).collect()
}

/// Runs guest `name` everywhere and returns its transcript and each
/// engine's recorded counts.
fn run(name: &str, setup: &dyn Fn(&mut Machine)) -> (String, Vec<(EngineKind, Vec<u32>)>) {
    let mut counts = Vec::new();
    let t = run_everywhere_inspecting(name, setup, &mut |kind, m| counts.push((kind, results(m))));
    (t, counts)
}

/// Checks the counts: exactly `exact` on the engines that count
/// instructions; within `tolerance` (a fraction) of it on KVM.
fn check_counts(counts: &[(EngineKind, Vec<u32>)], exact: &[u32], tolerance: &[f64]) {
    for (kind, got) in counts {
        if kind.counts_instructions() {
            assert_eq!(got, exact, "{}: counts", kind.name());
        } else {
            // Shown with --nocapture (the VM's run does): how close the
            // host clock came.
            eprintln!("{}: counts {got:?}, exact {exact:?}", kind.name());
            assert_eq!(got.len(), exact.len(), "{}: counts {got:?}", kind.name());
            for ((g, e), tol) in got.iter().zip(exact).zip(tolerance) {
                let slack = (*e as f64 * tol).floor() + 1.0;
                assert!(
                    (*g as f64 - *e as f64).abs() <= slack,
                    "{}: count {g}, expected {e} within {tol}: {got:?}",
                    kind.name()
                );
            }
        }
    }
}

#[test]
fn rtc_periodic_interrupts_against_the_pit() {
    let (t, counts) = run("rtc-periodic", &|_| {});
    insta::assert_snapshot!(t, @r"
    stop: guest exit through port 0xf4 with value 0x0
    --- COM1 ---
    RTC periodic at 128 Hz over 50 PIT ticks at 100 Hz: expected 64, within 10%: pass
    RTC periodic at 32 Hz over 50 PIT ticks at 100 Hz: expected 16, within 10%: pass
    PIE clear: RTC interrupts over 10 PIT ticks: 0
    register C in the IRQ 8 handler, IRQF and PF bits: c0
    update-ended interrupt one second later, in PIT ticks: expected 100, within 10%: pass
    UIP seen set
    UIP seen clear again
    register C after the update: UF set
    ");
    check_counts(&counts, &[64, 16, 0, 100], &[0.1, 0.1, 0.0, 0.1]);
}

#[test]
fn lapic_timer_tpr_and_priorities() {
    let (t, counts) = run("lapic-timer", &|_| {});
    insta::assert_snapshot!(t, @r"
    stop: guest exit through port 0xf4 with value 0x0
    --- COM1 ---
    local APIC version 00050014, ID 00000000
    periodic timer (divide 128, 78125 counts), stopped by its handler: interrupts 10, current count 0
    periodic timer (divide 16, 468750 counts) over 30 PIT ticks: expected 40, within 10%: pass
    stopped: timer interrupts over 5 PIT ticks: 0
    one-shot (divide 1, 1000000 counts): current count between 1 and the initial count
    one-shot: interrupts 1, current count 0
    TPR 50: self-IPI 0x45 handled 0 times, IRR bit 1, ISR bit 0, PPR 50
    TPR 40: self-IPI 0x45 handled 0 times, IRR bit 1, ISR bit 0, PPR 40
    TPR 3f: self-IPI 0x45 delivered; in its handler ISR bit 1, PPR 40
    pending 0x51, 0x5a, 0x61: IRR words 2 and 3 04020000 00000002
    delivered: 61 /61 5a /5a 51 /51
    nesting: 52 61 /61 /52 55 /55
    at the end: ISR | IRR 00000000, ESR 00000000
    ");
    check_counts(&counts, &[10, 40, 0, 1], &[0.0, 0.1, 0.0, 0.0]);
}

/// The disk of the I/O APIC test: each sector starts with its number.
fn numbered_disk() -> machine::disk::DiskImage {
    let mut img = vec![0u8; 8 * 512];
    for (i, s) in img.chunks_mut(512).enumerate() {
        let text = format!("ringlab test disk, sector {i}");
        s[..text.len()].copy_from_slice(text.as_bytes());
    }
    machine::disk::DiskImage::from_bytes(img).expect("whole sectors")
}

#[test]
fn ioapic_routes_the_isa_devices_with_the_8259_masked() {
    let setup = |m: &mut Machine| {
        m.attach_disk(0, numbered_disk());
        m.key_events(machine::devices::ps2kbd::parse_key_text("ab").expect("keys"));
        m.serial_input(b"hi");
    };
    let mut seen = Vec::new();
    let t = run_everywhere_inspecting("ioapic-routing", &setup, &mut |kind, m| {
        let io = m.bus.get(m.chipset.ioapic).stats();
        let lapic = m.bus.get(m.chipset.lapic).stats();
        seen.push((
            kind,
            io.messages,
            lapic.delivered.io_apic,
            lapic.delivered.extint,
            lapic.eoi_broadcasts,
        ));
    });
    insta::assert_snapshot!(t, @r#"
    stop: guest exit through port 0xf4 with value 0x0
    --- COM1 ---
    I/O APIC ID 1, version 00170011, pins 24
    PIT (IRQ 0) on pin 2 -> vector 0x30, three one-shot countdowns: interrupts 3
    keyboard (IRQ 1) on pin 1 -> vector 0x31: interrupts 4, bytes 1e 9e 30 b0
    COM1 (IRQ 4) on pin 4 -> vector 0x34: interrupts 1, first IIR 04, received "hi"
    ATA (IRQ 14) on pin 14 -> vector 0x3e, READ SECTORS x2: interrupts 2, last status 58
      sector: "ringlab test disk, sector 0"
      sector: "ringlab test disk, sector 1"
    ATA with pin 14 level-triggered -> vector 0x3d, EOI before the status read the first time: handler entries 2
      pin 14 entry (low) in the first entry 0000c03d, TMR bit 1
      pin 14 entry (low) after the status read and EOI 0000803d
      sector: "ringlab test disk, sector 2"
    pin 0 (nothing wired) -> vector 0x50: interrupts 0
    "#);
    for (kind, messages, from_ioapic, extint, broadcasts) in seen {
        let name = kind.name();
        // Pin 2 the PIT (3), pin 1 the keyboard (4 bytes), pin 4 COM1 (1),
        // pin 14 the disk (2 edge, 2 level); nothing on pin 0.
        let mut want = [0u64; 24];
        want[1] = 4;
        want[2] = 3;
        want[4] = 1;
        want[14] = 4;
        assert_eq!(messages, want, "{name}: I/O APIC messages per pin");
        assert_eq!(from_ioapic, 12, "{name}: delivered from the I/O APIC");
        assert_eq!(extint, 0, "{name}: nothing through the 8259A");
        assert_eq!(broadcasts, 2, "{name}: EOIs of the level-triggered vector");
    }
}
