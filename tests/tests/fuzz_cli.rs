//! Fuzzing the command line (issue 20, item 3).
//!
//! Two targets, property-based with proptest (stable Rust, shrinking):
//!
//! - `fuzz_parse`: random argv built from the real grammar — the
//!   subcommands, their long and short flags and their possible values,
//!   read from clap's own definition (`ringlab::cli::command`) so a new
//!   flag is fuzzed without touching this file — mixed with numbers, paths
//!   and junk (including bytes that are not UTF-8). clap must never panic;
//!   a usage error must render as ringlab's one-line error.
//! - `fuzz_run`: whole `ringlab run` command lines on small guests (a
//!   lesson, a tiny boot sector, junk files, a ROM, file-backed disks),
//!   with the options that are checked after parsing (--mem, --format,
//!   --load-addr, --bios, --disk, --rtc, --keys, --boot, --switch-at,
//!   --deprivilege, --timeout, --type-after, --json, --trace, --vga term),
//!   run in-process to a small --max-instructions budget. Properties: no
//!   panic; an error carries a status of the contract (2 usage, 4 bad
//!   image, 6 engine) and a non-empty message; a disk image never changes
//!   size. --gdb (which waits for a debugger), --vga window, KVM and
//!   stdin are left out of whole runs; the parser target covers them.
//!
//! `PROPTEST_CASES=N` runs N cases per target (a soak),
//! `PROPTEST_RNG_SEED=S` other cases than CI's (`tests::fuzz`).

use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::sync::Mutex;
use tests::fuzz::{config, full_run};

/// One subcommand's vocabulary: its flags (with whether they take a
/// value) and the values its arguments accept.
#[derive(Clone, Debug)]
struct Vocab {
    name: String,
    flags: Vec<(String, bool)>,
    values: Vec<String>,
}

/// Every subcommand's flags and possible values, from clap's definition.
fn vocabulary() -> Vec<Vocab> {
    let cmd = ringlab::cli::command();
    let mut out = vec![];
    let mut add = |name: String, c: &clap::Command| {
        let mut flags = vec![];
        let mut values = vec![];
        for a in c.get_arguments() {
            let takes = a.get_action().takes_values();
            if let Some(l) = a.get_long() {
                flags.push((format!("--{l}"), takes));
            }
            if let Some(s) = a.get_short() {
                flags.push((format!("-{s}"), takes));
            }
            values.extend(
                a.get_possible_values()
                    .iter()
                    .map(|v| v.get_name().to_string()),
            );
        }
        out.push(Vocab {
            name,
            flags,
            values,
        });
    };
    add(String::new(), &cmd);
    for sub in cmd.get_subcommands() {
        add(sub.get_name().to_string(), sub);
    }
    out
}

/// Values worth giving any flag: numbers at the edges, addresses, engine
/// names, paths. No host names: --gdb would resolve them (DNS).
const VALUES: &[&str] = &[
    "0",
    "1",
    "-1",
    "32",
    "3072",
    "3073",
    "18446744073709551616",
    "0x7c00",
    "0X100000",
    "0xffffffff",
    "0x100000000",
    "1e3",
    "nan",
    "inf",
    "0.5",
    "5000:kvm",
    "5_000:bt",
    ":interp",
    "9:",
    "now",
    "2026-02-30",
    "1969-12-31T23:59:59",
    ":1234",
    "1234",
    "65536",
    "127.0.0.1:0",
    "[::1]:1",
    "hello",
    "rings",
    "xv6",
    "/nonexistent/x.img",
    "/dev/null",
    "",
    "=",
    "--",
    "-",
    "\\xZZ",
    "\u{1F600}",
];

/// One argv token: a flag of the subcommand (maybe `--flag=value`), a
/// value, or junk.
#[derive(Clone, Debug)]
enum Tok {
    Flag(usize, Option<usize>),
    Value(usize),
    Known(usize),
    Junk(String),
    NotUtf8(Vec<u8>),
}

