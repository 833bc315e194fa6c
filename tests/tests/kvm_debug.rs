//! A debugger's breakpoints and watchpoints on KVM (engine-kvm's `debug`),
//! against the interpreter: INT3 patches and debug registers at full
//! speed, the guest's own INT3 handed back to it, the original bytes back
//! after every run, breakpoints that follow the page tables, write and
//! access watchpoints stopping after the instruction. The engines are
//! driven directly (`Engine`), as a debugger front end drives them.
//!
//! Where /dev/kvm cannot be opened, or the host's KVM cannot run a guest
//! (kvm-pvm has no 32-bit paging), the test says why (`tests::skip`);
//! with RINGLAB_REQUIRE_KVM set (the QEMU/SVM VM of scripts/kvm-vm-tests.sh)
//! nothing may skip.

use engine_kvm::host::{self, HostKind};
use engine_kvm::Kvm;
use machine::cpu::CpuState;
use machine::{Chain, Engine, Limits, Machine, MachineConfig, Stop, WatchKind, Watchpoint};
use std::time::{Duration, Instant};
use tests::guest::{assemble, LOAD};

fn require() -> bool {
    std::env::var_os("RINGLAB_REQUIRE_KVM").is_some()
}

/// A machine with `image` at `at`.
fn machine(image: &[u8], at: u32) -> Machine {
    let mut m = Machine::new(MachineConfig::with_ram(16 << 20)).unwrap();
    m.mem.write(at as u64, image).unwrap();
    m
}

/// A KVM engine on `m` entered with `s`; None (after saying why) where
/// KVM is not usable.
fn kvm(m: &mut Machine, s: &CpuState) -> Option<Kvm> {
    match Kvm::new(m) {
        Ok(mut k) => {
            k.set_cpu_state(m, s).expect("kvm: set_cpu_state");
            Some(k)
        }
        Err(e) if require() => panic!(
            "RINGLAB_REQUIRE_KVM is set but KVM is not usable: {}",
            Chain(&e)
        ),
        Err(e) => {
            tests::skip(format!("KVM is not usable on this host: {}", Chain(&e)));
            None
        }
    }
}

fn interp(m: &mut Machine, s: &CpuState) -> engine_interp::Interp {
    let mut i = engine_interp::Interp::new();
    i.set_cpu_state(m, s).unwrap();
    i
}

fn limits(bps: &[u32]) -> Limits {
    Limits {
        max_icount: None,
        deadline: Some(Instant::now() + Duration::from_secs(60)),
        breakpoints: bps.to_vec(),
    }
}

/// Runs `e` with `bps` until a final stop, recording (stop, registers,
/// EIP) at every stop; checks at every stop that memory shows no INT3 the
/// engine wrote (`pristine`: the bytes that must read back unchanged).
fn stops(
    e: &mut dyn Engine,
    m: &mut Machine,
    bps: &[u32],
    pristine: &[(u32, u8)],
) -> Vec<(Stop, [u32; 8], u32)> {
    let mut out = Vec::new();
    for _ in 0..100 {
        let stop = e.run(m, &limits(bps)).unwrap_or_else(|err| {
            panic!("{}: {}", e.name(), Chain(&err));
        });
        for &(at, byte) in pristine {
            assert_eq!(
                m.mem.read_u8(at as u64),
                Some(byte),
                "{}: the byte at {at:#x} after a run ({stop:?})",
                e.name()
            );
        }
        let s = e.cpu_state().unwrap();
        let fin = stop.is_final() || stop == Stop::Timeout;
        out.push((stop, s.regs, s.eip));
        if fin {
            return out;
        }
    }
    panic!("{}: no final stop after 100 runs", e.name());
}

/// 32-bit protected-mode code at LOAD, unpaged, ring 0 (what kvm-pvm can
/// run): `body` after a prologue that puts the labels the tests name at
/// known places (`.org`).
fn kernel(name: &str, body: &str) -> Vec<u8> {
    let src =
        format!(".intel_syntax noprefix\n.code32\n.section .text\n.global start\nstart:\n{body}\n");
    assemble(name, &src, LOAD)
}

