//! Seeded robustness tests: guest RAM full of random bytes, the CPU started
//! in it in every mode the interpreter has (real mode, 16-bit and 32-bit
//! protected mode, 32-bit with paging and random page tables, virtual-8086
//! mode), with random registers and, for half of the seeds, random
//! descriptor tables too. Whatever the guest does, `run` must come back
//! with `Ok(Stop)` within its limits, never panic, never hang, and never
//! write host memory outside the guest RAM mapping (guard regions are
//! mapped right before and after it and checked after every run).
//!
//! A failure names the mode and the seed; `seed_state` rebuilds the exact
//! machine, so a failing seed can be replayed alone.

use tests::guards::Guards;
use tests::guest as common;

use machine::cpu::{access as a, cr0, cr4, flags as fl, CpuState, Seg, Segment, TableReg};
use machine::{Chain, Limits, Machine, MachineConfig, Stop};
use ringlab::engines::EngineKind;
use ringlab::session::{Options, Session};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Seeds per mode; `RINGLAB_FUZZ_SEEDS=N` runs more (a longer soak) and
/// `RINGLAB_FUZZ_FIRST=K` starts at seed K.
fn seed_range() -> std::ops::Range<u64> {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let first = env("RINGLAB_FUZZ_FIRST").unwrap_or(0);
    first..first + env("RINGLAB_FUZZ_SEEDS").unwrap_or(300)
}
/// Guest RAM: small, so that random physical addresses (page tables,
/// descriptor tables, frames up to 4 GiB) mostly lie outside it.
const RAM: usize = 2 << 20;
/// Instructions per run.
const BUDGET: u64 = 100_000;
/// Wall-clock limit handed to the engine for each run.
const RUN_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the test waits for one seed before calling it a hang: well
/// above `RUN_TIMEOUT`, so only an engine that ignores its limits trips it.
const HANG: Duration = Duration::from_secs(15);

// Fixed places of the "sane" system tables (used for half of the seeds).
const GDT: u32 = 0x10000;
const IDT: u32 = 0x11000;
const TSS: u32 = 0x12000;
const PD: u32 = 0x13000;
const PT: u32 = 0x14000;
/// Random code lives here; execution starts somewhere inside.
const CODE: u32 = 0x20000;
const CODE_LEN: u32 = 0x20000;
const STACK0: u32 = 0x1F000;

/// xorshift64* (Vigna 2016): tiny, deterministic, good enough for fuzzing.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // Spread small seeds over the state space; the state must not be 0.
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03 | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn u32(&mut self) -> u32 {
        (self.next() >> 32) as u32
    }
    fn below(&mut self, n: u32) -> u32 {
        self.u32() % n
    }
    fn coin(&mut self) -> bool {
        self.next() & 1 != 0
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Real,
    Prot16,
    Prot32,
    Paging,
    V86,
}

fn desc(s: &Segment) -> [u8; 8] {
    s.to_descriptor().to_le_bytes()
}

fn seg(selector: u16, base: u32, limit: u32, access: u32) -> Segment {
    Segment {
        selector,
        base,
        limit,
        access,
    }
}

fn with_dpl(mut s: Segment, dpl: u32) -> Segment {
    s.access = (s.access & !a::DPL_MASK) | (dpl << a::DPL_SHIFT);
    s
}

fn v86_seg(sel: u16, code: bool) -> Segment {
    let ty = if code { a::CODE | a::RW } else { a::RW };
    seg(
        sel,
        (sel as u32) << 4,
        0xFFFF,
        a::P | a::S | ty | a::ACCESSED | (3 << a::DPL_SHIFT),
    )
}

/// The TSS descriptor cache: 32-bit, busy (it is loaded in TR).
fn tss_seg() -> Segment {
    seg(0x28, TSS, 0x2068, a::P | a::SYS_TSS32_BUSY)
}

