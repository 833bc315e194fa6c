//! The commands of `ringlab step` (Debugger) on every engine, without a
//! terminal: run to the ring change into ring 3, step across INT 0x80 into
//! ring 0, run back to ring 3; the same instruction counts and ring changes
//! on each engine. On KVM the debugger single-steps (the only way it sees
//! ring changes); kvm-pvm cannot run ring 3 without paging, so there the
//! KVM case prints why and stops, unless RINGLAB_REQUIRE_KVM is set (the
//! QEMU/SVM VM of scripts/kvm-vm-tests.sh).

use anyhow::Context;
use machine::loader::{self, LoadOptions};
use machine::{Chain, Machine, MachineConfig, Stop};
use ringlab::debugger::{Command, Debugger};
use ringlab::engines::EngineKind;
use ringlab::inspect;
use ringlab::session::{Options, Session};

fn debugger(kind: EngineKind) -> Result<Debugger, machine::EngineError> {
    let l = lessons::find("rings")
        .and_then(lessons::Lesson::builtin)
        .expect("rings lesson");
    let mut m = Machine::new(MachineConfig::default()).expect("machine");
    let loaded = loader::load(&mut m.mem, l.image, &LoadOptions::default()).expect("load");
    Ok(Debugger::new(Session::new(
        m,
        kind,
        Options::default(),
        &loaded.entry,
    )?))
}