fn entry() -> CpuState {
    let mut s = CpuState::multiboot(LOAD, 0, 0);
    s.regs[machine::cpu::ESP] = 0x80000;
    s
}

const LOOP_AT: u32 = LOAD + 0x10;

const LOOP: &str = r#"
    mov ecx, 5
    xor eax, eax
    xor ebx, ebx
    jmp loop
.org 0x10
loop:
    add eax, ecx
    lea ebx, [ebx + eax * 2]
    dec ecx
    jnz loop
    mov al, 0
    out 0xf4, al
"#;

#[test]
fn a_breakpoint_in_a_loop_stops_as_on_the_interpreter() {
    let image = kernel("dbg_loop", LOOP);
    let pristine = [(LOOP_AT, image[0x10])];
    let mut mk = machine(&image, LOAD);
    let Some(mut k) = kvm(&mut mk, &entry()) else {
        return;
    };
    let got = stops(&mut k, &mut mk, &[LOOP_AT], &pristine);
    let mut mi = machine(&image, LOAD);
    let mut i = interp(&mut mi, &entry());
    let want = stops(&mut i, &mut mi, &[LOOP_AT], &pristine);
    assert_eq!(
        got,
        want,
        "kvm ({}) against the interpreter",
        host::detect().name()
    );
    let hits = got
        .iter()
        .filter(|s| s.0 == Stop::Breakpoint { addr: LOOP_AT })
        .count();
    assert_eq!(hits, 5);
    assert_eq!(got.last().unwrap().0, Stop::GuestExit { value: 0 });
    assert_eq!(mk.mem.as_slice(), mi.mem.as_slice(), "RAM, every byte");
    eprintln!("kvm stats: {:?}", k.stats().counters);
}

#[test]
fn breakpoints_in_debug_registers_stop_the_same() {
    // The same loop with the breakpoint in DR0 (where the host's debug
    // registers work) or, without them, patched or compared with the PC
    // while single-stepping (where INT3 interception does not work).
    let image = kernel("dbg_loop_dr", LOOP);
    for regs in [true, false] {
        let mut mk = machine(&image, LOAD);
        let Some(mut k) = kvm(&mut mk, &entry()) else {
            return;
        };
        k.use_debug_registers(regs);
        let got = stops(&mut k, &mut mk, &[LOOP_AT], &[(LOOP_AT, image[0x10])]);
        let hits = got
            .iter()
            .filter(|s| s.0 == Stop::Breakpoint { addr: LOOP_AT })
            .count();
        let tcg = host::hypervisor_signature().as_deref() == Some("TCGTCGTCGTCG");
        if regs && tcg && hits == 0 {
            // QEMU's emulated SVM: DR7 is loaded at VMRUN without
            // inserting TCG's breakpoints (engine-kvm's `debug` says
            // where), so nothing fires. This is why the engine does not
            // use them there.
            eprintln!("debug registers under QEMU's emulated SVM: the breakpoint never fired (0 of 5 hits)");
            continue;
        }
        assert_eq!(hits, 5, "debug registers {regs}: {got:?}");
        eprintln!("debug registers {regs}: 5 hits; {:?}", k.stats().counters);
    }
}

/// Real mode at 0x7C00: an INT3 of the guest's own, to its handler in the
/// IVT, and a debugger breakpoint elsewhere.
const OWN_INT3: &str = r#"
.intel_syntax noprefix
.code16
.section .text
.global start
start:
    xor ax, ax
    mov ds, ax
    mov ss, ax
    mov sp, 0x7000
    mov word ptr [3 * 4], offset handler
    mov word ptr [3 * 4 + 2], 0
    mov word ptr [0x500], 0
    int3
after:
    mov cx, [0x502]
    jmp target
