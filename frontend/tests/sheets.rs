//! Every command of every lab sheet runs as written, and does what the
//! sheet's expect blocks say (the conventions are in lessons/src/lib.rs:
//! `ringlab ...` lines of ```sh blocks, statements of the ```expect block
//! after them).
//!
//! Each command runs in a fresh temporary directory (sheets write traces).
//! `ringlab step` commands run in a real terminal: tmux (installed by
//! scripts/test.sh) at 120x40, their `keys:` typed with send-keys, their
//! `screen:` read back with capture-pane; then `q`. Without tmux they are
//! skipped — unless CI is set, where that fails.
//!
//! KVM: commands on `--engine kvm` take the block's `[kvm-pvm]` statements
//! where this host's KVM is kvm-pvm (which must expect exit status 6 and
//! quote kvm-pvm's explanation: the sheet parser enforces it), the
//! `[hw-kvm]` ones where it is hardware virtualization, and are skipped
//! where there is no usable /dev/kvm. Skips are printed and appended to the
//! file named by RINGLAB_SKIP_LOG as `sheets::<test>: <reason>`.
//!
//! xv6's lesson has no guest built in: its commands need xv6's images,
//! which `scripts/xv6-images.sh` builds. Where the tools or the source are
//! missing its sheet test is skipped (a failure under CI, where
//! scripts/test.sh installs them), and `ringlab lesson xv6` is only checked
//! to print the sheet.

mod support;

use lessons::sheet::{self, Block, Check, Command, Host, Stream};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long one command may take (`ringlab bench` is the longest).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a `screen:` statement waits for its text.
const SCREEN_TIMEOUT: Duration = Duration::from_secs(10);

/// This host's KVM: None when there is no usable /dev/kvm.
fn kvm_host() -> Option<Host> {
    match ringlab::engines::kvm_host().ok()? {
        engine_kvm::host::HostKind::Pvm => Some(Host::KvmPvm),
        _ => Some(Host::HwKvm),
    }
}

fn skip(test: &str, reason: &str) {
    support::skip(&format!("sheets::{test}"), reason);
}

/// The script's exit statuses for "cannot build here": a tool or the
/// source is missing (see its header).
const MISSING_TOOL: i32 = 3;
const NO_SOURCE: i32 = 4;

/// Why the lesson's guest cannot run on this host: None for a built-in
/// guest, or for xv6 once its images are built (once for the whole test
/// binary; a failed build panics).
fn guest_unavailable(lesson: &lessons::Lesson) -> Option<&'static str> {
    static XV6: OnceLock<Option<String>> = OnceLock::new();
    if lesson.builtin().is_some() {
        return None;
    }
    XV6.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/xv6-images.sh");
        let out = std::process::Command::new("bash")
            .arg(&script)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
        let stderr = String::from_utf8_lossy(&out.stderr);
        match out.status.code() {
            Some(0) => None,
            Some(MISSING_TOOL | NO_SOURCE) => Some(stderr.trim().to_string()),
            _ => panic!("scripts/xv6-images.sh failed ({}):\n{stderr}", out.status),
        }
    })
    .as_deref()
}

/// A fresh, empty directory for one command.
fn workdir(lesson: &str, n: usize) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("sheets")
        .join(format!("{lesson}-{n}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// ANSI escape sequences out (`--vga term` colours the screen), runs of
/// spaces and tabs made one space.
fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        if c == ' ' || c == '\t' {
            if !out.ends_with(' ') {
                out.push(' ');
            }
            continue;
        }
        out.push(c);
    }
    out
}

fn contains(haystack: &str, needle: &str) -> bool {
    normalize(haystack).contains(&normalize(needle))
}

struct Ran {
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `ringlab ARGS` in `dir`, stdin closed, with a time limit.
fn run(args: &[String], dir: &Path) -> Result<Ran, String> {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ringlab"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start ringlab: {e}"))?;
    let reader = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            String::from_utf8_lossy(&v).into_owned()
        })
    };
    let out = reader(Box::new(child.stdout.take().unwrap()));
    let err = reader(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > COMMAND_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("still running after {COMMAND_TIMEOUT:?}: killed"));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Ran {
        status: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    })
}

