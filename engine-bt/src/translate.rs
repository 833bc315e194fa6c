//! Guest x86-32 basic blocks to host x86-64 code, and 16-bit blocks (real
//! mode and 16-bit protected mode, `key::CODE16`: see `plan16`; the rules
//! below hold for them with SP for ESP, segment bases added from the
//! context and each access checked against the 64 KiB limit).
//!
//! Register allocation: guest EAX, ECX, EDX, EBX, EBP, ESI, EDI live in the
//! host registers of the same numbers; guest ESP lives in r12d (host RSP
//! stays the host stack, for callouts); r15 points at the `Ctx`; r13 holds a
//! guest linear address and r14 + r13 is the host address of a guest access
//! (r14 the TLB entry's addend: host address minus linear address).
//!
//! What is translated:
//! - IDENT: register and ALU instructions are re-encoded unchanged (with
//!   ESP renamed to r12d), so host flags are guest flags.
//! - Memory operands: the linear address is computed into r13d (32-bit
//!   arithmetic, so it wraps at 4 GiB as on the guest) and turned into a
//!   host address in r14 by an inline lookup in the interpreter's TLB
//!   (generated from its hash and entry layout, `TLB_LAYOUT`), or on a
//!   miss by the `host_ptr` callout (the interpreter's page walk); the
//!   instruction then runs unchanged on `[r14 + r13]`. In 32-bit code only
//!   flat segments (base 0, 4 GiB limit) are translated.
//! - PUSH, POP, CALL, RET and LEAVE: rewritten, since guest ESP is not
//!   host RSP.
//! - LOCK-prefixed read-modify-writes of memory (and XCHG with memory):
//!   run as they are, locked, on the guest's RAM.
//! - PUSHFD and CLI, sensitive: calls into the monitor that return into
//!   the block (VMware's in-TC callouts, `callout::sensitive`): it reads or
//!   changes the system flags the interpreter's CPU holds and records the
//!   instruction as the interpreter would. A kernel runs them on every
//!   spinlock (xv6's pushcli); leaving translated code for each cost two
//!   trips through the dispatcher.
//! - LODS, STOS and MOVS without a REP prefix, one element (EFLAGS.DF is
//!   0 whenever translated code runs).
//! - Jcc, JMP, CALL, RET, LOOP, JECXZ and indirect JMP and CALL end a
//!   block. An exit to a known EIP is a chainable `jmp rel32` that first
//!   leads to code telling the dispatcher the target; the dispatcher later
//!   patches it to jump straight to the target's translation.
//!
//! - Everything else (IN, OUT, MOV to and from control registers, LGDT,
//!   INT, IRET, POPF, segment loads, far transfers, DIV, REP strings, the
//!   FPU...) is a call from translated code to the interpreter, which runs
//!   that one instruction and returns into the block (`Plan::Exec`,
//!   `callout::exec`, through the exec stub of `stubs`): VMware's in-TC
//!   callouts, generalised (IN and OUT make their port access in the
//!   callout itself). The block goes on after it where nothing it
//!   assumed changed (the next EIP, the mode key, no interrupt to take, no
//!   stop; a change of the page tables has the links checked, and the
//!   block goes on if its own page still maps where it did); a control
//!   transfer (INT, IRET, a far jump, an exception delivered) goes
//!   straight on into its target's translation when the indirect-branch
//!   cache has it; else the block leaves for the dispatcher at the EIP the
//!   interpreter left. Instructions that can fault on the host for
//!   reasons of their own (DIV, BOUND, INT, I/O, privileged, REP strings,
//!   LOCK where it is #UD) are never run natively.
//! - An access neither the inline lookup nor `host_ptr` can serve (a
//!   fault, MMIO, a page crossing, a write to code, past a real-mode
//!   limit), and a sensitive callout that declines, take the same path:
//!   the interpreter runs the instruction in place (raising any fault
//!   itself) and the block goes on after it.
//!
//! The dispatcher keeps three cases to itself: a JMP to itself (`jmp $`:
//! the interpreter sees a panic loop with interrupts disabled, which a
//! translation chained to itself would spin in out of sight), an STI
//! whose shadow instruction is not in the block, and a block that would
//! start with a callout after which it always leaves (`always_leaves`:
//! HLT), which costs less handed to the interpreter directly.

use crate::ctx;
use engine_interp::fallback::table;
use iced_x86::code_asm::*;
use iced_x86::{
    BlockEncoderOptions, Code, ConditionCode, Decoder, DecoderOptions, Encoder, Instruction,
    InstructionInfoFactory, Mnemonic, OpAccess, OpKind, Register,
};

/// Most guest instructions in one block.
pub const MAX_INSNS: usize = 32;

/// What the translation of a block assumed about the CPU (part of the
/// cache key, checked at every entry).
pub mod key {
    /// CPL 3: accesses are user accesses.
    pub const USER: u32 = 1 << 0;
    /// SS.B: the stack pointer is ESP.
    pub const STACK32: u32 = 1 << 1;
    /// Segment register `i` (ES, CS, SS, DS, FS, GS) is flat: base 0,
    /// 4 GiB limit, expand-up, writable data (CS: readable code).
    pub const fn flat(i: usize) -> u32 {
        1 << (2 + i)
    }
    /// 16-bit code in a code segment with a 64 KiB limit: real mode, or
    /// with `PM16` 16-bit protected mode. In real mode the segment's base is
    /// its selector times 16 and the selector is bits 16-31 of the key; in
    /// 16-bit protected mode bits 16-31 number the base in
    /// `Links::code16` (a descriptor gives any base). Either way a
    /// translation (which holds EIPs: its exits, the return addresses it
    /// pushes) is found only under the code segment base it was made for.
    /// Such keys have no `flat` bits; their data segments are `seg64k`.
    pub const CODE16: u32 = 1 << 8;
    /// With `CODE16`: segment register `i` (not CS) has a 64 KiB limit,
    /// expand-up, writable data; its base, any, is read at run time from
    /// the context (`Ctx::seg_base`), so loading it changes no key.
    pub const fn seg64k(i: usize) -> u32 {
        1 << (9 + i)
    }
    /// With `CODE16`: 16-bit protected mode (a readable code segment
    /// with a 64 KiB limit and any base, at any CPL): bits 16-31 are the
    /// number of the code segment's base in `Links::code16`.
    pub const PM16: u32 = 1 << 15;
    /// With `PM16`: paging is off (linear addresses are physical, as in
    /// real mode). Bit 2, which is `flat(0)` in 32-bit keys (16-bit keys
    /// have no `flat` bits).
    pub const NOPAGE: u32 = 1 << 2;
    /// The code segment's base under a key that is not `PM16` (0 for
    /// 32-bit code: flat); `links::cs_base` reads any key.
    pub const fn real_cs_base(key: u32) -> u32 {
        if key & CODE16 != 0 {
            (key >> 16) << 4
        } else {
            0
        }
    }
}

/// A translated block.
pub struct Block {
    /// Host code.
    pub code: Vec<u8>,
    /// Guest instructions in it.
    pub insns: u32,
    /// Guest bytes it covers (from its start).
    pub guest_bytes: u32,
    /// Guest instructions that went through a rewrite or a memory callout
    /// (for the stats).
    pub callouts: u32,
    /// The chainable exits, in exit-id order from `first_exit`: the offset
    /// in `code` of each one's rel32 (of a `jmp rel32`, or of the
    /// conditional branch that is the exit), the offset of the code it jumps
    /// to while not chained (which tells the dispatcher where it was going
    /// and returns), the guest EIP it goes to, and whether it leaves with
    /// the guest flags in their image (r10d) rather than in RFLAGS: then
    /// it is chained to its target's `img_entry`.
    pub exits: Vec<(u64, u64, u32, bool)>,
    /// The offset of the entry that takes the guest flags in their image
    /// (r10d, as `save_flags` makes it; RFLAGS need not hold them): the
    /// budget check, after the entry's save. Chained exits and the
    /// indirect-branch cache that leave with an owed restore come in there.
    pub img_entry: u64,
    /// Its exec call sites, numbered from `first_exec_site`.
    pub exec_sites: Vec<ctx::ExecArgs>,
    /// Encoded in one pass (`crate::asm`); false: by iced's block encoder.
    pub one_pass: bool,
}

/// How one guest instruction is translated.
#[derive(Clone, Copy, Debug)]
enum Plan {
    /// Re-encoded as is (registers renamed).
    Ident,
    /// Re-encoded on `[r14]` after the `host_ptr` callout.
    Mem {
        size: u32,
        write: bool,
    },
    Push,
    /// PUSH ES/SS/DS/FS/GS (32-bit): ESP down by 4, the selector's word
    /// stored (`Ctx::seg_sel`), the slot's upper word left as it was, as
    /// the interpreter does (xv6's trap entry pushes four: 2 M in
    /// usertests).
    PushSreg,
    Pop,
    Jcc,
    Jmp,
    Call,
    Ret(u16),
    /// JMP and CALL through a register or memory: the dispatcher looks
    /// the target up.
    JmpInd,
    CallInd,
    /// LEAVE: ESP = EBP, then POP EBP.
    Leave,
    /// PUSHFD, CLI and STI: sensitive, translated as calls into the
    /// monitor that return into the block (`callout::sensitive`), which
    /// record them as the interpreter would. An STI is translated only with
    /// the instruction after it (its interrupt shadow), and the block ends
    /// there with an exit to the dispatcher, which delivers an interrupt
    /// that STI let through.
    Pushfd,
    Cli,
    Sti,
    /// LOOP (ECX) and JECXZ: branches on ECX, which need no flags.
    Loop,
    Jecxz,
    /// LODS, STOS, MOVS without a REP prefix (EFLAGS.DF is 0 whenever
    /// translated code runs): the element size.
    Lods(u32),
    Stos(u32),
    Movs(u32),
    /// LEA in 16-bit code (16-bit addressing does not encode in 64-bit
    /// mode): the effective address computed as for an access, then moved.
    Lea,
    /// Anything else (the sensitive and privileged instructions, segment
    /// loads, far transfers, the FPU...): run by the interpreter from
    /// translated code (`callout::exec`), the block going on after it
    /// when nothing it assumed changed.
    Exec,
}

impl Plan {
    /// A control transfer: the block ends after it.
    fn ends_block(self) -> bool {
        matches!(
            self,
            Plan::Jcc
                | Plan::Jmp
                | Plan::Call
                | Plan::Ret(_)
                | Plan::Loop
                | Plan::Jecxz
                | Plan::JmpInd
                | Plan::CallInd
        )
    }
}

const SEG_ORDER: [Register; 6] = [
    Register::ES,
    Register::CS,
    Register::SS,
    Register::DS,
    Register::FS,
    Register::GS,
];

fn host_reg32(r: Register) -> Register {
    match r {
        Register::ESP => Register::R12D,
        Register::SP => Register::R12W,
        other => other,
    }
}

/// The instruction with ESP renamed to r12d everywhere it is a register,
/// in a form valid in 64-bit mode (the one-byte INC/DEC r32 of 32-bit code,
/// 0x40-0x4F, are REX prefixes there: use the ModRM forms).
fn renamed(insn: &Instruction) -> Instruction {
    let mut i = *insn;
    // Its guest EIP means nothing among host instructions, where a
    // nonzero IP is a label's number (`crate::asm`).
    i.set_ip(0);
    match i.code() {
        Code::Inc_r32 => i.set_code(Code::Inc_rm32),
        Code::Dec_r32 => i.set_code(Code::Dec_rm32),
        Code::Inc_r16 => i.set_code(Code::Inc_rm16),
        Code::Dec_r16 => i.set_code(Code::Dec_rm16),
        _ => {}
    }
    for op in 0..i.op_count() {
        if i.op_kind(op) == OpKind::Register {
            i.set_op_register(op, host_reg32(i.op_register(op)));
        }
    }
    if i.memory_base() != Register::None {
        i.set_memory_base(host_reg32(i.memory_base()));
    }
    i
}

/// Whether `insn` encodes in 64-bit mode as it is.
fn encodes(insn: &Instruction) -> bool {
    // One encoder kept per thread: a new one allocates its buffer, and
    // this is asked of most instructions translated.
    thread_local! {
        static ENC: std::cell::RefCell<Encoder> = std::cell::RefCell::new(Encoder::new(64));
    }
    ENC.with(|e| {
        let mut e = e.borrow_mut();
        let ok = e.encode(insn, 0x1000).is_ok();
        let mut b = e.take_buffer();
        b.clear();
        e.set_buffer(b);
        ok
    })
}

/// `jmp $`: a near relative JMP (EB FE, E9 with rel32 = -5) to its own
/// address.
fn is_self_jump(insn: &Instruction) -> bool {
    matches!(
        insn.code(),
        Code::Jmp_rel8_32 | Code::Jmp_rel32_32 | Code::Jmp_rel8_16 | Code::Jmp_rel16
    ) && insn.near_branch_target() == insn.ip()
}

/// The decoder's bitness for code under `key`.
pub fn bitness(key: u32) -> u32 {
    if key & key::CODE16 != 0 {
        16
    } else {
        32
    }
}

/// The code at `eip` (`bytes`, translated under `key`) begins with `jmp
/// $`, which is never translated (see `plan`).
pub fn starts_with_self_jump(bytes: &[u8], eip: u32, key: u32) -> bool {
    let insn = Decoder::with_ip(bitness(key), bytes, eip as u64, DecoderOptions::NONE).decode();
    !insn.is_invalid() && is_self_jump(&insn)
}

/// The stack is ESP in a flat SS: PUSH, POP, CALL and RET are rewritten.
fn stack_ok_of(key: u32) -> bool {
    key & key::STACK32 != 0 && key & key::flat(2) != 0
}

/// Decides how to translate `insn` under `key`: natively, or as a call to
/// the interpreter (`Plan::Exec`); None (the block ends before it, and the
/// dispatcher hands it to the interpreter) only for what must reach the
/// dispatcher itself: an undecodable instruction, `jmp $` (a panic loop
/// the interpreter must see spin) and an STI whose shadow instruction is
/// not in the block.
fn plan(insn: &Instruction, key: u32, info: &mut InstructionInfoFactory) -> Option<Plan> {
    let native = if key & key::CODE16 != 0 {
        plan16(insn, key, info)
    } else {
        plan32(insn, key, info)
    };
    native.or_else(|| {
        (!insn.is_invalid() && !is_self_jump(insn) && insn.code() != Code::Sti)
            .then_some(Plan::Exec)
    })
}

/// `ctx::ExecArgs::port` for `insn`: IN or OUT between the accumulator
/// and an immediate port or DX (not INS/OUTS), else 0.
fn port_access(insn: &Instruction) -> u32 {
    let (out, acc, port) = match insn.mnemonic() {
        Mnemonic::In => (false, insn.op0_register(), 1),
        Mnemonic::Out => (true, insn.op1_register(), 0),
        _ => return 0,
    };
    let width = acc.size() as u32;
    let how = match insn.op_kind(port) {
        OpKind::Immediate8 => insn.immediate8() as u32,
        OpKind::Register if insn.op_register(port) == Register::DX => ctx::PORT_DX,
        _ => return 0,
    };
    ctx::PORT_IO | width << 17 | if out { ctx::PORT_OUT } else { 0 } | how
}

/// Whether `insn`, run to completion as an `exec` callout, leaves all the
/// mode key is made of as it was (the CPL, the segment caches, CR0, CR4,
/// EFLAGS, halted, the interrupt shadow: `Bt::mode_key`'s inputs), so
/// that the key need not be worked out again: the page-table and
/// descriptor-table instructions, the model-specific and debug registers,
/// reads of system state. Port I/O has its own path.
pub(crate) fn mode_neutral(insn: &Instruction) -> bool {
    use iced_x86::Code;
    match insn.mnemonic() {
        Mnemonic::Invlpg
        | Mnemonic::Wbinvd
        | Mnemonic::Invd
        | Mnemonic::Cpuid
        | Mnemonic::Rdtsc
        | Mnemonic::Rdtscp
        | Mnemonic::Rdmsr
        | Mnemonic::Wrmsr
        | Mnemonic::Lgdt
        | Mnemonic::Lidt
        | Mnemonic::Lldt
        | Mnemonic::Ltr
        | Mnemonic::Sgdt
        | Mnemonic::Sidt
        | Mnemonic::Sldt
        | Mnemonic::Str
        | Mnemonic::Smsw
        | Mnemonic::Lar
        | Mnemonic::Lsl
        | Mnemonic::Verr
        | Mnemonic::Verw => true,
        // MOV from a control register, to CR3 (the mappings are checked
        // after any callout), to or from a debug register.
        Mnemonic::Mov => match insn.code() {
            Code::Mov_r32_cr | Code::Mov_r32_dr | Code::Mov_dr_r32 => true,
            Code::Mov_cr_r32 => insn.op0_register() == Register::CR3,
            _ => false,
        },
        _ => false,
    }
}

/// Whether the block always leaves after `insn` has run as an `exec`
/// callout: HLT. (A control transfer, INT, IRET, a far JMP, goes on into
/// its target's translation when the indirect-branch cache has it; a
/// change of the page tables, MOV CR3 or INVLPG, has the chains checked
/// and goes on: `callout::exec`.)
fn always_leaves(insn: &Instruction) -> bool {
    insn.mnemonic() == Mnemonic::Hlt
}

