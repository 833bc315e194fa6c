//! The binary translator on real-mode and 16-bit protected-mode code,
//! against the interpreter: random sequences of valid 16-bit instructions (ALU on 8-, 16- and
//! 32-bit registers, memory operands with 16-bit and 32-bit addressing
//! through ES, CS, SS and DS at non-zero bases with segment overrides,
//! PUSH/POP of words and dwords, near CALL/RET, LEA, LODS/STOS/MOVS,
//! LOOP, JCXZ, forward conditional branches, and segment loads and port
//! I/O, which the interpreter runs for translated code mid-block), run
//! from the same state on
//! both engines, must end in the same registers, flags, memory and
//! instruction count. Offsets are random over the whole 64 KiB, so some
//! accesses run past a segment's limit: the interpreter raises #GP or #SS
//! there, delivered through the real-mode IVT to a handler that leaves
//! through the exit port, on both engines alike. In 16-bit protected mode
//! (descriptors from a GDT, a code segment whose base is not its selector
//! times 16, at CPL 0 or 3, with IOPL 3 or 0, with paging or without:
//! user, supervisor and read-only pages) the same programs run, the
//! segment loads take GDT selectors (one of them null, one a segment of
//! 4 KiB), and faults go through a 16-bit IDT (from CPL 3 onto the TSS's
//! ring-0 stack).
//!
//! Flags: only instructions whose status flags the SDM defines are
//! generated (shifts and rotates by one, no multiply), except AF after the
//! logical instructions and the shifts, which nothing reads; the final
//! EFLAGS and the flags images pushed are compared whole (the translator
//! makes undefined flags the interpreter's on every host CPU).
//!
//! A failure names the seed; `RINGLAB_BT16_SEED=N` (real mode) or
//! `RINGLAB_PM16_SEED=N` runs that seed alone and prints its code.

use iced_x86::{Code, Encoder, Instruction, MemoryOperand, Register};
use machine::cpu::{CpuState, Seg, Segment};
use machine::{Counter, Limits, Machine, MachineConfig, Stop};
use ringlab::engines::EngineKind;
use ringlab::session::{Options, Session};
use std::time::{Duration, Instant};

/// CS:IP at the start: linear 0x8000.
const CS: u16 = 0x07C0;
const IP: u16 = 0x0400;
/// The data segments' selectors (bases 0x10000, 0x20000, 0x30000).
const DS: u16 = 0x1000;
const ES: u16 = 0x2000;
const SS: u16 = 0x3000;
/// Where the exception handler lives (0000:0600): every IVT vector points
/// at it. It leaves through the exit port with AL = 0xEE.
const HANDLER: u32 = 0x600;
const SEEDS: u64 = 300;
/// 16-bit protected mode: where the GDT, the IDT and the TSS live.
const GDT: u32 = 0x1000;
const IDT: u32 = 0x1800;
const TSS: u32 = 0x2000;
/// The GDT's selectors (RPL 0): the code at CS base 7C00h (linear 8000h
/// at IP 400h) for CPL 0 and 3, the data segments as in real mode, the
/// stack for CPL 0 (also the TSS's ring-0 stack) and 3, the handler's
/// code (base 0), the TSS, and the segments the program loads: two more
/// 64 KiB ones and one of 4 KiB (not translated code's: the interpreter
/// makes its accesses).
const P_CS0: u16 = 0x08;
const P_DS: u16 = 0x10;
const P_ES: u16 = 0x18;
const P_SS0: u16 = 0x20;
const P_SS3: u16 = 0x28;
const P_CS3: u16 = 0x30;
const P_HCS: u16 = 0x38;
const P_TSS: u16 = 0x40;
const P_LOADS: [u16; 3] = [0x48, 0x50, 0x58];
/// Two more code segments (CPL 0), bases 8000h and 8800h.
const P_CSA: u16 = 0x60;
const P_CSB: u16 = 0x68;
/// The ring-0 stack pointer in the TSS (in SS 0x30000's segment, away from
/// the program's stack).
const SP0: u32 = 0xF000;

/// With paging (`Mode::Prot16`): the page directory and the page table
/// mapping the first MiB to itself, user and writable but for DS's first
/// page (user, read-only) and ES's (supervisor).
const PD: u32 = 0x4000;
const PT: u32 = 0x5000;

/// The mode a program runs in: real mode, or 16-bit protected mode at
/// `ring` with IOPL `iopl`, with or without paging.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Real,
    Prot16 { ring: u16, iopl: u32, paging: bool },
}

impl Mode {
    /// The protected-mode variant seed `seed` runs in: CPL 0 for half of
    /// them, CPL 3 with IOPL 3 (CLI and port I/O allowed) for a quarter,
    /// CPL 3 with IOPL 0 (they fault: #GP) for the rest; every other seed
    /// with paging (at CPL 3 a write through DS's first page or any access
    /// through ES's is a #PF).
    fn prot16(seed: u64) -> Mode {
        let (ring, iopl) = match seed % 4 {
            0 | 1 => (0, 0),
            2 => (3, 3),
            _ => (3, 0),
        };
        let paging = seed & 4 != 0;
        Mode::Prot16 { ring, iopl, paging }
    }

