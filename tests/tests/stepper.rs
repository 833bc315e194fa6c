//! The commands of `ringlab step` (Stepper) on every engine, without a
//! terminal: run to the ring change into ring 3, step across INT 0x80 into
//! ring 0, run back to ring 3; the same instruction counts and ring changes
//! on each engine. On KVM the stepper single-steps (the only way it sees
//! ring changes); kvm-pvm cannot run ring 3 without paging, so there the
//! KVM case prints why and stops, unless RINGLAB_REQUIRE_KVM is set (the
//! QEMU/SVM VM of scripts/kvm-vm-tests.sh).

use machine::loader::{self, LoadOptions};
use machine::{Machine, MachineConfig, Stop};
use ringlab::engines::EngineKind;
use ringlab::inspect;
use ringlab::session::Session;
use ringlab::stepper::{Command, Stepper};

fn stepper(kind: EngineKind) -> Result<Stepper, machine::EngineError> {
    let l = lessons::find("rings").expect("rings lesson");
    let mut m = Machine::new(MachineConfig::default()).expect("machine");
    let loaded = loader::load(&mut m.mem, l.image, &LoadOptions::default()).expect("load");
    Ok(Stepper::new(Session::new(m, kind, false, &loaded.entry)?))
}

/// (instruction count, CPL, current instruction text) after each command.
fn walk(kind: EngineKind) -> Option<Vec<(u64, u8, String)>> {
    let require = std::env::var_os("RINGLAB_REQUIRE_KVM").is_some();
    let mut s = match stepper(kind) {
        Ok(s) => s,
        Err(e) if kind == EngineKind::Kvm && !require => {
            tests::skip(format!("stepper on kvm: {e}"));
            return None;
        }
        Err(e) => panic!("{kind:?}: {e}"),
    };
    let mut seen = Vec::new();
    let look = |s: &mut Stepper| {
        let st = s.session.cpu_state().expect("state");
        let d = inspect::disassemble(&s.session.m, &st, st.pc_linear(), 1);
        let text = d.first().map_or(String::new(), |d| d.text.clone());
        (s.session.m.icount(), st.cpl(), text)
    };
    s.exec(Command::RunToRingChange);
    if kind == EngineKind::Kvm && s.message.contains("kvm-pvm") && !require {
        tests::skip(format!("stepper on kvm: {}", s.message));
        return None;
    }
    assert_eq!(s.last_stop, Some(Stop::Event), "{kind:?}: {}", s.message);
    seen.push(look(&mut s));
    for _ in 0..40 {
        if look(&mut s).2 == "int 0x80" {
            break;
        }
        s.exec(Command::Step);
        assert_eq!(s.last_stop, Some(Stop::Stepped), "{}", s.message);
    }
    seen.push(look(&mut s));
    s.exec(Command::Step);
    seen.push(look(&mut s));
    s.exec(Command::RunToRingChange);
    seen.push(look(&mut s));
    // Run to the #GP of the program's CLI: the stop is in the kernel's
    // handler, ring 0. KVM does not see exceptions the CPU delivers: it
    // says so and stays; run to the ring change into the handler instead.
    s.exec(Command::RunToException);
    if kind == EngineKind::Kvm {
        assert!(
            s.message.contains("KVM does not see exceptions"),
            "{}",
            s.message
        );
        s.exec(Command::RunToRingChange);
    }
    seen.push(look(&mut s));
    // Back to ring 3, on to the next INT 0x80, and step over it: the whole
    // system call runs and the CPU is at the next instruction, in ring 3.
    s.exec(Command::RunToRingChange);
    for _ in 0..40 {
        if look(&mut s).2 == "int 0x80" {
            break;
        }
        s.exec(Command::Step);
    }
    let at = look(&mut s);
    assert_eq!(at.2, "int 0x80");
    let pc = s.session.cpu_state().expect("state").pc_linear();
    s.exec(Command::StepOver);
    assert_eq!(
        s.last_stop,
        Some(Stop::Breakpoint { addr: pc + 2 }),
        "{}",
        s.message
    );
    seen.push(look(&mut s));
    assert!(seen.last().unwrap().0 > at.0 + 10, "the system call ran");
    Some(seen)
}

fn check(kind: EngineKind) {
    let Some(seen) = walk(kind) else {
        return;
    };
    let want = walk(EngineKind::Interp).expect("interp");
    if kind == EngineKind::Kvm {
        // KVM single-steps with the trap flag, which the CPU clears when
        // it enters a handler: a step across INT 0x80 or into the #GP runs
        // on in the handler until its next VM exit (a port access) and
        // counts one instruction. Up to the first such step KVM counts
        // exactly; after it, the rings, and where the stepper stops in
        // ring 3, are the interpreter's.
        assert_eq!(seen[..2], want[..2], "kvm against the interpreter");
        let rings = |v: &[(u64, u8, String)]| v.iter().map(|x| x.1).collect::<Vec<_>>();
        assert_eq!(rings(&seen), rings(&want), "kvm against the interpreter");
        for i in [3, 5] {
            assert_eq!(seen[i].2, want[i].2, "kvm against the interpreter at {i}");
        }
    } else {
        assert_eq!(seen, want, "{kind:?} against the interpreter");
    }
    // Ring 3 after the IRET, ring 3 at INT 0x80, ring 0 after it, ring 3
    // after the handler's IRET, the #GP handler (ring 0), and ring 3 after
    // stepping over the next INT 0x80.
    let rings: Vec<u8> = seen.iter().map(|x| x.1).collect();
    assert_eq!(rings, [3, 3, 0, 3, 0, 3], "{seen:?}");
    assert_eq!(seen[1].2, "int 0x80");
}

#[test]
fn stepper_on_the_interpreter() {
    check(EngineKind::Interp);
}

#[test]
fn stepper_on_the_translator() {
    check(EngineKind::Bt);
}

#[test]
fn stepper_on_kvm() {
    check(EngineKind::Kvm);
}

#[test]
fn the_translator_shows_the_host_code_of_the_block_at_eip() {
    let mut s = stepper(EngineKind::Bt).expect("bt");
    s.exec(Command::RunToRingChange);
    // Ring 3, at `mov ax, 0x23`: three steps on is `mov eax, 1`, the start
    // of a block of plain instructions (up to INT 0x80).
    for _ in 0..3 {
        s.exec(Command::Step);
    }
    let t = s
        .session
        .translation_at_pc()
        .expect("the translator translates")
        .expect("a translated block");
    assert_eq!(
        t.guest_insns, 2,
        "mov eax, 1; mov esi, ... (INT 0x80 is a callout)"
    );
    let host = inspect::disassemble_host(&t.code, t.host_addr);
    assert!(
        host.iter().any(|(_, x)| x == "mov eax, 1"),
        "IDENT: {host:?}"
    );
    // Where the interpreter runs the instruction, the reason is given.
    s.exec(Command::Step);
    s.exec(Command::Step);
    let why = s
        .session
        .translation_at_pc()
        .expect("bt")
        .expect_err("INT 0x80");
    assert!(why.contains("interpreter"), "{why}");
    // The interpreter translates nothing.
    let mut i = stepper(EngineKind::Interp).expect("interp");
    assert!(i.session.translation_at_pc().is_none());
}
