//! What the frontend's test binaries share: the skip protocol.
//!
//! The same protocol as the tests crate's `tests::skip` (tests/src/skip.rs),
//! which these binaries cannot use (the tests crate depends on `ringlab`):
//! a skipped check is printed to stderr and, when RINGLAB_SKIP_LOG names a
//! file, appended to it as one line `<binary>::<test>: <reason>`, in a
//! single write to a file opened for appending so that lines of tests
//! running in parallel land whole. `scripts/test.sh` lists the lines in its
//! summary.

use std::io::Write;

/// Reports that `who` (`binary::test`) left a check out for `reason`.
pub fn skip(who: &str, reason: &str) {
    // One line per skip: a multi-line reason would break the log's format.
    let reason = reason.split_whitespace().collect::<Vec<_>>().join(" ");
    eprintln!("skipped {who}: {reason}");
    if let Some(path) = std::env::var_os("RINGLAB_SKIP_LOG").filter(|p| !p.is_empty()) {
        let line = format!("{who}: {reason}\n");
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        // A log that cannot be written would hide the skip from the summary.
        if let Err(e) = written {
            panic!(
                "RINGLAB_SKIP_LOG={}: cannot append to it: {e}",
                path.to_string_lossy()
            );
        }
    }
}
