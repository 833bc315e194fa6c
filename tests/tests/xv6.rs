//! xv6, MIT's x86 teaching Unix, unmodified (issue 18).
//!
//! `scripts/xv6-images.sh` builds `xv6.img` (boot block and kernel) and
//! `fs.img` (the file system) from `../shared/guests/xv6-public` beside the
//! repository, or from a clone of github.com/mit-pdos/xv6-public, with
//! Debian's gcc; the images are cached under `target/xv6`. These tests
//! build them, check the boot disk's signature, and boot xv6 through
//! ringlab's BIOS with 512 MiB of RAM, as xv6's `make qemu` gives QEMU:
//! to the shell's prompt, through a scripted session typed at the prompt
//! (`--type-after '$ '`: one transcript on the interpreter, the
//! translator and KVM, the same every run), through `usertests`, and
//! twice over one file system to see that it keeps what xv6 wrote.
//!
//! KVM needs paging and ring 3: the host's kvm-pvm cannot run xv6 (the
//! KVM parts skip there, saying so). The QEMU/SVM test VM runs them
//! (scripts/kvm-vm-tests.sh; the images come in through
//! RINGLAB_XV6_IMAGES, the VM having no compiler): the session in about
//! 13 s and usertests in about 340 s there, now that local APIC reads
//! need no exit (engine-kvm's apic_shadow: xv6 reads the APIC's ID on
//! every spinlock; each read was an exit of some 100 µs).
//!
//! A host without the tools (gcc, make, binutils, perl; the script names
//! the packages) or the source skips, with the reason; under CI (`CI`
//! set) that fails instead: `scripts/test.sh` installs them.

use machine::cpu::CpuState;
use machine::disk::DiskImage;
use machine::{Limits, Stop};
use ringlab::debugger::{Command as Ui, Debugger};
use ringlab::engines::EngineKind;
use ringlab::session::{Options, Session};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tests::firmware::bios_machine_with_ram;
use tests::platform::run_machine_budget;
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
        // Images made elsewhere (the KVM test VM has no compiler).
        if let Some(dir) = std::env::var_os("RINGLAB_XV6_IMAGES") {
            let dir = PathBuf::from(dir);
            return Ok(Images {
                xv6: dir.join("xv6.img"),
                fs: dir.join("fs.img"),
            });
        }
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

/// xv6's machine: 512 MiB, the BIOS, xv6.img (in memory: the cached image
/// stays as built) as the first disk and `fs` as the second.
fn xv6_machine(img: &Images, fs: DiskImage) -> machine::Machine {
    let mut m = bios_machine_with_ram(RAM);
    let xv6 = std::fs::read(&img.xv6).expect("xv6.img");
    m.attach_disk(0, DiskImage::from_bytes(xv6).expect("a disk"));
    m.attach_disk(1, fs);
    m
}

/// fs.img as built, in memory (xv6 writes its log at boot).
fn fs_in_memory(img: &Images) -> DiskImage {
    DiskImage::from_bytes(std::fs::read(&img.fs).expect("fs.img")).expect("a disk")
}

