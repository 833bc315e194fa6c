//! The engines are equivalent on every lesson: one insta snapshot per
//! lesson (serial transcript, final VGA text, exit status), shared by all
//! engines, so any divergence fails. Engines that cannot run here say why
//! and are left out: KVM without /dev/kvm, or a guest kvm-pvm cannot run
//! (the explanation is checked to be one); with RINGLAB_REQUIRE_KVM set
//! (the QEMU/SVM VM) KVM must run every lesson.
//!
//! Every lesson whose guest is built into ringlab: xv6's is not (it is
//! built outside, `lessons::Guest::Xv6`), and `xv6.rs` boots it.

use machine::{Chain, Counter, EngineError, Limits, Machine, Stop};
use ringlab::engines::EngineKind;
use ringlab::run::{prepare, GuestArgs};
use ringlab::session::{Options, Session};
use std::time::{Duration, Instant};

/// Lessons whose output holds timings: only their structure is compared.
/// In their transcripts a number that ends a table row (a line starting
/// with two spaces) or follows the word "ticks" or "cycles" is masked.
const TIMED: &[&str] = &["nanobench", "determinism"];

fn mask_timings(serial: &str) -> String {
    let mut out = String::new();
    for line in serial.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        let last_number = words.iter().rposition(|w| !w.is_empty());
        let masked: Vec<String> = words
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let number = !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit());
                let after_unit = i > 0 && matches!(words[i - 1], "ticks" | "cycles");
                let row_end = line.starts_with("  ") && Some(i) == last_number;
                if number && (after_unit || row_end) {
                    "<n>".to_string()
                } else {
                    w.to_string()
                }
            })
            .collect();
        // Right-aligned numbers pad with a width that depends on the value:
        // compare the words, not the spacing.
        let indent = if line.starts_with("  ") { "  " } else { "" };
        let words: Vec<String> = masked.into_iter().filter(|w| !w.is_empty()).collect();
        out.push_str(indent);
        out.push_str(&words.join(" "));
        out.push('\n');
    }
    out
}

/// What a lesson run shows, as the snapshot holds it.
fn transcript(name: &str, stop: &Stop, m: &Machine) -> String {
    let mut serial = String::from_utf8_lossy(m.serial_output()).into_owned();
    if TIMED.contains(&name) {
        serial = mask_timings(&serial);
    }
    format!(
        "stop: {stop}\n--- serial (COM1) ---\n{serial}--- screen ---\n{}",
        m.screen().text()
    )
}

/// The engines the lessons run on.
const ENGINES: [EngineKind; 3] = [EngineKind::Interp, EngineKind::Bt, EngineKind::Kvm];

/// Lesson `l` in a fresh machine on `kind`, prepared as `ringlab run
/// --lesson NAME` prepares it: loaded and at its entry, or (a lesson that
/// boots through the firmware) its boot sector the first hard disk and the
/// CPU at the reset vector.
fn lesson_session(
    l: &lessons::Lesson,
    kind: EngineKind,
    options: Options,
) -> Result<Session, EngineError> {
    let (m, loaded) =
        prepare(&GuestArgs::lesson(l.name)).unwrap_or_else(|e| panic!("lesson {}: {e:#}", l.name));
    Session::new(m, kind, options, &loaded.entry)
}

/// The bounds of one lesson run on `kind`, from now: `max` instructions
/// (KVM, which does not count, has the deadline only) and 20 seconds.
fn limits(kind: EngineKind, max: u64) -> Limits {
    Limits {
        max_icount: kind.counts_instructions().then_some(max),
        deadline: Some(Instant::now() + Duration::from_secs(20)),
        breakpoints: vec![],
    }
}

fn run_lesson(l: &lessons::Lesson, e: EngineKind) -> Option<String> {
    run_on(l, e).map(|(stop, s)| transcript(l.name, &stop, &s.m))
}

