//! The engines are equivalent on every lesson: one insta snapshot per
//! lesson (serial transcript, final VGA text, exit status), shared by all
//! engines, so any divergence fails. Engines that cannot run here say why
//! and are left out: KVM without /dev/kvm, or a guest kvm-pvm cannot run
//! (the explanation is checked to be one); with RINGLAB_REQUIRE_KVM set
//! (the QEMU/SVM VM) KVM must run every lesson.

use machine::loader::{self, LoadOptions};
use machine::{Engine, EngineError, Limits, Machine, MachineConfig, Stop};
use std::time::Duration;

/// Lessons whose output holds timings: only their structure is compared
/// (the last column of each table row, the measurement, is masked).
const TIMED: &[&str] = &["nanobench"];

/// What a lesson run shows, as the snapshot holds it.
fn transcript(name: &str, stop: &Stop, m: &Machine) -> String {
    let mut serial = String::from_utf8_lossy(m.serial_output()).into_owned();
    if TIMED.contains(&name) {
        serial = serial
            .lines()
            .map(|l| match l.rsplit_once(' ') {
                Some((head, last)) if l.starts_with("  ") && last.parse::<u64>().is_ok() => {
                    format!("{} <cycles>\n", head.trim_end())
                }
                _ => format!("{l}\n"),
            })
            .collect();
    }
    format!(
        "stop: {stop}\n--- serial (COM1) ---\n{serial}--- screen ---\n{}",
        m.screen().text()
    )
}

fn run_lesson(l: &lessons::Lesson, kvm: bool) -> Option<String> {
    let mut m = Machine::new(MachineConfig::default()).unwrap();
    let loaded = loader::load(&mut m.mem, l.image, &LoadOptions::default()).unwrap();
    let mut e: Box<dyn Engine> = if kvm {
        match engine_kvm::create(&mut m) {
            Ok(e) => e,
            Err(e) if std::env::var_os("RINGLAB_REQUIRE_KVM").is_some() => {
                panic!("RINGLAB_REQUIRE_KVM is set but KVM is not usable: {e}")
            }
            Err(e) => {
                eprintln!("lesson {}: skipping KVM: {e}", l.name);
                return None;
            }
        }
    } else {
        Box::new(engine_interp::Interp::new())
    };
    e.set_cpu_state(&mut m, &loaded.entry).unwrap();
    let limits = Limits {
        max_icount: Some(500_000_000),
        timeout: Some(Duration::from_secs(20)),
        breakpoints: vec![],
    };
    match e.run(&mut m, &limits) {
        Ok(stop) => Some(transcript(l.name, &stop, &m)),
        Err(EngineError::Unsupported(why))
            if kvm
                && engine_kvm::host::detect() == engine_kvm::host::HostKind::Pvm
                && std::env::var_os("RINGLAB_REQUIRE_KVM").is_none() =>
        {
            assert!(why.contains("kvm-pvm"), "{why}");
            eprintln!(
                "lesson {}: KVM stopped with the kvm-pvm explanation: {why}",
                l.name
            );
            None
        }
        Err(e) => panic!("lesson {} on {}: {e}", l.name, e_name(kvm)),
    }
}

fn e_name(kvm: bool) -> &'static str {
    if kvm {
        "kvm"
    } else {
        "interp"
    }
}

#[test]
fn every_engine_gives_the_lesson_snapshot() {
    for l in lessons::all() {
        for kvm in [false, true] {
            let Some(t) = run_lesson(l, kvm) else {
                continue;
            };
            insta::with_settings!({ snapshot_suffix => "", prepend_module_to_snapshot => false }, {
                insta::assert_snapshot!(format!("lesson_{}", l.name), t, &format!("{} on {}", l.name, e_name(kvm)));
            });
        }
    }
}