.org 0x40
target:
    int3
    nop
    mov al, 0
    out 0xf4, al
handler:
    inc word ptr [0x500]
    mov bp, sp
    mov ax, [bp]
    mov [0x502], ax
    iret
"#;

#[test]
fn the_guests_own_int3_reaches_its_handler() {
    let image = assemble("dbg_own_int3", OWN_INT3, 0x7C00);
    let target = 0x7C40;
    let st = CpuState::boot_sector(0x7C00);
    let pristine = [(target, 0xCC), (target + 1, 0x90)];
    let mut mk = machine(&image, 0x7C00);
    let Some(mut k) = kvm(&mut mk, &st) else {
        return;
    };
    // A breakpoint on the NOP after the second INT3, and one on that
    // INT3 itself (the original byte there is an INT3 too).
    let bps = [target + 1, target];
    let got = stops(&mut k, &mut mk, &bps, &pristine);
    let mut mi = machine(&image, 0x7C00);
    let mut i = interp(&mut mi, &st);
    let want = stops(&mut i, &mut mi, &bps, &pristine);
    assert_eq!(
        want.iter().map(|s| s.0.clone()).collect::<Vec<_>>(),
        vec![
            Stop::Breakpoint { addr: target },
            Stop::Breakpoint { addr: target + 1 },
            Stop::GuestExit { value: 0 }
        ]
    );
    // Under QEMU's emulated SVM neither INT3 interception nor the debug
    // registers work: breakpoints are compared with the PC while
    // single-stepping, and stepping the guest's INT3 (which clears TF on
    // the way into the handler) stops at the handler's first instruction
    // by a HLT written there for that entry (engine-kvm's handler stops),
    // so the handler is stepped too and the breakpoint after it is seen.
    assert_eq!(
        got,
        want,
        "kvm ({}) against the interpreter",
        host::detect().name()
    );
    // The handler ran twice and saw EIP after each INT3 (a trap).
    assert_eq!(mk.mem.read_u16(0x500), Some(2));
    assert_eq!(mk.mem.read_u16(0x502), Some(0x7C41));
    let first = image.iter().position(|&b| b == 0xCC).unwrap() as u32;
    assert_eq!(
        got[0].1[1] & 0xFFFF,
        0x7C00 + first + 1,
        "CX: the first INT3's return address"
    );
    assert_eq!(mk.mem.as_slice(), mi.mem.as_slice(), "RAM, every byte");
}

/// A paged guest: two 4 MiB pages map linear 0 and 64 MiB onto the same
/// physical memory; code runs first through the low mapping (the patch
/// for the breakpoint in the high mapping is hit at a linear address that
/// is no breakpoint: stepped over), then through the high one (stops);
/// then it maps a third page, 128 MiB, not present when the run started,
/// and jumps there (a breakpoint on a page mapped during the run). Both
/// breakpoints are outside RAM while paging is off: not patchable, so the
/// engine single-steps until they are (or has them in debug registers).
const PAGED: &str = r#"
    mov eax, cr4
    or eax, 0x10
    mov cr4, eax
    mov dword ptr [0x200000], 0x83
    mov dword ptr [0x200040], 0x83
    mov eax, 0x200000
    mov cr3, eax
    mov eax, cr0
    or eax, 0x80000000
    mov cr0, eax
    xor esi, esi
    call work
    mov eax, offset work + 0x4000000
    call eax
    mov dword ptr [0x200080], 0x83
    mov eax, offset work + 0x8000000
    call eax
    mov al, 0
    out 0xf4, al
.org 0x80
work:
    inc esi
    ret
"#;

