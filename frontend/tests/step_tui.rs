//! `ringlab step` in a real terminal: tmux runs it, send-keys presses the
//! keys and capture-pane reads the screen back.
//!
//! The acceptance test of the stepping UI: stepping across the rings
//! lesson's INT 0x80 shows the ring going 3 -> 0, and running on shows it
//! back at 3. Needs tmux (scripts/test.sh installs it); without it the test
//! says so and does nothing.

use std::process::Command;
use std::time::{Duration, Instant};

struct Tmux {
    name: String,
}

impl Tmux {
    fn start(args: &[&str]) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            eprintln!("step UI test skipped: this host has no tmux (scripts/test.sh installs it)");
            return None;
        }
        let name = format!(
            "ringlab-test-{}-{}",
            std::process::id(),
            args.join("-").replace(['.', ' '], "_")
        );
        let mut cmd = vec![env!("CARGO_BIN_EXE_ringlab").to_string(), "step".into()];
        cmd.extend(args.iter().map(|s| s.to_string()));
        // A tmux server of its own (-L) per test: tests run in parallel,
        // and starting one shared server from several at once races.
        let st = Command::new("tmux")
            .args([
                "-L",
                &name,
                "new-session",
                "-d",
                "-s",
                &name,
                "-x",
                "160",
                "-y",
                "50",
            ])
            .arg(cmd.join(" "))
            .status()
            .expect("tmux new-session");
        assert!(st.success(), "tmux new-session failed");
        Some(Tmux { name })
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
        let start = Instant::now();
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            if start.elapsed() > Duration::from_secs(10) {
                panic!("waited 10 s for {what}; the screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The header line (the ring, the engine, the instruction count).
    fn header(s: &str) -> &str {
        s.lines().next().unwrap_or("")
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
        let _ = Command::new("tmux")
            .args(["-L", &self.name, "kill-server"])
            .status();
    }
}

fn ring_3_to_0_and_back(engine: &str) {
    let Some(t) = Tmux::start(&["--lesson", "rings", "--engine", engine]) else {
        return;
    };
    let s = t.wait("the UI", |s| s.contains("ready: press ? for the keys"));
    assert!(Tmux::header(&s).contains("RING 0 (kernel)"), "{s}");
    assert!(
        Tmux::header(&s).contains(&format!("engine {engine}")),
        "{s}"
    );

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

    // Step across it: the CPU is in ring 0, at the handler.
    let before = Tmux::icount(&s);
    t.keys("s");
    let s = t.wait("the step across INT 0x80 into ring 0", |x| {
        Tmux::icount(x) > before
            && Tmux::header(x).contains("RING 0 (kernel)")
            && x.contains("ring 3 -> 0 by INT")
    });
    assert!(Tmux::header(&s).contains("RING 0 (kernel)"), "{s}");

    // r: run to the next ring change, the handler's IRET back to ring 3.
    t.keys("r");
    let s = t.wait("ring 3 again", |s| {
        Tmux::header(s).contains("RING 3 (user)")
            && s.contains("stopped after")
            && s.contains("hello from ring 3")
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
    // The kernel's write system call printed on COM1.
    assert!(s.contains("hello from ring 3"), "{s}");

    // ? lists the keys; any key closes the list; q quits.
    t.keys("?");
    t.wait("the key list", |s| {
        s.contains("switch engine: move the running machine")
    });
    t.keys("x");
    t.wait("the list closed", |s| {
        !s.contains("switch engine: move the running machine")
    });
    t.keys("q");
    t.wait("ringlab to quit", |s| !s.contains("ringlab step:"));
}

#[test]
fn stepping_across_int_0x80_shows_ring_3_to_0_and_back_on_the_interpreter() {
    ring_3_to_0_and_back("interp");
}

#[test]
fn stepping_across_int_0x80_shows_ring_3_to_0_and_back_on_the_translator() {
    ring_3_to_0_and_back("bt");
}

#[test]
fn switching_engine_from_the_ui_keeps_the_machine() {
    let Some(t) = Tmux::start(&["--lesson", "rings"]) else {
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
            && s.contains(&moved)
            && s.contains("engine switched interp -> bt")
    });
    assert!(
        s.contains(&format!(
            "moved the machine from interp to bt at instruction {at}"
        )),
        "{s}"
    );
    assert!(s.contains("engine switched interp -> bt"), "{s}");
    assert!(Tmux::header(&s).contains("RING 3 (user)"), "{s}");
    // Continue on the translator to the end: the lesson halts.
    t.keys("c");
    let s = t.wait("the guest to halt", |s| {
        s.contains("halted with interrupts disabled")
            && s.contains("kernel: exit(0) from ring 3, halting")
    });
    assert!(s.contains("kernel: exit(0) from ring 3, halting"), "{s}");
    // A breakpoint prompt takes a hex address.
    t.keys("b");
    t.wait("the breakpoint prompt", |s| {
        s.contains("linear address (hex")
    });
    t.keys("100000");
    t.keys("Enter");
    t.wait("the breakpoint", |s| {
        s.contains("breakpoint at 0x00100000 set")
    });
}