/// Writes a flat GDT, an IDT whose gates lead into the random code, a TSS
/// with a ring-0 stack and a random I/O bitmap.
fn sane_tables(m: &mut Machine, rng: &mut Rng) {
    let code0 = Segment::flat32(0x08, true);
    let data0 = Segment::flat32(0x10, false);
    let gdt: [Segment; 8] = [
        Segment::default(),
        code0,
        data0,
        with_dpl(Segment::flat32(0x18, true), 3),
        with_dpl(Segment::flat32(0x20, false), 3),
        // Busy, as LTR leaves it.
        tss_seg(),
        seg(
            0x30,
            CODE,
            0xFFFF,
            a::P | a::S | a::CODE | a::RW | a::ACCESSED,
        ),
        seg(0x38, 0, 0xFFFF, a::P | a::S | a::RW | a::ACCESSED),
    ];
    for (i, s) in gdt.iter().enumerate() {
        let d = if i == 0 { [0; 8] } else { desc(s) };
        m.mem.write((GDT + 8 * i as u32) as u64, &d).unwrap();
    }
    for v in 0..256u32 {
        let off = CODE + rng.below(CODE_LEN);
        let ty = [0x8E00u32, 0x8F00, 0xEE00, 0xEF00][rng.below(4) as usize];
        let lo = (0x08 << 16) | (off & 0xFFFF);
        let hi = (off & 0xFFFF_0000) | ty;
        m.mem.write_u32((IDT + 8 * v) as u64, lo).unwrap();
        m.mem.write_u32((IDT + 8 * v + 4) as u64, hi).unwrap();
    }
    m.mem.write_u32((TSS + 4) as u64, STACK0).unwrap();
    m.mem.write_u32((TSS + 8) as u64, 0x10).unwrap();
    m.mem.write_u16((TSS + 0x66) as u64, 0x68).unwrap();
}

/// Identity-maps the first 2 MiB (all of RAM) through `PT`; every other
/// directory entry, and the table entries past RAM, stay random, so they
/// point anywhere in the 4 GiB physical space.
fn sane_paging(m: &mut Machine) {
    m.mem.write_u32(PD as u64, PT | 7).unwrap();
    for i in 0..512u32 {
        m.mem.write_u32((PT + 4 * i) as u64, (i << 12) | 7).unwrap();
    }
}

