//! `ringlab run` end to end: the exit status contract, stdout carrying
//! exactly the guest's COM1 bytes, and clear errors for bad images. The
//! guests are assembled here with GNU binutils (CI installs them).

mod support;

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

/// `ringlab run IMAGE extra...`; a flat image (these tests' real-mode
/// guests are not boot sectors for the BIOS) is started directly at
/// 0000:7C00 (`--boot direct`).
fn run(image: &std::path::Path, extra: &[&str]) -> Output {
    let mut args = vec!["run", image.to_str().unwrap()];
    if image.extension().is_some_and(|e| e == "bin") {
        args.extend(["--boot", "direct"]);
    }
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
fn a_panic_loop_with_interrupts_off_exits_18_after_the_guests_output() {
    // As xv6's panic() ends: its message on COM1, then `cli; for(;;);`.
    let body = PRINT_AND_EXIT.replace(
        "2:  mov al, 'x'\n    out 0xe9, al\n    mov al, 0x10\n    out 0xf4, al\n    hlt\n",
        "2:  cli\n3:  jmp 3b\n",
    );
    assert_ne!(body, PRINT_AND_EXIT, "the exit was replaced");
    let body = body.replace("\"ok\\n\"", "\"panic: boom\\n\"");
    let img = guest("panic", &body, true);
    for engine in ["interp", "bt"] {
        let out = run(&img, &["--engine", engine, "--timeout", "60"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(18), "{engine}: {err}");
        assert_eq!(out.stdout, b"panic: boom\n", "{engine}");
        assert!(
            err.contains("spinning on a jump to itself with interrupts disabled"),
            "{engine}: {err}"
        );
        assert!(err.contains("(exit status 18)"), "{engine}: {err}");
    }
    // E9 with rel32 = -5 in a multiboot kernel, without a timeout: the
    // run still ends (KVM too, where this host has it: its periodic exits
    // look at the code). coreutils' `timeout` ends a run that would not
    // (status 124).
    let img = guest("panic32", "cli\n.byte 0xE9\n.long -5\n", false);
    for engine in ["interp", "bt", "kvm"] {
        let out = Command::new("timeout")
            .args(["60", env!("CARGO_BIN_EXE_ringlab"), "run"])
            .arg(&img)
            .args(["--engine", engine])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        if engine == "kvm" && !kvm_opens() {
            support::skip(
                "cli::a_panic_loop_with_interrupts_off_exits_18_after_the_guests_output",
                "this host has no usable /dev/kvm",
            );
            continue;
        }
        assert_eq!(out.status.code(), Some(18), "{engine}: {err}");
    }
}

#[test]
fn budget_timeout_idle_and_triple_fault_have_their_own_statuses() {
    // `jmp $` with IF set: a wait for interrupts, never a panic loop.
    let spin = guest("spin", "sti\n1: jmp 1b\n", true);
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
    // Addresses are hex, as everywhere else ringlab prints them: the
    // first OUT (to LCR) is the guest's fifth instruction, at 0x7c09.
    let eips: Vec<&str> = lines
        .iter()
        .filter_map(|v| v.get("eip"))
        .map(|e| {
            e.as_str()
                .unwrap_or_else(|| panic!("eip {e} is not a string"))
        })
        .collect();
    assert!(!eips.is_empty());
    assert!(
        eips.iter().all(|e| e.len() == 10 && e.starts_with("0x")),
        "{eips:?}"
    );
    let first_out = lines
        .iter()
        .find(|v| v["kind"] == "sensitive" && v["insn"] == "out")
        .unwrap();
    assert_eq!(first_out["eip"], "0x00007c09");
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
    if kvm_opens() {
        assert_eq!(
            out.status.code(),
            Some(0x21),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, b"ok\n");
    } else {
        support::skip(
            "cli::bad_arguments_and_missing_engines_are_reported",
            "this host has no usable /dev/kvm: the KVM run is checked only for its error",
        );
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
    let out = ringlab(&["compare", img.to_str().unwrap(), "--boot", "direct"]);
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
        "0.05",
        "--rounds",
        "3",
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
        "a 0.05 s cap cuts the compute loop (900 M instructions; the translator ran it in 0.25 s): {table}"
    );
    assert!(
        table.starts_with(
            "nanobenchmarks: host nanoseconds per operation (10000 each, the median of 3 runs)"
        ),
        "{table}"
    );
    // The engines take turns, run by run.
    let err = String::from_utf8_lossy(&out.stderr);
    let runs: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("nanobench, run"))
        .collect();
    assert_eq!(
        runs,
        [
            "bench: interp nanobench, run 1 of 3 ...",
            "bench: bt nanobench, run 1 of 3 ...",
            "bench: interp nanobench, run 2 of 3 ...",
            "bench: bt nanobench, run 2 of 3 ...",
            "bench: interp nanobench, run 3 of 3 ...",
            "bench: bt nanobench, run 3 of 3 ...",
        ],
        "{err}"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["operations"].as_array().unwrap().len(), 7);
    assert_eq!(v["ops_per_benchmark"], 10000);
    assert_eq!(v["runs_per_engine"], 3);
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

/// A clap error, worded as ringlab's own: the prefix, then clap's usage
/// and hint lines; exit status 2.
fn assert_usage_error(out: &Output, first_line: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(out.stdout.is_empty());
    assert_eq!(err.lines().next(), Some(first_line), "{err}");
    assert!(
        err.ends_with("For more information, try '--help'.\n"),
        "{err}"
    );
}

#[test]
fn command_line_errors_say_what_to_give_in_its_own_words() {
    // Every error starts "ringlab: error:", clap's own included.
    assert_usage_error(
        &ringlab(&["frob"]),
        "ringlab: error: unrecognized subcommand 'frob'",
    );
    assert_usage_error(
        &ringlab(&["run", "--lesson", "hello", "--mem", "99999"]),
        "ringlab: error: invalid value '99999' for '--mem <MIB>': guest RAM is 1 to 3072 MiB; \
         99999 MiB is too much",
    );
    assert_usage_error(
        &ringlab(&["run", "--lesson", "hello", "--mem", "0"]),
        "ringlab: error: invalid value '0' for '--mem <MIB>': guest RAM is 1 to 3072 MiB; \
         0 MiB is too little",
    );
    // A lesson's format is known: --format with it is an error, not ignored.
    assert_usage_error(
        &ringlab(&["run", "--lesson", "hello", "--format", "multiboot"]),
        "ringlab: error: the argument '--lesson <NAME>' cannot be used with '--format <FORMAT>'",
    );
    // No guest: the message names every way to give one.
    for cmd in ["run", "compare"] {
        let out = ringlab(&[cmd]);
        assert_clean_error(&out, 2, "");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "ringlab: error: no guest given: name an IMAGE file, or --lesson NAME for a lab's \
             guest (`ringlab lessons` lists them), or --disk FILE for the BIOS to boot, or \
             --bios ROM\n"
        );
    }
    // --json to a path that cannot be written fails before the guest runs
    // (nothing on stdout), as --trace does.
    let path = tmp("no-such-dir").join("report.json");
    assert_clean_error(
        &ringlab(&["run", "--lesson", "hello", "--json", path.to_str().unwrap()]),
        2,
        &format!(
            "cannot create {}: No such file or directory (os error 2)",
            path.display()
        ),
    );
    // A run that fails leaves no report behind, not even an empty file.
    let path = tmp("failed-run.json");
    let _ = std::fs::remove_file(&path);
    assert_clean_error(
        &ringlab(&[
            "run",
            "--lesson",
            "hello",
            "--engine",
            "bt",
            "--deprivilege",
            "--json",
            path.to_str().unwrap(),
        ]),
        2,
        "--deprivilege is a mode of the interpreter",
    );
    assert!(!path.exists());
}

fn kvm_pvm_host() -> bool {
    engine_kvm::host::detect() == engine_kvm::host::HostKind::Pvm
}

/// /dev/kvm opens here (what the KVM engine itself asks first).
fn kvm_opens() -> bool {
    ringlab::engines::kvm_host().is_ok()
}

#[test]
fn run_help_examples_with_kvm_run_here() {
    let help = String::from_utf8_lossy(&ringlab(&["run", "--help"]).stdout).to_string();
    assert!(
        help.contains("ringlab run --lesson hello --switch-at 40:kvm"),
        "{help}"
    );
    assert!(
        help.contains("ringlab run --lesson hello --engine kvm"),
        "{help}"
    );
    assert!(
        help.contains("kvm-pvm, the software KVM of some cloud VMs, runs only real mode"),
        "{help}"
    );
    if !kvm_opens() {
        support::skip(
            "cli::run_help_examples_with_kvm_run_here",
            "this host has no usable /dev/kvm: the KVM examples of run --help are not run",
        );
        return;
    }
    for args in [
        &["run", "--lesson", "hello", "--engine", "kvm"][..],
        &["run", "--lesson", "hello", "--switch-at", "40:kvm"][..],
    ] {
        let out = ringlab(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, b"Hello from real mode!\n", "{args:?}");
    }
}

#[test]
fn bench_skips_what_this_hosts_kvm_cannot_run_without_waiting() {
    if !kvm_pvm_host() && kvm_opens() {
        support::skip(
            "cli::bench_skips_what_this_hosts_kvm_cannot_run_without_waiting",
            "this host's KVM is not kvm-pvm: there is nothing for bench to skip",
        );
        return;
    }
    // A compute timeout of an hour: the loop must be skipped, not cut.
    let out = ringlab(&["bench", "--engine", "kvm", "--compute-timeout", "3600"]);
    assert_eq!(out.status.code(), Some(0));
    let table = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    if !kvm_opens() {
        assert!(table.contains("  kvm      skipped: "), "{table}");
        assert!(err.starts_with("bench: kvm skipped: "), "{err}");
        return;
    }
    assert!(
        table.contains(
            "  kvm      skipped: this host's KVM is kvm-pvm, which runs unpaged protected mode \
             in its instruction emulator (about 2 M instructions/s): the 900 M-instruction loop \
             would take minutes\n"
        ),
        "{table}"
    );
    assert!(
        table.contains(
            "  kvm: nanobench skipped: this host's KVM is kvm-pvm, which supports paging only \
             in long mode; the nanobench guest uses 32-bit paging and ring 3\n"
        ),
        "{table}"
    );
}

#[test]
fn demo_skips_kvm_up_front_and_says_where_the_translators_time_goes() {
    let out = ringlab(&[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    // bt time: W ms = T ms translating 61 blocks (U us each) + R ms running
    // the guest (7697 instructions in translated code, 734 on the
    // interpreter). The times vary; the counts do not.
    let line = text
        .lines()
        .find(|l| l.starts_with("bt time: "))
        .unwrap_or_else(|| panic!("{text}"));
    let (_, rest) = line.split_once(" ms = ").unwrap();
    let (_, rest) = rest.split_once(" ms translating 61 blocks (").unwrap();
    let (_, rest) = rest.split_once(" us each) + ").unwrap();
    let (_, rest) = rest.split_once(" ms running the guest (").unwrap();
    assert_eq!(
        rest,
        "7697 instructions in translated code, 734 on the interpreter)"
    );
    if kvm_pvm_host() && kvm_opens() {
        assert!(
            text.contains(
                "kvm     skipped: the guest changes rings in 32-bit protected mode without \
                 paging (8 ring changes on the interpreter), which this host's kvm-pvm cannot \
                 run (it fails on IRET there); hardware virtualization (kvm_intel, kvm_amd) \
                 runs it\n"
            ),
            "{text}"
        );
    }
}

/// Real mode: an instruction ending at offset FFFF of CS (1000:FFFF, a
/// NOP), after which IP wraps to 1000:0000 and a far jump leads to an exit
/// with 0x10; #GP (vector 13, in the IVT) exits with 0x20.
const WRAP_AT_FFFF: &str = r#"
    xor ax, ax
    mov ds, ax
    mov word ptr [13*4], offset gp
    mov word ptr [13*4+2], 0
    mov ax, 0x1000
    mov es, ax
    mov byte ptr es:[0xFFFF], 0x90
    mov byte ptr es:[0], 0xEA
    mov word ptr es:[1], offset wrapped
    mov word ptr es:[3], 0
    ljmp 0x1000, 0xFFFF
wrapped:
    mov al, 0x10
    out 0xf4, al
gp:
    mov al, 0x20
    out 0xf4, al
"#;

#[test]
fn compare_says_where_kvm_departs_and_whose_departure_it_is() {
    let img = guest("wrap", WRAP_AT_FFFF, true);
    let out = run(&img, &[]);
    assert_eq!(out.status.code(), Some(0x21), "IP wraps: exit 0x10");
    let out = ringlab(&["compare", img.to_str().unwrap(), "--boot", "direct"]);
    let text = String::from_utf8_lossy(&out.stdout);
    if !kvm_opens() {
        support::skip(
            "cli::compare_says_where_kvm_departs_and_whose_departure_it_is",
            "this host has no usable /dev/kvm: compare has no KVM run to find a departure in",
        );
        assert_eq!(out.status.code(), Some(0), "{text}");
        return;
    }
    if !kvm_pvm_host() {
        // Hardware virtualization wraps IP as the interpreter does
        // (measured with kvm_amd in the QEMU/SVM VM).
        assert_eq!(out.status.code(), Some(0), "{text}");
        return;
    }
    assert_eq!(out.status.code(), Some(16), "{text}");
    assert!(
        text.contains(
            "guest exit through port 0xf4 with value 0x20 (kvm-pvm's emulation departs: see below)"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "kvm departs from interp after 11 instructions alike, at 1000:0000ffff (nop): \
             interp went on to 1000:00000000 (SP 7c00), kvm to 1000:00010000 (SP 7c00). \
             The instruction ends at offset FFFF: IP is 16 bits wide, so a CPU goes on at \
             offset 0000"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "KVM instead left EIP at 00010000, past CS's 64 KiB limit, so its next instruction \
             fetch raises #GP (vector 13) through the IVT, which no CPU does here. This host's \
             KVM is kvm-pvm, which runs real mode and unpaged protected mode in KVM's \
             instruction emulator: that step ran inside one KVM_RUN and reached ringlab's KVM \
             engine through no exit but the single-step trap, so the departure is kvm-pvm's \
             emulation, not ringlab's KVM engine.\n"
        ),
        "{text}"
    );
}

/// `image` padded to one 512-byte sector with the boot signature.
fn boot_sector(image: &std::path::Path) -> PathBuf {
    let mut b = std::fs::read(image).unwrap();
    assert!(b.len() <= 510, "the guest fits in a boot sector");
    b.resize(510, 0);
    b.extend_from_slice(&[0x55, 0xAA]);
    let out = image.with_extension("img");
    std::fs::write(&out, b).unwrap();
    out
}

#[test]
fn a_boot_sector_boots_through_the_bios_as_on_qemu() {
    let img = boot_sector(&guest("bootme", PRINT_AND_EXIT, true));
    let out = ringlab(&["run", img.to_str().unwrap(), "--stats"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0x21), "{err}");
    // stdout is the guest's COM1 output only: the BIOS writes nothing there.
    assert_eq!(out.stdout, b"ok\n", "{err}");
    assert!(err.contains("ringlab BIOS (64 KiB)"), "{err}");
    assert!(err.contains("as the first hard disk (1 sector"), "{err}");
    // POST codes up to the jump to 0000:7C00 (0D).
    assert!(err.contains("last 0d"), "{err}");
    // The same image as a --disk boots the same way.
    let out = ringlab(&["run", "--disk", img.to_str().unwrap(), "--snapshot"]);
    assert_eq!(out.status.code(), Some(0x21));
    assert_eq!(out.stdout, b"ok\n");
    // --boot direct: no firmware, started at 0000:7C00.
    let out = ringlab(&["run", img.to_str().unwrap(), "--boot", "direct", "--stats"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.stdout, b"ok\n");
    assert!(!err.contains("POST codes"), "{err}");
}

#[test]
fn what_the_bios_cannot_boot_is_one_clear_error() {
    // No signature, too small: refused before the run, with the way out.
    let plain = guest("nosig", PRINT_AND_EXIT, true);
    let mut b = std::fs::read(&plain).unwrap();
    b.resize(512, 0);
    let nosig = tmp("nosig.img");
    std::fs::write(&nosig, &b).unwrap();
    assert_clean_error(
        &run_plain(&nosig),
        4,
        "no boot signature (55 AA at bytes 510-511)",
    );
    assert_clean_error(&run_plain(&plain), 4, "less than one 512-byte sector");
    // A disk the BIOS itself cannot boot: its message, status 4.
    assert_clean_error(
        &ringlab(&["run", "--disk", nosig.to_str().unwrap()]),
        4,
        "the BIOS found nothing to boot: Boot failed: disk 80h has no boot signature",
    );
    // A multiboot kernel: ringlab loads it, the BIOS runs POST and starts
    // it (boot.S); its output is the same as without the firmware.
    let mb = guest("mbboot", PRINT_AND_EXIT_32, false);
    let via_bios = ringlab(&["run", mb.to_str().unwrap(), "--stats"]);
    let direct = ringlab(&["run", mb.to_str().unwrap(), "--boot", "direct"]);
    let err = String::from_utf8_lossy(&via_bios.stderr);
    assert_eq!(via_bios.status.code(), Some(0x21), "{err}");
    assert_eq!(via_bios.stdout, direct.stdout);
    assert_eq!(via_bios.stdout, b"ok\n");
    assert!(
        err.contains("ringlab BIOS (64 KiB), then multiboot ELF32"),
        "{err}"
    );
}

/// PRINT_AND_EXIT for a 32-bit multiboot kernel.
const PRINT_AND_EXIT_32: &str = r#"
    mov dx, 0x3fb
    mov al, 3
    out dx, al
    mov esi, offset msg
1:  lodsb
    test al, al
    jz 2f
    mov dx, 0x3f8
    out dx, al
    jmp 1b
2:  mov al, 0x10
    out 0xf4, al
    hlt
msg: .asciz "ok\n"
"#;

/// `ringlab run IMAGE` with nothing else (the default boot).
fn run_plain(image: &std::path::Path) -> Output {
    ringlab(&["run", image.to_str().unwrap()])
}

/// `--gdb` on a port that is taken: one line naming the address and why,
/// status 2, before the guest runs.
#[test]
fn gdb_on_a_port_in_use_is_a_clean_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = ringlab(&["run", "--lesson", "hello", "--gdb", &port]);
    assert_clean_error(
        &out,
        2,
        &format!("--gdb 127.0.0.1:{port}: cannot listen there"),
    );
    let bad = ringlab(&["run", "--lesson", "hello", "--gdb", "nonsense"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not [HOST:]PORT"));
    let alone = ringlab(&["run", "--lesson", "hello", "--gdb-no-wait"]);
    assert_eq!(alone.status.code(), Some(2), "--gdb-no-wait needs --gdb");
}

/// `--gdb-no-wait`: the guest runs at once; with no gdb ever connecting it
/// runs to its end as without --gdb, and says where it listened.
#[test]
fn gdb_no_wait_runs_the_guest_without_gdb() {
    let out = ringlab(&[
        "run",
        "--lesson",
        "hello",
        "--gdb",
        "127.0.0.1:0",
        "--gdb-no-wait",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"Hello from real mode!\n");
}

#[test]
fn bench_suite_runs_the_chosen_guests_and_checks_their_checksums() {
    let dir = std::env::temp_dir().join(format!("ringlab-cli-suite-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("suite.json");
    let out = ringlab(&[
        "bench",
        "--suite",
        "--engine",
        "interp",
        "--engine",
        "bt",
        "--guest",
        "fib",
        "--guest",
        "empty",
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
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| l.starts_with("fib ") || l.starts_with("empty "))
        .collect();
    assert_eq!(rows.len(), 2, "suite order, the chosen two: {table}");
    assert!(rows[0].starts_with("empty "), "{table}");
    assert_eq!(rows[1].matches("(fastest)").count(), 1, "{table}");
    assert!(!table.contains("FAILED"), "{table}");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let fib = &v["suite"][1];
    assert_eq!(fib["guest"], "fib");
    assert_eq!(fib["checksum"], "0035c7e2", "fib(33) = 3524578");
    // Every engine that counts retires the same instructions; fib(33)
    // makes 11405773 calls of 8 instructions, or of 4 at the leaves.
    let n = fib["instructions"].as_u64().unwrap();
    assert!((80_000_000..100_000_000).contains(&n), "{n}");
    for e in ["interp", "bt"] {
        assert!(fib["engines"][e]["seconds"].as_f64().unwrap() > 0.0, "{v}");
    }

    let out = ringlab(&["bench", "--suite", "--guest", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "--guest nope: no such suite guest (known: empty, lcg, strcopy, fib, sort, real16, prot16, paging)"
        ),
        "{err}"
    );
    let out = ringlab(&["bench", "--guest", "fib"]);
    assert_eq!(out.status.code(), Some(2), "--guest needs --suite");
    // The suite runs each guest once; rounds are the script's.
    let out = ringlab(&["bench", "--suite", "--rounds", "3"]);
    assert_eq!(out.status.code(), Some(2), "--rounds is not the suite's");
    let out = ringlab(&["bench", "--rounds", "0"]);
    assert_eq!(out.status.code(), Some(2), "at least one run");
}
