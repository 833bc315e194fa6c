//! The engine is bound to the machine it was created for: KVM's memory
//! slots point into that machine's RAM, so handed another machine, `run`,
//! `step` and `set_cpu_state` refuse with an error instead of letting the
//! guest use memory the engine does not own.

use machine::cpu::{CpuState, Seg, Segment};
use machine::{Chain, Engine, EngineError, Limits, Machine, MachineConfig, Stop};
use std::time::{Duration, Instant};

// The project's skip protocol, `tests::skip`, from its one source file.
// Not a dev-dependency on the `tests` crate: Cargo would accept the cycle
// (`tests` depends on this crate), but this crate's tests would then
// build the frontend, every engine and the lessons' assembler for one
// function, and the dependency arrows would point both ways.
#[path = "../../tests/src/skip.rs"]
mod skip;

/// The engine over `m`, or None where this host has no usable KVM (said
/// through the skip protocol; with RINGLAB_REQUIRE_KVM set, as in the
/// QEMU/SVM test VM, that fails instead).
fn kvm_or_skip(m: &mut Machine) -> Option<Box<dyn Engine>> {
    match engine_kvm::create(m) {
        Ok(e) => Some(e),
        Err(e) if std::env::var_os("RINGLAB_REQUIRE_KVM").is_some() => {
            panic!(
                "RINGLAB_REQUIRE_KVM is set but KVM is not usable: {}",
                Chain(&e)
            )
        }
        Err(e) => {
            skip::skip(format!("KVM is not usable on this host: {}", Chain(&e)));
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
    let Some(mut kvm) = kvm_or_skip(&mut own) else {
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