/// Builds the machine and entry state of `seed` in `mode`.
fn seed_state(mode: Mode, seed: u64) -> (Machine, CpuState) {
    let mut rng = Rng::new(seed ^ ((mode as u64) << 56));
    let mut m = Machine::new(MachineConfig::with_ram(RAM)).expect("machine");
    let mut ram = vec![0u8; RAM];
    rng.fill(&mut ram);
    m.mem.write(0, &ram).unwrap();
    let sane = rng.coin();
    if sane {
        sane_tables(&mut m, &mut rng);
    }
    let mut s = CpuState::multiboot(CODE, 0, GDT);
    for r in s.regs.iter_mut() {
        *r = rng.u32();
    }
    // Status flags, DF, and sometimes IF (random OUTs may program the PIC
    // and PIT, so interrupts do arrive).
    s.eflags = fl::FIXED | (rng.u32() & (fl::STATUS | fl::DF | fl::IF));
    if sane {
        s.gdtr = TableReg {
            base: GDT,
            limit: 0x3F,
        };
        s.idtr = TableReg {
            base: IDT,
            limit: 0x7FF,
        };
        s.tr = tss_seg();
    } else {
        // Anywhere in the 4 GiB, usually outside RAM.
        s.gdtr = TableReg {
            base: rng.u32(),
            limit: rng.u32() as u16,
        };
        s.idtr = TableReg {
            base: rng.u32(),
            limit: rng.u32() as u16,
        };
        s.tr = seg(
            0x28,
            rng.u32(),
            rng.u32() & 0xFFFFF,
            a::P | a::SYS_TSS32_BUSY,
        );
    }
    let start = rng.below(CODE_LEN);
    match mode {
        Mode::Real => {
            let b = CpuState::boot_sector(0x7C00);
            s.cr0 = b.cr0;
            s.segs = b.segs;
            s.segs[Seg::Cs as usize] = Segment::real_mode_code((CODE >> 4) as u16);
            s.eip = start & 0xFFFF;
            s.idtr = TableReg {
                base: 0,
                limit: 0x3FF,
            };
        }
        Mode::Prot16 => {
            s.segs[Seg::Cs as usize] = seg(
                0x30,
                CODE,
                0xFFFF,
                a::P | a::S | a::CODE | a::RW | a::ACCESSED,
            );
            for sg in [Seg::Ds, Seg::Es, Seg::Ss, Seg::Fs, Seg::Gs] {
                s.segs[sg as usize] = seg(0x38, 0, 0xFFFF, a::P | a::S | a::RW | a::ACCESSED);
            }
            s.eip = start & 0xFFFF;
        }
        Mode::Prot32 | Mode::Paging => {
            if rng.coin() {
                // Ring 3.
                s.segs[Seg::Cs as usize] = with_dpl(Segment::flat32(0x1B, true), 3);
                for sg in [Seg::Ds, Seg::Es, Seg::Ss, Seg::Fs, Seg::Gs] {
                    s.segs[sg as usize] = with_dpl(Segment::flat32(0x23, false), 3);
                }
                s.eflags |= rng.below(4) << fl::IOPL_SHIFT;
            }
            s.eip = CODE + start;
            if mode == Mode::Paging {
                s.cr0 |= cr0::PG | if rng.coin() { cr0::WP } else { 0 };
                s.cr4 = if rng.coin() { cr4::PSE } else { 0 };
                if sane {
                    s.cr3 = PD;
                    sane_paging(&mut m);
                } else if rng.coin() {
                    // Page tables in random RAM.
                    s.cr3 = rng.below(RAM as u32) & !0xFFF;
                } else {
                    // Page tables outside RAM (up to 4 GiB).
                    s.cr3 = rng.u32() & !0xFFF;
                }
            }
        }
        Mode::V86 => {
            s.eflags |= fl::VM | (rng.below(4) << fl::IOPL_SHIFT);
            s.segs[Seg::Cs as usize] = v86_seg((CODE >> 4) as u16, true);
            for sg in [Seg::Ds, Seg::Es, Seg::Ss, Seg::Fs, Seg::Gs] {
                s.segs[sg as usize] = v86_seg(rng.u32() as u16, false);
            }
            s.eip = start & 0xFFFF;
            s.regs[4] &= 0xFFFF;
        }
    }
    (m, s)
}

/// What one seed did.
struct Outcome {
    stop: Stop,
    guarded: bool,
}