#[test]
fn breakpoints_follow_the_page_tables() {
    let image = kernel("dbg_paged", PAGED);
    let work = LOAD + 0x80;
    let (high, far) = (work + 0x400_0000, work + 0x800_0000);
    let mut mk = machine(&image, LOAD);
    let Some(mut k) = kvm(&mut mk, &entry()) else {
        return;
    };
    if host::detect() == HostKind::Pvm {
        tests::skip(
            "kvm-pvm has no 32-bit paging: the paged breakpoint test runs in the QEMU/SVM VM",
        );
        return;
    }
    let bps = [high, far];
    let pristine = [(work, image[0x80])];
    let got = stops(&mut k, &mut mk, &bps, &pristine);
    let mut mi = machine(&image, LOAD);
    let mut i = interp(&mut mi, &entry());
    let want = stops(&mut i, &mut mi, &bps, &pristine);
    assert_eq!(
        got,
        want,
        "kvm ({}) against the interpreter",
        host::detect().name()
    );
    assert_eq!(
        got.iter().map(|s| s.0.clone()).collect::<Vec<_>>(),
        vec![
            Stop::Breakpoint { addr: high },
            Stop::Breakpoint { addr: far },
            Stop::GuestExit { value: 0 }
        ]
    );
    assert_eq!(
        got[1].1[6], 2,
        "ESI: the low call ran unstopped, then the high one"
    );
    assert_eq!(mk.mem.as_slice(), mi.mem.as_slice(), "RAM, every byte");
    eprintln!("kvm stats: {:?}", k.stats().counters);
}

/// Protected mode with its own GDT and IDT: an INT 0x30 whose handler
/// writes [0x6000], then the PIT's IRQ0 (vector 0x20) three times, its
/// handler counting in [0x6004] (masking IRQ0 at three), while the main
/// code spins on the count.
const HANDLERS: &str = r#"
    lgdt [gdtr]
    lidt [idtr]
    mov esp, 0x80000
    mov eax, offset soft
    mov word ptr [idt + 0x30 * 8], ax
    mov word ptr [idt + 0x30 * 8 + 2], 0x08
    mov word ptr [idt + 0x30 * 8 + 4], 0x8F00
    shr eax, 16
    mov word ptr [idt + 0x30 * 8 + 6], ax
    mov eax, offset irq0
    mov word ptr [idt + 0x20 * 8], ax
    mov word ptr [idt + 0x20 * 8 + 2], 0x08
    mov word ptr [idt + 0x20 * 8 + 4], 0x8E00
    shr eax, 16
    mov word ptr [idt + 0x20 * 8 + 6], ax
    int 0x30
    mov al, 0x11
    out 0x20, al
    mov al, 0x20
    out 0x21, al
    mov al, 4
    out 0x21, al
    mov al, 1
    out 0x21, al
    mov al, 0xFE
    out 0x21, al
    mov al, 0x34
    out 0x43, al
    mov al, 0
    out 0x40, al
    mov al, 0x10
    out 0x40, al
    sti
spin:
    cmp dword ptr [0x6004], 3
    jb spin
    cli
    mov al, 0
    out 0xf4, al
soft:
    mov dword ptr [0x6000], 1
soft_done:
    iret
irq0:
    inc dword ptr [0x6004]
irq0_counted:
    push eax
    cmp dword ptr [0x6004], 3
    jb 1f
    // The third: IRQ0 masked, so no fourth arrives (KVM's clock is the
    // host's, which runs on while the debugger holds the guest).
    mov al, 0xFF
    out 0x21, al
1:
    mov al, 0x20
    out 0x20, al
    pop eax
    iret
.align 8
gdt:
    .quad 0, 0x00CF9A000000FFFF, 0x00CF92000000FFFF
gdtr:
    .word 23
    .long gdt
idtr:
    .word 0x31 * 8 - 1
    .long idt
.align 8
idt:
    .fill 0x31 * 8, 1, 0
"#;