/// Runs a lesson on `engine`: None where KVM cannot run it here (after
/// reporting why, `tests::skip`).
fn run_on(l: &lessons::Lesson, engine: EngineKind) -> Option<(Stop, Session)> {
    let kvm = engine == EngineKind::Kvm;
    let mut s = match lesson_session(l, engine, Options::default()) {
        Ok(s) => s,
        Err(e) if !kvm => panic!("lesson {} on {}: {}", l.name, engine.name(), Chain(&e)),
        Err(e) if std::env::var_os("RINGLAB_REQUIRE_KVM").is_some() => {
            panic!(
                "RINGLAB_REQUIRE_KVM is set but KVM is not usable: {}",
                Chain(&e)
            )
        }
        Err(e) => {
            tests::skip(format!("lesson {} on KVM: {}", l.name, Chain(&e)));
            return None;
        }
    };
    match s
        .run_until(&limits(engine, 500_000_000))
        .map_err(|e| e.error)
    {
        Ok(stop) => Some((stop, s)),
        Err(EngineError::Unsupported(why))
            if kvm
                && engine_kvm::host::detect() == engine_kvm::host::HostKind::Pvm
                && std::env::var_os("RINGLAB_REQUIRE_KVM").is_none() =>
        {
            assert!(why.contains("kvm-pvm"), "{why}");
            tests::skip(format!("lesson {} on KVM: {why}", l.name));
            None
        }
        Err(err) => panic!("lesson {} on {}: {}", l.name, engine.name(), Chain(&err)),
    }
}

#[test]
fn every_engine_gives_the_lesson_snapshot() {
    for (l, _) in lessons::builtin() {
        for e in ENGINES {
            let Some(t) = run_lesson(l, e) else {
                continue;
            };
            insta::with_settings!({ snapshot_suffix => "", prepend_module_to_snapshot => false }, {
                insta::assert_snapshot!(format!("lesson_{}", l.name), t, &format!("{} on {}", l.name, e.name()));
            });
        }
    }
}

#[test]
fn the_interpreter_is_deterministic_on_the_timed_lesson() {
    // Unmasked: the ticks and cycles of the three runs, and of two whole
    // runs of the program, are identical on the interpreter.
    let l = lessons::find("determinism").unwrap();
    let run = || {
        let mut s = lesson_session(l, EngineKind::Interp, Options::default()).unwrap();
        let limits = limits(EngineKind::Interp, 500_000_000);
        assert_eq!(s.run_until(&limits).unwrap(), Stop::Halted);
        String::from_utf8(s.m.serial_output().to_vec()).unwrap()
    };
    let a = run();
    assert_eq!(a, run());
    let lines: Vec<&str> = a.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|l| *l == lines[0]), "{a}");
    assert!(
        !lines[0].contains("ticks 0 "),
        "the timer must interrupt the computation: {a}"
    );
}

#[test]
fn popek_goldberg_under_trap_and_emulate_has_its_own_transcript() {
    let l = lessons::find("popek-goldberg").unwrap();
    let mut s = lesson_session(l, EngineKind::Interp, Options::deprivileged(true)).unwrap();
    let stop = s
        .run_until(&limits(EngineKind::Interp, 50_000_000))
        .unwrap();
    let m = &s.m;
    let mut t = transcript(l.name, &stop, m);
    // How the sensitive instructions were handled, for the sheet's table.
    t.push_str("--- sensitive instructions ---\n");
    for ((insn, how), n) in m.trace.sensitive_counts() {
        t.push_str(&format!("{insn}: {how} x{n}\n"));
    }
    insta::with_settings!({ prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!("lesson_popek-goldberg_deprivilege", t);
    });
}

