//! The PC platform from a driver's side: guests in tests/guests that
//! program the ATA disks, the 8042 and keyboard, the RTC, the APICs and
//! COM1 as an OS does, run on every engine with the same transcript
//! (tests::platform).

use machine::cpu::{flags, CpuState};
use machine::{Limits, Machine, MachineConfig, Stop};
use ringlab::engines::EngineKind;
use ringlab::session::{Options, Session};
use std::time::{Duration, Instant};
use tests::platform::{run_everywhere, run_machine, LOAD};

#[test]
fn rtc_date_reads_the_fixed_start_in_bcd() {
    let t = run_everywhere("rtc-date", &|_| {});
    insta::assert_snapshot!(t, @r"
    stop: guest exit through port 0xf4 with value 0x0
    --- COM1 ---
    rtc date: 2026-01-01
    ");
}

#[test]
fn nmis_ignore_if_obey_the_port_70_mask_and_wait_for_iret() {
    let t = run_everywhere("nmi", &|_| {});
    insta::assert_snapshot!(t, @r"
    stop: guest exit through port 0xf4 with value 0x0
    --- COM1 ---
    NMI with IF=0, count 1
    NMI masked at port 0x70, count 1
    mask cleared, count 2
    NMI sent inside the handler, count 4
    order: abc<>d
    ");
}

#[test]
fn a_panic_loop_with_interrupts_off_stops_every_engine_but_jmp_self_with_if_waits() {
    let t = run_everywhere("panic-loop", &|_| {});
    insta::assert_snapshot!(t, @r"
    stop: spinning on a jump to itself with interrupts disabled (a kernel's panic loop): only NMI or reset could end it
    --- COM1 ---
    woken from jmp $ by IRQ0
    panic: spin test
    ");
}

/// `code` at `at` in a 2 MiB machine, run from `state` on every engine
/// this host has: each engine's stop.
fn run_code_everywhere(code: &[u8], at: u32, state: &CpuState) -> Vec<(EngineKind, Stop)> {
    let mut stops = Vec::new();
    for kind in [EngineKind::Interp, EngineKind::Bt, EngineKind::Kvm] {
        let mut m = Machine::new(MachineConfig::with_ram(2 << 20)).unwrap();
        m.mem.write(at as u64, code).unwrap();
        let limit = Duration::from_secs(60);
        if let Some(o) = run_machine(kind, m, state, None, limit, &mut |_, _| {}) {
            stops.push((kind, o.stop));
        }
    }
    stops
}

#[test]
fn every_form_of_jmp_self_spins_in_real_and_protected_mode() {
    let real = CpuState::boot_sector(0x7C00);
    let prot = CpuState::multiboot(LOAD, 0, 0);
    for (code, at, state) in [
        (&[0xFA, 0xEB, 0xFE][..], 0x7C00, &real), // cli; jmp $ (rel8)
        (&[0xFA, 0xE9, 0xFD, 0xFF][..], 0x7C00, &real), // rel16 = -3
        (&[0xFA, 0xEB, 0xFE][..], LOAD, &prot),
        (&[0xFA, 0xE9, 0xFB, 0xFF, 0xFF, 0xFF][..], LOAD, &prot), // rel32 = -5
    ] {
        for (kind, stop) in run_code_everywhere(code, at, state) {
            assert_eq!(stop, Stop::Spinning, "{code:02x?} on {}", kind.name());
        }
    }
}

#[test]
fn jmp_self_with_interrupts_on_runs_to_the_budget_or_the_timeout() {
    let real = CpuState::boot_sector(0x7C00);
    let prot = CpuState::multiboot(LOAD, 0, 0);
    // STI; JMP $. Nothing is programmed to interrupt it.
    let code = [0xFB, 0xEB, 0xFE];
    for (at, state) in [(0x7C00, &real), (LOAD, &prot)] {
        for kind in [EngineKind::Interp, EngineKind::Bt, EngineKind::Kvm] {
            let mut m = Machine::new(MachineConfig::with_ram(2 << 20)).unwrap();
            m.mem.write(at as u64, &code).unwrap();
            let mut s = match Session::new(m, kind, Options::default(), state) {
                Ok(s) => s,
                Err(e) if kind == EngineKind::Kvm => {
                    tests::skip(format!("KVM is not usable on this host: {e}"));
                    continue;
                }
                Err(e) => panic!("{}: {e}", kind.name()),
            };
            let counted = kind.counts_instructions();
            let limits = Limits {
                max_icount: counted.then_some(1_000_000),
                deadline: Some(Instant::now() + Duration::from_millis(300)),
                breakpoints: vec![],
            };
            let stop = s.run_until(&limits).expect("run");
            if counted {
                assert_eq!(stop, Stop::Budget, "{}", kind.name());
                assert_eq!(s.m.icount(), 1_000_000, "{}", kind.name());
            } else {
                assert_eq!(stop, Stop::Timeout, "{}", kind.name());
            }
            let st = s.cpu_state().expect("state");
            assert_eq!(st.eip, at + 1, "{}: on the jump", kind.name());
            assert_ne!(st.eflags & flags::IF, 0);
        }
    }
}