/// Watched writes inside handlers entered by an INT n and by hardware
/// interrupts stop right after the write, on KVM as on the interpreter.
/// Where the debug registers do not fire (QEMU's emulated SVM) the engine
/// single-steps, and a delivery clears TF: the step that delivers stops
/// at the handler's first instruction by a HLT written there for that
/// entry (engine-kvm's handler stops); without them the handlers ran
/// unseen and no stop came.
#[test]
fn watched_writes_in_interrupt_handlers_stop_after_the_write() {
    let src = format!(
        ".intel_syntax noprefix\n.code32\n.section .text\n.global start\nstart:\n{HANDLERS}\n"
    );
    let (image, [soft_done, counted]) = tests::guest::assemble_with_labels(
        "dbg_handlers",
        &src,
        LOAD,
        ["soft_done", "irq0_counted"],
    );
    let watch = [
        Watchpoint {
            addr: 0x6000,
            len: 4,
            kind: WatchKind::Write,
        },
        Watchpoint {
            addr: 0x6004,
            len: 4,
            kind: WatchKind::Write,
        },
    ];
    let run = |e: &mut dyn Engine, m: &mut Machine| -> Vec<(Stop, u32, u32, u32)> {
        m.set_watchpoints(watch.to_vec());
        let mut out = Vec::new();
        for _ in 0..10 {
            let stop = e
                .run(m, &limits(&[]))
                .unwrap_or_else(|err| panic!("{}: {}", e.name(), Chain(&err)));
            let eip = e.cpu_state().unwrap().eip;
            let at = |a: u64| m.mem.read_u32(a).unwrap();
            out.push((stop.clone(), eip, at(0x6000), at(0x6004)));
            if stop.is_final() || stop == Stop::Timeout {
                break;
            }
        }
        out
    };
    let mut mi = machine(&image, LOAD);
    let mut i = interp(&mut mi, &entry());
    let want = run(&mut i, &mut mi);
    let hit = |addr| Stop::Watchpoint {
        addr,
        kind: WatchKind::Write,
    };
    assert_eq!(
        want,
        vec![
            (hit(0x6000), soft_done, 1, 0),
            (hit(0x6004), counted, 1, 1),
            (hit(0x6004), counted, 1, 2),
            (hit(0x6004), counted, 1, 3),
            (Stop::GuestExit { value: 0 }, want[4].1, 1, 3),
        ],
        "the interpreter"
    );
    let mut mk = machine(&image, LOAD);
    let Some(mut k) = kvm(&mut mk, &entry()) else {
        return;
    };
    if host::detect() == HostKind::Pvm {
        tests::skip(
            "kvm-pvm cannot IRET without paging: the handler watch test runs in the QEMU/SVM VM",
        );
        return;
    }
    let got = run(&mut k, &mut mk);
    assert_eq!(
        got,
        want,
        "kvm ({}) against the interpreter",
        host::detect().name()
    );
    eprintln!("kvm stats: {:?}", k.stats().counters);
}

const WATCHED: u32 = 0x6000;

const WATCH: &str = r#"
    mov dword ptr [0x6000], 1
w1:
    mov eax, [0x6000]
w2:
    add dword ptr [0x6000], 2
w3:
    mov byte ptr [0x6003], 7
w4:
    mov ebx, [0x6004]
w5:
    push 9
w6:
    mov ecx, 3
    mov edi, 0x5FFC
    rep stosd
w7:
    mov al, 0
    out 0xf4, al
"#;

/// (stop, EIP, EAX, the watched dword) at each stop.
type WatchStop = (Stop, u32, u32, u32);

fn watch_run(e: &mut dyn Engine, m: &mut Machine, w: &[Watchpoint]) -> Vec<WatchStop> {
    m.set_watchpoints(w.to_vec());
    let mut out = Vec::new();
    for _ in 0..20 {
        let stop = e
            .run(m, &limits(&[]))
            .unwrap_or_else(|err| panic!("{}: {}", e.name(), Chain(&err)));
        let s = e.cpu_state().unwrap();
        out.push((
            stop.clone(),
            s.eip,
            s.regs[0],
            m.mem.read_u32(WATCHED as u64).unwrap(),
        ));
        if stop.is_final() || stop == Stop::Timeout {
            break;
        }
    }
    m.set_watchpoints(vec![]);
    out
}

