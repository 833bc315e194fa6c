//! The skip protocol: how a test says that it left a check out, and why.
//!
//! A check skipped inside a passing test is invisible in `cargo test`'s
//! output (libtest captures what a passing test prints), so every place a
//! test skips a check calls [`skip`], which
//!
//! - prints `skipped <who>: <reason>` to stderr (seen with `--nocapture`, or
//!   when the test fails), and
//! - when the environment variable [`SKIP_LOG`] (`RINGLAB_SKIP_LOG`) names a
//!   file, appends one line `<who>: <reason>` to it.
//!
//! `<who>` is the test binary and the test, `kvm::hello_lesson_is_the_same_on_kvm`
//! (just the binary where the test's name is not known). `scripts/test.sh`
//! sets `RINGLAB_SKIP_LOG` on the host and in the QEMU/SVM VM of
//! `scripts/kvm-vm-tests.sh` and lists every line in its summary.
//!
//! Tests outside this crate follow the same protocol: the same variable
//! and the same line format, one line per skip, appended with a single
//! write to a file opened for appending so that lines of tests running in
//! parallel (threads or processes) do not interleave. engine-kvm's tests,
//! which this crate depends on, compile this very file in (`#[path]`), so
//! it uses nothing but std; the frontend's have their own copy
//! (`frontend/tests/support`).

use std::fmt::Display;
use std::io::Write;

/// The environment variable naming the skip log.
pub const SKIP_LOG: &str = "RINGLAB_SKIP_LOG";

/// Records that the running test skipped a check for `reason` (see the
/// module documentation). The test then returns (or goes on without the
/// check) as before: this only reports.
pub fn skip(reason: impl Display) {
    let who = who();
    // One line: a reason with line breaks (an engine error's text) would
    // break the log's one-line-per-skip format.
    let reason = reason
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    eprintln!("skipped {who}: {reason}");
    if let Some(path) = std::env::var_os(SKIP_LOG).filter(|p| !p.is_empty()) {
        append_line(std::path::Path::new(&path), &format!("{who}: {reason}\n"));
    }
}

/// Appends `line` to `path` with one `write` on a file opened with
/// O_APPEND: concurrent writers' lines land whole, one after another.
fn append_line(path: &std::path::Path, line: &str) {
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    // A skip log that cannot be written would silently hide the skip from
    // the summary: that is a failure of the test run, not something to
    // ignore.
    if let Err(e) = written {
        panic!("{SKIP_LOG}={}: cannot append to it: {e}", path.display());
    }
}

/// `binary::test`: the test binary's name without cargo's hash suffix and
/// the running test (libtest names each test's thread after the test).
fn who() -> String {
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|s| strip_hash(&s).to_string())
        .unwrap_or_else(|| "?".to_string());
    match std::thread::current().name() {
        Some(test) if test != "main" => format!("{binary}::{test}"),
        _ => binary,
    }
}

/// `kvm-0123456789abcdef` -> `kvm` (cargo's 16 hex digit suffix).
fn strip_hash(stem: &str) -> &str {
    match stem.rsplit_once('-') {
        Some((name, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            name
        }
        _ => stem,
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn the_hash_suffix_goes() {
        assert_eq!(strip_hash("kvm-0123456789abcdef"), "kvm");
        assert_eq!(
            strip_hash("bt_differential-fedcba9876543210"),
            "bt_differential"
        );
        assert_eq!(strip_hash("kvm"), "kvm");
        assert_eq!(strip_hash("step-tui"), "step-tui");
    }

    #[test]
    fn the_name_is_binary_and_test() {
        let w = who();
        // The binary: `tests` here, `binding` in engine-kvm (see above).
        let (binary, test) = w.split_once("::").expect("binary::test");
        assert_eq!(test, "skip::test::the_name_is_binary_and_test", "{w}");
        assert!(
            !binary.is_empty() && !binary.contains('-'),
            "no hash suffix: {w}"
        );
    }

    #[test]
    fn lines_from_many_threads_land_whole() {
        let path = std::env::temp_dir().join(format!("ringlab-skip-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let path = path.clone();
                std::thread::spawn(move || {
                    for i in 0..200 {
                        append_line(&path, &format!("t{t}: line {i} {}\n", "x".repeat(300)));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 8 * 200);
        for l in lines {
            assert!(l.starts_with('t') && l.ends_with(&"x".repeat(300)), "{l}");
        }
    }
}
