//! Differential testing against this host's real CPU (issue 20): random
//! 32-bit user-mode instruction sequences run natively (a traced child in
//! compatibility mode, `tests::native`), on the interpreter and on the
//! translator, from the same registers, flags and memory; the final
//! registers, EFLAGS (the flags the SDM leaves undefined masked, per
//! instruction, `forms.rs`), the writable pages and the exception taken
//! (#DE, #UD, #GP, #PF with its CR2, #BR, #OF, #AC, or the final INT3)
//! must agree.
//!
//! The generator (`gen.rs`, `operands.rs`, `forms.rs`) covers the forms
//! listed in RELIABILITY.md; the emulator side (`emu.rs`) builds a CPL-3
//! machine with the same pages; `cases.rs` holds handwritten cases.
//! A divergence is shrunk to a minimal sequence (items dropped one at a
//! time while it still diverges) and printed with its seed, listing and
//! both final states.
//!
//! Knobs: `RINGLAB_NATIVE_SEED=N` runs seed N alone and prints its code and
//! states; `RINGLAB_NATIVE_COUNT=N` runs N seeds (default [`CI_SEEDS`]);
//! `RINGLAB_NATIVE_SECS=T` runs seeds for T seconds (a soak), starting at
//! `RINGLAB_NATIVE_FIRST` (default 0); `RINGLAB_NATIVE_SHRINK=N` shrinks
//! and prints up to N divergences (default 4). The summary (sequences,
//! instructions, forms, how they ended) goes to stderr (`--nocapture`).
//! RELIABILITY.md has the figures and the divergences found.

mod cases;
mod emu;
mod forms;
mod gen;
mod operands;

use gen::{Prog, Rng, STATUS};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tests::native::{Native, NativeError, Outcome, Region, Regs};

/// The pages the native child maps and the emulator's page tables map,
/// at the same addresses below 4 GiB.
pub mod layout {
    /// One mapped range.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Page {
        pub addr: u32,
        pub len: u32,
        pub writable: bool,
        pub executable: bool,
    }
    /// 0x8000-0xFFFF: where 16-bit effective addresses land (the pages
    /// below it are unmapped, so half of all 16-bit addresses fault).
    pub const WIN16: u32 = 0x8000;
    /// The code (read and execute).
    pub const CODE: u32 = 0x10_0000;
    /// Two writable data pages; EBP points here.
    pub const DATA: u32 = 0x20_0000;
    /// A read-only page just after them; 0x20_3000 and 0x1F_F000 are
    /// unmapped.
    pub const RODATA: u32 = 0x20_2000;
    pub const STACK: u32 = 0x30_0000;
    pub const STACK_TOP: u32 = 0x30_1000;
    pub const PAGES: [Page; 5] = [
        Page {
            addr: WIN16,
            len: 0x8000,
            writable: true,
            executable: false,
        },
        Page {
            addr: CODE,
            len: 0x2000,
            writable: false,
            executable: true,
        },
        Page {
            addr: DATA,
            len: 0x2000,
            writable: true,
            executable: false,
        },
        Page {
            addr: RODATA,
            len: 0x1000,
            writable: false,
            executable: false,
        },
        Page {
            addr: STACK,
            len: 0x1000,
            writable: true,
            executable: false,
        },
    ];
}

use layout::{Page, CODE, PAGES};
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether the native child could map the 16-bit window (`layout::WIN16`):
/// below `vm.mmap_min_addr` (65536 on many distributions) that needs
/// CAP_SYS_RAWIO. Without it the window is left unmapped on both sides
/// (16-bit addresses then fault everywhere) and the test says so.
static WIN16_MAPPED: AtomicBool = AtomicBool::new(true);

/// The pages of this run: `PAGES`, less the 16-bit window if the child
/// could not map it.
fn pages() -> Vec<Page> {
    let win16 = WIN16_MAPPED.load(Ordering::Relaxed);
    PAGES
        .iter()
        .copied()
        .filter(|p| win16 || p.addr != layout::WIN16)
        .collect()
}

