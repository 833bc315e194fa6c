//! Lowering: one iced-x86 `Instruction` becomes one `Op` with its handler
//! chosen and its operands extracted. This runs once per instruction per
//! cached block, never on the execution path.
//!
//! What to do with each instruction is the table's (`decode/table.rs`: a
//! line per instruction with its handler, operand shape and attributes);
//! this file extracts the operands, generically for the first two and then
//! as the line's `Shape` says. To add an instruction, add its line, and a
//! `Shape` only if no existing one extracts what its handler needs.

pub mod table;

use crate::ops::{Handler, Op, EA_ANY, EA_BD, EA_BID, K_IMM, K_MEM, K_REG, NOREG};
use crate::{alu, segments, system};
use iced_x86::{Code, ConditionCode, FlowControl, Instruction, OpKind, Register};

fn gpr(r: Register) -> Option<(u8, u8)> {
    if r.is_gpr8() {
        Some(((r as u32 - Register::AL as u32) as u8, 1))
    } else if r.is_gpr16() {
        Some(((r as u32 - Register::AX as u32) as u8, 2))
    } else if r.is_gpr32() {
        Some(((r as u32 - Register::EAX as u32) as u8, 4))
    } else {
        None
    }
}

fn sreg(r: Register) -> Option<u8> {
    r.is_segment_register()
        .then(|| (r as u32 - Register::ES as u32) as u8)
}

fn cc(i: &Instruction) -> u8 {
    match i.condition_code() {
        ConditionCode::None => 0,
        c => c as u8 - 1,
    }
}

/// Fills the generic operand fields of `op` from the first two operands.
fn operands(op: &mut Op, i: &Instruction) {
    let mut w = 0u8;
    for n in 0..i.op_count().min(2) {
        let (k, r) = match i.op_kind(n) {
            OpKind::Register => {
                let reg = i.op_register(n);
                match gpr(reg) {
                    Some((idx, rw)) => {
                        if n == 0 || w == 0 {
                            w = rw;
                        }
                        (K_REG, idx)
                    }
                    None => (K_REG, sreg(reg).unwrap_or(0)),
                }
            }
            OpKind::Memory => {
                if n == 0 || w == 0 {
                    w = i.memory_size().size() as u8;
                }
                (K_MEM, 0)
            }
            OpKind::Immediate8
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate8to16
            | OpKind::Immediate8to32 => {
                op.imm = i.immediate(n) as u32;
                (K_IMM, 0)
            }
            _ => (0, 0),
        };
        if n == 0 {
            op.k0 = k;
            op.r0 = r;
        } else {
            op.k1 = k;
            op.r1 = r;
        }
    }
    if w == 1 || w == 2 || w == 4 {
        op.w = w;
    }
    // The memory operand, if any.
    let has_mem = (0..i.op_count()).any(|n| i.op_kind(n) == OpKind::Memory);
    if has_mem {
        memory(op, i);
    }
}

fn memory(op: &mut Op, i: &Instruction) {
    op.seg = sreg(i.memory_segment()).unwrap_or(3);
    let base = i.memory_base();
    let index = i.memory_index();
    op.base = gpr(base).map_or(NOREG, |(r, _)| r);
    op.index = gpr(index).map_or(NOREG, |(r, _)| r);
    op.scale = i.memory_index_scale().trailing_zeros() as u8;
    op.disp = i.memory_displacement32();
    op.a32 = if base != Register::None {
        base.is_gpr32()
    } else if index != Register::None {
        index.is_gpr32()
    } else {
        i.memory_displ_size() == 4
    };
}

fn rel(i: &Instruction) -> u32 {
    (i.near_branch_target() as u32).wrapping_sub(i.next_ip() as u32)
}

fn branch_w(i: &Instruction) -> u8 {
    match i.op0_kind() {
        OpKind::NearBranch16 | OpKind::FarBranch16 => 2,
        _ => 4,
    }
}

fn stack_w(i: &Instruction) -> u8 {
    i.stack_pointer_increment().unsigned_abs() as u8
}

