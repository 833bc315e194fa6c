//! Differential test of the binary translator against the interpreter:
//! random sequences of valid 32-bit instructions (ALU, shifts, multiply,
//! memory operands including MOV's moffs forms, PUSH/POP, SETcc/CMOVcc, forward conditional branches),
//! encoded with iced-x86, run from the same state on both engines, must
//! end in the same registers, flags, memory and instruction count.
//!
//! The generator tracks which status flags the SDM leaves undefined after
//! each instruction (after MUL, after a shift by more than one, ...): no
//! instruction that reads an undefined flag is generated. The final EFLAGS
//! are compared whole: the translator makes the flags the SDM leaves
//! undefined the interpreter's, whatever the host CPU computes there (an
//! AMD CPU differs from an Intel one after shifts, multiplies and BT).
//!
//! A failure names the seed; `RINGLAB_BT_SEED=N` runs that seed alone and
//! prints its code.

use iced_x86::{Code, Encoder, Instruction, MemoryOperand, Register};
use machine::cpu::CpuState;
use machine::{Counter, Limits, Machine, MachineConfig, Stop};
use ringlab::engines::EngineKind;
use ringlab::session::{Options, Session};
use std::time::{Duration, Instant};

/// `m` on the translator (`bt`) or the interpreter, entered with `st`.
fn on(m: Machine, bt: bool, st: &CpuState) -> Session {
    let kind = if bt {
        EngineKind::Bt
    } else {
        EngineKind::Interp
    };
    Session::new(m, kind, Options::default(), st).unwrap()
}

/// The bounds of one run, from now.
fn limits() -> Limits {
    Limits {
        max_icount: Some(100_000),
        deadline: Some(Instant::now() + Duration::from_secs(10)),
        breakpoints: vec![],
    }
}

const LOAD: u32 = 0x10_0000;
/// EBP points here for the whole run: 256 bytes of scratch data.
const SCRATCH: u32 = 0x20_0000;
const STACK: u32 = 0x9_0000;
const SEEDS: u64 = 400;
const LEN: usize = 80;

const CF: u32 = 1;
const PF: u32 = 4;
const AF: u32 = 0x10;
const ZF: u32 = 0x40;
const SF: u32 = 0x80;
const OF: u32 = 0x800;
const STATUS: u32 = CF | PF | AF | ZF | SF | OF;

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03 | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn u32(&mut self) -> u32 {
        // Edge values often: carries, overflows, zero, sign changes.
        match self.below(6) {
            0 => 0,
            1 => 0xFFFF_FFFF,
            2 => 0x8000_0000,
            3 => 0x7FFF_FFFF,
            _ => self.next() as u32,
        }
    }
}

/// Registers the generator may write: not ESP (the stack) or EBP (the
/// scratch base).
const REGS: [Register; 6] = [
    Register::EAX,
    Register::ECX,
    Register::EDX,
    Register::EBX,
    Register::ESI,
    Register::EDI,
];
const REGS8: [Register; 4] = [Register::AL, Register::CL, Register::DL, Register::BH];

fn reg(r: &mut Rng) -> Register {
    REGS[r.below(REGS.len() as u64) as usize]
}

fn mem(r: &mut Rng) -> MemoryOperand {
    // Dword-aligned offsets in the scratch area.
    MemoryOperand::with_base_displ(Register::EBP, (r.below(60) * 4) as i64)
}

/// One generated instruction: the flags it reads, the flags it writes, and
/// which of those it leaves undefined.
struct Gen {
    insn: Instruction,
    reads: u32,
    writes: u32,
    undefined: u32,
}

const SETCC: [Code; 16] = [
    Code::Seto_rm8,
    Code::Setno_rm8,
    Code::Setb_rm8,
    Code::Setae_rm8,
    Code::Sete_rm8,
    Code::Setne_rm8,
    Code::Setbe_rm8,
    Code::Seta_rm8,
    Code::Sets_rm8,
    Code::Setns_rm8,
    Code::Setp_rm8,
    Code::Setnp_rm8,
    Code::Setl_rm8,
    Code::Setge_rm8,
    Code::Setle_rm8,
    Code::Setg_rm8,
];
const CMOVCC: [Code; 16] = [
    Code::Cmovo_r32_rm32,
    Code::Cmovno_r32_rm32,
    Code::Cmovb_r32_rm32,
    Code::Cmovae_r32_rm32,
    Code::Cmove_r32_rm32,
    Code::Cmovne_r32_rm32,
    Code::Cmovbe_r32_rm32,
    Code::Cmova_r32_rm32,
    Code::Cmovs_r32_rm32,
    Code::Cmovns_r32_rm32,
    Code::Cmovp_r32_rm32,
    Code::Cmovnp_r32_rm32,
    Code::Cmovl_r32_rm32,
    Code::Cmovge_r32_rm32,
    Code::Cmovle_r32_rm32,
    Code::Cmovg_r32_rm32,
];
const JCC: [Code; 16] = [
    Code::Jo_rel32_32,
    Code::Jno_rel32_32,
    Code::Jb_rel32_32,
    Code::Jae_rel32_32,
    Code::Je_rel32_32,
    Code::Jne_rel32_32,
    Code::Jbe_rel32_32,
    Code::Ja_rel32_32,
    Code::Js_rel32_32,
    Code::Jns_rel32_32,
    Code::Jp_rel32_32,
    Code::Jnp_rel32_32,
    Code::Jl_rel32_32,
    Code::Jge_rel32_32,
    Code::Jle_rel32_32,
    Code::Jg_rel32_32,
];

fn gen(r: &mut Rng) -> Gen {
    let i2 = |c, a: Register, b: Register| Instruction::with2(c, a, b).unwrap();
    // (instruction, flags read, flags written, written flags left undefined)
    let (insn, reads, writes, undefined) = match r.below(20) {
        0..=3 => {
            let codes = [
                Code::Add_rm32_r32,
                Code::Or_rm32_r32,
                Code::Adc_rm32_r32,
                Code::Sbb_rm32_r32,
                Code::And_rm32_r32,
                Code::Sub_rm32_r32,
                Code::Xor_rm32_r32,
                Code::Cmp_rm32_r32,
                Code::Test_rm32_r32,
            ];
            let c = codes[r.below(codes.len() as u64) as usize];
            let reads = if matches!(c, Code::Adc_rm32_r32 | Code::Sbb_rm32_r32) {
                CF
            } else {
                0
            };
            let logic = matches!(
                c,
                Code::Or_rm32_r32 | Code::And_rm32_r32 | Code::Xor_rm32_r32 | Code::Test_rm32_r32
            );
            let insn = if r.below(3) == 0 {
                Instruction::with2(c, mem(r), reg(r)).unwrap()
            } else {
                i2(c, reg(r), reg(r))
            };
            // AF is undefined after the logic operations.
            (insn, reads, STATUS, if logic { AF } else { 0 })
        }
        4 => {
            let codes = [
                Code::Add_rm32_imm32,
                Code::Sub_rm32_imm32,
                Code::Xor_rm32_imm32,
                Code::Cmp_rm32_imm32,
            ];
            let c = codes[r.below(4) as usize];
            let xor = c == Code::Xor_rm32_imm32;
            let insn = Instruction::with2(c, reg(r), r.u32()).unwrap();
            (insn, 0, STATUS, if xor { AF } else { 0 })
        }
        // MOV with a moffs operand (A0-A3: an absolute address, no ModRM)
        // now and then.
        5 if r.below(3) == 0 => {
            let (c, reg) = [
                (Code::Mov_EAX_moffs32, Register::EAX),
                (Code::Mov_AL_moffs8, Register::AL),
            ][r.below(2) as usize];
            let at = SCRATCH as u64 + r.below(252);
            let insn = Instruction::with2(c, reg, MemoryOperand::with_displ(at, 4)).unwrap();
            (insn, 0, 0, 0)
        }
        6 if r.below(3) == 0 => {
            let (c, reg) = [
                (Code::Mov_moffs32_EAX, Register::EAX),
                (Code::Mov_moffs16_AX, Register::AX),
            ][r.below(2) as usize];
            let at = SCRATCH as u64 + r.below(252);
            let insn = Instruction::with2(c, MemoryOperand::with_displ(at, 4), reg).unwrap();
            (insn, 0, 0, 0)
        }
        5 => (
            Instruction::with2(Code::Mov_r32_rm32, reg(r), mem(r)).unwrap(),
            0,
            0,
            0,
        ),
        6 => (
            Instruction::with2(Code::Mov_rm32_r32, mem(r), reg(r)).unwrap(),
            0,
            0,
            0,
        ),
        7 => (
            Instruction::with2(Code::Mov_r32_imm32, reg(r), r.u32()).unwrap(),
            0,
            0,
            0,
        ),
        8 => {
            let c = [Code::Inc_rm32, Code::Dec_rm32, Code::Neg_rm32][r.below(3) as usize];
            // INC/DEC keep CF.
            let writes = if c == Code::Neg_rm32 {
                STATUS
            } else {
                STATUS & !CF
            };
            (Instruction::with1(c, reg(r)).unwrap(), 0, writes, 0)
        }
        9 => (Instruction::with1(Code::Not_rm32, reg(r)).unwrap(), 0, 0, 0),
        10 => {
            let codes = [
                Code::Shl_rm32_imm8,
                Code::Shr_rm32_imm8,
                Code::Sar_rm32_imm8,
                Code::Rol_rm32_imm8,
                Code::Ror_rm32_imm8,
            ];
            let c = codes[r.below(5) as usize];
            let n = 1 + r.below(31) as u32;
            let insn = Instruction::with2(c, reg(r), n).unwrap();
            let rotate = matches!(c, Code::Rol_rm32_imm8 | Code::Ror_rm32_imm8);
            // OF is defined for 1-bit shifts only; AF is undefined after
            // a shift; rotates touch only CF and OF.
            let of = if n > 1 { OF } else { 0 };
            if rotate {
                (insn, 0, CF | OF, of)
            } else {
                (insn, 0, STATUS, of | AF)
            }
        }
        11 => {
            // IMUL r32, r32: SF, ZF, AF, PF undefined.
            let insn = i2(Code::Imul_r32_rm32, reg(r), reg(r));
            (insn, 0, STATUS, SF | ZF | AF | PF)
        }
        12 => {
            let c = [Code::Mul_rm32, Code::Imul_rm32][r.below(2) as usize];
            (
                Instruction::with1(c, reg(r)).unwrap(),
                0,
                STATUS,
                SF | ZF | AF | PF,
            )
        }
        13 => {
            let cc = r.below(16) as u32;
            let dst = REGS8[r.below(4) as usize];
            (
                Instruction::with1(SETCC[cc as usize], dst).unwrap(),
                cc_reads(cc),
                0,
                0,
            )
        }
        14 => {
            let cc = r.below(16) as u32;
            (i2(CMOVCC[cc as usize], reg(r), reg(r)), cc_reads(cc), 0, 0)
        }
        15 => {
            let a = reg(r);
            let b = reg(r);
            let insn = Instruction::with2(
                Code::Lea_r32_m,
                a,
                MemoryOperand::with_base_index_scale_displ_size(
                    b,
                    reg(r),
                    1 << r.below(4),
                    r.u32() as i32 as i64,
                    4,
                ),
            )
            .unwrap();
            (insn, 0, 0, 0)
        }
        16 if r.below(2) == 0 => (Instruction::with1(Code::Push_r32, reg(r)).unwrap(), 0, 0, 0),
        16 => (
            Instruction::with1(Code::Push_rm32, mem(r)).unwrap(),
            0,
            0,
            0,
        ),
        17 => (Instruction::with1(Code::Pop_r32, reg(r)).unwrap(), 0, 0, 0),
        18 => (
            Instruction::with2(Code::Movzx_r32_rm8, reg(r), REGS8[r.below(4) as usize]).unwrap(),
            0,
            0,
            0,
        ),
        _ => (
            Instruction::with1(Code::Bswap_r32, reg(r)).unwrap(),
            0,
            0,
            0,
        ),
    };
    Gen {
        insn,
        reads,
        writes,
        undefined,
    }
}