/// Boots xv6 on `kind` until its COM1 output ends with the shell's
/// prompt, or the budget or two minutes run out; returns the COM1 output
/// and the instructions it took (to within the slice).
fn boot_to_the_prompt(kind: EngineKind, img: &Images) -> (String, u64, Stop) {
    let m = xv6_machine(img, fs_in_memory(img));
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

// ---- scripted sessions ------------------------------------------------------

/// A session at xv6's shell: files, pipes, links, the file system under
/// load, fork, kill. Each line is typed when the shell prompts.
const SESSION: &str = "ls\n\
    echo hello from ringlab\n\
    cat README | wc\n\
    mkdir d\n\
    echo made > d/f\n\
    ln README d/readme\n\
    ls d\n\
    rm d/readme\n\
    rm d/f\n\
    rm d\n\
    grep Unix README\n\
    forktest\n\
    stressfs\n\
    kill\n\
    kill 1000\n\
    echo a b c | cat | wc\n\
    ls stressfs0\n";

/// A machine with xv6's disks (in memory: the cached images stay as
/// built) and `script` typed at its prompt.
fn machine_typing(img: &Images, script: &str) -> machine::Machine {
    let mut m = xv6_machine(img, fs_in_memory(img));
    type_at_the_prompt(&mut m, script);
    m
}

fn type_at_the_prompt(m: &mut machine::Machine, script: &str) {
    m.set_serial_prompt(Some(b"$ "));
    m.attach_serial_input(tests::platform::SerialBytes::new(script));
}

/// What one run shows: the COM1 transcript, the stop, the instructions
/// and the event counters.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    serial: String,
    stop: Stop,
    icount: u64,
    counts: Vec<(machine::EventKind, u64)>,
    sensitive: Vec<(String, u64)>,
}

/// Runs `m` on `kind` until the script is done; None where this host's
/// KVM cannot run xv6 (said with `skip`).
fn run(kind: EngineKind, m: machine::Machine, limit: Duration, budget: u64) -> Option<Run> {
    let mut counts = vec![];
    let mut sensitive = vec![];
    let mut icount = 0;
    let o = run_machine_budget(
        kind,
        m,
        &CpuState::reset(),
        None,
        limit,
        budget,
        &mut |_, m| {
            icount = m.icount();
            counts = machine::EventKind::ALL
                .iter()
                .map(|&k| (k, m.trace.count(k)))
                .collect();
            sensitive = m
                .trace
                .sensitive_counts()
                .iter()
                .map(|((insn, how), n)| (format!("{insn} {how}"), *n))
                .collect();
        },
    )?;
    Some(Run {
        serial: o.serial,
        stop: o.stop,
        icount,
        counts,
        sensitive,
    })
}

/// The transcript with what stressfs prints put in order. Its five
/// processes each print "write N" and later "read", and xv6's printf
/// makes one `write` system call per character, so the lines interleave
/// character by character wherever the scheduler switches: on the
/// interpreter that is fixed by virtual time (the same every run), the
/// translator takes interrupts at block boundaries (other switch points),
/// and on KVM it follows the host's clock. When the block holds exactly
/// the characters of those eleven lines it is replaced by them in sorted
/// order; anything else (a line lost, a character more) stays as it was
/// and fails the comparison.
fn stressfs_sorted(serial: &str) -> String {
    let Some(start) = serial.find("$ stressfs\n") else {
        return serial.to_string();
    };
    let body = start + "$ stressfs\n".len();
    let end = serial[body..].find("$ ").map_or(serial.len(), |e| body + e);
    let mut lines = vec!["stressfs starting".to_string()];
    lines.extend((0..5).map(|i| format!("write {i}")));
    lines.extend((0..5).map(|_| "read".to_string()));
    lines.sort();
    let want = lines.join("\n") + "\n";
    let chars = |t: &str| {
        let mut v: Vec<char> = t.chars().collect();
        v.sort_unstable();
        v
    };
    if chars(&serial[body..end]) != chars(&want) {
        return serial.to_string();
    }
    format!("{}{want}{}", &serial[..body], &serial[end..])
}

/// The transcript with the inode number `ls stressfs0` prints made the
/// interpreter's (19) when it is one of the five that stressfs's files
/// take (19 to 23 on this fs.img). stressfs forks into five processes that
/// each create their file, stressfs0 to stressfs4, and inodes go out in
/// the order the files are created: on the interpreter and the translator
/// virtual time fixes that order; on KVM the host's timing does, so
/// stressfs0 may get any of the five. Any other number stays and fails
/// the comparison.
fn stressfs0_inode_normalized(serial: &str) -> String {
    const LINE: &str = "$ ls stressfs0\nstressfs0      2 ";
    let Some(at) = serial.find(LINE) else {
        return serial.to_string();
    };
    let num = at + LINE.len();
    let end = serial[num..].find(' ').map_or(serial.len(), |e| num + e);
    match serial[num..end].parse::<u32>() {
        Ok(19..=23) => format!("{}19{}", &serial[..num], &serial[end..]),
        _ => serial.to_string(),
    }
}