fn argv_strategy(vocab: Vec<Vocab>) -> impl Strategy<Value = Vec<OsString>> {
    let n = vocab.len();
    (
        0..n + 1,
        prop::collection::vec(
            prop_oneof![
                6 => (any::<usize>(), prop::option::weighted(0.2, any::<usize>()))
                    .prop_map(|(f, v)| Tok::Flag(f, v)),
                3 => any::<usize>().prop_map(Tok::Value),
                3 => any::<usize>().prop_map(Tok::Known),
                1 => "[-a-z0-9:=_./]{0,12}".prop_map(Tok::Junk),
                1 => prop::collection::vec(any::<u8>(), 1..6).prop_map(Tok::NotUtf8),
            ],
            0..8,
        ),
    )
        .prop_map(move |(sub, toks)| {
            // sub == n: a subcommand name that does not exist.
            let v = &vocab[sub % n];
            let mut argv: Vec<OsString> = vec!["ringlab".into()];
            if sub == n {
                argv.push("frobnicate".into());
            } else if !v.name.is_empty() {
                argv.push(v.name.clone().into());
            }
            let value = |i: usize| -> String {
                if !v.values.is_empty() && i.is_multiple_of(2) {
                    v.values[(i / 2) % v.values.len()].clone()
                } else {
                    VALUES[i % VALUES.len()].to_string()
                }
            };
            for t in toks {
                argv.push(match t {
                    Tok::Flag(f, val) if !v.flags.is_empty() => {
                        let (flag, _) = &v.flags[f % v.flags.len()];
                        match val {
                            Some(i) => format!("{flag}={}", value(i)).into(),
                            None => flag.clone().into(),
                        }
                    }
                    Tok::Flag(..) => "--help".into(),
                    Tok::Value(i) => value(i).into(),
                    Tok::Known(i) => VALUES[i % VALUES.len()].into(),
                    Tok::Junk(s) => s.into(),
                    Tok::NotUtf8(mut b) => {
                        b.push(0xFF);
                        OsString::from_vec(b)
                    }
                });
            }
            argv
        })
}

#[test]
fn the_command_line_definition_is_consistent() {
    // clap's own checks (conflicting names, bad defaults, requires that
    // name no argument, ...), which it otherwise runs only in debug
    // builds when a command line is parsed.
    ringlab::cli::command().debug_assert();
}

#[test]
fn fuzz_parse() {
    let vocab = vocabulary();
    assert!(vocab.len() >= 8, "{vocab:?}");
    assert!(vocab
        .iter()
        .any(|v| v.name == "run" && v.flags.iter().any(|(f, _)| f == "--switch-at")));
    let tally = Mutex::new(BTreeMap::<String, u64>::new());
    let mut runner = TestRunner::new(config(3000));
    let r = runner.run(&argv_strategy(vocab), |argv| {
        let k = match ringlab::cli::try_parse(argv.clone()) {
            Ok(()) => format!("ok {}", argv.get(1).and_then(|a| a.to_str()).unwrap_or("")),
            Err(e) if !e.use_stderr() => "help or version".to_string(),
            Err(e) => {
                let msg = ringlab::cli::clap_error(&e);
                prop_assert!(msg.starts_with("ringlab: error: "), "{msg}");
                prop_assert!(msg.len() > "ringlab: error: ".len() + 5, "{msg}");
                format!("{:?}", e.kind())
            }
        };
        *tally.lock().unwrap().entry(k).or_default() += 1;
        Ok(())
    });
    let t = tally.into_inner().unwrap();
    eprintln!("parse: {t:?}");
    r.unwrap_or_else(|e| panic!("{e}"));
    if !full_run(3000) {
        return;
    }
    // The generator reaches successful parses of the main subcommands,
    // help, and several kinds of usage error.
    for k in ["ok run", "ok compare", "ok step", "help or version"] {
        assert!(t.get(k).copied().unwrap_or(0) > 0, "never {k}: {t:?}");
    }
    assert!(
        t.keys()
            .filter(|k| !k.starts_with("ok") && *k != "help or version")
            .count()
            >= 4,
        "{t:?}"
    );
}

// ---------------------------------------------------------------------------
// Whole runs

/// Files the runs use, made once.
struct Files {
    dir: PathBuf,
}