    /// The selectors the program's segment loads pick from.
    fn loads(self) -> Vec<u32> {
        match self {
            Mode::Real => vec![0x1000, 0x1800, 0x2000, 0x2345, 0x3000],
            Mode::Prot16 { ring, .. } => [P_DS, P_ES]
                .iter()
                .chain(&P_LOADS)
                .map(|&s| (s | ring) as u32)
                .chain([0])
                .collect(),
        }
    }
}

const LEN: usize = 60;
/// Memory compared: the IVT, the code and the three data segments.
const COMPARED: usize = 0x40000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const R16: [Register; 7] = [
    Register::AX,
    Register::BX,
    Register::CX,
    Register::DX,
    Register::SI,
    Register::DI,
    Register::BP,
];
const R8: [Register; 8] = [
    Register::AL,
    Register::AH,
    Register::BL,
    Register::BH,
    Register::CL,
    Register::CH,
    Register::DL,
    Register::DH,
];
const R32: [Register; 4] = [Register::EAX, Register::EBX, Register::EDX, Register::ESI];

const JCC: [Code; 8] = [
    Code::Jb_rel8_16,
    Code::Jae_rel8_16,
    Code::Je_rel8_16,
    Code::Jne_rel8_16,
    Code::Js_rel8_16,
    Code::Jo_rel8_16,
    Code::Jp_rel8_16,
    Code::Jl_rel8_16,
];

fn pick<T: Copy>(r: &mut Rng, xs: &[T]) -> T {
    xs[r.below(xs.len() as u64) as usize]
}

/// A memory operand: 16-bit addressing (every base/index form, random
/// displacements, so anywhere in the segment), now and then 32-bit
/// addressing, and a segment override now and then.
fn mem(r: &mut Rng) -> MemoryOperand {
    let disp = r.below(0x1_0000) as i64;
    let small = r.below(0x100) as i64;
    let d = if r.below(4) == 0 { disp } else { small };
    let (base, index) = match r.below(9) {
        0 => (Register::BX, Register::SI),
        1 => (Register::BX, Register::DI),
        2 => (Register::BP, Register::SI),
        3 => (Register::BP, Register::DI),
        4 => (Register::SI, Register::None),
        5 => (Register::DI, Register::None),
        6 => (Register::BP, Register::None),
        7 => (Register::BX, Register::None),
        _ => (Register::None, Register::None),
    };
    let seg = match r.below(6) {
        0 => Register::ES,
        1 => Register::SS,
        2 => Register::DS,
        _ => Register::None,
    };
    if r.below(40) == 0 {
        // 32-bit addressing in 16-bit code (an address-size prefix): the
        // offset is the 32-bit sum, past the limit unless small.
        return MemoryOperand::new(Register::EBX, Register::None, 1, small, 1, false, seg);
    }
    let disp_size = if base == Register::None { 2 } else { 1 };
    let d = if base == Register::None { disp } else { d };
    MemoryOperand::new(base, index, 1, d, disp_size, false, seg)
}

