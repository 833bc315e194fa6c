//! The engine is bound to the machine it was created for: KVM's memory
//! slots point into that machine's RAM, so handed another machine, `run`,
//! `step` and `set_cpu_state` refuse with an error instead of letting the
//! guest use memory the engine does not own.

use machine::cpu::{CpuState, Seg, Segment};
use machine::{Engine, EngineError, Limits, Machine, MachineConfig, Stop};
use std::time::{Duration, Instant};

/// The engine over `m`, or None where this host has no usable KVM (said
/// as `tests::skip` says it; with RINGLAB_REQUIRE_KVM set, as in the
/// QEMU/SVM test VM, that fails instead).
fn kvm_or_skip(m: &mut Machine, test: &str) -> Option<Box<dyn Engine>> {
    match engine_kvm::create(m) {
        Ok(e) => Some(e),
        Err(e) if std::env::var_os("RINGLAB_REQUIRE_KVM").is_some() => {
            panic!("RINGLAB_REQUIRE_KVM is set but KVM is not usable: {e}")
        }
        Err(e) => {
            let line = format!("binding::{test}: KVM is not usable on this host: {e}")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            eprintln!("skipped {line}");
            if let Some(log) = std::env::var_os("RINGLAB_SKIP_LOG") {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)
                    .expect("the skip log opens");
                f.write_all(format!("{line}\n").as_bytes())
                    .expect("the skip log takes the line");
            }
            None
        }
    }
}

fn machine() -> Machine {
    let mut m = Machine::new(MachineConfig::with_ram(2 << 20)).unwrap();
    // HLT where a boot sector starts (see `boot_state`).
    m.mem.write(0x7C00, &[0xF4]).unwrap();
    m
}

/// Real mode at 0000:7C00 with interrupts off (as after reset): the CPU
/// halts there for good.
fn boot_state() -> CpuState {
    let mut s = CpuState::reset();
    s.segs[Seg::Cs as usize] = Segment::real_mode_code(0);
    s.eip = 0x7C00;
    s
}

fn is_other_machine(r: Result<impl std::fmt::Debug, EngineError>) -> bool {
    matches!(r, Err(EngineError::Internal(why))
        if why.starts_with("this KVM engine was created for another machine"))
}

#[test]
fn another_machine_is_refused_and_its_own_still_runs() {
    let mut own = machine();
    let Some(mut kvm) = kvm_or_skip(
        &mut own,
        "another_machine_is_refused_and_its_own_still_runs",
    ) else {
        return;
    };
    let mut other = machine();
    let limits = Limits {
        max_icount: None,
        deadline: Some(Instant::now() + Duration::from_secs(30)),
        breakpoints: vec![],
    };
    let r = kvm.run(&mut other, &limits);
    assert!(is_other_machine(r.clone()), "{r:?}");
    let r = kvm.step(&mut other);
    assert!(is_other_machine(r.clone()), "{r:?}");
    let r = kvm.set_cpu_state(&mut other, &boot_state());
    assert!(is_other_machine(r.clone()), "{r:?}");
    // Nothing of the refused calls reached the vCPU or the machines.
    assert_eq!(other.icount(), 0);
    assert_eq!(kvm.set_cpu_state(&mut own, &boot_state()), Ok(()));
    assert_eq!(kvm.run(&mut own, &limits), Ok(Stop::Halted));
}