/// What the interpreter shows after the instruction ending at each of
/// `eips` (run to a breakpoint there): the reference for a watchpoint's
/// stop, which is a trap after the access.
fn interp_after(image: &[u8], eips: &[u32]) -> Vec<(u32, u32, u32)> {
    let mut m = machine(image, LOAD);
    let mut i = interp(&mut m, &entry());
    eips.iter()
        .map(|&eip| {
            let stop = i.run(&mut m, &limits(&[eip])).unwrap();
            assert_eq!(stop, Stop::Breakpoint { addr: eip });
            let s = i.cpu_state().unwrap();
            (s.eip, s.regs[0], m.mem.read_u32(WATCHED as u64).unwrap())
        })
        .collect()
}

#[test]
fn write_and_access_watchpoints_stop_after_the_instruction() {
    let image = kernel("dbg_watch", WATCH);
    // The labels' addresses, from the code: each instruction's length.
    let sym = |name: &str| -> u32 {
        let src = format!(".intel_syntax noprefix\n.code32\n.global start\nstart:\n{WATCH}\n");
        let pos = src.find(&format!("{name}:")).unwrap();
        let upto = format!("{}\nend_here:\n", &src[..pos]);
        assemble(&format!("dbg_watch_{name}"), &upto, LOAD).len() as u32 + LOAD
    };
    let [w1, w2, w3, w4, w7] = ["w1", "w2", "w3", "w4", "w7"].map(sym);
    let stosd = w7 - 2;
    let cases: Vec<(WatchKind, Vec<u32>)> = vec![
        // Writes: the MOV, the ADD, the byte MOV, one REP STOSD iteration
        // (the third: EDI 0x5FFC, 0x6000 hits), stopped inside it.
        (WatchKind::Write, vec![w1, w3, w4, stosd]),
        // Reads and writes: the read by MOV EAX and by the ADD too.
        (WatchKind::Access, vec![w1, w2, w3, w4, stosd]),
    ];
    for (kind, at) in cases {
        let w = [Watchpoint {
            addr: WATCHED,
            len: 4,
            kind,
        }];
        let mut want: Vec<WatchStop> = interp_after(&image, &at)
            .into_iter()
            .map(|(eip, eax, v)| {
                // Inside REP STOSD: the interpreter's breakpoint is before
                // the first iteration; the watchpoint stops after the
                // second (EDI 0x6000), which wrote EAX there.
                let v = if eip == stosd { eax } else { v };
                (
                    Stop::Watchpoint {
                        addr: WATCHED,
                        kind,
                    },
                    eip,
                    eax,
                    v,
                )
            })
            .collect();
        for regs in [true, false] {
            let mut mk = machine(&image, LOAD);
            let Some(mut k) = kvm(&mut mk, &entry()) else {
                return;
            };
            k.use_debug_registers(regs);
            let got = watch_run(&mut k, &mut mk, &w);
            let tcg = host::hypervisor_signature().as_deref() == Some("TCGTCGTCGTCG");
            let pvm = host::detect() == HostKind::Pvm;
            if regs && (tcg || pvm) && got.len() == 1 {
                // Where the engine does not use them by default: shown,
                // not asserted (engine-kvm's `debug` says why).
                eprintln!(
                    "{kind:?} watchpoint in debug registers on {}: never fired",
                    if tcg {
                        "QEMU's emulated SVM"
                    } else {
                        "kvm-pvm"
                    }
                );
                continue;
            }
            let (fin, ..) = got.last().unwrap().clone();
            assert_eq!(fin, Stop::GuestExit { value: 0 });
            let mut w = want.clone();
            w.push(got.last().unwrap().clone());
            assert_eq!(
                got,
                w,
                "{kind:?}, debug registers {regs}, kvm ({})",
                host::detect().name()
            );
            eprintln!(
                "{kind:?} watchpoint, debug registers {regs}: {} stops as on the interpreter",
                got.len() - 1
            );
        }
        want.clear();
    }
}

