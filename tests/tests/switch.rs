//! Moving a running machine from one engine to another (`Session`,
//! `ringlab run --switch-at`): a switched run must end exactly as a plain
//! run of the same guest does.
//!
//! - interpreter <-> translator, every lesson with a built-in guest (all
//!   but xv6), several switch points: both count instructions exactly, so
//!   the event traces (privilege changes, exceptions, interrupts, each
//!   with its instruction count) must be the same record for record, and
//!   the serial output, screen and final registers identical.
//! - interpreter -> KVM -> interpreter on the rings lesson, with the KVM
//!   stretch across the ring 0 -> 3 -> 0 -> 3 transitions: same serial
//!   output, screen and final registers; the ring changes KVM saw while
//!   single-stepping are the interpreter's. On kvm-pvm (no ring 3 without
//!   paging) the boot-sector lesson is switched instead and the rings case
//!   prints why it cannot run, unless RINGLAB_REQUIRE_KVM is set (the
//!   QEMU/SVM VM of scripts/kvm-vm-tests.sh), where nothing may skip.

use machine::{Chain, Counter, EngineError, Event, EventKind, Limits, Machine, Stop};
use ringlab::engines::EngineKind;
use ringlab::run::{prepare, GuestArgs};
use ringlab::session::{Options, Session};
use std::time::{Duration, Instant};

fn lesson(name: &str) -> &'static lessons::Lesson {
    lessons::find(name).unwrap_or_else(|| panic!("no lesson {name}"))
}

/// Lesson `l` as `ringlab run --lesson NAME` prepares it (the `reset`
/// lesson from the reset vector, through the BIOS).
fn session(l: &lessons::Lesson, kind: EngineKind) -> Result<Session, EngineError> {
    let (m, loaded) =
        prepare(&GuestArgs::lesson(l.name)).unwrap_or_else(|e| panic!("lesson {}: {e:#}", l.name));
    Session::new(m, kind, Options::default(), &loaded.entry)
}

/// What a run ended with.
#[derive(Debug, PartialEq)]
struct End {
    stop: Stop,
    icount: u64,
    serial: String,
    screen: String,
    gprs: [u32; 8],
    eip: u32,
}

/// Runs `l`, switching to each engine at its instruction count.
fn run(
    l: &lessons::Lesson,
    first: EngineKind,
    plan: &[(u64, EngineKind)],
) -> Result<(End, Session), EngineError> {
    let mut s = session(l, first)?;
    for &(n, to) in plan {
        s.plan_switch(n, to);
    }
    // A bound on KVM would be single-stepped to: when KVM runs last, the
    // deadline only.
    let last = plan.last().map_or(first, |&(_, k)| k);
    let limits = Limits {
        max_icount: last.counts_instructions().then_some(50_000_000),
        deadline: Some(Instant::now() + Duration::from_secs(60)),
        breakpoints: vec![],
    };
    let stop = s.run_until(&limits).map_err(|e| e.error)?;
    let left: Vec<_> = s.planned_switches().collect();
    assert!(
        left.is_empty(),
        "{}: stopped with {stop:?} before the switches {left:?}",
        l.name
    );
    let st = s.cpu_state()?;
    let end = End {
        stop,
        icount: s.m.icount(),
        serial: String::from_utf8_lossy(s.m.serial_output()).into_owned(),
        screen: s.m.screen().text(),
        gprs: st.regs,
        eip: st.eip,
    };
    Ok((end, s))
}

/// The instruction-counted events of a trace (what both counting engines
/// record alike; KVM and the translator add exits and translations): how
/// many of each kind, and the last records the bounded trace kept (a
/// switch records an event too, which pushes one more old record out).
fn counted_events(m: &Machine) -> (Vec<u64>, Vec<(u64, Event)>) {
    let counts = [
        EventKind::PrivilegeChange,
        EventKind::Exception,
        EventKind::Interrupt,
    ]
    .map(|k| m.trace.count(k))
    .to_vec();
    let mut last: Vec<(u64, Event)> = m
        .trace
        .records()
        .rev()
        .filter(|r| {
            matches!(
                r.event.kind(),
                EventKind::PrivilegeChange | EventKind::Exception | EventKind::Interrupt
            )
        })
        .map(|r| (r.icount, r.event.clone()))
        .collect();
    last.reverse();
    (counts, last)
}

/// Equal counts, and equal records as far back as both traces reach.
fn assert_same_events(a: &Machine, b: &Machine, what: &str) {
    let (ca, ra) = counted_events(a);
    let (cb, rb) = counted_events(b);
    assert_eq!(ca, cb, "{what}: event counts");
    let n = ra.len().min(rb.len());
    assert!(
        n > 0 || ca.iter().all(|&c| c == 0),
        "{what}: no records kept"
    );
    assert!(
        ra[ra.len() - n..] == rb[rb.len() - n..],
        "{what}: the last {n} records differ"
    );
}

