//! `ringlab step` in a real terminal: tmux runs it at a given size,
//! send-keys presses the keys and capture-pane reads the screen back.
//!
//! The acceptance tests of the stepping UI, at 80x24 (the smallest it
//! lays out in full) and 120x40: stepping across the rings lesson's INT
//! 0x80 shows the ring going 3 -> 0 and back, the stack pane labels the
//! frame the CPU pushed, the memory pane dumps a typed address, restart
//! starts again, and after the KVM engine fails (kvm-pvm cannot run ring 3)
//! switching to the interpreter goes on; `ringlab xv6 --step` across one
//! of xv6's system calls, ring 3 -> 0 -> 3, on the interpreter and the
//! translator. The key bar is on the last line at every size.
//!
//! Needs tmux (scripts/test.sh installs it). Without it a test fails when
//! CI is set; otherwise it says why on stderr, appends
//! `step_tui::<test>: <reason>` to the file $RINGLAB_SKIP_LOG names (the
//! skips the test script lists), and passes.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

/// Reports a skipped test: stderr, and a line in $RINGLAB_SKIP_LOG.
fn skip(test: &str, reason: &str) {
    support::skip(&format!("step_tui::{test}"), reason);
}

struct Tmux {
    name: String,
    height: usize,
}

impl Tmux {
    /// `ringlab step ARGS` in a tmux window of `w`x`h`; None (the test
    /// skipped, and why reported) without tmux.
    fn start(test: &str, w: u16, h: u16, args: &[&str]) -> Option<Tmux> {
        let mut cmd = vec!["step"];
        cmd.extend_from_slice(args);
        Tmux::start_command(test, w, h, &cmd)
    }

