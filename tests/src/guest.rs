//! The guest harness of the protected-mode, deprivilege and robustness
//! tests: guests written in GNU as (Intel syntax) are assembled here with
//! binutils, loaded into a small machine and run on the interpreter (a
//! `ringlab::session::Session`, as every run is), whose run the tests then
//! examine in detail (memory, fault log, events).
//!
//! **Every engine runs every guest.** `run_from` then runs the same guest,
//! from the same RAM and CPU state, on each other engine this host has (KVM
//! today) and asserts that it ends the same way: the same stop, serial
//! output, VGA text, general registers, EIP and every byte of RAM (see
//! `cross_check`). Where an engine cannot run a guest on this host (kvm-pvm
//! has no 32-bit paging and fails on ring changes) the comparison is skipped
//! with the reason reported through [`crate::skip`]; with
//! `RINGLAB_REQUIRE_KVM` set (the QEMU/SVM test VM of
//! `scripts/kvm-vm-tests.sh`) nothing may skip.
//!
//! Protected-mode guests start with a common "kernel prologue" (`PROLOGUE`)
//! that builds, at fixed addresses the tests can read back:
//!
//! - a GDT at `GDT_BASE`: null, ring-0 code 0x08, ring-0 data 0x10, ring-3
//!   code 0x1B, ring-3 data 0x23, a 32-bit TSS 0x28; entries 6-15 are free
//!   for tests (limit 0x7F, so selector 0x80 is just beyond it);
//! - an IDT at `IDT_BASE` whose 256 interrupt gates lead to stubs that log
//!   (vector, error code, CR2, EIP, CS, EFLAGS, outer ESP, outer SS) at
//!   `LOG` and then either resume at the address stored in `RESUME` (set by
//!   the `EXPECT_FAULT` macro) or stop the machine through port 0xF4 with
//!   the vector as the exit value;
//! - a TSS at `TSS_BASE` with SS0:ESP0 = 0x10:`KSTACK` and a full I/O
//!   permission bitmap that denies every port;
//! - vector 0x81, a DPL-3 gate that exits with AL (`EXIT code`);
//! - vector 0x82, a DPL-3 gate back to ring 0 (`CALL_RING3` / `RET_RING0`).
//!
//! Tests finish with `EXIT DONE` and assert on the memory at `RESULTS`, the
//! fault log and the engine's event trace.

#![allow(dead_code)]