/// (instruction count, CPL, current instruction text) after each command.
fn walk(kind: EngineKind) -> Option<Vec<(u64, u8, String)>> {
    let require = std::env::var_os("RINGLAB_REQUIRE_KVM").is_some();
    let mut s = match debugger(kind) {
        Ok(s) => s,
        Err(e) if kind == EngineKind::Kvm && !require => {
            tests::skip(format!("debugger on kvm: {}", Chain(&e)));
            return None;
        }
        Err(e) => panic!("{kind:?}: {}", Chain(&e)),
    };
    let mut seen = Vec::new();
    let look = |s: &mut Debugger| {
        let st = s.session.cpu_state().expect("state");
        let d = inspect::disassemble(&s.session.m, &st, st.pc_linear(), 1);
        let text = d.first().map_or(String::new(), |d| d.text.clone());
        (s.session.m.icount(), st.cpl(), text)
    };
    s.exec(Command::RunToRingChange);
    if kind == EngineKind::Kvm && s.message.contains("kvm-pvm") && !require {
        tests::skip(format!("debugger on kvm: {}", s.message));
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
    // A step across a ring change says so.
    assert!(
        s.message
            .starts_with("stepped one instruction: ring 3 -> 0 by INT at 0x"),
        "{kind:?}: {}",
        s.message
    );
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
        // exactly; after it, the rings, and where the debugger stops in
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
fn debugger_on_the_interpreter() {
    check(EngineKind::Interp);
}

#[test]
fn debugger_on_the_translator() {
    check(EngineKind::Bt);
}

#[test]
fn debugger_on_kvm() {
    check(EngineKind::Kvm);
}

#[test]
fn the_translator_shows_the_host_code_of_the_block_at_eip() {
    let mut s = debugger(EngineKind::Bt).expect("bt");
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
        t.guest_insns, 5,
        "mov eax, 1; mov esi, ...; int 0x80 (run by the interpreter from \
         the block: an in-TC callout); mov esi, ...; call uputs"
    );
    let host = inspect::disassemble_host(&t.code, t.host_addr);
    assert!(
        host.iter().any(|(_, x)| x == "mov eax, 1"),
        "IDENT: {host:?}"
    );
    // At INT 0x80 a block starts with the callout: the interpreter
    // delivers the interrupt from it, and the block goes on into the
    // handler's translation once the indirect-branch cache has it.
    s.exec(Command::Step);
    s.exec(Command::Step);
    let t = s
        .session
        .translation_at_pc()
        .expect("bt")
        .expect("a block at INT 0x80");
    assert_eq!(t.guest_insns, 3, "int 0x80; mov esi, ...; call uputs");
    // The interpreter translates nothing.
    let mut i = debugger(EngineKind::Interp).expect("interp");
    assert!(i.session.translation_at_pc().is_none());
}

/// The rings lesson on `kind`, able to restart (as `ringlab step` is).
fn restartable(kind: EngineKind) -> Debugger {
    let reload = || -> anyhow::Result<_> {
        let l = lessons::find("rings")
            .and_then(lessons::Lesson::builtin)
            .context("no rings lesson")?;
        let mut m = Machine::new(MachineConfig::default())?;
        let loaded = loader::load(&mut m.mem, l.image, &LoadOptions::default())?;
        Ok((m, loaded.entry))
    };
    let (m, entry) = reload().expect("rings");
    let session = Session::new(m, kind, Options::default(), &entry).expect("session");
    Debugger::with_reload(session, Box::new(reload))
}

fn eip(s: &mut Debugger) -> u32 {
    s.session.cpu_state().expect("state").pc_linear()
}

// Addresses in the rings lesson (lessons/guests/rings.S, as built).
/// user_main, where the kernel's IRET enters ring 3.
const USER_MAIN: u32 = 0x1000b4;
/// `mov esi, offset u_direct` after the first INT 0x80.
const AFTER_INT: u32 = 0x1000c8;
/// `call uputs`, and the CLI after it.
const CALL_UPUTS: u32 = 0x1000cd;
const CLI: u32 = 0x1000d2;
/// `in al, dx` in uputs' wait-for-the-UART loop.
const UPUTS_IN: u32 = 0x1000f5;

#[test]
fn step_over_a_call_says_it_stepped_over_it() {
    let mut s = restartable(EngineKind::Interp);
    for _ in 0..3 {
        s.exec(Command::RunToRingChange);
    }
    assert_eq!((eip(&mut s), s.session.m.icount()), (AFTER_INT, 4696));
    s.exec(Command::Step);
    assert_eq!(eip(&mut s), CALL_UPUTS);
    s.exec(Command::StepOver);
    assert_eq!(eip(&mut s), CLI);
    assert_eq!(
        s.message,
        "stepped over `call 0x001000EA` (689 instructions)"
    );
    assert_eq!(s.session.m.icount(), 4697 + 689);
    // A breakpoint of the user's inside the call stops it there, as gdb.
    let mut s = restartable(EngineKind::Interp);
    for _ in 0..3 {
        s.exec(Command::RunToRingChange);
    }
    s.exec(Command::Step);
    s.exec(Command::ToggleBreakpoint(UPUTS_IN));
    s.exec(Command::StepOver);
    assert_eq!(eip(&mut s), UPUTS_IN);
    assert_eq!(s.last_stop, Some(Stop::Breakpoint { addr: UPUTS_IN }));
    assert_eq!(s.message, "breakpoint at 0x001000f5 (6 instructions)");
}

#[test]
fn continuing_from_a_breakpoint_runs_its_instruction_first() {
    for kind in [EngineKind::Interp, EngineKind::Bt] {
        let mut s = restartable(kind);
        s.exec(Command::RunToRingChange);
        assert_eq!(eip(&mut s), USER_MAIN);
        // b at EIP, then c: the CPU leaves it and stops at the next one.
        s.exec(Command::ToggleBreakpoint(USER_MAIN));
        s.exec(Command::ToggleBreakpoint(UPUTS_IN));
        s.exec(Command::Continue);
        assert_eq!(
            s.last_stop,
            Some(Stop::Breakpoint { addr: UPUTS_IN }),
            "{kind:?}"
        );
        let first = s.session.m.icount();
        assert_eq!(first, 4703, "{kind:?}: {}", s.message);
        // Again: once round the UART loop to the same breakpoint.
        s.exec(Command::Continue);
        assert_eq!(
            s.last_stop,
            Some(Stop::Breakpoint { addr: UPUTS_IN }),
            "{kind:?}"
        );
        let second = s.session.m.icount();
        assert_eq!(second, first + 12, "{kind:?}: {}", s.message);
        // A step off the breakpoint, then c: the next time round stops.
        s.exec(Command::Step);
        assert_eq!(s.message, "stepped one instruction");
        assert_eq!(s.session.m.icount(), second + 1);
        assert_eq!(eip(&mut s), UPUTS_IN + 1);
        s.exec(Command::Continue);
        assert_eq!(
            s.last_stop,
            Some(Stop::Breakpoint { addr: UPUTS_IN }),
            "{kind:?}"
        );
        assert_eq!(s.session.m.icount(), second + 12, "{kind:?}: {}", s.message);
    }
}

#[test]
fn restart_reloads_the_guest_on_the_same_engine() {
    for kind in [EngineKind::Interp, EngineKind::Bt] {
        let mut s = restartable(kind);
        let entry = eip(&mut s);
        s.exec(Command::ToggleBreakpoint(CLI));
        s.exec(Command::Continue);
        assert_eq!(
            s.last_stop,
            Some(Stop::Breakpoint { addr: CLI }),
            "{kind:?}"
        );
        assert!(!s.session.m.serial_output().is_empty());
        s.exec(Command::Restart);
        assert_eq!(
            s.message,
            format!(
                "restarted: the guest reloaded, at its entry on {} (breakpoints kept)",
                kind.name()
            )
        );
        assert_eq!(s.session.kind(), kind);
        assert_eq!(s.session.m.icount(), 0);
        assert_eq!(eip(&mut s), entry);
        assert!(s.session.m.serial_output().is_empty());
        assert_eq!(s.breakpoints, [CLI]);
        assert_eq!((s.last_stop.clone(), s.frame.is_none()), (None, true));
        // The same run again, to the same place.
        s.exec(Command::RunToRingChange);
        assert_eq!((eip(&mut s), s.session.m.icount()), (USER_MAIN, 3763));
        // A guest that stopped for good starts again too.
        s.exec(Command::ToggleBreakpoint(CLI));
        for _ in 0..20 {
            s.exec(Command::Continue);
            if s.finished {
                break;
            }
        }
        assert_eq!(s.last_stop, Some(Stop::Halted), "{kind:?}");
        s.exec(Command::Step);
        assert_eq!(
            s.message,
            "the guest has stopped (halted with interrupts disabled); nothing more to run -- \
             x restarts it"
        );
        s.exec(Command::Restart);
        s.exec(Command::RunToRingChange);
        assert_eq!((eip(&mut s), s.session.m.icount()), (USER_MAIN, 3763));
    }
}

/// The interpreter, failing like kvm-pvm does at the lesson's IRET: at
/// instruction `at` every run and step answers with an engine error.
struct Failing {
    inner: Box<dyn machine::Engine>,
    at: u64,
}

impl Failing {
    fn check(&self, m: &Machine) -> Result<(), machine::EngineError> {
        if m.icount() >= self.at {
            return Err(machine::EngineError::Unsupported(format!(
                "this test's engine gives up at instruction {}",
                self.at
            )));
        }
        Ok(())
    }
}

impl machine::Engine for Failing {
    fn name(&self) -> &'static str {
        "failing"
    }
    fn run(&mut self, m: &mut Machine, l: &machine::Limits) -> Result<Stop, machine::EngineError> {
        self.check(m)?;
        let mut l = l.clone();
        l.max_icount = Some(l.max_icount.unwrap_or(u64::MAX).min(self.at));
        match self.inner.run(m, &l)? {
            Stop::Budget => self.check(m).map(|()| Stop::Budget),
            s => Ok(s),
        }
    }
    fn step(&mut self, m: &mut Machine) -> Result<Stop, machine::EngineError> {
        self.check(m)?;
        self.inner.step(m)
    }
    fn cpu_state(&mut self) -> Result<machine::CpuState, machine::EngineError> {
        self.inner.cpu_state()
    }
    fn set_cpu_state(
        &mut self,
        m: &mut Machine,
        s: &machine::CpuState,
    ) -> Result<(), machine::EngineError> {
        self.inner.set_cpu_state(m, s)
    }
    fn stats(&self) -> machine::EngineStats {
        self.inner.stats()
    }
}