impl Files {
    fn new() -> Files {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("fuzz-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A boot sector: print 'A' on the debug console, then spin.
        let mut boot = vec![0xB0, b'A', 0xE6, 0xE9, 0xEB, 0xFE];
        boot.resize(512, 0);
        boot[510] = 0x55;
        boot[511] = 0xAA;
        std::fs::write(dir.join("boot.bin"), &boot).unwrap();
        std::fs::write(dir.join("junk.bin"), b"\x7fELF\x01\x01junk").unwrap();
        std::fs::write(dir.join("empty.bin"), b"").unwrap();
        std::fs::write(dir.join("rom.bin"), machine::firmware::BIOS).unwrap();
        std::fs::write(dir.join("short-rom.bin"), vec![0xEA; 4096]).unwrap();
        std::fs::write(dir.join("keys.txt"), b"ls\n").unwrap();
        std::fs::write(dir.join("odd.img"), vec![0u8; 1000]).unwrap();
        Files { dir }
    }
    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        // Left-over files in the target directory are harmless.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `ringlab run` command line: (guest, options), each option a list of
/// tokens; `disks` fresh disk images to create first (sizes in sectors).
#[derive(Clone, Debug)]
struct RunSpec {
    guest: Vec<&'static str>,
    opts: Vec<Vec<&'static str>>,
    budget: &'static str,
    disks: Vec<u8>,
    snapshot: bool,
}

fn one_of(xs: &'static [&'static [&'static str]]) -> impl Strategy<Value = Vec<&'static str>> {
    prop::sample::select(xs).prop_map(|x| x.to_vec())
}

fn run_spec() -> impl Strategy<Value = RunSpec> {
    // @x stands for the file x in the test's directory.
    let guest = one_of(&[
        &["--lesson", "hello"],
        &["--lesson", "rings"],
        &["--lesson", "protected"],
        &["--lesson", "nosuch"],
        &["--lesson", "xv6"],
        &["@boot.bin"],
        &["@junk.bin"],
        &["@empty.bin"],
        &["/nonexistent/boot.bin"],
        &["@"],
        &[],
    ]);
    let opt = one_of(&[
        &["--mem", "1"],
        &["--mem", "2"],
        &["--mem", "0"],
        &["--mem", "4000"],
        &["--format", "flat"],
        &["--format", "multiboot"],
        &["--load-addr", "0x7c00"],
        &["--load-addr", "0x500"],
        &["--load-addr", "0xfffff"],
        &["--load-addr", "0x100000"],
        &["--bios", "@rom.bin"],
        &["--bios", "@short-rom.bin"],
        &["--bios", "/nonexistent/rom.bin"],
        &["--disk", "@odd.img"],
        &["--disk", "/nonexistent/d.img"],
        &["--rtc", "now"],
        &["--rtc", "1999-12-31T23:59:59"],
        &["--keys", "ab\\n"],
        &["--keys", "\\xZZ"],
        &["--keys-file", "@keys.txt"],
        &["--keys-file", "/nonexistent/keys"],
        &["--boot", "firmware"],
        &["--boot", "direct"],
        &["--engine", "bt"],
        &["--engine", "interp"],
        &["--switch-at", "100:bt"],
        &["--switch-at", "100:interp"],
        &["--deprivilege"],
        &["--timeout", "5"],
        &["--timeout", "0"],
        &["--timeout", "nan"],
        &["--stats"],
        &["--trace", "@t.jsonl"],
        &["--json", "@r.json"],
        &["--json", "/nonexistent/r.json"],
        &["--vga", "term"],
        &["--type-after", "$ "],
    ]);
    (
        guest,
        prop::collection::vec(opt, 0..4),
        prop::sample::select(&["0", "1", "500", "3000"][..]),
        prop::collection::vec(prop_oneof![Just(1u8), Just(4), Just(63)], 0..3),
        any::<bool>(),
    )
        .prop_map(|(guest, opts, budget, disks, snapshot)| RunSpec {
            guest,
            opts,
            budget,
            disks,
            snapshot,
        })
}

#[test]
fn fuzz_run() {
    use ringlab::status;
    let files = Files::new();
    let tally = Mutex::new(BTreeMap::<u8, u64>::new());
    let case = std::sync::atomic::AtomicU64::new(0);
    let mut runner = TestRunner::new(config(400));
    let r = runner.run(&run_spec(), |spec| {
        let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let at = |t: &str| match t.strip_prefix('@') {
            Some(name) => files.path(name),
            None => t.to_string(),
        };
        let mut argv: Vec<OsString> = vec!["ringlab".into(), "run".into()];
        argv.extend(spec.guest.iter().map(|t| at(t).into()));
        for o in &spec.opts {
            argv.extend(o.iter().map(|t| at(t).into()));
        }
        // Disk images: file-backed, a pattern in each, sizes checked after.
        let mut disks = vec![];
        for (i, &sectors) in spec.disks.iter().enumerate() {
            let p = files.dir.join(format!("disk-{n}-{i}.img"));
            let bytes: Vec<u8> = (0..sectors as usize * 512)
                .map(|b| (b * 13) as u8)
                .collect();
            std::fs::write(&p, &bytes).unwrap();
            argv.push("--disk".into());
            argv.push(p.clone().into());
            disks.push((p, bytes.len() as u64));
        }
        if spec.snapshot {
            argv.push("--snapshot".into());
        }
        argv.extend([
            "--no-input".into(),
            "--max-instructions".into(),
            spec.budget.into(),
        ]);
        let code = match ringlab::cli::main_with(argv.clone()) {
            Ok(code) => code,
            Err(e) => {
                let code = status::of_error(&e);
                let msg = format!("{e:#}");
                prop_assert!(!msg.trim().is_empty());
                prop_assert!(
                    [status::USAGE, status::BAD_IMAGE, status::ENGINE_ERROR].contains(&code),
                    "{argv:?}: status {code} for the error {msg}"
                );
                code
            }
        };
        for (p, len) in &disks {
            let now = std::fs::metadata(p).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(now.len(), *len, "{:?}: disk size changed", argv);
            let _ = std::fs::remove_file(p);
        }
        *tally.lock().unwrap().entry(code).or_default() += 1;
        Ok(())
    });
    let t = tally.into_inner().unwrap();
    eprintln!("run statuses: {t:?}");
    r.unwrap_or_else(|e| panic!("{e}"));
    if !full_run(400) {
        return;
    }
    // Runs that reach the budget, and the two kinds of refusal.
    for code in [status::LIMIT, status::USAGE, status::BAD_IMAGE] {
        assert!(
            t.get(&code).copied().unwrap_or(0) > 0,
            "never status {code}: {t:?}"
        );
    }
}