/// Runs one seed: a budgeted run, a state export/import round trip, a few
/// single steps and a second run. Every problem is an `Err` naming it.
fn run_seed(mode: Mode, seed: u64) -> Result<Outcome, String> {
    let (m, s) = seed_state(mode, seed);
    let guards = Guards::around(&m);
    let mut sess = Session::new(m, EngineKind::Interp, Options::default(), &s)
        .map_err(|e| format!("set_cpu_state: {}", Chain(&e)))?;
    // Each run gets its own deadline.
    let limits = || Limits {
        max_icount: Some(BUDGET),
        deadline: Some(Instant::now() + RUN_TIMEOUT),
        breakpoints: Vec::new(),
    };
    let t = Instant::now();
    let stop = sess
        .run_until(&limits())
        .map_err(|e| format!("run: {}", Chain(&e.error)))?;
    let took = t.elapsed();
    if took > RUN_TIMEOUT + Duration::from_secs(1) {
        return Err(format!(
            "run took {took:?} with a {RUN_TIMEOUT:?} timeout ({stop:?})"
        ));
    }
    if sess.m.icount() > BUDGET {
        return Err(format!(
            "icount {} exceeds the budget {BUDGET} ({stop:?})",
            sess.m.icount()
        ));
    }
    // The state must survive export and import (into a fresh engine),
    // and stepping must work.
    let st = sess
        .cpu_state()
        .map_err(|e| format!("cpu_state: {}", Chain(&e)))?;
    sess.switch_to(EngineKind::Interp)
        .map_err(|e| format!("set_cpu_state (re-import): {}", Chain(&e)))?;
    let st2 = sess
        .cpu_state()
        .map_err(|e| format!("cpu_state: {}", Chain(&e)))?;
    if st2 != st {
        return Err(format!(
            "state changed by an export/import round trip:\n{st:?}\n{st2:?}"
        ));
    }
    if !stop.is_final() {
        for _ in 0..4 {
            let s = sess.step().map_err(|e| format!("step: {}", Chain(&e)))?;
            if s.is_final() {
                break;
            }
        }
        let more = Limits {
            max_icount: Some(sess.m.icount() + 1000),
            ..limits()
        };
        sess.run_until(&more)
            .map_err(|e| format!("second run: {}", Chain(&e.error)))?;
    }
    if !guards.intact() {
        return Err("host memory next to guest RAM was written".into());
    }
    // The same seed on the binary translator: it runs what it can as host
    // code (flat 32-bit code), so random code reaches translated memory
    // accesses at the end of RAM, across 4 GiB, through page tables
    // outside RAM. It must stop cleanly within its limits and write no
    // host memory outside guest RAM. (Its outcome is not compared with
    // the interpreter's: random code reads flags the SDM leaves undefined,
    // where the host CPU and the interpreter may differ; the differential
    // test of bt_differential.rs generates only defined behaviour.)
    let (m, s) = seed_state(mode, seed);
    let guards = Guards::around(&m);
    let mut bt = Session::new(m, EngineKind::Bt, Options::default(), &s)
        .map_err(|e| format!("bt: {}", Chain(&e)))?;
    let t = Instant::now();
    let bstop = bt
        .run_until(&limits())
        .map_err(|e| format!("bt run: {}", Chain(&e.error)))?;
    if t.elapsed() > RUN_TIMEOUT + Duration::from_secs(1) {
        return Err(format!("bt run took {:?} ({bstop:?})", t.elapsed()));
    }
    if bt.m.icount() > BUDGET {
        return Err(format!("bt: icount {} exceeds the budget", bt.m.icount()));
    }
    if !guards.intact() {
        return Err("bt: host memory next to guest RAM was written".into());
    }
    Ok(Outcome {
        stop,
        guarded: !guards.regions.is_empty(),
    })
}

/// Runs every seed of `mode` on a worker thread, so that a hang is
/// reported (with its seed) instead of blocking the test forever.
fn fuzz(mode: Mode) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for seed in seed_range() {
            tx.send((seed, None)).ok();
            let r = catch_unwind(AssertUnwindSafe(|| run_seed(mode, seed)));
            let r = match r {
                Ok(r) => r,
                Err(p) => {
                    let msg = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    Err(format!("panicked: {msg}"))
                }
            };
            if tx.send((seed, Some(r))).is_err() {
                return;
            }
        }
    });
    let mut stops = std::collections::BTreeMap::<String, u32>::new();
    let mut guarded = 0;
    let mut failures = Vec::new();
    let mut done = 0;
    let seeds = seed_range().count();
    let mut current = 0;
    while done < seeds {
        match rx.recv_timeout(HANG) {
            Ok((seed, None)) => current = seed,
            Ok((seed, Some(r))) => {
                done += 1;
                match r {
                    Ok(o) => {
                        let name = format!("{:?}", o.stop);
                        let key = name.split([' ', '{']).next().unwrap_or("").to_string();
                        *stops.entry(key).or_default() += 1;
                        guarded += o.guarded as u32;
                    }
                    Err(e) => failures.push(format!("{mode:?} seed {seed}: {e}")),
                }
            }
            Err(_) => {
                failures.push(format!(
                    "{mode:?} seed {current}: no result after {HANG:?} (the engine ignores its limits)"
                ));
                break;
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("{mode:?}: {seeds} seeds, stops {stops:?}, {guarded} runs with guard pages");
    assert!(guarded > 0, "no run had a guard region next to guest RAM");
}

#[test]
fn random_code_real_mode() {
    fuzz(Mode::Real);
}

#[test]
fn random_code_protected_16() {
    fuzz(Mode::Prot16);
}

#[test]
fn random_code_protected_32_flat() {
    fuzz(Mode::Prot32);
}

#[test]
fn random_code_paging_random_tables() {
    fuzz(Mode::Paging);
}

#[test]
fn random_code_v86() {
    fuzz(Mode::V86);
}

/// The fuzz inputs themselves are deterministic: a seed always builds the
/// same machine (so failures can be replayed).
#[test]
fn seeds_are_reproducible() {
    for mode in [Mode::Real, Mode::Paging, Mode::V86] {
        let (m1, s1) = seed_state(mode, 7);
        let (m2, s2) = seed_state(mode, 7);
        assert_eq!(s1, s2);
        assert_eq!(m1.mem.as_slice(), m2.mem.as_slice());
        let (_, s3) = seed_state(mode, 8);
        assert_ne!(s1.regs, s3.regs);
    }
}

/// Runs `f` on a worker thread and waits at most `limit` for it: an engine
/// that ignores its limits fails the test instead of hanging it.
fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        tx.send(f()).ok();
    });
    rx.recv_timeout(limit).unwrap_or_else(|_| {
        panic!("{what}: no result after {limit:?} (the engine ignores its limits)")
    })
}