/// Checks one finished command against the statements that apply.
fn check_output(ran: &Ran, dir: &Path, checks: &[&Check], exit: u8) -> Vec<String> {
    let mut bad = Vec::new();
    if ran.status != Some(exit as i32) {
        bad.push(format!(
            "exit status {:?}, the sheet expects {exit}",
            ran.status
        ));
    }
    if ran.stderr.contains("panicked") {
        bad.push("ringlab panicked".into());
    }
    if exit == 0 && ran.stderr.contains("ringlab: error:") {
        bad.push("an error message, where the sheet expects none".into());
    }
    let mut lines = Vec::new();
    for c in checks {
        match c {
            Check::Exit(_) => {}
            Check::Contains {
                stream,
                text,
                present,
            } => {
                let (name, s) = match stream {
                    Stream::Stdout => ("stdout", &ran.stdout),
                    Stream::Stderr => ("stderr", &ran.stderr),
                };
                if contains(s, text) != *present {
                    bad.push(format!(
                        "{name} {} {text:?}",
                        if *present { "lacks" } else { "has" }
                    ));
                }
            }
            Check::StdoutLine(l) => lines.push(l.as_str()),
            Check::File {
                name,
                text,
                present,
            } => match std::fs::read_to_string(dir.join(name)) {
                Err(e) => bad.push(format!("file {name}: {e}")),
                Ok(s) => {
                    if contains(&s, text) != *present {
                        bad.push(format!(
                            "file {name} {} {text:?}",
                            if *present { "lacks" } else { "has" }
                        ));
                    }
                }
            },
            Check::Keys(_) | Check::Screen(_) => unreachable!("the parser keeps these to step"),
        }
    }
    if !lines.is_empty() {
        let want: String = lines.iter().map(|l| format!("{l}\n")).collect();
        if ran.stdout != want {
            bad.push(format!("stdout is not exactly\n{want}"));
        }
    }
    if !bad.is_empty() {
        bad.push(format!(
            "-- stdout --\n{}-- stderr --\n{}",
            ran.stdout, ran.stderr
        ));
    }
    bad
}

/// A tmux server of its own, removed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn tmux(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-t", "sheet"]).stdout)
            .into_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

