//! Assembles the test guests in `guests/` (GNU as, boot sectors linked at
//! 0x7C00) at build time, so test binaries carry them and can run where
//! no binutils are installed (the QEMU/SVM VM of scripts/kvm-vm-tests.sh).

use std::path::PathBuf;
use std::process::Command;

const GUESTS: &[&str] = &["ticks"];

fn tool(name: &str, args: &[&str]) {
    let out = Command::new(name).args(args).output().unwrap_or_else(|e| {
        panic!(
            "tests: cannot run `{name}` ({e}); install GNU binutils: sudo apt-get install binutils"
        )
    });
    assert!(
        out.status.success(),
        "tests: `{name} {}` failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    for name in GUESTS {
        let src = dir.join("guests").join(format!("{name}.S"));
        println!("cargo:rerun-if-changed={}", src.display());
        let p = |ext: &str| {
            out.join(format!("{name}.{ext}"))
                .to_str()
                .expect("UTF-8")
                .to_string()
        };
        tool("as", &["--32", "-o", &p("o"), src.to_str().expect("UTF-8")]);
        tool(
            "ld",
            &[
                "-m",
                "elf_i386",
                "-nostdlib",
                "-Ttext=0x7c00",
                "-e",
                "start",
                "-o",
                &p("elf"),
                &p("o"),
            ],
        );
        tool(
            "objcopy",
            &["-O", "binary", "-j", ".text", &p("elf"), &p("bin")],
        );
    }
}