/// The flags condition code `cc` (the low nibble of Jcc/SETcc/CMOVcc)
/// reads.
fn cc_reads(cc: u32) -> u32 {
    match cc >> 1 {
        0 => OF,
        1 => CF,
        2 => ZF,
        3 => CF | ZF,
        4 => SF,
        5 => PF,
        6 => SF | OF,
        _ => ZF | SF | OF,
    }
}

/// The program for `seed` and the flags undefined at its end.
fn program(seed: u64) -> (Vec<u8>, u32) {
    let mut r = Rng::new(seed);
    let mut undefined = STATUS; // nothing defined before the first writer
    let mut code: Vec<Instruction> = Vec::new();
    // For each LOOP: its code index and the index of the instruction it
    // loops back to.
    let mut loops: Vec<(usize, usize)> = Vec::new();
    let mut pushed = 0;
    // Forward branches pending: (instructions still to skip, the flags
    // undefined where the branch was taken). At the target the flags
    // undefined on either path count as undefined.
    let mut merges: Vec<(usize, u32)> = Vec::new();
    let push = |code: &mut Vec<Instruction>,
                merges: &mut Vec<(usize, u32)>,
                i: Instruction,
                undefined: &mut u32| {
        code.push(i);
        for m in merges.iter_mut() {
            m.0 -= 1;
            if m.0 == 0 {
                *undefined |= m.1;
            }
        }
        merges.retain(|m| m.0 > 0);
    };
    while code.len() < LEN {
        let g = gen(&mut r);
        if g.reads & undefined != 0 {
            continue;
        }
        // Keep the stack balanced and shallow.
        match g.insn.code() {
            Code::Push_r32 | Code::Push_rm32 if pushed >= 8 => continue,
            Code::Pop_r32 if pushed == 0 => continue,
            Code::Push_r32 | Code::Push_rm32 => pushed += 1,
            Code::Pop_r32 => pushed -= 1,
            _ => {}
        }
        undefined = (undefined & !g.writes) | g.undefined;
        push(&mut code, &mut merges, g.insn, &mut undefined);
        // Now and then a string instruction on the scratch area, or a short
        // LOOP (not where a pending branch could land inside it).
        if r.below(10) == 0 && merges.is_empty() {
            let w = 1 << r.below(3);
            let disp =
                |r: &mut Rng| MemoryOperand::with_base_displ(Register::EBP, r.below(200) as i64);
            let lea = |dst, r: &mut Rng| Instruction::with2(Code::Lea_r32_m, dst, disp(r)).unwrap();
            let i1 = |c, a: Register| Instruction::with1(c, a).unwrap();
            let group: Vec<Instruction> = match r.below(7) {
                // A stack frame that reads EFLAGS whole (PUSHFD, a call
                // into the monitor on the translator), left with LEAVE;
                // only while every status flag is defined.
                4 if undefined == 0 => vec![
                    i1(Code::Push_r32, Register::EBP),
                    Instruction::with2(Code::Mov_r32_rm32, Register::EBP, Register::ESP).unwrap(),
                    Instruction::with(Code::Pushfd),
                    i1(Code::Pop_r32, Register::EAX),
                    Instruction::with(Code::Leaved),
                ],
                // Locked read-modify-writes of memory (a spinlock's XCHG,
                // a LOCK ADD) and CLI (the CPU is in ring 0, IF set).
                5 => {
                    let mut add =
                        Instruction::with2(Code::Add_rm32_r32, mem(&mut r), reg(&mut r)).unwrap();
                    add.set_has_lock_prefix(true);
                    let mut xchg =
                        Instruction::with2(Code::Xchg_rm32_r32, mem(&mut r), reg(&mut r)).unwrap();
                    xchg.set_has_lock_prefix(r.below(2) == 0);
                    vec![add, xchg]
                }
                6 => vec![Instruction::with(Code::Cli)],
                4 => vec![],
                0 => vec![
                    lea(Register::ESI, &mut r),
                    lea(Register::EDI, &mut r),
                    Instruction::with_movsb(32, Register::None, iced_x86::RepPrefixKind::None)
                        .unwrap(),
                ],
                1 => vec![
                    lea(Register::ESI, &mut r),
                    match w {
                        1 => Instruction::with_lodsb(
                            32,
                            Register::None,
                            iced_x86::RepPrefixKind::None,
                        ),
                        2 => Instruction::with_lodsw(
                            32,
                            Register::None,
                            iced_x86::RepPrefixKind::None,
                        ),
                        _ => Instruction::with_lodsd(
                            32,
                            Register::None,
                            iced_x86::RepPrefixKind::None,
                        ),
                    }
                    .unwrap(),
                ],
                2 => vec![
                    lea(Register::EDI, &mut r),
                    match w {
                        1 => Instruction::with_stosb(32, iced_x86::RepPrefixKind::None),
                        2 => Instruction::with_stosw(32, iced_x86::RepPrefixKind::None),
                        _ => Instruction::with_stosd(32, iced_x86::RepPrefixKind::None),
                    }
                    .unwrap(),
                ],
                _ => {
                    let n = 1 + r.below(4) as u32;
                    let body = Instruction::with2(Code::Add_rm32_r32, Register::EAX, Register::EBX)
                        .unwrap();
                    let k = code.len();
                    loops.push((k + 2, k + 1));
                    vec![
                        Instruction::with2(Code::Mov_r32_imm32, Register::ECX, n).unwrap(),
                        body,
                        Instruction::with_branch(Code::Loop_rel8_32_ECX, 0).unwrap(),
                    ]
                }
            };
            if matches!(group.last().map(|i| i.code()), Some(Code::Loop_rel8_32_ECX)) {
                undefined = 0; // ADD writes every status flag
            }
            for i in group {
                push(&mut code, &mut merges, i, &mut undefined);
            }
        }
        // Now and then a forward conditional branch over the next few
        // instructions (their effects then depend on defined flags only).
        if r.below(8) == 0 {
            let cc = r.below(16) as u32;
            if cc_reads(cc) & undefined == 0 {
                let k = code.len();
                let here = undefined;
                let jcc = Instruction::with_branch(JCC[cc as usize], 0).unwrap();
                push(&mut code, &mut merges, jcc, &mut undefined);
                merges.push((k % 3 + 1, here));
            }
        }
    }
    for m in &merges {
        undefined |= m.1;
    }
    // Encode, fixing each Jcc to skip the next 1-3 instructions.
    let mut bytes = Vec::new();
    let mut offsets = Vec::new();
    let mut enc = Encoder::new(32);
    let mut ip = LOAD as u64;
    // First pass: sizes (branches as rel32, 6 bytes).
    for i in &code {
        offsets.push(ip);
        let len = if i.is_jcc_short_or_near() {
            6
        } else if i.code() == Code::Loop_rel8_32_ECX {
            2
        } else {
            enc.encode(i, ip).unwrap()
        };
        let _ = enc.take_buffer();
        ip += len as u64;
    }
    let end = ip;
    for (k, i) in code.iter().enumerate() {
        let mut i = *i;
        if i.is_jcc_short_or_near() {
            let skip = k + 1 + (k % 3) + 1;
            let target = offsets.get(skip).copied().unwrap_or(end);
            i.set_near_branch32(target as u32);
        }
        if let Some(&(_, to)) = loops.iter().find(|(at, _)| *at == k) {
            i.set_near_branch32(offsets[to] as u32);
        }
        enc.encode(&i, offsets[k]).unwrap();
        bytes.extend_from_slice(&enc.take_buffer());
    }
    // Unwind the stack so the final state does not depend on it, then
    // leave through the exit port.
    for _ in 0..pushed {
        bytes.extend_from_slice(&[0x83, 0xC4, 0x04]); // add esp, 4 (flags!)
    }
    if pushed > 0 {
        undefined = 0; // ADD writes every status flag, all defined.
    }
    bytes.extend_from_slice(&[0xE6, 0xF4, 0xF4]); // out 0xf4, al; hlt
    (bytes, undefined)
}

/// The run's stop, final state, low memory, instruction count, and the
/// instructions that ran as translated code.
fn run(seed: u64, bt: bool) -> (Stop, CpuState, Vec<u8>, u64, u64) {
    let (code, _) = program(seed);
    let mut m = Machine::new(MachineConfig::with_ram(4 << 20)).unwrap();
    m.mem.write(LOAD as u64, &code).unwrap();
    let mut r = Rng::new(seed ^ 0x5555);
    for k in 0..64 {
        m.mem.write_u32((SCRATCH + 4 * k) as u64, r.u32()).unwrap();
    }
    let mut st = CpuState::multiboot(LOAD, 0, 0);
    for (k, v) in st.regs.iter_mut().enumerate() {
        *v = r.u32();
        if k == 4 {
            *v = STACK;
        }
        if k == 5 {
            *v = SCRATCH;
        }
    }
    let mut e = on(m, bt, &st);
    let stop = e.run_until(&limits()).unwrap();
    let s = e.cpu_state().unwrap();
    let m = &e.m;
    // The interpreter translates nothing; the translator must say.
    let translated = if bt {
        e.stats()
            .get(Counter::TranslatedInstructions)
            .expect("the translator counts translated instructions")
    } else {
        0
    };
    (
        stop,
        s,
        m.mem.as_slice()[..(SCRATCH as usize + 0x1000)].to_vec(),
        m.icount(),
        translated,
    )
}