/// Runs a `ringlab step` command in tmux: types the keys, waits for each
/// screen text, then quits with q and checks the exit status.
fn run_step(c: &Command, dir: &Path, checks: &[&Check], exit: u8) -> Vec<String> {
    let t = Tmux {
        socket: format!(
            "ringlab-sheets-{}-{}",
            std::process::id(),
            dir.file_name().unwrap().to_string_lossy()
        ),
    };
    // The words are plain (the parser refuses quotes and the like), so the
    // command line is safe for the shell tmux starts it with.
    let line = format!(
        "{} {} ; echo $? > status",
        env!("CARGO_BIN_EXE_ringlab"),
        c.args.join(" ")
    );
    let dir_s = dir.to_str().unwrap();
    let out = t.tmux(&[
        "new-session",
        "-d",
        "-s",
        "sheet",
        "-x",
        "120",
        "-y",
        "40",
        "-c",
        dir_s,
        &line,
    ]);
    if !out.status.success() {
        return vec![format!(
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )];
    }
    for check in checks {
        match check {
            Check::Keys(keys) => {
                let mut args = vec!["send-keys", "-t", "sheet"];
                args.extend(keys.iter().map(String::as_str));
                t.tmux(&args);
            }
            Check::Screen(text) => {
                let start = Instant::now();
                loop {
                    let s = t.screen();
                    if contains(&s, text) {
                        break;
                    }
                    if start.elapsed() > SCREEN_TIMEOUT {
                        return vec![format!(
                            "waited {SCREEN_TIMEOUT:?} for {text:?} on the screen:\n{s}"
                        )];
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            Check::Exit(_) => {}
            _ => unreachable!("the parser keeps output checks out of step blocks"),
        }
    }
    t.tmux(&["send-keys", "-t", "sheet", "q"]);
    let start = Instant::now();
    let status = loop {
        if let Ok(s) = std::fs::read_to_string(dir.join("status")) {
            if s.ends_with('\n') {
                break s.trim().to_string();
            }
        }
        if start.elapsed() > SCREEN_TIMEOUT {
            return vec![format!(
                "q did not end `ringlab step` within {SCREEN_TIMEOUT:?}; the screen:\n{}",
                t.screen()
            )];
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if status != exit.to_string() {
        return vec![format!("exit status {status}, the sheet expects {exit}")];
    }
    Vec::new()
}

fn tmux_available() -> bool {
    std::process::Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs every command of the lesson's sheet; panics with every failure.
fn sheet_runs_as_written(name: &str) {
    let lesson = lessons::find(name).expect("a lesson");
    let blocks: Vec<Block> =
        sheet::parse(lesson.sheet).unwrap_or_else(|e| panic!("sheets/{name}.md: {e}"));
    assert!(!blocks.is_empty(), "sheets/{name}.md has no command");
    if let Some(why) = guest_unavailable(lesson) {
        let why = format!("the lesson's guest cannot be built on this host: {why}");
        assert!(std::env::var_os("CI").is_none(), "{why} (CI is set)");
        skip(name, &why);
        return;
    }
    let host = kvm_host();
    let mut failures = Vec::new();
    let mut n = 0;
    for b in &blocks {
        let checks = b.checks_on(host);
        let exit = b.exit_on(host);
        for c in &b.commands {
            n += 1;
            if c.uses_kvm() && host.is_none() {
                skip(
                    name,
                    &format!(
                        "line {}: `{}`: no usable /dev/kvm on this host",
                        c.line, c.text
                    ),
                );
                continue;
            }
            if c.is_step() && !tmux_available() {
                let why = format!("line {}: `{}` needs tmux, which is missing", c.line, c.text);
                assert!(
                    std::env::var_os("CI").is_none(),
                    "{why} (CI is set: install tmux)"
                );
                skip(name, &why);
                continue;
            }
            let dir = workdir(name, n);
            eprintln!("sheets/{name}.md:{}: {}", c.line, c.text);
            let bad = if c.is_step() {
                run_step(c, &dir, &checks, exit)
            } else {
                match run(&c.args, &dir) {
                    Ok(ran) => check_output(&ran, &dir, &checks, exit),
                    Err(e) => vec![e],
                }
            };
            if !bad.is_empty() {
                failures.push(format!(
                    "sheets/{name}.md:{}: `{}`:\n{}",
                    c.line,
                    c.text,
                    bad.join("\n")
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

macro_rules! sheets {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                sheet_runs_as_written($name);
            }
        )*

        /// The tests above are every lesson's, and every sheet file is a
        /// lesson's.
        #[test]
        fn every_sheet_has_its_test() {
            let tested: Vec<&str> = vec![$($name),*];
            let lessons: Vec<&str> = lessons::all().iter().map(|l| l.name).collect();
            assert_eq!(tested, lessons, "one test per lesson, in course order");
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../lessons/sheets");
            let mut files: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|f| f.ends_with(".md"))
                .collect();
            files.sort();
            let mut want: Vec<String> = lessons.iter().map(|n| format!("{n}.md")).collect();
            want.sort();
            assert_eq!(files, want, "every file in lessons/sheets is a lesson's sheet");
        }
    };
}

sheets! {
    reset => "reset",
    hello => "hello",
    protected => "protected",
    interrupts => "interrupts",
    rings => "rings",
    paging => "paging",
    popek_goldberg => "popek-goldberg",
    nanobench => "nanobench",
    determinism => "determinism",
    xv6 => "xv6",
}

/// `ringlab lesson xv6` prints xv6's sheet, then the comparison of xv6
/// booted to its first prompt; where xv6 cannot be built it prints the
/// sheet all the same, and the reason.
#[test]
fn the_xv6_lesson_prints_its_sheet_then_boots_xv6() {
    let l = lessons::find("xv6").expect("the xv6 lesson");
    let ran = run(&["lesson".into(), "xv6".into()], &workdir("xv6-lesson", 0)).unwrap();
    let sheet = sheet::for_students(l.sheet, l.name, false);
    assert!(ran.stdout.starts_with(&sheet), "{}", ran.stdout);
    assert!(
        ran.stdout
            .contains("# Lab 9 — xv6: a real kernel on three engines"),
        "{}",
        ran.stdout
    );
    match guest_unavailable(l) {
        Some(_) => {
            let bad_image = ringlab::status::BAD_IMAGE as i32;
            assert_eq!(ran.status, Some(bad_image), "{}", ran.stderr);
            assert!(ran.stderr.contains("ringlab: error: "), "{}", ran.stderr);
        }
        None => {
            assert_eq!(ran.status, Some(0), "{}", ran.stderr);
            assert!(ran.stdout.contains("guest: lesson xv6: "), "{}", ran.stdout);
            assert!(contains(&ran.stdout, "bt same"), "{}", ran.stdout);
            assert!(
                ran.stdout.contains("init: starting sh\n$ "),
                "{}",
                ran.stdout
            );
        }
    }
}

/// `ringlab lesson NAME` keeps the answers back unless `--answers`, and
/// says that `--answers` exists.
#[test]
fn answers_only_with_answers() {
    let dir = workdir("answers", 0);
    for l in lessons::all() {
        let args = |extra: &[&str]| -> Vec<String> {
            ["lesson", l.name]
                .iter()
                .chain(extra)
                .map(|s| s.to_string())
                .collect()
        };
        let answers_text = l.sheet.split(sheet::ANSWERS).nth(1).expect("answers");
        let first_answer = answers_text
            .lines()
            .find(|s| s.starts_with("1. "))
            .expect("answer 1");
        let plain = run(&args(&[]), &dir).unwrap();
        // Without its guest, a lesson prints the sheet and fails after it.
        let status = match guest_unavailable(l) {
            None => 0,
            Some(_) => ringlab::status::BAD_IMAGE as i32,
        };
        assert_eq!(plain.status, Some(status), "{}: {}", l.name, plain.stderr);
        assert!(!plain.stdout.contains(sheet::ANSWERS), "{}", l.name);
        assert!(!plain.stdout.contains(first_answer), "{}", l.name);
        assert!(
            plain
                .stdout
                .contains(&format!("`ringlab lesson {} --answers`", l.name)),
            "{}",
            l.name
        );
        assert!(!plain.stdout.contains("```"), "{}", l.name);
        let with = run(&args(&["--answers"]), &dir).unwrap();
        assert_eq!(with.status, Some(status), "{}: {}", l.name, with.stderr);
        assert!(with.stdout.contains(sheet::ANSWERS), "{}", l.name);
        assert!(with.stdout.contains(first_answer), "{}", l.name);
    }
}

/// `ringlab lessons`: the summaries start in one column, whatever the
/// length of the names.
#[test]
fn lessons_list_is_aligned() {
    let ran = run(&["lessons".to_string()], &workdir("list", 0)).unwrap();
    assert_eq!(ran.status, Some(0));
    let mut columns = Vec::new();
    for l in lessons::all() {
        let line = ran
            .stdout
            .lines()
            .find(|s| s.trim_start().starts_with(&format!("{} ", l.name)))
            .unwrap_or_else(|| panic!("{} is not listed:\n{}", l.name, ran.stdout));
        columns.push(line.find(l.summary).expect("the summary"));
    }
    assert!(
        columns.iter().all(|&c| c == columns[0]),
        "{columns:?}\n{}",
        ran.stdout
    );
}