/// Seeds run by `cargo test` (5-20 s in release on this 2-core host,
/// depending on its load).
const CI_SEEDS: u64 = 5000;
/// EFLAGS bits compared: all but RF (which a fault may set in the pushed
/// image, SDM Vol 3A 18.3.1.1) and the undefined status flags.
const RF: u32 = 1 << 16;

/// One test case: a program, its start registers and the pages' initial
/// contents.
#[derive(Clone)]
struct Case {
    prog: Prog,
    start: Regs,
    pages: Vec<(Page, Vec<u8>)>,
}

impl Case {
    fn new(seed: u64) -> Case {
        let mut r = Rng::new(seed);
        let len = 4 + r.below(48) as usize;
        let prog = gen::program(&mut r, len);
        let gpr = gen::start_regs(&mut r);
        // Random status flags; DF in one case in four (the translator
        // leaves DF = 1 to the interpreter); AC (alignment checks at CPL
        // 3) in one case in eight.
        let mut eflags = (r.next() as u32 & STATUS) | 2;
        if r.below(4) == 0 {
            eflags |= 0x400;
        }
        if r.below(8) == 0 {
            eflags |= 1 << 18;
        }
        let pages = pages()
            .iter()
            .map(|p| {
                let bytes = if p.addr == CODE {
                    vec![]
                } else if p.addr == layout::STACK {
                    // Half of the stack's dwords point into the data pages,
                    // so that what POPAD, LEAVE and POP leave in EBP (or
                    // elsewhere) often still addresses data.
                    (0..p.len / 4)
                        .flat_map(|_| {
                            let v = if r.below(2) == 0 {
                                layout::DATA + (r.below(0x2000) as u32 & !3)
                            } else {
                                r.val(32)
                            };
                            v.to_le_bytes()
                        })
                        .collect()
                } else {
                    (0..p.len / 4)
                        .flat_map(|_| r.val(32).to_le_bytes())
                        .collect()
                };
                (*p, bytes)
            })
            .collect();
        let mut c = Case {
            prog,
            start: Regs {
                gpr,
                eip: CODE,
                eflags,
            },
            pages,
        };
        c.set_code();
        c
    }

    /// Puts the program's code into the code page (the rest INT3).
    fn set_code(&mut self) {
        let (code, _) = self.prog.encode(CODE);
        let page = self.pages.iter_mut().find(|(p, _)| p.addr == CODE).unwrap();
        let mut bytes = vec![0xCC; page.0.len as usize];
        bytes[..code.len()].copy_from_slice(&code);
        page.1 = bytes;
    }

    fn with_prog(&self, prog: Prog) -> Case {
        let mut c = self.clone();
        c.prog = prog;
        c.set_code();
        c
    }

    fn listing(&self) -> String {
        let (code, _) = self.prog.encode(CODE);
        let mut out = String::new();
        let dec = iced_x86::Decoder::with_ip(32, &code, CODE as u64, 0);
        for i in dec {
            let at = (i.ip() - CODE as u64) as usize;
            let bytes: String = code[at..at + i.len()]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            out += &format!("  {:08x} {bytes:<24} {i}\n", i.ip());
        }
        out
    }
}

/// How a run ended, the same shape for the CPU and the engines.
#[derive(Clone, Debug, PartialEq, Eq)]
struct End {
    /// EFLAGS at the start as the CPU ran it (see `Outcome::start_eflags`).
    start_eflags: u32,
    /// The exception or trap vector, or a description of another end.
    how: Result<u8, String>,
    regs: Regs,
    /// CR2 for a page fault.
    cr2: Option<u32>,
    mem: Vec<u8>,
    /// Instructions the translator ran as translated code.
    translated: u64,
    /// Instructions the engine retired.
    icount: u64,
    /// ES, CS, SS, DS, FS, GS.
    sregs: [u16; 6],
}

