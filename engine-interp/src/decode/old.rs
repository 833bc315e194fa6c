//! Lowering: one iced-x86 `Instruction` becomes one `Op` with its handler
//! chosen and its operands extracted. This runs once per instruction per
//! cached block, never on the execution path.

use crate::ops::{Op, EA_ANY, EA_BD, EA_BID, K_IMM, K_MEM, K_REG, NOREG};
use crate::{alu, control, interrupts, io, muldiv, segments, shift, stack, string, system};
use iced_x86::{Code, ConditionCode, Instruction, Mnemonic, OpKind, Register};

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

/// Whether the LOCK prefix is allowed (SDM Vol 2A "LOCK": only these
/// instructions with a memory destination; otherwise #UD).
fn lockable(i: &Instruction) -> bool {
    use Mnemonic::*;
    matches!(
        i.mnemonic(),
        Add | Adc
            | And
            | Btc
            | Btr
            | Bts
            | Cmpxchg
            | Cmpxchg8b
            | Dec
            | Inc
            | Neg
            | Not
            | Or
            | Sbb
            | Sub
            | Xor
            | Xadd
            | Xchg
    ) && i.op_count() > 0
        && i.op0_kind() == OpKind::Memory
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

/// The `Op` for instruction `i`; `None` when the instruction is valid x86
/// but not implemented (the caller reports it and raises #UD).
pub fn lower(i: &Instruction) -> Option<Op> {
    use Mnemonic as M;
    let mut op = Op::new(system::undefined, i.code(), i.len() as u8);
    operands(&mut op, i);
    if i.has_lock_prefix() && !lockable(i) {
        return Some(op); // #UD
    }
    let rep = i.has_rep_prefix() || i.has_repne_prefix();
    let f: crate::ops::Handler = match i.mnemonic() {
        M::Add | M::Or | M::Adc | M::Sbb | M::And | M::Sub | M::Xor | M::Cmp => {
            let rr = op.k0 == K_REG && op.k1 == K_REG && op.w == 4;
            let ri = op.k0 == K_REG && op.k1 == K_IMM && op.w == 4;
            macro_rules! pick {
                ($k:expr) => {
                    if rr {
                        alu::alu_rr32::<{ $k }>
                    } else if ri {
                        alu::alu_ri32::<{ $k }>
                    } else {
                        alu::alu::<{ $k }>
                    }
                };
            }
            match i.mnemonic() {
                M::Add => pick!(alu::ADD),
                M::Or => pick!(alu::OR),
                M::Adc => pick!(alu::ADC),
                M::Sbb => pick!(alu::SBB),
                M::And => pick!(alu::AND),
                M::Sub => pick!(alu::SUB),
                M::Xor => pick!(alu::XOR),
                _ => pick!(alu::CMP),
            }
        }
        M::Test => alu::test,
        M::Inc | M::Dec => {
            op.x = (i.mnemonic() == M::Dec) as u8;
            if op.k0 == K_REG && op.w == 4 {
                alu::incdec_r32
            } else {
                alu::incdec
            }
        }
        M::Neg => alu::neg,
        M::Not => alu::not,
        M::Mov => {
            let r0 = i.op0_kind() == OpKind::Register;
            let r1 = i.op_count() > 1 && i.op1_kind() == OpKind::Register;
            if r0 && i.op0_register().is_segment_register() {
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
            }
        }
        M::Movzx | M::Movsx => {
            op.w = gpr(i.op0_register())?.1;
            op.x = if i.op1_kind() == OpKind::Register {
                gpr(i.op1_register())?.1
            } else {
                i.memory_size().size() as u8
            };
            op.imm2 = (i.mnemonic() == M::Movsx) as u32;
            alu::movx
        }
        M::Lea => {
            if op.k1 != K_MEM {
                return Some(op);
            }
            alu::lea
        }
        M::Xchg => {
            if op.k0 == K_REG && op.k1 == K_MEM {
                // Make op0 the memory operand.
                std::mem::swap(&mut op.k0, &mut op.k1);
                std::mem::swap(&mut op.r0, &mut op.r1);
            }
            alu::xchg
        }
        M::Nop | M::Pause | M::Wait => alu::nop,
        M::Cmpxchg => alu::cmpxchg,
        M::Cmpxchg8b => alu::cmpxchg8b,
        M::Xadd => alu::xadd,
        M::Bswap => alu::bswap,
        M::Seta
        | M::Setae
        | M::Setb
        | M::Setbe
        | M::Sete
        | M::Setg
        | M::Setge
        | M::Setl
        | M::Setle
        | M::Setne
        | M::Setno
        | M::Setnp
        | M::Setns
        | M::Seto
        | M::Setp
        | M::Sets => {
            op.x = cc(i);
            op.w = 1;
            alu::setcc
        }
        M::Cmova
        | M::Cmovae
        | M::Cmovb
        | M::Cmovbe
        | M::Cmove
        | M::Cmovg
        | M::Cmovge
        | M::Cmovl
        | M::Cmovle
        | M::Cmovne
        | M::Cmovno
        | M::Cmovnp
        | M::Cmovns
        | M::Cmovo
        | M::Cmovp
        | M::Cmovs => {
            op.x = cc(i);
            alu::cmovcc
        }
        M::Cbw | M::Cwde => {
            op.w = if i.mnemonic() == M::Cbw { 2 } else { 4 };
            alu::cbw
        }
        M::Cwd | M::Cdq => {
            op.w = if i.mnemonic() == M::Cwd { 2 } else { 4 };
            alu::cwd
        }
        M::Lahf => alu::lahf,
        M::Sahf => alu::sahf,
        M::Clc | M::Stc | M::Cmc | M::Cld | M::Std => {
            op.x = match i.mnemonic() {
                M::Clc => 0,
                M::Stc => 1,
                M::Cmc => 2,
                M::Cld => 3,
                _ => 4,
            };
            alu::flagop
        }
        M::Xlatb => alu::xlat,
        M::Salc => alu::salc,
        M::Mul => muldiv::mul,
        M::Imul => match i.op_count() {
            1 => muldiv::imul1,
            2 => muldiv::imul2,
            _ => {
                op.x = 1;
                op.imm = i.immediate(2) as u32;
                muldiv::imul2
            }
        },
        M::Div => muldiv::div,
        M::Idiv => muldiv::idiv,
        M::Daa => muldiv::daa,
        M::Das => muldiv::das,
        M::Aaa | M::Aas => {
            op.x = (i.mnemonic() == M::Aas) as u8;
            muldiv::aaa_aas
        }
        M::Aam => {
            op.imm = i.immediate(0) as u32;
            muldiv::aam
        }
        M::Aad => {
            op.imm = i.immediate(0) as u32;
            muldiv::aad
        }
        M::Bt | M::Bts | M::Btr | M::Btc => {
            op.x = match i.mnemonic() {
                M::Bt => 0,
                M::Bts => 1,
                M::Btr => 2,
                _ => 3,
            };
            muldiv::bt
        }
        M::Bsf | M::Bsr => {
            op.x = (i.mnemonic() == M::Bsr) as u8;
            muldiv::bsf_bsr
        }
        M::Rol | M::Ror | M::Rcl | M::Rcr | M::Shl | M::Shr | M::Sal | M::Sar => {
            op.x = match i.mnemonic() {
                M::Rol => shift::ROL,
                M::Ror => shift::ROR,
                M::Rcl => shift::RCL,
                M::Rcr => shift::RCR,
                M::Shl => shift::SHL,
                M::Shr => shift::SHR,
                M::Sal => shift::SAL,
                _ => shift::SAR,
            };
            shift::shift
        }
        M::Shld | M::Shrd => {
            op.x = (i.mnemonic() == M::Shrd) as u8;
            if i.op2_kind() == OpKind::Register {
                op.imm2 = 1;
            } else {
                op.imm = i.immediate(2) as u32;
            }
            shift::shxd
        }
        M::Movsb
        | M::Movsw
        | M::Movsd
        | M::Stosb
        | M::Stosw
        | M::Stosd
        | M::Lodsb
        | M::Lodsw
        | M::Lodsd
        | M::Cmpsb
        | M::Cmpsw
        | M::Cmpsd
        | M::Scasb
        | M::Scasw
        | M::Scasd
        | M::Insb
        | M::Insw
        | M::Insd
        | M::Outsb
        | M::Outsw
        | M::Outsd => string_op(&mut op, i, rep)?,
        M::Push => {
            op.w = stack_w(i);
            if i.op0_kind() == OpKind::Register && i.op0_register().is_segment_register() {
                segments::push_sreg
            } else if op.k0 == K_REG && op.w == 4 {
                stack::push_r32
            } else {
                stack::push
            }
        }
        M::Pop => {
            op.w = stack_w(i);
            if i.op0_kind() == OpKind::Register && i.op0_register().is_segment_register() {
                segments::pop_sreg
            } else if op.k0 == K_REG && op.w == 4 {
                stack::pop_r32
            } else {
                stack::pop
            }
        }
        M::Pusha | M::Pushad => {
            op.w = stack_w(i) / 8;
            stack::pusha
        }
        M::Popa | M::Popad => {
            op.w = stack_w(i) / 8;
            stack::popa
        }
        M::Pushf | M::Pushfd => {
            op.w = stack_w(i);
            stack::pushf
        }
        M::Popf | M::Popfd => {
            op.w = stack_w(i);
            stack::popf
        }
        M::Enter => {
            op.w = if i.code() == Code::Enterw_imm16_imm8 {
                2
            } else {
                4
            };
            op.imm = i.immediate(0) as u32;
            op.imm2 = i.immediate(1) as u32;
            stack::enter
        }
        M::Leave => {
            op.w = if i.code() == Code::Leavew { 2 } else { 4 };
            stack::leave
        }
        M::Jmp => match i.op0_kind() {
            OpKind::NearBranch16 | OpKind::NearBranch32 => {
                op.w = branch_w(i);
                op.imm = rel(i);
                control::jmp_rel
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
                segments::jmp_far
            }
            _ => {
                if matches!(i.code(), Code::Jmp_m1616 | Code::Jmp_m1632) {
                    op.w = if i.code() == Code::Jmp_m1616 { 2 } else { 4 };
                    segments::jmp_far
                } else {
                    control::jmp_ind
                }
            }
        },
        M::Call => match i.op0_kind() {
            OpKind::NearBranch16 | OpKind::NearBranch32 => {
                op.w = branch_w(i);
                op.imm = rel(i);
                control::call_rel
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
                segments::call_far
            }
            _ => {
                if matches!(i.code(), Code::Call_m1616 | Code::Call_m1632) {
                    op.w = if i.code() == Code::Call_m1616 { 2 } else { 4 };
                    segments::call_far
                } else {
                    control::call_ind
                }
            }
        },
        M::Ret => {
            op.w = if matches!(i.code(), Code::Retnw | Code::Retnw_imm16) {
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
            control::ret_near
        }
        M::Retf => {
            op.w = if matches!(i.code(), Code::Retfw | Code::Retfw_imm16) {
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
            segments::ret_far
        }
        M::Ja
        | M::Jae
        | M::Jb
        | M::Jbe
        | M::Je
        | M::Jg
        | M::Jge
        | M::Jl
        | M::Jle
        | M::Jne
        | M::Jno
        | M::Jnp
        | M::Jns
        | M::Jo
        | M::Jp
        | M::Js => {
            op.x = cc(i);
            op.w = branch_w(i);
            op.imm = rel(i);
            control::jcc
        }
        M::Loop | M::Loope | M::Loopne | M::Jcxz | M::Jecxz => {
            op.x = match i.mnemonic() {
                M::Loop => 0,
                M::Loope => 1,
                M::Loopne => 2,
                _ => 3,
            };
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
            control::loop_
        }
        M::Int => {
            op.imm = i.immediate(0) as u32;
            op.x = 0;
            interrupts::int
        }
        M::Int3 => {
            op.x = 1;
            interrupts::int
        }
        M::Into => {
            op.x = 2;
            interrupts::int
        }
        M::Iret | M::Iretd => {
            op.w = if i.mnemonic() == M::Iret { 2 } else { 4 };
            interrupts::iret
        }
        M::Bound => interrupts::bound,
        M::Cli | M::Sti => {
            op.x = (i.mnemonic() == M::Sti) as u8;
            system::cli_sti
        }
        M::Hlt => system::hlt,
        M::Lgdt | M::Lidt | M::Sgdt | M::Sidt => {
            op.x = matches!(i.mnemonic(), M::Lidt | M::Sidt) as u8;
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
            if matches!(i.mnemonic(), M::Lgdt | M::Lidt) {
                system::lgdt_lidt
            } else {
                system::sgdt_sidt
            }
        }
        M::Sldt | M::Str => {
            op.x = (i.mnemonic() == M::Str) as u8;
            system::sldt_str
        }
        M::Lldt => system::lldt,
        M::Ltr => system::ltr,
        M::Smsw => system::smsw,
        M::Lmsw => system::lmsw,
        M::Clts => system::clts,
        M::Invlpg => system::invlpg,
        M::Wbinvd | M::Invd => system::wbinvd,
        M::Cpuid => system::cpuid,
        M::Rdtsc => system::rdtsc,
        M::Rdmsr | M::Wrmsr => {
            op.x = (i.mnemonic() == M::Wrmsr) as u8;
            system::msr_op
        }
        M::Sysenter => system::sysenter,
        M::Sysexit => system::sysexit,
        M::Lar | M::Lsl | M::Verr | M::Verw => {
            op.x = match i.mnemonic() {
                M::Lar => 0,
                M::Lsl => 1,
                M::Verr => 2,
                _ => 3,
            };
            system::protq
        }
        M::Arpl => system::arpl,
        M::Ud0 | M::Ud1 | M::Ud2 => system::undefined,
        M::In => {
            op.w = gpr(i.op0_register())?.1;
            io::in_
        }
        M::Out => {
            op.w = gpr(i.op1_register())?.1;
            io::out
        }
        M::Lds | M::Les | M::Lfs | M::Lgs | M::Lss => {
            op.w = gpr(i.op0_register())?.1;
            op.imm2 = match i.mnemonic() {
                M::Les => 0,
                M::Lss => 2,
                M::Lds => 3,
                M::Lfs => 4,
                _ => 5,
            };
            op.k1 = K_MEM;
            segments::lxs
        }
        _ => return None,
    };
    op.f = f;
    Some(op)
}

fn string_op(op: &mut Op, i: &Instruction, rep: bool) -> Option<crate::ops::Handler> {
    use Mnemonic as M;
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
    let compare = matches!(
        i.mnemonic(),
        M::Cmpsb | M::Cmpsw | M::Cmpsd | M::Scasb | M::Scasw | M::Scasd
    );
    op.x = if compare {
        if i.has_repe_prefix() {
            1
        } else if i.has_repne_prefix() {
            2
        } else {
            0
        }
    } else {
        rep as u8
    };
    if matches!(
        i.mnemonic(),
        M::Insb | M::Insw | M::Insd | M::Outsb | M::Outsw | M::Outsd
    ) {
        op.w = match i.mnemonic() {
            M::Insb | M::Outsb => 1,
            M::Insw | M::Outsw => 2,
            _ => 4,
        };
    }
    Some(match i.mnemonic() {
        M::Movsb | M::Movsw | M::Movsd => string::movs,
        M::Stosb | M::Stosw | M::Stosd => string::stos,
        M::Lodsb | M::Lodsw | M::Lodsd => string::lods,
        M::Cmpsb | M::Cmpsw | M::Cmpsd => string::cmps,
        M::Scasb | M::Scasw | M::Scasd => string::scas,
        M::Insb | M::Insw | M::Insd => io::ins,
        _ => io::outs,
    })
}