/// One instruction (or a few that belong together) for seed stream `r`.
/// `depth`: words and dwords pushed so far (kept shallow and balanced).
fn gen(r: &mut Rng, depth: &mut Vec<u32>, mode: Mode) -> Vec<Instruction> {
    let i1 = |c, a: Register| Instruction::with1(c, a).unwrap();
    let i2 = |c, a: Register, b: Register| Instruction::with2(c, a, b).unwrap();
    let alu16 = [
        Code::Add_rm16_r16,
        Code::Sub_rm16_r16,
        Code::Adc_rm16_r16,
        Code::Sbb_rm16_r16,
        Code::And_rm16_r16,
        Code::Or_rm16_r16,
        Code::Xor_rm16_r16,
        Code::Cmp_rm16_r16,
    ];
    match r.below(24) {
        0..=3 => vec![i2(pick(r, &alu16), pick(r, &R16), pick(r, &R16))],
        4 => vec![i2(Code::Add_r8_rm8, pick(r, &R8), pick(r, &R8))],
        5 => vec![i2(Code::Xor_rm32_r32, pick(r, &R32), pick(r, &R32))],
        6 => vec![Instruction::with2(
            Code::Add_rm16_imm16,
            pick(r, &R16),
            r.below(0x1_0000) as u32,
        )
        .unwrap()],
        7 => vec![
            Instruction::with2(Code::Mov_r16_imm16, pick(r, &R16), r.below(0x1_0000) as u32)
                .unwrap(),
        ],
        8 => vec![Instruction::with2(
            pick(r, &[Code::Rol_rm16_1, Code::Shr_rm16_1, Code::Shl_rm16_1]),
            pick(r, &R16),
            1u32,
        )
        .unwrap()],
        9 => vec![i1(pick(r, &[Code::Inc_r16, Code::Dec_r16]), pick(r, &R16))],
        // Memory: loads, stores and read-modify-writes of bytes, words,
        // dwords.
        10 => vec![Instruction::with2(Code::Mov_r16_rm16, pick(r, &R16), mem(r)).unwrap()],
        11 => vec![Instruction::with2(Code::Mov_rm16_r16, mem(r), pick(r, &R16)).unwrap()],
        12 => vec![Instruction::with2(Code::Add_rm16_r16, mem(r), pick(r, &R16)).unwrap()],
        13 => vec![Instruction::with2(Code::Xor_r32_rm32, pick(r, &R32), mem(r)).unwrap()],
        14 => vec![Instruction::with2(Code::Sub_rm8_r8, mem(r), pick(r, &R8)).unwrap()],
        15 => vec![Instruction::with2(Code::Lea_r16_m, pick(r, &R16), mem(r)).unwrap()],
        // CS-relative reads (the code segment's base is in the key).
        16 => {
            let mut m = mem(r);
            m.segment_prefix = Register::CS;
            vec![Instruction::with2(Code::Mov_r16_rm16, pick(r, &R16), m).unwrap()]
        }
        // The stack: words and dwords, balanced.
        17 if depth.len() < 6 => {
            if r.below(2) == 0 {
                depth.push(2);
                vec![i1(Code::Push_r16, pick(r, &R16))]
            } else {
                depth.push(4);
                vec![i1(Code::Push_r32, pick(r, &R32))]
            }
        }
        18 => match depth.pop() {
            Some(2) => vec![i1(Code::Pop_r16, pick(r, &R16))],
            Some(_) => vec![i1(Code::Pop_r32, pick(r, &R32))],
            None => {
                depth.push(2);
                vec![Instruction::with1(Code::Pushw_imm8, r.below(0x80) as i32).unwrap()]
            }
        },
        // Strings, one element, through DS:SI and ES:DI.
        19 => {
            let k = r.below(5);
            vec![match k {
                0 => Instruction::with_lodsb(16, Register::None, iced_x86::RepPrefixKind::None),
                1 => Instruction::with_lodsw(16, Register::None, iced_x86::RepPrefixKind::None),
                2 => Instruction::with_stosw(16, iced_x86::RepPrefixKind::None),
                3 => Instruction::with_movsw(16, Register::None, iced_x86::RepPrefixKind::None),
                _ => Instruction::with_movsb(16, Register::None, iced_x86::RepPrefixKind::None),
            }
            .unwrap()]
        }
        20 => vec![Instruction::with(Code::Cli)],
        // A segment load mid-block (the interpreter runs it for the
        // translated code, which goes on with the new base).
        21 => {
            let sel = pick(r, &mode.loads());
            let sreg = pick(r, &[Register::DS, Register::ES]);
            vec![
                Instruction::with2(Code::Mov_r16_imm16, Register::DX, sel).unwrap(),
                Instruction::with2(Code::Mov_Sreg_rm16, sreg, Register::DX).unwrap(),
            ]
        }
        // Port I/O the interpreter runs for translated code: POST codes
        // to port 80h, a read of the PIC's mask.
        22 => vec![
            Instruction::with2(Code::Out_imm8_AL, 0x80u32, Register::AL).unwrap(),
            Instruction::with2(Code::In_AL_imm8, Register::AL, 0x21u32).unwrap(),
        ],
        _ => vec![],
    }
}

/// Raw groups with branches inside, encoded in place: a near CALL to a
/// two-instruction subroutine (INC AX, RET) jumped over afterwards; a
/// LOOP counted in CX; a JCXZ; a forward Jcc over one instruction.
fn raw_group(r: &mut Rng) -> Vec<u8> {
    match r.below(4) {
        // call +2; jmp short +2; inc ax; ret
        0 => vec![0xE8, 0x02, 0x00, 0xEB, 0x02, 0x40, 0xC3],
        // mov cx, n; 1: add ax, bx; loop 1b
        1 => {
            let n = 1 + r.below(5) as u8;
            vec![0xB9, n, 0x00, 0x01, 0xD8, 0xE2, 0xFC]
        }
        // jcxz +2; inc dx; inc bx
        2 => vec![0xE3, 0x01, 0x42, 0x43],
        // jcc +1 over `inc si`
        _ => {
            let cc = pick(r, &JCC);
            let mut j = Instruction::with_branch(cc, 0x1000).unwrap();
            j.set_near_branch16(0);
            let mut e = Encoder::new(16);
            // Encode at 0 with the target at 3 (a two-byte Jcc, INC SI).
            j.set_near_branch16(3);
            e.encode(&j, 0).unwrap();
            let mut b = e.take_buffer();
            b.push(0x46);
            b
        }
    }
}

/// The program for `seed`: 16-bit code, the stack unwound at the end, then
/// `out 0xf4, al; hlt`.
fn program(seed: u64, mode: Mode) -> Vec<u8> {
    let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut enc = Encoder::new(16);
    let mut bytes = Vec::new();
    let mut depth = Vec::new();
    let mut n = 0;
    while n < LEN {
        if r.below(6) == 0 {
            bytes.extend(raw_group(&mut r));
            n += 1;
            continue;
        }
        for i in gen(&mut r, &mut depth, mode) {
            let ip = IP as u64 + bytes.len() as u64;
            enc.encode(&i, ip).unwrap();
            bytes.extend(enc.take_buffer());
            n += 1;
        }
    }
    for d in depth.iter().rev() {
        // pop cx (its value goes), or pop ecx.
        if *d == 2 {
            bytes.push(0x59);
        } else {
            bytes.extend([0x66, 0x59]);
        }
    }
    bytes.extend([0xE6, 0xF4, 0xF4]);
    bytes
}

fn seg(sel: u16, code: bool) -> Segment {
    if code {
        Segment::real_mode_code(sel)
    } else {
        Segment::real_mode_data(sel)
    }
}