/// The session on `kind`, checked to have ended at the prompt after its
/// last line.
fn session_on(kind: EngineKind, img: &Images) -> Option<Run> {
    // Generous: the test VM runs KVM nested under QEMU's TCG, where every
    // exit costs some 100 µs.
    let r = run(
        kind,
        machine_typing(img, SESSION),
        Duration::from_secs(600),
        2_000_000_000,
    )?;
    assert_eq!(
        r.stop,
        Stop::InputDone,
        "{}: the session should end at the prompt after its last line; COM1:\n{}",
        kind.name(),
        r.serial
    );
    Some(r)
}

#[test]
fn a_scripted_session_gives_one_transcript_on_interp_and_bt() {
    let Some(img) = images_or_skip() else { return };
    let t = std::time::Instant::now();
    let interp = session_on(EngineKind::Interp, img).expect("the interpreter runs");
    eprintln!("xv6 session on interp: {:.1} s", t.elapsed().as_secs_f64());
    let transcript = stressfs_sorted(&interp.serial);
    insta::assert_snapshot!("xv6_session", transcript);
    let bt = session_on(EngineKind::Bt, img).expect("the translator runs");
    assert_eq!(
        stressfs_sorted(&bt.serial),
        transcript,
        "bt gives another transcript than the interpreter"
    );
}

/// KVM against the same snapshot, `ls stressfs0`'s inode normalized
/// (the test VM runs this one, not the interpreter's, which would take
/// long under QEMU's TCG).
#[test]
fn a_scripted_session_on_kvm_gives_the_same_transcript() {
    let Some(img) = images_or_skip() else { return };
    let t = std::time::Instant::now();
    let Some(r) = session_on(EngineKind::Kvm, img) else {
        return;
    };
    eprintln!("xv6 session on kvm: {:.1} s", t.elapsed().as_secs_f64());
    insta::assert_snapshot!(
        "xv6_session",
        stressfs0_inode_normalized(&stressfs_sorted(&r.serial))
    );
}

#[test]
fn the_session_repeats_exactly_on_the_interpreter_and_the_translator() {
    let Some(img) = images_or_skip() else { return };
    for kind in [EngineKind::Interp, EngineKind::Bt] {
        let a = session_on(kind, img).unwrap();
        let b = session_on(kind, img).unwrap();
        assert_eq!(
            a,
            b,
            "{}: two runs of one session differ (transcript, instructions or events)",
            kind.name()
        );
        // Events were counted: system calls are ring changes.
        let rings = a
            .counts
            .iter()
            .find(|(k, _)| *k == machine::EventKind::PrivilegeChange)
            .unwrap()
            .1;
        assert!(rings > 1000, "{}: {rings} ring changes", kind.name());
    }
}

fn usertests_pass_on(kind: EngineKind) {
    let Some(img) = images_or_skip() else { return };
    let t = std::time::Instant::now();
    // About 6.3 billion instructions: a minute on the interpreter.
    let Some(r) = run(
        kind,
        machine_typing(img, "usertests\n"),
        Duration::from_secs(1200),
        20_000_000_000,
    ) else {
        return;
    };
    eprintln!(
        "usertests on {}: {} instructions, {:.1} s",
        kind.name(),
        r.icount,
        t.elapsed().as_secs_f64()
    );
    let tail: String = {
        let lines: Vec<&str> = r.serial.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    };
    assert_eq!(r.stop, Stop::InputDone, "{}: ...{tail}", kind.name());
    assert!(
        r.serial.contains("\nALL TESTS PASSED\n$ "),
        "{}: usertests did not pass: ...{tail}",
        kind.name()
    );
}