/// `plan` for 32-bit code: how to translate `insn` natively, if it can be.
fn plan32(insn: &Instruction, key: u32, info: &mut InstructionInfoFactory) -> Option<Plan> {
    if !prefixes_ok(insn) {
        return None;
    }
    // Two sensitive instructions a kernel runs all the time (xv6's
    // pushcli: PUSHFD, CLI) are calls into the monitor from translated
    // code; the others run on the interpreter, which records them as
    // handled by a callout. CLD is copied through: DF is clear wherever
    // translated code runs (`Bt::mode_key`) and on the host (the ABI),
    // so it changes nothing (xv6's memset and every kernel's entry run
    // it: 0.5 M times in usertests).
    match insn.code() {
        Code::Pushfd => return stack_ok_of(key).then_some(Plan::Pushfd),
        Code::Cli => return Some(Plan::Cli),
        Code::Sti => return Some(Plan::Sti),
        Code::Cld => return Some(Plan::Ident),
        _ => {}
    }
    if table::has(insn.mnemonic(), table::attr::SENSITIVE) {
        return None;
    }
    let stack_ok = stack_ok_of(key);
    match insn.code() {
        // `jmp $` is the interpreter's: it sees whether the jump spins
        // with interrupts disabled (a kernel's panic loop, `Stop::Spinning`),
        // which a translated self-loop, chained to itself, would hide.
        _ if is_self_jump(insn) => return None,
        Code::Jmp_rel8_32 | Code::Jmp_rel32_32 => return Some(Plan::Jmp),
        Code::Call_rel32_32 => return stack_ok.then_some(Plan::Call),
        Code::Retnd => return stack_ok.then_some(Plan::Ret(0)),
        Code::Retnd_imm16 => return stack_ok.then_some(Plan::Ret(insn.immediate16())),
        Code::Push_r32 | Code::Pushd_imm8 | Code::Pushd_imm32 => {
            return stack_ok.then_some(Plan::Push)
        }
        Code::Push_rm32 if insn.op0_kind() == OpKind::Register => {
            return stack_ok.then_some(Plan::Push)
        }
        // With a memory operand (a compiler passing an argument from
        // memory: xv6 runs 1.85 M of them in usertests), 32-bit
        // addressing through a flat segment: the operand read, then the
        // push.
        Code::Push_rm32 => {
            let ok = insn.op0_kind() == OpKind::Memory
                && insn.memory_base().size() != 2
                && insn.memory_index().size() != 2
                && seg_flat(insn.memory_segment(), key);
            return (ok && stack_ok).then_some(Plan::Push);
        }
        Code::Pushd_ES | Code::Pushd_SS | Code::Pushd_DS | Code::Pushd_FS | Code::Pushd_GS => {
            return stack_ok.then_some(Plan::PushSreg)
        }
        Code::Pop_r32 | Code::Pop_rm32
            if insn.op0_kind() == OpKind::Register && insn.op0_register() != Register::ESP =>
        {
            return stack_ok.then_some(Plan::Pop)
        }
        Code::Loop_rel8_32_ECX => return Some(Plan::Loop),
        Code::Leaved => return stack_ok.then_some(Plan::Leave),
        Code::Jmp_rm32 | Code::Call_rm32 => {
            let ok = match insn.op0_kind() {
                OpKind::Register => true,
                OpKind::Memory => {
                    insn.memory_base().size() != 2
                        && insn.memory_index().size() != 2
                        && seg_flat(insn.memory_segment(), key)
                }
                _ => false,
            };
            let call = insn.code() == Code::Call_rm32;
            return (ok && (!call || stack_ok)).then_some(if call {
                Plan::CallInd
            } else {
                Plan::JmpInd
            });
        }
        Code::Jecxz_rel8_32 => return Some(Plan::Jecxz),
        _ => {}
    }
    // String instructions with 32-bit addressing, one element.
    let src = insn.op1_kind() == OpKind::MemorySegESI && seg_flat(insn.memory_segment(), key);
    let dst = key & key::flat(0) != 0 && insn.op0_kind() == OpKind::MemoryESEDI;
    if let Some(p) = string_plan(insn, src, dst) {
        return Some(p);
    }
    if insn.is_jcc_short_or_near() {
        return (insn.op0_kind() == OpKind::NearBranch32).then_some(Plan::Jcc);
    }
    // 32-bit addressing only, flat segments only.
    match data_plan(insn, info)? {
        Data::Reg => encodes(&renamed(insn)).then_some(Plan::Ident),
        _ if insn.memory_base().size() == 2 || insn.memory_index().size() == 2 => None,
        Data::Lea => encodes(&renamed(insn)).then_some(Plan::Ident),
        Data::Mem { size, write } => (seg_flat(insn.memory_segment(), key)
            && encodes(&on_r14(insn, true)))
        .then_some(Plan::Mem { size, write }),
    }
}

/// Whether translated 32-bit code under `key` may access memory through
/// segment register `s`: a flat data segment (`key::flat`; never CS).
fn seg_flat(s: Register, key: u32) -> bool {
    SEG_ORDER
        .iter()
        .position(|&r| r == s)
        .is_some_and(|i| i != 1 && key & key::flat(i) != 0)
}

/// LODS, STOS and MOVS without REP, one element, where their source
/// (`src`: the segment and SI/ESI) and destination (`dst`: ES and DI/EDI)
/// may be translated in this mode.
fn string_plan(insn: &Instruction, src: bool, dst: bool) -> Option<Plan> {
    let w = insn.memory_size().size() as u32;
    match insn.code() {
        Code::Lodsb_AL_m8 | Code::Lodsw_AX_m16 | Code::Lodsd_EAX_m32 if src => Some(Plan::Lods(w)),
        Code::Stosb_m8_AL | Code::Stosw_m16_AX | Code::Stosd_m32_EAX if dst => Some(Plan::Stos(w)),
        Code::Movsb_m8_m8 | Code::Movsw_m16_m16 | Code::Movsd_m32_m32 if src && dst => {
            Some(Plan::Movs(w))
        }
        _ => None,
    }
}

/// The prefixes allow a native translation: no REP (the interpreter runs
/// string loops), and LOCK only on an instruction that takes it (a
/// read-modify-write of memory, the table's LOCK), which the host runs as
/// it is, locked, on the guest's RAM (xv6's spinlocks: `lock; xchgl`,
/// `lock; orl $0, (%esp)`); any other LOCK is #UD, the interpreter's to
/// raise. An undecodable instruction is the interpreter's too.
fn prefixes_ok(insn: &Instruction) -> bool {
    !insn.is_invalid()
        && !insn.has_rep_prefix()
        && !insn.has_repne_prefix()
        && (!insn.has_lock_prefix()
            || table::has(insn.mnemonic(), table::attr::LOCK) && insn.op0_kind() == OpKind::Memory)
}

/// What the instruction table calls IDENT (behaves identically on the
/// host: never a control transfer, never sensitive), on general registers
/// only (no segment, control or debug registers), by its operands.
enum Data {
    /// No memory operand.
    Reg,
    Lea,
    /// One memory access of 1, 2 or 4 bytes.
    Mem {
        size: u32,
        write: bool,
    },
}

/// `insn` as `Data`, or None when it is not IDENT on general registers,
/// or its memory access is not one plain access (BT with a register bit
/// offset reaches beyond its operand; wider or several accesses).
fn data_plan(insn: &Instruction, info: &mut InstructionInfoFactory) -> Option<Data> {
    if !table::has(insn.mnemonic(), table::attr::IDENT) {
        return None;
    }
    for op in 0..insn.op_count() {
        if insn.op_kind(op) == OpKind::Register && !insn.op_register(op).is_gpr() {
            return None;
        }
    }
    if !(0..insn.op_count()).any(|op| insn.op_kind(op) == OpKind::Memory) {
        return Some(Data::Reg);
    }
    if insn.mnemonic() == Mnemonic::Lea {
        return Some(Data::Lea);
    }
    if matches!(
        insn.mnemonic(),
        Mnemonic::Bt | Mnemonic::Bts | Mnemonic::Btr | Mnemonic::Btc
    ) && insn.op1_kind() == OpKind::Register
    {
        return None;
    }
    let size = insn.memory_size().size() as u32;
    if !matches!(size, 1 | 2 | 4) {
        return None;
    }
    let used = info.info(insn);
    let mems = used.used_memory();
    if mems.len() != 1 {
        return None;
    }
    let write = !matches!(mems[0].access(), OpAccess::Read | OpAccess::CondRead);
    Some(Data::Mem { size, write })
}

/// Whether the memory operand of `insn` (decoded as 16-bit code) uses
/// 16-bit addressing: BX, BP, SI, DI and a 16-bit displacement, the sum
/// wrapping at 64 KiB.
fn addr16(insn: &Instruction) -> bool {
    let (b, i) = (insn.memory_base(), insn.memory_index());
    if b != Register::None || i != Register::None {
        b.size() == 2 || i.size() == 2
    } else {
        insn.memory_displ_size() <= 2
    }
}

/// Whether translated 16-bit code under `key` may access memory through
/// segment register `s`: a 64 KiB data segment (`key::seg64k`), or CS,
/// for reads, whose base the key holds.
fn seg16_ok(s: Register, key: u32, write: bool) -> bool {
    match SEG_ORDER.iter().position(|&r| r == s) {
        Some(1) => !write,
        Some(i) => key & key::seg64k(i) != 0,
        None => false,
    }
}

/// `plan` for 16-bit code (`key::CODE16`: real mode, and 16-bit protected
/// mode, where the same holds: the code segment and the `seg64k` data
/// segments have 64 KiB limits, their types and privileges were checked
/// when they were loaded, CLI and STI check IOPL in their callouts, and
/// what is sensitive or privileged is the interpreter's). Memory operands
/// take the segment's base from the context and are checked against the
/// 64 KiB limit inline (an access that would fault goes to the interpreter);
/// the stack is SP in a 64 KiB SS. Far transfers, segment loads, INT and
/// IRET, and everything the 32-bit rules decline stay the interpreter's.
fn plan16(insn: &Instruction, key: u32, info: &mut InstructionInfoFactory) -> Option<Plan> {
    // The whole instruction within CS's 64 KiB limit (a fetch past it is
    // the interpreter's #GP).
    if !prefixes_ok(insn) || insn.ip() + insn.len() as u64 >= 0x1_0000 {
        return None;
    }
    match insn.code() {
        Code::Cli => return Some(Plan::Cli),
        Code::Sti => return Some(Plan::Sti),
        Code::Cld => return Some(Plan::Ident),
        _ => {}
    }
    if table::has(insn.mnemonic(), table::attr::SENSITIVE) {
        return None;
    }
    let stack = key & key::STACK32 == 0 && key & key::seg64k(2) != 0;
    let reg_op = insn.op0_kind() == OpKind::Register;
    match insn.code() {
        _ if is_self_jump(insn) => return None,
        Code::Jmp_rel8_16 | Code::Jmp_rel16 => return Some(Plan::Jmp),
        Code::Call_rel16 => return stack.then_some(Plan::Call),
        Code::Retnw => return stack.then_some(Plan::Ret(0)),
        Code::Retnw_imm16 => return stack.then_some(Plan::Ret(insn.immediate16())),
        Code::Push_r16
        | Code::Push_imm16
        | Code::Pushw_imm8
        | Code::Push_r32
        | Code::Pushd_imm8
        | Code::Pushd_imm32 => return stack.then_some(Plan::Push),
        Code::Push_rm16 | Code::Push_rm32 if reg_op => return stack.then_some(Plan::Push),
        Code::Pop_r16 | Code::Pop_rm16 | Code::Pop_r32 | Code::Pop_rm32
            if reg_op && !matches!(insn.op0_register(), Register::SP | Register::ESP) =>
        {
            return stack.then_some(Plan::Pop)
        }
        Code::Loop_rel8_16_CX | Code::Loop_rel8_16_ECX => return Some(Plan::Loop),
        Code::Jcxz_rel8_16 | Code::Jecxz_rel8_16 => return Some(Plan::Jecxz),
        Code::Jmp_rm16 | Code::Call_rm16 => {
            let ok = reg_op
                || insn.op0_kind() == OpKind::Memory && seg16_ok(insn.memory_segment(), key, false);
            let call = insn.code() == Code::Call_rm16;
            return (ok && (!call || stack)).then_some(if call {
                Plan::CallInd
            } else {
                Plan::JmpInd
            });
        }
        _ => {}
    }
    let src = matches!(insn.op1_kind(), OpKind::MemorySegSI | OpKind::MemorySegESI)
        && seg16_ok(insn.memory_segment(), key, false);
    let dst = key & key::seg64k(0) != 0
        && matches!(insn.op0_kind(), OpKind::MemoryESDI | OpKind::MemoryESEDI);
    if let Some(p) = string_plan(insn, src, dst) {
        return Some(p);
    }
    if insn.is_jcc_short_or_near() {
        return (insn.op0_kind() == OpKind::NearBranch16).then_some(Plan::Jcc);
    }
    match data_plan(insn, info)? {
        Data::Reg => encodes(&renamed(insn)).then_some(Plan::Ident),
        Data::Lea => Some(Plan::Lea),
        Data::Mem { size, write } => (seg16_ok(insn.memory_segment(), key, write)
            && encodes(&on_r14(insn, true)))
        .then_some(Plan::Mem { size, write }),
    }
}

/// The instruction with its memory operand replaced by `[r14 + r13]`
/// (`Emitter::host_ptr`), or by `[r14]` (not `index`: `Emitter::at`).
fn on_r14(insn: &Instruction, index: bool) -> Instruction {
    let mut i = renamed(insn);
    // MOV with a moffs operand (A0-A3) has no ModRM byte to name [r14]:
    // the ModRM forms take the same operands in the same order.
    let modrm = match i.code() {
        Code::Mov_AL_moffs8 => Some(Code::Mov_r8_rm8),
        Code::Mov_AX_moffs16 => Some(Code::Mov_r16_rm16),
        Code::Mov_EAX_moffs32 => Some(Code::Mov_r32_rm32),
        Code::Mov_moffs8_AL => Some(Code::Mov_rm8_r8),
        Code::Mov_moffs16_AX => Some(Code::Mov_rm16_r16),
        Code::Mov_moffs32_EAX => Some(Code::Mov_rm32_r32),
        _ => None,
    };
    if let Some(c) = modrm {
        i.set_code(c);
    }
    i.set_memory_base(Register::R14);
    i.set_memory_index(if index { Register::R13 } else { Register::None });
    i.set_memory_index_scale(1);
    i.set_memory_displacement64(0);
    i.set_memory_displ_size(0);
    i.set_segment_prefix(Register::None);
    i
}

/// Where a translation goes and what it is made from: the host address it
/// is assembled for, the exit stub, the exit id of its first chainable
/// exit, and the physical page of its guest code (`callout::exec` checks
/// that the page still maps there after a change of the page tables).
#[derive(Clone, Copy, Debug)]
pub struct Place {
    pub at: u64,
    pub exit_stub: u64,
    pub first_exit: u32,
    pub phys_page: u32,
    /// The number its first exec call site gets (`Block::exec_sites`).
    pub first_exec_site: u32,
    /// The code segment's base under the key (`links::cs_base`).
    pub cs_base: u32,
}

/// Decodes and translates the block at guest `eip`, whose bytes up to the
/// end of its page are `bytes`, for host address `at`. None when its first
/// instruction cannot be translated. The block ends before any of
/// `breakpoints` (linear addresses) after its first instruction, so that
/// translated code never runs over one: its exit leads to the dispatcher,
/// which stops there.
pub fn translate(
    bytes: &[u8],
    eip: u32,
    key: u32,
    place: Place,
    breakpoints: &[u32],
) -> Option<Block> {
    let Place {
        at,
        exit_stub,
        first_exit,
        phys_page,
        first_exec_site,
        cs_base,
    } = place;
    let mut dec = Decoder::with_ip(bitness(key), bytes, eip as u64, DecoderOptions::NONE);
    let mut info = InstructionInfoFactory::new();
    let mut insns: Vec<(Instruction, Plan)> = Vec::new();
    let mut insn = Instruction::default();
    let mut bytes_used = 0u32;
    let mut end_eip = eip;
    // The block ends after an STI's shadow instruction, for the dispatcher.
    let mut after_shadow = false;
    while dec.can_decode() && insns.len() < MAX_INSNS {
        dec.decode_out(&mut insn);
        let lin = cs_base.wrapping_add(insn.ip32());
        if insn.is_invalid() || (!insns.is_empty() && breakpoints.contains(&lin)) {
            break;
        }
        let Some(p) = plan(&insn, key, &mut info) else {
            break;
        };
        // A block that would only call out for an instruction after which
        // it always leaves is not made: the dispatcher hands that
        // instruction to the interpreter at less cost than entering
        // translated code for it.
        if insns.is_empty() && matches!(p, Plan::Exec) && always_leaves(&insn) {
            break;
        }
        let shadow = matches!(insns.last(), Some((_, Plan::Sti)));
        // In the shadow: an instruction that neither transfers control
        // (its exit could be chained, past the dispatcher) nor is
        // sensitive itself.
        if shadow
            && (p.ends_block() || matches!(p, Plan::Sti | Plan::Cli | Plan::Pushfd | Plan::Exec))
        {
            break;
        }
        bytes_used += insn.len() as u32;
        end_eip = insn.next_ip32();
        insns.push((insn, p));
        if shadow {
            after_shadow = true;
            break;
        }
        if p.ends_block() {
            break;
        }
    }
    // An STI without its shadow instruction in the block is the
    // interpreter's, which keeps the shadow itself.
    if let Some((sti, Plan::Sti)) = insns.last() {
        bytes_used -= sti.len() as u32;
        end_eip = sti.ip32();
        insns.pop();
    }
    // Instructions whose undefined flags translated code cannot make the
    // interpreter's (`Fix::Interp`) go to the interpreter where those
    // flags are needed; each such callout may make more flags needed
    // before it, hence the loop.
    plan_undefined_flags(&mut insns);
    // (An STI's shadow instruction is never a callout: the block ends
    // before the STI, which the interpreter runs with its shadow.)
    if after_shadow && matches!(insns.last(), Some((_, Plan::Exec))) {
        insns.truncate(insns.len().saturating_sub(2));
        if let Some((last, _)) = insns.last() {
            end_eip = last.next_ip32();
        }
        bytes_used = insns.iter().map(|(i, _)| i.len() as u32).sum();
        after_shadow = false;
        plan_undefined_flags(&mut insns);
    }
    if insns.is_empty() {
        return None;
    }
    let mut e = Emitter::new(
        exit_stub,
        insns.len() as u32,
        first_exit,
        (key, cs_base),
        phys_page,
    )
    .ok()?;
    e.first_exec_site = first_exec_site;
    e.page = cs_base.wrapping_add(eip) & !0xFFF;
    e.block(&insns, end_eip, after_shadow).ok()?;
    let callouts = insns
        .iter()
        .filter(|(_, p)| {
            !matches!(
                p,
                Plan::Ident | Plan::Jcc | Plan::Jmp | Plan::Loop | Plan::Jecxz | Plan::Lea
            )
        })
        .count() as u32;
    let placed = crate::asm::Placed::new(&mut e.a, at)?;
    let mut code = placed.code().to_vec();
    let mut exits = Vec::new();
    for x in &e.chain {
        // The site is `E9 rel32` or `0F 8x rel32`, aimed at its home until
        // chained; the exit names its rel32.
        let site = placed.label_ip(&x.jmp)? - at + x.rel_at;
        let home = placed.label_ip(&x.home)? - at;
        let rel = home.wrapping_sub(site + 4) as i64;
        let rel = i32::try_from(rel).ok()?;
        code[site as usize..site as usize + 4].copy_from_slice(&rel.to_le_bytes());
        exits.push((site, home, x.target, x.img));
    }
    let img_entry = match e.img_entry {
        Some(l) if e.lahf => placed.label_ip(&l)? - at,
        _ => 0,
    };
    Some(Block {
        code,
        insns: insns.len() as u32,
        guest_bytes: bytes_used,
        callouts,
        exits,
        img_entry,
        exec_sites: e.exec_sites,
        one_pass: matches!(placed, crate::asm::Placed::OnePass(_)),
    })
}

