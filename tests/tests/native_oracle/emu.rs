//! The emulator side of the native oracle: the same pages, registers and
//! flags as the native child, on the interpreter or the translator.
//!
//! The machine is in protected mode with paging at CPL 3, flat 4 GiB code
//! (0x23) and data (0x2B: DS, ES, SS, FS, GS) segments with Linux's
//! selectors, as the native child has them, and
//! page tables that map exactly the user pages the native child maps
//! ([`crate::layout`]), identity-mapped, user, writable where the child's
//! are. CR0.AM is set as Linux sets it, so EFLAGS.AC at CPL 3 gives #AC.
//!
//! The kernel side is small and lives above the user pages in supervisor
//! pages: a GDT, a TSS (ESP0 = `KSTACK_TOP`, no I/O bitmap), and an IDT
//! whose 256 interrupt gates lead to two-byte stubs `hlt; hlt`, one per
//! vector at `HANDLERS + 2 * vector`. An exception (or the final INT3,
//! through a DPL-3 gate as Linux sets vector 3) thus lands in ring 0 with
//! interrupts off and halts: the run stops with `Stop::Halted`, the vector
//! is the halt address's stub, and the frame on the ring-0 stack holds the
//! faulting EIP, EFLAGS, user ESP and error code; the general registers
//! other than ESP are untouched by the delivery, and CR2 holds a page
//! fault's address.

use crate::layout::Page;
use machine::cpu::{access, cr0, flags, CpuState, Seg, Segment, TableReg};
use machine::{Counter, Limits, Machine, MachineConfig, Stop};
use ringlab::engines::EngineKind;
use ringlab::session::{Options, Session};
use std::time::{Duration, Instant};
use tests::native::Regs;

const RAM: usize = 8 << 20;
const PD: u32 = 0x40_0000;
const PT0: u32 = 0x40_1000;
const PT1: u32 = 0x40_2000;
const GDT: u32 = 0x40_3000;
const IDT: u32 = 0x40_4000;
const TSS: u32 = 0x40_5000;
const HANDLERS: u32 = 0x40_6000;
const KSTACK_TOP: u32 = 0x40_8000;

/// Page-table entry bits (SDM Vol 3A 4.3, table 4-6).
const P: u32 = 1;
const RW: u32 = 2;
const US: u32 = 4;

/// How an emulator run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The vector delivered (3 for the final INT3), or None when the run
    /// did not end in a handler (then `stop` says how it ended).
    pub vector: Option<u8>,
    pub error_code: Option<u32>,
    /// At the fault (EIP of the faulting instruction, user ESP) or after
    /// the INT3.
    pub regs: Regs,
    pub cr2: u32,
    pub stop: String,
    /// The writable pages' contents, in the order of the run's pages.
    pub mem: Vec<u8>,
    /// Instructions that ran as translated code (the translator; 0 on the
    /// interpreter).
    pub translated: u64,
    /// Instructions retired (the final INT3 included).
    pub icount: u64,
    /// ES, CS, SS, DS, FS, GS selectors (the user's, at a fault).
    pub sregs: [u16; 6],
}

/// Vectors whose delivery pushes an error code (SDM Vol 3A 6.13, table
/// 6-1).
fn has_error_code(v: u8) -> bool {
    matches!(v, 8 | 10..=14 | 17 | 21)
}

/// Writes the page tables, GDT, IDT, TSS and stubs, and the user pages'
/// initial contents.
fn build(m: &mut Machine, pages: &[(Page, Vec<u8>)]) {
    let w32 = |m: &mut Machine, a: u32, v: u32| m.mem.write_u32(a as u64, v).unwrap();
    w32(m, PD, PT0 | P | RW | US);
    w32(m, PD + 4, PT1 | P | RW | US);
    for (p, bytes) in pages {
        for k in 0..p.len / 0x1000 {
            let a = p.addr + k * 0x1000;
            let rw = if p.writable { RW } else { 0 };
            w32(m, PT0 + (a >> 12) * 4, a | P | US | rw);
        }
        m.mem.write(p.addr as u64, bytes).unwrap();
    }
    // Supervisor pages: PD/PTs through the stack (PT1 covers 4-8 MiB).
    let mut a = PD;
    while a < KSTACK_TOP {
        w32(m, PT1 + ((a - 0x40_0000) >> 12) * 4, a | P | RW);
        a += 0x1000;
    }
    // The user selectors are Linux x86-64's (arch/x86/include/asm/
    // segment.h), so that what PUSH CS/DS and MOV r, Sreg store, and which
    // selectors load, match the native child: 0x18 a ring-0 data segment
    // (__KERNEL_DS), 0x23 the 32-bit user code (__USER32_CS), 0x2B the
    // user data (__USER_DS). The TSS is where Linux has its own.
    let gdt = [
        0u64,
        Segment::flat32(0x08, true).to_descriptor(),
        Segment::flat32(0x10, false).to_descriptor(),
        Segment::flat32(0x18, false).to_descriptor(),
        user_seg(0x23, true).to_descriptor(),
        user_seg(0x2B, false).to_descriptor(),
        0,
        0,
        tss_seg().to_descriptor(),
    ];
    for (k, d) in gdt.iter().enumerate() {
        m.mem.write_u64((GDT + 8 * k as u32) as u64, *d).unwrap();
    }
    for v in 0..256u32 {
        let off = HANDLERS + 2 * v;
        // INT3 and INTO are software interrupts: Linux gives their gates
        // DPL 3 so user code may raise them; every other gate is DPL 0
        // (INT n from ring 3 then takes #GP, as on Linux).
        let dpl = if v == 3 || v == 4 { 3u32 } else { 0 };
        let lo = (off & 0xFFFF) | (0x08 << 16);
        // P, DPL, 32-bit interrupt gate (type 0xE).
        let hi = (off & 0xFFFF_0000) | 0x8E00 | (dpl << 13);
        m.mem
            .write_u64((IDT + 8 * v) as u64, lo as u64 | (hi as u64) << 32)
            .unwrap();
        m.mem
            .write(off as u64, &[0xF4, 0xF4]) // hlt; hlt
            .unwrap();
    }
    w32(m, TSS + 4, KSTACK_TOP); // ESP0
    w32(m, TSS + 8, 0x10); // SS0
                           // I/O map base beyond the TSS limit: no I/O bitmap, every port denied
                           // at CPL 3 with IOPL 0 (SDM Vol 1 19.5.2).
    m.mem.write_u16((TSS + 0x66) as u64, 0x68).unwrap();
}

