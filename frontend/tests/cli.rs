//! `ringlab run` end to end: the exit status contract, stdout carrying
//! exactly the guest's COM1 bytes, and clear errors for bad images. The
//! guests are assembled here with GNU binutils (CI installs them).

use std::path::PathBuf;
use std::process::{Command, Output};

fn tmp(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
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

/// Assembles `body` (Intel syntax). `flat`: a real-mode image linked at
/// 0x7C00; else a 32-bit multiboot ELF linked at 1 MiB.
fn guest(name: &str, body: &str, flat: bool) -> PathBuf {
    let src = tmp(&format!("{name}.S"));
    let header = if flat {
        ".intel_syntax noprefix\n.code16\n.global start\nstart:\n".to_string()
    } else {
        // Multiboot header: magic, flags (memory info), checksum.
        ".intel_syntax noprefix\n.code32\n.global start\n.section .text\n.align 4\n\
         .long 0x1BADB002\n.long 0x00000002\n.long -(0x1BADB002 + 0x00000002)\nstart:\n"
            .to_string()
    };
    std::fs::write(&src, format!("{header}{body}\n")).unwrap();
    let obj = tmp(&format!("{name}.o"));
    let elf = tmp(&format!("{name}.elf"));
    let s = |p: &PathBuf| p.to_str().unwrap().to_string();
    tool("as", &["--32", "-o", &s(&obj), &s(&src)]);
    let ttext = if flat {
        "-Ttext=0x7c00"
    } else {
        "-Ttext=0x100000"
    };
    tool(
        "ld",
        &[
            "-m",
            "elf_i386",
            "-nostdlib",
            ttext,
            "-e",
            "start",
            "-o",
            &s(&elf),
            &s(&obj),
        ],
    );
    if !flat {
        return elf;
    }
    let bin = tmp(&format!("{name}.bin"));
    tool(
        "objcopy",
        &["-O", "binary", "-j", ".text", &s(&elf), &s(&bin)],
    );
    bin
}

fn ringlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringlab"))
        .args(args)
        .output()
        .unwrap()
}

fn run(image: &std::path::Path, extra: &[&str]) -> Output {
    let mut args = vec!["run", image.to_str().unwrap()];
    args.extend_from_slice(extra);
    ringlab(&args)
}