use machine::cpu::CpuState;
use machine::event::Record;
use machine::{Chain, Event, Limits, Machine, MachineConfig, PrivCause, Stop};
use ringlab::engines::EngineKind;
use ringlab::session::{Options, Session};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Where protected-mode test kernels are linked and loaded (1 MiB, as a
/// multiboot loader would put them).
pub const LOAD: u32 = 0x0010_0000;
/// 32-bit words the guest stores its observations into.
pub const RESULTS: u32 = 0x7000;
/// Number of fault log entries written so far.
pub const LOG_COUNT: u32 = 0x8000;
/// Resume address for the next fault (0: stop the machine instead).
pub const RESUME: u32 = 0x8010;
/// Where `RET_RING0` continues in ring 0.
pub const RING0_CONT: u32 = 0x8014;
/// Fault log: 32-byte entries.
pub const LOG: u32 = 0x8020;
pub const LOG_MAX: u32 = 32;
pub const GDT_BASE: u32 = 0x1000;
pub const IDT_BASE: u32 = 0x2000;
pub const TSS_BASE: u32 = 0x3000;
/// Ring-0 stack top (TSS.ESP0).
pub const KSTACK: u32 = 0x80000;
/// Ring-3 stack top used by `TO_RING3`.
pub const USTACK: u32 = 0x70000;
/// Exit value of a guest that ran to its end.
pub const DONE: u32 = 0x4F;
/// Exit value of the fault handler when the log overflowed (a fault loop).
pub const LOG_OVERFLOW: u32 = 0xEE;
/// Error code logged for vectors that push none.
pub const NOERR: u32 = 0xFFFF_FFFF;

/// The protected-mode kernel prologue; the test body follows `test_main:`.
pub const PROLOGUE: &str = r#"
.intel_syntax noprefix
.code32
.set RESULTS, 0x7000
.set LOG_COUNT, 0x8000
.set RESUME, 0x8010
.set RING0_CONT, 0x8014
.set LOG, 0x8020
.set LOG_MAX, 32
.set GDT_BASE, 0x1000
.set GDT_LIMIT, 0x7F
.set IDT_BASE, 0x2000
.set TSS_BASE, 0x3000
.set TSS_LIMIT, 0x2068
.set IOMAP, TSS_BASE + 0x68
.set KSTACK, 0x80000
.set USTACK, 0x70000
.set SCRATCH, 0x6000
.set DONE, 0x4F
.set EXIT_VEC, 0x81
.set RING0_VEC, 0x82

# Writes the 8-byte descriptor (lo, hi) for selector `sel` into the GDT.
.macro DESC sel, lo, hi
    mov dword ptr [GDT_BASE + (\sel & 0xFFF8)], \lo
    mov dword ptr [GDT_BASE + (\sel & 0xFFF8) + 4], \hi
.endm

# Points IDT entry `vec` at `handler` with type/DPL byte `attr` (e.g. 0x8E00
# interrupt gate DPL 0, 0xEF00 trap gate DPL 3). Clobbers EAX and EDX.
.macro GATE vec, handler, attr, sel=0x08
    mov eax, offset \handler
    mov edx, eax
    and eax, 0xFFFF
    or eax, (\sel << 16)
    and edx, 0xFFFF0000
    or edx, \attr
    mov [IDT_BASE + \vec * 8], eax
    mov [IDT_BASE + \vec * 8 + 4], edx
.endm

# The next fault resumes at `label` (after being logged).
.macro EXPECT_FAULT label
    mov dword ptr [RESUME], offset \label
.endm

# IRET to ring 3 at `target` with the ring-3 stack and EFLAGS `eflags`.
.macro TO_RING3 target, eflags=0x2
    push 0x23
    push USTACK
    push \eflags
    push 0x1B
    push offset \target
    iretd
.endm

# Runs `target` in ring 3; the ring-3 code comes back with RET_RING0 and
# execution continues after this macro in ring 0 on a fresh KSTACK.
.macro CALL_RING3 target, eflags=0x2
    mov dword ptr [RING0_CONT], offset 77f
    TO_RING3 \target, \eflags
77:
.endm

.macro RET_RING0
    int RING0_VEC
.endm

# Stops the machine with exit value `code` (works from any ring).
.macro EXIT code
    mov al, \code
    int EXIT_VEC
.endm

.section .text
.global start
start:
    jmp kernel_init

.balign 16
stubs:
.set vec, 0
.rept 256
    .balign 16
    .if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || (vec == 14) || (vec == 17)
    .else
    push -1
    .endif
    push vec
    jmp common_handler
    .set vec, vec + 1
.endr

# Stack: pushad (32), ES, DS, vector, error, EIP, CS, EFLAGS, [ESP, SS].
common_handler:
    push ds
    push es
    pushad
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ebx, [LOG_COUNT]
    cmp ebx, LOG_MAX
    jae 9f
    shl ebx, 5
    add ebx, LOG
    mov eax, [esp + 40]
    mov [ebx], eax
    mov eax, [esp + 44]
    mov [ebx + 4], eax
    mov eax, cr2
    mov [ebx + 8], eax
    mov eax, [esp + 48]
    mov [ebx + 12], eax
    mov eax, [esp + 52]
    mov [ebx + 16], eax
    mov eax, [esp + 56]
    mov [ebx + 20], eax
    mov eax, [esp + 60]
    mov [ebx + 24], eax
    mov eax, [esp + 64]
    mov [ebx + 28], eax
    inc dword ptr [LOG_COUNT]
    mov eax, [RESUME]
    test eax, eax
    jz 8f
    mov dword ptr [RESUME], 0
    mov [esp + 48], eax
    popad
    pop es
    pop ds
    add esp, 8
    iretd
8:  mov eax, [esp + 40]
    out 0xf4, al
    cli
    hlt
9:  mov al, 0xEE
    out 0xf4, al
    cli
    hlt

exit_handler:
    out 0xf4, al
    cli
    hlt

ring0_return:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov fs, ax
    mov gs, ax
    mov esp, KSTACK
    jmp dword ptr [RING0_CONT]

.balign 8
gdt_ptr:
    .word GDT_LIMIT
    .long GDT_BASE
idt_ptr:
    .word 0x7FF
    .long IDT_BASE

kernel_init:
    cli
    cld
    mov edi, GDT_BASE
    xor eax, eax
    mov ecx, 64
    rep stosd
    DESC 0x08, 0x0000FFFF, 0x00CF9A00
    DESC 0x10, 0x0000FFFF, 0x00CF9200
    DESC 0x18, 0x0000FFFF, 0x00CFFA00
    DESC 0x20, 0x0000FFFF, 0x00CFF200
    DESC 0x28, ((TSS_BASE << 16) | (TSS_LIMIT & 0xFFFF)), (0x00008900 | ((TSS_BASE >> 16) & 0xFF) | (TSS_LIMIT & 0xF0000))
    lgdt [gdt_ptr]
    lidt [idt_ptr]
    jmp 0x08:1f
1:  mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov fs, ax
    mov gs, ax
    mov ss, ax
    mov esp, KSTACK
    mov edi, IDT_BASE
    mov ebx, offset stubs
    mov ecx, 256
2:  mov eax, ebx
    and eax, 0xFFFF
    or eax, 0x00080000
    mov edx, ebx
    and edx, 0xFFFF0000
    or edx, 0x8E00
    mov [edi], eax
    mov [edi + 4], edx
    add edi, 8
    add ebx, 16
    loop 2b
    GATE EXIT_VEC, exit_handler, 0xEE00
    GATE RING0_VEC, ring0_return, 0xEE00
    mov edi, TSS_BASE
    xor eax, eax
    mov ecx, 0x68 / 4
    rep stosd
    mov dword ptr [TSS_BASE + 4], KSTACK
    mov dword ptr [TSS_BASE + 8], 0x10
    mov word ptr [TSS_BASE + 0x66], 0x68
    mov edi, IOMAP
    mov al, 0xFF
    mov ecx, 0x2001
    rep stosb
    mov ax, 0x28
    ltr ax
    mov dword ptr [LOG_COUNT], 0
    mov dword ptr [RESUME], 0
    xor eax, eax
    xor ebx, ebx
    xor ecx, ecx
    xor edx, edx
    xor esi, esi
    xor edi, edi
    xor ebp, ebp
    jmp test_main
"#;

fn tmp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ringlab-guests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn tool(name: &str, args: &[&str]) {
    let out = Command::new(name).args(args).output().unwrap_or_else(|e| {
        panic!("cannot run {name} (GNU binutils are needed: apt-get install binutils): {e}")
    });
    assert!(
        out.status.success(),
        "{name} {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Assembles `src` (a complete GNU as source with a `start` label), links
/// its .text at `org` and returns the flat binary.
pub fn assemble(name: &str, src: &str, org: u32) -> Vec<u8> {
    CURRENT_GUEST.with(|g| *g.borrow_mut() = name.to_string());
    let dir = tmp_dir();
    let src_p = dir.join(format!("{name}.S"));
    std::fs::write(&src_p, src).unwrap();
    assemble_file(&src_p, None, &dir, org)
}

/// `assemble`, and the addresses of the labels `names` of `src`, read
/// from the linked ELF's symbol table (panics on a label not there).
pub fn assemble_with_labels<const N: usize>(
    name: &str,
    src: &str,
    org: u32,
    names: [&str; N],
) -> (Vec<u8>, [u32; N]) {
    let bin = assemble(name, src, org);
    let elf = std::fs::read(tmp_dir().join(format!("{name}.elf"))).unwrap();
    let at = names
        .map(|n| crate::elf::symbol(&elf, n).unwrap_or_else(|| panic!("{name}: no label {n}")));
    (bin, at)
}

/// Assembles the GNU as file `src` (with `include` on the include path),
/// links its .text at `org` with the entry `start`, and returns the flat
/// binary; the object files go to `dir`.
pub fn assemble_file(src: &Path, include: Option<&Path>, dir: &Path, org: u32) -> Vec<u8> {
    let name = src.file_stem().and_then(|n| n.to_str()).unwrap_or("guest");
    let p = |ext: &str| dir.join(format!("{name}.{ext}"));
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let (obj, elf, bin) = (p("o"), p("elf"), p("bin"));
    let mut as_args = vec!["--32".to_string()];
    if let Some(inc) = include {
        as_args.extend(["-I".to_string(), s(inc)]);
    }
    as_args.extend(["-o".to_string(), s(&obj), s(src)]);
    tool(
        "as",
        &as_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    tool(
        "ld",
        &[
            "-m",
            "elf_i386",
            "-nostdlib",
            "-N",
            &format!("-Ttext={org:#x}"),
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
    std::fs::read(&bin).unwrap()
}

/// A finished run: the machine on its engine (the interpreter), and why
/// it stopped.
pub struct Run {
    pub session: Session,
    pub stop: Stop,
}

/// One entry of the guest's fault log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub vector: u32,
    pub error: u32,
    pub cr2: u32,
    pub eip: u32,
    pub cs: u32,
    pub eflags: u32,
    /// Only meaningful when the fault changed privilege (outer ESP, SS).
    pub esp: u32,
    pub ss: u32,
}

impl Run {
    /// The machine the guest ran on.
    pub fn m(&self) -> &Machine {
        &self.session.m
    }

    pub fn u32_at(&self, addr: u32) -> u32 {
        self.m()
            .mem
            .read_u32(addr as u64)
            .expect("address inside RAM")
    }

    /// Word `i` of the results area.
    pub fn result(&self, i: u32) -> u32 {
        self.u32_at(RESULTS + 4 * i)
    }

    /// The logged faults as (vector, error code, EIP): what most tests
    /// compare.
    pub fn fault_sites(&self) -> Vec<(u32, u32, u32)> {
        self.faults()
            .iter()
            .map(|f| (f.vector, f.error, f.eip))
            .collect()
    }

    pub fn faults(&self) -> Vec<Fault> {
        let n = self.u32_at(LOG_COUNT).min(LOG_MAX);
        (0..n)
            .map(|i| {
                let e = LOG + 32 * i;
                let w = |k: u32| self.u32_at(e + 4 * k);
                Fault {
                    vector: w(0),
                    error: w(1),
                    cr2: w(2),
                    eip: w(3),
                    cs: w(4),
                    eflags: w(5),
                    esp: w(6),
                    ss: w(7),
                }
            })
            .collect()
    }

    /// (vector, error code) of every logged fault, in order.
    pub fn fault_codes(&self) -> Vec<(u32, u32)> {
        self.faults().iter().map(|f| (f.vector, f.error)).collect()
    }

    pub fn state(&mut self) -> CpuState {
        self.session.cpu_state().expect("cpu_state")
    }

    /// The trace's exception and privilege-change events, in order.
    pub fn events(&self) -> Vec<Event> {
        self.m()
            .trace
            .records()
            .map(|r: &Record| r.event.clone())
            .filter(|e| matches!(e, Event::Exception { .. } | Event::PrivilegeChange { .. }))
            .collect()
    }

    /// (vector, error code, EIP) of every Exception event in the trace.
    pub fn exceptions(&self) -> Vec<(u8, Option<u32>, u32)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Exception {
                    vector,
                    error_code,
                    eip,
                } => Some((vector, error_code, eip)),
                _ => None,
            })
            .collect()
    }

    /// (from, to, cause, EIP) of every PrivilegeChange event in the trace.
    pub fn priv_changes(&self) -> Vec<(u8, u8, PrivCause, u32)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::PrivilegeChange {
                    from,
                    to,
                    cause,
                    eip,
                    ..
                } => Some((from, to, cause, eip)),
                _ => None,
            })
            .collect()
    }

    /// Everything useful for a failure message.
    pub fn describe(&mut self) -> String {
        let st = self.state();
        let tail: Vec<String> = self
            .m()
            .trace
            .records()
            .rev()
            .take(12)
            .map(|r| format!("  {:?}", r.event))
            .collect();
        format!(
            "stop: {:?}\neip {:#x} cs {:#x} cpl {} eflags {:#x} regs {:x?}\nfault log: {:#x?}\n\
             last events (newest first):\n{}",
            self.stop,
            st.eip,
            st.segs[1].selector,
            st.cpl(),
            st.eflags,
            st.regs,
            self.faults(),
            tail.join("\n")
        )
    }

    /// Asserts that the guest ran to its `EXIT DONE`.
    pub fn assert_done(&mut self) {
        if self.stop != (Stop::GuestExit { value: DONE }) {
            panic!("guest did not finish:\n{}", self.describe());
        }
    }

    pub fn assert_stop(&mut self, want: Stop) {
        if self.stop != want {
            panic!("expected {want:?}:\n{}", self.describe());
        }
    }
}