#[test]
fn a_read_watchpoint_does_not_stop_on_writes() {
    let image = kernel("dbg_rwatch", WATCH);
    let mut mk = machine(&image, LOAD);
    let Some(mut k) = kvm(&mut mk, &entry()) else {
        return;
    };
    let w = [Watchpoint {
        addr: WATCHED,
        len: 4,
        kind: WatchKind::Read,
    }];
    let got = watch_run(&mut k, &mut mk, &w);
    // The read by MOV EAX, [0x6000] (EAX = 1 then); the ADD reads too but
    // changes the value, which the debug registers cannot tell from a
    // write (see engine-kvm's `debug`), and without them it is decoded as
    // a read: at least the MOV, never the pure writes.
    let stops: Vec<u32> = got.iter().map(|s| s.2).collect();
    assert!(got.len() >= 2, "{got:?}");
    assert_eq!(
        got[0].0,
        Stop::Watchpoint {
            addr: WATCHED,
            kind: WatchKind::Read
        }
    );
    assert_eq!(got[0].2, 1, "EAX after the read: {stops:?}");
    assert_eq!(got.last().unwrap().0, Stop::GuestExit { value: 0 });
}

#[test]
fn too_many_watched_pieces_are_refused_with_the_limit() {
    let image = kernel("dbg_many", WATCH);
    let mut mk = machine(&image, LOAD);
    let Some(mut k) = kvm(&mut mk, &entry()) else {
        return;
    };
    k.use_debug_registers(true);
    mk.set_watchpoints(vec![Watchpoint {
        addr: 0x6001,
        len: 10,
        kind: WatchKind::Write,
    }]);
    let e = k.run(&mut mk, &limits(&[])).unwrap_err();
    let text = Chain(&e).to_string();
    assert!(
        text.contains("need 5 debug registers") && text.contains("DR0-DR3"),
        "{text}"
    );
}

/// The figure the issue asks for: a loop of `n` iterations with a
/// breakpoint that is never hit, on KVM, single-stepped as the engine used
/// to (step and compare the PC) and at full speed now.
#[test]
fn a_breakpoint_never_hit_costs_little() {
    let n: u32 = if host::detect() == HostKind::Pvm {
        200_000
    } else {
        20_000
    };
    let body = format!(
        "    mov ecx, {n}\nspin:\n    dec ecx\n    jnz spin\n    mov al, 0\n    out 0xf4, al\n.org 0x40\n    nop\n"
    );
    let image = kernel("dbg_spin", &body);
    let never = LOAD + 0x40;
    let mut mk = machine(&image, LOAD);
    let Some(mut k) = kvm(&mut mk, &entry()) else {
        return;
    };
    let t = Instant::now();
    let stop = k.run(&mut mk, &limits(&[never])).unwrap();
    let fast = t.elapsed();
    assert_eq!(stop, Stop::GuestExit { value: 0 });
    // Before: one KVM single step per instruction, the PC compared.
    let mut mk = machine(&image, LOAD);
    let mut k = kvm(&mut mk, &entry()).unwrap();
    let t = Instant::now();
    let mut steps = 0u64;
    let stepped_stop = loop {
        let pc = k.cpu_state().unwrap().pc_linear();
        assert_ne!(pc, never);
        let s = k.step(&mut mk).unwrap();
        steps += 1;
        if s != Stop::Stepped {
            break s;
        }
        if t.elapsed() > Duration::from_secs(120) {
            break Stop::Timeout;
        }
    };
    let slow = t.elapsed();
    eprintln!(
        "a breakpoint never hit, {} instructions on kvm ({}): single-stepping {:.3} s ({steps} steps{}), INT3/debug registers {:.3} s",
        2 * n + 3,
        host::detect().name(),
        slow.as_secs_f64(),
        if stepped_stop == Stop::Timeout { ", cut at 120 s" } else { "" },
        fast.as_secs_f64()
    );
}