fn assert_clean_error(out: &Output, status: i32, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(status), "stderr: {err}");
    assert!(out.stdout.is_empty(), "nothing on stdout: {:?}", out.stdout);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("ringlab: error: "), "{err}");
    assert!(err.contains(needle), "{err:?} should mention {needle:?}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

/// Real mode: print "ok\n" on COM1 (and a byte on 0xE9, which is not
/// stdout), then exit through port 0xF4 with 0x10.
const PRINT_AND_EXIT: &str = r#"
    xor ax, ax
    mov ds, ax
    mov dx, 0x3fb
    mov al, 3
    out dx, al
    mov si, offset msg
1:  lodsb
    test al, al
    jz 2f
    mov dx, 0x3f8
    out dx, al
    jmp 1b
2:  mov al, 'x'
    out 0xe9, al
    mov al, 0x10
    out 0xf4, al
    hlt
msg: .asciz "ok\n"
"#;

#[test]
fn guest_exit_port_gives_v_shifted_or_one_and_stdout_is_com1_only() {
    let img = guest("exit", PRINT_AND_EXIT, true);
    let out = run(&img, &[]);
    assert_eq!(
        out.status.code(),
        Some(0x21),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"ok\n");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // --stats goes to stderr; stdout is unchanged.
    let out = run(&img, &["--stats"]);
    assert_eq!(out.stdout, b"ok\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("guest exit through port 0xf4 with value 0x10 (exit status 33)"),
        "{err}"
    );
    assert!(err.contains("instructions"), "{err}");
}

#[test]
fn bochs_shutdown_and_halt_with_interrupts_off_exit_zero() {
    let img = guest(
        "shutdown",
        r#"
    xor ax, ax
    mov ds, ax
    mov si, offset msg
    mov dx, 0x8900
1:  lodsb
    test al, al
    jz 2f
    out dx, al
    jmp 1b
2:  mov al, 0x55
    out 0xf4, al
msg: .asciz "Shutdown"
"#,
        true,
    );
    let out = run(&img, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let img = guest("cli_hlt", "cli\nhlt\n", true);
    let out = run(&img, &["--stats"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("halted with interrupts disabled"));
}

#[test]
fn budget_timeout_idle_and_triple_fault_have_their_own_statuses() {
    let spin = guest("spin", "1: jmp 1b\n", true);
    let out = run(&spin, &["--max-instructions", "100000"]);
    assert_eq!(out.status.code(), Some(10));
    assert!(String::from_utf8_lossy(&out.stderr).contains("instruction budget reached"));
    let out = run(&spin, &["--timeout", "0.2"]);
    assert_eq!(out.status.code(), Some(10));
    assert!(String::from_utf8_lossy(&out.stderr).contains("timeout"));

    // STI; HLT with no device programmed: nothing can ever wake the CPU.
    let idle = guest("idle", "sti\nhlt\njmp start\n", true);
    assert_eq!(run(&idle, &[]).status.code(), Some(12));

    // An interrupt vector table of limit 0: INT 3 cannot be delivered, nor
    // can the #GP and #DF that follow (SDM Vol 3A 20.1.4): shutdown.
    let triple = guest(
        "triple",
        r#"
    xor ax, ax
    mov ds, ax
    lidt [idt0]
    int 3
    hlt
idt0: .word 0
      .long 0
"#,
        true,
    );
    let out = run(&triple, &[]);
    assert_eq!(
        out.status.code(),
        Some(8),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("triple fault"));
}

#[test]
fn multiboot_kernel_runs_in_protected_mode() {
    let img = guest(
        "mb",
        r#"
    cmp eax, 0x2badb002
    jne 9f
    mov edx, 0x3f8
    mov al, 'P'
    out dx, al
    mov eax, cr0
    and al, 1
    add al, '0'
    out dx, al
    mov al, 10
    out dx, al
    mov al, 0
    out 0xf4, al
9:  mov al, 1
    out 0xf4, al
"#,
        false,
    );
    let out = run(&img, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"P1\n");
}

#[test]
fn trace_file_holds_one_json_event_per_line() {
    let img = guest("trace", PRINT_AND_EXIT, true);
    let trace = tmp("trace.jsonl");
    let out = run(&img, &["--trace", trace.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0x21));
    let text = std::fs::read_to_string(&trace).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ports: Vec<(u64, bool)> = lines
        .iter()
        .filter(|v| v["kind"] == "port_io")
        .map(|v| (v["port"].as_u64().unwrap(), v["write"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        ports,
        vec![
            (0x3fb, true),
            (0x3f8, true),
            (0x3f8, true),
            (0x3f8, true),
            (0xe9, true),
            (0xf4, true)
        ]
    );
    assert!(lines.iter().all(|v| v["icount"].is_u64()));
}

#[test]
fn malformed_images_get_one_clear_error_line() {
    let empty = tmp("empty.bin");
    std::fs::write(&empty, b"").unwrap();
    assert_clean_error(&run(&empty, &[]), 4, "empty");

    let elf = tmp("truncated.elf");
    std::fs::write(&elf, b"\x7fELF\x01\x01\x01\0\0\0").unwrap();
    assert_clean_error(&run(&elf, &[]), 4, "truncated.elf");

    let missing = tmp("does-not-exist.bin");
    assert_clean_error(&run(&missing, &[]), 4, "cannot read");

    let big = tmp("big.bin");
    std::fs::write(&big, vec![0x90u8; 2 << 20]).unwrap();
    assert_clean_error(&run(&big, &["--mem", "1"]), 4, "big.bin");
}

#[test]
fn bad_arguments_and_missing_engines_are_reported() {
    let img = guest("exit2", PRINT_AND_EXIT, true);
    let out = run(&img, &["--mem", "0"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&img, &["--engine", "vmware"]);
    assert_eq!(out.status.code(), Some(2));
    // The translator runs it (real mode: on its interpreter fallback).
    let out = run(&img, &["--engine", "bt"]);
    assert_eq!(out.status.code(), Some(0x21));
    assert_eq!(out.stdout, b"ok\n");
    // KVM runs the guest where /dev/kvm opens; elsewhere it names the cause.
    let out = run(&img, &["--engine", "kvm"]);
    if std::fs::File::open("/dev/kvm").is_ok() {
        assert_eq!(
            out.status.code(),
            Some(0x21),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, b"ok\n");
    } else {
        eprintln!("skipping the KVM run: this host has no usable /dev/kvm");
        assert_clean_error(&out, 6, "/dev/kvm");
    }
    // Trap-and-emulate is a mode of the interpreter only.
    assert_clean_error(
        &run(&img, &["--engine", "bt", "--deprivilege"]),
        2,
        "--deprivilege is a mode of the interpreter",
    );
    let out = run(&img, &["--deprivilege"]);
    assert_eq!(out.stdout, b"ok\n", "a real-mode guest is not affected");
}

#[test]
fn lessons_are_listed_and_run_by_name() {
    let out = ringlab(&["lessons"]);
    assert_eq!(out.status.code(), Some(0));
    let list = String::from_utf8_lossy(&out.stdout);
    for name in ["hello", "protected", "interrupts"] {
        assert!(list.contains(name), "{list}");
    }
    let out = ringlab(&["lesson", "protected"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("# Lab 2 — protected"), "{text}");
    assert!(text.contains("CS=0008 DS=0010 CR0=00000011"), "{text}");
    let out = ringlab(&["lesson", "protected", "--source"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("ljmp CODE_SEL"));
    assert_clean_error(&ringlab(&["lesson", "nope"]), 2, "no lesson called");
}

#[test]
fn compare_runs_a_guest_on_every_engine() {
    // A lesson: the interpreter is the reference, the translator agrees.
    let out = ringlab(&["compare", "--lesson", "hello"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("interp  reference"), "{text}");
    assert!(text.contains("bt      same"), "{text}");
    // Any image: the same table.
    let img = guest("compare1", PRINT_AND_EXIT, true);
    let out = ringlab(&["compare", img.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("bt      same"), "{text}");
    // A malformed image is one clean error, not one per engine.
    let dir = std::env::temp_dir().join(format!("ringlab-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.elf");
    std::fs::write(&bad, b"\x7fELF\x01\x01\x01").unwrap();
    assert_clean_error(&ringlab(&["compare", bad.to_str().unwrap()]), 4, "bad.elf");
    assert_clean_error(
        &ringlab(&["compare", "--lesson", "nosuch"]),
        2,
        "the lessons are",
    );
}

#[test]
fn json_report_for_autograders() {
    let img = guest("json1", PRINT_AND_EXIT, true);
    let dir = std::env::temp_dir().join(format!("ringlab-cli-json-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for engine in ["interp", "bt"] {
        let path = dir.join(format!("{engine}.json"));
        let out = run(
            &img,
            &["--engine", engine, "--json", path.to_str().unwrap()],
        );
        assert_eq!(out.status.code(), Some(0x21));
        assert_eq!(out.stdout, b"ok\n", "stdout stays the guest's COM1");
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["engine"], engine);
        assert_eq!(v["exit_status"], 0x21);
        assert_eq!(v["serial"], "ok\n");
        assert!(v["instructions"].as_u64().unwrap() > 0);
        assert!(v["stop"].as_str().unwrap().contains("0xf4"));
        assert!(v["events"]["sensitive"].as_u64().unwrap() >= 3, "{v}");
    }
}

#[test]
fn switched_runs_print_what_a_plain_run_prints() {
    let plain = ringlab(&["run", "--lesson", "rings"]);
    assert_eq!(plain.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&plain.stdout).contains("hello from ring 3"));
    let dir = std::env::temp_dir().join(format!("ringlab-cli-switch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("switched.json");
    let out = ringlab(&[
        "run",
        "--lesson",
        "rings",
        "--switch-at",
        "3700:bt",
        "--switch-at",
        "4000:interp",
        "--switch-at",
        "5001:bt",
        "--json",
        json.to_str().unwrap(),
        "--stats",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, plain.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("switched interp -> bt at instruction 3700"),
        "{err}"
    );
    assert!(
        err.contains("switched bt -> interp at instruction 4000"),
        "{err}"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["switches"][2]["at_instruction"], 5001);
    assert_eq!(v["switches"][2]["to"], "bt");
    let bad = ringlab(&["run", "--lesson", "rings", "--switch-at", "12:qemu"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("`qemu` is not an engine"));
    assert_clean_error(
        &ringlab(&[
            "run",
            "--lesson",
            "rings",
            "--switch-at",
            "9:bt",
            "--switch-at",
            "9:interp",
        ]),
        2,
        "two switches at instruction 9",
    );
}

#[test]
fn bench_prints_the_nanobenchmark_table_and_json() {
    let dir = std::env::temp_dir().join(format!("ringlab-cli-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("bench.json");
    let out = ringlab(&[
        "bench",
        "--engine",
        "interp",
        "--engine",
        "bt",
        "--compute-timeout",
        "0.3",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    let header = table.lines().find(|l| l.starts_with("operation")).unwrap();
    assert!(
        header.contains("interp") && header.contains("bt"),
        "{table}"
    );
    for op in [
        "in ", "cr3wr", "pgfault", "divzero", "ptemod", "call/ret", "syscall",
    ] {
        let row = table
            .lines()
            .find(|l| l.starts_with(op))
            .unwrap_or_else(|| panic!("{op}: {table}"));
        assert_eq!(
            row.matches("(fastest)").count(),
            1,
            "one fastest per row: {row}"
        );
    }
    assert!(
        table.contains("unfinished after"),
        "a 0.3 s cap cuts the compute loop: {table}"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["operations"].as_array().unwrap().len(), 7);
    assert_eq!(v["ops_per_benchmark"], 10000);
    for e in v["engines"].as_array().unwrap() {
        for op in [
            "in", "cr3wr", "pgfault", "divzero", "ptemod", "call/ret", "syscall",
        ] {
            let ns = e["ns_per_op"][op]
                .as_f64()
                .unwrap_or_else(|| panic!("{op}: {e}"));
            assert!(ns > 0.0 && ns < 1e7, "{op}: {ns}");
        }
        assert_eq!(e["compute"]["finished"], false);
    }
}

#[test]
fn vga_term_prints_the_screen_in_colour_and_window_needs_a_display() {
    let out = ringlab(&["run", "--lesson", "hello", "--vga", "term"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"Hello from real mode!\n", "stdout stays COM1");
    let err = String::from_utf8_lossy(&out.stderr);
    // The hello lesson writes bright white on blue (attribute 0x1F).
    assert!(
        err.contains("\x1b[38;2;255;255;255;48;2;0;0;170mHello from real mode!"),
        "{err:?}"
    );
    let out = ringlab(&["compare", "--lesson", "hello", "--vga", "term"]);
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--- VGA screen on interp ---"), "{err}");
    assert!(err.contains("--- VGA screen on bt ---"), "{err}");

    // No display: one clear error line, not a panic.
    let out = Command::new(env!("CARGO_BIN_EXE_ringlab"))
        .args(["run", "--lesson", "hello", "--vga", "window"])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    assert_clean_error(&out, 6, "cannot open a window");
}

#[test]
fn every_help_explains_itself_with_an_example() {
    let mut cases: Vec<Vec<&str>> = vec![vec!["--help"]];
    for c in ["run", "compare", "step", "bench", "lessons", "lesson"] {
        cases.push(vec![c, "--help"]);
    }
    for args in cases {
        let out = ringlab(&args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Example"), "{args:?} has no example:\n{text}");
        assert!(text.lines().count() > 5, "{args:?}: {text}");
    }
}

/// tests/guests/reset-rom.S as a 64 KiB ROM image.
fn reset_rom() -> PathBuf {
    static ROM: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROM.get_or_init(|| {
        let src = tmp("reset-rom.S");
        std::fs::write(&src, include_str!("../../tests/guests/reset-rom.S")).unwrap();
        let (obj, elf, bin) = (
            tmp("reset-rom.o"),
            tmp("reset-rom.elf"),
            tmp("reset-rom.bin"),
        );
        let s = |p: &PathBuf| p.to_str().unwrap().to_string();
        tool("as", &["--32", "-o", &s(&obj), &s(&src)]);
        tool(
            "ld",
            &[
                "-m",
                "elf_i386",
                "-nostdlib",
                "-N",
                "-Ttext=0",
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
    })
    .clone()
}

#[test]
fn bios_rom_boots_from_the_reset_vector() {
    let rom = reset_rom();
    let rom = rom.to_str().unwrap();
    let want = b"rom: hello from protected mode\nrom: writes to ROM ignored\n";
    for engine in ["interp", "bt"] {
        let out = ringlab(&["run", "--bios", rom, "--engine", engine, "--stats"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "halted with IF=0: {err}");
        assert_eq!(out.stdout, want, "{engine}");
        assert!(err.contains("last 03; in order 01 02 03"), "{err}");
        assert!(
            err.contains("64 KiB at 0xf0000 and 0xffff0000; 2 writes ignored"),
            "{err}"
        );
        assert!(err.contains("reset vector F000:FFF0"), "{err}");
    }
    let out = ringlab(&["compare", "--bios", rom]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Bad ROMs: one clear line each.
    let small = tmp("small.rom");
    std::fs::write(&small, [0xEAu8; 1000]).unwrap();
    assert_clean_error(
        &ringlab(&["run", "--bios", small.to_str().unwrap()]),
        4,
        "64, 128, 192 or 256 KiB",
    );
    let blank = tmp("blank.rom");
    std::fs::write(&blank, vec![0xFFu8; 64 << 10]).unwrap();
    assert_clean_error(
        &ringlab(&["run", "--bios", blank.to_str().unwrap()]),
        4,
        "reset vector holds no code",
    );
}