/// A flat 4 GiB ring-3 code or data segment.
fn user_seg(selector: u16, code: bool) -> Segment {
    let mut s = Segment::flat32(selector, code);
    s.access |= 3 << access::DPL_SHIFT;
    s
}

fn tss_seg() -> Segment {
    Segment {
        selector: 0x40,
        base: TSS,
        limit: 0x67,
        access: access::P | access::SYS_TSS32_BUSY,
    }
}

/// The CPU state of the native child's start: CPL 3, paging on, CR0.AM.
fn state(start: &Regs) -> CpuState {
    let mut s = CpuState::multiboot(start.eip, 0, GDT);
    s.regs = start.gpr;
    s.eip = start.eip;
    // Linux runs user code with IF set and IOPL 0.
    s.eflags = start.eflags | flags::FIXED | flags::IF;
    s.cr0 = cr0::PE | cr0::ET | cr0::NE | cr0::WP | cr0::AM | cr0::PG;
    s.cr3 = PD;
    s.gdtr = TableReg {
        base: GDT,
        limit: 9 * 8 - 1,
    };
    s.idtr = TableReg {
        base: IDT,
        limit: 256 * 8 - 1,
    };
    for seg in Seg::ALL {
        s.segs[seg as usize] = user_seg(0x2B, false);
    }
    s.segs[Seg::Cs as usize] = user_seg(0x23, true);
    s.tr = tss_seg();
    s
}

/// Runs from `start` with `pages` (each user page with its initial
/// contents) on the translator (`bt`) or the interpreter.
pub fn run(bt: bool, pages: &[(Page, Vec<u8>)], start: &Regs) -> Outcome {
    let mut m = Machine::new(MachineConfig::with_ram(RAM)).unwrap();
    build(&mut m, pages);
    let kind = if bt {
        EngineKind::Bt
    } else {
        EngineKind::Interp
    };
    let mut e = Session::new(m, kind, Options::default(), &state(start)).unwrap();
    let limits = Limits {
        max_icount: Some(1_000_000),
        deadline: Some(Instant::now() + Duration::from_secs(10)),
        breakpoints: vec![],
    };
    let stop = e.run_until(&limits);
    let s = e.cpu_state().unwrap();
    let icount = e.m.icount();
    let translated = if bt {
        e.stats()
            .get(Counter::TranslatedInstructions)
            .expect("the translator counts translated instructions")
    } else {
        0
    };
    let mem: Vec<u8> = pages
        .iter()
        .map(|(p, _)| p)
        .filter(|p| p.writable)
        .flat_map(|p| {
            e.m.mem
                .slice(p.addr as u64, p.len as usize)
                .unwrap()
                .to_vec()
        })
        .collect();
    let r32 = |a: u32| e.m.mem.read_u32(a as u64).unwrap();
    let in_stub = (HANDLERS..HANDLERS + 512).contains(&s.eip) && s.cpl() == 0;
    let mut sregs = s.segs.map(|g| g.selector);
    if in_stub {
        // An interrupt from ring 3 leaves ES, DS, FS and GS as they were
        // and pushes the user's SS and CS (SDM Vol 3A 6.12.1).
        sregs[Seg::Ss as usize] = r32(KSTACK_TOP - 4) as u16;
        sregs[Seg::Cs as usize] = r32(KSTACK_TOP - 16) as u16;
    }
    if matches!(stop, Ok(Stop::Halted)) && in_stub {
        let v = ((s.eip - HANDLERS) / 2) as u8;
        let top = KSTACK_TOP;
        let error_code = has_error_code(v).then(|| r32(top - 24));
        let mut gpr = s.regs;
        gpr[4] = r32(top - 8);
        Outcome {
            vector: Some(v),
            error_code,
            regs: Regs {
                gpr,
                eip: r32(top - 20),
                eflags: r32(top - 12),
            },
            cr2: s.cr2,
            stop: format!("{stop:?}"),
            mem,
            translated,
            icount,
            sregs,
        }
    } else {
        Outcome {
            vector: None,
            error_code: None,
            regs: Regs {
                gpr: s.regs,
                eip: s.eip,
                eflags: s.eflags,
            },
            cr2: s.cr2,
            stop: format!("{stop:?} at cpl {}", s.cpl()),
            mem,
            translated,
            icount,
            sregs,
        }
    }
}