/// A GDT descriptor: `base`, byte-granular `limit` (up to 1 MiB), access
/// byte `access` (P, DPL, S, type), 16-bit.
fn descriptor(base: u32, limit: u32, access: u8) -> u64 {
    let (b, l) = (base as u64, limit as u64);
    (l & 0xFFFF)
        | (b & 0xFF_FFFF) << 16
        | (access as u64) << 40
        | (l >> 16 & 0xF) << 48
        | (b >> 24) << 56
}

/// 16-bit protected mode for `mode` (`Mode::Prot16`) over the real-mode
/// machine `setup` made: the GDT, a 16-bit interrupt gate to the handler
/// for every vector, a 32-bit TSS whose ring-0 stack is SS0:SP0, and the
/// segments loaded from them.
fn enter_prot16(m: &mut Machine, st: &mut CpuState, ring: u16, iopl: u32, paging: bool) {
    let dpl = |d: u8| d << 5;
    // Present, accessed: code execute/read, data read/write.
    let (code, data) = (0x9Bu8, 0x93u8);
    let mut gdt = [0u64; 14];
    gdt[(P_CS0 >> 3) as usize] = descriptor(0x7C00, 0xFFFF, code);
    gdt[(P_DS >> 3) as usize] = descriptor(0x10000, 0xFFFF, data | dpl(3));
    gdt[(P_ES >> 3) as usize] = descriptor(0x20000, 0xFFFF, data | dpl(3));
    gdt[(P_SS0 >> 3) as usize] = descriptor(0x30000, 0xFFFF, data);
    gdt[(P_SS3 >> 3) as usize] = descriptor(0x30000, 0xFFFF, data | dpl(3));
    gdt[(P_CS3 >> 3) as usize] = descriptor(0x7C00, 0xFFFF, code | dpl(3));
    gdt[(P_HCS >> 3) as usize] = descriptor(0, 0xFFFF, code);
    // A 32-bit TSS, busy (it is TR's).
    gdt[(P_TSS >> 3) as usize] = descriptor(TSS, 0x67, 0x8B);
    gdt[(P_LOADS[0] >> 3) as usize] = descriptor(0x18000, 0xFFFF, data | dpl(3));
    gdt[(P_LOADS[1] >> 3) as usize] = descriptor(0x23450, 0xFFFF, data | dpl(3));
    gdt[(P_LOADS[2] >> 3) as usize] = descriptor(0x12340, 0x0FFF, data | dpl(3));
    gdt[(P_CSA >> 3) as usize] = descriptor(0x8000, 0xFFFF, code);
    gdt[(P_CSB >> 3) as usize] = descriptor(0x8800, 0xFFFF, code);
    for (i, d) in gdt.iter().enumerate() {
        m.mem
            .write(GDT as u64 + 8 * i as u64, &d.to_le_bytes())
            .unwrap();
    }
    // 16-bit interrupt gates (type 6), DPL 3, to P_HCS:HANDLER.
    let gate = (HANDLER as u64 & 0xFFFF) | (P_HCS as u64) << 16 | 0xE6u64 << 40;
    for v in 0..256u64 {
        m.mem
            .write(IDT as u64 + 8 * v, &gate.to_le_bytes())
            .unwrap();
    }
    m.mem.write_u32(TSS as u64 + 4, SP0).unwrap();
    m.mem.write_u32(TSS as u64 + 8, P_SS0 as u32).unwrap();
    let seg = |sel: u16| Segment::from_descriptor(sel, gdt[(sel >> 3) as usize]);
    let (cs, ss) = if ring == 3 {
        (P_CS3, P_SS3)
    } else {
        (P_CS0, P_SS0)
    };
    st.segs[Seg::Cs as usize] = seg(cs | ring);
    st.segs[Seg::Ss as usize] = seg(ss | ring);
    for (s, sel) in [
        (Seg::Ds, P_DS),
        (Seg::Es, P_ES),
        (Seg::Fs, P_DS),
        (Seg::Gs, P_DS),
    ] {
        st.segs[s as usize] = seg(sel | ring);
    }
    st.cr0 |= machine::cpu::cr0::PE;
    st.gdtr = machine::cpu::TableReg {
        base: GDT,
        limit: (gdt.len() * 8 - 1) as u16,
    };
    st.idtr = machine::cpu::TableReg {
        base: IDT,
        limit: 256 * 8 - 1,
    };
    st.tr = seg(P_TSS);
    st.eflags |= iopl << machine::cpu::flags::IOPL_SHIFT;
    if paging {
        for page in 0..256u32 {
            let bits = match page << 12 {
                0x10000 => 0x5, // present, user, read-only
                0x20000 => 0x3, // present, supervisor, writable
                _ => 0x7,
            };
            m.mem
                .write_u32((PT + 4 * page) as u64, page << 12 | bits)
                .unwrap();
        }
        m.mem.write_u32(PD as u64, PT | 0x7).unwrap();
        st.cr3 = PD;
        st.cr0 |= machine::cpu::cr0::PG;
    }
}

