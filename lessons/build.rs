//! Assembles and links the lesson guests with GNU binutils.
//!
//! Each guest is `guests/NAME.S` (GNU as, Intel syntax). Flat guests (boot
//! sectors) are linked at their load address and stripped to raw bytes with
//! objcopy; multiboot guests stay ELF32.

use std::path::{Path, PathBuf};
use std::process::Command;

/// (name, format, link address)
const GUESTS: &[(&str, &str, u32)] = &[
    ("reset", "flat", 0x7C00),
    ("hello", "flat", 0x7C00),
    ("protected", "flat", 0x7C00),
    ("interrupts", "flat", 0x7C00),
    ("rings", "multiboot", 0x10_0000),
    ("paging", "multiboot", 0x10_0000),
    ("popek-goldberg", "multiboot", 0x10_0000),
    ("nanobench", "multiboot", 0x10_0000),
    ("determinism", "multiboot", 0x10_0000),
    ("compute", "flat", 0x7C00),
    ("ticks", "flat", 0x7C00),
];

/// The benchmark suite's guests (`guests/suite/NAME.S`, each a boot
/// sector including `guests/suite/boot.inc`), built as `suite-NAME.bin`.
const SUITE: &[&str] = &[
    "empty", "lcg", "strcopy", "fib", "sort", "real16", "prot16", "paging",
];

fn tool(name: &str, args: &[&str]) {
    let out = Command::new(name).args(args).output().unwrap_or_else(|e| {
        panic!(
            "lessons: cannot run `{name}` ({e}). The lesson guests are built with GNU binutils \
             (as, ld, objcopy): install them with `sudo apt-get install binutils`."
        )
    });
    if !out.status.success() {
        panic!(
            "lessons: `{name} {}` failed:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn main() {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    for &(name, format, addr) in GUESTS {
        let src = manifest.join("guests").join(format!("{name}.S"));
        println!("cargo:rerun-if-changed={}", src.display());
        let obj = out_dir.join(format!("{name}.o"));
        let elf = out_dir.join(format!("{name}.elf"));
        let s = |p: &Path| p.to_str().expect("UTF-8 build paths").to_string();
        tool("as", &["--32", "-o", &s(&obj), &s(&src)]);
        let ttext = format!("-Ttext=0x{addr:x}");
        tool(
            "ld",
            &[
                "-m",
                "elf_i386",
                "-nostdlib",
                &ttext,
                "-e",
                "start",
                "-o",
                &s(&elf),
                &s(&obj),
            ],
        );
        match format {
            "flat" => {
                let bin = out_dir.join(format!("{name}.bin"));
                tool(
                    "objcopy",
                    &["-O", "binary", "-j", ".text", &s(&elf), &s(&bin)],
                );
            }
            "multiboot" => {
                std::fs::copy(&elf, out_dir.join(format!("{name}.bin")))
                    .expect("copy the ELF image");
            }
            other => panic!("lessons: unknown guest format {other}"),
        }
    }
    let suite = manifest.join("guests").join("suite");
    println!(
        "cargo:rerun-if-changed={}",
        suite.join("boot.inc").display()
    );
    for name in SUITE {
        let src = suite.join(format!("{name}.S"));
        println!("cargo:rerun-if-changed={}", src.display());
        let s = |p: &Path| p.to_str().expect("UTF-8 build paths").to_string();
        let obj = out_dir.join(format!("suite-{name}.o"));
        let elf = out_dir.join(format!("suite-{name}.elf"));
        let bin = out_dir.join(format!("suite-{name}.bin"));
        tool("as", &["--32", "-I", &s(&suite), "-o", &s(&obj), &s(&src)]);
        tool(
            "ld",
            &[
                "-m",
                "elf_i386",
                "-nostdlib",
                "-N",
                "-Ttext=0x7c00",
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
    }
    println!("cargo:rerun-if-changed=build.rs");
}