fn vector_name(v: u8) -> &'static str {
    match v {
        0 => "#DE",
        3 => "INT3",
        4 => "#OF",
        5 => "#BR",
        6 => "#UD",
        13 => "#GP",
        14 => "#PF",
        17 => "#AC",
        _ => "other",
    }
}

/// The vector behind the signal the kernel reported (arch/x86/kernel/
/// traps.c and fault.c): SIGSEGV with SI_KERNEL is #GP, #BR or #OF, told
/// apart by the instruction at EIP.
fn native_vector(o: &Outcome, case: &Case) -> Result<u8, String> {
    // <asm-generic/siginfo.h>
    const SI_KERNEL: i32 = 0x80;
    const SEGV_MAPERR: i32 = 1;
    const SEGV_ACCERR: i32 = 2;
    let insn = || {
        let (code, _) = case.prog.encode(CODE);
        let at = o.regs.eip.wrapping_sub(CODE) as usize;
        let bytes = code.get(at..).unwrap_or(&[]);
        iced_x86::Decoder::with_ip(32, bytes, o.regs.eip as u64, 0).decode()
    };
    let after_into = || {
        let (_, starts) = case.prog.encode(CODE);
        // An INTO that ends at EIP (the generator follows each INTO with
        // a NOP in the same item, so a #GP at a branch target can never
        // be at the address after an INTO).
        (0..case.prog.items.len()).any(|k| {
            let at = starts[k] as u64;
            iced_x86::Decoder::with_ip(32, &case.prog.items[k].bytes, at, 0)
                .into_iter()
                .any(|i| {
                    i.mnemonic() == iced_x86::Mnemonic::Into && i.next_ip() == o.regs.eip as u64
                })
        })
    };
    match (o.signo, o.si_code) {
        (libc::SIGTRAP, SI_KERNEL) => Ok(3),
        (libc::SIGFPE, _) => Ok(0),
        (libc::SIGILL, _) => Ok(6),
        (libc::SIGSEGV, SEGV_MAPERR | SEGV_ACCERR) => Ok(14),
        // #OF is a trap: EIP is after the INTO, which traps only with OF
        // set, so the instruction at EIP never ran.
        (libc::SIGSEGV, SI_KERNEL) if after_into() && o.regs.eflags & gen::OF != 0 => Ok(4),
        (libc::SIGSEGV, SI_KERNEL) if insn().mnemonic() == iced_x86::Mnemonic::Bound => Ok(5),
        (libc::SIGSEGV, SI_KERNEL) => Ok(13),
        (libc::SIGBUS, libc::BUS_ADRALN) => Ok(17),
        (s, c) => Err(format!("signal {s} si_code {c:#x}")),
    }
}

/// The writable pages' contents, in the case's order.
fn native_mem(n: &mut Native, case: &Case) -> Result<Vec<u8>, NativeError> {
    let mut v = Vec::new();
    for (p, _) in case.pages.iter().filter(|(p, _)| p.writable) {
        v.extend(n.read(p.addr, p.len as usize)?);
    }
    Ok(v)
}

fn run_native(n: &mut Native, case: &Case) -> Result<End, NativeError> {
    for (p, bytes) in &case.pages {
        n.write(p.addr, bytes)?;
    }
    let o = n.run(&case.start, Duration::from_secs(5))?;
    let how = native_vector(&o, case);
    Ok(End {
        start_eflags: o.start_eflags,
        cr2: (how == Ok(14)).then_some(o.si_addr as u32),
        how,
        regs: o.regs,
        mem: native_mem(n, case)?,
        translated: 0,
        icount: 0,
        sregs: o.sregs,
    })
}

/// `case` with the EFLAGS the CPU started from: ID (bit 21), which a
/// tracer cannot set, is whatever this process left in it. (IF, IOPL and
/// RF are the engine side's own, `emu::state`.)
fn for_engines(case: &Case, cpu: &End) -> Case {
    let mut same = case.clone();
    same.start.eflags = cpu.start_eflags & !(1 << 9 | 3 << 12 | RF);
    same
}