/// The machine and the start state for `seed`: the program at CS:IP, the
/// handler and the IVT, random data in the segments, random registers; in
/// 16-bit protected mode with `mode`'s tables and segments.
fn setup(seed: u64, code: &[u8], mode: Mode) -> (Machine, CpuState) {
    let mut m = Machine::new(MachineConfig::with_ram(1 << 20)).unwrap();
    let mut r = Rng(seed ^ 0x5555_5555_5555 | 1);
    let mut data = vec![0u8; 0x30000];
    for b in data.iter_mut() {
        *b = r.next() as u8;
    }
    m.mem.write(0x10000, &data).unwrap();
    m.mem.write((CS as u64) * 16 + IP as u64, code).unwrap();
    // mov al, 0xEE; out 0xf4, al; hlt
    m.mem
        .write(HANDLER as u64, &[0xB0, 0xEE, 0xE6, 0xF4, 0xF4])
        .unwrap();
    for v in 0..256u64 {
        m.mem.write_u32(v * 4, HANDLER).unwrap();
    }
    let mut st = CpuState::reset();
    st.segs[Seg::Cs as usize] = seg(CS, true);
    st.segs[Seg::Ds as usize] = seg(DS, false);
    st.segs[Seg::Es as usize] = seg(ES, false);
    st.segs[Seg::Ss as usize] = seg(SS, false);
    st.eip = IP as u32;
    st.eflags = 0x202;
    for v in st.regs.iter_mut() {
        *v = r.next() as u32;
    }
    // SP: mostly mid-segment; now and then where pushes wrap past 0.
    st.regs[4] = (st.regs[4] & 0xFFFF_0000) | if r.below(4) == 0 { 0x0002 } else { 0x8000 };
    if let Mode::Prot16 { ring, iopl, paging } = mode {
        enter_prot16(&mut m, &mut st, ring, iopl, paging);
    }
    (m, st)
}

/// `code` set up as for `seed` (`setup`), on the translator or the
/// interpreter.
fn session(seed: u64, code: &[u8], mode: Mode, bt: bool) -> Session {
    let (m, st) = setup(seed, code, mode);
    let kind = if bt {
        EngineKind::Bt
    } else {
        EngineKind::Interp
    };
    Session::new(m, kind, Options::default(), &st).unwrap()
}

/// At most `max` instructions (and 10 s), stopping at `breakpoints`.
fn limits(max: u64, breakpoints: Vec<u32>) -> Limits {
    Limits {
        max_icount: Some(max),
        deadline: Some(Instant::now() + Duration::from_secs(10)),
        breakpoints,
    }
}

fn run(seed: u64, mode: Mode, bt: bool) -> (Stop, CpuState, Vec<u8>, u64, u64) {
    let mut s = session(seed, &program(seed, mode), mode, bt);
    let stop = s.run_until(&limits(100_000, vec![])).unwrap();
    let c = s.cpu_state().unwrap();
    let translated = if bt {
        s.stats().get(Counter::TranslatedInstructions).unwrap()
    } else {
        0
    };
    (
        stop,
        c,
        s.m.mem.as_slice()[..COMPARED].to_vec(),
        s.m.icount(),
        translated,
    )
}

fn check(seed: u64, mode: Mode) -> Result<u64, String> {
    let (si, ci, mi, ni, _) = run(seed, mode, false);
    let (sb, cb, mb, nb, translated) = run(seed, mode, true);
    let mut diffs = Vec::new();
    if !matches!(si, Stop::GuestExit { .. }) {
        diffs.push(format!("the interpreter did not reach the exit: {si:?}"));
    }
    if si != sb {
        diffs.push(format!("stop: interp {si:?}, bt {sb:?}"));
    }
    if ci.regs != cb.regs || ci.eip != cb.eip || ci.segs != cb.segs {
        diffs.push(format!(
            "registers: interp {:x?} {:04x}:{:04x}, bt {:x?} {:04x}:{:04x}",
            ci.regs, ci.segs[1].selector, ci.eip, cb.regs, cb.segs[1].selector, cb.eip
        ));
    }
    if ci.eflags != cb.eflags {
        diffs.push(format!(
            "eflags: interp {:#x}, bt {:#x}",
            ci.eflags, cb.eflags
        ));
    }
    if ni != nb {
        diffs.push(format!("instructions: interp {ni}, bt {nb}"));
    }
    if let Some(i) = (0..mi.len()).find(|&i| mi[i] != mb[i]) {
        diffs.push(format!(
            "memory at {i:#x}: interp {:02x}, bt {:02x}",
            mi[i], mb[i]
        ));
    }
    if diffs.is_empty() {
        Ok(translated)
    } else {
        Err(format!("seed {seed} ({mode:?}):\n  {}", diffs.join("\n  ")))
    }
}