/// Budget for guest runs, from now: far more than any test guest needs.
pub fn limits() -> Limits {
    Limits {
        max_icount: Some(20_000_000),
        deadline: Some(Instant::now() + Duration::from_secs(20)),
        breakpoints: Vec::new(),
    }
}

/// `limits` for KVM, which does not count instructions: the deadline only
/// (an instruction bound would be single-stepped to).
pub fn kvm_limits() -> Limits {
    Limits {
        max_icount: None,
        ..limits()
    }
}

/// `m` on engine `kind` (default options), entered with `state`.
pub fn session(m: Machine, kind: EngineKind, state: &CpuState) -> Session {
    Session::new(m, kind, Options::default(), state)
        .unwrap_or_else(|e| panic!("{}: {}", kind.name(), Chain(&e)))
}

/// A machine with 4 MiB of RAM and `image` at `addr`.
pub fn machine_with(image: &[u8], addr: u32) -> Machine {
    machine_ram(image, addr, 4 << 20)
}

pub fn machine_ram(image: &[u8], addr: u32, ram: usize) -> Machine {
    let mut m = Machine::new(MachineConfig::with_ram(ram)).expect("machine");
    m.mem.write(addr as u64, image).expect("image fits in RAM");
    m
}

/// Runs `m` from `state` until it stops, on the interpreter,
/// and then on every other engine, which must end the same way
/// (`cross_check`).
pub fn run_from(m: Machine, state: &CpuState) -> Run {
    let ram = m.mem.as_slice().to_vec();
    let mut session = session(m, EngineKind::Interp, state);
    let stop = session.run_until(&limits()).expect("engine error");
    let mut run = Run { session, stop };
    translator_check(&ram, state, &mut run);
    cross_check(&ram, state, &mut run);
    run
}