#[test]
fn interp_and_translator_switch_back_and_forth_on_every_lesson() {
    use EngineKind::{Bt, Interp};
    for (l, _) in lessons::builtin() {
        let (plain, ps) = run(l, Interp, &[]).expect("plain run");
        let total = plain.icount;
        assert!(total > 10, "{}: ran only {total} instructions", l.name);
        // Switch at a few points spread over the run, including the very
        // first instruction and an odd count in the middle of a block.
        let plans: Vec<Vec<(u64, EngineKind)>> = vec![
            vec![(1, Bt)],
            vec![
                (total / 3 + 1, Bt),
                (total / 2 + 7, Interp),
                (total * 3 / 4, Bt),
            ],
            vec![(total - 1, Bt)],
        ];
        for plan in plans {
            let (end, s) = run(l, Interp, &plan).expect("switched run");
            assert_eq!(end, plain, "{}: switched at {plan:?}", l.name);
            assert_same_events(&s.m, &ps.m, &format!("{}: switched at {plan:?}", l.name));
            assert_eq!(s.switches.len(), plan.len());
        }
        // And starting on the translator.
        let (end, _) = run(l, Bt, &[(total / 2, Interp)]).expect("bt first");
        assert_eq!(end, plain, "{}: bt -> interp", l.name);
    }
}

/// Runs `l` interp -> kvm at `to_kvm` -> interp at `back`, or None (with
/// the reason reported, `tests::skip`) where this host's KVM cannot.
fn via_kvm(l: &lessons::Lesson, to_kvm: u64, back: u64) -> Option<(End, Session)> {
    let require = std::env::var_os("RINGLAB_REQUIRE_KVM").is_some();
    use EngineKind::{Interp, Kvm};
    match run(l, Interp, &[(to_kvm, Kvm), (back, Interp)]) {
        Ok(r) => Some(r),
        Err(e @ (EngineError::Unavailable { .. } | EngineError::Unsupported(_))) if !require => {
            tests::skip(format!(
                "{}: switching to KVM on this host: {}",
                l.name,
                Chain(&e)
            ));
            None
        }
        Err(e) => panic!("{}: switched run through KVM: {}", l.name, Chain(&e)),
    }
}

/// The ring changes of a trace: (from, to, eip).
fn ring_changes(m: &Machine) -> Vec<(u8, u8, u32)> {
    m.trace
        .records()
        .filter_map(|r| match r.event {
            Event::PrivilegeChange { from, to, eip, .. } => Some((from, to, eip)),
            _ => None,
        })
        .collect()
}

#[test]
fn rings_lesson_interp_kvm_interp_matches_a_plain_run() {
    let l = lesson("rings");
    let (plain, ps) = run(l, EngineKind::Interp, &[]).expect("plain run");
    let changes = ring_changes(&ps.m);
    // The first entry into ring 3, and a point after two more changes:
    // the KVM stretch covers IRET to ring 3, INT 0x80 and back.
    let first =
        ps.m.trace
            .records()
            .find(|r| matches!(r.event, Event::PrivilegeChange { to: 3, .. }))
            .expect("the rings lesson enters ring 3")
            .icount;
    let to_kvm = first - 20;
    let back = first + 1500;
    let Some((end, s)) = via_kvm(l, to_kvm, back) else {
        return;
    };
    assert_eq!(end.serial, plain.serial);
    assert_eq!(end.screen, plain.screen);
    assert_eq!(end.stop, plain.stop);
    assert_eq!(end.gprs, plain.gprs);
    assert_eq!(end.eip, plain.eip);
    assert_eq!(s.switches.len(), 2);
    // KVM saw the ring changes of its stretch by single-stepping: the
    // whole sequence of changes is the interpreter's.
    assert_eq!(ring_changes(&s.m), changes);
    let kvm_changes = s
        .m
        .trace
        .records()
        .filter(|r| {
            r.icount > to_kvm && r.icount <= back && r.event.kind() == EventKind::PrivilegeChange
        })
        .count();
    assert!(kvm_changes >= 3, "only {kvm_changes} ring changes on KVM");
}

#[test]
fn hello_interp_kvm_interp_matches_a_plain_run() {
    // A real-mode boot sector: runs on kvm-pvm too.
    let l = lesson("hello");
    let (plain, _) = run(l, EngineKind::Interp, &[]).expect("plain run");
    let Some((end, s)) = via_kvm(l, 50, plain.icount / 2) else {
        return;
    };
    assert_eq!(end, plain);
    assert_eq!(
        s.earlier[1].get(Counter::InstructionsSingleStepped),
        Some(plain.icount / 2 - 50),
        "KVM single-stepped exactly its stretch"
    );
}