fn run_emu(bt: bool, case: &Case) -> End {
    let o = emu::run(bt, &case.pages, &case.start);
    End {
        start_eflags: case.start.eflags,
        how: o.vector.ok_or(o.stop),
        cr2: (o.vector == Some(14)).then_some(o.cr2),
        regs: o.regs,
        mem: o.mem,
        translated: o.translated,
        icount: o.icount,
        sregs: o.sregs,
    }
}

/// The flags undefined where the native run stopped: before the item
/// holding the stop address (a fault is at an item's last instruction,
/// its set-up writes no flags), or at the end for the final INT3.
///
/// One more case: a fault in the middle of REPE/REPNE CMPS or SCAS. The
/// SDM (Vol 2B "REP/REPE/REPZ/REPNE/REPNZ", and Vol 1 7.3.9.3 on fast
/// strings) says where ECX, ESI, EDI and EIP stand after such a fault but
/// not what the status flags hold; this host leaves them as they were
/// before the instruction while the engines hold the last completed
/// iteration's comparison. They are masked there.
fn undefined_at(case: &Case, cpu: &End) -> u32 {
    let eip = cpu.regs.eip;
    let plan = case.prog.plan().expect("generated programs have a plan");
    let (code, starts) = case.prog.encode(CODE);
    let und = match starts.windows(2).position(|w| (w[0]..w[1]).contains(&eip)) {
        Some(k) => plan[k],
        None => *plan.last().unwrap(),
    };
    let at = eip.wrapping_sub(CODE) as usize;
    let i = iced_x86::Decoder::with_ip(32, code.get(at..).unwrap_or(&[]), eip as u64, 0).decode();
    use iced_x86::Mnemonic::*;
    let rep_compare = (i.has_repe_prefix() || i.has_repne_prefix())
        && matches!(i.mnemonic(), Cmpsb | Cmpsw | Cmpsd | Scasb | Scasw | Scasd);
    if rep_compare && cpu.how != Ok(3) {
        und | STATUS
    } else {
        und
    }
}

/// The differences between the CPU's end and an engine's.
fn diff(case: &Case, cpu: &End, emu: &End) -> Vec<String> {
    let mut d = Vec::new();
    let name = |h: &Result<u8, String>| match h {
        Ok(v) => format!("{} (vector {v})", vector_name(*v)),
        Err(e) => e.clone(),
    };
    if cpu.how != emu.how {
        d.push(format!(
            "end: cpu {}, engine {}",
            name(&cpu.how),
            name(&emu.how)
        ));
    }
    if cpu.cr2 != emu.cr2 {
        d.push(format!("cr2: cpu {:x?}, engine {:x?}", cpu.cr2, emu.cr2));
    }
    const NAMES: [&str; 8] = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"];
    for (k, name) in NAMES.iter().enumerate() {
        let (a, b) = (cpu.regs.gpr[k], emu.regs.gpr[k]);
        if a != b {
            d.push(format!("{name}: cpu {a:#010x}, engine {b:#010x}"));
        }
    }
    if cpu.sregs != emu.sregs {
        d.push(format!(
            "selectors (es cs ss ds fs gs): cpu {:02x?}, engine {:02x?}",
            cpu.sregs, emu.sregs
        ));
    }
    if cpu.regs.eip != emu.regs.eip {
        d.push(format!(
            "eip: cpu {:#x}, engine {:#x}",
            cpu.regs.eip, emu.regs.eip
        ));
    }
    let und = undefined_at(case, cpu);
    let mask = !(RF | und);
    if cpu.regs.eflags & mask != emu.regs.eflags & mask {
        d.push(format!(
            "eflags (undefined {und:#x} and RF masked): cpu {:#x}, engine {:#x}",
            cpu.regs.eflags, emu.regs.eflags
        ));
    }
    if let Some(i) =
        (0..cpu.mem.len()).find(|&i| cpu.mem[i] != emu.mem.get(i).copied().unwrap_or(0))
    {
        // Back to an address: the writable pages in order.
        let mut off = i;
        let mut addr = 0;
        for (p, _) in case.pages.iter().filter(|(p, _)| p.writable) {
            if off < p.len as usize {
                addr = p.addr + off as u32;
                break;
            }
            off -= p.len as usize;
        }
        let n = (0..cpu.mem.len())
            .filter(|&i| cpu.mem[i] != emu.mem[i])
            .count();
        d.push(format!(
            "memory at {addr:#x}: cpu {:02x}, engine {:02x} ({n} bytes differ)",
            cpu.mem[i], emu.mem[i]
        ));
    }
    d
}