/// Runs the guest again on the binary translator, which must end exactly
/// as the interpreter did: the same stop (budget stops included: both
/// count instructions exactly), serial output, VGA text, every register
/// (EFLAGS included), every byte of RAM, and the same event trace, event
/// for event with the same instruction counts.
pub fn translator_check(ram: &[u8], state: &CpuState, run: &mut Run) {
    if run.stop == Stop::Timeout {
        crate::skip(format!(
            "translator check of {}: the interpreter timed out",
            current_guest()
        ));
        return;
    }
    let mut m = Machine::new(MachineConfig::with_ram(ram.len())).expect("machine");
    m.mem.write_untracked(0, ram).expect("RAM image");
    let mut bt = session(m, EngineKind::Bt, state);
    let stop = bt.run_until(&limits()).expect("bt: engine error");
    let got = bt.cpu_state().expect("bt: cpu_state");
    let want = run.session.cpu_state().expect("interp: cpu_state");
    let m = &bt.m;
    let run_m = &run.session.m;
    let mut diffs = Vec::new();
    if stop != run.stop {
        diffs.push(format!("stop: interp {:?}, bt {stop:?}", run.stop));
    }
    if m.serial_output() != run_m.serial_output() {
        diffs.push(format!(
            "serial output: interp {:?}, bt {:?}",
            String::from_utf8_lossy(run_m.serial_output()),
            String::from_utf8_lossy(m.serial_output())
        ));
    }
    if m.screen().text() != run_m.screen().text() {
        diffs.push("VGA text differs".into());
    }
    if (got.regs, got.eip, got.eflags, got.segs) != (want.regs, want.eip, want.eflags, want.segs) {
        diffs.push(format!(
            "state: interp eip {:#x} eflags {:#x} regs {:x?}, bt eip {:#x} eflags {:#x} regs {:x?}",
            want.eip, want.eflags, want.regs, got.eip, got.eflags, got.regs
        ));
    }
    if m.icount() != run_m.icount() {
        diffs.push(format!(
            "instructions: interp {}, bt {}",
            run_m.icount(),
            m.icount()
        ));
    }
    let (a, b) = (run_m.mem.as_slice(), m.mem.as_slice());
    if let Some(i) = (0..a.len()).find(|&i| a[i] != b[i]) {
        diffs.push(format!(
            "RAM differs first at {i:#x}: interp {:02x}, bt {:02x}",
            a[i], b[i]
        ));
    }
    // The translator hands sensitive instructions to the interpreter as
    // callouts: the same events, but saying so.
    let events = |m: &Machine| -> Vec<String> {
        m.trace
            .records()
            .map(|r| {
                format!("{} {:?}", r.icount, r.event).replace("how: Callout", "how: Interpreted")
            })
            .collect()
    };
    let (ei, eb) = (events(run_m), events(m));
    if ei != eb {
        let at = ei
            .iter()
            .zip(&eb)
            .position(|(x, y)| x != y)
            .unwrap_or(ei.len().min(eb.len()));
        diffs.push(format!(
            "event traces differ at record {at}: interp {:?}, bt {:?}",
            ei.get(at),
            eb.get(at)
        ));
    }
    assert!(
        diffs.is_empty(),
        "the guest ended differently on the translator than on the interpreter:\n{}\nbt {:?}",
        diffs.join("\n"),
        bt.stats()
    );
}