/// REP STOSB with ECX = 0xFFFFFFFF is one instruction of four billion
/// iterations. `run` must still come back close to its timeout: a REP
/// string instruction can be suspended between iterations (SDM Vol 2B
/// "REP": "a repeating string operation can be suspended by an exception
/// or interrupt"), so an engine has no reason to finish it in one go.
#[test]
fn rep_string_with_huge_count_honours_timeout() {
    let (stop, took, ecx) = within(Duration::from_secs(10), "REP STOSB, ECX=0xFFFFFFFF", || {
        let mut m = Machine::new(MachineConfig::with_ram(RAM)).expect("machine");
        // rep stosb; hlt
        m.mem.write(CODE as u64, &[0xF3, 0xAA, 0xF4]).unwrap();
        let mut s = CpuState::multiboot(CODE, 0, GDT);
        s.regs[1] = 0xFFFF_FFFF;
        s.regs[7] = 0x40000;
        let mut cpu = Session::new(m, EngineKind::Interp, Options::default(), &s).unwrap();
        let t = Instant::now();
        let limits = Limits {
            max_icount: Some(1_000_000),
            deadline: Some(t + Duration::from_millis(500)),
            breakpoints: Vec::new(),
        };
        let stop = cpu.run_until(&limits).expect("run");
        (stop, t.elapsed(), cpu.cpu_state().unwrap().regs[1])
    });
    assert!(
        took < Duration::from_secs(3),
        "run took {took:?} with a 500 ms timeout ({stop:?}, ECX left {ecx:#x})"
    );
    assert!(
        matches!(stop, Stop::Timeout | Stop::Budget),
        "stopped by a limit, not {stop:?}"
    );
    assert_ne!(
        ecx, 0,
        "the REP was suspended part-way, its state in ECX/EDI"
    );
}

/// A loop of REP STOSB of 65535 iterations each: every REP finishes, so
/// none is suspended, but each counts as one instruction, and a run slice
/// of millions of instructions would be some 10^11 iterations between two
/// looks at the clock. The engines must still come back close to the
/// timeout (found by the random-code fuzzer, real-mode seed 3096: REP LODSB
/// in a loop ran for hours).
#[test]
fn loop_of_finishing_rep_strings_honours_timeout() {
    for bt in [false, true] {
        let name = if bt { "bt" } else { "interp" };
        let (stop, took, icount) = within(Duration::from_secs(10), name, move || {
            let mut m = Machine::new(MachineConfig::with_ram(RAM)).expect("machine");
            // 1: mov edi, 0x40000; mov ecx, 0xFFFF; rep stosb; jmp 1b
            let code = [
                0xBF, 0x00, 0x00, 0x04, 0x00, 0xB9, 0xFF, 0xFF, 0x00, 0x00, 0xF3, 0xAA, 0xEB, 0xF2,
            ];
            m.mem.write(CODE as u64, &code).unwrap();
            let s = CpuState::multiboot(CODE, 0, GDT);
            let kind = if bt {
                EngineKind::Bt
            } else {
                EngineKind::Interp
            };
            let mut e = Session::new(m, kind, Options::default(), &s).unwrap();
            let t = Instant::now();
            let limits = Limits {
                max_icount: Some(100_000_000),
                deadline: Some(t + Duration::from_millis(500)),
                breakpoints: Vec::new(),
            };
            let stop = e.run_until(&limits).expect("run");
            (stop, t.elapsed(), e.m.icount())
        });
        assert!(
            took < Duration::from_secs(3),
            "{name}: run took {took:?} with a 500 ms timeout ({stop:?} after {icount} instructions)"
        );
        assert_eq!(stop, Stop::Timeout, "{name}: stopped by the timeout");
        assert!(icount > 4, "{name}: the loop ran ({icount} instructions)");
    }
}