/// What one case gave: the CPU's end and each engine's differences.
struct Checked {
    cpu: End,
    /// Instructions the translator ran as translated code.
    translated: u64,
    /// Instructions the interpreter retired.
    retired: u64,
    interp: Vec<String>,
    bt: Vec<String>,
    /// The translator's end against the interpreter's, nothing masked: the
    /// flags the SDM leaves undefined are the interpreter's on the
    /// translator too, whatever this host's CPU makes of them.
    engines: Vec<String>,
    /// How the interpreter's run ended, and CR2 for a #PF.
    emu_end: (Result<u8, String>, Option<u32>),
}

impl Checked {
    fn diverges(&self) -> bool {
        !self.interp.is_empty() || !self.bt.is_empty() || !self.engines.is_empty()
    }
}

/// The differences between the interpreter's end and the translator's,
/// every flag and byte compared.
fn diff_engines(i: &End, b: &End) -> Vec<String> {
    let mut d = Vec::new();
    if (&i.how, i.cr2, i.regs, i.sregs) != (&b.how, b.cr2, b.regs, b.sregs) {
        d.push(format!(
            "end: interp {:?} cr2 {:x?} {:08x?} eflags {:#x}, bt {:?} cr2 {:x?} {:08x?} eflags {:#x}",
            i.how, i.cr2, i.regs.gpr, i.regs.eflags, b.how, b.cr2, b.regs.gpr, b.regs.eflags
        ));
    }
    if let Some(k) = (0..i.mem.len()).find(|&k| i.mem.get(k) != b.mem.get(k)) {
        d.push(format!(
            "memory byte {k:#x} of the writable pages: interp {:02x?}, bt {:02x?}",
            i.mem.get(k),
            b.mem.get(k)
        ));
    }
    d
}

fn check(n: &mut Native, case: &Case) -> Result<Checked, NativeError> {
    let cpu = run_native(n, case)?;
    let same = for_engines(case, &cpu);
    let i = run_emu(false, &same);
    let b = run_emu(true, &same);
    Ok(Checked {
        translated: b.translated,
        retired: i.icount,
        interp: diff(case, &cpu, &i),
        bt: diff(case, &cpu, &b),
        engines: diff_engines(&i, &b),
        emu_end: (i.how.clone(), i.cr2),
        cpu,
    })
}

/// Drops items one at a time while the case still diverges.
fn shrink(n: &mut Native, case: &Case) -> Case {
    let mut best = case.clone();
    loop {
        let mut progress = false;
        let mut k = best.prog.items.len();
        while k > 0 {
            k -= 1;
            let mut p = best.prog.clone();
            p.items.remove(k);
            if p.plan().is_none() {
                continue;
            }
            let c = best.with_prog(p);
            if matches!(check(n, &c), Ok(ch) if ch.diverges()) {
                best = c;
                progress = true;
            }
        }
        if !progress {
            return best;
        }
    }
}