/// How an instruction's operands are extracted beyond the generic two
/// (`operands`), and which specialised copy of its handler runs. A line of
/// the table (`table.rs`) names one.
#[derive(Clone, Copy)]
pub enum Shape {
    /// The generic operands only.
    Plain,
    /// ALU: the copies for 32-bit register-register and register-immediate,
    /// then for the same forms of the other widths.
    Alu(Handler, Handler, Handler, Handler),
    /// INC/DEC, shifts and rotates: the copies for a 32-bit register,
    /// then for a register of another width.
    Reg(Handler, Handler),
    /// MOV: segment, control and debug registers have their own handlers;
    /// 32-bit register and memory forms their own copies.
    Mov,
    /// MOVZX (false) or MOVSX (true): `x` is the source width.
    Movx(bool),
    /// LEA: #UD without a memory operand (SDM Vol 2A "LEA").
    Lea,
    /// XCHG: the memory operand first.
    Xchg,
    /// CMOVcc: `x` is the condition.
    Cc,
    /// SETcc: `x` is the condition; a byte destination.
    SetCc,
    /// Operand size fixed by the mnemonic.
    Width(u8),
    /// IMUL: the one-operand form's handler; the three-operand form has
    /// its immediate in `imm` and `x` = 1; both forms on 32-bit registers
    /// have their own (`muldiv::imul_rr32`).
    Imul(Handler),
    /// The first operand is an immediate (INT n, AAM, AAD).
    Imm,
    /// SHLD/SHRD: the count in CL (`imm2` = 1) or an immediate.
    Shxd,
    /// A string instruction: REP in `x`.
    Str,
    /// CMPS/SCAS: `x` is 1 for REPE, 2 for REPNE.
    StrCmp,
    /// INS/OUTS of this width.
    StrIo(u8),
    /// PUSH/POP: the copies for a segment register and a 32-bit register.
    Stack(Handler, Handler),
    /// PUSHF/POPF: the stack operand size.
    StackW,
    /// PUSHA/POPA: a register's size (an eighth of the stack change).
    StackAll,
    Enter,
    Leave,
    /// JMP/CALL: near relative with the line's handler; far direct or
    /// through the two far memory forms (m16:16, m16:32) with the first;
    /// near indirect with the second.
    Branch(Handler, Handler, Code, Code),
    /// RET/RETF: the two 16-bit forms, and the immediate to release.
    Ret(Code, Code),
    /// Jcc: condition, width and relative target.
    Jcc,
    /// LOOP, LOOPE, LOOPNE, JCXZ/JECXZ: the counter is ECX (`a32`) or CX.
    Loop,
    /// LGDT, LIDT, SGDT, SIDT: the 16-bit forms (24-bit base).
    TableReg,
    /// IN/OUT: the width of operand n (the accumulator).
    PortWidth(u32),
    /// LDS, LES, LFS, LGS, LSS: `x` becomes the segment in `imm2`.
    Lxs,
}

/// The `Op` for instruction `i`; `None` when the instruction is valid x86
/// but not implemented (the caller reports it and raises #UD).
pub fn lower(i: &Instruction) -> Option<Op> {
    let mut op = Op::new(system::undefined, i.code(), i.len() as u8);
    operands(&mut op, i);
    let form = table::form(i.mnemonic());
    // LOCK on anything but a lockable instruction with a memory
    // destination is #UD (SDM Vol 2A "LOCK").
    if i.has_lock_prefix()
        && !(form.is_some_and(|f| f.attrs & table::attr::LOCK != 0)
            && i.op_count() > 0
            && i.op0_kind() == OpKind::Memory)
    {
        return Some(op);
    }
    let form = form?;
    op.x = form.x;
    op.f = shape(form, &mut op, i)?;
    Some(op)
}

