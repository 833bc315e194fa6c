//! The harness of the PC-platform driver tests: guests in
//! `tests/guests/*.S` that `.include "platform.inc"`, assembled with GNU
//! binutils, loaded at 1 MiB in the multiboot state and run on every engine
//! this host has, each on a fresh machine prepared the same way (disks,
//! keys, serial input) by the test's `setup`.
//!
//! [`run_everywhere`] runs the interpreter, the translator and KVM (where it
//! can: on kvm-pvm 32-bit protected mode without paging runs, and the QEMU
//! test VM has kvm_amd; elsewhere the KVM run is skipped with the reason,
//! and with `RINGLAB_REQUIRE_KVM` set it may not be) and asserts that every
//! engine gives the same transcript: the stop and the COM1 output.

use machine::cpu::CpuState;
use machine::{Limits, Machine, MachineConfig, Stop};
use ringlab::engines::EngineKind;
use ringlab::session::{Options, Session};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where platform guests are linked, loaded and entered.
pub const LOAD: u32 = 0x0010_0000;

fn guests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("guests")
}

/// A directory of its own for each build: tests run in parallel threads,
/// and two of them may build the same guest at once.
fn tmp_dir() -> PathBuf {
    static BUILDS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = BUILDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("ringlab-platform-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Assembles `tests/guests/NAME.S` (with `platform.inc` on the include
/// path), links it at [`LOAD`] and returns the flat image.
pub fn build(name: &str) -> Vec<u8> {
    assemble_at(name, LOAD)
}

/// Assembles `tests/guests/NAME.S`, links it at `org` and returns the flat
/// image.
pub fn assemble_at(name: &str, org: u32) -> Vec<u8> {
    let dir = tmp_dir();
    let src = guests_dir().join(format!("{name}.S"));
    let image = crate::guest::assemble_file(&src, Some(&guests_dir()), &dir, org);
    // A temporary directory left behind is harmless to the test.
    let _ = std::fs::remove_dir_all(&dir);
    image
}

/// How many of an engine's last events `Outcome::events` keeps.
const EVENTS_SHOWN: usize = 60;

/// What one engine's run of a guest ended with.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub stop: Stop,
    pub serial: String,
    /// The VGA text screen, trailing blank lines dropped.
    pub screen: String,
    /// The engine's last events (`Machine::trace`: VM exits, interrupts
    /// delivered, exceptions), one a line: printed when its transcript
    /// differs, as the place to start reading.
    pub events: String,
}

impl Outcome {
    /// The transcript the engines must agree on (and snapshots record).
    pub fn transcript(&self) -> String {
        format!("stop: {}\n--- COM1 ---\n{}", self.stop, self.serial)
    }

    /// `transcript` with the final screen after it.
    pub fn transcript_with_screen(&self) -> String {
        format!("{}--- screen ---\n{}", self.transcript(), self.screen)
    }
}

/// A fresh 32 MiB machine with `image` at [`LOAD`], prepared by `setup`.
pub fn machine(image: &[u8], setup: &dyn Fn(&mut Machine)) -> Machine {
    let mut m = Machine::new(MachineConfig::with_ram(32 << 20)).expect("machine");
    m.mem.write(LOAD as u64, image).expect("image fits in RAM");
    setup(&mut m);
    m
}

/// Runs the guest on `kind` until it stops. None (after saying why with
/// `crate::skip`) where this host cannot run KVM; `inspect` sees the
/// machine after the run.
pub fn run_on(
    kind: EngineKind,
    image: &[u8],
    setup: &dyn Fn(&mut Machine),
    limit: Duration,
    inspect: &mut dyn FnMut(EngineKind, &Machine),
) -> Option<Outcome> {
    run_on_hosting(kind, image, setup, None, limit, inspect)
}

/// What the host does when the guest writes a POST code (port 0x80): the
/// run stops there, this gets the code and the machine, and the run goes
/// on. So a guest says when its driver is ready for host input (keys
/// typed once the 8042 is set up), at a point that is the same on every
/// engine.
pub type AtPost<'a> = &'a dyn Fn(u8, &mut Machine);

/// `run_on`, with `at_post` (if any) called at each POST code.
pub fn run_on_hosting(
    kind: EngineKind,
    image: &[u8],
    setup: &dyn Fn(&mut Machine),
    at_post: Option<AtPost>,
    limit: Duration,
    inspect: &mut dyn FnMut(EngineKind, &Machine),
) -> Option<Outcome> {
    let mut m = machine(image, setup);
    m.set_stop_on_post(at_post.is_some());
    let mut st = CpuState::multiboot(LOAD, 0, 0);
    st.regs[machine::cpu::ESP] = 0x9_0000;
    run_machine(kind, m, &st, at_post, limit, inspect)
}

/// Runs `m` from `state` on `kind` until it stops (two minutes at most);
/// None where this host cannot run KVM (said with `crate::skip`).
pub fn run_with(kind: EngineKind, m: Machine, state: &CpuState) -> Option<Outcome> {
    run_machine(
        kind,
        m,
        state,
        None,
        Duration::from_secs(120),
        &mut |_, _| {},
    )
}

/// Runs `m` from `st` on `kind` until it stops or `limit` passes; None
/// where this host cannot run KVM (said with `crate::skip`); `inspect`
/// sees the machine after the run.
pub fn run_machine(
    kind: EngineKind,
    m: Machine,
    st: &CpuState,
    at_post: Option<AtPost>,
    limit: Duration,
    inspect: &mut dyn FnMut(EngineKind, &Machine),
) -> Option<Outcome> {
    run_machine_budget(kind, m, st, at_post, limit, 2_000_000_000, inspect)
}

/// `run_machine` with an instruction budget of `budget` (on the engines
/// that count instructions).
pub fn run_machine_budget(
    kind: EngineKind,
    m: Machine,
    st: &CpuState,
    at_post: Option<AtPost>,
    limit: Duration,
    budget: u64,
    inspect: &mut dyn FnMut(EngineKind, &Machine),
) -> Option<Outcome> {
    // Shown with --nocapture (the KVM test VM's log): which engine a long
    // or stuck run is on.
    eprintln!("platform: starting a run on {}", kind.name());
    let mut s = match Session::new(m, kind, Options::default(), st) {
        Ok(s) => s,
        Err(e) if kind != EngineKind::Kvm => panic!("{}: {e}", kind.name()),
        Err(e) if std::env::var_os("RINGLAB_REQUIRE_KVM").is_some() => {
            panic!("RINGLAB_REQUIRE_KVM is set but KVM is not usable: {e}")
        }
        Err(e) => {
            crate::skip(format!("KVM is not usable on this host: {e}"));
            return None;
        }
    };
    let limits = Limits {
        max_icount: kind.counts_instructions().then_some(budget),
        deadline: Some(Instant::now() + limit),
        breakpoints: vec![],
    };
    let stop = loop {
        let stop = match s.run_until(&limits) {
            Ok(stop) => stop,
            // kvm-pvm stops on what it cannot run (IRET in unpaged
            // protected mode, ...) and says so: this host lacks hardware
            // virtualization.
            Err(e)
                if kind == EngineKind::Kvm
                    && matches!(e.error, machine::EngineError::Unsupported(_))
                    && std::env::var_os("RINGLAB_REQUIRE_KVM").is_none() =>
            {
                crate::skip(format!(
                    "this host's KVM cannot run the guest: {}",
                    machine::Chain(&e)
                ));
                return None;
            }
            Err(e) => panic!("{} failed: {}", kind.name(), machine::Chain(&e)),
        };
        match (stop, at_post) {
            (Stop::PostCode { code }, Some(f)) => {
                s.m.clear_stop();
                f(code, &mut s.m);
            }
            (stop, _) => break stop,
        }
    };
    eprintln!(
        "platform: {} stopped after {} instructions: {stop}",
        kind.name(),
        s.m.icount()
    );
    inspect(kind, &s.m);
    let screen = s.m.screen().text();
    let records = s.m.trace.records();
    let skip = records.len().saturating_sub(EVENTS_SHOWN);
    let events = records.skip(skip).map(|r| format!("{r:?}\n")).collect();
    Some(Outcome {
        stop,
        serial: String::from_utf8_lossy(s.m.serial_output()).into_owned(),
        screen: screen.trim_end().to_string() + "\n",
        events,
    })
}

/// Runs `tests/guests/NAME.S` on every engine (see the module comment) and
/// returns the interpreter's transcript after checking that the others
/// match it.
pub fn run_everywhere(name: &str, setup: &dyn Fn(&mut Machine)) -> String {
    run_everywhere_inspecting(name, setup, &mut |_, _| {})
}

/// `run_everywhere`, with `inspect` called on each engine's final machine.
pub fn run_everywhere_inspecting(
    name: &str,
    setup: &dyn Fn(&mut Machine),
    inspect: &mut dyn FnMut(EngineKind, &Machine),
) -> String {
    run_everywhere_hosting(name, setup, None, inspect)
}

/// `run_everywhere_inspecting`, with `at_post` (if any) called whenever
/// the guest writes a POST code (see [`AtPost`]).
pub fn run_everywhere_hosting(
    name: &str,
    setup: &dyn Fn(&mut Machine),
    at_post: Option<AtPost>,
    inspect: &mut dyn FnMut(EngineKind, &Machine),
) -> String {
    let image = build(name);
    // Generous: the test VM runs the interpreter under TCG.
    let limit = Duration::from_secs(120);
    let interp = run_on_hosting(EngineKind::Interp, &image, setup, at_post, limit, inspect)
        .expect("the interpreter always runs");
    for kind in [EngineKind::Bt, EngineKind::Kvm] {
        if let Some(o) = run_on_hosting(kind, &image, setup, at_post, limit, inspect) {
            if o.transcript() != interp.transcript() {
                eprintln!("{name}: {}'s last events:\n{}", kind.name(), o.events);
            }
            assert_eq!(
                o.transcript(),
                interp.transcript(),
                "{name}: {} differs from the interpreter",
                kind.name()
            );
        }
    }
    interp.transcript()
}

/// The host end of COM1 for a test: the bytes, then EOF. Like a file on
/// stdin, it always has the next byte when the UART asks.
pub struct SerialBytes(std::vec::IntoIter<u8>);

impl SerialBytes {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Box<SerialBytes> {
        Box::new(SerialBytes(bytes.into().into_iter()))
    }
}

impl machine::devices::uart::SerialInput for SerialBytes {
    fn next(&mut self) -> Option<u8> {
        self.0.next()
    }
    fn ended(&self) -> bool {
        self.0.len() == 0
    }
}