    /// `ringlab ARGS` (a command that opens the step UI) in a tmux window
    /// of `w`x`h`; None without tmux, as `start`.
    fn start_command(test: &str, w: u16, h: u16, args: &[&str]) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            let why = "this host has no tmux (scripts/test.sh installs it)";
            if std::env::var_os("CI").is_some() {
                panic!("step_tui::{test}: {why}, and CI is set: the step UI must be tested");
            }
            skip(test, why);
            return None;
        }
        let name = format!("ringlab-test-{}-{test}", std::process::id());
        let mut cmd = vec![env!("CARGO_BIN_EXE_ringlab").to_string()];
        cmd.extend(args.iter().map(|s| s.to_string()));
        // A tmux server of its own (-L) per test: tests run in parallel,
        // and starting one shared server from several at once races.
        let st = Command::new("tmux")
            .args(["-L", &name, "new-session", "-d", "-s", &name])
            .args(["-x", &w.to_string(), "-y", &h.to_string()])
            .arg(cmd.join(" "))
            .status()
            .expect("tmux new-session");
        assert!(st.success(), "tmux new-session failed");
        Some(Tmux {
            name,
            height: h as usize,
        })
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.name, "capture-pane", "-p", "-t", &self.name])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, k: &str) {
        let st = Command::new("tmux")
            .args(["-L", &self.name, "send-keys", "-t", &self.name, k])
            .status()
            .expect("tmux send-keys");
        assert!(st.success());
    }

    /// Waits until the screen satisfies `pred` (10 s at most).
    fn wait(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.wait_up_to(10, what, pred)
    }

    /// Waits until the screen satisfies `pred` (`secs` at most) and has
    /// settled: the same on two captures 50 ms apart. tmux can be caught
    /// between the parts of one redraw (CI once saw the new header with
    /// the previous stop's status line), and the callers assert more than
    /// `pred` on the screen returned. A screen that satisfies `pred` but
    /// never settles is returned at the deadline.
    fn wait_up_to(&self, secs: u64, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if pred(&s) {
                std::thread::sleep(Duration::from_millis(50));
                let again = self.screen();
                if again == s || start.elapsed() > Duration::from_secs(secs) {
                    return s;
                }
                continue;
            }
            if start.elapsed() > Duration::from_secs(secs) {
                panic!("waited {secs} s for {what}; the screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The header line (the ring, the engine, the instruction count).
    fn header(s: &str) -> &str {
        s.lines().next().unwrap_or("")
    }

    /// The screen's lines trimmed and joined: the status message, which
    /// wraps at narrow sizes, reads as one line.
    fn flat(s: &str) -> String {
        s.lines().map(str::trim).collect::<Vec<_>>().join(" ")
    }

    /// The bottom line of the terminal: the key bar.
    fn bottom(&self, s: &str) -> String {
        s.lines().nth(self.height - 1).unwrap_or("").to_string()
    }

    /// The key bar is the last line, whole enough to quit and find help.
    fn assert_key_bar(&self, s: &str) {
        let b = self.bottom(s);
        assert!(
            b.starts_with(" s step") && b.contains("q quit"),
            "no key bar on the last line:\n{s}"
        );
    }

    /// The current instruction's line (marked =>).
    fn current(s: &str) -> String {
        s.lines()
            .find(|l| l.contains("│=>"))
            .map(|l| l.split('│').nth(1).unwrap_or("").to_string())
            .unwrap_or_default()
    }

    fn icount(s: &str) -> u64 {
        let h = Self::header(s);
        h.split("instructions ")
            .nth(1)
            .and_then(|t| t.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no instruction count in {h:?}"))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // After q the server has gone already: nothing to say then.
        let _ = Command::new("tmux")
            .args(["-L", &self.name, "kill-server"])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// The frame of the rings lesson's first INT 0x80, as the stack pane
/// labels it: the ring-0 stack from the TSS, EIP after the INT, the user's
/// CS, EFLAGS, ESP and SS.
const INT_FRAME: [&str; 5] = [
    "0008ffec 001000c8 EIP",
    "0008fff0 0000001b CS",
    "0008fff4 00000002 EFLAGS",
    "0008fff8 00080000 ESP",
    "0008fffc 00000023 SS",
];

fn ring_3_to_0_and_back(test: &str, engine: &str, w: u16, h: u16) {
    let Some(t) = Tmux::start(test, w, h, &["--lesson", "rings", "--engine", engine]) else {
        return;
    };
    let s = t.wait("the UI", |s| s.contains("ready: press ? for the keys"));
    assert!(Tmux::header(&s).contains("RING 0 (kernel)"), "{s}");
    assert!(
        Tmux::header(&s).contains(&format!("engine {engine}")),
        "{s}"
    );
    t.assert_key_bar(&s);
    assert!(s.contains("no interrupt or exception frame yet"), "{s}");

    // r: run to the first ring change, the kernel's IRET into ring 3.
    t.keys("r");
    // (Each wait asks for everything it then relies on: a capture may
    // catch the screen half redrawn.)
    let s = t.wait("ring 3", |s| {
        Tmux::header(s).contains("RING 3 (user)")
            && s.contains("ring 0 -> 3 by IRET")
            && Tmux::current(s).contains("  ")
    });

    // Step to the program's INT 0x80 (a few instructions on).
    let mut s = s;
    for _ in 0..40 {
        if Tmux::current(&s).contains("int 0x80") {
            break;
        }
        let before = Tmux::icount(&s);
        t.keys("s");
        s = t.wait("one step", |x| {
            Tmux::icount(x) > before
                && x.contains("stepped one instruction")
                && Tmux::current(x).contains("  ")
        });
        assert!(Tmux::header(&s).contains("RING 3 (user)"), "{s}");
    }
    assert!(
        Tmux::current(&s).contains("int 0x80"),
        "no INT 0x80 reached:\n{s}"
    );

    // Step across it: the CPU is in ring 0, at the handler, and the stack
    // pane shows the frame the CPU pushed, each slot named.
    let before = Tmux::icount(&s);
    t.keys("s");
    let s = t.wait("the step across INT 0x80 into ring 0", |x| {
        Tmux::icount(x) > before
            && Tmux::header(x).contains("RING 0 (kernel)")
            && x.contains("ring 3 -> 0 by INT")
            && x.contains("INT 0x80 frame at 3768, ring 3->0")
    });
    for slot in INT_FRAME {
        assert!(s.contains(slot), "no `{slot}` in the stack pane:\n{s}");
    }
    assert!(
        s.contains("ESP>0008ffec 001000c8 EIP"),
        "ESP not marked:\n{s}"
    );
    t.assert_key_bar(&s);

    // r: run to the next ring change, the handler's IRET back to ring 3.
    t.keys("r");
    let s = t.wait("ring 3 again", |s| {
        Tmux::header(s).contains("RING 3 (user)") && s.contains("stopped after")
    });
    let changes: Vec<&str> = s
        .lines()
        .filter(|l| l.starts_with('│') && (l.contains(" by IRET") || l.contains(" by INT")))
        .collect();
    assert!(
        changes.len() >= 3 && changes[changes.len() - 1].contains("ring 0 -> 3 by IRET"),
        "{changes:?}"
    );
    assert!(
        changes[changes.len() - 2].contains("ring 3 -> 0 by INT"),
        "{changes:?}"
    );
    // The frame stays in the stack pane after the IRET popped it, listed
    // with the values the CPU pushed.
    assert!(s.contains("INT 0x80 at 3768 pushed, ring 3->0:"), "{s}");
    for slot in INT_FRAME {
        assert!(
            s.contains(&format!("    {slot}")),
            "no `{slot}` listed:\n{s}"
        );
    }
    // The kernel's write system call printed on COM1 (at 80 columns the
    // console shares a column: Tab brings it up).
    if !s.contains("hello from ring 3") {
        t.keys("Tab");
    }
    let s = t.wait("the serial output", |s| s.contains("hello from ring 3"));
    t.assert_key_bar(&s);

    // ? lists the keys; any key closes the list; q quits.
    t.keys("?");
    t.wait("the key list", |s| s.contains("any key closes this list"));
    t.keys("x");
    t.wait("the list closed", |s| {
        !s.contains("any key closes this list")
    });
    t.keys("q");
    t.wait("ringlab to quit", |s| !s.contains("instructions"));
}

#[test]
fn int_0x80_ring_3_to_0_and_back_on_the_interpreter_at_80x24() {
    ring_3_to_0_and_back(
        "int_0x80_ring_3_to_0_and_back_on_the_interpreter_at_80x24",
        "interp",
        80,
        24,
    );
}

#[test]
fn int_0x80_ring_3_to_0_and_back_on_the_interpreter_at_120x40() {
    ring_3_to_0_and_back(
        "int_0x80_ring_3_to_0_and_back_on_the_interpreter_at_120x40",
        "interp",
        120,
        40,
    );
}

#[test]
fn int_0x80_ring_3_to_0_and_back_on_the_translator_at_80x24() {
    ring_3_to_0_and_back(
        "int_0x80_ring_3_to_0_and_back_on_the_translator_at_80x24",
        "bt",
        80,
        24,
    );
}

/// The memory pane, restart and the breakpoint prompt, at one size.
fn memory_and_restart(test: &str, w: u16, h: u16) {
    let Some(t) = Tmux::start(test, w, h, &["--lesson", "rings"]) else {
        return;
    };
    t.wait("the UI", |s| s.contains("ready: press ? for the keys"));
    t.keys("r");
    t.wait("ring 3", |s| Tmux::header(s).contains("RING 3 (user)"));
    // m, an address (the user's "hello from ring 3" string), Enter.
    t.keys("m");
    t.wait("the memory prompt", |s| {
        s.contains("dump at linear address (hex")
    });
    t.keys("10032f");
    t.keys("Enter");
    let s = t.wait("the memory pane", |s| {
        s.contains("memory pane at 0x0010032f (linear)") && s.contains("0010032f")
    });
    let row = s
        .lines()
        .find(|l| l.contains("0010032f 68656c6c 6f206672"))
        .unwrap_or_else(|| panic!("no dump row at 0010032f:\n{s}"));
    assert!(row.contains("hello fr"), "{row}");
    t.assert_key_bar(&s);
    // An unmapped address says so (no paging here: beyond RAM).
    t.keys("m");
    t.wait("the memory prompt", |s| {
        s.contains("dump at linear address (hex")
    });
    t.keys("f0000000");
    t.keys("Enter");
    let s = t.wait("the unmapped dump", |s| {
        s.contains("│f0000000  not mapped ")
    });
    t.assert_key_bar(&s);

    // A breakpoint at EIP, then c: it runs on (to the guest's end).
    t.keys("b");
    t.wait("the breakpoint prompt", |s| {
        s.contains("linear address (hex")
    });
    t.keys("Enter");
    t.wait("the breakpoint", |s| {
        s.contains("breakpoint at 0x001000b4 set")
    });
    t.keys("c");
    let s = t.wait("the guest to halt", |s| {
        s.contains("halted with interrupts disabled")
    });
    assert!(!s.contains("(0 instructions)"), "{s}");
    // Nothing more to run: say so, and how to start again.
    t.keys("s");
    t.wait("the stop", |s| {
        Tmux::flat(s).contains("nothing more to run -- x restarts it")
    });

    // x: the guest again from its entry, on the same engine.
    t.keys("x");
    let s = t.wait("the restart", |s| {
        Tmux::flat(s).contains("restarted: the guest reloaded") && Tmux::icount(s) == 0
    });
    assert!(Tmux::header(&s).contains("RING 0 (kernel)"), "{s}");
    assert!(Tmux::current(&s).contains("0010000c"), "{s}");
    t.keys("r");
    t.wait("ring 3 after the restart", |s| {
        Tmux::header(s).contains("RING 3 (user)") && Tmux::icount(s) == 3763
    });
}

#[test]
fn memory_pane_breakpoint_and_restart_at_80x24() {
    memory_and_restart("memory_pane_breakpoint_and_restart_at_80x24", 80, 24);
}

#[test]
fn memory_pane_breakpoint_and_restart_at_120x40() {
    memory_and_restart("memory_pane_breakpoint_and_restart_at_120x40", 120, 40);
}

/// Why this host has no KVM engine (/dev/kvm cannot be opened), if so.
fn no_kvm() -> Option<String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .err()
        .map(|e| format!("no KVM engine here: /dev/kvm: {e}"))
}

/// On this host KVM is kvm-pvm, which cannot IRET into ring 3 without
/// paging: the run ends in an engine error; w moves the machine to the
/// interpreter and r goes on from there.
fn kvm_error_then_interp(test: &str, w: u16, h: u16) {
    if let Some(why) = no_kvm() {
        skip(test, &why);
        return;
    }
    let Some(t) = Tmux::start(test, w, h, &["--lesson", "rings", "--engine", "kvm"]) else {
        return;
    };
    let s = t.wait("the UI on kvm", |s| {
        s.contains("ready: press ? for the keys")
    });
    assert!(Tmux::header(&s).contains("engine kvm"), "{s}");
    t.keys("r");
    let s = t.wait("the engine error (or ring 3)", |s| {
        s.contains("engine error on kvm") || Tmux::header(s).contains("RING 3 (user)")
    });
    if !s.contains("engine error on kvm") {
        skip(
            test,
            "KVM runs ring 3 on this host: no engine error to recover from",
        );
        return;
    }
    let flat = Tmux::flat(&s);
    assert!(flat.contains("kvm-pvm"), "{s}");
    assert!(
        flat.contains("(w moves the machine to another engine and goes on there; x restarts)"),
        "{s}"
    );
    t.assert_key_bar(&s);
    // r again on the failed engine: the same advice, no run.
    let at = Tmux::icount(&s);
    t.keys("r");
    let s = t.wait("the advice", |s| {
        Tmux::flat(s).contains("the kvm engine failed (w moves")
    });
    assert_eq!(Tmux::icount(&s), at);
    t.keys("w");
    t.wait("the engine prompt", |s| {
        s.contains("move the machine to: [i]nterp")
    });
    t.keys("i");
    let moved = format!("moved the machine from kvm to interp at instruction {at}");
    let s = t.wait("the switch", |s| {
        Tmux::header(s).contains("engine interp") && Tmux::flat(s).contains(&moved)
    });
    t.assert_key_bar(&s);
    t.keys("r");
    let s = t.wait("ring 3 on the interpreter", |s| {
        Tmux::header(s).contains("RING 3 (user)")
            && Tmux::flat(s)
                .contains("stopped after 1 instruction: ring 0 -> 3 by IRET at 0x1000b3")
    });
    assert!(!s.contains("(?)"), "{s}");
    // And on: into ring 0 by INT 0x80, its frame in the stack pane.
    t.keys("r");
    let s = t.wait("ring 0", |s| {
        Tmux::header(s).contains("RING 0 (kernel)") && s.contains("INT 0x80 frame")
    });
    for slot in INT_FRAME {
        assert!(s.contains(slot), "no `{slot}` in the stack pane:\n{s}");
    }
}

#[test]
fn kvm_error_then_switching_to_the_interpreter_goes_on_at_80x24() {
    kvm_error_then_interp(
        "kvm_error_then_switching_to_the_interpreter_goes_on_at_80x24",
        80,
        24,
    );
}

#[test]
fn kvm_error_then_switching_to_the_interpreter_goes_on_at_120x40() {
    kvm_error_then_interp(
        "kvm_error_then_switching_to_the_interpreter_goes_on_at_120x40",
        120,
        40,
    );
}

#[test]
fn switching_engine_from_the_ui_keeps_the_machine() {
    let test = "switching_engine_from_the_ui_keeps_the_machine";
    let Some(t) = Tmux::start(test, 120, 40, &["--lesson", "rings"]) else {
        return;
    };
    t.wait("the UI", |s| s.contains("ready: press ? for the keys"));
    t.keys("r");
    let s = t.wait("ring 3", |s| {
        Tmux::header(s).contains("RING 3 (user)") && s.contains("stopped after")
    });
    let at = Tmux::icount(&s);
    t.keys("w");
    t.wait("the engine prompt", |s| {
        s.contains("move the machine to: [i]nterp")
    });
    t.keys("b");
    let moved = format!("moved the machine from interp to bt at instruction {at}");
    let s = t.wait("the switch", |s| {
        Tmux::header(s).contains("engine bt")
            && Tmux::flat(s).contains(&moved)
            && s.contains("engine switched interp -> bt")
    });
    assert!(Tmux::header(&s).contains("RING 3 (user)"), "{s}");
    // The translator's host code has a place of its own at this size.
    assert!(s.contains("host code (x86-64) of the block at EIP"), "{s}");
    // Continue on the translator to the end: the lesson halts.
    t.keys("c");
    let s = t.wait("the guest to halt", |s| {
        s.contains("halted with interrupts disabled")
            && s.contains("kernel: exit(0) from ring 3, halting")
    });
    t.assert_key_bar(&s);
}

/// `ringlab step --gdb`: gdb connects and drives the guest (a breakpoint
/// on the system call handler, a stepi), the screen follows it (ring 0,
/// EIP at the handler's second instruction), and after gdb detaches the
/// keys drive the guest again from there, at 80x24.
#[test]
fn gdb_drives_the_step_ui_and_gives_it_back() {
    let test = "gdb_drives_the_step_ui_and_gives_it_back";
    if Command::new("gdb").arg("--version").output().is_err() {
        let why = "this host has no gdb (scripts/test.sh installs it)";
        assert!(
            std::env::var_os("CI").is_none(),
            "step_tui::{test}: {why}, and CI is set"
        );
        skip(test, why);
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let Some(t) = Tmux::start(test, 80, 24, &["--lesson", "rings", "--gdb", &port]) else {
        return;
    };
    t.wait("the UI", |s| {
        Tmux::flat(s).contains("gdb may connect on 127.0.0.1:")
    });
    let l = lessons::find("rings").unwrap().builtin().unwrap();
    let elf = std::env::temp_dir().join(format!("ringlab-step-gdb-{}.elf", std::process::id()));
    std::fs::write(&elf, l.elf).unwrap();
    let out = Command::new("gdb")
        .args(["-nx", "-q", "-batch"])
        .arg(&elf)
        .args(["-ex", &format!("target remote 127.0.0.1:{port}")])
        .args([
            "-ex",
            "break syscall",
            "-ex",
            "continue",
            "-ex",
            "stepi",
            "-ex",
            "detach",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&elf);
    let gdb = String::from_utf8_lossy(&out.stdout);
    assert!(
        gdb.contains("Breakpoint 1, 0x00100104 in syscall ()"),
        "{gdb}"
    );
    let s = t.wait("gdb's stop on the screen", |s| {
        Tmux::flat(s).contains("gdb detached; the keys drive the guest again")
    });
    assert!(Tmux::header(&s).contains("RING 0 (kernel)"), "{s}");
    assert!(
        Tmux::current(&s).contains("00100105"),
        "EIP after gdb's stepi:\n{s}"
    );
    t.assert_key_bar(&s);
    // The keys again: one step.
    t.keys("s");
    let s = t.wait("a step from the keys", |s| {
        Tmux::current(s).contains("00100106")
    });
    assert!(Tmux::header(&s).contains("RING 0 (kernel)"), "{s}");
    t.keys("q");
}

/// The frame of initcode's `int 0x40` (exec) as the stack pane labels it:
/// the process's kernel stack from the TSS, EIP after the INT, the user's
/// CS, EFLAGS, ESP and SS.
const XV6_INT_FRAME: [&str; 6] = [
    "INT 0x40 frame at",
    "ESP>8dffffec 00000013 EIP",
    "8dfffff0 0000001b CS",
    "8dfffff4 00000202 EFLAGS",
    "8dfffff8 00000ff4 ESP",
    "8dfffffc 00000023 SS",
];

/// xv6's images (scripts/xv6-images.sh, cached), or why this host cannot
/// build them (a failure when CI is set: scripts/test.sh installs the
/// tools and CI has the source beside the checkout).
fn xv6_images(test: &str) -> bool {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/xv6-images.sh");
    let out = Command::new("bash")
        .arg(script)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {script}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => true,
        // MISSING_TOOL, NO_SOURCE (the script's header).
        Some(3 | 4) if std::env::var_os("CI").is_none() => {
            skip(
                test,
                &format!("xv6 cannot be built on this host: {}", stderr.trim()),
            );
            false
        }
        _ => panic!("scripts/xv6-images.sh failed ({}):\n{stderr}", out.status),
    }
}

/// `ringlab xv6 --step` at 80x24: `r` runs to the kernel's first IRET
/// into ring 3 (initcode at 0), `r` again stops on initcode's `int 0x40`
/// into ring 0 with the system call's number (EAX 7, exec) in the trace
/// line and the frame the CPU pushed labelled in the stack pane, and `r`
/// once more is the IRET back to ring 3.
fn xv6_system_call(test: &str, engine: &str) {
    if !xv6_images(test) {
        return;
    }
    let Some(t) = Tmux::start_command(test, 80, 24, &["xv6", "--step", "--engine", engine]) else {
        return;
    };
    t.wait("the step UI", |s| s.contains("q quit"));
    t.keys("r");
    let s = t.wait("ring 3", |s| {
        Tmux::header(s).contains("RING 3 (user)") && Tmux::flat(s).contains("by IRET at 0x801058bc")
    });
    assert!(Tmux::current(&s).contains("00000000  push 0x24"), "{s}");
    t.assert_key_bar(&s);
    t.keys("r");
    let s = t.wait("ring 0 by the system call", |s| {
        Tmux::header(s).contains("RING 0 (kernel)")
    });
    let flat = Tmux::flat(&s);
    assert!(
        flat.contains("stopped after 5 instructions: ring 3 -> 0 by INT at 0x11 (EAX 0x7)"),
        "{s}"
    );
    for line in XV6_INT_FRAME {
        assert!(s.contains(line), "{line}:\n{s}");
    }
    t.keys("r");
    let s = t.wait("ring 3 again", |s| {
        Tmux::header(s).contains("RING 3 (user)")
    });
    assert!(
        Tmux::flat(&s).contains("ring 0 -> 3 by IRET at 0x801058bc"),
        "{s}"
    );
    t.assert_key_bar(&s);
    t.keys("q");
}

#[test]
fn an_xv6_system_call_ring_3_to_0_and_back_on_the_interpreter_at_80x24() {
    xv6_system_call("xv6_interp", "interp");
}

#[test]
fn an_xv6_system_call_ring_3_to_0_and_back_on_the_translator_at_80x24() {
    xv6_system_call("xv6_bt", "bt");
}

/// xv6's two images, xv6.img and fs.img: from $RINGLAB_XV6_IMAGES (the
/// KVM test VM, which has no compiler) or built (cached) by the script;
/// None where they cannot be built here (the skip reported).
fn xv6_image_paths(test: &str) -> Option<(String, String)> {
    if let Some(dir) = std::env::var_os("RINGLAB_XV6_IMAGES") {
        let dir = std::path::PathBuf::from(dir);
        let p = |f: &str| dir.join(f).to_string_lossy().into_owned();
        return Some((p("xv6.img"), p("fs.img")));
    }
    if !xv6_images(test) {
        return None;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/xv6-images.sh");
    let out = Command::new("bash")
        .arg(script)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("scripts/xv6-images.sh");
    let stdout = String::from_utf8(out.stdout).expect("paths in UTF-8");
    let paths: Vec<&str> = stdout.lines().collect();
    assert_eq!(paths.len(), 2, "two image paths: {stdout:?}");
    Some((paths[0].to_string(), paths[1].to_string()))
}

/// A KVM test here skips, saying why (`why`); where KVM must run
/// (RINGLAB_REQUIRE_KVM, the test VM) it fails instead.
fn kvm_skip(test: &str, why: &str) {
    if std::env::var_os("RINGLAB_REQUIRE_KVM").is_some() {
        panic!("step_tui::{test}: {why}, and RINGLAB_REQUIRE_KVM is set");
    }
    skip(test, why);
}

/// The value of the stack pane's second line (the word at ESP+4: at an
/// IRET, the CS it returns to).
fn stack_second_word(s: &str) -> Option<String> {
    let mut lines = s.lines().skip_while(|l| !l.contains("│ESP>"));
    lines.next()?;
    let next = lines.next()?;
    let pane = next.split('│').nth(1)?;
    pane.split_whitespace().nth(1).map(str::to_string)
}

/// The same system call on KVM, as a student does it in the step UI
/// (for the test VM, whose kvm_amd runs xv6; on kvm-pvm it skips): on
/// the interpreter to initcode's `int 0x40` (a breakpoint; KVM nested
/// under QEMU would single-step there, its breakpoints being compared
/// with the PC), `w k` and `s` across the INT (KVM's single step cannot
/// stop at a handler's first instruction, so the session makes that step
/// on the interpreter and comes back: the frame and the trace line are
/// the same), then a breakpoint on trapret's IRET, on the interpreter
/// `c` until the frame it pops returns to user mode (CS 0x1b; the disk's
/// and the timer's interrupts return to ring 0 through it first), `w k`
/// and `r`: KVM runs the IRET, ring 0 -> 3, to /init's first
/// instruction at 0.
#[test]
fn an_xv6_system_call_ring_3_to_0_and_back_on_kvm_at_80x24() {
    let test = "xv6_kvm";
    if let Some(why) = no_kvm() {
        kvm_skip(test, &why);
        return;
    }
    let Some((xv6, fs)) = xv6_image_paths(test) else {
        return;
    };
    let args = [
        "--mem",
        "512",
        "--disk",
        &xv6,
        "--disk",
        &fs,
        "--snapshot",
        "--engine",
        "interp",
        "--break",
        "0x11",
    ];
    let Some(t) = Tmux::start(test, 80, 24, &args) else {
        return;
    };
    // Under QEMU's TCG (the test VM) everything is slower: a minute each.
    let slow = 60;
    t.wait("the step UI", |s| s.contains("q quit"));
    t.keys("c");
    let s = t.wait_up_to(slow, "initcode's INT", |s| {
        Tmux::current(s).contains("00000011  int 0x40")
            && Tmux::flat(s).contains("breakpoint at 0x00000011")
    });
    assert!(Tmux::header(&s).contains("RING 3 (user)"), "{s}");
    let switch = |key: &str, engine: &str| -> Option<String> {
        t.keys("w");
        t.wait("the engine prompt", |s| {
            s.contains("move the machine to: [i]nterp")
        });
        t.keys(key);
        let s = t.wait_up_to(slow, "the switch", |s| {
            Tmux::header(s).contains(&format!("engine {engine}"))
                || Tmux::flat(s).contains("cannot switch to")
        });
        if Tmux::flat(&s).contains("cannot switch to") {
            kvm_skip(test, &format!("switching to {engine}: {}", Tmux::flat(&s)));
            return None;
        }
        Some(s)
    };
    if switch("k", "kvm").is_none() {
        return;
    }
    // s: ring 3 -> 0 by the INT, the call's number named.
    t.keys("s");
    let s = t.wait_up_to(slow, "ring 0 (or KVM's error)", |s| {
        Tmux::header(s).contains("RING 0 (kernel)") || Tmux::flat(s).contains("engine error")
    });
    if Tmux::flat(&s).contains("engine error") {
        let flat = Tmux::flat(&s);
        assert!(flat.contains("kvm-pvm"), "{s}");
        kvm_skip(test, "this host's kvm-pvm cannot run xv6 (32-bit paging)");
        return;
    }
    assert!(Tmux::header(&s).contains("engine kvm"), "{s}");
    for line in XV6_INT_FRAME {
        assert!(s.contains(line), "{line}:\n{s}");
    }
    assert!(
        Tmux::flat(&s).contains("stepped one instruction: ring 3 -> 0 by INT at 0x11 (EAX 0x7)"),
        "{s}"
    );
    // The breakpoint on trapret's IRET (the first 0 -> 3 of the earlier
    // runs was by IRET at this address), typed at the b prompt.
    t.keys("b");
    t.keys("0x801058bc");
    t.keys("Enter");
    t.wait("the breakpoint", |s| {
        Tmux::flat(s).contains("breakpoint at 0x801058bc set")
    });
    switch("i", "interp").expect("the interpreter is always there");
    let mut user_return = false;
    for _ in 0..50 {
        let before = Tmux::icount(&t.screen());
        t.keys("c");
        let s = t.wait_up_to(slow, "trapret's IRET", |s| {
            Tmux::icount(s) > before
                && Tmux::current(s).contains("801058bc  iret")
                && Tmux::flat(s).contains("breakpoint at 0x801058bc")
        });
        if stack_second_word(&s).as_deref() == Some("0000001b") {
            user_return = true;
            break;
        }
    }
    assert!(user_return, "no IRET back to user mode at trapret");
    switch("k", "kvm").expect("KVM ran the INT's step");
    // The breakpoint off again (b, the same address), then r.
    t.keys("b");
    t.keys("0x801058bc");
    t.keys("Enter");
    t.wait("the breakpoint cleared", |s| {
        Tmux::flat(s).contains("breakpoint at 0x801058bc cleared")
    });
    t.keys("r");
    let s = t.wait_up_to(slow, "ring 3 on kvm", |s| {
        Tmux::header(s).contains("RING 3 (user)")
    });
    assert!(Tmux::header(&s).contains("engine kvm"), "{s}");
    assert!(
        Tmux::flat(&s).contains("stopped after 1 instruction: ring 0 -> 3 by IRET at 0x801058bc"),
        "{s}"
    );
    // exec's return: /init's main, at 0.
    assert!(Tmux::current(&s).starts_with("=>00000000"), "{s}");
    t.assert_key_bar(&s);
    t.keys("q");
}