#[test]
fn after_an_engine_error_switching_engines_goes_on() {
    let l = lessons::find("rings")
        .and_then(lessons::Lesson::builtin)
        .expect("rings lesson");
    let mut m = Machine::new(MachineConfig::default()).expect("machine");
    let loaded = loader::load(&mut m.mem, l.image, &LoadOptions::default()).expect("load");
    // Called "kvm" here, as on a kvm-pvm host.
    let session = Session::with_test_double(m, EngineKind::Kvm, &loaded.entry, |inner| {
        Box::new(Failing { inner, at: 3762 })
    })
    .expect("s");
    let mut s = Debugger::new(session);
    s.exec(Command::RunToRingChange);
    assert_eq!(
        s.message,
        "engine error on kvm after 3762 instructions (w moves the machine to another engine \
         and goes on there; x restarts): unsupported by this engine: this test's engine gives \
         up at instruction 3762"
    );
    assert!(s.engine_failed.is_some() && !s.finished);
    // Running again on the failed engine says what to do, and does nothing.
    s.exec(Command::RunToRingChange);
    assert!(
        s.message.starts_with(
            "the kvm engine failed (w moves the machine to another engine, which goes on from \
             instruction 3762; x restarts): "
        ),
        "{}",
        s.message
    );
    assert_eq!(s.session.m.icount(), 3762);
    s.exec(Command::Switch(EngineKind::Interp));
    assert_eq!(
        s.message,
        "moved the machine from kvm to interp at instruction 3762"
    );
    assert!(s.engine_failed.is_none());
    // The run goes on where it stopped: the IRET into ring 3, as if the
    // interpreter had run from the start.
    s.exec(Command::RunToRingChange);
    assert_eq!(s.last_stop, Some(Stop::Event), "{}", s.message);
    assert_eq!((eip(&mut s), s.session.m.icount()), (USER_MAIN, 3763));
    assert_eq!(
        s.message,
        "stopped after 1 instruction: ring 0 -> 3 by IRET at 0x1000b3 (at instruction 3762)"
    );
}