/// Extracts what `form`'s shape needs into `op`; the handler to run.
fn shape(form: &table::Form, op: &mut Op, i: &Instruction) -> Option<Handler> {
    let f = form.f;
    Some(match form.shape {
        Shape::Plain => f,
        Shape::Alu(rr32, ri32, rr, ri) => match (op.k0, op.k1, op.w) {
            (K_REG, K_REG, 4) => rr32,
            (K_REG, K_IMM, 4) => ri32,
            (K_REG, K_REG, _) => rr,
            (K_REG, K_IMM, _) => ri,
            (K_REG, K_MEM, 4) => alu_mem32(i.mnemonic(), true, op.ea_shape()).unwrap_or(f),
            (K_MEM, K_REG, 4) => alu_mem32(i.mnemonic(), false, op.ea_shape()).unwrap_or(f),
            _ => f,
        },
        Shape::Reg(r32, r) => match (op.k0, op.w) {
            (K_REG, 4) => r32,
            (K_REG, _) => r,
            _ => f,
        },
        Shape::Mov => return mov(op, i),
        Shape::Movx(sign) => {
            op.w = gpr(i.op0_register())?.1;
            op.x = if i.op1_kind() == OpKind::Register {
                gpr(i.op1_register())?.1
            } else {
                i.memory_size().size() as u8
            };
            op.imm2 = sign as u32;
            f
        }
        Shape::Lea => {
            if op.k1 != K_MEM {
                system::undefined
            } else {
                f
            }
        }
        Shape::Xchg => {
            if op.k0 == K_REG && op.k1 == K_MEM {
                // Make op0 the memory operand.
                std::mem::swap(&mut op.k0, &mut op.k1);
                std::mem::swap(&mut op.r0, &mut op.r1);
            }
            f
        }
        Shape::Cc => {
            op.x = cc(i);
            f
        }
        Shape::SetCc => {
            op.x = cc(i);
            op.w = 1;
            f
        }
        Shape::Width(w) => {
            op.w = w;
            f
        }
        Shape::Imul(one) => {
            let fast = if op.k1 == K_REG && op.w == 4 {
                crate::muldiv::imul_rr32
            } else {
                f
            };
            match i.op_count() {
                1 => one,
                2 => fast,
                _ => {
                    op.x = 1;
                    op.imm = i.immediate(2) as u32;
                    fast
                }
            }
        }
        Shape::Imm => {
            op.imm = i.immediate(0) as u32;
            f
        }
        Shape::Shxd => {
            if i.op2_kind() == OpKind::Register {
                op.imm2 = 1;
            } else {
                op.imm = i.immediate(2) as u32;
            }
            f
        }
        Shape::Str | Shape::StrCmp | Shape::StrIo(_) => {
            string_op(op, i, form.shape)?;
            crate::string::single(form.mnemonic, op).unwrap_or(f)
        }
        Shape::Stack(sreg_f, r32) => {
            op.w = stack_w(i);
            if i.op0_kind() == OpKind::Register && i.op0_register().is_segment_register() {
                sreg_f
            } else if op.k0 == K_REG && op.w == 4 {
                r32
            } else {
                f
            }
        }
        Shape::StackW => {
            op.w = stack_w(i);
            f
        }
        Shape::StackAll => {
            op.w = stack_w(i) / 8;
            f
        }
        Shape::Enter => {
            op.w = if i.code() == Code::Enterw_imm16_imm8 {
                2
            } else {
                4
            };
            op.imm = i.immediate(0) as u32;
            op.imm2 = i.immediate(1) as u32;
            f
        }
        Shape::Leave => {
            op.w = if i.code() == Code::Leavew { 2 } else { 4 };
            f
        }
        Shape::Branch(far, ind, m1616, m1632) => match i.op0_kind() {
            OpKind::NearBranch16 | OpKind::NearBranch32 => {
                op.w = branch_w(i);
                op.imm = rel(i);
                f
            }
            OpKind::FarBranch16 | OpKind::FarBranch32 => {
                op.w = branch_w(i);
                op.k0 = K_IMM;
                op.imm = if op.w == 2 {
                    i.far_branch16() as u32
                } else {
                    i.far_branch32()
                };
                op.imm2 = i.far_branch_selector() as u32;
                far
            }
            _ if i.code() == m1616 || i.code() == m1632 => {
                op.w = if i.code() == m1616 { 2 } else { 4 };
                far
            }
            _ => ind,
        },
        Shape::Ret(w16, w16_imm) => {
            op.w = if i.code() == w16 || i.code() == w16_imm {
                2
            } else {
                4
            };
            op.imm = if i.op_count() > 0 {
                i.immediate(0) as u32
            } else {
                0
            };
            op.k0 = 0;
            f
        }
        Shape::Jcc => {
            op.x = cc(i);
            op.w = branch_w(i);
            op.imm = rel(i);
            f
        }
        Shape::Loop => {
            op.w = branch_w(i);
            op.imm = rel(i);
            op.a32 = matches!(
                i.code(),
                Code::Loop_rel8_16_ECX
                    | Code::Loop_rel8_32_ECX
                    | Code::Loope_rel8_16_ECX
                    | Code::Loope_rel8_32_ECX
                    | Code::Loopne_rel8_16_ECX
                    | Code::Loopne_rel8_32_ECX
                    | Code::Jecxz_rel8_16
                    | Code::Jecxz_rel8_32
            );
            f
        }
        Shape::TableReg => {
            op.w = if matches!(
                i.code(),
                Code::Lgdt_m1632_16
                    | Code::Lidt_m1632_16
                    | Code::Sgdt_m1632_16
                    | Code::Sidt_m1632_16
            ) {
                2
            } else {
                4
            };
            f
        }
        Shape::PortWidth(n) => {
            op.w = gpr(i.op_register(n))?.1;
            f
        }
        Shape::Lxs => {
            op.w = gpr(i.op0_register())?.1;
            op.imm2 = op.x as u32;
            op.x = 0;
            op.k1 = K_MEM;
            f
        }
    })
}

