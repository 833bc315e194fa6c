//! Driving Debian's real gdb, in batch mode, against ringlab's gdb server
//! (`ringlab::gdb`, what `ringlab run --gdb` serves) on any engine.
//!
//! The server runs in the test's thread over a `Session`, exactly as
//! `run --gdb` runs it (so the KVM test VM, which has test binaries but no
//! ringlab binary, runs it too); gdb runs as a child process with the
//! commands as `-ex` arguments, its stdout and stderr in one file so their
//! order is kept. A watchdog kills gdb after a bound, which ends the
//! server's session: a stuck test fails, it never hangs.

use crate::skip;
use machine::{CpuState, Limits, Machine, Stop};
use ringlab::engines::EngineKind;
use ringlab::gdb::{Served, Server};
use ringlab::session::{Options, Session};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The gdb to drive: $RINGLAB_GDB (the KVM test VM's gdb-minimal), else
/// `gdb` on the PATH. None (with the skip said) where there is none; under
/// CI, which installs it (scripts/test.sh), that is a failure.
pub fn gdb() -> Option<PathBuf> {
    let exe = std::env::var_os("RINGLAB_GDB")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("gdb"));
    let works = Command::new(&exe)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if works {
        return Some(exe);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} does not run, and CI must run the gdb tests (scripts/test.sh installs gdb)",
        exe.display()
    );
    skip(format!(
        "{} does not run on this host (Debian: apt-get install gdb)",
        exe.display()
    ));
    None
}

/// What one gdb session gave.
pub struct GdbRun {
    /// gdb's output (stdout and stderr in order), the server's port
    /// replaced by PORT.
    pub transcript: String,
    /// How the run ended on ringlab's side.
    pub served: Served,
    /// The guest's COM1 output meanwhile.
    pub serial: String,
    /// The session after gdb (to look at the machine).
    pub session: Session,
}

/// Runs `m` from `entry` on `kind` under gdb with `commands` (after
/// `target remote`), gdb loading `elf` for symbols if given. None where
/// this host cannot (no gdb, no usable KVM, a KVM that cannot run the
/// guest: each said with `skip`; under RINGLAB_REQUIRE_KVM the KVM cases
/// fail instead).
pub fn session(
    kind: EngineKind,
    m: Machine,
    entry: &CpuState,
    elf: Option<&Path>,
    commands: &[&str],
) -> Option<GdbRun> {
    let gdb = gdb()?;
    let require_kvm = std::env::var_os("RINGLAB_REQUIRE_KVM").is_some();
    let mut s = match Session::new(m, kind, Options::default(), entry) {
        Ok(s) => s,
        Err(e) if kind == EngineKind::Kvm && !require_kvm => {
            skip(format!("KVM is not usable on this host: {e}"));
            return None;
        }
        Err(e) => panic!("{}: {e}", kind.name()),
    };
    let server = Server::bind("127.0.0.1:0".parse().unwrap()).expect("a free port");
    let addr = server.addr();
    let mut args: Vec<String> = vec!["-nx".into(), "-q".into(), "-batch".into()];
    if let Some(elf) = elf {
        args.push(elf.display().to_string());
    }
    args.push("-ex".into());
    args.push(format!("target remote {addr}"));
    for c in commands {
        args.push("-ex".into());
        args.push(c.to_string());
    }
    let out_path = std::env::temp_dir().join(format!(
        "ringlab-gdb-{}-{}.out",
        std::process::id(),
        addr.port()
    ));
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new(&gdb)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", gdb.display()));
    // The watchdog owns gdb: killed after the bound, which ends the
    // server's session too.
    let watchdog = std::thread::spawn(move || {
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                // A gdb that never connected (it failed to start, the
                // network is down) leaves the server waiting for one: a
                // connection that closes at once ends that wait.
                let _ = std::net::TcpStream::connect(addr);
                return (status, false);
            }
            if start.elapsed() > Duration::from_secs(300) {
                let _ = child.kill();
                return (child.wait().unwrap(), true);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let mut serial = Vec::new();
    let limits = Limits {
        max_icount: None,
        deadline: Some(Instant::now() + Duration::from_secs(300)),
        breakpoints: vec![],
    };
    let served = server.serve(&mut s, &limits, true, &mut |s: &mut Session| {
        serial.extend(s.m.take_serial_output());
        std::ops::ControlFlow::Continue(())
    });
    let (status, killed) = watchdog.join().unwrap();
    let transcript = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    assert!(
        !killed,
        "gdb did not finish in 300 s; its output:\n{transcript}"
    );
    let served = match served {
        Ok(x) => x,
        Err(e)
            if kind == EngineKind::Kvm
                && !require_kvm
                && e.chain().any(|c| {
                    matches!(
                        c.downcast_ref::<machine::EngineError>(),
                        Some(machine::EngineError::Unsupported(_))
                    )
                }) =>
        {
            skip(format!("this host's KVM cannot run the guest: {e:#}"));
            return None;
        }
        Err(e) => panic!(
            "{}: the gdb server failed: {e:#}\ngdb:\n{transcript}",
            kind.name()
        ),
    };
    // gdb's status is its last command's: not asserted (the transcript is).
    let _ = status;
    serial.extend(s.m.take_serial_output());
    Some(GdbRun {
        transcript: transcript.replace(&addr.to_string(), "127.0.0.1:PORT"),
        served,
        serial: String::from_utf8_lossy(&serial).into_owned(),
        session: s,
    })
}

/// The run ended with gdb's `kill`, or the guest's own `stop`.
pub fn ended(r: &GdbRun) -> Option<&Stop> {
    match &r.served {
        Served::Stop(s) => Some(s),
        Served::Killed => None,
    }
}

/// One transcript on every engine: the first run's is the snapshot
/// (`snapshot` asserts it, from the test's own file so insta finds it
/// there), every later one must equal it.
#[derive(Default)]
pub struct OneTranscript {
    first: Option<(EngineKind, String)>,
}

impl OneTranscript {
    pub fn check(&mut self, kind: EngineKind, transcript: &str, snapshot: impl FnOnce(&str)) {
        match &self.first {
            None => {
                snapshot(transcript);
                self.first = Some((kind, transcript.to_string()));
            }
            Some((k, t)) => assert_eq!(
                transcript,
                t,
                "gdb's transcript on {} differs from {}'s",
                kind.name(),
                k.name()
            ),
        }
    }
}

/// The code descriptors of `monitor info gdt` in `transcript` with their
/// accessed bit (type bit 0) set, where KVM ran on QEMU's TCG (the test
/// VM): its CPU sets the bit when it loads a data segment but not CS
/// (measured: xv6's 0x08 and 0x18, the rings guest's after its far JMP),
/// where the SDM (Vol 3A 3.4.5.1), hardware and ringlab's interpreter set
/// it for every segment register load. Lines of the form
/// `    1 sel 0008  00cf9a000000ffff  0008 base ... code ...`.
pub fn code_descriptors_accessed(transcript: &str) -> String {
    let mut out = String::new();
    for line in transcript.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let raw = (fields.len() > 3 && fields[1] == "sel" && line.contains(" code "))
            .then(|| u64::from_str_radix(fields[3], 16).ok())
            .flatten();
        match raw {
            Some(raw) => {
                out.push_str(&line.replacen(fields[3], &format!("{:016x}", raw | 1 << 40), 1))
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// This host's KVM runs on QEMU's TCG (the test VM's emulated SVM).
pub fn kvm_under_tcg() -> bool {
    engine_kvm::host::hypervisor_signature().as_deref() == Some("TCGTCGTCGTCG")
}