/// On kvm-pvm the run into ring 3 fails and the interpreter takes over;
/// on hardware virtualization (the QEMU/SVM VM) there is no error to
/// recover from, and the test checks that KVM got to ring 3 instead.
#[test]
fn on_this_host_kvm_fails_at_ring_3_and_the_interpreter_takes_over() {
    let mut s = match std::panic::catch_unwind(|| restartable(EngineKind::Kvm)) {
        Ok(s) => s,
        // RINGLAB_REQUIRE_KVM (the VM): no KVM is a failure, with the
        // panic that said why.
        Err(e) if std::env::var_os("RINGLAB_REQUIRE_KVM").is_some() => std::panic::resume_unwind(e),
        Err(_) => {
            tests::skip("no KVM engine on this host (the panic above says why)");
            return;
        }
    };
    s.exec(Command::RunToRingChange);
    if engine_kvm::host::detect() != engine_kvm::host::HostKind::Pvm {
        assert!(s.engine_failed.is_none(), "{}", s.message);
        assert_eq!(s.last_stop, Some(Stop::Event), "{}", s.message);
        let st = s.session.cpu_state().expect("state");
        assert_eq!((st.pc_linear(), st.cpl()), (USER_MAIN, 3), "{}", s.message);
        return;
    }
    assert!(
        s.message.starts_with("engine error on kvm after "),
        "{}",
        s.message
    );
    assert!(s.message.contains("kvm-pvm"), "{}", s.message);
    s.exec(Command::Switch(EngineKind::Interp));
    assert!(
        s.message
            .starts_with("moved the machine from kvm to interp"),
        "{}",
        s.message
    );
    s.exec(Command::RunToRingChange);
    assert_eq!(s.last_stop, Some(Stop::Event), "{}", s.message);
    let st = s.session.cpu_state().expect("state");
    assert_eq!((st.pc_linear(), st.cpl()), (USER_MAIN, 3));
}