/// The interpreter's event summary of a run: every privilege change and
/// exception in order, the interrupt count, and the sensitive instructions
/// by how they were handled.
fn event_summary(m: &Machine) -> String {
    use machine::{Event, EventKind};
    let mut lines: Vec<String> = Vec::new();
    for r in m.trace.records() {
        match &r.event {
            Event::PrivilegeChange {
                from,
                to,
                cause,
                eip,
                ..
            } => {
                lines.push(format!("ring {from} -> {to} ({cause:?}) at {eip:#x}"));
            }
            Event::Exception {
                vector,
                error_code,
                eip,
            } => {
                lines.push(format!(
                    "exception {vector} error {error_code:?} at {eip:#x}"
                ));
            }
            _ => {}
        }
    }
    // Repeated patterns (a benchmark loop) are folded: "(N times) A / B".
    let mut s = String::new();
    let mut i = 0;
    while i < lines.len() {
        let mut folded = false;
        for period in 1..=4 {
            if i + period > lines.len() {
                break;
            }
            let unit = &lines[i..i + period];
            let mut n = 1;
            while i + (n + 1) * period <= lines.len()
                && &lines[i + n * period..i + (n + 1) * period] == unit
            {
                n += 1;
            }
            if n > 2 {
                s.push_str(&format!("({n} times) {}\n", unit.join(" / ")));
                i += n * period;
                folded = true;
                break;
            }
        }
        if !folded {
            s.push_str(&lines[i]);
            s.push('\n');
            i += 1;
        }
    }
    // The trace keeps the latest records only; the counters are exact.
    let mut totals = format!(
        "privilege changes: {}, exceptions: {}, interrupts: {}\n",
        m.trace.count(EventKind::PrivilegeChange),
        m.trace.count(EventKind::Exception),
        m.trace.count(EventKind::Interrupt)
    );
    totals.push_str("-- the records the trace kept, in order --\n");
    s.insert_str(0, &totals);
    s.push_str("-- sensitive instructions by how they were handled --\n");
    for ((insn, how), n) in m.trace.sensitive_counts() {
        s.push_str(&format!("{insn}: {how} x{n}\n"));
    }
    s
}

#[test]
fn interpreter_event_summaries() {
    for (l, _) in lessons::builtin() {
        let mut s = lesson_session(l, EngineKind::Interp, Options::default()).unwrap();
        s.run_until(&limits(EngineKind::Interp, 500_000_000))
            .unwrap();
        insta::with_settings!({ prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!(format!("events_interp_{}", l.name), event_summary(&s.m));
        });
    }
}

/// The translator leaves exceptions, interrupts and sensitive instructions
/// to the interpreter it runs alongside, so its event trace must be the
/// interpreter's, record for record with the same instruction counts,
/// except that a sensitive instruction met in translated code is handled
/// by a callout rather than interpreted. Its summary is snapshotted too.
#[test]
fn translator_event_traces_are_the_interpreters() {
    for (l, _) in lessons::builtin() {
        let trace = |kind: EngineKind| {
            let mut s = lesson_session(l, kind, Options::default()).unwrap();
            s.run_until(&limits(kind, 500_000_000)).unwrap();
            let m = &s.m;
            let records: Vec<String> = m
                .trace
                .records()
                .map(|r| {
                    format!("{} {:?}", r.icount, r.event)
                        .replace("how: Callout", "how: Interpreted")
                })
                .collect();
            (records, event_summary(m), m.icount())
        };
        let (ri, _, ni) = trace(EngineKind::Interp);
        let (rb, sb, nb) = trace(EngineKind::Bt);
        assert_eq!(ni, nb, "{}: instructions", l.name);
        if let Some(k) = ri.iter().zip(&rb).position(|(a, b)| a != b) {
            panic!(
                "{}: traces differ at record {k}: interp {}, bt {}",
                l.name, ri[k], rb[k]
            );
        }
        assert_eq!(ri.len(), rb.len(), "{}: trace lengths", l.name);
        insta::with_settings!({ prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!(format!("events_bt_{}", l.name), sb);
        });
    }
}

/// The nanobench lesson's exception and system-call rows on the
/// translator: every delivery (#DE, #PF, INT 0x80) and every IRET back is
/// run by an in-TC callout that goes straight on into the next
/// translation (10,000 operations a row, two transfers each: all but the
/// first few), not through
/// the dispatcher, whose entries stay a few hundred for the whole lesson.
#[test]
fn nanobench_exceptions_go_straight_on_in_translated_code() {
    let l = lessons::find("nanobench").expect("the nanobench lesson");
    let mut s = lesson_session(l, EngineKind::Bt, Options::default()).unwrap();
    assert_eq!(
        s.run_until(&limits(EngineKind::Bt, 500_000_000)).unwrap(),
        Stop::Halted
    );
    let st = s.stats();
    let transfers = st.get(Counter::CalloutTransfers).unwrap_or(0);
    let entries = st.get(Counter::DispatcherEntries).unwrap_or(u64::MAX);
    // (The first of each kind go through the dispatcher, which caches
    // their targets.)
    assert!(transfers > 3 * 2 * 10_000 - 50, "{transfers} transfers");
    assert!(entries < 2_000, "{entries} dispatcher entries");
}