/// Compares the two engines on `seed`; Ok(instructions the translator ran
/// as translated code).
fn check(seed: u64) -> Result<u64, String> {
    let (si, ci, mi, ni, _) = run(seed, false);
    let (sb, cb, mb, nb, translated) = run(seed, true);
    let mut diffs = Vec::new();
    if si != sb {
        diffs.push(format!("stop: interp {si:?}, bt {sb:?}"));
    }
    if si
        != (Stop::GuestExit {
            value: ci.regs[0] & 0xFF,
        })
    {
        diffs.push(format!("the interpreter did not reach the exit: {si:?}"));
    }
    if ci.regs != cb.regs || ci.eip != cb.eip {
        diffs.push(format!(
            "registers: interp {:x?} eip {:#x}, bt {:x?} eip {:#x}",
            ci.regs, ci.eip, cb.regs, cb.eip
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
        Err(format!("seed {seed}:\n  {}", diffs.join("\n  ")))
    }
}

#[test]
fn random_valid_sequences_end_the_same_on_the_translator() {
    if let Some(seed) = std::env::var("RINGLAB_BT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        let (code, undefined) = program(seed);
        let mut dec = iced_x86::Decoder::with_ip(32, &code, LOAD as u64, 0);
        for i in &mut dec {
            eprintln!("{:08x} {i}", i.ip());
        }
        eprintln!("undefined at the end: {undefined:#x}");
        let translated = check(seed).unwrap();
        eprintln!("{translated} instructions ran as translated code");
        return;
    }
    let results: Vec<Result<u64, String>> = (0..SEEDS).map(check).collect();
    let failures: Vec<String> = results.iter().filter_map(|r| r.clone().err()).collect();
    // The point is the translated code: most of each program must run as
    // such (the exit port and HLT are the interpreter's).
    let translated: u64 = results.iter().filter_map(|r| r.as_ref().ok()).sum();
    assert!(
        translated > SEEDS * LEN as u64 * 3 / 4,
        "only {translated} instructions ran translated"
    );
    assert!(
        failures.is_empty(),
        "{} of {SEEDS} seeds differ (RINGLAB_BT_SEED=N replays one):\n{}",
        failures.len(),
        failures
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// A counted loop (LOOP), a JECXZ, and a copy with LODSB/STOSB run as
/// translated code: only the exit port goes to the interpreter.
#[test]
fn loops_and_string_moves_stay_in_translated_code() {
    #[rustfmt::skip]
    let code: &[u8] = &[
        0xB9, 0xE8, 0x03, 0x00, 0x00,       // mov ecx, 1000
        0x83, 0xC0, 0x01,                   // 1: add eax, 1
        0xE2, 0xFB,                         //    loop 1b
        0xE3, 0x02,                         //    jecxz 2f (taken: ECX = 0)
        0x0F, 0x0B,                         //    ud2 (skipped)
        0xBE, 0x00, 0x00, 0x20, 0x00,       // 2: mov esi, 0x200000
        0xBF, 0x00, 0x01, 0x20, 0x00,       //    mov edi, 0x200100
        0xB9, 0x10, 0x00, 0x00, 0x00,       //    mov ecx, 16
        0xAC,                               // 3: lodsb
        0xAA,                               //    stosb
        0xE2, 0xFC,                         //    loop 3b
        0xE6, 0xF4,                         //    out 0xf4, al
        0xF4,                               //    hlt
    ];
    let run = |bt: bool| {
        let mut m = Machine::new(MachineConfig::with_ram(4 << 20)).unwrap();
        m.mem.write(LOAD as u64, code).unwrap();
        for k in 0..16u32 {
            m.mem
                .write_u8((SCRATCH + k) as u64, 0x41 + k as u8)
                .unwrap();
        }
        let mut st = CpuState::multiboot(LOAD, 0, 0);
        st.regs[4] = STACK;
        let mut e = on(m, bt, &st);
        let stop = e.run_until(&limits()).unwrap();
        let regs = e.cpu_state().unwrap().regs;
        let copied =
            e.m.mem
                .slice((SCRATCH + 0x100) as u64, 16)
                .unwrap()
                .to_vec();
        (stop, regs, copied, e.m.icount(), e.stats())
    };
    let (si, ri, ci, ni, _) = run(false);
    let (sb, rb, cb, nb, stats) = run(true);
    assert_eq!((si, ri, &ci, ni), (sb, rb, &cb, nb));
    assert_eq!(ci, b"ABCDEFGHIJKLMNOP");
    assert_eq!(
        stats.get(Counter::InterpreterInstructions),
        Some(1),
        "only OUT runs on the interpreter: {stats:?}"
    );
}

/// A session of `code` at LOAD in 4 MiB, from the multiboot state with
/// ESP at STACK and `eflags` set besides, its trace keeping a record of
/// each event only when `each`.
fn at_load(code: &[u8], bt: bool, each: bool, eflags: u32) -> Session {
    let mut m = Machine::new(MachineConfig::with_ram(4 << 20)).unwrap();
    m.mem.write(LOAD as u64, code).unwrap();
    if !each {
        m.trace.set_enabled(machine::EventMask::NONE);
    }
    let mut st = CpuState::multiboot(LOAD, 0, 0);
    st.regs[4] = STACK;
    st.eflags |= eflags;
    on(m, bt, &st)
}

/// PUSHFD in translated code pushes what the interpreter pushes: the
/// status flags as the last instruction left them, IF as CLI left it, the
/// other bits as the CPU holds them (IOPL 3 here), with or without a trace
/// that keeps each sensitive instruction. Without, the translator runs it
/// inline (reading the monitor's copy of the system flags) and hands the
/// trace its count; with, it is a callout recorded one by one. The counts
/// are the interpreter's either way.
#[test]
fn pushfd_pushes_the_interpreters_image_inline_or_called_out() {
    #[rustfmt::skip]
    let code: &[u8] = &[
        0xB9, 0x20, 0x00, 0x00, 0x00,       // mov ecx, 32
        0xBF, 0x00, 0x00, 0x20, 0x00,       // mov edi, SCRATCH
        0x89, 0xC8,                         // 1: mov eax, ecx
        0x6B, 0xC0, 0x25,                   //    imul eax, eax, 0x25
        0x2D, 0x10, 0x01, 0x00, 0x00,       //    sub eax, 0x110 (flags vary)
        0x9C,                               //    pushfd
        0x8F, 0x07,                         //    pop dword [edi]
        0xFA,                               //    cli
        0x9C,                               //    pushfd
        0x8F, 0x47, 0x04,                   //    pop dword [edi+4]
        0xFB,                               //    sti
        0x83, 0xC7, 0x08,                   //    add edi, 8
        0x49,                               //    dec ecx
        0x75, 0xE7,                         //    jnz 1b
        0xE6, 0xF4,                         //    out 0xf4, al
        0xF4,                               //    hlt
    ];
    let run = |bt: bool, each: bool| {
        let mut e = at_load(code, bt, each, 0x3000 | 0x200); // IOPL 3, IF
        let stop = e.run_until(&limits()).unwrap();
        let pushed = e.m.mem.slice(SCRATCH as u64, 32 * 8).unwrap().to_vec();
        let pushf: u64 =
            e.m.trace
                .sensitive_counts()
                .iter()
                .filter(|((insn, _), _)| insn == "pushf")
                .map(|(_, n)| *n)
                .sum();
        // PUSHFDs the translated code ran (its callouts, inline or not).
        let translated =
            e.m.trace
                .sensitive_counts()
                .get(&("pushf".into(), machine::Handling::Callout))
                .copied();
        let total = e.m.trace.count(machine::EventKind::Sensitive);
        (stop, pushed, e.m.icount(), pushf, total, translated)
    };
    let (si, pi, ni, fi, ti, _) = run(false, true);
    // AL at the exit: 1 * 0x25 - 0x110.
    assert_eq!(si, Stop::GuestExit { value: 0x15 });
    assert_eq!(fi, 64);
    // Two of the images, as the SDM says PUSHFD makes them: IOPL 3, bit 1,
    // IF set then clear, the status flags of SUB.
    assert_eq!(
        u32::from_le_bytes(pi[0..4].try_into().unwrap()),
        0x3202 | 0x4
    );
    assert_eq!(
        u32::from_le_bytes(pi[4..8].try_into().unwrap()),
        0x3002 | 0x4
    );
    for each in [true, false] {
        let (sb, pb, nb, fb, tb, translated) = run(true, each);
        assert_eq!((&sb, nb), (&si, ni), "each: {each}");
        assert_eq!(pb, pi, "the pushed images (each: {each})");
        assert_eq!((fb, tb), (fi, ti), "the counts (each: {each})");
        assert_eq!(translated, Some(64), "translated PUSHFDs (each: {each})");
    }
}

/// CLI at CPL 0 in translated code, inline when nothing records it one by
/// one, clears IF where the interpreter sees it: PUSHFW right after it
/// (which the interpreter runs for the translator) pushes FLAGS with IF
/// clear, as on the interpreter; and the trace counts each CLI, handled in
/// translated code, with or without a trace that keeps each.
#[test]
fn cli_clears_if_for_the_interpreter_inline_or_called_out() {
    #[rustfmt::skip]
    let code: &[u8] = &[
        0xB9, 0x10, 0x00, 0x00, 0x00,       // mov ecx, 16
        0xBF, 0x00, 0x00, 0x20, 0x00,       // mov edi, SCRATCH
        0xFB,                               // 1: sti
        0x90,                               //    nop (the shadow)
        0x39, 0xCF,                         //    cmp edi, ecx (flags vary)
        0xFA,                               //    cli
        0x66, 0x9C,                         //    pushfw
        0x66, 0x8F, 0x07,                   //    pop word [edi]
        0x83, 0xC7, 0x02,                   //    add edi, 2
        0x49,                               //    dec ecx
        0x75, 0xEF,                         //    jnz 1b
        0xE6, 0xF4,                         //    out 0xf4, al
        0xF4,                               //    hlt
    ];
    let run = |bt: bool, each: bool| {
        let mut e = at_load(code, bt, each, 0);
        let stop = e.run_until(&limits()).unwrap();
        let pushed = e.m.mem.slice(SCRATCH as u64, 16 * 2).unwrap().to_vec();
        let cli = |how| {
            e.m.trace
                .sensitive_counts()
                .get(&("cli".into(), how))
                .copied()
                .unwrap_or(0)
        };
        let clis = (
            cli(machine::Handling::Interpreted),
            cli(machine::Handling::Callout),
        );
        let total = e.m.trace.count(machine::EventKind::Sensitive);
        let st = e.cpu_state().unwrap();
        (stop, pushed, e.m.icount(), st.eflags, clis, total)
    };
    let i = run(false, true);
    // (AL: the multiboot magic's low byte.)
    assert_eq!(i.0, Stop::GuestExit { value: 0x02 });
    // CMP EDI, ECX: EDI (0x200000 up) above ECX, no borrow; IF clear.
    let first = u16::from_le_bytes(i.1[0..2].try_into().unwrap());
    assert_eq!(first & 0x200, 0, "IF clear after CLI: {first:#x}");
    assert_eq!(i.4, (16, 0));
    for each in [true, false] {
        let b = run(true, each);
        assert_eq!(
            (&b.0, &b.1, b.2, b.3),
            (&i.0, &i.1, i.2, i.3),
            "each: {each}"
        );
        assert_eq!(
            b.4,
            (0, 16),
            "CLIs handled in translated code (each: {each})"
        );
        assert_eq!(b.5, i.5, "sensitive instructions (each: {each})");
    }
}

/// What a run of `code` at LOAD left (the flag tests below): its stop,
/// `out` bytes at SCRATCH, the CPU state, the instruction count and the
/// instructions the translator ran as translated code.
struct Ran {
    stop: Stop,
    out: Vec<u8>,
    st: CpuState,
    icount: u64,
    translated: Option<u64>,
    entries: Option<u64>,
}

impl Ran {
    /// Word `i` of `out`.
    fn word(&self, i: usize) -> u32 {
        u32::from_le_bytes(self.out[4 * i..4 * i + 4].try_into().unwrap())
    }
}

/// Runs `code` at LOAD in 32-bit flat protected mode (multiboot state,
/// ESP at STACK) on `ram` bytes, the machine set up by `setup` first.
fn run_code(bt: bool, ram: usize, code: &[u8], setup: &dyn Fn(&mut Machine), out: usize) -> Ran {
    let mut m = Machine::new(MachineConfig::with_ram(ram)).unwrap();
    m.mem.write(LOAD as u64, code).unwrap();
    setup(&mut m);
    let mut st = CpuState::multiboot(LOAD, 0, 0);
    st.regs[4] = STACK;
    let mut e = on(m, bt, &st);
    let stop = e.run_until(&limits()).unwrap();
    Ran {
        stop,
        out: e.m.mem.slice(SCRATCH as u64, out).unwrap().to_vec(),
        st: e.cpu_state().unwrap(),
        icount: e.m.icount(),
        translated: e.stats().get(Counter::TranslatedInstructions),
        entries: e.stats().get(Counter::DispatcherEntries),
    }
}

/// The translator's run `b` ended as the interpreter's `i`: stop,
/// instruction count, registers, EFLAGS and every word written, named by
/// round (`per_round` words a round); and ran more than `translated`
/// instructions as translated code.
fn same_as_interp(b: &Ran, i: &Ran, per_round: usize, translated: u64) {
    assert_eq!((&b.stop, b.icount), (&i.stop, i.icount));
    assert_eq!((b.st.regs, b.st.eflags), (i.st.regs, i.st.eflags));
    for k in 0..i.out.len() / 4 {
        assert_eq!(
            b.word(k),
            i.word(k),
            "round {}, word {}",
            k / per_round,
            k % per_round
        );
    }
    let n = b.translated;
    assert!(
        n.unwrap_or(0) > translated,
        "the loop ran translated: {n:?}"
    );
}

/// `a`'s code assembled at LOAD, and the address of `label` in it.
fn assemble_at_load(
    a: &mut iced_x86::code_asm::CodeAssembler,
    label: &iced_x86::code_asm::CodeLabel,
) -> (Vec<u8>, u32) {
    let r = a
        .assemble_options(
            LOAD as u64,
            iced_x86::BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS,
        )
        .unwrap();
    let at = r.label_ip(label).unwrap() as u32;
    (r.inner.code_buffer, at)
}

/// A flat GDT (code 0x08, data 0x10) at `at`, an IDT at `at` + 0x1000
/// whose `vector` is a 32-bit interrupt gate to `entry` (DPL 0), and
/// their GDTR and IDTR at `at` + 0x2000 and + 0x2008 (for LGDT, LIDT).
fn descriptor_tables(m: &mut Machine, at: u32, vector: u32, entry: u32) {
    let (gdt, idt, descs) = (at as u64, at as u64 + 0x1000, at as u64 + 0x2000);
    m.mem.write_u64(gdt + 8, 0x00CF_9A00_0000_FFFF).unwrap();
    m.mem.write_u64(gdt + 16, 0x00CF_9200_0000_FFFF).unwrap();
    let gate =
        (entry & 0xFFFF) as u64 | 0x08 << 16 | 0x8E00u64 << 32 | ((entry >> 16) as u64) << 48;
    m.mem.write_u64(idt + 8 * vector as u64, gate).unwrap();
    m.mem.write(descs, &[23, 0]).unwrap();
    m.mem.write_u32(descs + 2, gdt as u32).unwrap();
    m.mem.write(descs + 8, &[0xFF, 0x07]).unwrap();
    m.mem.write_u32(descs + 10, idt as u32).unwrap();
}

/// Flags carried in their image past memory accesses (the translator
/// restores them only where they are read): each round sets them, writes
/// a device register (the local APIC's task priority: MMIO, which
/// translated code leaves to the interpreter, then goes on after it), then
/// stores to RAM and pushes them. The pushed images and the stores are the
/// interpreter's, on the first round (every access a TLB miss) and later.
#[test]
fn flags_survive_the_memory_accesses_of_translated_code() {
    #[rustfmt::skip]
    let code: &[u8] = &[
        0xB9, 0x20, 0x00, 0x00, 0x00,       // mov ecx, 32
        0xBF, 0x00, 0x00, 0x20, 0x00,       // mov edi, SCRATCH
        0xBE, 0x80, 0x00, 0xE0, 0xFE,       // mov esi, 0xFEE00080 (TPR)
        0x31, 0xDB,                         // xor ebx, ebx
        0x89, 0xC8,                         // 1: mov eax, ecx
        0x6B, 0xC0, 0x25,                   //    imul eax, eax, 0x25
        0x2D, 0x10, 0x01, 0x00, 0x00,       //    sub eax, 0x110 (flags vary)
        0x89, 0x1E,                         //    mov [esi], ebx
        0x89, 0x07,                         //    mov [edi], eax
        0x9C,                               //    pushfd
        0x8F, 0x47, 0x04,                   //    pop dword [edi+4]
        0x89, 0x5F, 0x08,                   //    mov [edi+8], ebx
        0x8B, 0x57, 0x08,                   //    mov edx, [edi+8]
        0x83, 0xD2, 0x00,                   //    adc edx, 0
        0x89, 0x57, 0x0C,                   //    mov [edi+12], edx
        0x83, 0xC7, 0x10,                   //    add edi, 16
        0x49,                               //    dec ecx
        0x75, 0xDC,                         //    jnz 1b
        0xE6, 0xF4,                         //    out 0xf4, al
        0xF4,                               //    hlt
    ];
    let run = |bt: bool| run_code(bt, 4 << 20, code, &|_| {}, 32 * 16);
    let i = run(false);
    assert_eq!(i.stop, Stop::GuestExit { value: 0x15 });
    // The first round's image (ECX 32: 32 * 0x25 - 0x110 = 0x390): PF
    // set, the other status flags clear.
    assert_eq!(i.word(0), 0x390);
    assert_eq!(i.word(1) & STATUS, PF);
    // The last round's (ECX 1: 0x25 - 0x110 borrows): CF and SF set.
    assert_eq!(i.word(31 * 4 + 1) & STATUS, CF | SF);
    assert_eq!(i.word(31 * 4 + 3), 1, "ADC added the borrow");
    same_as_interp(&run(true), &i, 4, 32 * 8);
}

/// Flags that cross block boundaries in their image (an exit that owes
/// their restore is chained to its target's entry that takes the image;
/// the indirect-branch cache holds those entries): set before a CALL and
/// read by the function, set in the function and read after its RET, set
/// in the IRET frame by an interrupt handler and read after the IRET (a
/// transfer from a callout into the cache's entry). The pushed images and
/// the sums are the interpreter's.
#[test]
fn flags_cross_calls_returns_and_iret_in_translated_code() {
    use iced_x86::code_asm::*;
    const TABLES: u32 = 0x1_0000; // GDT, IDT, GDTR and IDTR
    let mut a = CodeAssembler::new(32).unwrap();
    let mut top = a.create_label();
    let mut f = a.create_label();
    let mut handler = a.create_label();
    a.lgdt(ptr(TABLES + 0x2000)).unwrap();
    a.lidt(ptr(TABLES + 0x2008)).unwrap();
    a.mov(ecx, 200u32).unwrap();
    a.mov(edi, SCRATCH).unwrap();
    a.xor(edx, edx).unwrap();
    a.set_label(&mut top).unwrap();
    a.mov(eax, ecx).unwrap();
    a.stc().unwrap();
    a.call(f).unwrap();
    a.adc(edx, 0).unwrap(); // CF from f's SUB
    a.pushfd().unwrap();
    a.pop(dword_ptr(edi)).unwrap();
    a.int(0x30).unwrap();
    a.adc(edx, 0x100).unwrap(); // CF as the handler left it in the frame
    a.pushfd().unwrap();
    a.pop(dword_ptr(edi + 4)).unwrap();
    a.add(edi, 8).unwrap();
    a.dec(ecx).unwrap();
    a.jnz(top).unwrap();
    a.mov(eax, edx).unwrap();
    a.out(0xF4, al).unwrap();
    a.hlt().unwrap();
    a.set_label(&mut f).unwrap();
    a.adc(edx, 0x10000).unwrap(); // CF from before the CALL
    a.imul_3(eax, eax, 0x25).unwrap();
    a.sub(eax, 0x1000).unwrap();
    a.ret().unwrap();
    // CF in the frame: bit 0 of ECX; ZF and SF cleared.
    a.set_label(&mut handler).unwrap();
    a.push(eax).unwrap();
    a.mov(eax, dword_ptr(esp + 12)).unwrap();
    a.and(eax, !0xC1u32 as i32).unwrap();
    a.bt(ecx, 0).unwrap();
    a.adc(eax, 0).unwrap();
    a.mov(dword_ptr(esp + 12), eax).unwrap();
    a.pop(eax).unwrap();
    a.iretd().unwrap();
    let (code, entry) = assemble_at_load(&mut a, &handler);
    let setup = |m: &mut Machine| descriptor_tables(m, TABLES, 0x30, entry);
    let run = |bt: bool| run_code(bt, 4 << 20, &code, &setup, 200 * 8);
    let i = run(false);
    // EDX: 200 calls (0x10000 and STC's carry each), 200 INTs (0x100
    // each) and the carries: from the 100 odd ECX (the handler) and from
    // the SUBs that borrow (37 * ECX < 0x1000: ECX 1..110).
    assert_eq!(i.st.regs[2], 200 * 0x10001 + 200 * 0x100 + 100 + 110);
    assert_eq!(
        i.stop,
        Stop::GuestExit {
            value: i.st.regs[2] & 0xFF
        }
    );
    same_as_interp(&run(true), &i, 2, 200 * 10);
}

/// PUSH of a segment register in translated code: ESP down by 4, the
/// selector's word written, the slot's upper word left as it was (the
/// interpreter's choice among the two the SDM allows). 32 rounds push DS,
/// ES, FS (null) and GS onto a stack filled with 0xA5; the slots are the
/// interpreter's, and the pushes ran translated.
#[test]
fn segment_pushes_write_the_selector_word_in_translated_code() {
    #[rustfmt::skip]
    let code: &[u8] = &[
        0x31, 0xC0,                         //    xor eax, eax
        0x8E, 0xE0,                         //    mov fs, ax
        0xBC, 0x00, 0x02, 0x20, 0x00,       //    mov esp, SCRATCH + 0x200
        0xB9, 0x20, 0x00, 0x00, 0x00,       //    mov ecx, 32
        0x1E,                               // 1: push ds
        0x06,                               //    push es
        0x0F, 0xA0,                         //    push fs
        0x0F, 0xA8,                         //    push gs
        0x40,                               //    inc eax
        0x49,                               //    dec ecx
        0x75, 0xF6,                         //    jnz 1b
        0xE6, 0xF4,                         //    out 0xf4, al
        0xF4,                               //    hlt
    ];
    let fill = |m: &mut Machine| m.mem.write(SCRATCH as u64, &[0xA5; 0x200]).unwrap();
    let run = |bt: bool| run_code(bt, 4 << 20, code, &fill, 0x200);
    let i = run(false);
    assert_eq!(i.stop, Stop::GuestExit { value: 32 });
    for k in 0..32 {
        // GS, FS, ES, DS from the lowest address up.
        let slots = [
            i.word(4 * k),
            i.word(4 * k + 1),
            i.word(4 * k + 2),
            i.word(4 * k + 3),
        ];
        assert_eq!(
            slots,
            [0xA5A5_0010, 0xA5A5_0000, 0xA5A5_0010, 0xA5A5_0010],
            "round {k}"
        );
    }
    same_as_interp(&run(true), &i, 4, 32 * 6);
}

/// The local APIC's ID, read over and over from translated code (xv6's
/// `mycpu`), is served from a copy that goes stale with the register: a
/// write of a new ID halfway through is seen by the next read, and so is
/// the APIC globally disabled through IA32_APIC_BASE (the page then reads
/// all ones). The sum of the reads, the registers and the bus's and the
/// APIC's read counts are the interpreter's.
#[test]
fn a_device_register_read_from_translated_code_follows_its_writes() {
    #[rustfmt::skip]
    let code: &[u8] = &[
        0x31, 0xDB,                         //    xor ebx, ebx
        0xB9, 0x64, 0x00, 0x00, 0x00,       //    mov ecx, 100
        0xA1, 0x20, 0x00, 0xE0, 0xFE,       // 1: mov eax, [0xFEE00020]
        0x01, 0xC3,                         //    add ebx, eax
        0x83, 0xF9, 0x32,                   //    cmp ecx, 50
        0x75, 0x0A,                         //    jne 2f
        0xC7, 0x05, 0x20, 0x00, 0xE0, 0xFE, //    mov dword [0xFEE00020],
        0x00, 0x00, 0x00, 0x05,             //        0x05000000
        0x49,                               // 2: dec ecx
        0x75, 0xE7,                         //    jnz 1b
        0xB9, 0x1B, 0x00, 0x00, 0x00,       //    mov ecx, 0x1B
        0x0F, 0x32,                         //    rdmsr
        0x25, 0xFF, 0xF7, 0xFF, 0xFF,       //    and eax, ~0x800
        0x0F, 0x30,                         //    wrmsr
        0xA1, 0x20, 0x00, 0xE0, 0xFE,       //    mov eax, [0xFEE00020]
        0x01, 0xC3,                         //    add ebx, eax
        0x89, 0xD8,                         //    mov eax, ebx
        0xE6, 0xF4,                         //    out 0xf4, al
        0xF4,                               //    hlt
    ];
    let run = |bt: bool| {
        let mut e = at_load(code, bt, true, 0);
        let stop = e.run_until(&limits()).unwrap();
        let st = e.cpu_state().unwrap();
        let reads = e.m.bus.stats.mmio_reads;
        let stats = e.m.device_stats_json().to_string();
        let served = e.stats().get(Counter::MmioReadsInTranslatedCode);
        (stop, st.regs, e.m.icount(), reads, stats, served)
    };
    let i = run(false);
    // Reads of ID 0 until the write (at ECX 50, after that round's read),
    // then 49 of ID 5, then all ones.
    assert_eq!(
        i.1[3],
        49u32.wrapping_mul(0x0500_0000).wrapping_add(0xFFFF_FFFF)
    );
    assert_eq!(i.0, Stop::GuestExit { value: 0xFF });
    let b = run(true);
    assert_eq!((&b.0, b.1, b.2, b.3), (&i.0, i.1, i.2, i.3));
    assert_eq!(b.4, i.4, "the devices' statistics");
    // The reads in the loop were served in translated code.
    assert!(
        b.5.unwrap_or(0) >= 99,
        "{:?} reads served in translated code",
        b.5
    );
}

/// STI lets an interrupt through after its shadow instruction, and the
/// translator leaves for the dispatcher only then. Each round disables
/// interrupts, every fourth one sends itself an IPI (the local APIC's ICR:
/// pending while IF is clear), then STI; INC EBX (the shadow); INC EDX.
/// The handler records the return EIP of its frame, EBX and EDX: each
/// interrupt came after INC EBX, before INC EDX, and the records, the
/// registers and the instruction count are the interpreter's. The rounds
/// with nothing pending go on past STI in translated code: the 64 rounds
/// take fewer dispatcher entries than their 64 STIs would.
#[test]
fn sti_delivers_after_its_shadow_and_otherwise_goes_on_in_translated_code() {
    use iced_x86::code_asm::*;
    const TABLES: u32 = 0x1_0000; // GDT, IDT, GDTR and IDTR
    const VECTOR: u32 = 0x40;
    const ROUNDS: u32 = 64;
    let mut a = CodeAssembler::new(32).unwrap();
    let mut top = a.create_label();
    let mut quiet = a.create_label();
    let mut after_shadow = a.create_label();
    let mut handler = a.create_label();
    a.lgdt(ptr(TABLES + 0x2000)).unwrap();
    a.lidt(ptr(TABLES + 0x2008)).unwrap();
    // The local APIC software-enabled (SVR), spurious vector 0xFF.
    a.mov(dword_ptr(0xFEE0_00F0u32), 0x1FF).unwrap();
    a.mov(ecx, ROUNDS).unwrap();
    a.mov(edi, SCRATCH).unwrap();
    a.xor(ebx, ebx).unwrap();
    a.xor(edx, edx).unwrap();
    a.set_label(&mut top).unwrap();
    a.cli().unwrap();
    a.test(ecx, 3).unwrap();
    a.jnz(quiet).unwrap();
    // A fixed IPI to self (shorthand 01), asserted.
    a.mov(dword_ptr(0xFEE0_0300u32), (0x4_4000 | VECTOR) as i32)
        .unwrap();
    a.set_label(&mut quiet).unwrap();
    a.sti().unwrap();
    a.inc(ebx).unwrap();
    a.set_label(&mut after_shadow).unwrap();
    a.inc(edx).unwrap();
    a.dec(ecx).unwrap();
    a.jnz(top).unwrap();
    a.mov(eax, edx).unwrap();
    a.out(0xF4, al).unwrap();
    a.hlt().unwrap();
    a.set_label(&mut handler).unwrap();
    a.push(eax).unwrap();
    a.mov(eax, dword_ptr(esp + 4)).unwrap();
    a.mov(dword_ptr(edi), eax).unwrap();
    a.mov(dword_ptr(edi + 4), ebx).unwrap();
    a.mov(dword_ptr(edi + 8), edx).unwrap();
    a.add(edi, 12).unwrap();
    a.mov(dword_ptr(0xFEE0_00B0u32), 0).unwrap(); // EOI
    a.pop(eax).unwrap();
    a.iretd().unwrap();
    let r = a
        .assemble_options(
            LOAD as u64,
            iced_x86::BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS,
        )
        .unwrap();
    let entry = r.label_ip(&handler).unwrap() as u32;
    let resume = r.label_ip(&after_shadow).unwrap() as u32;
    let code = r.inner.code_buffer;
    let setup = |m: &mut Machine| descriptor_tables(m, TABLES, VECTOR, entry);
    let run = |bt: bool| run_code(bt, 4 << 20, &code, &setup, (ROUNDS as usize / 4) * 12);
    let i = run(false);
    assert_eq!(
        i.stop,
        Stop::GuestExit {
            value: ROUNDS & 0xFF
        }
    );
    for k in 0..ROUNDS as usize / 4 {
        // Rounds 1, 5, 9, ... (ECX 64, 60, ...): INC EBX done, INC EDX not.
        let round = 4 * k as u32 + 1;
        assert_eq!(
            [i.word(3 * k), i.word(3 * k + 1), i.word(3 * k + 2)],
            [resume, round, round - 1],
            "interrupt {k}"
        );
    }
    let b = run(true);
    same_as_interp(&b, &i, 3, ROUNDS as u64 * 3);
    let entries = b.entries.unwrap();
    assert!(entries < ROUNDS as u64, "{entries} dispatcher entries");
}

/// A shift's undefined flags (AF, OF: the host's differ by vendor) are
/// made the interpreter's only where they can be seen: here only if the
/// read-modify-write after the shift faults, which pushes EFLAGS. Each
/// round unmaps the page the RMW touches, so it faults (a TLB miss, then
/// the interpreter raises #PF), and the #PF handler records the pushed
/// EFLAGS and maps the page again. The records are the interpreter's.
#[test]
fn undefined_flags_pushed_by_a_fault_after_a_shift_are_the_interpreters() {
    use iced_x86::code_asm::*;
    const PD: u32 = 0x1_0000;
    const PT_PROBE: u32 = 0x1_1000;
    const PROBE: u32 = 0x40_0000;
    const PROBE_PHYS: u32 = 0x30_0000;
    let mut a = CodeAssembler::new(32).unwrap();
    let mut top = a.create_label();
    let mut handler = a.create_label();
    enter_paged(&mut a, PD);
    a.mov(ecx, 64u32).unwrap();
    a.mov(edi, SCRATCH).unwrap();
    a.mov(esi, PROBE).unwrap();
    a.set_label(&mut top).unwrap();
    a.mov(dword_ptr(PT_PROBE), 0u32).unwrap(); // PROBE not present
    a.invlpg(dword_ptr(esi)).unwrap();
    a.mov(eax, ecx).unwrap();
    a.imul_3(eax, eax, 0x9E37_79B1u32 as i32).unwrap();
    a.mov(ebx, eax).unwrap();
    a.shr(ebx, 7).unwrap();
    a.add(dword_ptr(esi), ebx).unwrap(); // faults: EFLAGS of the SHR pushed
    a.dec(ecx).unwrap();
    a.jnz(top).unwrap();
    a.mov(eax, dword_ptr(PROBE)).unwrap();
    a.out(0xF4, al).unwrap();
    a.hlt().unwrap();
    // #PF: the pushed EFLAGS recorded, PROBE present again, the access
    // made again.
    a.set_label(&mut handler).unwrap();
    a.push(eax).unwrap();
    a.mov(eax, dword_ptr(esp + 16)).unwrap();
    a.mov(dword_ptr(edi), eax).unwrap();
    a.add(edi, 4).unwrap();
    a.mov(dword_ptr(PT_PROBE), PROBE_PHYS | P_RW).unwrap();
    a.pop(eax).unwrap();
    pf_return(&mut a);
    let (code, entry) = assemble_at_load(&mut a, &handler);
    let setup = |m: &mut Machine| {
        page_directory(m, PD, &[(PROBE, PT_PROBE, PROBE_PHYS)]);
        descriptor_tables(m, PF_TABLES, 14, entry);
    };
    let run = |bt: bool| run_code(bt, 8 << 20, &code, &setup, 64 * 4);
    let i = run(false);
    // 64 faults, each recorded: the handler ran once a round.
    assert_eq!(i.st.regs[7], SCRATCH + 64 * 4);
    // The SHR's flags as the SDM defines them, in every record: CF the
    // last bit shifted out (bit 6 of EBX before), the result's SF (0),
    // ZF and PF.
    for r in 0..64 {
        let before = ((64 - r) as u32).wrapping_mul(0x9E37_79B1);
        let res = before >> 7;
        let mut want = (before >> 6) & 1;
        if res == 0 {
            want |= ZF;
        }
        if (res & 0xFF).count_ones().is_multiple_of(2) {
            want |= PF;
        }
        assert_eq!(i.word(r) & (CF | ZF | SF | PF), want, "round {r}");
    }
    same_as_interp(&run(true), &i, 1, 64 * 5);
}

/// SHL's flags, fixed on their image only where needed (the fix may
/// wait for a later instruction), survive a BT on memory after it: BT
/// changes CF alone on the image of the flags before it, and PUSHFD
/// shows all of them. The native oracle found the translator's OF wrong
/// here (seed 26103); each EDI is compared with the interpreter.
#[test]
fn shift_flags_survive_a_bt_on_memory() {
    #[rustfmt::skip]
    let code: &[u8] = &[
        0xD1, 0xE7,                                     // shl edi, 1
        0x0F, 0xBA, 0x25, 0x00, 0x00, 0x20, 0x00, 0x5E, // bt dword [SCRATCH], 0x5e
        0x9C,                                           // pushfd
        0x8F, 0x05, 0x04, 0x00, 0x20, 0x00,             // pop dword [SCRATCH + 4]
        0xE6, 0xF4,                                     // out 0xf4, al
        0xF4,                                           // hlt
    ];
    for edi in [0x7FFF_FFFFu32, 0x8000_0000, 0x4000_0001, 0xC000_0000, 1, 0] {
        let run = |bt: bool| {
            let mut m = Machine::new(MachineConfig::with_ram(4 << 20)).unwrap();
            m.mem.write(LOAD as u64, code).unwrap();
            m.mem.write_u32(SCRATCH as u64, 0x4000_0000).unwrap(); // bit 30 (0x5e & 31) set
            let mut st = CpuState::multiboot(LOAD, 0, 0);
            st.regs[4] = STACK;
            st.regs[7] = edi;
            let mut e = on(m, bt, &st);
            let stop = e.run_until(&limits()).unwrap();
            let pushed = e.m.mem.read_u32(SCRATCH as u64 + 4).unwrap();
            let n = e.stats().get(Counter::TranslatedInstructions);
            (stop, pushed, e.cpu_state().unwrap(), n)
        };
        let (stop_i, pi, ci, _) = run(false);
        // SHL by 1: OF = the result's sign XOR CF; BT: CF = bit 30.
        let res = edi << 1;
        let of = ((res >> 31) ^ (edi >> 31)) & 1;
        assert_eq!(pi & (OF | CF), (of * OF) | CF, "EDI {edi:#x}");
        let (stop_b, pb, cb, n) = run(true);
        assert_eq!(
            (&stop_b, pb, cb.regs, cb.eflags),
            (&stop_i, pi, ci.regs, ci.eflags),
            "EDI {edi:#x}"
        );
        assert!(n.unwrap_or(0) >= 2, "translated: {n:?}");
    }
}

/// The page table the paging tests' page directories share: it
/// identity-maps the first 4 MiB.
const PT_LOW: u32 = 0x1_2000;
/// Present and writable, accessed bits clear (the walks set them).
const P_RW: u32 = 0x3;

/// Writes page directory `pd` in `m`: the first 4 MiB identity-mapped
/// (through PT_LOW, written too), and for each `(lin, pt, phys)` the page
/// at `lin` mapped to `phys` through the page table at `pt`.
fn page_directory(m: &mut Machine, pd: u32, maps: &[(u32, u32, u32)]) {
    for i in 0..1024u32 {
        m.mem
            .write_u32((PT_LOW + 4 * i) as u64, (i << 12) | P_RW)
            .unwrap();
    }
    m.mem.write_u32(pd as u64, PT_LOW | P_RW).unwrap();
    for &(lin, pt, phys) in maps {
        let pte = pt + 4 * ((lin >> 12) & 0x3FF);
        m.mem.write_u32(pte as u64, phys | P_RW).unwrap();
        m.mem
            .write_u32((pd + 4 * (lin >> 22)) as u64, pt | P_RW)
            .unwrap();
    }
}

/// The page-fault tests' descriptor tables (`descriptor_tables`): a GDT,
/// an IDT whose #PF gate leads to the test's handler, GDTR and IDTR.
const PF_TABLES: u32 = 0x3_0000;

/// A page-fault test's start: GDT and IDT loaded (`PF_TABLES`), paging on
/// with page directory `pd`.
fn enter_paged(a: &mut iced_x86::code_asm::CodeAssembler, pd: u32) {
    use iced_x86::code_asm::*;
    a.lgdt(ptr(PF_TABLES + 0x2000)).unwrap();
    a.lidt(ptr(PF_TABLES + 0x2008)).unwrap();
    paging_on(a, pd);
}

/// A #PF handler's end: the error code dropped, IRET (the access is made
/// again).
fn pf_return(a: &mut iced_x86::code_asm::CodeAssembler) {
    use iced_x86::code_asm::*;
    a.add(esp, 4).unwrap();
    a.iretd().unwrap();
}

/// Code that loads CR3 with `pd` and turns paging on.
fn paging_on(a: &mut iced_x86::code_asm::CodeAssembler, pd: u32) {
    use iced_x86::code_asm::*;
    a.mov(eax, pd).unwrap();
    a.mov(cr3, eax).unwrap();
    a.mov(eax, cr0).unwrap();
    a.or(eax, 0x8000_0000u32 as i32).unwrap();
    a.mov(cr0, eax).unwrap();
}

/// The remapping tests' linear code page, and the two physical pages of
/// code it is mapped to in turn.
const SHARED: u32 = 0x40_0000;
const CODE_A: u32 = 0x5_0000;
const CODE_B: u32 = 0x6_0000;

/// The two address spaces of the CR3 tests: page directories A and B,
/// with the page tables that map SHARED.
const PD_A: u32 = 0x1_0000;
const PD_B: u32 = 0x1_1000;
const PT_A: u32 = 0x1_3000;
const PT_B: u32 = 0x1_4000;

/// The shared page's code of the remapping tests that need no more: one
/// register counted, then RET.
fn counting(reg: iced_x86::code_asm::AsmRegister32) -> Vec<u8> {
    let mut a = iced_x86::code_asm::CodeAssembler::new(32).unwrap();
    a.add(reg, 1).unwrap();
    a.ret().unwrap();
    a.assemble(SHARED as u64).unwrap()
}

/// SHARED to CODE_A in address space A, to CODE_B in B.
fn two_address_spaces(m: &mut Machine) {
    page_directory(m, PD_A, &[(SHARED, PT_A, CODE_A)]);
    page_directory(m, PD_B, &[(SHARED, PT_B, CODE_B)]);
}

/// Two address spaces that map one linear code page (0x400000) to
/// different physical pages holding different code, switched by MOV CR3
/// around each CALL into it (a kernel's context switch between two
/// processes; the CALL into it is made from one place for both). The
/// translator keeps chains and indirect-branch cache
/// entries across a CR3 load only where the target still maps to the same
/// physical page (the kernel's identity-mapped page here), and chains
/// within a page always: the counts each address space's code keeps, the
/// accessed bits the walks set, and the instruction count must be the
/// interpreter's.
#[test]
fn chains_follow_a_cr3_switch_between_two_address_spaces() {
    use iced_x86::code_asm::*;
    // The code both address spaces run at SHARED, each its own copy: a
    // jump within the page (an in-page chain), then one register counted.
    let process = |reg: AsmRegister32| {
        let mut a = CodeAssembler::new(32).unwrap();
        let mut l = a.create_label();
        a.jmp(l).unwrap();
        a.nop().unwrap();
        a.set_label(&mut l).unwrap();
        a.add(reg, 1).unwrap();
        a.ret().unwrap();
        a.assemble(SHARED as u64).unwrap()
    };
    let switch = |pd: u32| {
        move |a: &mut CodeAssembler| {
            a.mov(edi, pd).unwrap();
            a.mov(cr3, edi).unwrap();
        }
    };
    let main = two_mappings_loop(PD_A, SHARED, switch(PD_A), switch(PD_B));
    let code = [(CODE_A, process(eax)), (CODE_B, process(ebx))];
    same_on_both(&main, &code, &two_address_spaces, (PD_A, 0x5000), 200 * 6);
}

/// A kernel's TLB flush: the page-table entry of the shared page is
/// rewritten (CODE_A and CODE_B in turn), then CR3 reloaded with the same
/// value, and the shared page called directly from the same block. A
/// callout that reloads CR3 without changing it leaves the links unchecked
/// (`Links::defer`) and the block goes on, so its exit to the other page,
/// chained under the other mapping, must go to the dispatcher (which
/// checks the links) while they wait, not straight to that code.
#[test]
fn a_chain_to_another_page_right_after_a_tlb_flush_follows_the_new_mapping() {
    use iced_x86::code_asm::*;
    const PD: u32 = 0x1_0000;
    const PT: u32 = 0x1_3000;
    let pte = PT + 4 * ((SHARED >> 12) & 0x3FF);
    let mut a = CodeAssembler::new(32).unwrap();
    let mut top = a.create_label();
    paging_on(&mut a, PD);
    a.xor(eax, eax).unwrap();
    a.xor(ebx, ebx).unwrap();
    a.mov(esi, 800).unwrap();
    a.mov(edx, CODE_B | P_RW).unwrap();
    a.set_label(&mut top).unwrap();
    // One block maps the shared page to each copy in turn, flushes the
    // TLB and calls it: its exit's chain was made under the other copy.
    a.xor(edx, CODE_A ^ CODE_B).unwrap();
    a.mov(dword_ptr(pte), edx).unwrap();
    a.mov(ecx, PD).unwrap();
    a.mov(cr3, ecx).unwrap();
    a.call(SHARED as u64).unwrap();
    a.dec(esi).unwrap();
    a.jnz(top).unwrap();
    a.add(eax, ebx).unwrap();
    a.out(0xF4, al).unwrap();
    a.hlt().unwrap();
    let main = a.assemble(LOAD as u64).unwrap();
    let code = [(CODE_A, counting(eax)), (CODE_B, counting(ebx))];
    let dirs = |m: &mut Machine| page_directory(m, PD, &[(SHARED, PT, CODE_A)]);
    same_on_both(&main, &code, &dirs, (PD, 0x4000), 800 * 4);
}

/// One linear code page (0x400000) whose page-table entry is rewritten
/// between two physical pages holding different code, each time followed
/// by INVLPG of it (and of an unrelated page, which must leave the
/// translator's links alone), around each CALL into it, made directly (a
/// chain between pages) and through a register (an indirect-branch cache
/// entry). The translator checks the links into the invalidated page only
/// (`Links::target_pages`): those into 0x400000 must follow the new
/// mapping. Counts, page tables and the instruction count are the
/// interpreter's.
#[test]
fn chains_follow_an_invlpg_of_their_target_page() {
    use iced_x86::code_asm::*;
    const PD: u32 = 0x1_0000;
    const PT: u32 = 0x1_3000;
    const OTHER: u32 = 0x30_0000;
    let pte = PT + 4 * ((SHARED >> 12) & 0x3FF);
    let to_a = |a: &mut CodeAssembler| {
        a.mov(dword_ptr(pte), CODE_A | P_RW).unwrap();
        a.invlpg(byte_ptr(SHARED)).unwrap();
    };
    let to_b = |a: &mut CodeAssembler| {
        a.mov(dword_ptr(pte), CODE_B | P_RW).unwrap();
        a.invlpg(byte_ptr(OTHER)).unwrap();
        a.invlpg(byte_ptr(SHARED)).unwrap();
        a.invlpg(byte_ptr(OTHER)).unwrap();
    };
    let main = two_mappings_loop(PD, SHARED, to_a, to_b);
    let code = [(CODE_A, counting(eax)), (CODE_B, counting(ebx))];
    let dirs = |m: &mut Machine| page_directory(m, PD, &[(SHARED, PT, CODE_A)]);
    same_on_both(&main, &code, &dirs, (PD, 0x4000), 200 * 8);
}

/// The program of the two remapping tests, at LOAD: paging on with `pd`,
/// then 200 rounds of `to_a` (the first mapping of `shared`), a call of
/// the common code, `to_b` (the second mapping), the same call; then EAX
/// plus EBX out to the exit port. The common code calls `shared` through a
/// register (an indirect-branch cache entry), then directly (a chain).
fn two_mappings_loop(
    pd: u32,
    shared: u32,
    to_a: impl Fn(&mut iced_x86::code_asm::CodeAssembler),
    to_b: impl Fn(&mut iced_x86::code_asm::CodeAssembler),
) -> Vec<u8> {
    use iced_x86::code_asm::*;
    let mut a = CodeAssembler::new(32).unwrap();
    let mut top = a.create_label();
    let mut common = a.create_label();
    paging_on(&mut a, pd);
    a.xor(eax, eax).unwrap();
    a.xor(ebx, ebx).unwrap();
    a.mov(esi, 200).unwrap();
    a.set_label(&mut top).unwrap();
    to_a(&mut a);
    a.call(common).unwrap();
    to_b(&mut a);
    a.call(common).unwrap();
    a.dec(esi).unwrap();
    a.jnz(top).unwrap();
    a.add(eax, ebx).unwrap();
    a.out(0xF4, al).unwrap();
    a.hlt().unwrap();
    a.set_label(&mut common).unwrap();
    a.mov(ecx, shared).unwrap();
    a.call(ecx).unwrap();
    a.call(shared as u64).unwrap();
    a.ret().unwrap();
    a.assemble(LOAD as u64).unwrap()
}

/// Runs `main` (at LOAD, paging turned on by it) with `code` written at
/// its physical addresses and the page tables `dirs` writes, on the
/// interpreter and on the translator. Both must end at the guest exit with
/// EAX 800 and EBX 400 (what each mapping's code counted), with the same
/// registers, instruction count and page tables (`tables`: where, how many
/// bytes: their accessed bits), the translator having run more than
/// `translated` instructions in translated code.
fn same_on_both(
    main: &[u8],
    code: &[(u32, Vec<u8>)],
    dirs: &dyn Fn(&mut Machine),
    tables: (u32, usize),
    translated: u64,
) {
    let run = |bt: bool| {
        let mut m = Machine::new(MachineConfig::with_ram(8 << 20)).unwrap();
        m.mem.write(LOAD as u64, main).unwrap();
        for (at, bytes) in code {
            m.mem.write(*at as u64, bytes).unwrap();
        }
        dirs(&mut m);
        let mut st = CpuState::multiboot(LOAD, 0, 0);
        st.regs[4] = STACK;
        let mut e = on(m, bt, &st);
        let stop = e.run_until(&limits()).unwrap();
        let regs = e.cpu_state().unwrap().regs;
        let t = e.m.mem.slice(tables.0 as u64, tables.1).unwrap().to_vec();
        let n = e.stats().get(Counter::TranslatedInstructions);
        (stop, regs, t, e.m.icount(), n)
    };
    let (stop_i, ri, ti, ni, _) = run(false);
    assert_eq!(stop_i, Stop::GuestExit { value: 800 & 0xFF });
    // EBX: the second mapping's count; EAX: the first's, plus EBX at the
    // end.
    assert_eq!((ri[0], ri[3]), (800, 400), "each mapping ran its own code");
    let (stop_b, rb, tb, nb, n) = run(true);
    assert_eq!((&stop_b, rb, nb), (&stop_i, ri, ni));
    assert!(tb == ti, "the page tables and their accessed bits");
    assert!(
        n.unwrap_or(0) > translated,
        "the loop ran translated: {n:?}"
    );
}

/// One physical page of code mapped at two linear addresses (as a shared
/// library is in two processes), called at both: its code pushes and adds
/// up its own linear address (CALL to the next instruction, POP), which
/// differs by alias. A translation holds linear addresses, so each alias
/// has its own; the sums and the instruction count are the interpreter's.
#[test]
fn one_code_page_at_two_linear_addresses_runs_as_each() {
    use iced_x86::code_asm::*;
    const PD: u32 = 0x1_0000;
    const PT_1: u32 = 0x1_3000;
    const PT_2: u32 = 0x1_4000;
    const CODE: u32 = 0x5_0000;
    const ALIAS_1: u32 = 0x40_0000;
    const ALIAS_2: u32 = 0x80_0000;
    // At either alias: EDX += the linear address of `here`.
    let mut a = CodeAssembler::new(32).unwrap();
    let mut here = a.create_label();
    a.call(here).unwrap();
    a.set_label(&mut here).unwrap();
    a.pop(ecx).unwrap();
    a.add(edx, ecx).unwrap();
    a.ret().unwrap();
    let shared = a.assemble(ALIAS_1 as u64).unwrap();
    let mut a = CodeAssembler::new(32).unwrap();
    let mut top = a.create_label();
    paging_on(&mut a, PD);
    a.xor(edx, edx).unwrap();
    a.mov(esi, 100).unwrap();
    a.set_label(&mut top).unwrap();
    a.call(ALIAS_1 as u64).unwrap();
    a.call(ALIAS_2 as u64).unwrap();
    a.dec(esi).unwrap();
    a.jnz(top).unwrap();
    a.mov(eax, edx).unwrap();
    a.out(0xF4, al).unwrap();
    a.hlt().unwrap();
    let main = a.assemble(LOAD as u64).unwrap();
    let run = |bt: bool| {
        let mut m = Machine::new(MachineConfig::with_ram(8 << 20)).unwrap();
        m.mem.write(LOAD as u64, &main).unwrap();
        m.mem.write(CODE as u64, &shared).unwrap();
        page_directory(&mut m, PD, &[(ALIAS_1, PT_1, CODE), (ALIAS_2, PT_2, CODE)]);
        let mut st = CpuState::multiboot(LOAD, 0, 0);
        st.regs[4] = STACK;
        let mut e = on(m, bt, &st);
        let stop = e.run_until(&limits()).unwrap();
        let regs = e.cpu_state().unwrap().regs;
        let translated = e.stats().get(Counter::TranslatedInstructions);
        (stop, regs, e.m.icount(), translated)
    };
    let (stop_i, ri, ni, _) = run(false);
    let sum = 100u32.wrapping_mul(ALIAS_1 + 5 + ALIAS_2 + 5);
    assert_eq!(ri[2], sum, "the interpreter: each alias's own address");
    let (stop_b, rb, nb, translated) = run(true);
    assert_eq!((&stop_b, rb, nb), (&stop_i, ri, ni));
    assert!(
        translated.unwrap_or(0) > 100 * 8,
        "the loop ran translated: {translated:?}"
    );
}

/// An access to the place the last write went (the same registers and
/// displacement) takes over the write's lookup in translated code, which
/// holds only where the write was made there: the write faults (#PF, the
/// handler maps the page and it is made again), goes to a device register
/// (the local APIC's TPR: the interpreter makes it), or crosses a page
/// (likewise); a read larger than the write (here one that crosses into
/// a page mapped elsewhere), or after its address register moved, looks
/// up again. The registers, the counts and each
/// round's record are the interpreter's.
#[test]
fn an_access_where_the_last_write_went_shares_its_lookup() {
    use iced_x86::code_asm::*;
    const PD: u32 = 0x1_0000;
    const PT_PROBE: u32 = 0x1_1000;
    const PROBE: u32 = 0x40_0000;
    const PROBE_PHYS: u32 = 0x30_0000;
    const TPR: u32 = 0xFEE0_0080;
    const PT_APIC: u32 = 0x1_3000;
    const ROUNDS: u32 = 48;
    let mut a = CodeAssembler::new(32).unwrap();
    let mut top = a.create_label();
    let mut mapped = a.create_label();
    let mut handler = a.create_label();
    enter_paged(&mut a, PD);
    a.mov(ecx, ROUNDS).unwrap();
    a.mov(edi, SCRATCH).unwrap();
    a.mov(esi, PROBE).unwrap();
    a.mov(ebp, TPR).unwrap();
    a.xor(ebx, ebx).unwrap();
    a.set_label(&mut top).unwrap();
    // Every third round PROBE is not present: the write faults.
    a.mov(eax, ecx).unwrap();
    a.and(eax, 3).unwrap();
    a.jnz(mapped).unwrap();
    a.mov(dword_ptr(PT_PROBE), 0u32).unwrap();
    a.invlpg(dword_ptr(esi)).unwrap();
    a.set_label(&mut mapped).unwrap();
    a.mov(eax, ecx).unwrap();
    a.imul_3(eax, eax, 0x9E37_79B1u32 as i32).unwrap();
    a.add(dword_ptr(esi), eax).unwrap();
    a.xor(ebx, dword_ptr(esi)).unwrap(); // the ADD's lookup
    a.mov(byte_ptr(esi + 4), bl).unwrap();
    a.mov(edx, dword_ptr(esi + 4)).unwrap(); // larger: looked up
    a.add(ebx, edx).unwrap();
    a.mov(dword_ptr(ebp), ecx).unwrap(); // the TPR: the interpreter's
    a.mov(edx, dword_ptr(ebp)).unwrap();
    a.add(ebx, edx).unwrap();
    a.mov(dword_ptr(esi + 0xFFE), ebx).unwrap(); // crosses into 401000h
    a.mov(edx, dword_ptr(esi + 0xFFE)).unwrap();
    a.add(ebx, edx).unwrap();
    a.mov(byte_ptr(esi + 0xFFF), bl).unwrap(); // the last byte of PROBE
    a.mov(edx, dword_ptr(esi + 0xFFF)).unwrap(); // larger, and crosses
    a.add(ebx, edx).unwrap();
    a.mov(dword_ptr(esi + 8), ebx).unwrap();
    a.add(esi, 4).unwrap(); // moved: looked up
    a.mov(edx, dword_ptr(esi + 8)).unwrap();
    a.sub(esi, 4).unwrap();
    a.add(ebx, edx).unwrap();
    a.mov(dword_ptr(edi), ebx).unwrap();
    a.add(edi, 4).unwrap();
    a.dec(ecx).unwrap();
    a.jnz(top).unwrap();
    a.mov(eax, ebx).unwrap();
    a.out(0xF4, al).unwrap();
    a.hlt().unwrap();
    // #PF: PROBE present again, counted in the word after the rounds'
    // records; the write is made again.
    a.set_label(&mut handler).unwrap();
    a.mov(dword_ptr(PT_PROBE), PROBE_PHYS | P_RW).unwrap();
    a.inc(dword_ptr(SCRATCH + 4 * ROUNDS)).unwrap();
    pf_return(&mut a);
    let (code, entry) = assemble_at_load(&mut a, &handler);
    let setup = |m: &mut Machine| {
        page_directory(
            m,
            PD,
            &[
                (PROBE, PT_PROBE, PROBE_PHYS),
                (PROBE + 0x1000, PT_PROBE, PROBE_PHYS + 0x2000),
                (TPR & !0xFFF, PT_APIC, TPR & !0xFFF),
            ],
        );
        descriptor_tables(m, PF_TABLES, 14, entry);
    };
    let run = |bt: bool| run_code(bt, 8 << 20, &code, &setup, 4 * ROUNDS as usize + 4);
    let i = run(false);
    assert!(matches!(i.stop, Stop::GuestExit { .. }), "{:?}", i.stop);
    // The write faulted in the rounds where ECX is a multiple of 4.
    assert_eq!(i.word(ROUNDS as usize), ROUNDS / 4);
    same_as_interp(&run(true), &i, 1, ROUNDS as u64 * 10);
}

/// MOVS reads its source before it writes its destination, so a source
/// that faults leaves the destination's page-table entry as it was: the
/// translator looks the source up first too (a lookup that misses walks
/// the page tables and sets the accessed and dirty bits). Each round
/// unmaps the source and clears the destination entry's A and D bits; the
/// #PF handler records that entry, then maps the source, and MOVSD runs
/// again. The records are the interpreter's: A and D clear.
#[test]
fn a_movs_whose_source_faults_leaves_the_destination_untouched() {
    use iced_x86::code_asm::*;
    const PD: u32 = 0x1_0000;
    const PT_HIGH: u32 = 0x1_1000;
    const SRC: u32 = 0x40_0000;
    const DST: u32 = 0x40_1000;
    const ROUNDS: u32 = 16;
    let pte = |lin: u32| PT_HIGH + 4 * ((lin >> 12) & 0x3FF);
    let mut a = CodeAssembler::new(32).unwrap();
    let mut top = a.create_label();
    let mut handler = a.create_label();
    enter_paged(&mut a, PD);
    a.mov(ecx, ROUNDS).unwrap();
    a.mov(ebx, SCRATCH).unwrap();
    a.set_label(&mut top).unwrap();
    a.mov(dword_ptr(pte(SRC)), 0u32).unwrap(); // the source not present
    a.mov(dword_ptr(pte(DST)), 0x30_1000 | P_RW).unwrap(); // A, D clear
    a.mov(eax, SRC).unwrap();
    a.invlpg(dword_ptr(eax)).unwrap();
    a.mov(eax, DST).unwrap();
    a.invlpg(dword_ptr(eax)).unwrap();
    a.mov(esi, SRC).unwrap();
    a.mov(edi, DST).unwrap();
    a.movsd().unwrap(); // faults on the source
    a.dec(ecx).unwrap();
    a.jnz(top).unwrap();
    a.mov(eax, dword_ptr(DST)).unwrap();
    a.out(0xF4, al).unwrap();
    a.hlt().unwrap();
    // #PF: the destination's entry recorded, the source mapped again.
    a.set_label(&mut handler).unwrap();
    a.push(eax).unwrap();
    a.mov(eax, dword_ptr(pte(DST))).unwrap();
    a.mov(dword_ptr(ebx), eax).unwrap();
    a.add(ebx, 4).unwrap();
    a.mov(dword_ptr(pte(SRC)), 0x30_0000 | P_RW).unwrap();
    a.pop(eax).unwrap();
    pf_return(&mut a);
    let (code, entry) = assemble_at_load(&mut a, &handler);
    let setup = |m: &mut Machine| {
        page_directory(m, PD, &[(SRC, PT_HIGH, 0x30_0000)]);
        m.mem.write_u32(0x30_0000, 0x1234_5678).unwrap();
        descriptor_tables(m, PF_TABLES, 14, entry);
    };
    let run = |bt: bool| run_code(bt, 8 << 20, &code, &setup, 4 * ROUNDS as usize);
    let i = run(false);
    assert_eq!(i.stop, Stop::GuestExit { value: 0x78 });
    for r in 0..ROUNDS as usize {
        assert_eq!(i.word(r), 0x30_1000 | P_RW, "round {r}: A and D clear");
    }
    same_as_interp(&run(true), &i, 1, ROUNDS as u64 * 8);
}

/// Stack accesses in a row take over the page their first lookup found,
/// only where they may: a push after a pop looks its page up again (the
/// pop's lookup did not make the page dirty), the pushes after it share
/// its page, and the push that crosses into the page below (another
/// physical page) looks that one up. Each round clears the accessed and
/// dirty bits of both stack pages; the page-table entries, the words at
/// both physical places the last push could have gone, and the registers
/// are the interpreter's.
#[test]
fn stack_accesses_share_a_page_lookup_only_within_the_page_and_its_rights() {
    use iced_x86::code_asm::*;
    const PD: u32 = 0x1_0000;
    const PT_HIGH: u32 = 0x1_1000;
    const LOW: u32 = 0x40_0000; // -> 0x35_0000
    const HIGH: u32 = 0x40_1000; // -> 0x30_1000
    const ROUNDS: u32 = 8;
    let pte = |lin: u32| PT_HIGH + 4 * ((lin >> 12) & 0x3FF);
    let mut a = CodeAssembler::new(32).unwrap();
    let mut top = a.create_label();
    let mut handler = a.create_label();
    enter_paged(&mut a, PD);
    a.mov(ecx, ROUNDS).unwrap();
    a.mov(edi, SCRATCH).unwrap();
    a.set_label(&mut top).unwrap();
    a.mov(dword_ptr(pte(LOW)), 0x35_0000 | P_RW).unwrap();
    a.mov(dword_ptr(pte(HIGH)), 0x30_1000 | P_RW).unwrap();
    a.mov(eax, LOW).unwrap();
    a.invlpg(dword_ptr(eax)).unwrap();
    a.mov(eax, HIGH).unwrap();
    a.invlpg(dword_ptr(eax)).unwrap();
    a.mov(ebp, esp).unwrap();
    a.mov(esp, HIGH + 8).unwrap();
    a.pop(eax).unwrap(); // a read: the page accessed, not dirty
    a.push(eax).unwrap(); // its own lookup: dirty
    a.push(ecx).unwrap(); // the same page
    a.push(edi).unwrap(); // the same page, at its first byte
    a.push(ecx).unwrap(); // the page below
    a.mov(esp, ebp).unwrap();
    a.mov(eax, dword_ptr(pte(LOW))).unwrap();
    a.mov(dword_ptr(edi), eax).unwrap();
    a.mov(eax, dword_ptr(pte(HIGH))).unwrap();
    a.mov(dword_ptr(edi + 4), eax).unwrap();
    a.mov(eax, dword_ptr(0x35_0FFCu32)).unwrap();
    a.mov(dword_ptr(edi + 8), eax).unwrap();
    a.mov(eax, dword_ptr(0x30_0FFCu32)).unwrap();
    a.mov(dword_ptr(edi + 12), eax).unwrap();
    a.add(edi, 16).unwrap();
    a.dec(ecx).unwrap();
    a.jnz(top).unwrap();
    a.out(0xF4, al).unwrap();
    a.hlt().unwrap();
    a.set_label(&mut handler).unwrap();
    pf_return(&mut a);
    let (code, entry) = assemble_at_load(&mut a, &handler);
    let setup = |m: &mut Machine| {
        page_directory(
            m,
            PD,
            &[(LOW, PT_HIGH, 0x35_0000), (HIGH, PT_HIGH, 0x30_1000)],
        );
        descriptor_tables(m, PF_TABLES, 14, entry);
    };
    let run = |bt: bool| run_code(bt, 8 << 20, &code, &setup, 16 * ROUNDS as usize);
    let i = run(false);
    assert_eq!(i.stop, Stop::GuestExit { value: 0 });
    for r in 0..ROUNDS as usize {
        let count = ROUNDS - r as u32;
        // Accessed and dirty (0x60) on both; the last push in the page
        // below, nothing where the page above's would have put it.
        assert_eq!(
            [
                i.word(4 * r),
                i.word(4 * r + 1),
                i.word(4 * r + 2),
                i.word(4 * r + 3)
            ],
            [0x35_0000 | P_RW | 0x60, 0x30_1000 | P_RW | 0x60, count, 0],
            "round {r}"
        );
    }
    same_as_interp(&run(true), &i, 4, ROUNDS as u64 * 16);
}

/// A run stopped after any number of instructions ends where the same
/// number of single steps ends, on both engines, through a loop whose
/// blocks hold conditional branches in their middle (the interpreter's
/// blocks go on past a branch not taken and end at one taken): each count
/// from 1 to 400 against the single-stepped states.
#[test]
fn runs_stop_exactly_in_blocks_with_branches_inside() {
    #[rustfmt::skip]
    let code: &[u8] = &[
        0xB9, 0x40, 0x00, 0x00, 0x00,       // mov ecx, 64
        0x31, 0xC0,                         // xor eax, eax
        0x89, 0xCA,                         // 1: mov edx, ecx
        0x83, 0xE2, 0x03,                   //    and edx, 3
        0x74, 0x01,                         //    jz 2f (taken every 4th)
        0x40,                               //    inc eax
        0x01, 0xC8,                         // 2: add eax, ecx
        0x83, 0xFA, 0x02,                   //    cmp edx, 2
        0x72, 0x02,                         //    jb 3f
        0xD1, 0xE0,                         //    shl eax, 1
        0x49,                               // 3: dec ecx
        0x75, 0xEC,                         //    jnz 1b
        0xE6, 0xF4,                         //    out 0xf4, al
        0xF4,                               //    hlt
    ];
    let state = |s: &mut Session| {
        let c = s.cpu_state().unwrap();
        (c.regs, c.eip, c.eflags, s.m.icount())
    };
    let session = |bt: bool| {
        let mut m = Machine::new(MachineConfig::with_ram(4 << 20)).unwrap();
        m.mem.write(LOAD as u64, code).unwrap();
        let mut st = CpuState::multiboot(LOAD, 0, 0);
        st.regs[4] = STACK;
        on(m, bt, &st)
    };
    let at = |n: u64| Limits {
        max_icount: Some(n),
        ..limits()
    };
    for bt in [false, true] {
        let mut stepped = session(bt);
        let mut steps = Vec::new();
        for n in 1..=400 {
            stepped.run_until(&at(n)).unwrap();
            steps.push(state(&mut stepped));
        }
        assert_eq!(steps[399].3, 400, "bt {bt}: one instruction a run");
        for n in 1..=400u64 {
            let mut s = session(bt);
            s.run_until(&at(n)).unwrap();
            assert_eq!(
                state(&mut s),
                steps[n as usize - 1],
                "bt {bt}: {n} instructions"
            );
        }
    }
}

/// PUSH with a memory operand in translated code: the operand read (a
/// page fault on it raised before ESP moves, and the push made once the
/// handler has mapped the page), an address made from ESP before the push,
/// a scaled index, and a push into a page of translated code (which
/// translated code may not write: the interpreter runs the instruction,
/// reading the operand again). Each round's pushed values, the faults
/// counted and every register are the interpreter's, and the pushes ran
/// translated.
#[test]
fn memory_pushes_read_their_operand_then_push_in_translated_code() {
    use iced_x86::code_asm::*;
    const PD: u32 = 0x1_0000;
    const PT_HIGH: u32 = 0x1_1000;
    const SRC: u32 = 0x40_0000; // -> 0x35_0000
    const TABLE: u32 = SCRATCH + 0x800;
    const ROUNDS: u32 = 8;
    let pte = PT_HIGH + 4 * ((SRC >> 12) & 0x3FF);
    let mut a = CodeAssembler::new(32).unwrap();
    let mut top = a.create_label();
    let mut handler = a.create_label();
    enter_paged(&mut a, PD);
    a.mov(ecx, ROUNDS).unwrap();
    a.mov(edi, SCRATCH).unwrap();
    a.xor(esi, esi).unwrap();
    a.mov(ebx, SRC + 8).unwrap();
    a.set_label(&mut top).unwrap();
    // The round's value at SRC + 8, then SRC unmapped.
    a.mov(dword_ptr(pte), 0x35_0000 | P_RW).unwrap();
    a.invlpg(dword_ptr(ebx)).unwrap();
    a.mov(dword_ptr(ebx), ecx).unwrap();
    a.mov(dword_ptr(pte), 0x35_0000 | 2).unwrap();
    a.invlpg(dword_ptr(ebx)).unwrap();
    a.mov(ebp, esp).unwrap();
    a.push(0x0ABC_0000).unwrap();
    a.push(dword_ptr(ebx)).unwrap(); // #PF, then the push
    a.push(dword_ptr(esp + 4)).unwrap(); // the immediate pushed above
                                         // Not identity-mapped, after a push in the same block: the stack's
                                         // page must be looked up again after the operand's.
    a.push(dword_ptr(ebx)).unwrap();
    a.push(dword_ptr(ecx * 4 + TABLE as i32)).unwrap();
    for k in 0..5 {
        a.pop(eax).unwrap();
        a.mov(dword_ptr(edi + 4 * k), eax).unwrap();
    }
    // Onto the code's own page: written by the interpreter.
    a.mov(esp, LOAD + 0xF00).unwrap();
    a.push(dword_ptr(ebx)).unwrap();
    a.pop(eax).unwrap();
    a.mov(dword_ptr(edi + 20), eax).unwrap();
    a.mov(esp, ebp).unwrap();
    a.add(edi, 24).unwrap();
    a.dec(ecx).unwrap();
    a.jnz(top).unwrap();
    a.mov(eax, esi).unwrap();
    a.out(0xF4, al).unwrap();
    a.hlt().unwrap();
    // #PF: CR2's page made present, counted in ESI.
    a.set_label(&mut handler).unwrap();
    a.push(eax).unwrap();
    a.mov(eax, cr2).unwrap();
    a.shr(eax, 12).unwrap();
    a.and(eax, 0x3FF).unwrap();
    a.or(dword_ptr(eax * 4 + PT_HIGH as i32), 1).unwrap();
    a.inc(esi).unwrap();
    a.pop(eax).unwrap();
    pf_return(&mut a);
    let (code, entry) = assemble_at_load(&mut a, &handler);
    assert!(
        code.len() < 0xE00,
        "the code stays below the pushes into its page"
    );
    let setup = |m: &mut Machine| {
        page_directory(m, PD, &[(SRC, PT_HIGH, 0x35_0000)]);
        descriptor_tables(m, PF_TABLES, 14, entry);
        for i in 0..=ROUNDS {
            m.mem
                .write_u32((TABLE + 4 * i) as u64, 0x1000 + 3 * i)
                .unwrap();
        }
    };
    let run = |bt: bool| run_code(bt, 8 << 20, &code, &setup, 24 * ROUNDS as usize);
    let i = run(false);
    assert_eq!(i.stop, Stop::GuestExit { value: ROUNDS });
    for r in 0..ROUNDS as usize {
        let n = ROUNDS - r as u32;
        let words: Vec<u32> = (0..6).map(|k| i.word(6 * r + k)).collect();
        assert_eq!(
            words,
            [0x1000 + 3 * n, n, 0x0ABC_0000, n, 0x0ABC_0000, n],
            "round {r}"
        );
    }
    // 271 instructions ran translated; 239 when the four memory pushes
    // a round that translated code can make were the interpreter's.
    same_as_interp(&run(true), &i, 6, 255);
}