thread_local! {
    /// The name of the guest this test thread assembled last: the one
    /// `cross_check` compares (each test runs on its own thread).
    static CURRENT_GUEST: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// The guest this test thread assembled last (for the skip reasons).
fn current_guest() -> String {
    CURRENT_GUEST.with(|g| g.borrow().clone())
}

/// Where QEMU's TCG, which plays the real CPU inside the test VM of
/// `scripts/kvm-vm-tests.sh` (KVM runs guests on its emulated SVM), departs
/// from the SDM in a way a guest can see. These guests are not compared
/// there; everywhere else (real VT-x or AMD-V) they are.
const TCG_DEPARTURES: &[(&str, &str)] = &[
    (
        "enter_frame",
        "QEMU's TCG computes ENTER's FrameTemp as ESP minus the operand size in \
         32-bit arithmetic (target/i386/tcg/translate.c, gen_enter), so on a 16-bit \
         stack at ESP = 0x10000 it pushes and loads 0xFFFC where the SDM's \
         FrameTemp (ESP after the push, SP wrapped) is 0x1FFFC",
    ),
    (
        "arpl_ro",
        "QEMU's TCG does not check a data segment's write permission on each \
         access (only when the selector is loaded), so ARPL raising the RPL of a \
         word in a read-only segment does not raise #GP(0)",
    ),
    (
        "alignment_check",
        "QEMU's TCG does not implement alignment checking (#AC, SDM Vol 3A 6.15 \
         interrupt 17): CR0.AM and EFLAGS.AC are ignored",
    ),
    (
        "cs_limit",
        "QEMU's TCG does not check segment limits (SDM Vol 3A 5.3): no #GP for \
         EIP beyond the CS limit",
    ),
    (
        "delivery_memo",
        "QEMU's TCG sets no accessed bit in the stack segment descriptors that IRET \
         and an inter-privilege interrupt load (SDM Vol 3A 3.4.5.1: the processor \
         sets it when it loads the selector), and does not check the EIP that IRET \
         pops against the new CS limit (as cs_limit)",
    ),
    (
        "expand_down",
        "QEMU's TCG does not check segment limits (SDM Vol 3A 5.3): no #GP or #SS \
         for offsets outside an expand-down segment",
    ),
    (
        "segment_faults",
        "QEMU's TCG does not check data segment limits (SDM Vol 3A 5.3): accesses \
         beyond a limit do not fault",
    ),
    (
        "real_mode",
        "QEMU's TCG does not check the 64 KiB real-mode limit (SDM Vol 3A 20.1.1): \
         a word at offset 0xFFFF does not raise #GP or #SS",
    ),
    (
        "double_fault",
        "the CPU in the test VM (QEMU's TCG emulating SVM, with kvm_amd \
         reinjecting the #GP it intercepts) delivers #NP for the not-present \
         gate instead of the double fault the SDM requires (Vol 3A Table 6-5: \
         contributory after contributory)",
    ),
    (
        "double_fault_task",
        "as double_fault: #NP is delivered instead of the double fault, so the #DF \
         task gate is never taken",
    ),
    (
        "invalid_opcodes",
        "QEMU's TCG executes LOCK MOV r32, m32, which must raise #UD (SDM Vol 2A \
         \"LOCK\": the prefix is allowed only on read-modify-write instructions)",
    ),
    (
        "tasks",
        "with kvm_amd intercepting task switches, QEMU's TCG hands over EFLAGS \
         without its lazily computed status flags, so the task state segment \
         saves PF and ZF as 0 (SDM Vol 3A 7.3: the current EFLAGS are saved), and \
         it keeps RF set for more than one instruction (SDM Vol 3A 17.3.1.1)",
    ),
    (
        "ts_ext",
        "the CPU in the test VM (QEMU's TCG delivering the #UD that kvm_amd \
         intercepts and reinjects) gives the #TS raised while delivering it EXT = \
         0, where the SDM sets EXT for an exception during delivery of another \
         (Vol 3A 6.13)",
    ),
    (
        "smc",
        "the guest patches the very next instruction through another linear \
         alias of its page, without a jump in between; the SDM guarantees the new \
         code only after a jump (Vol 3A 8.1.3), and QEMU's TCG runs the stale \
         instruction where current CPUs (and the interpreter) run the new one",
    ),
];

/// Guests whose ending on KVM is not architectural anywhere.
const KVM_DEPARTURES: &[(&str, &str)] = &[(
    "outside_ram",
    "the guest puts page tables at physical addresses with no RAM; KVM cannot \
     back the CPU's page walker with emulated (MMIO) memory, so what such a walk \
     gives is KVM's choice, not the all-ones a PC's bus returns (the interpreter's \
     model)",
)];

/// Whether the CPU under this host's KVM is QEMU's TCG.
fn cpu_is_qemu_tcg() -> bool {
    engine_kvm::host::hypervisor_signature().as_deref() == Some("TCGTCGTCGTCG")
}

/// Whether the RAM byte at `i`, set in `interp` and `kvm` to different
/// values, differs only as QEMU's TCG is known to depart from the SDM:
///
/// - TCG does not set the accessed bit of a descriptor when it loads CS or
///   SS (far JMP, CALL, RET, IRET, gates), which the SDM requires (Vol 3A
///   3.4.5.1, "Accessed bit"): bit 0 of the access byte (byte 5) of a
///   GDT or LDT entry.
/// - TCG does not set RF in the EFLAGS image of a fault it delivers itself
///   (SDM Vol 3A 17.3.1.1: 1 for every fault class exception); KVM does
///   for the faults it intercepts and injects; and TCG does not clear RF
///   once the next instruction completes. So bit 16 of a dword-aligned
///   EFLAGS image (bit 1, always 1, set in both) in memory.
fn tcg_excused(interp: &[u8], kvm: &[u8], i: usize, st: &CpuState) -> bool {
    let (x, y) = (interp[i], kvm[i]);
    if x ^ y != 1 {
        return false;
    }
    let d = i & !3;
    if i % 4 == 2 && d + 4 <= interp.len() && interp[d] & 2 != 0 && kvm[d] & 2 != 0 {
        return true;
    }
    if x & 1 == 0 {
        return false;
    }
    let in_table = |base: u32, limit: u32| {
        let (base, end) = (base as usize, base as usize + limit as usize + 1);
        i >= base && i < end && (i - base) % 8 == 5
    };
    in_table(st.gdtr.base, st.gdtr.limit as u32) || in_table(st.ldtr.base, st.ldtr.limit)
}

/// What a guest's run left behind that every engine must agree on.
struct Outcome {
    stop: Stop,
    serial: Vec<u8>,
    vga: String,
    regs: [u32; 8],
    eip: u32,
}

impl Outcome {
    fn of(stop: Stop, m: &Machine, st: &CpuState) -> Outcome {
        Outcome {
            stop,
            serial: m.serial_output().to_vec(),
            vga: m.screen().text(),
            regs: st.regs,
            eip: st.eip,
        }
    }
}

/// The stops after which two engines' states are comparable: the guest
/// ended itself. (Budget and timeout stops depend on how an engine counts.)
fn guest_ended(stop: &Stop) -> bool {
    matches!(
        stop,
        Stop::GuestExit { .. } | Stop::Shutdown | Stop::Halted | Stop::TripleFault | Stop::Reset
    )
}

/// Runs the guest again, from the RAM image `ram` and `state`, on every
/// other engine this host has and asserts that each ends as the
/// interpreter's `run` did: same stop, serial output, VGA text, general
/// registers, EIP and RAM, byte for byte (page-table A/D bits, stacks and
/// the guests' result areas included).
///
/// KVM: where /dev/kvm cannot be opened, or the host's kvm-pvm cannot run
/// the guest (32-bit paging, ring changes), the comparison is skipped with
/// the reason reported through [`crate::skip`], unless RINGLAB_REQUIRE_KVM
/// is set.
pub fn cross_check(ram: &[u8], state: &CpuState, run: &mut Run) {
    if !guest_ended(&run.stop) {
        crate::skip(format!(
            "cross-check of {}: the interpreter stopped with {:?}, which other engines \
             do not reproduce by design",
            current_guest(),
            run.stop
        ));
        return;
    }
    let tcg = cpu_is_qemu_tcg();
    let guest = current_guest();
    if tcg {
        if let Some((_, why)) = TCG_DEPARTURES.iter().find(|(n, _)| *n == guest) {
            crate::skip(format!("cross-check of {guest} on kvm: {why}"));
            return;
        }
    }
    if let Some((_, why)) = KVM_DEPARTURES.iter().find(|(n, _)| *n == guest) {
        crate::skip(format!("cross-check of {guest} on kvm: {why}"));
        return;
    }
    let require = std::env::var_os("RINGLAB_REQUIRE_KVM").is_some();
    let mut m = Machine::new(MachineConfig::with_ram(ram.len())).expect("machine");
    m.mem.write_untracked(0, ram).expect("RAM image");
    let mut kvm = match Session::new(m, EngineKind::Kvm, Options::default(), state) {
        Ok(s) => s,
        Err(e) if require => panic!(
            "RINGLAB_REQUIRE_KVM is set but KVM is not usable: {}",
            Chain(&e)
        ),
        Err(e) => {
            crate::skip(format!(
                "cross-check of {guest} on kvm: KVM is not usable on this host: {}",
                Chain(&e)
            ));
            return;
        }
    };
    let stop = match kvm.run_until(&kvm_limits()).map_err(|e| e.error) {
        Ok(stop) => stop,
        Err(machine::EngineError::Unsupported(why)) if !require => {
            crate::skip(format!("cross-check of {guest} on kvm: {why}"));
            return;
        }
        Err(e) => panic!(
            "kvm: engine error where the interpreter ran to {:?}: {}",
            run.stop,
            Chain(&e)
        ),
    };
    let kst = kvm.cpu_state().expect("kvm: cpu_state");
    let interp_state = run.session.cpu_state().expect("interp: cpu_state");
    let want = Outcome::of(run.stop.clone(), &run.session.m, &interp_state);
    let got = Outcome::of(stop, &kvm.m, &kst);
    let mut diffs = Vec::new();
    if got.stop != want.stop {
        diffs.push(format!("stop: interp {:?}, kvm {:?}", want.stop, got.stop));
    }
    if got.serial != want.serial {
        diffs.push(format!(
            "serial output: interp {:?}, kvm {:?}",
            String::from_utf8_lossy(&want.serial),
            String::from_utf8_lossy(&got.serial)
        ));
    }
    if got.vga != want.vga {
        diffs.push(format!(
            "VGA text:\ninterp:\n{}\nkvm:\n{}",
            want.vga, got.vga
        ));
    }
    // After a triple fault the CPU is in shutdown: its registers are not
    // architectural (KVM on AMD reinitialises the vCPU), so only memory and
    // the devices are compared.
    let shutdown = want.stop == Stop::TripleFault;
    for (i, name) in ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"]
        .iter()
        .enumerate()
        .filter(|_| !shutdown)
    {
        if got.regs[i] != want.regs[i] {
            diffs.push(format!(
                "{name}: interp {:#010x}, kvm {:#010x}",
                want.regs[i], got.regs[i]
            ));
        }
    }
    if got.eip != want.eip && !shutdown {
        diffs.push(format!(
            "eip: interp {:#010x}, kvm {:#010x}",
            want.eip, got.eip
        ));
    }
    let (a, b) = (run.session.m.mem.as_slice(), kvm.m.mem.as_slice());
    let excused = |i: usize| tcg && tcg_excused(a, b, i, &interp_state);
    let differing: Vec<usize> = (0..a.len())
        .filter(|&i| a[i] != b[i] && !excused(i))
        .collect();
    if let Some(&first) = differing.first() {
        let shown: Vec<String> = differing
            .iter()
            .take(8)
            .map(|&i| format!("{i:#x}: interp {:02x} kvm {:02x}", a[i], b[i]))
            .collect();
        diffs.push(format!(
            "RAM: {} bytes differ, first at {first:#x}:\n  {}",
            differing.len(),
            shown.join("\n  ")
        ));
    }
    assert!(
        diffs.is_empty(),
        "the guest ended differently on kvm ({}) than on the interpreter:\n{}",
        engine_kvm::host::detect().name(),
        diffs.join("\n")
    );
}

/// Assembles `body` after the kernel prologue and runs it in 32-bit
/// protected mode at ring 0 (the multiboot entry state).
pub fn run_kernel(name: &str, body: &str) -> Run {
    run_kernel_ram(name, body, 4 << 20)
}

/// `run_kernel` with `ram` bytes of RAM.
pub fn run_kernel_ram(name: &str, body: &str, ram: usize) -> Run {
    let src = format!("{PROLOGUE}\ntest_main:\n{body}\n");
    let image = assemble(name, &src, LOAD);
    let m = machine_ram(&image, LOAD, ram);
    let mut st = CpuState::multiboot(LOAD, 0, 0);
    st.regs[machine::cpu::ESP] = KSTACK;
    run_from(m, &st)
}

/// Assembles a 16-bit real-mode guest (`.code16`, `start` first) linked at
/// 0x7C00 and runs it from the boot-sector state.
pub fn run_real(name: &str, body: &str) -> Run {
    let src = format!(
        ".intel_syntax noprefix\n.code16\n.set RESULTS, 0x7000\n.set DONE, 0x4F\n\
         .section .text\n.global start\nstart:\n{body}\n"
    );
    let image = assemble(name, &src, 0x7C00);
    let m = machine_with(&image, 0x7C00);
    run_from(m, &CpuState::boot_sector(0x7C00))
}