/// The ALU's dword forms with memory (`alu::alu_rm32`: `reg op= [mem]`
/// when `reg_dst`, else `alu::alu_mr32`), by operation and by the shape
/// of the address, as MOV's. CMP [mem], reg keeps the general form.
fn alu_mem32(mn: iced_x86::Mnemonic, reg_dst: bool, ea: u8) -> Option<Handler> {
    use alu::{ADC, ADD, AND, CMP, OR, SBB, SUB, XOR};
    use iced_x86::Mnemonic as M;
    if !reg_dst && mn == M::Cmp {
        return None;
    }
    macro_rules! by_shape {
        ($k:expr) => {
            match (reg_dst, ea) {
                (true, EA_BD) => alu::alu_rm32::<$k, EA_BD> as Handler,
                (true, EA_BID) => alu::alu_rm32::<$k, EA_BID>,
                (true, _) => alu::alu_rm32::<$k, EA_ANY>,
                (false, EA_BD) => alu::alu_mr32::<$k, EA_BD>,
                (false, EA_BID) => alu::alu_mr32::<$k, EA_BID>,
                (false, _) => alu::alu_mr32::<$k, EA_ANY>,
            }
        };
    }
    Some(match mn {
        M::Add => by_shape!(ADD),
        M::Or => by_shape!(OR),
        M::Adc => by_shape!(ADC),
        M::Sbb => by_shape!(SBB),
        M::And => by_shape!(AND),
        M::Sub => by_shape!(SUB),
        M::Xor => by_shape!(XOR),
        M::Cmp => by_shape!(CMP),
        _ => return None,
    })
}

