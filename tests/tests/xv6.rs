//! xv6, MIT's x86 teaching Unix, unmodified (issue 18).
//!
//! `scripts/xv6-images.sh` builds `xv6.img` (boot block and kernel) and
//! `fs.img` (the file system) from `../shared/guests/xv6-public` beside the
//! repository, or from a clone of github.com/mit-pdos/xv6-public, with
//! Debian's gcc; the images are cached under `target/xv6`. These tests
//! build them, check the boot disk's signature, and boot xv6 through
//! ringlab's BIOS on the interpreter and the translator to the shell's
//! prompt, with 512 MiB of RAM as xv6's `make qemu` gives QEMU.
//!
//! Only the way to the prompt is checked: input does not reach xv6's
//! shell yet. Its uartinit writes MCR = 0, and ringlab's 16550A lets the
//! IRQ out only with MCR OUT2, as the PC's serial adapter does (QEMU does
//! not gate it); and scripted keys (`--keys`) are all taken by the BIOS's
//! keyboard handler before xv6 is loaded.
//!
//! A host without the tools (gcc, make, binutils, perl; the script names
//! the packages) or the source skips, with the reason; under CI (`CI`
//! set) that fails instead: `scripts/test.sh` installs them.

use machine::cpu::CpuState;
use machine::disk::DiskImage;
use machine::{Limits, Stop};
use ringlab::engines::EngineKind;
use ringlab::session::{Options, Session};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tests::firmware::bios_machine_with_ram;
use tests::skip;

/// The RAM of the xv6 machines: QEMU's `-m 512` in xv6's Makefile. Its
/// kernel maps and frees memory up to PHYSTOP (224 MiB).
const RAM: usize = 512 << 20;

/// What xv6 prints on COM1 from power-on to the shell's first prompt (its
/// console also goes to the screen, after the BIOS's lines).
const TO_THE_PROMPT: &str = "xv6...\n\
    cpu0: starting 0\n\
    sb: size 1000 nblocks 941 ninodes 200 nlog 30 logstart 2 inodestart 32 bmap start 58\n\
    init: starting sh\n\
    $ ";

/// Instructions allowed to reach the prompt: xv6 gets there in about 14
/// million (BIOS POST included).
const BUDGET: u64 = 60_000_000;

/// The two images, as the script printed their paths.
struct Images {
    xv6: PathBuf,
    fs: PathBuf,
}

/// The script's exit statuses for "cannot build here" (see its header).
const MISSING_TOOL: i32 = 3;
const NO_SOURCE: i32 = 4;

/// Builds the images once for all the tests of this binary. Err: why the
/// tests cannot run on this host (tools or source missing); a failed
/// build panics.
fn images() -> &'static Result<Images, String> {
    static IMAGES: OnceLock<Result<Images, String>> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let script = root.join("scripts/xv6-images.sh");
        let out = Command::new("bash")
            .arg(&script)
            .current_dir(&root)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
        let stderr = String::from_utf8_lossy(&out.stderr);
        match out.status.code() {
            Some(0) => {}
            Some(MISSING_TOOL | NO_SOURCE) => return Err(stderr.trim().to_string()),
            _ => panic!("scripts/xv6-images.sh failed ({}):\n{stderr}", out.status),
        }
        let stdout = String::from_utf8(out.stdout).expect("paths in UTF-8");
        let paths: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            paths.len(),
            2,
            "the script prints two paths, xv6.img then fs.img; it printed {stdout:?}"
        );
        Ok(Images {
            xv6: PathBuf::from(paths[0]),
            fs: PathBuf::from(paths[1]),
        })
    })
}

/// The images, or None with the skip reported (a failure under CI, where
/// scripts/test.sh installs the tools and the source is beside the
/// checkout).
fn images_or_skip() -> Option<&'static Images> {
    match images() {
        Ok(i) => Some(i),
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("CI is set, and xv6 cannot be built here: {why}")
        }
        Err(why) => {
            skip(format!("xv6 cannot be built on this host: {why}"));
            None
        }
    }
}

#[test]
fn images_build_and_the_boot_disk_is_signed() {
    let Some(img) = images_or_skip() else { return };
    let xv6 = std::fs::read(&img.xv6).expect("xv6.img");
    let fs = std::fs::read(&img.fs).expect("fs.img");
    assert_eq!(img.xv6.file_name().unwrap(), "xv6.img");
    assert_eq!(img.fs.file_name().unwrap(), "fs.img");
    // The Makefile's dd: 10000 sectors, the boot block in the first and
    // the kernel (an ELF file) from the second.
    assert_eq!(xv6.len(), 10_000 * 512, "xv6.img's size");
    assert_eq!(&xv6[510..512], &[0x55, 0xAA], "sector 0 ends with 55 AA");
    assert_eq!(
        &xv6[512..516],
        b"\x7fELF",
        "the kernel follows the boot block"
    );
    // mkfs: FSSIZE (1000) blocks of 512 bytes.
    assert_eq!(fs.len(), 1000 * 512, "fs.img's size");
}

/// Boots xv6 on `kind` until its COM1 output ends with the shell's
/// prompt, or the budget or two minutes run out; returns the COM1 output
/// and the instructions it took (to within the slice).
fn boot_to_the_prompt(kind: EngineKind, img: &Images) -> (String, u64, Stop) {
    let mut m = bios_machine_with_ram(RAM);
    // In memory: xv6 writes its log to fs.img at boot, and the cached
    // images must stay as built.
    for (drive, path) in [(0, &img.xv6), (1, &img.fs)] {
        let bytes = std::fs::read(path).expect("the image");
        m.attach_disk(drive, DiskImage::from_bytes(bytes).expect("a disk"));
    }
    let mut s = Session::new(m, kind, Options::default(), &CpuState::reset())
        .unwrap_or_else(|e| panic!("{}: {e}", kind.name()));
    let deadline = Instant::now() + Duration::from_secs(120);
    // In slices, so the run ends soon after the prompt.
    let slice = 1_000_000;
    loop {
        let limits = Limits {
            max_icount: Some((s.m.icount() + slice).min(BUDGET)),
            deadline: Some(deadline),
            breakpoints: vec![],
        };
        let stop = s
            .run_until(&limits)
            .unwrap_or_else(|e| panic!("{} failed: {}", kind.name(), machine::Chain(&e)));
        let serial = String::from_utf8_lossy(s.m.serial_output()).into_owned();
        if serial.ends_with("$ ") || stop != Stop::Budget || s.m.icount() >= BUDGET {
            return (serial, s.m.icount(), stop);
        }
    }
}

fn boots_to_the_prompt_on(kind: EngineKind) {
    let Some(img) = images_or_skip() else { return };
    let (serial, icount, stop) = boot_to_the_prompt(kind, img);
    eprintln!(
        "xv6 on {}: {icount} instructions, stopped: {stop}",
        kind.name()
    );
    assert_eq!(
        serial,
        TO_THE_PROMPT,
        "{}: xv6's COM1 output from power-on (stopped after {icount} instructions: {stop})",
        kind.name()
    );
}

#[test]
fn boots_to_the_shell_prompt_on_the_interpreter() {
    boots_to_the_prompt_on(EngineKind::Interp);
}

#[test]
fn boots_to_the_shell_prompt_on_the_translator() {
    boots_to_the_prompt_on(EngineKind::Bt);
}