/// For each instruction, whether the guest status flags in the host's
/// RFLAGS are still needed once its memory check is done: the instruction
/// reads one, or a later one does before all are written again. Later
/// instructions that may exit to the interpreter count as readers (the
/// interpreter may raise an exception there, which pushes EFLAGS), and so
/// does the block's end (the next block may read them). An instruction's
/// own exit restores the flags it saved, so it is not counted for itself.
/// Also returns, for each instruction, the status flags (iced-x86's
/// `RflagsBits`) still needed after it. (At the block's entry they are
/// always kept: `Emitter::block`'s budget check.)
fn flags_live_after(insns: &[(Instruction, Plan)]) -> (Vec<bool>, Vec<u32>) {
    use iced_x86::RflagsBits as F;
    let status = F::OF | F::SF | F::ZF | F::AF | F::CF | F::PF;
    let mut live = status;
    let mut out = vec![true; insns.len()];
    let mut after = vec![status; insns.len()];
    for (k, (i, p)) in insns.iter().enumerate().rev() {
        after[k] = live;
        let before = (live & !(flags_surely_written(i) & status)) | (i.rflags_read() & status);
        out[k] = before != 0;
        let may_exit = !matches!(p, Plan::Ident | Plan::Jcc | Plan::Jmp | Plan::Lea);
        live = if may_exit { status } else { before };
    }
    (out, after)
}

/// How translated code makes the status flags the SDM leaves undefined
/// after an instruction it runs on the host CPU the interpreter's, where
/// they are still needed: the host's own values differ between CPU
/// vendors (an AMD CPU sets AF after a shift, computes SF, ZF and PF after
/// a multiply its own way, changes AF after BT; an Intel CPU, like the
/// interpreter, does not), and the engines must agree on every host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fix {
    /// MUL, IMUL: SF, ZF and PF of the result's low half (the
    /// interpreter's `set_mul_flags`), AF clear.
    Mul,
    /// SHL/SAL: AF clear, OF = CF xor the result's sign.
    Shl,
    /// SAR: AF and OF clear.
    Sar,
    /// SHR by an immediate `n` (1 <= n < width): AF clear, OF = the
    /// operand's old sign, which is bit width - 1 - n of the result.
    Shr(u32),
    /// ROL, and RCL of a doubleword: OF = CF xor the result's sign.
    RotLeft,
    /// ROR, and RCR of a doubleword: OF = the result's top two bits xored.
    RotRight,
    /// BT, BTS, BTR, BTC: only CF changes (the others as they were
    /// before, saved on the host stack first).
    Bt,
    /// Left to the interpreter where the flags are needed (SHR by CL or
    /// past the width, SHLD, SHRD: what OF needs is gone once the host
    /// instruction has run; RCL and RCR of a byte or word, whose count
    /// modulo 9 or 17 may be 0, when the interpreter changes nothing).
    Interp,
}

/// Instructions whose undefined flags translated code cannot make the
/// interpreter's (`Fix::Interp`) become callouts where those flags are
/// needed; each callout may make more flags needed before it (the
/// interpreter may raise an exception there, which pushes EFLAGS), hence
/// the loop.
fn plan_undefined_flags(insns: &mut [(Instruction, Plan)]) {
    loop {
        let (_, after) = flags_live_after(insns);
        let mut changed = false;
        for (k, (insn, p)) in insns.iter_mut().enumerate() {
            if matches!(p, Plan::Ident | Plan::Mem { .. })
                && matches!(undefined_fix(insn), Some((f, Fix::Interp)) if f & after[k] != 0)
            {
                *p = Plan::Exec;
                changed = true;
            }
        }
        if !changed {
            return;
        }
    }
}

/// The undefined status flags after `i` (iced-x86's `RflagsBits`) that
/// translated code must fix, and how; None when the host's are the
/// interpreter's (or the instruction changes no flag).
fn undefined_fix(i: &Instruction) -> Option<(u32, Fix)> {
    use iced_x86::RflagsBits as F;
    use Mnemonic::*;
    // The count: Some(immediate, masked) or None (CL).
    let count = || -> Option<u32> {
        if i.op_count() == 1 {
            return Some(1);
        }
        let last = i.op_count() - 1;
        matches!(i.op_kind(last), OpKind::Immediate8 | OpKind::Immediate8_2nd)
            .then(|| i.immediate(last) as u32 & 0x1F)
    };
    let width = operand_bits(i);
    match i.mnemonic() {
        Mul | Imul => Some((F::SF | F::ZF | F::AF | F::PF, Fix::Mul)),
        Shl | Sal | Sar | Shr | Rol | Ror | Rcl | Rcr if count() == Some(0) => None,
        // A rotate by 1 defines OF (as the interpreter computes it).
        Rol | Ror | Rcl | Rcr if count() == Some(1) => None,
        Shl | Sal => Some((F::AF | F::OF, Fix::Shl)),
        Sar => Some((F::AF | F::OF, Fix::Sar)),
        Shr => match count() {
            Some(n) if n < width => Some((F::AF | F::OF, Fix::Shr(n))),
            _ => Some((F::AF | F::OF, Fix::Interp)),
        },
        Rcl | Rcr if width < 32 => Some((F::OF | F::CF, Fix::Interp)),
        Rol | Rcl => Some((F::OF, Fix::RotLeft)),
        Ror | Rcr => Some((F::OF, Fix::RotRight)),
        Bt | Bts | Btr | Btc => Some((F::OF | F::SF | F::AF | F::PF, Fix::Bt)),
        Shld | Shrd => Some((F::AF | F::OF, Fix::Interp)),
        _ => None,
    }
}

/// The flags image `save_flags` keeps (r10d with LAHF, else RFLAGS on
/// the host stack) into r11, ANDed with `v`, ORed with r9.
fn img_to_r11(a: &mut CodeAssembler, lahf: bool) -> R {
    if lahf {
        a.mov(r11d, r10d)
    } else {
        a.mov(r11, qword_ptr(rsp))
    }
}

fn img_and(a: &mut CodeAssembler, lahf: bool, v: i32) -> R {
    if lahf {
        a.and(r10d, v)
    } else {
        a.and(qword_ptr(rsp), v)
    }
}

fn img_or_r9(a: &mut CodeAssembler, lahf: bool) -> R {
    if lahf {
        a.or(r10d, r9d)
    } else {
        a.or(qword_ptr(rsp), r9)
    }
}

/// The width in bits of `i`'s first operand (a register or memory).
fn operand_bits(i: &Instruction) -> u32 {
    if i.op0_kind() == OpKind::Register {
        i.op0_register().size() as u32 * 8
    } else {
        i.memory_size().size() as u32 * 8
    }
}

/// Whether `i` (a shift or rotate) takes its count from CL.
fn count_in_cl(i: &Instruction) -> bool {
    matches!(
        i.mnemonic(),
        Mnemonic::Shl
            | Mnemonic::Sal
            | Mnemonic::Sar
            | Mnemonic::Shr
            | Mnemonic::Rol
            | Mnemonic::Ror
            | Mnemonic::Rcl
            | Mnemonic::Rcr
    ) && i.op_count() == 2
        && i.op1_kind() == OpKind::Register
}

/// The flags `i` always writes. A shift or rotate whose count is 0 (in CL,
/// or an immediate that masks to 0) changes no flag at all, so one counted
/// in CL writes none for sure (SDM Vol 2B "SAL/SAR/SHL/SHR", "RCL/RCR/
/// ROL/ROR", "SHLD", "SHRD": "If the count is 0, the flags are not
/// affected").
fn flags_surely_written(i: &Instruction) -> u32 {
    use Mnemonic::*;
    // BT and its kin leave the flags the SDM calls undefined as they were,
    // on the interpreter and so in translated code (`Fix::Bt`).
    if matches!(i.mnemonic(), Bt | Bts | Btr | Btc) {
        return iced_x86::RflagsBits::CF;
    }
    if matches!(
        i.mnemonic(),
        Shl | Sal | Shr | Sar | Rol | Ror | Rcl | Rcr | Shld | Shrd
    ) {
        let count = i.op_kind(i.op_count() - 1);
        let imm = matches!(count, OpKind::Immediate8 | OpKind::Immediate8_2nd);
        let nonzero = imm && i.immediate(i.op_count() - 1) & 0x1F != 0;
        // The one-operand forms (D0/D1: count 1) have no count operand.
        let by_one = i.op_count() == 1;
        // RCL/RCR of a byte or word rotate by the count mod 9 or 17,
        // which may be 0 even when the count is not.
        let narrow_rc = matches!(i.mnemonic(), Rcl | Rcr) && i.op0_register().size() < 4
            || matches!(i.mnemonic(), Rcl | Rcr)
                && i.memory_size().size() < 4
                && i.op0_kind() == OpKind::Memory;
        if !(nonzero || by_one) || narrow_rc {
            return 0;
        }
    }
    i.rflags_modified()
}

/// The status flags, as iced-x86 names them (`RflagsBits`).
const STATUS_FLAGS: u32 = iced_x86::RflagsBits::OF
    | iced_x86::RflagsBits::SF
    | iced_x86::RflagsBits::ZF
    | iced_x86::RflagsBits::AF
    | iced_x86::RflagsBits::PF
    | iced_x86::RflagsBits::CF;

/// Plans whose code up to its memory accesses only computes the address
/// (LEA, MOV, MOVZX: no flags read or written; a real-mode segment's limit
/// is checked after the save), and after them only moves data or leaves
/// (its exits restore the flags), or runs the guest instruction
/// (`Emitter::settle_for` first): an owed restore of the flags may be
/// carried into them and out of their accesses' hit paths.
fn keeps_image(p: Plan) -> bool {
    matches!(
        p,
        Plan::Mem { .. }
            | Plan::Push
            | Plan::PushSreg
            | Plan::Pop
            | Plan::Call
            | Plan::Ret(_)
            | Plan::Leave
            | Plan::Lods(_)
            | Plan::Stos(_)
            | Plan::Movs(_)
    )
}

/// `insn` writes every status flag and reads none, whatever its operands
/// (a shift or rotate by a count that may be 0 changes none); flags it
/// leaves undefined count as written where translated code makes them the
/// interpreter's (`undefined_fix`), which it does wherever they are still
/// needed. Its result does not depend on the flags before it.
fn overwrites_status_flags(insn: &Instruction) -> bool {
    if insn.rflags_read() & STATUS_FLAGS != 0 {
        return false;
    }
    if matches!(
        insn.mnemonic(),
        Mnemonic::Shl
            | Mnemonic::Sal
            | Mnemonic::Shr
            | Mnemonic::Sar
            | Mnemonic::Rol
            | Mnemonic::Ror
            | Mnemonic::Rcl
            | Mnemonic::Rcr
            | Mnemonic::Shld
            | Mnemonic::Shrd
    ) {
        let count = insn.op_count() - 1;
        let imm = matches!(insn.op_kind(count), OpKind::Immediate8);
        if !imm || insn.immediate8() & 0x1F == 0 {
            return false;
        }
    }
    let fixed = undefined_fix(insn).map_or(0, |(f, _)| f);
    let written = insn.rflags_written()
        | insn.rflags_cleared()
        | insn.rflags_set()
        | (insn.rflags_undefined() & fixed);
    written & STATUS_FLAGS == STATUS_FLAGS
}

/// `insn` reads no status flag, leaves CF as it is and writes every other
/// one, none of them undefined (INC, DEC).
fn keeps_only_cf(insn: &Instruction) -> bool {
    use iced_x86::RflagsBits as F;
    let written = insn.rflags_written() | insn.rflags_cleared() | insn.rflags_set();
    insn.rflags_read() & STATUS_FLAGS == 0
        && insn.rflags_modified() & F::CF == 0
        && insn.rflags_undefined() & STATUS_FLAGS == 0
        && written & STATUS_FLAGS == STATUS_FLAGS & !F::CF
}

/// `insn` writes register `r` (or part of it), explicitly or not.
fn writes_register(info: &mut InstructionInfoFactory, insn: &Instruction, r: Register) -> bool {
    info.info(insn).used_registers().iter().any(|u| {
        u.register().full_register32() == r
            && matches!(
                u.access(),
                OpAccess::Write
                    | OpAccess::CondWrite
                    | OpAccess::ReadWrite
                    | OpAccess::ReadCondWrite
            )
    })
}

/// `insn` neither reads nor changes a status flag (MOV, LEA, MOVZX,
/// XCHG, BSWAP, NOT, ...).
fn touches_no_status_flag(insn: &Instruction) -> bool {
    (insn.rflags_read() | insn.rflags_modified()) & STATUS_FLAGS == 0
}

/// Whether LAHF and SAHF work in 64-bit mode on this host.
/// Asked once: CPUID is a VM exit where the host is itself a guest (1.2 us
/// each on this project's kvm-pvm machines, two per block translated).
fn host_has_lahf() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        std::arch::x86_64::__cpuid(0x8000_0000).eax >= 0x8000_0001
            && std::arch::x86_64::__cpuid(0x8000_0001).ecx & 1 != 0
    })
}