/// MOV: to and from segment, control and debug registers (each its own
/// handler), the 32-bit register and memory forms (their own copies, by
/// the shape of the address), and the rest.
fn mov(op: &mut Op, i: &Instruction) -> Option<Handler> {
    let r0 = i.op0_kind() == OpKind::Register;
    let r1 = i.op_count() > 1 && i.op1_kind() == OpKind::Register;
    Some(if r0 && i.op0_register().is_segment_register() {
        segments::mov_sreg
    } else if r1 && i.op1_register().is_segment_register() {
        op.w = if r0 {
            gpr(i.op0_register()).map_or(2, |g| g.1)
        } else {
            2
        };
        segments::mov_from_sreg
    } else if r0 && i.op0_register().is_cr() {
        op.x = (i.op0_register() as u32 - Register::CR0 as u32) as u8;
        op.r1 = gpr(i.op1_register())?.0;
        system::mov_cr
    } else if r1 && i.op1_register().is_cr() {
        op.x = (i.op1_register() as u32 - Register::CR0 as u32) as u8;
        op.imm2 = 1;
        op.r0 = gpr(i.op0_register())?.0;
        system::mov_cr
    } else if r0 && i.op0_register().is_dr() {
        op.x = (i.op0_register() as u32 - Register::DR0 as u32) as u8;
        op.r1 = gpr(i.op1_register())?.0;
        system::mov_dr
    } else if r1 && i.op1_register().is_dr() {
        op.x = (i.op1_register() as u32 - Register::DR0 as u32) as u8;
        op.imm2 = 1;
        op.r0 = gpr(i.op0_register())?.0;
        system::mov_dr
    } else if r0 && i.op0_register().is_tr() || r1 && i.op1_register().is_tr() {
        // The 386's test registers: not implemented.
        return None;
    } else if op.w == 4 && op.k0 == K_REG && op.k1 == K_REG {
        alu::mov_rr32
    } else if op.w == 4 && op.k0 == K_REG && op.k1 == K_IMM {
        alu::mov_ri32
    } else if op.w == 4 && op.k0 == K_REG && op.k1 == K_MEM {
        match op.ea_shape() {
            EA_BD => alu::mov_rm32::<EA_BD>,
            EA_BID => alu::mov_rm32::<EA_BID>,
            _ => alu::mov_rm32::<EA_ANY>,
        }
    } else if op.w == 4 && op.k0 == K_MEM && op.k1 == K_REG {
        match op.ea_shape() {
            EA_BD => alu::mov_mr32::<EA_BD>,
            EA_BID => alu::mov_mr32::<EA_BID>,
            _ => alu::mov_mr32::<EA_ANY>,
        }
    } else {
        alu::mov
    })
}

/// String instructions: width, address size (from the implicit operand),
/// segment, and the REP kind in `x`.
fn string_op(op: &mut Op, i: &Instruction, shape: Shape) -> Option<()> {
    op.w = i.memory_size().size() as u8;
    let mem_kind = (0..i.op_count()).map(|n| i.op_kind(n)).find(|k| {
        matches!(
            k,
            OpKind::MemorySegSI
                | OpKind::MemorySegESI
                | OpKind::MemoryESDI
                | OpKind::MemoryESEDI
                | OpKind::MemorySegDI
                | OpKind::MemorySegEDI
        )
    })?;
    op.a32 = matches!(
        mem_kind,
        OpKind::MemorySegESI | OpKind::MemoryESEDI | OpKind::MemorySegEDI
    );
    op.seg = sreg(i.memory_segment()).unwrap_or(3);
    let rep = i.has_rep_prefix() || i.has_repne_prefix();
    op.x = match shape {
        // CMPS and SCAS tell REPE from REPNE (SDM Vol 2B "REP/REPE/REPZ/
        // REPNE/REPNZ").
        Shape::StrCmp if i.has_repe_prefix() => 1,
        Shape::StrCmp if i.has_repne_prefix() => 2,
        Shape::StrCmp => 0,
        _ => rep as u8,
    };
    if let Shape::StrIo(w) = shape {
        op.w = w;
    }
    Some(())
}

/// Whether the block ends after `i`: it transfers control (the table's
/// `ENDS_BLOCK`). An instruction the table lacks (it raises #UD, reported
/// when lowered) ends the block where iced-x86 says it changes the flow.
pub fn ends_block(i: &Instruction) -> bool {
    match table::form(i.mnemonic()) {
        Some(f) => f.attrs & table::attr::ENDS_BLOCK != 0,
        None => i.flow_control() != FlowControl::Next,
    }
}

#[cfg(test)]
mod tests;