/// Every seed in `mode_of`'s mode on both engines (or the seed in
/// environment variable `replay` alone, its code printed): none may
/// differ, and on average more than half of each program must have run as
/// translated code (programs that fault early run little).
fn random_sequences(replay: &str, mode_of: fn(u64) -> Mode) {
    if let Some(seed) = std::env::var(replay).ok().and_then(|s| s.parse().ok()) {
        let mode = mode_of(seed);
        let code = program(seed, mode);
        let dec = iced_x86::Decoder::with_ip(16, &code, IP as u64, 0);
        for i in dec {
            eprintln!("{:04x} {i}", i.ip());
        }
        let translated = check(seed, mode).unwrap();
        let (stop, _, _, n, _) = run(seed, mode, false);
        eprintln!("{mode:?}: {stop:?} after {n} instructions, {translated} of them translated");
        return;
    }
    let results: Vec<Result<u64, String>> = (0..SEEDS).map(|s| check(s, mode_of(s))).collect();
    let failures: Vec<String> = results.iter().filter_map(|r| r.clone().err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {SEEDS} seeds differ ({replay}=N replays one):\n{}",
        failures.len(),
        failures
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    let translated: u64 = results.iter().filter_map(|r| r.as_ref().ok()).sum();
    assert!(
        translated > SEEDS * LEN as u64 / 2,
        "only {translated} instructions ran translated"
    );
}

#[test]
fn random_real_mode_sequences_end_the_same_on_the_translator() {
    random_sequences("RINGLAB_BT16_SEED", |_| Mode::Real);
}

#[test]
fn random_16bit_protected_mode_sequences_end_the_same_on_the_translator() {
    random_sequences("RINGLAB_PM16_SEED", Mode::prot16);
}

/// A word read at offset FFFFh runs past DS's 64 KiB limit: #GP, on the
/// translator as on the interpreter (the handler leaves with AL = EEh),
/// after the loop before it ran as translated code. A push at SP = 1 is
/// #SS likewise (and so is the delivery's push); a push at SP = 0 wraps
/// to FFFEh and is fine.
#[test]
fn accesses_past_the_64k_limit_fault_as_on_the_interpreter() {
    #[rustfmt::skip]
    let cases: [(&str, &[u8]); 3] = [
        ("a word at DS:FFFF", &[
            0xB9, 0x64, 0x00,           // mov cx, 100
            0x40,                       // 1: inc ax
            0xE2, 0xFD,                 //    loop 1b
            0xBB, 0xFF, 0xFF,           //    mov bx, 0xffff
            0x8B, 0x07,                 //    mov ax, [bx]
            0xB0, 0x11,                 //    mov al, 0x11 (not reached)
            0xE6, 0xF4, 0xF4,           //    out 0xf4, al; hlt
        ]),
        ("a push at SP 1", &[
            0xBC, 0x01, 0x00,           // mov sp, 1
            0x50,                       // push ax
            0xB0, 0x11,                 // mov al, 0x11 (not reached)
            0xE6, 0xF4, 0xF4,           // out 0xf4, al; hlt
        ]),
        ("a push at SP 0", &[
            0xBC, 0x00, 0x00,           // mov sp, 0
            0xB8, 0x34, 0x12,           // mov ax, 0x1234
            0x50,                       // push ax
            0x5A,                       // pop dx
            0x88, 0xD0,                 // mov al, dl
            0xE6, 0xF4, 0xF4,           // out 0xf4, al; hlt
        ]),
    ];
    for (what, code) in cases {
        let go = |bt: bool| {
            let mut s = session(7, code, Mode::Real, bt);
            let stop = s.run_until(&limits(10_000, vec![])).unwrap();
            let c = s.cpu_state().unwrap();
            let mem = s.m.mem.as_slice()[..COMPARED].to_vec();
            (stop, c.regs, c.eip, mem, s.m.icount())
        };
        let i = go(false);
        let b = go(true);
        // (The push at SP 1 faults, and so does the delivery's own push:
        // whatever follows, the same on both.)
        match what {
            "a push at SP 0" => assert_eq!(i.0, Stop::GuestExit { value: 0x34 }),
            "a word at DS:FFFF" => assert_eq!(i.0, Stop::GuestExit { value: 0xEE }),
            _ => {}
        }
        assert!(
            i == b,
            "{what}: interp {:?} {:x?}, bt {:?} {:x?}",
            i.0,
            i.1,
            b.0,
            b.1
        );
    }
}

/// The suite's real16 loop shape (LODSW through a moving DS, 16-bit
/// arithmetic, a rotate, DEC/JNZ) runs as translated code: only the
/// segment load and the exit port go to the interpreter.
#[test]
fn a_real_mode_loop_runs_as_translated_code() {
    #[rustfmt::skip]
    let code = lodsw_loop(&[
        0x89, 0xE8,                     // mov ax, bp
        0x05, 0x00, 0x10,               // add ax, 0x1000
    ]);
    runs_translated_but(&code, Mode::Real, 1 + 4 * (5 + 256 * 6 + 2) + 2, 5);
}

/// The suite's real16 loop shape, four passes, the segment each pass
/// reads loaded into AX by `load_ax`:
/// `mov bp, 4; 1: load_ax; mov ds, ax; xor si, si; mov cx, 256;
/// 2: lodsw; add dx, ax; rol dx, 1; xor di, dx; dec cx; jnz 2b;
/// dec bp; jnz 1b; mov ax, di; out 0xf4, al; hlt`.
fn lodsw_loop(load_ax: &[u8]) -> Vec<u8> {
    let mut code = vec![0xBD, 0x04, 0x00];
    code.extend(load_ax);
    #[rustfmt::skip]
    code.extend([
        0x8E, 0xD8,                     // mov ds, ax
        0x31, 0xF6,                     // xor si, si
        0xB9, 0x00, 0x01,               // mov cx, 256
        0xAD,                           // 2: lodsw
        0x01, 0xC2,                     //    add dx, ax
        0xD1, 0xC2,                     //    rol dx, 1
        0x31, 0xD7,                     //    xor di, dx
        0x49,                           //    dec cx
        0x75, 0xF6,                     //    jnz 2b
        0x4D,                           // dec bp
        0x75,                           // jnz 1b (below)
    ]);
    // Back to just after `mov bp, 4`, from the end of this jump.
    code.push((3i32 - (code.len() as i32 + 1)) as u8);
    code.extend([0x89, 0xF8, 0xE6, 0xF4, 0xF4]);
    code
}

/// `code` in `mode` on both engines: the same exit, registers and count
/// (`insns` instructions), and only `interpreted` of them the
/// interpreter's on the translator (here the loops' segment loads and the
/// exit port).
fn runs_translated_but(code: &[u8], mode: Mode, insns: u64, interpreted: u64) {
    let go = |bt: bool| {
        let mut s = session(11, code, mode, bt);
        let stop = s.run_until(&limits(100_000, vec![])).unwrap();
        let c = s.cpu_state().unwrap();
        (stop, c.regs, s.m.icount(), s.stats())
    };
    let (si, ri, ni, _) = go(false);
    let (sb, rb, nb, stats) = go(true);
    assert!(matches!(si, Stop::GuestExit { .. }), "{mode:?}: {si:?}");
    assert_eq!((si, ri, ni), (sb, rb, nb), "{mode:?}");
    assert_eq!(ni, insns, "{mode:?}");
    assert_eq!(
        stats.get(Counter::InterpreterInstructions),
        Some(interpreted),
        "{mode:?}: {stats:?}"
    );
}

/// A breakpoint inside a translated real-mode loop (a linear address:
/// CS base plus IP) stops the translator where it stops the interpreter,
/// at the same instruction count, each time round; blocks end before it.
#[test]
fn breakpoints_in_real_mode_code_stop_where_the_interpreter_stops() {
    #[rustfmt::skip]
    let code: &[u8] = &[
        0xB9, 0x05, 0x00,               // mov cx, 5
        0x40,                           // 1: inc ax
        0x01, 0xC3,                     //    add bx, ax (the breakpoint)
        0xE2, 0xFB,                     //    loop 1b
        0xE6, 0xF4, 0xF4,               //    out 0xf4, al; hlt
    ];
    let bp = (CS as u32) * 16 + IP as u32 + 4;
    let go = |bt: bool| {
        let mut s = session(3, code, Mode::Real, bt);
        let mut stops = Vec::new();
        for _ in 0..7 {
            let stop = s.run_until(&limits(10_000, vec![bp])).unwrap();
            let c = s.cpu_state().unwrap();
            let at_bp = matches!(stop, Stop::Breakpoint { .. });
            stops.push((stop, s.m.icount(), c.eip, c.regs[0], c.regs[3]));
            if !at_bp {
                break;
            }
        }
        stops
    };
    let i = go(false);
    let b = go(true);
    assert_eq!(i.len(), 6, "five stops, then the exit: {i:x?}");
    assert_eq!(i[0].0, Stop::Breakpoint { addr: bp });
    assert_eq!((i[0].1, i[0].2), (2, IP as u32 + 4));
    assert_eq!(i, b);
}

/// A loop of LODSW and 16-bit arithmetic in 16-bit protected mode, its
/// code segment's base (7C00h) not its selector times 16, at CPL 0 and at
/// CPL 3: translated code, but for the four segment loads and the exit
/// port, which the interpreter runs.
#[test]
fn a_16bit_protected_mode_loop_runs_as_translated_code() {
    for (ring, iopl) in [(0, 0), (3, 3)] {
        // mov ax, P_DS | ring
        let code = lodsw_loop(&[0xB8, (P_DS | ring) as u8, 0x00]);
        let mode = Mode::Prot16 {
            ring,
            iopl,
            paging: false,
        };
        runs_translated_but(&code, mode, 1 + 4 * (4 + 256 * 6 + 2) + 2, 5);
    }
}

/// The same code (at linear 9000h) reached through two code segments of
/// different bases (8000h and 8800h, so different IPs): each runs its own
/// translation, since the return address a CALL pushes is an IP. The
/// routine adds the IP its CALL pushed to DI: 1003h under the first
/// segment, 803h under the second, three times each.
#[test]
fn one_code_page_under_two_code_segment_bases_runs_two_translations() {
    #[rustfmt::skip]
    let code: &[u8] = &[
        0xBD, 0x03, 0x00,               // mov bp, 3
        0x9A, 0x00, 0x10, P_CSA as u8, 0x00, // 1: call P_CSA:1000h
        0x9A, 0x00, 0x08, P_CSB as u8, 0x00, //    call P_CSB:0800h
        0x4D,                           //    dec bp
        0x75, 0xF3,                     //    jnz 1b
        0x89, 0xF8,                     //    mov ax, di
        0xE6, 0xF4, 0xF4,               //    out 0xf4, al; hlt
    ];
    #[rustfmt::skip]
    let routine: &[u8] = &[
        0xE8, 0x00, 0x00,               // call 1f
        0x58,                           // 1: pop ax
        0x01, 0xC7,                     //    add di, ax
        0xCB,                           //    retf
    ];
    let mode = Mode::Prot16 {
        ring: 0,
        iopl: 0,
        paging: false,
    };
    let go = |bt: bool| {
        let mut s = session(5, code, mode, bt);
        s.m.mem.write(0x9000, routine).unwrap();
        let di0 = s.cpu_state().unwrap().regs[7];
        let stop = s.run_until(&limits(10_000, vec![])).unwrap();
        let c = s.cpu_state().unwrap();
        (stop, c.regs, di0, s.m.icount(), s.stats())
    };
    let (si, ri, di0, ni, _) = go(false);
    let (sb, rb, _, nb, stats) = go(true);
    let di = (di0 as u16).wrapping_add(3 * (0x1003 + 0x803));
    assert_eq!(
        si,
        Stop::GuestExit {
            value: di as u32 & 0xFF
        }
    );
    assert_eq!(ri[7] as u16, di);
    assert_eq!((si, ri, ni), (sb, rb, nb));
    // The far calls and returns (six each) and the exit port: the
    // interpreter's; the routine's CALL, POP and ADD translated.
    assert_eq!(
        stats.get(Counter::InterpreterInstructions),
        Some(13),
        "{stats:?}"
    );
}

/// Real-mode reads, which translated code makes straight from guest RAM
/// below the VGA window (0xA0000) and through the TLB elsewhere: a dword
/// ending at 0x9FFFF, one straddling 0xA0000, one at 0x3FFFE, the BIOS
/// ROM, VGA text memory (a device), each through DS, in a loop. The translator ends with
/// the interpreter's registers and count, having translated the loop;
/// with a read watchpoint on the low dword, it stops where the interpreter
/// stops.
#[test]
fn real_mode_reads_in_and_out_of_low_ram_match_the_interpreter() {
    #[rustfmt::skip]
    let code: &[u8] = &[
        0xBD, 0x03, 0x00,                   // mov bp, 3
        0x66, 0x31, 0xD2,                   // xor edx, edx
        0xB8, 0x00, 0x90,                   // 1: mov ax, 0x9000
        0x8E, 0xD8,                         //    mov ds, ax
        0x66, 0xA1, 0xFC, 0xFF,             //    mov eax, [0xFFFC]: 0x9FFFC
        0x66, 0x01, 0xC2,                   //    add edx, eax
        0xB8, 0xF0, 0x9F,                   //    mov ax, 0x9FF0
        0x8E, 0xD8,                         //    mov ds, ax
        0x66, 0xA1, 0xFE, 0x00,             //    mov eax, [0xFE]: 0x9FFFE
        0x66, 0x01, 0xC2,                   //    add edx, eax
        0xB8, 0xF0, 0x3F,                   //    mov ax, 0x3FF0
        0x8E, 0xD8,                         //    mov ds, ax
        0x66, 0xA1, 0xFE, 0x00,             //    mov eax, [0xFE]: 0x3FFFE
        0x66, 0x01, 0xC2,                   //    add edx, eax
        0xB8, 0x00, 0xF0,                   //    mov ax, 0xF000
        0x8E, 0xD8,                         //    mov ds, ax
        0x66, 0xA1, 0xF0, 0xFF,             //    mov eax, [0xFFF0]: the ROM
        0x66, 0x01, 0xC2,                   //    add edx, eax
        0xB8, 0x00, 0xB8,                   //    mov ax, 0xB800
        0x8E, 0xD8,                         //    mov ds, ax
        0xA1, 0x00, 0x00,                   //    mov ax, [0]: VGA text
        0x01, 0xC2,                         //    add dx, ax
        0x4D,                               //    dec bp
        0x75, 0xC3,                         //    jnz 1b
        0x89, 0xD0,                         // mov ax, dx
        0xE6, 0xF4,                         // out 0xf4, al
        0xF4,                               // hlt
    ];
    // (jnz 1b at 65: back 0x3D bytes, to `mov ax, 0x9000` at 6.)
    assert_eq!((code[65], 67 - (0x100 - code[66] as usize)), (0x75, 6));
    let go = |bt: bool, watch: &[machine::Watchpoint]| {
        let (mut m, st) = setup(5, code, Mode::Real);
        m.mem.write(0x9FFF8, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        m.set_watchpoints(watch.to_vec());
        let kind = if bt {
            EngineKind::Bt
        } else {
            EngineKind::Interp
        };
        let mut s = Session::new(m, kind, Options::default(), &st).unwrap();
        let stop = s.run_until(&limits(100_000, vec![])).unwrap();
        let c = s.cpu_state().unwrap();
        let translated = s.stats().get(Counter::TranslatedInstructions).unwrap_or(0);
        ((stop, c.regs, c.eip, s.m.icount()), translated)
    };
    let watch = [machine::Watchpoint {
        addr: 0x9FFFC,
        len: 4,
        kind: machine::WatchKind::Read,
    }];
    let (i, _) = go(false, &[]);
    let (b, translated) = go(true, &[]);
    assert_eq!(i, b);
    assert!(matches!(i.0, Stop::GuestExit { .. }), "{:?}", i.0);
    // All but the 15 segment loads, the 3 reads straddling 0xA0000 and
    // the OUT, on the translator.
    assert_eq!((i.3, translated), (70, 70 - 19));
    let (i, _) = go(false, &watch);
    let (b, _) = go(true, &watch);
    assert_eq!(i, b, "watching {watch:?}");
    assert!(matches!(i.0, Stop::Watchpoint { .. }), "{:?}", i.0);
}