#[test]
fn the_frames_of_int_0x80_and_of_the_gp_are_labelled() {
    for kind in [EngineKind::Interp, EngineKind::Bt] {
        let mut s = restartable(kind);
        s.exec(Command::RunToRingChange);
        assert!(s.frame.is_none());
        s.exec(Command::RunToRingChange);
        let f = s.frame.clone().expect("the INT 0x80 frame");
        assert_eq!(
            (f.what.as_str(), f.icount, f.rings),
            ("INT 0x80", 3768, Some((3, 0)))
        );
        let st = s.session.cpu_state().expect("state");
        let slots: Vec<(&str, u32, Option<u32>)> = f
            .slots
            .iter()
            .map(|x| {
                (
                    x.name,
                    x.addr,
                    inspect::read_value(&s.session.m, &st, x.addr, x.size),
                )
            })
            .collect();
        // The ring-0 stack from the TSS (ESP0 0x90000), five dwords down.
        assert_eq!(
            slots,
            [
                ("EIP", 0x8ffec, Some(AFTER_INT)),
                ("CS", 0x8fff0, Some(0x1b)),
                ("EFLAGS", 0x8fff4, Some(0x2)),
                ("ESP", 0x8fff8, Some(0x80000)),
                ("SS", 0x8fffc, Some(0x23)),
            ],
            "{kind:?}"
        );
        // The handler runs on: the frame stays the last one stopped at.
        s.exec(Command::Step);
        assert_eq!(s.frame.as_ref(), Some(&f));
        // The CLI's #GP: an error code (0) on top.
        s.exec(Command::RunToException);
        let f = s.frame.clone().expect("the #GP frame");
        assert_eq!(
            (f.what.as_str(), f.icount, f.rings),
            ("#GP(13)", 5386, Some((3, 0)))
        );
        let st = s.session.cpu_state().expect("state");
        let slots: Vec<(&str, Option<u32>)> = f
            .slots
            .iter()
            .map(|x| {
                (
                    x.name,
                    inspect::read_value(&s.session.m, &st, x.addr, x.size),
                )
            })
            .collect();
        assert_eq!(
            slots,
            [
                ("error code", Some(0)),
                ("EIP", Some(CLI)),
                ("CS", Some(0x1b)),
                // RF: pushed set for a fault (SDM Vol 3A 17.3.1.1).
                ("EFLAGS", Some(0x10046)),
                ("ESP", Some(0x80000)),
                ("SS", Some(0x23)),
            ],
            "{kind:?}"
        );
    }
}

/// The interpreter remembers the breakpoint it stopped at, to run past it
/// next time; leaving it by a step with the breakpoint cleared must not
/// leave that memory behind, or the breakpoint, set again, would be
/// skipped once.
#[test]
fn a_breakpoint_cleared_stepped_off_and_set_again_stops_the_next_time_round() {
    for kind in [EngineKind::Interp, EngineKind::Bt] {
        let mut s = restartable(kind);
        s.exec(Command::ToggleBreakpoint(UPUTS_IN));
        s.exec(Command::Continue);
        assert_eq!(s.last_stop, Some(Stop::Breakpoint { addr: UPUTS_IN }));
        s.exec(Command::ToggleBreakpoint(UPUTS_IN));
        s.exec(Command::Step);
        assert_eq!(eip(&mut s), UPUTS_IN + 1, "{kind:?}");
        assert_eq!(s.message, "stepped one instruction");
        let at = s.session.m.icount();
        s.exec(Command::ToggleBreakpoint(UPUTS_IN));
        s.exec(Command::Continue);
        assert_eq!(
            s.last_stop,
            Some(Stop::Breakpoint { addr: UPUTS_IN }),
            "{kind:?}: {}",
            s.message
        );
        // Once round the UART loop (12 instructions, this one stepped).
        assert_eq!(s.session.m.icount(), at + 11, "{kind:?}");
    }
}