/// Page tables and frames outside RAM, a store straddling the end of RAM,
/// string instructions through unbacked pages: stores to nothing are
/// dropped, loads from nothing read all ones (the machine's contract,
/// `Machine::read_phys` and `write_phys`), and host memory next to guest
/// RAM is untouched.
#[test]
fn physical_addresses_outside_ram_touch_no_host_memory() {
    let body = r#"
    mov dword ptr [0], 0x12345678
    mov dword ptr [0x20000], 0x83
    mov dword ptr [0x20004], 0x21000 | 7
    mov dword ptr [0x20008], 0xFFC00083
    mov dword ptr [0x2000C], 0xC0000007
    mov edi, 0x21000
    mov eax, 0xC0000007
    mov ecx, 1024
1:  stosd
    add eax, 0x1000
    loop 1b
    mov eax, 0x20000
    mov cr3, eax
    mov eax, cr4
    or eax, 0x10
    mov cr4, eax
    mov eax, cr0
    or eax, 0x80000000
    mov cr0, eax
    mov dword ptr [0x400000], 0x11223344
    mov eax, [0x400000]
    mov [RESULTS + 0], eax
    mov dword ptr [0x400FFE], 0x55667788
    mov dword ptr [0x1FFFFC], 0
    mov dword ptr [0x1FFFFE], 0xAABBCCDD
    mov eax, [0x1FFFFE]
    mov [RESULTS + 4], eax
    mov eax, [0x1FFFFC]
    mov [RESULTS + 8], eax
    mov dword ptr [0xBFFFFC], 0x99999999
    mov eax, [0xBFFFFC]
    mov [RESULTS + 12], eax
    mov eax, [0xC00000]
    mov [RESULTS + 16], eax
    mov dword ptr [0xC00010], 0x77777777
    mov edi, 0x400000
    mov ecx, 0x1000
    mov eax, 0xABABABAB
    rep stosd
    mov esi, 0x400000
    mov edi, 0x30000
    mov ecx, 4
    rep movsd
    mov eax, [0]
    mov [RESULTS + 20], eax
    EXIT DONE
"#;
    let src = format!("{}\ntest_main:\n{body}\n", common::PROLOGUE);
    let image = common::assemble("outside_ram", &src, common::LOAD);
    let mut m = Machine::new(MachineConfig::with_ram(RAM)).expect("machine");
    m.mem.write(common::LOAD as u64, &image).unwrap();
    let guards = Guards::around(&m);
    let mut st = CpuState::multiboot(common::LOAD, 0, 0);
    st.regs[4] = common::KSTACK;
    let mut run = common::run_from(m, &st);
    run.assert_done();
    assert!(guards.intact(), "host memory next to guest RAM was written");
    let v: Vec<u32> = (0..6).map(|i| run.result(i)).collect();
    assert_eq!(
        v,
        vec![
            0xFFFF_FFFF, // stored to, and loaded from, phys 0xC0000000: nothing there
            0xFFFF_CCDD, // the half of the straddling store inside RAM, then all ones
            0xCCDD_0000, // the last RAM dword holds the low half
            0xFFFF_FFFF, // a 4 MiB page at phys 0xFFC00000
            0xFFFF_FFFF, // a page table at phys 0xC0000000 reads as all ones
            0x1234_5678, // phys 0 untouched
        ]
    );
    assert_eq!(
        run.u32_at(0x30000),
        0xFFFF_FFFF,
        "REP MOVSD from nothing copies all ones"
    );
    assert_eq!(run.u32_at(0x3000C), 0xFFFF_FFFF);
}