fn report(seed: u64, case: &Case, ch: &Checked) -> String {
    let mut s = format!(
        "seed {seed}: {} items\n{}",
        case.prog.items.len(),
        case.listing()
    );
    s += &format!(
        "  start: regs {:08x?} eflags {:#x}\n  cpu end: {:?} regs {:08x?} eip {:#x} eflags {:#x}\n",
        case.start.gpr,
        case.start.eflags,
        ch.cpu.how,
        ch.cpu.regs.gpr,
        ch.cpu.regs.eip,
        ch.cpu.regs.eflags
    );
    for (e, d) in [
        ("interp", &ch.interp),
        ("bt", &ch.bt),
        ("bt against interp, nothing masked", &ch.engines),
    ] {
        if !d.is_empty() {
            s += &format!("  {e}:\n    {}\n", d.join("\n    "));
        }
    }
    s
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

/// The regions of the native child.
fn regions() -> Vec<Region> {
    pages()
        .iter()
        .map(|p| Region {
            addr: p.addr,
            len: p.len,
            writable: p.writable,
            executable: p.executable,
        })
        .collect()
}

/// This host's CPU vendor (CPUID leaf 0: "GenuineIntel", "AuthenticAMD").
/// The engines do what Intel's CPUs do where vendors differ; on another
/// vendor's CPU the generator leaves out and the comparison sets aside
/// what is known to differ, and says so.
pub fn host_vendor() -> &'static str {
    static V: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        let r = std::arch::x86_64::__cpuid(0);
        let b: Vec<u8> = [r.ebx, r.edx, r.ecx]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        String::from_utf8_lossy(&b).into_owned()
    })
}

/// Why a native run ended otherwise than the engines, which do as Intel's
/// CPUs where vendors differ, where that is known to differ between CPUs
/// (None otherwise):
/// - A data access that wraps at 4 GiB (LEAVE with EBP = 0xFFFFFFFF,
///   ENTER or a shift through [EBP - d] with a small EBP, a string
///   instruction at EDI = 0xFFFFFFFE) is #SS (SIGBUS from the kernel) or
///   #GP on an AMD CPU in compatibility mode; the engines wrap it, as a
///   32-bit CPU with flat 4 GiB segments does (and as an Intel CPU in
///   compatibility mode does), and fault on the unmapped page at
///   0xFFFFF000.
/// - BOUND reads both bounds before it compares on an AMD CPU: #PF on an
///   unmapped upper bound where the engines raise #BR from the lower.
/// - (Any vendor.) CMPS with both operands on unmapped pages faults on
///   [ESI] first on some CPUs (AMD's Zen 5), on [EDI] first on others
///   (Zen 3, whose order the engines keep, as QEMU's TCG does): the SDM
///   does not order the two reads.
fn vendor_end(case: &Case, ch: &Checked) -> Option<&'static str> {
    let (cpu, emu) = (&ch.cpu, &ch.emu_end);
    let (code, _) = case.prog.encode(CODE);
    let at = cpu.regs.eip.wrapping_sub(CODE) as usize;
    let i = iced_x86::Decoder::with_ip(32, code.get(at..).unwrap_or(&[]), 0, 0).decode();
    let [.., esi, edi] = cpu.regs.gpr;
    let within = |a: Option<u32>, at: u32| a.is_some_and(|a| a.wrapping_sub(at) < 4);
    let cmps = matches!(
        i.mnemonic(),
        iced_x86::Mnemonic::Cmpsb | iced_x86::Mnemonic::Cmpsw | iced_x86::Mnemonic::Cmpsd
    );
    if cmps && cpu.how == Ok(14) && emu.0 == Ok(14) && within(cpu.cr2, esi) && within(emu.1, edi) {
        return Some("CMPS faults on [ESI] before [EDI] on this CPU");
    }
    if host_vendor() == "GenuineIntel" {
        return None;
    }
    let segment_fault = cpu.how == Err("signal 7 si_code 0x80".into()) || cpu.how == Ok(13);
    // (With EFLAGS.AC set the engines' #AC comes first where the wrapping
    // access is a misaligned stack access: LEAVE at EBP = 0xFFFFFFFF.)
    let [.., esp, ebp, _, _] = cpu.regs.gpr;
    let stack_wraps =
        esp > 0xFFFF_FFFC || (i.mnemonic() == iced_x86::Mnemonic::Leave && ebp > 0xFFFF_FFFC);
    if segment_fault
        && (emu.0 == Ok(14) && emu.1.is_some_and(|a| a > 0xFFFF_FFF8)
            || emu.0 == Ok(17) && stack_wraps)
    {
        return Some("a data access that wraps at 4 GiB faults on this CPU in compatibility mode");
    }
    if i.mnemonic() == iced_x86::Mnemonic::Bound && cpu.how == Ok(14) && emu.0 == Ok(5) {
        return Some("BOUND reads its upper bound before it compares on this CPU");
    }
    None
}

