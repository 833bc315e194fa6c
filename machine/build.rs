//! Assembles ringlab's BIOS (firmware/bios.S and the files it includes)
//! into a 64 KiB ROM image with GNU binutils; `machine::firmware::BIOS`
//! embeds it.

use std::path::{Path, PathBuf};
use std::process::Command;

fn tool(name: &str, args: &[&str]) {
    let out = Command::new(name).args(args).output().unwrap_or_else(|e| {
        panic!(
            "machine: cannot run `{name}` ({e}). The firmware is built with GNU binutils \
             (as, ld, objcopy): install them with `sudo apt-get install binutils`."
        )
    });
    if !out.status.success() {
        panic!(
            "machine: `{name} {}` failed:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let dir = manifest.join("firmware");
    println!("cargo:rerun-if-changed={}", dir.display());
    for e in std::fs::read_dir(&dir).expect("machine/firmware") {
        let p = e.expect("a firmware file").path();
        println!("cargo:rerun-if-changed={}", p.display());
    }
    let s = |p: &Path| p.to_str().expect("UTF-8 build paths").to_string();
    let (obj, elf, bin) = (
        out.join("bios.o"),
        out.join("bios.elf"),
        out.join("bios.bin"),
    );
    tool(
        "as",
        &[
            "--32",
            "-I",
            &s(&dir),
            "-o",
            &s(&obj),
            &s(&dir.join("bios.S")),
        ],
    );
    tool(
        "ld",
        &[
            "-m",
            "elf_i386",
            "-nostdlib",
            "-Ttext=0",
            "-e",
            "reset",
            "-o",
            &s(&elf),
            &s(&obj),
        ],
    );
    tool(
        "objcopy",
        &["-O", "binary", "-j", ".text", &s(&elf), &s(&bin)],
    );
    let len = std::fs::metadata(&bin).expect("bios.bin").len();
    assert_eq!(
        len, 0x10000,
        "the BIOS image must be exactly 64 KiB, not {len} bytes"
    );
}
