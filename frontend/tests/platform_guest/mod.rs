//! The tests crate's platform guests (tests/guests/*.S with platform.inc
//! and multiboot.inc), assembled for `ringlab run`: flat images linked at
//! 1 MiB whose multiboot header (the a.out kludge) makes `run` load them
//! there and enter them in protected mode, as the tests::platform harness
//! does.

// Each test binary that includes this uses a part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

fn guests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/guests")
}

/// A fresh directory under the target's test tmpdir (tests run in
/// parallel threads: each build and each test's files get their own).
pub fn scratch(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "platform-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn tool(name: &str, args: &[&str]) {
    let out = Command::new(name).args(args).output().unwrap_or_else(|e| {
        panic!("cannot run {name} (GNU binutils are needed: apt-get install binutils): {e}")
    });
    assert!(
        out.status.success(),
        "{name} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Assembles tests/guests/NAME.S into DIR/NAME.bin (`defsyms`: `--defsym`
/// assignments such as "SECTORS=2048").
pub fn build_in(dir: &Path, name: &str, defsyms: &[&str]) -> PathBuf {
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let src = guests_dir().join(format!("{name}.S"));
    let (obj, elf, bin) = (
        dir.join(format!("{name}.o")),
        dir.join(format!("{name}.elf")),
        dir.join(format!("{name}.bin")),
    );
    let mut args = vec![
        "--32".to_string(),
        "-I".to_string(),
        s(&guests_dir()),
        "-o".to_string(),
        s(&obj),
    ];
    for d in defsyms {
        args.push("--defsym".to_string());
        args.push(d.to_string());
    }
    args.push(s(&src));
    tool("as", &args.iter().map(String::as_str).collect::<Vec<_>>());
    tool(
        "ld",
        &[
            "-m",
            "elf_i386",
            "-nostdlib",
            "-N",
            "-Ttext=0x100000",
            "-e",
            "start",
            "-o",
            &s(&elf),
            &s(&obj),
        ],
    );
    tool(
        "objcopy",
        &["-O", "binary", "-j", ".text", &s(&elf), &s(&bin)],
    );
    bin
}

/// Assembles tests/guests/NAME.S in a scratch directory of its own.
pub fn build(name: &str) -> PathBuf {
    build_in(&scratch(name), name, &[])
}