fn spawn() -> Option<Native> {
    match Native::spawn(&regions()) {
        Ok(n) => Some(n),
        Err(NativeError::Map(layout::WIN16)) => {
            tests::skip(format!(
                "16-bit addresses are compared unmapped: {}",
                NativeError::Map(layout::WIN16)
            ));
            WIN16_MAPPED.store(false, Ordering::Relaxed);
            spawn()
        }
        Err(e) => {
            tests::skip(format!(
                "no native oracle on this host (a traced 32-bit child): {e}"
            ));
            None
        }
    }
}

#[test]
fn random_sequences_end_as_on_this_cpu() {
    let Some(mut n) = spawn() else { return };
    if let Some(seed) = env_u64("RINGLAB_NATIVE_SEED") {
        let case = Case::new(seed);
        let ch = check(&mut n, &case).unwrap();
        eprintln!("{}", report(seed, &case, &ch));
        if ch.diverges() {
            let small = shrink(&mut n, &case);
            let ch = check(&mut n, &small).unwrap();
            panic!("diverges; shrunk:\n{}", report(seed, &small, &ch));
        }
        return;
    }
    let first = env_u64("RINGLAB_NATIVE_FIRST").unwrap_or(0);
    let secs = env_u64("RINGLAB_NATIVE_SECS");
    let count = env_u64("RINGLAB_NATIVE_COUNT").unwrap_or(CI_SEEDS);
    // How many divergences to shrink and print (each costs a few hundred
    // runs).
    let shrinks = env_u64("RINGLAB_NATIVE_SHRINK").unwrap_or(4) as usize;
    let t0 = Instant::now();
    let mut ends: BTreeMap<String, u64> = BTreeMap::new();
    let mut failures: Vec<String> = Vec::new();
    let mut failing = 0;
    // Divergences between the interpreter and the translator (nothing
    // masked), and the ends set aside as this CPU vendor's own.
    let mut between = 0;
    let mut vendor_ends: BTreeMap<&str, u64> = BTreeMap::new();
    // Which instructions took the page faults (how often sequences stop
    // early, and why).
    let mut page_faults: BTreeMap<String, u64> = BTreeMap::new();
    let mut retries = 0;
    let (mut seqs, mut items, mut bytes, mut insns) = (0u64, 0u64, 0u64, 0u64);
    let (mut translated, mut retired) = (0u64, 0u64);
    // The instruction forms generated (iced-x86's `Code`: mnemonic and
    // operand shape, e.g. `Add_rm16_imm8`).
    let mut forms = std::collections::HashSet::new();
    let mut seed = first;
    loop {
        match secs {
            Some(s) if t0.elapsed() >= Duration::from_secs(s) => break,
            None if seed - first >= count => break,
            _ => {}
        }
        let case = Case::new(seed);
        // A native run that does not stop in time is retried once on a
        // fresh child (the host may have stalled the child under load); a
        // second timeout fails the test.
        let ch = match check(&mut n, &case) {
            Ok(ch) => ch,
            Err(NativeError::Timeout) => {
                retries += 1;
                eprintln!("seed {seed}: the native run timed out; retrying it");
                check(&mut n, &case)
                    .unwrap_or_else(|e| panic!("seed {seed}: the native run failed twice: {e}"))
            }
            Err(e) => panic!("seed {seed}: the native run failed: {e}"),
        };
        seqs += 1;
        translated += ch.translated;
        retired += ch.retired;
        items += case.prog.items.len() as u64;
        let code = case.prog.encode(CODE).0;
        bytes += code.len() as u64;
        for i in iced_x86::Decoder::with_ip(32, &code, CODE as u64, 0) {
            insns += 1;
            forms.insert(i.code());
        }
        let end = match &ch.cpu.how {
            Ok(v) => vector_name(*v).to_string(),
            Err(e) => e.clone(),
        };
        if ch.cpu.how == Ok(14) {
            let at = ch.cpu.regs.eip.wrapping_sub(CODE) as usize;
            let i = iced_x86::Decoder::with_ip(32, code.get(at..).unwrap_or(&[]), 0, 0).decode();
            *page_faults
                .entry(format!("{:?}", i.mnemonic()))
                .or_default() += 1;
        }
        *ends.entry(end).or_default() += 1;
        if !ch.engines.is_empty() {
            between += 1;
        }
        // Where this CPU's vendor is known to differ from Intel's, only
        // the engines are compared (with each other).
        let vendor = vendor_end(&case, &ch);
        if let Some(why) = vendor {
            *vendor_ends.entry(why).or_default() += 1;
        }
        if (vendor.is_none() && ch.diverges()) || !ch.engines.is_empty() {
            failing += 1;
            // Shrinking costs a few hundred runs: the first few only.
            if failures.len() < shrinks {
                let small = shrink(&mut n, &case);
                let ch = check(&mut n, &small).unwrap();
                failures.push(report(seed, &small, &ch));
            }
        }
        seed += 1;
    }
    eprintln!(
        "native oracle: seeds {first}..{seed}: {seqs} sequences, {items} items, {insns} \
         instructions ({} forms), {bytes} code bytes in {:.1} s; {retired} instructions retired \
         (interp), {translated} of them ran as translated code (bt); ends {ends:?}; {failing} diverge \
         ({between} between the engines); {} native children, {retries} runs retried",
        forms.len(),
        t0.elapsed().as_secs_f64(),
        n.spawned
    );
    let mut pf: Vec<_> = page_faults.into_iter().collect();
    pf.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    pf.truncate(12);
    eprintln!("native oracle: page faults by instruction (most): {pf:?}");
    if host_vendor() != "GenuineIntel" {
        tests::skip(format!(
            "this host's CPU is {}, not Intel's, which the engines follow where vendors \
             differ: PUSH of a segment register is generated with a 16-bit operand only \
             (with a 32-bit one an AMD CPU zero-extends the selector, an Intel CPU writes \
             its word: the SDM allows both), and these ends, known to differ on this \
             vendor's CPUs, were compared between the engines only: {vendor_ends:?}",
            host_vendor()
        ));
    } else if !vendor_ends.is_empty() {
        tests::skip(format!(
            "these ends, known to differ between CPUs, were compared between the engines \
             only: {vendor_ends:?}"
        ));
    }
    assert!(
        failures.is_empty(),
        "{failing} of {seqs} sequences diverge from this CPU (RINGLAB_NATIVE_SEED=N replays \
         one); the first, shrunk:\n{}",
        failures.join("\n")
    );
    // Every kind of end the generator aims at happened (a generator that
    // stopped producing faults would make the test pass vacuously).
    if secs.is_none() && count >= CI_SEEDS {
        for want in ["INT3", "#DE", "#UD", "#GP", "#PF", "#BR", "#AC", "#OF"] {
            assert!(
                ends.contains_key(want),
                "no sequence ended with {want}: {ends:?}"
            );
        }
    }
}