#[test]
fn usertests_pass_on_the_interpreter() {
    usertests_pass_on(EngineKind::Interp);
}

#[test]
fn usertests_pass_on_the_translator() {
    usertests_pass_on(EngineKind::Bt);
}

/// On KVM (the QEMU/SVM test VM runs it; kvm-pvm cannot run xv6 and
/// skips, saying why).
#[test]
fn usertests_pass_on_kvm() {
    usertests_pass_on(EngineKind::Kvm);
}

/// A copy of the built fs.img in a temporary file, removed on drop.
struct TempFs(PathBuf);

impl TempFs {
    fn new(img: &Images, tag: &str) -> TempFs {
        let p = std::env::temp_dir().join(format!("ringlab-xv6-{tag}-{}.img", std::process::id()));
        std::fs::copy(&img.fs, &p).expect("copy fs.img");
        TempFs(p)
    }
}

impl Drop for TempFs {
    fn drop(&mut self) {
        // Best effort: a temporary file left behind harms nothing.
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Boots xv6 with its file system on the file `fs` (as `ringlab run
/// --disk fs.img`, or with `--snapshot`) and types `script`.
fn session_on_file(img: &Images, fs: &Path, snapshot: bool, script: &str) -> String {
    let disk = DiskImage::open(fs, machine::disk::DiskOpenOptions { snapshot })
        .unwrap_or_else(|e| panic!("{e}"));
    let mut m = xv6_machine(img, disk);
    type_at_the_prompt(&mut m, script);
    let r = run(
        EngineKind::Interp,
        m,
        Duration::from_secs(120),
        2_000_000_000,
    )
    .unwrap();
    assert_eq!(r.stop, Stop::InputDone, "COM1:\n{}", r.serial);
    // The session, from the first prompt on.
    let at = r.serial.find("$ ").unwrap();
    r.serial[at..].to_string()
}

#[test]
fn the_file_system_keeps_what_a_session_wrote_and_a_snapshot_does_not() {
    let Some(img) = images_or_skip() else { return };
    let write = "mkdir keep\necho kept > keep/note\n";
    let look = "ls keep\ncat keep/note\n";

    let fs = TempFs::new(img, "keep");
    session_on_file(img, &fs.0, false, write);
    assert_eq!(
        session_on_file(img, &fs.0, false, look),
        "$ ls keep\n\
         .              1 19 48\n\
         ..             1 1 512\n\
         note           2 20 5\n\
         $ cat keep/note\n\
         kept\n\
         $ ",
        "a second boot of the same fs.img sees the files"
    );

    let fs = TempFs::new(img, "snap");
    session_on_file(img, &fs.0, true, write);
    assert_eq!(
        std::fs::read(&fs.0).unwrap(),
        std::fs::read(&img.fs).unwrap(),
        "with --snapshot the file is not written"
    );
    assert_eq!(
        session_on_file(img, &fs.0, true, look),
        "$ ls keep\n\
         ls: cannot open keep\n\
         $ cat keep/note\n\
         cat: cannot open keep/note\n\
         $ ",
        "and the next boot does not see the files"
    );
}

// ---- a system call in the step UI's debugger ---------------------------------

/// The address of `name` in xv6's kernel: the ELF file the Makefile writes
/// into xv6.img from its second sector, with its symbol table.
fn kernel_symbol(img: &Images, name: &str) -> u32 {
    let disk = std::fs::read(&img.xv6).expect("xv6.img");
    tests::elf::symbol(&disk[512..], name)
        .unwrap_or_else(|| panic!("{name} is not in the kernel's symbol table"))
}

/// initcode.S's `int $T_SYSCALL` for exec("/init"): initcode is linked
/// at 0 and its first system call is at 0x11 (after three PUSHes and
/// `mov $SYS_exec, %eax`).
const INITCODE_INT: u32 = 0x11;
/// SYS_exec in xv6's syscall.h.
const SYS_EXEC: u32 = 7;
/// trapasm.S's trapret: `popal`, `popl %gs`, `popl %fs`, `popl %es`,
/// `popl %ds` and `addl $0x8, %esp` (1 + 2 + 2 + 1 + 1 + 3 bytes), then
/// the `iret`.
const TRAPRET_TO_IRET: u32 = 10;

/// The last ring change in the trace: (from, to, cause, eip, eax).
fn last_ring_change(d: &Debugger) -> (u8, u8, machine::PrivCause, u32, u32) {
    d.session
        .m
        .trace
        .records()
        .rev()
        .find_map(|r| match r.event {
            machine::Event::PrivilegeChange {
                from,
                to,
                cause,
                eip,
                eax,
            } => Some((from, to, cause, eip, eax)),
            _ => None,
        })
        .expect("a ring change in the trace")
}

/// `c` until it stops for something else than the end of a slice (the UI
/// runs one slice per key so that a key can pause it). A final stop (a
/// panic loop, a triple fault) panics with the console's last lines and
/// the engine, which the message alone does not say.
fn cont(d: &mut Debugger) {
    for _ in 0..10_000 {
        d.exec(Ui::Continue);
        if d.last_stop != Some(Stop::Timeout) {
            if d.last_stop.as_ref().is_some_and(|s| s.is_final()) {
                let serial = String::from_utf8_lossy(d.session.m.serial_output()).into_owned();
                let lines: Vec<&str> = serial.lines().collect();
                panic!(
                    "on {}: {}; COM1 ends:\n{}",
                    d.session.kind().name(),
                    d.message,
                    lines[lines.len().saturating_sub(8)..].join("\n")
                );
            }
            return;
        }
    }
}

/// `ringlab step` on xv6 as a student uses it: a breakpoint on initcode's
/// first system call, a step across its INT into the kernel, then a
/// breakpoint on trapret's IRET and, where its frame goes back to user
/// mode, a run to the ring change. The step and that run are made on
/// `kind`; getting to them runs on `travel` (in the test VM KVM's
/// breakpoints are compared with the PC while single-stepping, see
/// engine-kvm's debug.rs, and the 6.7 million instructions to initcode
/// would take too long nested under QEMU: the test moves the machine
/// there as the UI's `w` does).
fn a_system_call_in_the_debugger(kind: EngineKind, travel: EngineKind) {
    let Some(img) = images_or_skip() else { return };
    let trapret = kernel_symbol(img, "trapret");
    let m = xv6_machine(img, fs_in_memory(img));
    let s = Session::new(m, travel, Options::default(), &CpuState::reset()).unwrap();
    let mut d = Debugger::new(s);
    let go = |d: &mut Debugger, to: EngineKind| -> bool {
        if d.session.kind() == to {
            return true;
        }
        d.exec(Ui::Switch(to));
        if d.session.kind() == to {
            return true;
        }
        assert!(
            to == EngineKind::Kvm && std::env::var_os("RINGLAB_REQUIRE_KVM").is_none(),
            "switch to {}: {}",
            to.name(),
            d.message
        );
        skip(format!("xv6 in the debugger on kvm: {}", d.message));
        false
    };
    d.exec(Ui::ToggleBreakpoint(INITCODE_INT));
    // Ring 3 -> 0: the INT, with the call's number in EAX. A step may
    // deliver a pending interrupt first (on KVM the clock follows the
    // host's, and the timer is due after the trip): then the INT is still
    // to come when the kernel returns to it; go back there and try again.
    for attempt in 0.. {
        cont(&mut d);
        assert_eq!(
            d.last_stop,
            Some(Stop::Breakpoint { addr: INITCODE_INT }),
            "{}",
            d.message
        );
        let st = d.session.cpu_state().unwrap();
        assert_eq!((st.cpl(), st.regs[machine::cpu::EAX]), (3, SYS_EXEC));
        if !go(&mut d, kind) {
            return;
        }
        d.exec(Ui::Step);
        if kind == EngineKind::Kvm
            && d.message.contains("kvm-pvm")
            && std::env::var_os("RINGLAB_REQUIRE_KVM").is_none()
        {
            skip(format!("xv6 in the debugger on kvm: {}", d.message));
            return;
        }
        if last_ring_change(&d).2 != machine::PrivCause::HardwareInterrupt {
            break;
        }
        assert!(attempt < 20, "an interrupt before the INT, every time");
        if !go(&mut d, travel) {
            return;
        }
    }
    d.exec(Ui::ToggleBreakpoint(INITCODE_INT));
    assert_eq!(d.session.cpu_state().unwrap().cpl(), 0, "{}", d.message);
    assert_eq!(
        last_ring_change(&d),
        (
            3,
            0,
            machine::PrivCause::SoftwareInterrupt,
            INITCODE_INT,
            SYS_EXEC
        )
    );
    assert!(
        ringlab::inspect::event_what(&d.session.m.trace.records().last().unwrap().event)
            .contains("(EAX 0x7)")
            || kind == EngineKind::Kvm,
        "the event names the system call"
    );
    // Ring 0 -> 3: trapret's IRET, the one whose frame returns to user
    // mode (exec loads /init from the disk: the kernel switches to other
    // work meanwhile, and its disk and timer interrupts return to ring 0
    // through the same IRET first). The frame is at ESP there: EIP, then
    // CS. Getting there runs on `travel`; from there the engine under
    // test runs to the ring change. That run is robust to what KVM's
    // host-timed clock brings: a timer interrupt taken at trapret (the
    // system call's trap gate leaves IF set) nests in ring 0, and the
    // first ring change after it is still this IRET.
    let iret = trapret + TRAPRET_TO_IRET;
    let st = d.session.cpu_state().unwrap();
    assert_eq!(
        ringlab::inspect::read_linear(&d.session.m, &st, iret, 1),
        [0xCF],
        "trapret's IRET at {iret:#x}"
    );
    d.exec(Ui::ToggleBreakpoint(iret));
    for _ in 0..100 {
        if !go(&mut d, travel) {
            return;
        }
        cont(&mut d);
        assert_eq!(
            d.last_stop,
            Some(Stop::Breakpoint { addr: iret }),
            "{}",
            d.message
        );
        let st = d.session.cpu_state().unwrap();
        let frame = ringlab::inspect::read_linear(&d.session.m, &st, st.regs[machine::cpu::ESP], 8);
        let cs = u32::from_le_bytes(frame[4..8].try_into().unwrap());
        if cs & 3 != 3 {
            continue;
        }
        if !go(&mut d, kind) {
            return;
        }
        d.exec(Ui::ToggleBreakpoint(iret));
        d.exec(Ui::RunToRingChange);
        assert_eq!(d.last_stop, Some(Stop::Event), "{}", d.message);
        let (from, to, cause, eip, _) = last_ring_change(&d);
        assert_eq!(
            (from, to, cause, eip),
            (0, 3, machine::PrivCause::Iret, iret)
        );
        let st = d.session.cpu_state().unwrap();
        assert_eq!(st.cpl(), 3);
        assert_eq!(d.session.kind(), kind, "{}", d.message);
        // exec's return lands at /init's entry, main, at 0.
        assert_eq!(st.eip, 0, "{}", d.message);
        return;
    }
    panic!("no return to ring 3 through trapret");
}

#[test]
fn a_system_call_in_the_debugger_on_the_interpreter() {
    a_system_call_in_the_debugger(EngineKind::Interp, EngineKind::Interp);
}

#[test]
fn a_system_call_in_the_debugger_on_the_translator() {
    a_system_call_in_the_debugger(EngineKind::Bt, EngineKind::Bt);
}

#[test]
fn a_system_call_in_the_debugger_on_kvm() {
    a_system_call_in_the_debugger(EngineKind::Kvm, EngineKind::Interp);
}

/// A file system whose inode block 32 (the root directory's inode among
/// them) is zeroed: xv6 panics in ilock when init opens the console, and
/// the run stops at its panic loop (`cli; jmp $`) with everything it
/// printed, the panic's call stack last, on the interpreter and the
/// translator, never a hang.
#[test]
fn an_xv6_panic_is_a_spinning_stop_with_the_panic_on_the_console() {
    let Some(img) = images_or_skip() else { return };
    for kind in [EngineKind::Interp, EngineKind::Bt] {
        let mut fs = std::fs::read(&img.fs).unwrap();
        fs[32 * 512..33 * 512].fill(0);
        let m = xv6_machine(img, DiskImage::from_bytes(fs).unwrap());
        let r = run(kind, m, Duration::from_secs(120), 200_000_000).unwrap();
        assert_eq!(r.stop, Stop::Spinning, "{}: {}", kind.name(), r.serial);
        let last: Vec<&str> = r.serial.lines().rev().take(2).collect();
        assert_eq!(
            last[1],
            "lapicid 0: panic: ilock: no type",
            "{}",
            kind.name()
        );
        assert!(
            last[0].starts_with(" 8010"),
            "the call stack: {:?}",
            last[0]
        );
    }
}

// ---- gdb on xv6's kernel -----------------------------------------------------

/// Debian's gdb on xv6's kernel, as with xv6's `make qemu-gdb`: the kernel
/// ELF (from xv6.img, where the Makefile put it) for the symbols, `break
/// syscall`, `continue`, `bt`, the registers, the trap frame's IRET back to
/// ring 3 (a breakpoint on trapret only when the frame returns to user
/// code: `((struct trapframe *)$esp)->cs == 0x1b`), a watchpoint on
/// `ticks`, `monitor info gdt`.
const XV6_GDB_COMMANDS: &[&str] = &[
    "break syscall",
    "continue",
    "bt",
    "info registers eflags",
    "p/x $cs",
    "p/x $eax",
    "p myproc()->tf->eax",
    "x/4i $pc",
    "delete",
    "break trapret if ((struct trapframe *)$esp)->cs == 0x1b",
    "continue",
    // popal; four segment POPs; add $8, %esp: then the IRET.
    "stepi 6",
    "x/i $pc",
    "stepi",
    "p/x $cs",
    "info registers eip",
    "monitor info rings",
    "delete",
    "watch ticks",
    "continue",
    "continue",
    "delete",
    "monitor info gdt",
    "kill",
];

/// The xv6 gdb session on each of `kinds`, one transcript, the snapshot's
/// (`xv6_gdb_filter` says what is filtered and why).
fn xv6_gdb_session(kinds: &[EngineKind]) {
    let Some(img) = images_or_skip() else { return };
    let disk = std::fs::read(&img.xv6).unwrap();
    // One file per test: the tests run in parallel, each removes its own.
    let elf = std::env::temp_dir().join(format!(
        "ringlab-xv6-kernel-{}-{}",
        std::process::id(),
        kinds[0].name()
    ));
    std::fs::write(&elf, &disk[512..]).unwrap();
    let mut one = tests::gdb::OneTranscript::default();
    for &kind in kinds {
        let m = xv6_machine(img, fs_in_memory(img));
        let started = Instant::now();
        let Some(r) =
            tests::gdb::session(kind, m, &CpuState::reset(), Some(&elf), XV6_GDB_COMMANDS)
        else {
            break;
        };
        eprintln!(
            "xv6 under gdb on {}: {:.1} s",
            kind.name(),
            started.elapsed().as_secs_f64()
        );
        let tcg_kvm = kind == EngineKind::Kvm && tests::gdb::kvm_under_tcg();
        let t = xv6_gdb_filter(&r.transcript, tcg_kvm);
        one.check(kind, &t, |t| insta::assert_snapshot!("xv6_gdb", t));
    }
    let _ = std::fs::remove_file(&elf);
}

/// What differs by design in the xv6 gdb transcript, made alike:
/// - `monitor info rings`' count of privilege changes and its instruction
///   counts (the first column of its change lines, right-aligned to its
///   width), as `<n>` and `<icount>`: KVM records a ring change only where it single-steps,
///   and counts only the instructions it single-stepped;
/// - the value of `ticks` at the watchpoint's stops, as `<ticks>` and
///   `<ticks> + 1` (checked to be one apart): KVM's clock is the host's
///   while it runs, so how many timer ticks have passed by then differs;
/// - gdb's failure to open a source file (there are none beside the
///   kernel), whose reason depends on the directory gdb runs in ("No such
///   file or directory", in the test VM "Not a directory"), as `(no
///   source)`;
/// - the warning of the test VM's gdb-minimal, built without iconv, on
///   each symbol name given on the command line ("could not convert
///   'syscall' from the host encoding ... to UTF-32" and "This normally
///   should not happen..."): dropped;
/// - on KVM under QEMU's TCG (the test VM): the accessed bit of the code
///   descriptors in `monitor info gdt` (`tests::gdb::code_descriptors_
///   accessed`).
fn xv6_gdb_filter(t: &str, tcg_kvm: bool) -> String {
    let mut out = String::new();
    let (mut old_ticks, mut new_ticks): (Option<u64>, Option<u64>) = (None, None);
    for line in t.lines() {
        if line.starts_with("warning: could not convert '")
            || line == "This normally should not happen, please file a bug report."
        {
            continue;
        }
        if let Some((head, _)) = line
            .split_once(": No such file or directory.")
            .or_else(|| line.split_once(": Not a directory."))
        {
            out.push_str(head);
            out.push_str(": (no source)\n");
            continue;
        }
        if let Some(v) = line.strip_prefix("Old value = ") {
            let old: u64 = v.parse().expect("ticks");
            if let Some(last) = new_ticks {
                assert_eq!(old, last, "the next tick's old value is the last one's new");
            }
            old_ticks = Some(old);
            out.push_str("Old value = <ticks>\n");
            continue;
        }
        if let Some(v) = line.strip_prefix("New value = ") {
            let new: u64 = v.parse().expect("ticks");
            assert_eq!(
                Some(new),
                old_ticks.map(|o| o + 1),
                "ticks counts up by one"
            );
            new_ticks = Some(new);
            out.push_str("New value = <ticks> + 1\n");
            continue;
        }
        if let Some(rest) = line.strip_prefix("privilege changes: ") {
            if let Some((_, kept)) = rest.split_once(" in all; ") {
                out.push_str(&format!("privilege changes: <n> in all; {kept}\n"));
                continue;
            }
        }
        let mut w = line.split_whitespace();
        let counted = w
            .next()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
            && w.next() == Some("ring")
            && line.contains(" by ");
        if counted {
            // Right-aligned in a column as wide as the count.
            let rest = line.trim_start().split_once(' ').map_or("", |(_, r)| r);
            out.push_str(&format!("  <icount>  {}\n", rest.trim_start()));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if tcg_kvm {
        return tests::gdb::code_descriptors_accessed(&out);
    }
    out
}

/// The session on the interpreter and the translator.
#[test]
fn gdb_on_the_xv6_kernel_gives_one_transcript_on_interp_and_bt() {
    xv6_gdb_session(&[EngineKind::Interp, EngineKind::Bt]);
}

/// The session on KVM (the QEMU/SVM test VM; kvm-pvm cannot page).
#[test]
fn gdb_on_the_xv6_kernel_on_kvm() {
    xv6_gdb_session(&[EngineKind::Kvm]);
}