#[cfg(test)]
thread_local! {
    /// Tests translate as for a host without LAHF in 64-bit mode.
    static NO_LAHF: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether translated code saves flags with LAHF (`save_flags`).
fn use_lahf() -> bool {
    #[cfg(test)]
    if NO_LAHF.with(|c| c.get()) {
        return false;
    }
    host_has_lahf()
}

/// The host register holding guest register `r` (a 32-bit GPR).
fn hr32(r: Register) -> AsmRegister32 {
    match r {
        Register::EAX => eax,
        Register::ECX => ecx,
        Register::EDX => edx,
        Register::EBX => ebx,
        Register::ESP => r12d,
        Register::EBP => ebp,
        Register::ESI => esi,
        _ => edi,
    }
}

/// The host register holding guest register `r` (a 16-bit GPR).
fn hr16(r: Register) -> AsmRegister16 {
    match r {
        Register::AX => ax,
        Register::CX => cx,
        Register::DX => dx,
        Register::BX => bx,
        Register::SP => r12w,
        Register::BP => bp,
        Register::SI => si,
        _ => di,
    }
}

/// The index of segment register `s` (ES, CS, SS, DS, FS, GS: 0-5).
fn seg_index(s: Register) -> usize {
    SEG_ORDER.iter().position(|&r| r == s).unwrap_or(3)
}

/// The stack segment's index.
const SS: usize = 2;

struct Emitter {
    a: CodeAssembler,
    /// Real-mode code (`key::CODE16`): accesses go through segment bases
    /// and the 64 KiB limit, the stack is SP.
    code16: bool,
    /// The code segment's base (`links::cs_base`).
    cs_base: u32,
    exit_stub: u64,
    /// Guest instructions in the block.
    n: u32,
    /// Exit id of the block's first chainable exit.
    first_exit: u32,
    /// The chainable exits: the label on each `jmp rel32`, the label of
    /// its home (the stores that tell the dispatcher where it goes), its
    /// target and the instructions retired there.
    chain: Vec<ChainExit>,
    /// The label of `Block::img_entry`.
    img_entry: Option<CodeLabel>,
    /// The block's first guest EIP and the label of its entry (where a
    /// chain to it comes in with the flags in RFLAGS): a branch back to
    /// the block's start (a loop of one block) jumps there itself, not
    /// through a chain (`self_entry`).
    entry: Option<(u32, CodeLabel)>,
    /// The host has LAHF/SAHF in 64-bit mode (CPUID 8000_0001h:ECX[0]):
    /// flags are saved in r10w instead of on the stack.
    lahf: bool,
    /// The slow paths of instructions whose fast path cannot serve them
    /// (an access the TLB lookup and `host_ptr` cannot, one past a
    /// segment limit, a sensitive callout that declines), emitted after
    /// the block's body: the interpreter runs the instruction there
    /// (`exec_call`), and the block goes on after it (at the resume
    /// label, where the flags may be owed as their image: `pending`,
    /// which the slow path then saves; None: an exit to the next
    /// instruction) or leaves.
    fails: Vec<Fail>,
    /// The memory accesses' slow paths (`Cold`).
    colds: Vec<Cold>,
    /// The guest's status flags are in the image `save_flags` keeps
    /// (r10d) and not in the host's RFLAGS, which hold garbage: a restore
    /// is owed before anything needs them there (`materialize`), and a
    /// save before the next lookup is not needed. Only with LAHF. This is
    /// the emitter's state at the point of emission: every label that
    /// joins paths gets the same state on each of them.
    pending: bool,
    /// An undefined-flags fix not yet made on the image (only while the
    /// restore is owed, `pending`): a later instruction that writes every
    /// status flag makes it unneeded; it is made before the flags are
    /// restored or leave the block in their image, on the slow paths of
    /// the accesses meanwhile (`Cold::fix`), and before anything writes
    /// the register it reads. A shift before a read-modify-write of
    /// memory (which may fault and push EFLAGS) pays it only on a miss.
    deferred: Option<Deferred>,
    /// For the registers an instruction writes.
    info: InstructionInfoFactory,
    /// r14 holds the whole host address of the access just looked up
    /// (`Emitter::at`), not its addend for r13.
    r14_whole: bool,
    /// The instruction being emitted may leave its memory access's hit
    /// path with the flags owed (`pending`): nothing in it after the
    /// access reads the host's RFLAGS (`keeps_image`).
    lazy_hit: bool,
    /// The last write to memory looked up, while r13 and r14 still hold
    /// its access on every path that goes on in the block (`Known`).
    known: Option<Known>,
    /// The instruction being emitted accesses memory where `known` is:
    /// no lookup.
    reuse: bool,
    /// The last stack access looked up (`StackKnown`), while r14 still
    /// holds its page's addend on every path that goes on in the block.
    stack_known: Option<StackKnown>,
    /// The access being emitted is the stack's (PUSH, POP, CALL, RET,
    /// LEAVE, PUSHFD: never served from a device register, so that its
    /// addend is RAM's), and where the known stack access is relative to
    /// ESP now, if its page may be taken over (`stack_host_ptr`).
    stack_access: bool,
    stack_reuse: Option<i32>,
    /// The mode key the block is translated under.
    key: u32,
    /// The physical page the block's code was read from.
    phys_page: u32,
    /// The linear page of the block's first instruction.
    page: u32,
    /// The exec call sites (`Block::exec_sites`), and the number the
    /// first gets.
    exec_sites: Vec<ctx::ExecArgs>,
    first_exec_site: u32,
}

type R = Result<(), IcedError>;

/// A slow path (`Emitter::fails`): its label, the instruction's index in
/// the block, and where the block goes on after it, with whether the flags
/// are owed there as their image.
struct Fail {
    label: CodeLabel,
    k: u32,
    resume: Option<(CodeLabel, bool)>,
}

/// A write to memory whose lookup a later access to the same place takes
/// over (`Emitter::known`): the address as the instruction gave it (same
/// registers, unchanged since, same displacement and segment: the same
/// linear address), its size, and the slow paths of its instruction, in
/// `Emitter::fails` and `Emitter::colds`. Its lookup found the page
/// writable RAM, the access within it, its accessed and dirty bits set,
/// so an access of at most its size at the same address needs no lookup
/// and cannot fault; nothing between them may change a mapping (no
/// callout comes between: anything but register instructions and
/// accesses ends it). The slow paths of the write, where the interpreter
/// ran it and r14 holds nothing, leave the block after it instead of
/// going on.
#[derive(Clone)]
struct Known {
    addr: (Register, Register, Register, u32, u64),
    size: u32,
    fails: std::ops::Range<usize>,
    colds: std::ops::Range<usize>,
}

/// A stack access whose page a later one may take over
/// (`Emitter::stack_known`): where it was relative to ESP as it stands
/// after the instructions since (`off`), whether its lookup was a write's
/// (a write may take over a write's page only), and its instruction's
/// slow paths. Its lookup found RAM (a stack access is never served from a
/// device register: `Cold::stack`), so another access within the same
/// page, of the same kind or a read, aligned, needs only the page
/// compared; nothing between them changes a mapping (only register
/// instructions that leave ESP alone come between). Its slow paths leave
/// the block after it instead of going on, as `Known`'s do.
#[derive(Clone)]
struct StackKnown {
    off: i32,
    write: bool,
    fails: std::ops::Range<usize>,
    colds: std::ops::Range<usize>,
}

/// The address of `insn`'s memory operand, as `Known` compares them.
fn mem_addr(insn: &Instruction) -> (Register, Register, Register, u32, u64) {
    (
        insn.memory_segment(),
        insn.memory_base(),
        insn.memory_index(),
        insn.memory_index_scale(),
        insn.memory_displacement64(),
    )
}

/// An undefined-flags fix that waits (`Emitter::deferred`): the
/// instruction, and the register holding the result it reads (None: it
/// reads the image only).
#[derive(Clone, Copy)]
struct Deferred {
    insn: Instruction,
    reg: Option<Register>,
}

/// A chainable exit (`Emitter::chain`): the label on its `jmp rel32`, the
/// label of its home, its target EIP, the instructions retired there, and
/// whether it leaves with the flags owed (`Block::exits`).
struct ChainExit {
    jmp: CodeLabel,
    /// The offset of the jump's rel32 in it: 1 for JMP (E9), 2 for a
    /// conditional branch (0F 8x) chained itself.
    rel_at: u64,
    home: CodeLabel,
    target: u32,
    retired: u32,
    img: bool,
}

/// The slow paths of a memory access (`Emitter::cold`), emitted after the
/// block's body so that its hit path runs straight on: the labels its fast
/// path jumps to (a misaligned access's check, a real-mode limit exceeded,
/// the TLB miss) and back to (the hit, the instruction's use of r14), and
/// where the block goes on after the interpreter runs the instruction (as
/// `Fail::resume`).
struct Cold {
    /// The TLB lookup, out of line where the hot path has the page
    /// another way (a real-mode read straight from RAM below
    /// `Ctx::real_end`, the known stack page), and where it goes back to.
    lookup: Option<(CodeLabel, CodeLabel)>,
    unaligned: Option<CodeLabel>,
    limit: Option<CodeLabel>,
    miss: CodeLabel,
    hit: CodeLabel,
    done: CodeLabel,
    size: u32,
    write: bool,
    k: u32,
    resume: Option<(CodeLabel, bool)>,
    /// The fix waiting when the access was made: made before the slow
    /// paths restore the flags.
    fix: Option<Deferred>,
    /// The hit path joins `done` with the guest flags in RFLAGS (not
    /// owed from their image, nor dead).
    rflags: bool,
    /// A stack access: the callout serves it from RAM only (never a
    /// device register's value in the context, whose address a later
    /// access to the same page would take over: `StackKnown`).
    stack: bool,
}

impl Fail {
    fn new(label: CodeLabel, k: u32) -> Fail {
        Fail {
            label,
            k,
            resume: None,
        }
    }
}

impl Emitter {
    fn new(
        exit_stub: u64,
        n: u32,
        first_exit: u32,
        (key, cs_base): (u32, u32),
        phys_page: u32,
    ) -> Result<Emitter, IcedError> {
        Ok(Emitter {
            key,
            phys_page,
            code16: key & key::CODE16 != 0,
            cs_base,
            a: CodeAssembler::new(64)?,
            exit_stub,
            n,
            first_exit,
            chain: Vec::new(),
            img_entry: None,
            entry: None,
            lahf: use_lahf(),
            fails: Vec::new(),
            colds: Vec::new(),
            pending: false,
            deferred: None,
            info: InstructionInfoFactory::new(),
            r14_whole: false,
            lazy_hit: false,
            known: None,
            stack_known: None,
            stack_access: false,
            stack_reuse: None,
            reuse: false,
            exec_sites: Vec::new(),
            first_exec_site: 0,
            page: 0,
        })
    }

    /// Before `insn` runs on the host: an owed restore (`pending`) kept
    /// when it neither reads nor changes a status flag, dropped when it
    /// writes every one and reads none, else paid.
    fn settle_for(&mut self, insn: &Instruction) -> R {
        if !self.pending || touches_no_status_flag(insn) {
            return Ok(());
        }
        if overwrites_status_flags(insn) {
            self.pending = false;
            self.deferred = None;
            Ok(())
        } else if keeps_only_cf(insn) {
            // INC and DEC (a loop's count after a store): CF alone comes
            // back, from the image (bit 8: AH's bit 0, LAHF's CF), by BT,
            // which leaves ZF alone and the others undefined (an AMD host
            // changes AF): INC or DEC writes them all. One instruction
            // where the restore is five. No waiting fix touches CF.
            self.a.bt(r10d, 8)?;
            self.pending = false;
            self.deferred = None;
            Ok(())
        } else {
            self.materialize()
        }
    }

    /// Leaves the block: next EIP `eip` (or r8d when None), `retired`
    /// instructions done.
    fn exit(&mut self, eip: Option<u32>, retired: u32) -> R {
        self.exit_with(eip, retired, self.n, None)
    }

    /// Leaves the block for the guest EIP in r8d (a RET's or an indirect
    /// branch's target), `retired` instructions done: straight into that
    /// EIP's translation when the indirect-branch cache has it under this
    /// block's key (`ctx::Ibtc`), else through the dispatcher, which fills
    /// the cache.
    fn indirect_exit(&mut self, retired: u32) -> R {
        self.apply_deferred()?;
        let mut miss = self.a.create_label();
        self.save_flags()?;
        let a = &mut self.a;
        // The slot: ctx::ibtc_slot's hash, times the entry's 16 bytes.
        a.mov(r9d, r8d)?;
        a.shr(r9d, 10)?;
        a.xor(r9d, r8d)?;
        a.and(r9d, (ctx::IBTC_LEN - 1) as u32)?;
        a.shl(r9d, 4)?;
        a.lea(r9, r15 + r9 + ctx::IBTC)?;
        a.cmp(dword_ptr(r9), r8d)?;
        a.jne(miss)?;
        a.cmp(dword_ptr(r9 + 4), self.key)?;
        a.jne(miss)?;
        // (The cache holds `Block::img_entry`s: the flags go in their
        // image.)
        self.restore_flags_lazy()?;
        self.a.jmp(qword_ptr(r9 + 8))?;
        self.a.set_label(&mut miss)?;
        self.restore_flags()?;
        self.exit(None, retired)
    }

    /// An exit to a known guest EIP that the dispatcher may later chain
    /// straight to the target's translation: its `jmp` is a patchable
    /// `E9 rel32`.
    /// Once chained, the jump goes straight to the target's translation
    /// and none of the exit's stores run; until then it goes to its home,
    /// emitted after the block's body.
    ///
    /// With a restore of the flags owed (`pending`), the exit leaves with
    /// the flags in their image: chained, it goes to its target's
    /// `Block::img_entry`; its home restores them.
    fn chained_exit(&mut self, eip: u32, retired: u32) -> R {
        let site = self.a.create_label();
        let img = self.pending;
        self.exit_site(site, eip, retired, img)
    }

    /// `chained_exit` with its site label made beforehand (a Jcc's target:
    /// the assembler allows one label per instruction).
    ///
    /// An exit to another linear page first looks at `Ctx::links_stale`
    /// (with JRCXZ: the guest flags are live here) and goes home while
    /// the links wait to be checked against changed page tables
    /// (`links::Links::defer`).
    fn chained_exit_at(&mut self, site: CodeLabel, eip: u32, retired: u32) -> R {
        // (Jumps may come to a label made beforehand: their sources had
        // the flags in RFLAGS.)
        debug_assert!(!self.pending);
        self.exit_site(site, eip, retired, false)
    }

    fn exit_site(&mut self, mut site: CodeLabel, eip: u32, retired: u32, img: bool) -> R {
        // (The flags leave in their image: whole.)
        self.apply_deferred()?;
        let home = self.a.create_label();
        self.a.set_label(&mut site)?;
        let mut jmp = site;
        if !self.in_page(eip) {
            let mut go = self.a.create_label();
            jmp = self.a.create_label();
            let a = &mut self.a;
            a.mov(r9, rcx)?;
            a.mov(ecx, dword_ptr(r15 + ctx::LINKS_STALE))?;
            a.jrcxz(go)?;
            a.mov(rcx, r9)?;
            a.jmp(home)?;
            a.set_label(&mut go)?;
            a.mov(rcx, r9)?;
            a.set_label(&mut jmp)?;
        }
        // rel32 filled in after assembly.
        self.a.db(&[0xE9, 0, 0, 0, 0])?;
        self.chain.push(ChainExit {
            jmp,
            rel_at: 1,
            home,
            target: eip,
            retired,
            img,
        });
        // (Nothing follows an unconditional jump.)
        self.pending = false;
        Ok(())
    }

    /// Where a branch to guest `eip` (with the flags in RFLAGS) goes in
    /// this block itself: its entry, when `eip` is the block's first
    /// instruction, so the block is a loop. That is where a
    /// chain to the block would go (a loop keeps its mode key: a callout
    /// that changes the key leaves the block). A chain is undone when its
    /// target's translation goes or a breakpoint comes
    /// (`Bt::honour_breakpoints`); neither happens while the block runs (a
    /// write to its code page leaves it after the write, `callout::exec`;
    /// breakpoints change only between runs, and a block that starts at
    /// one is never entered).
    fn self_entry(&self, eip: u32) -> Option<CodeLabel> {
        self.entry
            .filter(|&(start, _)| start == eip)
            .map(|(_, entry)| entry)
    }

    /// Guest `eip` is in this block's linear page (an exit there needs no
    /// links check on the way).
    fn in_page(&self, eip: u32) -> bool {
        self.cs_base.wrapping_add(eip) & !0xFFF == self.page
    }

    /// A chainable exit that is a conditional branch (`0F 8x rel32`, the
    /// rel32 filled in after assembly) to guest `eip` in this block's
    /// linear page, `retired` instructions done; the flags are in RFLAGS.
    fn jcc_exit(&mut self, cc: ConditionCode, eip: u32, retired: u32) -> R {
        debug_assert!(!self.pending && self.deferred.is_none());
        let mut jmp = self.a.create_label();
        let home = self.a.create_label();
        self.a.set_label(&mut jmp)?;
        // (ConditionCode counts from None: o is 1, opcode 0F 80.)
        self.a.db(&[0x0F, 0x80 + cc as u8 - 1, 0, 0, 0, 0])?;
        self.chain.push(ChainExit {
            jmp,
            rel_at: 2,
            home,
            target: eip,
            retired,
            img: false,
        });
        Ok(())
    }

    /// The homes of the chainable exits.
    /// (An exit that leaves with the flags owed restores them at home.)
    fn chain_homes(&mut self) -> R {
        for k in 0..self.chain.len() {
            let x = &self.chain[k];
            let (mut home, target, retired) = (x.home, x.target, x.retired);
            self.pending = x.img;
            self.a.set_label(&mut home)?;
            self.chain[k].home = home;
            self.exit_with(Some(target), retired, self.n, Some(k as u32))?;
        }
        Ok(())
    }

    fn exit_with(&mut self, eip: Option<u32>, retired: u32, n: u32, chain: Option<u32>) -> R {
        self.materialize()?;
        match eip {
            Some(v) => self.a.mov(dword_ptr(r15 + ctx::EIP), v)?,
            None => self.a.mov(dword_ptr(r15 + ctx::EIP), r8d)?,
        }
        self.a.mov(dword_ptr(r15 + ctx::RETIRED), retired)?;
        self.a.mov(dword_ptr(r15 + ctx::BLOCK_N), n)?;
        // An exit to the EIP in r8d is an indirect branch's cache miss:
        // the dispatcher fills the cache for it (`ctx::INDIRECT_EXIT`).
        let id = match (chain, eip) {
            (Some(k), _) => self.first_exit + k,
            (None, None) => ctx::INDIRECT_EXIT,
            (None, Some(_)) => ctx::NO_EXIT,
        };
        self.a.mov(dword_ptr(r15 + ctx::EXIT), id)?;
        self.a.jmp(self.exit_stub)
    }

    /// r14 + r13 = host address of the `size`-byte access at guest linear
    /// r13d (r14: the TLB entry's addend, or the callout's address minus
    /// r13),
    /// or, when neither the inline TLB lookup nor the callout can serve it,
    /// an exit that lets the interpreter run instruction `k` (at guest
    /// `eip`). The guest flags are saved first (PUSHFQ is cheap) and, on a
    /// hit, dropped unless they are still needed (`flags_live`: POPFQ is
    /// not); the miss path restores them, so an exception the interpreter
    /// raises there pushes the right EFLAGS.
    fn host_ptr(&mut self, size: u32, write: bool, k: u32, flags_live: bool) -> R {
        self.host_ptr_in(None, size, write, k, flags_live)
    }

    /// The operand for `size` bytes at the access just looked up: [r14 +
    /// r13], or [r14] after LEA r14, [r14 + r13] for a byte or a word
    /// (loads of part of a register through an index register measured
    /// slower on this project's AMD hosts: real16's LODSW 5 %).
    fn at(&mut self, size: u32) -> Result<AsmMemoryOperand, IcedError> {
        if size < 4 && !self.r14_whole {
            self.a.lea(r14, r14 + r13)?;
            self.r14_whole = true;
        }
        Ok(if self.r14_whole { r14 + 0 } else { r14 + r13 })
    }

    /// `host_ptr` for real-mode code: r13d holds the offset of the access
    /// in segment `seg` (an index into `SEG_ORDER`). The offset is checked
    /// against the segment's 64 KiB limit (a `key::seg64k` segment, or CS),
    /// then the segment's base added: r13d becomes the linear address. An
    /// access past the limit leaves for the interpreter, which raises the
    /// #GP or #SS.
    fn seg_ptr(&mut self, seg: usize, size: u32, write: bool, k: u32, flags_live: bool) -> R {
        self.host_ptr_in(Some(seg), size, write, k, flags_live)
    }

    fn host_ptr_in(
        &mut self,
        seg: Option<usize>,
        size: u32,
        write: bool,
        k: u32,
        flags_live: bool,
    ) -> R {
        let miss = self.a.create_label();
        let mut done = self.a.create_label();
        let limit = self.a.create_label();
        self.r14_whole = false;
        self.save_flags()?;
        // (The slow paths restore the flags: with the waiting fix made,
        // whatever the hit path does with them.)
        let fix = self.deferred;
        let stack = std::mem::take(&mut self.stack_access);
        let stack_reuse = self.stack_reuse.take().filter(|_| seg.is_none());
        // The known stack access's page, when this access is aligned and
        // in it: its addend, still in r14, serves (`StackKnown`).
        // (Then the lookup goes out of line, and the hot path on without
        // a taken jump: `lookup`.)
        let mut lookup = None;
        if let Some(off) = stack_reuse {
            let far = self.a.create_label();
            let join = self.a.create_label();
            let a = &mut self.a;
            a.lea(r11d, r12d + off)?;
            a.xor(r11d, r13d)?;
            a.test(r11d, ctx::TLB.page_mask | (size - 1))?;
            a.jnz(far)?;
            lookup = Some((far, join));
        }
        if let Some(s) = seg {
            let a = &mut self.a;
            a.cmp(r13d, 0x1_0000 - size)?;
            a.ja(limit)?;
            if s == 1 {
                a.add(r13d, self.cs_base as i32)?;
            } else {
                a.add(r13d, dword_ptr(r15 + ctx::SEG_BASE + 4 * s as i32))?;
            }
        }
        // A read of at most 4 bytes in real mode, or in 16-bit protected
        // mode without paging, that is not the stack's (a later push may
        // take over the stack's page: `StackKnown`): below `Ctx::real_end`
        // straight from guest RAM, where the TLB would find the same
        // (`Ctx::real_base`); the lookup out of line for the rest (ROM,
        // the VGA window, a watchpoint set).
        let linear_is_physical = self.key & (key::CODE16 | key::PM16) == key::CODE16
            || self.key & (key::CODE16 | key::PM16 | key::NOPAGE)
                == key::CODE16 | key::PM16 | key::NOPAGE;
        let from_ram = lookup.is_none()
            && linear_is_physical
            && seg.is_some()
            && !write
            && !stack
            && size <= 4;
        let hit = self.a.create_label();
        let unaligned = self.a.create_label();
        if from_ram {
            let far = self.a.create_label();
            let join = self.a.create_label();
            let a = &mut self.a;
            a.cmp(r13d, dword_ptr(r15 + ctx::REAL_END))?;
            a.jae(far)?;
            a.mov(r14, qword_ptr(r15 + ctx::REAL_BASE))?;
            lookup = Some((far, join));
        } else if lookup.is_none() {
            self.tlb_lookup(size, write, miss, unaligned, hit)?;
        }
        if let Some((_, mut join)) = lookup {
            self.a.set_label(&mut join)?;
            self.a.nop()?;
        }
        let rflags = flags_live && !self.lazy_hit;
        if flags_live && self.lazy_hit {
            // The slow paths join with the flags still in the image,
            // which the host_ptr stub keeps: owed there too.
            self.restore_flags_lazy()?;
        } else if flags_live {
            self.restore_flags()?;
        } else {
            self.drop_flags()?;
        }
        // (On the caller's next instruction: the callers use r14 at once.)
        self.a.set_label(&mut done)?;
        self.colds.push(Cold {
            lookup,
            unaligned: (size > 1).then_some(unaligned),
            limit: seg.is_some().then_some(limit),
            miss,
            hit,
            done,
            size,
            write,
            k,
            resume: None,
            fix,
            rflags,
            stack,
        });
        Ok(())
    }

    /// The inline TLB lookup of the `size`-byte access at linear r13d:
    /// r14 = the entry's addend at `hit`, or on to `miss` (`unaligned` for
    /// a misaligned access, which is checked out of line). The slot, by
    /// the interpreter's hash (`TlbLayout::slot`): the page number's low
    /// bits (lin >> page_shift & slot_mask) times the entry's sixteen
    /// bytes, in one shift and one mask. The tag against the access's
    /// page with its misaligned low bits: an aligned access (which cannot
    /// cross a page) matches at once.
    fn tlb_lookup(
        &mut self,
        size: u32,
        write: bool,
        miss: CodeLabel,
        unaligned: CodeLabel,
        mut hit: CodeLabel,
    ) -> R {
        let t = ctx::TLB;
        const _: () = assert!(ctx::TLB.entry_size == 16);
        let a = &mut self.a;
        a.mov(r14d, r13d)?;
        a.shr(r14d, t.page_shift - 4)?;
        a.and(r14d, t.slot_mask << 4)?;
        a.add(r14, qword_ptr(r15 + ctx::TLB_PTR))?;
        let tag = if write { t.wtag_offset } else { t.rtag_offset };
        a.mov(r11d, r13d)?;
        a.and(r11d, t.page_mask | (size - 1))?;
        a.cmp(r11d, dword_ptr(r14 + tag))?;
        a.jne(if size > 1 { unaligned } else { miss })?;
        a.set_label(&mut hit)?;
        a.mov(r14, qword_ptr(r14 + t.addend_offset))
    }

    /// The slow paths of an access (`Cold`), after the block's body: a
    /// misaligned access's check, a real-mode segment's limit exceeded,
    /// and the TLB miss (the callout, back to `done` when it serves the
    /// access; else the interpreter runs the instruction).
    fn cold(&mut self, c: Cold) -> R {
        let t = ctx::TLB;
        let tag = if c.write {
            t.wtag_offset
        } else {
            t.rtag_offset
        };
        if let Some((mut far, join)) = c.lookup {
            self.a.set_label(&mut far)?;
            let unaligned = c.unaligned.unwrap_or(c.miss);
            self.tlb_lookup(c.size, c.write, c.miss, unaligned, c.hit)?;
            self.a.jmp(join)?;
        }
        if let Some(mut unaligned) = c.unaligned {
            let a = &mut self.a;
            a.set_label(&mut unaligned)?;
            a.mov(r11d, r13d)?;
            a.and(r11d, t.page_mask)?;
            a.cmp(r11d, dword_ptr(r14 + tag))?;
            a.jne(c.miss)?;
            // The access must not cross into the next page.
            a.mov(r11d, r13d)?;
            a.and(r11d, 0xFFF)?;
            a.cmp(r11d, 0x1000 - c.size)?;
            a.ja(c.miss)?;
            a.jmp(c.hit)?;
        }
        if let Some(mut limit) = c.limit {
            // Past the limit: the interpreter.
            self.a.set_label(&mut limit)?;
            if let Some(d) = &c.fix {
                self.apply_fix(d)?;
            }
            self.leave_to_interpreter(c.k, c.resume)?;
        }
        let mut miss = c.miss;
        self.a.set_label(&mut miss)?;
        if let Some(d) = &c.fix {
            self.apply_fix(d)?;
        }
        if self.lahf {
            return self.callout_from_image(c);
        }
        self.restore_flags()?;
        self.callout(&c)?;
        self.a.jmp(c.done)
    }

    /// The miss path's `callout` where the guest flags are in their image
    /// (r10, LAHF and SETO: `save_flags`), which the host_ptr stub keeps:
    /// RFLAGS are not saved and restored around the call (POPFQ costs some
    /// twenty cycles, on every TLB miss and every device register read
    /// from translated code: xv6 reads its local APIC's ID 93 M times in
    /// usertests). They are made again from the image where the path joins
    /// code that wants them in RFLAGS (`Cold::rflags`), and on the way to
    /// the interpreter, whose path takes them on the host stack.
    fn callout_from_image(&mut self, c: Cold) -> R {
        let mut failed = self.a.create_label();
        let mut call = self.a.create_label();
        if !c.write && !c.stack {
            // A stable device register's copy (`Ctx::stable_lin`), if it
            // is this read's and still holds (the TLB's and the bus's
            // epochs unmoved): the read served from it, counted, without
            // a call (xv6's `lapicid`).
            let user = (self.key & key::USER != 0) as u32;
            let a = &mut self.a;
            a.cmp(r13d, dword_ptr(r15 + ctx::STABLE_LIN))?;
            a.jne(call)?;
            a.cmp(dword_ptr(r15 + ctx::STABLE_SIZE), c.size)?;
            a.jne(call)?;
            a.cmp(dword_ptr(r15 + ctx::STABLE_USER), user)?;
            a.jne(call)?;
            a.mov(r11, qword_ptr(r15 + ctx::TLB_EPOCH_PTR))?;
            a.mov(r11, qword_ptr(r11))?;
            a.cmp(r11, qword_ptr(r15 + ctx::STABLE_TLB_EPOCH))?;
            a.jne(call)?;
            a.mov(r11, qword_ptr(r15 + ctx::BUS_EPOCH_PTR))?;
            a.mov(r11, qword_ptr(r11))?;
            a.cmp(r11, qword_ptr(r15 + ctx::STABLE_BUS_EPOCH))?;
            a.jne(call)?;
            a.add(qword_ptr(r15 + ctx::STABLE_HITS), 1)?;
            a.add(qword_ptr(r15 + ctx::MMIO_READS), 1)?;
            // (As the hit path leaves it: the access at r14 + r13.)
            a.lea(r14, r15 + ctx::STABLE_VALUE)?;
            a.sub(r14, r13)?;
            if c.rflags {
                self.restore_flags()?;
            }
            self.a.jmp(c.done)?;
            // (One label per instruction: `miss` is on the first one when
            // there is no check.)
            self.a.set_label(&mut call)?;
        }
        let a = &mut self.a;
        // (Sixteen bytes, as `callout` pushes: the stub's pushes align
        // the stack for its call. LEA leaves the flags alone; nothing here
        // needs them.)
        a.lea(rsp, rsp - 8)?;
        a.push(rdx)?;
        a.mov(edx, c.size | (c.write as u32) << 8 | (c.stack as u32) << 9)?;
        a.call(qword_ptr(r15 + ctx::HOST_PTR_STUB))?;
        a.pop(rdx)?;
        a.lea(rsp, rsp + 8)?;
        a.test(r14, r14)?;
        a.jz(failed)?;
        // (As the hit path leaves it: the access at r14 + r13.)
        a.sub(r14, r13)?;
        if c.rflags {
            self.restore_flags()?;
        }
        self.a.jmp(c.done)?;
        self.a.set_label(&mut failed)?;
        self.leave_to_interpreter(c.k, c.resume)
    }

    /// From a slow path whose flags are in their image: on to instruction
    /// `k`'s `Fail` path, the flags as it wants them (on the host stack),
    /// whence the interpreter runs the instruction and the block goes on at
    /// `resume` (or leaves).
    fn leave_to_interpreter(&mut self, k: u32, resume: Option<(CodeLabel, bool)>) -> R {
        let fail = self.a.create_label();
        self.restore_flags()?;
        self.a.pushfq()?;
        self.a.jmp(fail)?;
        self.fails.push(Fail {
            label: fail,
            k,
            resume,
        });
        Ok(())
    }

    /// Instruction `k` run by the interpreter (`callout::exec`), through
    /// the exec stub (`stubs`): the number of its exec call site (whose
    /// arguments are kept in `links::Links::exec_sites`) in the context,
    /// then a call. The stub returns here when the block goes on, and
    /// otherwise leaves for the dispatcher itself, at the EIP the
    /// interpreter left.
    fn exec_call(&mut self, insn: &Instruction, k: u32) -> R {
        let slot = (insn.mnemonic() as usize).min(ctx::EXEC_SLOTS - 1) as u32
            | if insn.has_rep_prefix() || insn.has_repne_prefix() {
                ctx::EXEC_REP
            } else {
                0
            };
        self.exec_sites.push(ctx::ExecArgs {
            eip: insn.ip32(),
            at: self.n << 16 | k,
            next: insn.next_ip32(),
            slot,
            phys_page: self.phys_page,
            port: port_access(insn),
            neutral: mode_neutral(insn),
            decoded: engine_interp::fallback::Decoded::new(insn),
        });
        let site = self.first_exec_site + self.exec_sites.len() as u32 - 1;
        let a = &mut self.a;
        a.mov(dword_ptr(r15 + ctx::EXEC_SITE), site)?;
        a.call(qword_ptr(r15 + ctx::EXEC_STUB))
    }

    /// r13d = the offset of `insn`'s memory operand in its segment, flags
    /// untouched: 16-bit addressing (BX, BP, SI, DI, a 16-bit
    /// displacement) wraps at 64 KiB; an address-size prefix gives the
    /// 32-bit sum, which the limit check then sees whole.
    fn offset16(&mut self, insn: &Instruction) -> R {
        if !addr16(insn) {
            return self.linear(insn);
        }
        let base = insn.memory_base();
        let index = insn.memory_index();
        let disp = (insn.memory_displacement32() & 0xFFFF) as i32;
        if base == Register::None && index == Register::None {
            return self.a.mov(r13d, disp as u32);
        }
        let full = |r: Register| hr32(r.full_register32());
        let m: AsmMemoryOperand = match (base, index) {
            (Register::None, i) => full(i) + 0,
            (b, Register::None) => full(b) + 0,
            (b, i) => full(b) + full(i),
        };
        self.a.lea(r13d, m + disp)?;
        self.a.movzx(r13d, r13w)
    }

    /// r14 + r13 = the host address of `insn`'s memory operand (`size` bytes),
    /// in flat 32-bit code or in real-mode code.
    fn mem_ptr(
        &mut self,
        insn: &Instruction,
        size: u32,
        write: bool,
        k: u32,
        flags_live: bool,
    ) -> R {
        if self.code16 {
            self.offset16(insn)?;
            let seg = seg_index(insn.memory_segment());
            self.seg_ptr(seg, size, write, k, flags_live)
        } else {
            self.linear(insn)?;
            self.host_ptr(size, write, k, flags_live)
        }
    }

    /// The push of `w` bytes in real-mode code: r14 + r13 = the host address of
    /// the slot at SS:(SP - w) (SP wrapping at 64 KiB). SP itself is moved
    /// by `sp_add` once the store is done.
    fn push16_slot(&mut self, w: u32, k: u32, flags_live: bool) -> R {
        self.a.lea(r13d, r12 - w as i32)?;
        self.a.movzx(r13d, r13w)?;
        self.seg_ptr(SS, w, true, k, flags_live)
    }

    /// r13d = the offset of a string instruction's source (`src`: SI or
    /// ESI) or destination (DI or EDI), by its address size.
    fn string_offset(&mut self, insn: &Instruction, src: bool) -> R {
        let a16 = if src {
            insn.op1_kind() == OpKind::MemorySegSI
        } else {
            insn.op0_kind() == OpKind::MemoryESDI
        };
        let a = &mut self.a;
        match (src, a16) {
            (true, true) => a.movzx(r13d, si),
            (true, false) => a.mov(r13d, esi),
            (false, true) => a.movzx(r13d, di),
            (false, false) => a.mov(r13d, edi),
        }
    }

    /// SI/ESI or DI/EDI += `w` (EFLAGS.DF is 0), flags untouched: SI and
    /// DI wrap at 64 KiB, the upper halves kept.
    fn string_advance(&mut self, insn: &Instruction, src: bool, w: u32) -> R {
        let a16 = if src {
            insn.op1_kind() == OpKind::MemorySegSI
        } else {
            insn.op0_kind() == OpKind::MemoryESDI
        };
        let a = &mut self.a;
        let w = w as i32;
        match (src, a16) {
            (true, true) => a.lea(si, rsi + w),
            (true, false) => a.lea(esi, rsi + w),
            (false, true) => a.lea(di, rdi + w),
            (false, false) => a.lea(edi, rdi + w),
        }
    }

    /// LODS's load of a `w`-byte element at [r14] into AL, AX or EAX.
    fn lods_load(&mut self, w: u32) -> R {
        let m = self.at(w)?;
        match w {
            1 => self.a.mov(al, byte_ptr(m)),
            2 => self.a.mov(ax, word_ptr(m)),
            _ => self.a.mov(eax, dword_ptr(m)),
        }
    }

    /// STOS's store of AL, AX or EAX to [r14].
    fn stos_store(&mut self, w: u32) -> R {
        let m = self.at(w)?;
        match w {
            1 => self.a.mov(byte_ptr(m), al),
            2 => self.a.mov(word_ptr(m), ax),
            _ => self.a.mov(dword_ptr(m), eax),
        }
    }

    /// MOVS's copy of a `w`-byte element from the source whose host
    /// address is kept in the context to the destination just looked up
    /// (through r8, the address in r11).
    fn movs_copy(&mut self, w: u32) -> R {
        let m = self.at(w)?;
        self.a.mov(r11, qword_ptr(r15 + ctx::SCRATCH))?;
        match w {
            1 => self.a.mov(r8b, byte_ptr(r11))?,
            2 => self.a.mov(r8w, word_ptr(r11))?,
            _ => self.a.mov(r8d, dword_ptr(r11))?,
        }
        match w {
            1 => self.a.mov(byte_ptr(m), r8b),
            2 => self.a.mov(word_ptr(m), r8w),
            _ => self.a.mov(dword_ptr(m), r8d),
        }
    }

    /// SP += `d` in real-mode code: the upper half of ESP kept, as a 16-bit
    /// stack does, and the flags untouched.
    fn sp_add(&mut self, d: i32) -> R {
        self.a.lea(r12w, r12 + d)
    }

    /// Before `insn` runs on the host, what `fix_undefined_flags` will
    /// need where it has flags to fix (`after`: those still needed after
    /// it): a count in CL (in r8d: the instruction may change CL), the
    /// flags as they were (BT: `save_flags`).
    fn fix_undefined_flags_before(&mut self, insn: &Instruction, after: u32) -> R {
        match undefined_fix(insn) {
            Some((flags, fix)) if flags & after != 0 => {
                if count_in_cl(insn) {
                    self.a.mov(r8d, ecx)?;
                }
                if fix == Fix::Bt {
                    // (BT's fix reads the image as the flags before it
                    // and changes it: a waiting fix is made first.)
                    self.apply_deferred()?;
                    self.save_flags()?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// After `insn` ran on the host: the undefined flags that are still
    /// needed (`after`) made the interpreter's (`Fix`), on the image
    /// `save_flags` keeps (r8, r9 and r11 are scratch here). With LAHF
    /// that is r10d, AH's image in bits 8-15 and OF in bit 0, a dozen
    /// plain instructions; else RFLAGS on the host stack, and POPFQ.
    fn fix_undefined_flags(&mut self, insn: &Instruction, after: u32) -> R {
        let Some((flags, fix)) = undefined_fix(insn) else {
            return Ok(());
        };
        if flags & after == 0 {
            return Ok(());
        }
        if fix != Fix::Bt {
            self.save_flags()?;
            // Where nothing reads them before they are overwritten or
            // the block leaves, the fix waits (`Emitter::deferred`).
            if let Some(d) = self.deferrable(insn, fix) {
                debug_assert!(self.deferred.is_none());
                self.pending = true;
                self.deferred = Some(d);
                return Ok(());
            }
        }
        let mut skip = self.a.create_label();
        // A count of 0 changed no flag.
        if count_in_cl(insn) {
            self.a.test(r8b, 0x1F)?;
            self.a.jz(skip)?;
        }
        self.fix_body(insn, fix)?;
        if count_in_cl(insn) {
            // (A label needs an instruction of its own.)
            self.a.set_label(&mut skip)?;
            return self.restore_flags();
        }
        // (The last thing the instruction emits: the next one's start
        // settles the debt, `Emitter::block`.)
        self.restore_flags_lazy()
    }

    /// The fix `fix` of `insn`'s undefined flags on the image (r8, r9 and
    /// r11 scratch; RFLAGS clobbered).
    fn fix_body(&mut self, insn: &Instruction, fix: Fix) -> R {
        let lahf = self.lahf;
        // Where each flag is in the image.
        let (cf, pf, af, zf, sf, of) = if lahf {
            (8, 10, 12, 14, 15, 0)
        } else {
            (0, 2, 4, 6, 7, 11)
        };
        let bit = |b: u32| 1i32 << b;
        match fix {
            Fix::Mul => {
                // SF, ZF and PF of the low half: AL, AX or EAX for the
                // one-operand forms, else the destination register.
                let a = &mut self.a;
                match (insn.op_count(), operand_bits(insn)) {
                    (1, 8) => a.test(al, al)?,
                    (1, 16) => a.test(ax, ax)?,
                    (1, _) => a.test(eax, eax)?,
                    (_, 16) => {
                        let r = hr16(insn.op0_register());
                        a.test(r, r)?
                    }
                    _ => {
                        let r = hr32(insn.op0_register());
                        a.test(r, r)?
                    }
                }
                if lahf {
                    a.mov(r11, rax)?;
                    a.lahf()?;
                    // (AH's image in bits 8-15, as in r10d.)
                    a.mov(r9d, eax)?;
                    a.mov(rax, r11)?;
                } else {
                    a.pushfq()?;
                    a.pop(r9)?;
                }
                a.and(r9d, bit(sf) | bit(zf) | bit(pf))?;
                img_and(a, lahf, !(bit(sf) | bit(zf) | bit(pf) | bit(af)))?;
                img_or_r9(a, lahf)?;
            }
            Fix::Shl => {
                // OF = SF xor CF.
                let a = &mut self.a;
                img_to_r11(a, lahf)?;
                a.mov(r9d, r11d)?;
                a.shr(r9d, sf - cf)?;
                a.xor(r9d, r11d)?;
                a.shr(r9d, cf)?;
                a.and(r9d, 1)?;
                if of != 0 {
                    a.shl(r9d, of)?;
                }
                img_and(a, lahf, !(bit(of) | bit(af)))?;
                img_or_r9(a, lahf)?;
            }
            Fix::Sar => img_and(&mut self.a, lahf, !(bit(of) | bit(af)))?,
            Fix::Shr(n) => {
                // OF = bit w - 1 - n of the result.
                let (w, base) = self.load_result(insn)?;
                let a = &mut self.a;
                a.shr(r9d, base + w - 1 - n)?;
                a.and(r9d, 1)?;
                if of != 0 {
                    a.shl(r9d, of)?;
                }
                img_and(a, lahf, !(bit(of) | bit(af)))?;
                img_or_r9(a, lahf)?;
            }
            Fix::RotLeft | Fix::RotRight => {
                let (w, base) = self.load_result(insn)?;
                let a = &mut self.a;
                // r9d bit 0: the result's sign; r11d bit 0: CF (left) or
                // the bit below the sign (right).
                if fix == Fix::RotLeft {
                    a.shr(r9d, base + w - 1)?;
                    img_to_r11(a, lahf)?;
                    a.shr(r11d, cf)?;
                } else {
                    a.shr(r9d, base + w - 2)?;
                    a.mov(r11d, r9d)?;
                    a.shr(r9d, 1)?;
                }
                a.xor(r9d, r11d)?;
                a.and(r9d, 1)?;
                if of != 0 {
                    a.shl(r9d, of)?;
                }
                img_and(a, lahf, !bit(of))?;
                img_or_r9(a, lahf)?;
            }
            Fix::Bt => {
                // The image holds the flags from before: CF from now.
                let a = &mut self.a;
                a.setc(r9b)?;
                a.movzx(r9d, r9b)?;
                if cf != 0 {
                    a.shl(r9d, cf)?;
                }
                img_and(a, lahf, !bit(cf))?;
                img_or_r9(a, lahf)?;
            }
            // (A callout wherever its flags are needed:
            // `plan_undefined_flags`.)
            Fix::Interp => {}
        }
        Ok(())
    }

    /// A fix that may wait (`Emitter::deferred`): with LAHF, where the
    /// fix reads at most the image and a register (not memory, not CL's
    /// count), and the flags are owed at once after it.
    fn deferrable(&self, insn: &Instruction, fix: Fix) -> Option<Deferred> {
        if !self.lahf || count_in_cl(insn) {
            return None;
        }
        let reg = match fix {
            Fix::Shl | Fix::Sar => None,
            Fix::Mul if insn.op_count() == 1 => Some(Register::EAX),
            Fix::Mul | Fix::Shr(_) | Fix::RotLeft | Fix::RotRight
                if insn.op0_kind() == OpKind::Register =>
            {
                Some(insn.op0_register().full_register32())
            }
            _ => return None,
        };
        Some(Deferred { insn: *insn, reg })
    }

    /// The waiting fix (`deferred`) made on the image now. (Each fix is
    /// idempotent while its inputs stand: a slow path may make it too.)
    fn apply_deferred(&mut self) -> R {
        match self.deferred.take() {
            Some(d) => self.apply_fix(&d),
            None => Ok(()),
        }
    }

    fn apply_fix(&mut self, d: &Deferred) -> R {
        let Some((_, fix)) = undefined_fix(&d.insn) else {
            return Ok(());
        };
        self.fix_body(&d.insn, fix)
    }

    /// r9d = the register or memory (at r14) `insn` wrote its result to,
    /// zero-extended; returns its width in bits and the bit where it
    /// starts in r9d (8 for AH, CH, DH, BH).
    fn load_result(&mut self, insn: &Instruction) -> Result<(u32, u32), IcedError> {
        let a = &mut self.a;
        if insn.op0_kind() == OpKind::Register {
            let r = insn.op0_register();
            let high = matches!(r, Register::AH | Register::CH | Register::DH | Register::BH);
            a.mov(r9d, hr32(r.full_register32()))?;
            return Ok((r.size() as u32 * 8, if high { 8 } else { 0 }));
        }
        let w = insn.memory_size().size() as u32 * 8;
        let m = self.at(w / 8)?;
        let a = &mut self.a;
        match w {
            8 => a.movzx(r9d, byte_ptr(m))?,
            16 => a.movzx(r9d, word_ptr(m))?,
            _ => a.mov(r9d, dword_ptr(m))?,
        }
        Ok((w, 0))
    }

    /// Saves the guest status flags before code that clobbers them: with
    /// LAHF and SETO into r10w (a few cycles), or else PUSHFQ.
    ///
    /// While a restore is owed (`pending`) the image is current: nothing
    /// is emitted (and the host's RFLAGS stay garbage, which every caller
    /// clobbers anyway).
    fn save_flags(&mut self) -> R {
        if std::mem::take(&mut self.pending) {
            return Ok(());
        }
        let a = &mut self.a;
        if !self.lahf {
            return a.pushfq();
        }
        a.mov(r11, rax)?;
        a.lahf()?;
        a.seto(al)?;
        a.mov(r10d, eax)?;
        a.mov(rax, r11)
    }

    /// Restores what `save_flags` saved: ADD AL, 0x7F sets OF exactly when
    /// AL (the saved OF) is 1, then SAHF sets SF, ZF, AF, PF and CF from AH
    /// (POPFQ costs some twenty cycles; this, a handful).
    fn restore_flags(&mut self) -> R {
        self.apply_deferred()?;
        self.pending = false;
        let a = &mut self.a;
        if !self.lahf {
            return a.popfq();
        }
        a.mov(r11, rax)?;
        a.mov(eax, r10d)?;
        a.add(al, 0x7F)?;
        a.sahf()?;
        a.mov(rax, r11)
    }

    /// `restore_flags` owed rather than emitted (`pending`), where what
    /// follows may not need it: the next memory access's save, or an
    /// instruction that writes every status flag, makes it unneeded.
    fn restore_flags_lazy(&mut self) -> R {
        if self.lahf {
            self.pending = true;
            Ok(())
        } else {
            self.restore_flags()
        }
    }

    /// The owed restore, if one is (`pending`): the guest's flags back in
    /// the host's RFLAGS.
    fn materialize(&mut self) -> R {
        if self.pending {
            self.restore_flags()?;
        }
        Ok(())
    }

    /// Forgets what `save_flags` saved (the flags are dead).
    fn drop_flags(&mut self) -> R {
        self.pending = false;
        self.deferred = None;
        if self.lahf {
            Ok(())
        } else {
            self.a.lea(rsp, rsp + 8)
        }
    }

    /// Before a call out of translated code: the guest's flags, then the
    /// guest registers the host's calling convention lets a callee change
    /// (EAX, ECX, EDX, ESI, EDI live in them), on the host stack, which
    /// stays 16-byte aligned for the call.
    fn save_for_call(&mut self) -> R {
        let a = &mut self.a;
        a.pushfq()?;
        for r in [rax, rcx, rdx, rsi, rdi] {
            a.push(r)?;
        }
        Ok(())
    }

    /// After the call: the registers back (the flags stay pushed, for the
    /// caller to pop on each of its paths).
    fn restore_after_call(&mut self) -> R {
        for r in [rdi, rsi, rdx, rcx, rax] {
            self.a.pop(r)?;
        }
        Ok(())
    }

    /// The `host_ptr` callout for the access at r13d (flags and the
    /// caller-saved guest registers preserved).
    /// Through the host_ptr stub (`stubs`), which keeps the other
    /// caller-saved registers: the site saves the flags and EDX, which
    /// carries the access's size and direction.
    /// `resume`: where the block goes on after the interpreter runs the
    /// instruction when the callout cannot serve the access (`Fail`).
    fn callout(&mut self, c: &Cold) -> R {
        let (size, write, k, resume) = (c.size, c.write, c.k, c.resume);
        let a = &mut self.a;
        a.pushfq()?;
        a.push(rdx)?;
        a.mov(edx, size | (write as u32) << 8 | (c.stack as u32) << 9)?;
        a.call(qword_ptr(r15 + ctx::HOST_PTR_STUB))?;
        a.pop(rdx)?;
        a.test(r14, r14)?;
        let fail = a.create_label();
        a.jz(fail)?;
        // (As the hit path leaves it: the access at r14 + r13.)
        a.sub(r14, r13)?;
        a.popfq()?;
        self.fails.push(Fail {
            label: fail,
            k,
            resume,
        });
        Ok(())
    }

    /// Calls `callout::sensitive` for instruction `k` at `eip`, with the
    /// guest's registers kept and its flags left pushed on the host stack
    /// (the caller pops them); r8 = the result's low half. When the
    /// callout declines, the block leaves for the interpreter at `eip`.
    fn sensitive_call(&mut self, what: u32, eip: u32, k: u32) -> R {
        let at = self.n << 16 | k;
        self.save_for_call()?;
        let a = &mut self.a;
        a.mov(rdi, r15)?;
        a.mov(esi, what)?;
        a.mov(edx, eip)?;
        a.mov(ecx, at)?;
        a.call(qword_ptr(r15 + ctx::SENSITIVE))?;
        a.mov(r8, rax)?;
        self.restore_after_call()?;
        let a = &mut self.a;
        a.bt(r8, 32)?;
        let fail = a.create_label();
        a.jnc(fail)?;
        self.fails.push(Fail::new(fail, k));
        Ok(())
    }

    /// r13d = the guest linear address of `insn`'s memory operand (the
    /// segment is flat, so the effective address): 32-bit arithmetic wraps
    /// at 4 GiB, and LEA leaves the flags alone.
    fn linear(&mut self, insn: &Instruction) -> R {
        let base = insn.memory_base();
        let index = insn.memory_index();
        let disp = insn.memory_displacement32();
        if base == Register::None && index == Register::None {
            return self.a.mov(r13d, disp);
        }
        let mut m = if base != Register::None {
            let b: AsmMemoryOperand = hr32(base) + 0;
            b
        } else {
            hr32(index) * insn.memory_index_scale()
        };
        if base != Register::None && index != Register::None {
            m = hr32(base) + hr32(index) * insn.memory_index_scale();
        }
        self.a.lea(r13d, m + disp as i32)
    }

    fn block(&mut self, insns: &[(Instruction, Plan)], end_eip: u32, after_shadow: bool) -> R {
        let n = insns.len() as u32;
        let (live, after) = flags_live_after(insns);
        // The budget: blocks reached through chaining must not run past the
        // next device deadline or the instruction budget.
        // (The path out of budget is emitted after the body.) The flags
        // are saved around the check even where the block overwrites them
        // before it reads any: a block without the budget to run leaves
        // with the flags it came with, which whatever comes next sees (an
        // interrupt's frame, a debugger's stop, the interpreter), not the
        // check's. (Where the block does not need them, the owed restore
        // is dropped by its first instruction that writes them all.)
        let mut no_budget = self.a.create_label();
        let mut entry = self.a.create_label();
        self.a.set_label(&mut entry)?;
        self.entry = insns.first().map(|(i, _)| (i.ip32(), entry));
        self.save_flags()?;
        let mut img_entry = self.a.create_label();
        self.a.set_label(&mut img_entry)?;
        self.img_entry = Some(img_entry);
        self.a.sub(qword_ptr(r15 + ctx::BUDGET), n as i32)?;
        self.a.jl(no_budget)?;
        self.restore_flags_lazy()?;
        for (k, (insn, p)) in insns.iter().enumerate() {
            let k = k as u32;
            let eip = insn.ip32();
            let fails_before = self.fails.len();
            let colds_before = self.colds.len();
            // A waiting fix is made before its register changes.
            if let Some(r) = self.deferred.and_then(|d| d.reg) {
                if writes_register(&mut self.info, insn, r) {
                    self.apply_deferred()?;
                }
            }
            // A restore owed from before: kept for an instruction whose
            // code only moves data up to its memory access (whose save it
            // makes unneeded) and after it, dropped before one that writes
            // every status flag, else paid now.
            let keeps = keeps_image(*p);
            if !keeps {
                if matches!(p, Plan::Ident) {
                    self.settle_for(insn)?;
                } else {
                    self.materialize()?;
                }
            }
            self.lazy_hit = self.lahf && keeps;
            self.reuse = self.reuses_known(insn, *p);
            self.instruction(insn, *p, k, eip, &live, after[k as usize])?;
            self.lazy_hit = false;
            self.follow_known(insn, *p, fails_before, colds_before);
            self.follow_stack(insn, *p, fails_before, colds_before);
            // Its slow paths go on right after it (a block-ending one
            // exits to its next instruction instead: see below), in the
            // same state of the flags as its fast path.
            let slow = self.fails.len() > fails_before || self.colds.len() > colds_before;
            if slow && !p.ends_block() {
                let mut resume = self.a.create_label();
                self.a.set_label(&mut resume)?;
                self.a.nop()?;
                let at = Some((resume, self.pending));
                for f in &mut self.fails[fails_before..] {
                    f.resume = at;
                }
                for c in &mut self.colds[colds_before..] {
                    c.resume = at;
                }
            }
        }
        if after_shadow {
            // STI and its shadow done: the dispatcher delivers what STI
            // let through (an exit it cannot chain); when nothing was due
            // (`Ctx::sti_due` 0), the block ends as any other does.
            // (JRCXZ on a copy in RCX: the flags are left alone.)
            self.apply_deferred()?;
            self.materialize()?;
            let mut on = self.a.create_label();
            let a = &mut self.a;
            a.mov(r9, rcx)?;
            a.mov(ecx, dword_ptr(r15 + ctx::STI_DUE))?;
            a.jrcxz(on)?;
            a.mov(rcx, r9)?;
            self.exit(Some(end_eip), n)?;
            self.a.set_label(&mut on)?;
            self.a.mov(rcx, r9)?;
            self.chained_exit(end_eip, n)?;
        } else if !insns.last().is_some_and(|(_, p)| p.ends_block()) {
            self.chained_exit(end_eip, n)?;
        }
        // (The body ends in a jump: the paths below start from their
        // labels' states.)
        debug_assert!(!self.pending && self.deferred.is_none());
        for c in std::mem::take(&mut self.colds) {
            self.cold(c)?;
        }
        for Fail {
            mut label,
            k,
            resume,
        } in std::mem::take(&mut self.fails)
        {
            self.a.set_label(&mut label)?;
            self.a.popfq()?;
            let insn = &insns[k as usize].0;
            self.exec_call(insn, k)?;
            match resume {
                Some((r, owed)) => {
                    if owed {
                        self.save_flags()?;
                    }
                    self.a.jmp(r)?
                }
                None => self.exit(Some(insn.next_ip32()), k + 1)?,
            }
        }
        self.a.set_label(&mut no_budget)?;
        self.a.add(qword_ptr(r15 + ctx::BUDGET), n as i32)?;
        self.restore_flags()?;
        self.exit_with(Some(insns[0].0.ip32()), 0, 0, None)?;
        self.chain_homes()
    }

    /// Whether `insn`, planned `p`, accesses memory where the last write
    /// did (`known`), at most as many bytes: then its lookup is taken over,
    /// and the write's slow paths leave the block after it.
    fn reuses_known(&mut self, insn: &Instruction, p: Plan) -> bool {
        let Plan::Mem { size, .. } = p else {
            return false;
        };
        let Some(kn) = &self.known else {
            return false;
        };
        if kn.addr != mem_addr(insn) || size > kn.size {
            return false;
        }
        for f in &mut self.fails[kn.fails.clone()] {
            f.resume = None;
        }
        for c in &mut self.colds[kn.colds.clone()] {
            c.resume = None;
        }
        true
    }

    /// `known` after instruction `insn`, planned `p`, whose slow paths
    /// start at `fails` and `colds`: a write to memory it looked up is
    /// known; one that took it over keeps it; a register instruction
    /// keeps it; anything else ends it (a read looked up moves r13 and r14;
    /// other plans use them or call out), as does a write to a register
    /// its address is made of.
    fn follow_known(&mut self, insn: &Instruction, p: Plan, fails: usize, colds: usize) {
        match p {
            Plan::Mem { .. } if self.reuse => {}
            Plan::Mem { size, write: true } => {
                self.known = Some(Known {
                    addr: mem_addr(insn),
                    size,
                    fails: fails..self.fails.len(),
                    colds: colds..self.colds.len(),
                });
            }
            Plan::Ident => {}
            _ => self.known = None,
        }
        self.reuse = false;
        if let Some(kn) = &self.known {
            let (_, base, index, _, _) = kn.addr;
            let moved = [base, index].into_iter().any(|r| {
                r != Register::None && writes_register(&mut self.info, insn, r.full_register32())
            });
            if moved {
                self.known = None;
            }
        }
    }

    /// PUSHFD at `eip` (instruction `k`) as a call into the monitor, its
    /// slot at r14 + r13 looked up, the guest's flags in RFLAGS: the image
    /// stored (the status bits of the flags `sensitive_call` left on the
    /// host stack, the callout's others), the flags popped, ESP moved.
    fn pushfd_called_out(&mut self, eip: u32, k: u32) -> R {
        self.sensitive_call(ctx::sensitive::PUSHFD, eip, k)?;
        let a = &mut self.a;
        a.mov(r9, qword_ptr(rsp))?;
        a.and(r9d, ctx::STATUS as u32 & !2)?;
        a.or(r9d, r8d)?;
        a.mov(dword_ptr(r14 + r13), r9d)?;
        a.popfq()?;
        a.mov(r12d, r13d)
    }

    /// `host_ptr` for a stack access at r13d: taking over the known stack
    /// access's page when it may (`StackKnown`), whose instruction's slow
    /// paths then leave the block.
    fn stack_host_ptr(&mut self, size: u32, write: bool, k: u32, live: bool) -> R {
        self.stack_access = true;
        self.stack_reuse = None;
        if let Some(kn) = self.stack_known.clone() {
            if !write || kn.write {
                for f in &mut self.fails[kn.fails.clone()] {
                    f.resume = None;
                }
                for c in &mut self.colds[kn.colds.clone()] {
                    c.resume = None;
                }
                self.stack_reuse = Some(kn.off);
            }
        }
        self.host_ptr(size, write, k, live)
    }

    /// `stack_known` after instruction `insn`, planned `p`, whose slow
    /// paths start at `fails` and `colds`: a 32-bit flat stack's access
    /// becomes the known one, where ESP leaves it (a push's slot is at
    /// ESP, a pop's 4 bytes below); a register instruction that leaves
    /// ESP alone keeps it; anything else ends it.
    fn follow_stack(&mut self, insn: &Instruction, p: Plan, fails: usize, colds: usize) {
        let here = |off, write| StackKnown {
            off,
            write,
            fails: fails..self.fails.len(),
            colds: colds..self.colds.len(),
        };
        self.stack_known = match p {
            _ if self.code16 => None,
            Plan::Push | Plan::PushSreg | Plan::Pushfd => Some(here(0, true)),
            Plan::Pop | Plan::Leave => Some(here(-4, false)),
            Plan::Ident if !writes_register(&mut self.info, insn, Register::ESP) => {
                self.stack_known.take()
            }
            _ => None,
        };
        self.stack_access = false;
        self.stack_reuse = None;
    }

    /// The host code of guest instruction `k` (`insn`, at `eip`) as `p`
    /// plans it; `live`: the flags needed before each instruction after
    /// its memory check, `after`: the status flags needed after this one.
    fn instruction(
        &mut self,
        insn: &Instruction,
        p: Plan,
        k: u32,
        eip: u32,
        live: &[bool],
        after: u32,
    ) -> R {
        let next = insn.next_ip32();
        {
            match p {
                Plan::Ident => {
                    self.fix_undefined_flags_before(insn, after)?;
                    self.a.add_instruction(renamed(insn))?;
                    self.fix_undefined_flags(insn, after)?;
                }
                Plan::Mem { size, write } => {
                    if !self.reuse {
                        self.mem_ptr(insn, size, write, k, live[k as usize])?;
                    }
                    // (LEA for a byte or a word: `Emitter::at`.)
                    self.at(size)?;
                    self.fix_undefined_flags_before(insn, after)?;
                    self.settle_for(insn)?;
                    self.a.add_instruction(on_r14(insn, !self.r14_whole))?;
                    self.fix_undefined_flags(insn, after)?;
                }
                Plan::Exec => self.exec_call(insn, k)?,
                Plan::Lea => {
                    self.offset16(insn)?;
                    let dst = insn.op0_register();
                    if dst.size() == 2 {
                        self.a.mov(hr16(dst), r13w)?;
                    } else {
                        self.a.mov(hr32(dst), r13d)?;
                    }
                }
                Plan::Push if self.code16 => {
                    let w = match insn.code() {
                        Code::Push_r16 | Code::Push_imm16 | Code::Pushw_imm8 | Code::Push_rm16 => 2,
                        _ => 4,
                    };
                    self.push16_slot(w, k, live[k as usize])?;
                    let m = self.at(w)?;
                    let a = &mut self.a;
                    match (insn.op0_kind() == OpKind::Register, w) {
                        (true, 2) => a.mov(word_ptr(m), hr16(insn.op0_register()))?,
                        (true, _) => a.mov(dword_ptr(m), hr32(insn.op0_register()))?,
                        (false, 2) => a.mov(word_ptr(m), insn.immediate(0) as u32 & 0xFFFF)?,
                        (false, _) => a.mov(dword_ptr(m), insn.immediate(0) as u32)?,
                    }
                    self.sp_add(-(w as i32))?;
                }
                Plan::Pop if self.code16 => {
                    let dst = insn.op0_register();
                    let w = dst.size() as u32;
                    self.a.movzx(r13d, r12w)?;
                    self.seg_ptr(SS, w, false, k, live[k as usize])?;
                    let m = self.at(w)?;
                    if w == 2 {
                        self.a.mov(hr16(dst), word_ptr(m))?;
                    } else {
                        self.a.mov(hr32(dst), dword_ptr(m))?;
                    }
                    self.sp_add(w as i32)?;
                }
                Plan::Call if self.code16 => {
                    self.push16_slot(2, k, live[k as usize])?;
                    let m = self.at(2)?;
                    self.a.mov(word_ptr(m), next & 0xFFFF)?;
                    self.sp_add(-2)?;
                    self.chained_exit(insn.near_branch_target() as u32, k + 1)?;
                }
                Plan::Ret(imm) if self.code16 => {
                    self.a.movzx(r13d, r12w)?;
                    self.seg_ptr(SS, 2, false, k, live[k as usize])?;
                    let m = self.at(2)?;
                    self.a.movzx(r8d, word_ptr(m))?;
                    self.sp_add(2 + imm as i32)?;
                    self.indirect_exit(k + 1)?;
                }
                Plan::JmpInd | Plan::CallInd if self.code16 => {
                    if insn.op0_kind() == OpKind::Register {
                        self.a.movzx(r8d, hr16(insn.op0_register()))?;
                    } else {
                        self.mem_ptr(insn, 2, false, k, true)?;
                        let m = self.at(2)?;
                        self.a.movzx(r8d, word_ptr(m))?;
                    }
                    self.a.mov(dword_ptr(r15 + ctx::SCRATCH), r8d)?;
                    if matches!(p, Plan::CallInd) {
                        self.push16_slot(2, k, live[k as usize])?;
                        let m = self.at(2)?;
                        self.a.mov(word_ptr(m), next & 0xFFFF)?;
                        self.sp_add(-2)?;
                    }
                    self.a.mov(r8d, dword_ptr(r15 + ctx::SCRATCH))?;
                    self.indirect_exit(k + 1)?;
                }
                Plan::Loop if insn.code() == Code::Loop_rel8_16_CX => {
                    // CX - 1, flags untouched; CX tested by JRCXZ on a
                    // zero-extended copy in RCX (the upper half of ECX
                    // kept in r11 and put back on both paths).
                    let mut zero = self.a.create_label();
                    self.a.lea(cx, rcx - 1)?;
                    self.a.mov(r11, rcx)?;
                    self.a.movzx(ecx, cx)?;
                    self.a.jrcxz(zero)?;
                    self.a.mov(rcx, r11)?;
                    self.chained_exit(insn.near_branch_target() as u32, k + 1)?;
                    self.a.set_label(&mut zero)?;
                    self.a.mov(rcx, r11)?;
                    self.chained_exit(next, k + 1)?;
                }
                Plan::Jecxz if insn.code() == Code::Jcxz_rel8_16 => {
                    let mut taken = self.a.create_label();
                    self.a.mov(r11, rcx)?;
                    self.a.movzx(ecx, cx)?;
                    self.a.jrcxz(taken)?;
                    self.a.mov(rcx, r11)?;
                    self.chained_exit(next, k + 1)?;
                    self.a.set_label(&mut taken)?;
                    self.a.mov(rcx, r11)?;
                    self.chained_exit(insn.near_branch_target() as u32, k + 1)?;
                }
                Plan::Lods(w) if self.code16 => {
                    self.string_offset(insn, true)?;
                    let seg = seg_index(insn.memory_segment());
                    self.seg_ptr(seg, w, false, k, live[k as usize])?;
                    self.lods_load(w)?;
                    self.string_advance(insn, true, w)?;
                }
                Plan::Stos(w) if self.code16 => {
                    self.string_offset(insn, false)?;
                    self.seg_ptr(0, w, true, k, live[k as usize])?;
                    self.stos_store(w)?;
                    self.string_advance(insn, false, w)?;
                }
                Plan::Movs(w) if self.code16 => {
                    // As the 32-bit form below: the source first.
                    self.string_offset(insn, true)?;
                    let seg = seg_index(insn.memory_segment());
                    self.seg_ptr(seg, w, false, k, true)?;
                    self.a.lea(r14, r14 + r13)?;
                    self.a.mov(qword_ptr(r15 + ctx::SCRATCH), r14)?;
                    self.string_offset(insn, false)?;
                    self.seg_ptr(0, w, true, k, live[k as usize])?;
                    self.movs_copy(w)?;
                    self.string_advance(insn, true, w)?;
                    self.string_advance(insn, false, w)?;
                }
                Plan::Push => {
                    let from_memory = insn.op0_kind() == OpKind::Memory;
                    if from_memory {
                        // The operand first (its address from ESP before
                        // the push), into r9, which the lookup below
                        // keeps. A fault of the push itself restarts the
                        // instruction on the interpreter, which reads the
                        // operand again: RAM, or a device register whose
                        // reading is pure. Its lookup replaces r14: the
                        // last stack access's page cannot serve the push.
                        // A waiting undefined-flags fix is made first: the
                        // slow paths make it on r9.
                        self.apply_deferred()?;
                        self.mem_ptr(insn, 4, false, k, live[k as usize])?;
                        let m = self.at(4)?;
                        self.a.mov(r9d, dword_ptr(m))?;
                        self.stack_known = None;
                    }
                    self.a.lea(r13d, r12d - 4)?;
                    self.stack_host_ptr(4, true, k, live[k as usize])?;
                    if from_memory {
                        self.a.mov(dword_ptr(r14 + r13), r9d)?;
                    } else if insn.op0_kind() == OpKind::Register {
                        let src = hr32(insn.op0_register());
                        self.a.mov(dword_ptr(r14 + r13), src)?;
                    } else {
                        self.a.mov(dword_ptr(r14 + r13), insn.immediate(0) as u32)?;
                    }
                    self.a.mov(r12d, r13d)?;
                }
                Plan::PushSreg => {
                    self.a.lea(r13d, r12d - 4)?;
                    self.stack_host_ptr(2, true, k, live[k as usize])?;
                    let at = ctx::SEG_SEL + 4 * seg_index(insn.op0_register()) as i32;
                    self.a.mov(r9d, dword_ptr(r15 + at))?;
                    self.a.mov(word_ptr(r14 + r13), r9w)?;
                    self.a.mov(r12d, r13d)?;
                }
                Plan::Pushfd if self.lahf => {
                    // As below, the image composed from the flags' image
                    // in r10 (LAHF's AH holds SF, ZF, AF, PF and CF where
                    // EFLAGS has them; AL is OF) rather than pushed with
                    // PUSHFQ and popped back (some twenty cycles; xv6
                    // runs PUSHFD 128 M times in usertests): the block
                    // goes on with the flags owed from their image.
                    self.a.lea(r13d, r12d - 4)?;
                    self.stack_host_ptr(4, true, k, true)?;
                    let mut slow = self.a.create_label();
                    let mut done = self.a.create_label();
                    let a = &mut self.a;
                    a.cmp(dword_ptr(r15 + ctx::INLINE_SENSITIVE), 0)?;
                    a.je(slow)?;
                    a.mov(r9d, r10d)?;
                    a.shr(r9d, 8)?;
                    a.and(r9d, ctx::STATUS as u32 & 0xFF & !2)?;
                    a.mov(r11d, r10d)?;
                    a.and(r11d, 1)?;
                    a.shl(r11d, 11)?;
                    a.or(r9d, r11d)?;
                    a.or(r9d, dword_ptr(r15 + ctx::SYSFLAGS))?;
                    a.mov(dword_ptr(r14 + r13), r9d)?;
                    a.add(qword_ptr(r15 + ctx::PUSHF_INLINE), 1)?;
                    a.mov(r12d, r13d)?;
                    a.jmp(done)?;
                    a.set_label(&mut slow)?;
                    self.restore_flags()?;
                    self.pushfd_called_out(eip, k)?;
                    // (The callee may have changed r10: the image again.)
                    self.save_flags()?;
                    self.a.set_label(&mut done)?;
                    self.a.nop()?;
                    self.pending = true;
                }
                Plan::Pushfd => {
                    // The slot first: a fault leaves before anything is
                    // recorded, and the interpreter runs PUSHFD whole.
                    self.a.lea(r13d, r12d - 4)?;
                    self.stack_host_ptr(4, true, k, true)?;
                    // Inline when nothing records it one by one: the
                    // status flags from the host's, the rest from the
                    // context's copy, counted in the context.
                    let mut slow = self.a.create_label();
                    let mut done = self.a.create_label();
                    self.a.pushfq()?;
                    self.a.cmp(dword_ptr(r15 + ctx::INLINE_SENSITIVE), 0)?;
                    self.a.je(slow)?;
                    self.a.mov(r9, qword_ptr(rsp))?;
                    self.a.and(r9d, ctx::STATUS as u32 & !2)?;
                    self.a.or(r9d, dword_ptr(r15 + ctx::SYSFLAGS))?;
                    self.a.mov(dword_ptr(r14 + r13), r9d)?;
                    self.a.add(qword_ptr(r15 + ctx::PUSHF_INLINE), 1)?;
                    // Back whole even where the block reads them no more:
                    // the next instruction may leave for the interpreter.
                    self.a.popfq()?;
                    self.a.mov(r12d, r13d)?;
                    self.a.jmp(done)?;
                    self.a.set_label(&mut slow)?;
                    self.a.popfq()?;
                    self.pushfd_called_out(eip, k)?;
                    // (A label needs an instruction of its own: the next
                    // one may carry another.)
                    self.a.set_label(&mut done)?;
                    self.a.nop()?;
                }
                Plan::Cli if self.lahf && self.key & key::USER == 0 => {
                    // At CPL 0 (or in real mode) CLI cannot fault: inline
                    // when nothing records it one by one, IF cleared in the
                    // context's copy and the interpreter's EFLAGS, counted
                    // (xv6's pushcli: 18 M in usertests), the guest's
                    // flags kept in their image meanwhile.
                    self.apply_deferred()?;
                    self.save_flags()?;
                    let mut slow = self.a.create_label();
                    let mut done = self.a.create_label();
                    let a = &mut self.a;
                    let not_if = !machine::cpu::flags::IF;
                    a.cmp(dword_ptr(r15 + ctx::INLINE_SENSITIVE), 0)?;
                    a.je(slow)?;
                    a.mov(r9, qword_ptr(r15 + ctx::CPU_EFLAGS))?;
                    a.and(dword_ptr(r9), not_if as i32)?;
                    a.and(dword_ptr(r15 + ctx::SYSFLAGS), not_if as i32)?;
                    a.add(qword_ptr(r15 + ctx::CLI_INLINE), 1)?;
                    a.jmp(done)?;
                    a.set_label(&mut slow)?;
                    self.restore_flags()?;
                    self.sensitive_call(ctx::sensitive::CLI, eip, k)?;
                    self.a.popfq()?;
                    self.save_flags()?;
                    self.a.set_label(&mut done)?;
                    self.a.nop()?;
                    self.pending = true;
                }
                Plan::Cli => {
                    self.sensitive_call(ctx::sensitive::CLI, eip, k)?;
                    self.a.popfq()?;
                }
                Plan::Sti => {
                    self.sensitive_call(ctx::sensitive::STI, eip, k)?;
                    self.a.popfq()?;
                }
                Plan::Leave => {
                    // Nothing changes before the load, which may leave for
                    // the interpreter (a fault): then it runs LEAVE whole.
                    self.a.mov(r13d, ebp)?;
                    // (A stack access, but EBP's: no page taken over.)
                    self.stack_access = true;
                    self.host_ptr(4, false, k, live[k as usize])?;
                    self.a.lea(r12d, rbp + 4)?;
                    self.a.mov(ebp, dword_ptr(r14 + r13))?;
                }
                Plan::Pop => {
                    self.a.mov(r13d, r12d)?;
                    self.stack_host_ptr(4, false, k, live[k as usize])?;
                    let dst = hr32(insn.op0_register());
                    self.a.mov(dst, dword_ptr(r14 + r13))?;
                    self.a.lea(r12d, r12d + 4)?;
                }
                Plan::Call => {
                    self.a.lea(r13d, r12d - 4)?;
                    self.stack_host_ptr(4, true, k, live[k as usize])?;
                    self.a.mov(dword_ptr(r14 + r13), next)?;
                    self.a.mov(r12d, r13d)?;
                    self.chained_exit(insn.near_branch_target() as u32, k + 1)?;
                }
                Plan::Ret(imm) => {
                    self.a.mov(r13d, r12d)?;
                    self.stack_host_ptr(4, false, k, live[k as usize])?;
                    self.a.mov(r8d, dword_ptr(r14 + r13))?;
                    self.a.lea(r12d, r12d + (4 + imm as i32))?;
                    self.indirect_exit(k + 1)?;
                }
                Plan::Jmp => self.chained_exit(insn.near_branch_target() as u32, k + 1)?,
                Plan::Jcc => {
                    let target = insn.near_branch_target() as u32;
                    if let Some(entry) = self.self_entry(target) {
                        // A loop of one block: back to its entry at once,
                        // one taken jump where the chain takes two.
                        self.jcc(insn.condition_code(), entry)?;
                        self.chained_exit(next, k + 1)?;
                    } else if self.in_page(target) {
                        // In this page (no links check on the way): the
                        // conditional branch is the chainable exit itself,
                        // one taken jump to the target where a JMP after
                        // it makes two.
                        self.jcc_exit(insn.condition_code(), target, k + 1)?;
                        self.chained_exit(next, k + 1)?;
                    } else {
                        let taken = self.a.create_label();
                        self.jcc(insn.condition_code(), taken)?;
                        self.chained_exit(next, k + 1)?;
                        self.chained_exit_at(taken, target, k + 1)?;
                    }
                }
                Plan::JmpInd | Plan::CallInd => {
                    // The target first (it may be read through ESP), kept
                    // in the context across the push's lookup.
                    if insn.op0_kind() == OpKind::Register {
                        let src = hr32(insn.op0_register());
                        self.a.mov(dword_ptr(r15 + ctx::SCRATCH), src)?;
                    } else {
                        self.linear(insn)?;
                        // The flags must survive: the push may still exit.
                        self.host_ptr(4, false, k, true)?;
                        self.a.mov(r8d, dword_ptr(r14 + r13))?;
                        self.a.mov(dword_ptr(r15 + ctx::SCRATCH), r8d)?;
                    }
                    if matches!(p, Plan::CallInd) {
                        self.a.lea(r13d, r12d - 4)?;
                        self.host_ptr(4, true, k, live[k as usize])?;
                        self.a.mov(dword_ptr(r14 + r13), next)?;
                        self.a.mov(r12d, r13d)?;
                    }
                    self.a.mov(r8d, dword_ptr(r15 + ctx::SCRATCH))?;
                    self.indirect_exit(k + 1)?;
                }
                Plan::Loop => {
                    // ECX - 1 without touching the flags; JRCXZ is the only
                    // flag-free test (short: the next exit is 5 bytes). RCX
                    // holds ECX zero-extended, as every guest register, so
                    // JRCXZ tests ECX.
                    self.a.lea(ecx, rcx - 1)?;
                    let done = self.a.create_label();
                    self.a.jrcxz(done)?;
                    self.chained_exit(insn.near_branch_target() as u32, k + 1)?;
                    self.chained_exit_at(done, next, k + 1)?;
                }
                Plan::Jecxz => {
                    let taken = self.a.create_label();
                    self.a.jrcxz(taken)?;
                    self.chained_exit(next, k + 1)?;
                    self.chained_exit_at(taken, insn.near_branch_target() as u32, k + 1)?;
                }
                Plan::Lods(w) => {
                    self.a.mov(r13d, esi)?;
                    self.host_ptr(w, false, k, live[k as usize])?;
                    self.lods_load(w)?;
                    self.a.lea(esi, rsi + w as i32)?;
                }
                Plan::Stos(w) => {
                    self.a.mov(r13d, edi)?;
                    self.host_ptr(w, true, k, live[k as usize])?;
                    self.stos_store(w)?;
                    self.a.lea(edi, rdi + w as i32)?;
                }
                Plan::Movs(w) => {
                    // The source first, as the CPU and the interpreter read
                    // it before they write: a lookup that misses walks the
                    // page tables and sets accessed and dirty bits, so a
                    // source that faults must find the destination's
                    // untouched. Its host address is kept in the context
                    // across the destination's lookup; nothing is changed
                    // before both succeed. (The flags must survive the
                    // first lookup: the second one may still exit to the
                    // interpreter.)
                    self.a.mov(r13d, esi)?;
                    self.host_ptr(w, false, k, true)?;
                    self.a.lea(r14, r14 + r13)?;
                    self.a.mov(qword_ptr(r15 + ctx::SCRATCH), r14)?;
                    self.a.mov(r13d, edi)?;
                    self.host_ptr(w, true, k, live[k as usize])?;
                    self.movs_copy(w)?;
                    self.a.lea(esi, rsi + w as i32)?;
                    self.a.lea(edi, rdi + w as i32)?;
                }
            }
        }
        Ok(())
    }

    fn jcc(&mut self, cc: ConditionCode, l: CodeLabel) -> R {
        let a = &mut self.a;
        match cc {
            ConditionCode::o => a.jo(l),
            ConditionCode::no => a.jno(l),
            ConditionCode::b => a.jb(l),
            ConditionCode::ae => a.jae(l),
            ConditionCode::e => a.je(l),
            ConditionCode::ne => a.jne(l),
            ConditionCode::be => a.jbe(l),
            ConditionCode::a => a.ja(l),
            ConditionCode::s => a.js(l),
            ConditionCode::ns => a.jns(l),
            ConditionCode::p => a.jp(l),
            ConditionCode::np => a.jnp(l),
            ConditionCode::l => a.jl(l),
            ConditionCode::ge => a.jge(l),
            ConditionCode::le => a.jle(l),
            ConditionCode::g => a.jg(l),
            ConditionCode::None => a.jmp(l),
        }
    }
}

/// The guest's status flags from `Ctx::flags` (EFLAGS' layout) into
/// RFLAGS, RAX clobbered (the guest registers are loaded after it): SAHF
/// for SF, ZF, AF, PF and CF, and OF from an addition that overflows
/// exactly when it is set (POPFQ, which it replaces, cost some 4 ns a
/// time on this project's hosts, once per callout). Without LAHF/SAHF in
/// 64-bit mode, POPFQ. RFLAGS' other bits stay as they are: DF, TF and AC
/// clear, as the ABI and translated code keep them.
fn load_status_flags(a: &mut CodeAssembler) -> R {
    if !host_has_lahf() {
        a.push(qword_ptr(r15 + ctx::FLAGS))?;
        return a.popfq();
    }
    a.movzx(eax, word_ptr(r15 + ctx::FLAGS))?;
    // AH = bits 0-7 (SF ZF AF PF CF), AL = bits 8-15 (OF at bit 3).
    a.rol(ax, 8)?;
    a.and(al, 8)?;
    a.add(al, 0x78)?;
    a.sahf()
}

/// The entry trampoline, the exit stub and the exec stub, assembled for
/// host address `at`: returns the code and the exit and exec stubs' host
/// addresses.
///
/// Exec stub (called from a block, `Emitter::exec_call`, with the host
/// stack 16-byte aligned before the call): stores the guest registers and
/// flags in the context, calls `callout::exec`, loads them back, and
/// returns into the block when the result is `exec::CONTINUE`; otherwise
/// it drops its return address and leaves through the exit stub (the
/// callout has written the block's exit into the context).
///
/// Entry (`extern "C" fn(*mut Ctx)`): saves the host's callee-saved
/// registers, loads the guest registers and status flags from the context
/// and jumps to `ctx.target`. Exit: stores them back and returns.
pub fn stubs(at: u64) -> Result<(Vec<u8>, u64, u64, u64), IcedError> {
    let mut a = CodeAssembler::new(64)?;
    a.push(rbx)?;
    a.push(rbp)?;
    a.push(r12)?;
    a.push(r13)?;
    a.push(r14)?;
    a.push(r15)?;
    // Keeps RSP 16-byte aligned for the callouts' calls.
    a.sub(rsp, 8)?;
    a.mov(r15, rdi)?;
    load_status_flags(&mut a)?;
    let regs = [eax, ecx, edx, ebx, r12d, ebp, esi, edi];
    for (i, r) in regs.iter().enumerate() {
        a.mov(*r, dword_ptr(r15 + (ctx::REGS + 4 * i as i32)))?;
    }
    a.jmp(qword_ptr(r15 + ctx::TARGET))?;
    let mut exit = a.create_label();
    a.set_label(&mut exit)?;
    a.nop()?;
    for (i, r) in regs.iter().enumerate() {
        a.mov(dword_ptr(r15 + (ctx::REGS + 4 * i as i32)), *r)?;
    }
    a.pushfq()?;
    a.pop(r11)?;
    a.mov(qword_ptr(r15 + ctx::FLAGS), r11)?;
    a.add(rsp, 8)?;
    a.pop(r15)?;
    a.pop(r14)?;
    a.pop(r13)?;
    a.pop(r12)?;
    a.pop(rbp)?;
    a.pop(rbx)?;
    a.ret()?;
    let mut exec = a.create_label();
    let mut go_on = a.create_label();
    let mut leave = a.create_label();
    a.set_label(&mut exec)?;
    a.pushfq()?;
    a.pop(qword_ptr(r15 + ctx::FLAGS))?;
    for (i, r) in regs.iter().enumerate() {
        a.mov(dword_ptr(r15 + (ctx::REGS + 4 * i as i32)), *r)?;
    }
    a.mov(rdi, r15)?;
    // The block's call pushed 8 bytes onto an aligned stack.
    a.sub(rsp, 8)?;
    a.call(qword_ptr(r15 + ctx::EXEC))?;
    a.add(rsp, 8)?;
    a.mov(r11d, eax)?;
    load_status_flags(&mut a)?;
    for (i, r) in regs.iter().enumerate() {
        a.mov(*r, dword_ptr(r15 + (ctx::REGS + 4 * i as i32)))?;
    }
    // Flag-free tests of the result (exec::CONTINUE 0, LEAVE 1, GOTO 2):
    // JRCXZ on copies in RCX, the guest's ECX kept in r10.
    a.mov(r10, rcx)?;
    a.mov(ecx, r11d)?;
    a.jrcxz(go_on)?;
    a.lea(ecx, r11 - 1)?;
    a.jrcxz(leave)?;
    // GOTO: into the translation at ctx.target, as a chain would (the
    // block's return address dropped; LEA: the guest's flags are loaded).
    // The target is an indirect-branch cache entry, a `Block::img_entry`:
    // the flags' image made too (LAHF and SETO read the flags only).
    a.mov(rcx, r10)?;
    if host_has_lahf() {
        a.mov(r11, rax)?;
        a.lahf()?;
        a.seto(al)?;
        a.mov(r10d, eax)?;
        a.mov(rax, r11)?;
    }
    a.lea(rsp, rsp + 8)?;
    a.jmp(qword_ptr(r15 + ctx::TARGET))?;
    a.set_label(&mut leave)?;
    a.mov(rcx, r10)?;
    // (LEA: the guest's flags are loaded, and the exit stub saves them.)
    a.lea(rsp, rsp + 8)?;
    a.jmp(exit)?;
    a.set_label(&mut go_on)?;
    a.mov(rcx, r10)?;
    a.ret()?;
    // The host_ptr stub (`Emitter::callout`): r14 = host_ptr(ctx, r13d,
    // edx), the guest's registers kept, and the flags' image in r10 (the
    // site may owe a restore from it: `Emitter::pending`). The site pushed
    // RFLAGS and RDX on an aligned stack, then its call's return address:
    // seven pushes here align it again for the call.
    let mut host_ptr = a.create_label();
    a.set_label(&mut host_ptr)?;
    for r in [rax, rcx, rsi, rdi, r9, r10, r11] {
        a.push(r)?;
    }
    a.mov(rdi, r15)?;
    a.mov(esi, r13d)?;
    a.call(qword_ptr(r15 + ctx::HOST_PTR))?;
    a.mov(r14, rax)?;
    for r in [r11, r10, r9, rdi, rsi, rcx, rax] {
        a.pop(r)?;
    }
    a.ret()?;
    let r = a.assemble_options(at, BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS)?;
    let exit_at = r.label_ip(&exit)?;
    let exec_at = r.label_ip(&exec)?;
    let host_ptr_at = r.label_ip(&host_ptr)?;
    Ok((r.inner.code_buffer, exit_at, exec_at, host_ptr_at))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 32-bit flat code at CPL 0.
    const KEY: u32 = key::STACK32 | key::flat(0) | key::flat(1) | key::flat(2) | key::flat(3);

    /// Where the blocks these tests translate go.
    const PLACE: Place = Place {
        at: 0x10_0000,
        exit_stub: 0x20_0000,
        first_exit: 0,
        phys_page: 0,
        first_exec_site: 0,
        cs_base: 0,
    };

    /// `code` followed by a store (which may fault: every flag is needed
    /// before it) and HLT, as a block: its instructions and how many are
    /// not run as they are (`Block::callouts`: memory accesses, callouts).
    fn block(code: &[u8], no_lahf: bool) -> (u32, u32) {
        let mut bytes = code.to_vec();
        bytes.extend([0x89, 0x03]); // mov [ebx], eax
        bytes.extend([0xF4]); // hlt
        NO_LAHF.with(|c| c.set(no_lahf));
        let b = translate(&bytes, 0x1000, KEY, PLACE, &[]);
        NO_LAHF.with(|c| c.set(false));
        let b = b.expect("translated");
        assert!(b.one_pass, "{code:02x?}: encoded in one pass");
        (b.insns, b.callouts)
    }

    /// The largest blocks, of memory accesses in every form the TLB's
    /// inline lookup takes (each with its miss path and JRCXZ), are
    /// encoded in one pass, their branches in reach.
    #[test]
    fn full_blocks_of_memory_accesses_are_encoded_in_one_pass() {
        #[rustfmt::skip]
        let forms: &[&[u8]] = &[
            &[0x8B, 0x03],                   // mov eax, [ebx]
            &[0x01, 0x44, 0x8E, 0x10],       // add [esi+ecx*4+0x10], eax
            &[0x66, 0x89, 0x0C, 0x24],       // mov [esp], cx
            &[0x0F, 0xB6, 0x87, 0, 1, 0, 0], // movzx eax, byte [edi+0x100]
            &[0xFF, 0x05, 0, 0x20, 0, 0],    // inc dword [0x2000]
        ];
        for form in forms {
            let code: Vec<u8> = form
                .iter()
                .copied()
                .cycle()
                .take(form.len() * (MAX_INSNS - 2))
                .collect();
            let (insns, _) = block(&code, false);
            assert_eq!(insns as usize, MAX_INSNS, "{form:02x?}");
        }
    }

    /// Every way of making undefined flags the interpreter's assembles,
    /// with LAHF and with PUSHFQ (a block that did not would silently be
    /// left to the interpreter): multiplies, shifts and rotates of each
    /// width, high byte registers, memory operands, counts in CL (also
    /// shifting CL itself), BT.
    #[test]
    fn every_undefined_flags_fix_assembles() {
        #[rustfmt::skip]
        let cases: &[(&str, &[u8])] = &[
            ("imul eax, ebx, 5", &[0x6B, 0xC3, 0x05]),
            ("imul bx, cx", &[0x66, 0x0F, 0xAF, 0xD9]),
            ("mul cl", &[0xF6, 0xE1]),
            ("mul word [esi]", &[0x66, 0xF7, 0x26]),
            ("imul dword [esi]", &[0xF7, 0x2E]),
            ("shl eax, 3", &[0xC1, 0xE0, 0x03]),
            ("shl ah, 1", &[0xD0, 0xE4]),
            ("sal word [esi], cl", &[0x66, 0xD3, 0x26]),
            ("shl cl, cl", &[0xD2, 0xE1]),
            ("sar ebx, cl", &[0xD3, 0xFB]),
            ("sar byte [esi], 2", &[0xC0, 0x3E, 0x02]),
            ("shr ebx, 20", &[0xC1, 0xEB, 0x14]),
            ("shr bh, 3", &[0xC0, 0xEF, 0x03]),
            ("shr dword [esi], 31", &[0xC1, 0x2E, 0x1F]),
            ("rol eax, 5", &[0xC1, 0xC0, 0x05]),
            ("ror dh, cl", &[0xD2, 0xCE]),
            ("rcl ecx, cl", &[0xD3, 0xD1]),
            ("rcr dword [esi], 7", &[0xC1, 0x1E, 0x07]),
            ("bt eax, 3", &[0x0F, 0xBA, 0xE0, 0x03]),
            ("bts dword [esi], 9", &[0x0F, 0xBA, 0x2E, 0x09]),
            ("btc ecx, edx", &[0x0F, 0xBB, 0xD1]),
        ];
        for no_lahf in [false, true] {
            for (name, code) in cases {
                // The store and HLT, and the instruction if it has a
                // memory operand.
                let mem = Decoder::new(32, code, 0).decode().op0_kind() == OpKind::Memory;
                let want = (3, 2 + mem as u32);
                assert_eq!(block(code, no_lahf), want, "{name} (no LAHF: {no_lahf})");
            }
        }
    }

    /// CLD is translated (copied through: DF is clear wherever translated
    /// code runs), in 32-bit code and in real mode's 16-bit code.
    #[test]
    fn cld_stays_in_translated_code() {
        // CLD, the store and HLT: the last two call out.
        assert_eq!(block(&[0xFC], false), (3, 2));
        let real = key::CODE16 | key::seg64k(0) | key::seg64k(2) | key::seg64k(3);
        // cld; inc ax; hlt
        let b = translate(&[0xFC, 0x40, 0xF4], 0x1000, real, PLACE, &[]).expect("translated");
        assert_eq!((b.insns, b.callouts), (3, 1));
    }

    /// DEC after a store, with the flags owed from their image (the
    /// store's lookup saved them), gets CF alone back (BT of the image's
    /// bit 8) rather than the whole restore (SAHF): it writes every
    /// other status flag. The random programs of `tests/bt_differential.rs`
    /// check the values.
    #[test]
    fn dec_after_an_access_restores_cf_alone() {
        if !host_has_lahf() {
            eprintln!("skipped: this host has no LAHF/SAHF in 64-bit mode (the image is PUSHFQ's)");
            return;
        }
        // mov [ebx], eax; dec ecx; adc edx, 0; hlt
        let code = [0x89, 0x03, 0x49, 0x83, 0xD2, 0x00, 0xF4];
        let b = translate(&code, 0x1000, KEY, PLACE, &[]).expect("translated");
        let host: Vec<Instruction> = Decoder::with_ip(64, &b.code, PLACE.at, 0)
            .into_iter()
            .collect();
        let dec = host
            .iter()
            .position(|i| i.mnemonic() == Mnemonic::Dec && i.op0_register() == Register::ECX)
            .expect("DEC ECX");
        let bt = &host[dec - 1];
        assert_eq!(
            (bt.mnemonic(), bt.op0_register(), bt.immediate8()),
            (Mnemonic::Bt, Register::R10D, 8)
        );
        assert!(!host[..dec].iter().any(|i| i.mnemonic() == Mnemonic::Sahf));
    }

    /// A loop of one block (`1: mov eax, [ebx]; add edx, eax; dec ecx;
    /// jnz 1b`) jumps back to its own entry with the JNZ itself, not
    /// through a chainable exit (a second taken jump); a branch to another
    /// block of the page is the chainable exit itself; and the hot path
    /// of the known stack page's reuse and of a real-mode read below
    /// 0xA0000 (or one of 16-bit protected mode without paging) falls
    /// through (the TLB lookup out of line).
    #[test]
    fn hot_paths_take_no_jump_they_need_not() {
        let code = [0x8B, 0x03, 0x01, 0xC2, 0x49, 0x75, 0xF9];
        let b = translate(&code, 0x1000, KEY, PLACE, &[]).expect("translated");
        let host: Vec<Instruction> = Decoder::with_ip(64, &b.code, PLACE.at, 0)
            .into_iter()
            .collect();
        assert!(
            host.iter()
                .any(|i| i.mnemonic() == Mnemonic::Jne && i.near_branch_target() == PLACE.at),
            "JNE back to the entry"
        );
        assert_eq!(b.exits.len(), 1, "the fall-through exit alone is chainable");
        // A conditional branch to another block of the page (sort's inner
        // loop: `mov [ebx], ecx; dec edi; jnz` back to the load before it)
        // is itself a chainable exit: JNE rel32, aimed at its home.
        let b = translate(&[0x89, 0x0B, 0x4F, 0x75, 0xEB], 0x1010, KEY, PLACE, &[])
            .expect("translated");
        let jcc = b
            .exits
            .iter()
            .find(|x| x.2 == 0x1000)
            .expect("the JNZ's exit");
        assert_eq!(&b.code[jcc.0 as usize - 2..jcc.0 as usize], &[0x0F, 0x85]);
        let rel = i32::from_le_bytes(b.code[jcc.0 as usize..][..4].try_into().unwrap());
        assert_eq!(
            jcc.0 as i64 + 4 + rel as i64,
            jcc.1 as i64,
            "aimed at its home"
        );
        // The jumps on the way to the fall-through exit (the block's
        // hot path): none.
        let jumps = |code: &[u8], key: u32| {
            let b = translate(code, 0x1000, key, PLACE, &[]).expect("translated");
            let site = PLACE.at + b.exits.first().expect("an exit").0;
            Decoder::with_ip(64, &b.code, PLACE.at, 0)
                .into_iter()
                .take_while(|i| i.next_ip() <= site)
                .filter(|i| i.flow_control() == iced_x86::FlowControl::UnconditionalBranch)
                .count()
        };
        // push eax; push ebx; inc eax: the second push reuses the first's
        // page.
        assert_eq!(jumps(&[0x50, 0x53, 0x40], KEY), 0);
        // lodsw; inc ax, in real mode (CS 0x100, DS a 64 KiB segment),
        // and in 16-bit protected mode without paging: straight from RAM
        // below `Ctx::real_end`; with paging, through the TLB.
        let real = key::CODE16 | 0x100 << 16 | key::seg64k(3);
        let pm16 = key::CODE16 | key::PM16 | key::seg64k(3);
        let reads_ram = |key: u32| {
            let b = translate(&[0xAD, 0x40], 0x1000, key, PLACE, &[]).expect("translated");
            Decoder::with_ip(64, &b.code, PLACE.at, 0)
                .into_iter()
                .any(|i| {
                    i.mnemonic() == Mnemonic::Cmp
                        && i.memory_base() == Register::R15
                        && i.memory_displacement64() == ctx::REAL_END as u64
                })
        };
        for key in [real, pm16 | key::NOPAGE] {
            assert_eq!(jumps(&[0xAD, 0x40], key), 0, "{key:#x}");
            assert!(reads_ram(key), "{key:#x}");
        }
        assert!(!reads_ram(pm16), "paging on");
    }

    /// SHR by CL, SHLD and RCR of a byte are the interpreter's where
    /// their undefined flags are needed (before a store), and translated
    /// where they are not (ADD writes every flag first).
    #[test]
    fn undefined_flags_that_cannot_be_fixed_go_to_the_interpreter_where_needed() {
        #[rustfmt::skip]
        let cases: &[(&str, &[u8])] = &[
            ("shr eax, cl", &[0xD3, 0xE8]),
            ("shld eax, ebx, 3", &[0x0F, 0xA4, 0xD8, 0x03]),
            ("rcr al, 3", &[0xC0, 0xD8, 0x03]),
            ("shr ax, 17", &[0x66, 0xC1, 0xE8, 0x11]),
        ];
        for (name, code) in cases {
            // The instruction, the store, HLT.
            assert_eq!(block(code, false), (3, 3), "{name} before a store");
            let mut then_add = code.to_vec();
            then_add.extend([0x01, 0xC8]); // add eax, ecx
            assert_eq!(block(&then_add, false), (4, 2), "{name} before ADD");
        }
    }
}