/// Lessons in which how many timer ticks arrive on KVM depends on the
/// host's speed, not only on the guest: the firmware's POST unmasks IRQ 0
/// before INT 19h reads the boot sector, so on a slow or busy host a tick
/// can arrive before the guest's own wait for one. Their KVM summaries
/// mask the interrupts injected and the writes to the master 8259A's
/// command port (one EOI a tick).
const KVM_TICKS_BY_HOST_TIME: &[&str] = &["reset"];

/// The master 8259A's command port, where the BIOS's IRQ handlers write
/// their EOI.
const PIC_COMMAND: u16 = 0x20;

/// KVM's event summary of a run: what the engine could observe. Rings
/// change inside the CPU without exits, so privilege changes and exceptions
/// are not seen; interrupts are the ones it injected; the VM exits are
/// listed by reason. Port I/O and MMIO exits follow from the guest's
/// program and are counted exactly; how many HLT exits there are depends
/// on when the host's timer fires, so only that they happened is shown,
/// and timer and interrupt-window exits (host timing alone) are left out;
/// on the timed lessons every count is masked.
fn kvm_event_summary(name: &str, m: &Machine) -> String {
    use machine::EventKind;
    let timed = TIMED.contains(&name);
    let ticks = timed || KVM_TICKS_BY_HOST_TIME.contains(&name);
    use machine::event::VmExit;
    let exact = |reason: VmExit| {
        !timed
            && matches!(
                reason,
                VmExit::IoIn { .. } | VmExit::IoOut { .. } | VmExit::Mmio { .. }
            )
            && !(ticks && reason == VmExit::IoOut { port: PIC_COMMAND })
    };
    let mut s = format!(
        "privilege changes seen: {}, exceptions seen: {}, interrupts injected: {}\n",
        m.trace.count(EventKind::PrivilegeChange),
        m.trace.count(EventKind::Exception),
        if ticks {
            "<n>".to_string()
        } else {
            m.trace.count(EventKind::Interrupt).to_string()
        }
    );
    s.push_str("-- VM exits by reason (timer and interrupt-window exits not listed) --\n");
    for (reason, n) in m.trace.exit_counts() {
        if matches!(reason, VmExit::Timer | VmExit::IrqWindow) {
            continue;
        }
        // Reads of the local APIC's page exit only where KVM runs the
        // guest in its instruction emulator (kvm-pvm); with the CPU's
        // nested paging engine-kvm's read-only shadow page answers them
        // without an exit (apic_shadow.rs). Host-dependent: not listed.
        if let VmExit::Mmio {
            write: false, addr, ..
        } = reason
        {
            if (0xFEE0_0000..0xFEE0_1000).contains(&addr) {
                continue;
            }
        }
        if exact(reason) {
            s.push_str(&format!("{reason}: {n}\n"));
        } else {
            s.push_str(&format!("{reason}: <n>\n"));
        }
    }
    s
}

#[test]
fn kvm_event_summaries() {
    for (l, _) in lessons::builtin() {
        let Some((_, s)) = run_on(l, EngineKind::Kvm) else {
            continue;
        };
        insta::with_settings!({ prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!(format!("events_kvm_{}", l.name), kvm_event_summary(l.name, &s.m));
        });
    }
}

/// With a translation cache of a few kilobytes the translator flushes it
/// over and over (chains included); every lesson must still end as on the
/// interpreter, instruction for instruction.
#[test]
fn translator_with_a_tiny_cache_flushes_and_stays_exact() {
    let tiny = Options {
        bt_cache_bytes: Some(8 << 10),
        ..Options::default()
    };
    for (l, _) in lessons::builtin() {
        let mut e = lesson_session(l, EngineKind::Bt, tiny).unwrap();
        let stop = e.run_until(&limits(EngineKind::Bt, 500_000_000)).unwrap();
        insta::with_settings!({ snapshot_suffix => "", prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!(format!("lesson_{}", l.name), transcript(l.name, &stop, &e.m), &format!("{} on bt with a tiny cache", l.name));
        });
        let stats = e.stats();
        let flushes = stats
            .get(Counter::CacheFlushes)
            .expect("the translator counts cache flushes");
        let translated = stats
            .get(Counter::BlocksTranslated)
            .expect("the translator counts blocks translated");
        if translated > 40 {
            assert!(flushes > 0, "{}: {translated} blocks, no flush", l.name);
        }
    }
}
