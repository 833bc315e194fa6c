//! `Engine::run` takes any machine. An interpreter or translator handed a
//! second machine must not run code it cached (blocks, translations, both
//! keyed by guest physical address) from the first one's RAM: the same
//! address holds other code there.

use machine::cpu::{CpuState, Seg, Segment};
use machine::{Engine, Limits, Machine, MachineConfig, Stop};

/// `1: nop; jmp 1b` at 0x7C00: the first machine spins there, at 0x7C00
/// after an even count. (Not `jmp $`: the translator leaves that to the
/// interpreter, and with interrupts disabled it stops the run.)
const SPIN: &[u8] = &[0x90, 0xEB, 0xFD];
/// `mov al, 0x2A; out 0xF4, al; hlt` at 0x7C00 (the same bytes in 16- and
/// 32-bit code): the second machine exits with 0x2A at once.
const EXIT: &[u8] = &[0xB0, 0x2A, 0xE6, 0xF4, 0xF4];

fn machine(code: &[u8]) -> Machine {
    let mut m = Machine::new(MachineConfig::with_ram(2 << 20)).unwrap();
    m.mem.write(0x7C00, code).unwrap();
    m
}

fn real_mode() -> CpuState {
    let mut s = CpuState::reset();
    s.segs[Seg::Cs as usize] = Segment::real_mode_code(0);
    s.eip = 0x7C00;
    s
}

/// Flat 32-bit protected mode, where the translator translates.
fn flat32() -> CpuState {
    CpuState::multiboot(0x7C00, 0, 0x500)
}

fn budget() -> Limits {
    Limits {
        max_icount: Some(10_000),
        ..Limits::default()
    }
}

/// Spins on the first machine (caching its code), then runs the engine on
/// the second without a `set_cpu_state` in between: the CPU is still at
/// 0x7C00, where the second machine has its exit.
fn second_machine_runs_its_own_code(mut e: Box<dyn Engine>, state: CpuState) {
    let mut a = machine(SPIN);
    e.set_cpu_state(&mut a, &state).unwrap();
    assert_eq!(e.run(&mut a, &budget()).unwrap(), Stop::Budget);
    let mut b = machine(EXIT);
    assert_eq!(
        e.run(&mut b, &budget()).unwrap(),
        Stop::GuestExit { value: 0x2A }
    );
    assert_eq!(b.icount(), 2);
}

#[test]
fn interpreter_drops_the_first_machines_blocks() {
    second_machine_runs_its_own_code(Box::new(engine_interp::Interp::new()), real_mode());
}

#[test]
fn translator_drops_the_first_machines_translations() {
    // Flat 32-bit code: translated, not left to the interpreter.
    second_machine_runs_its_own_code(Box::new(engine_bt::Bt::new().unwrap()), flat32());
    // Real mode: the interpreter inside the translator.
    second_machine_runs_its_own_code(Box::new(engine_bt::Bt::new().unwrap()), real_mode());
}
