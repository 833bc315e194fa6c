//! The instruction table: one line per instruction ringlab implements, with
//! its handler, its operand shape and its attributes, in the manner of
//! Bochs' `cpu/decoder/ia_opcodes.def` and QEMU's
//! `target/i386/tcg/decode-new.c.inc`. The decoder (`decode::lower`), the
//! block builder (which instruction ends a block) and the translator (what
//! it may copy through unchanged, what it leaves to the interpreter) all
//! read it; no other list says these things.
//!
//! A line is keyed by iced-x86's `Mnemonic`, which covers every encoding
//! (`Code`) of the instruction; where encodings of one mnemonic need
//! different treatment (operand size in the opcode, far forms of JMP and
//! CALL), the shape says how to tell them apart.

use super::Shape::{self, *};
use crate::alu::{self, ADC, ADD, AND, CMP, OR, SBB, SUB, XOR};
use crate::ops::Handler;
use crate::shift::{self, RCL, RCR, ROL, ROR, SAL, SAR, SHL, SHR};
use crate::{control, interrupts, io, muldiv, segments, stack, string, system};
use iced_x86::{Code, Mnemonic};
use std::sync::OnceLock;

/// Attributes of an instruction (bits of `Form::attrs`).
pub mod attr {
    /// The LOCK prefix is allowed when the destination is memory; any
    /// other LOCK-prefixed instruction is #UD (SDM Vol 2A "LOCK").
    pub const LOCK: u8 = 1 << 0;
    /// Sensitive in Popek and Goldberg's sense: it reads or changes state
    /// that a monitor must virtualise (privileged instructions, and the
    /// unprivileged ones of Robin and Irvine's list). Its handler records a
    /// `Sensitive` event. Some encodings of other mnemonics are sensitive
    /// too (MOV to or from a segment, control or debug register, PUSH CS);
    /// their handlers, chosen by the `Mov` and `Stack` shapes, record it.
    pub const SENSITIVE: u8 = 1 << 1;
    /// Transfers control (a jump, call, return, interrupt or exception):
    /// the decoded block ends after it.
    pub const ENDS_BLOCK: u8 = 1 << 2;
    /// Behaves the same on an x86-64 host in 64-bit mode, never faults on
    /// the host for a reason of its own, and touches nothing but general
    /// registers, status flags and at most one memory operand: the
    /// translator may copy it through (its IDENT rule).
    pub const IDENT: u8 = 1 << 3;
}
use attr::*;

/// One instruction form.
pub struct Form {
    pub mnemonic: Mnemonic,
    /// The handler; a shape may pick a specialised copy instead.
    pub f: Handler,
    /// How the operands are extracted beyond the generic two.
    pub shape: Shape,
    /// The handler's sub-operation (`Op::x`): an ALU or shift kind, a
    /// flag to set, a table register...
    pub x: u8,
    pub attrs: u8,
}

macro_rules! forms {
    ($($m:ident => $f:expr, $shape:expr, $x:expr, $attrs:expr;)*) => {
        /// Every implemented instruction.
        pub static FORMS: &[Form] = &[
            $(Form { mnemonic: Mnemonic::$m, f: $f, shape: $shape, x: $x, attrs: $attrs },)*
        ];
    };
}

/// Short names for the attribute column.
const NONE: u8 = 0;
const END: u8 = ENDS_BLOCK;
const SENS: u8 = SENSITIVE;

#[rustfmt::skip]
forms! {
    // mnemonic => handler,                shape,                                                  x,     attributes
    // Arithmetic and logic (SDM Vol 1 7.3.2).
    Add      => alu::alu::<ADD>,           Alu(alu::alu_rr32::<ADD>, alu::alu_ri32::<ADD>, alu::alu_rr::<ADD>, alu::alu_ri::<ADD>),        0,     LOCK | IDENT;
    Or       => alu::alu::<OR>,            Alu(alu::alu_rr32::<OR>, alu::alu_ri32::<OR>, alu::alu_rr::<OR>, alu::alu_ri::<OR>),          0,     LOCK | IDENT;
    Adc      => alu::alu::<ADC>,           Alu(alu::alu_rr32::<ADC>, alu::alu_ri32::<ADC>, alu::alu_rr::<ADC>, alu::alu_ri::<ADC>),        0,     LOCK | IDENT;
    Sbb      => alu::alu::<SBB>,           Alu(alu::alu_rr32::<SBB>, alu::alu_ri32::<SBB>, alu::alu_rr::<SBB>, alu::alu_ri::<SBB>),        0,     LOCK | IDENT;
    And      => alu::alu::<AND>,           Alu(alu::alu_rr32::<AND>, alu::alu_ri32::<AND>, alu::alu_rr::<AND>, alu::alu_ri::<AND>),        0,     LOCK | IDENT;
    Sub      => alu::alu::<SUB>,           Alu(alu::alu_rr32::<SUB>, alu::alu_ri32::<SUB>, alu::alu_rr::<SUB>, alu::alu_ri::<SUB>),        0,     LOCK | IDENT;
    Xor      => alu::alu::<XOR>,           Alu(alu::alu_rr32::<XOR>, alu::alu_ri32::<XOR>, alu::alu_rr::<XOR>, alu::alu_ri::<XOR>),        0,     LOCK | IDENT;
    Cmp      => alu::alu::<CMP>,           Alu(alu::alu_rr32::<CMP>, alu::alu_ri32::<CMP>, alu::alu_rr::<CMP>, alu::alu_ri::<CMP>),        0,     IDENT;
    Test     => alu::test,                 Plain,                                                  0,     IDENT;
    Inc      => alu::incdec,               Reg(alu::incdec_r32, alu::incdec_r),                                   0,     LOCK | IDENT;
    Dec      => alu::incdec,               Reg(alu::incdec_r32, alu::incdec_r),                                   1,     LOCK | IDENT;
    Neg      => alu::neg,                  Plain,                                                  0,     LOCK | IDENT;
    Not      => alu::not,                  Plain,                                                  0,     LOCK | IDENT;
    // Data movement.
    Mov      => alu::mov,                  Mov,                                                    0,     IDENT;
    Movzx    => alu::movx,                 Movx(false),                                            0,     IDENT;
    Movsx    => alu::movx,                 Movx(true),                                             0,     IDENT;
    Lea      => alu::lea,                  Lea,                                                    0,     IDENT;
    Xchg     => alu::xchg,                 Xchg,                                                   0,     LOCK | IDENT;
    Nop      => alu::nop,                  Plain,                                                  0,     IDENT;
    Pause    => alu::nop,                  Plain,                                                  0,     NONE;
    Wait     => alu::nop,                  Plain,                                                  0,     NONE;
    Cmpxchg  => alu::cmpxchg,              Plain,                                                  0,     LOCK | IDENT;
    Cmpxchg8b => alu::cmpxchg8b,           Plain,                                                  0,     LOCK;
    Xadd     => alu::xadd,                 Plain,                                                  0,     LOCK | IDENT;
    Bswap    => alu::bswap,                Plain,                                                  0,     IDENT;
    // SETcc and CMOVcc: the condition is the instruction's (SDM Vol 1 B.1).
    Seto     => alu::setcc,                SetCc,                                                  0,     IDENT;
    Setno    => alu::setcc,                SetCc,                                                  0,     IDENT;
    Setb     => alu::setcc,                SetCc,                                                  0,     IDENT;
    Setae    => alu::setcc,                SetCc,                                                  0,     IDENT;
    Sete     => alu::setcc,                SetCc,                                                  0,     IDENT;
    Setne    => alu::setcc,                SetCc,                                                  0,     IDENT;
    Setbe    => alu::setcc,                SetCc,                                                  0,     IDENT;
    Seta     => alu::setcc,                SetCc,                                                  0,     IDENT;
    Sets     => alu::setcc,                SetCc,                                                  0,     IDENT;
    Setns    => alu::setcc,                SetCc,                                                  0,     IDENT;
    Setp     => alu::setcc,                SetCc,                                                  0,     IDENT;
    Setnp    => alu::setcc,                SetCc,                                                  0,     IDENT;
    Setl     => alu::setcc,                SetCc,                                                  0,     IDENT;
    Setge    => alu::setcc,                SetCc,                                                  0,     IDENT;
    Setle    => alu::setcc,                SetCc,                                                  0,     IDENT;
    Setg     => alu::setcc,                SetCc,                                                  0,     IDENT;
    Cmovo    => alu::cmovcc,               Cc,                                                     0,     IDENT;
    Cmovno   => alu::cmovcc,               Cc,                                                     0,     IDENT;
    Cmovb    => alu::cmovcc,               Cc,                                                     0,     IDENT;
    Cmovae   => alu::cmovcc,               Cc,                                                     0,     IDENT;
    Cmove    => alu::cmovcc,               Cc,                                                     0,     IDENT;
    Cmovne   => alu::cmovcc,               Cc,                                                     0,     IDENT;
    Cmovbe   => alu::cmovcc,               Cc,                                                     0,     IDENT;
    Cmova    => alu::cmovcc,               Cc,                                                     0,     IDENT;
    Cmovs    => alu::cmovcc,               Cc,                                                     0,     IDENT;
    Cmovns   => alu::cmovcc,               Cc,                                                     0,     IDENT;
    Cmovp    => alu::cmovcc,               Cc,                                                     0,     IDENT;
    Cmovnp   => alu::cmovcc,               Cc,                                                     0,     IDENT;
    Cmovl    => alu::cmovcc,               Cc,                                                     0,     IDENT;
    Cmovge   => alu::cmovcc,               Cc,                                                     0,     IDENT;
    Cmovle   => alu::cmovcc,               Cc,                                                     0,     IDENT;
    Cmovg    => alu::cmovcc,               Cc,                                                     0,     IDENT;
    // Conversions and flag operations.
    Cbw      => alu::cbw,                  Width(2),                                               0,     IDENT;
    Cwde     => alu::cbw,                  Width(4),                                               0,     IDENT;
    Cwd      => alu::cwd,                  Width(2),                                               0,     IDENT;
    Cdq      => alu::cwd,                  Width(4),                                               0,     IDENT;
    Lahf     => alu::lahf,                 Plain,                                                  0,     IDENT;
    Sahf     => alu::sahf,                 Plain,                                                  0,     IDENT;
    Clc      => alu::flagop,               Plain,                                                  0,     IDENT;
    Stc      => alu::flagop,               Plain,                                                  1,     IDENT;
    Cmc      => alu::flagop,               Plain,                                                  2,     IDENT;
    Cld      => alu::flagop,               Plain,                                                  3,     NONE;
    Std      => alu::flagop,               Plain,                                                  4,     NONE;
    Xlatb    => alu::xlat,                 Plain,                                                  0,     NONE;
    Salc     => alu::salc,                 Plain,                                                  0,     NONE;
    // Multiply, divide, decimal, bits (muldiv.rs).
    Mul      => muldiv::mul,               Plain,                                                  0,     IDENT;
    Imul     => muldiv::imul2,             Imul(muldiv::imul1),                                    0,     IDENT;
    Div      => muldiv::div,               Plain,                                                  0,     NONE;
    Idiv     => muldiv::idiv,              Plain,                                                  0,     NONE;
    Daa      => muldiv::daa,               Plain,                                                  0,     NONE;
    Das      => muldiv::das,               Plain,                                                  0,     NONE;
    Aaa      => muldiv::aaa_aas,           Plain,                                                  0,     NONE;
    Aas      => muldiv::aaa_aas,           Plain,                                                  1,     NONE;
    Aam      => muldiv::aam,               Imm,                                                    0,     NONE;
    Aad      => muldiv::aad,               Imm,                                                    0,     NONE;
    Bt       => muldiv::bt,                Plain,                                                  0,     IDENT;
    Bts      => muldiv::bt,                Plain,                                                  1,     LOCK | IDENT;
    Btr      => muldiv::bt,                Plain,                                                  2,     LOCK | IDENT;
    Btc      => muldiv::bt,                Plain,                                                  3,     LOCK | IDENT;
    Bsf      => muldiv::bsf_bsr,           Plain,                                                  0,     NONE;
    Bsr      => muldiv::bsf_bsr,           Plain,                                                  1,     NONE;
    // Shifts and rotates (shift.rs).
    Rol      => shift::shift,              Reg(shift::shift_r32::<ROL>, shift::shift_r::<ROL>),    ROL,   IDENT;
    Ror      => shift::shift,              Reg(shift::shift_r32::<ROR>, shift::shift_r::<ROR>),    ROR,   IDENT;
    Rcl      => shift::shift,              Reg(shift::shift_r32::<RCL>, shift::shift_r::<RCL>),    RCL,   IDENT;
    Rcr      => shift::shift,              Reg(shift::shift_r32::<RCR>, shift::shift_r::<RCR>),    RCR,   IDENT;
    Shl      => shift::shift,              Reg(shift::shift_r32::<SHL>, shift::shift_r::<SHL>),    SHL,   IDENT;
    Shr      => shift::shift,              Reg(shift::shift_r32::<SHR>, shift::shift_r::<SHR>),    SHR,   IDENT;
    Sal      => shift::shift,              Reg(shift::shift_r32::<SAL>, shift::shift_r::<SAL>),    SAL,   NONE;
    Sar      => shift::shift,              Reg(shift::shift_r32::<SAR>, shift::shift_r::<SAR>),    SAR,   IDENT;
    Shld     => shift::shxd,               Shxd,                                                   0,     IDENT;
    Shrd     => shift::shxd,               Shxd,                                                   1,     IDENT;
    // String instructions (string.rs, io.rs): REP in `x`.
    Movsb    => string::movs,              Str,                                                    0,     NONE;
    Movsw    => string::movs,              Str,                                                    0,     NONE;
    Movsd    => string::movs,              Str,                                                    0,     NONE;
    Stosb    => string::stos,              Str,                                                    0,     NONE;
    Stosw    => string::stos,              Str,                                                    0,     NONE;
    Stosd    => string::stos,              Str,                                                    0,     NONE;
    Lodsb    => string::lods,              Str,                                                    0,     NONE;
    Lodsw    => string::lods,              Str,                                                    0,     NONE;
    Lodsd    => string::lods,              Str,                                                    0,     NONE;
    Cmpsb    => string::cmps,              StrCmp,                                                 0,     NONE;
    Cmpsw    => string::cmps,              StrCmp,                                                 0,     NONE;
    Cmpsd    => string::cmps,              StrCmp,                                                 0,     NONE;
    Scasb    => string::scas,              StrCmp,                                                 0,     NONE;
    Scasw    => string::scas,              StrCmp,                                                 0,     NONE;
    Scasd    => string::scas,              StrCmp,                                                 0,     NONE;
    Insb     => io::ins,                   StrIo(1),                                               0,     SENS;
    Insw     => io::ins,                   StrIo(2),                                               0,     SENS;
    Insd     => io::ins,                   StrIo(4),                                               0,     SENS;
    Outsb    => io::outs,                  StrIo(1),                                               0,     SENS;
    Outsw    => io::outs,                  StrIo(2),                                               0,     SENS;
    Outsd    => io::outs,                  StrIo(4),                                               0,     SENS;
    // The stack (stack.rs; segment registers in segments.rs).
    Push     => stack::push,               Stack(segments::push_sreg, stack::push_r32),            0,     NONE;
    Pop      => stack::pop,                Stack(segments::pop_sreg, stack::pop_r32),              0,     NONE;
    Pusha    => stack::pusha,              StackAll,                                               0,     NONE;
    Pushad   => stack::pusha,              StackAll,                                               0,     NONE;
    Popa     => stack::popa,               StackAll,                                               0,     NONE;
    Popad    => stack::popa,               StackAll,                                               0,     NONE;
    Pushf    => stack::pushf,              StackW,                                                 0,     SENS;
    Pushfd   => stack::pushf,              StackW,                                                 0,     SENS;
    Popf     => stack::popf,               StackW,                                                 0,     SENS;
    Popfd    => stack::popf,               StackW,                                                 0,     SENS;
    Enter    => stack::enter,              Enter,                                                  0,     NONE;
    Leave    => stack::leave,              Leave,                                                  0,     NONE;
    // Control transfers (control.rs; far ones in segments.rs).
    Jmp      => control::jmp_rel,          Branch(segments::jmp_far, control::jmp_ind, Code::Jmp_m1616, Code::Jmp_m1632), 0, END;
    Call     => control::call_rel,         Branch(segments::call_far, control::call_ind, Code::Call_m1616, Code::Call_m1632), 0, END;
    Ret      => control::ret_near,         Ret(Code::Retnw, Code::Retnw_imm16),                    0,     END;
    Retf     => segments::ret_far,         Ret(Code::Retfw, Code::Retfw_imm16),                    0,     END;
    Jo       => control::jcc,              Jcc,                                                    0,     END;
    Jno      => control::jcc,              Jcc,                                                    0,     END;
    Jb       => control::jcc,              Jcc,                                                    0,     END;
    Jae      => control::jcc,              Jcc,                                                    0,     END;
    Je       => control::jcc,              Jcc,                                                    0,     END;
    Jne      => control::jcc,              Jcc,                                                    0,     END;
    Jbe      => control::jcc,              Jcc,                                                    0,     END;
    Ja       => control::jcc,              Jcc,                                                    0,     END;
    Js       => control::jcc,              Jcc,                                                    0,     END;
    Jns      => control::jcc,              Jcc,                                                    0,     END;
    Jp       => control::jcc,              Jcc,                                                    0,     END;
    Jnp      => control::jcc,              Jcc,                                                    0,     END;
    Jl       => control::jcc,              Jcc,                                                    0,     END;
    Jge      => control::jcc,              Jcc,                                                    0,     END;
    Jle      => control::jcc,              Jcc,                                                    0,     END;
    Jg       => control::jcc,              Jcc,                                                    0,     END;
    Loop     => control::loop_,            Loop,                                                   0,     END;
    Loope    => control::loop_,            Loop,                                                   1,     END;
    Loopne   => control::loop_,            Loop,                                                   2,     END;
    Jcxz     => control::loop_,            Loop,                                                   3,     END;
    Jecxz    => control::loop_,            Loop,                                                   3,     END;
    // Interrupts (interrupts.rs): `x` is INT n, INT3, INTO.
    Int      => interrupts::int,           Imm,                                                    0,     END | SENS;
    Int3     => interrupts::int,           Plain,                                                  1,     END | SENS;
    Into     => interrupts::int,           Plain,                                                  2,     END | SENS;
    Iret     => interrupts::iret,          Width(2),                                               0,     END | SENS;
    Iretd    => interrupts::iret,          Width(4),                                               0,     END | SENS;
    Bound    => interrupts::bound,         Plain,                                                  0,     NONE;
    // System instructions (system.rs).
    Cli      => system::cli_sti,           Plain,                                                  0,     SENS;
    Sti      => system::cli_sti,           Plain,                                                  1,     SENS;
    Hlt      => system::hlt,               Plain,                                                  0,     SENS;
    Lgdt     => system::lgdt_lidt,         TableReg,                                               0,     SENS;
    Lidt     => system::lgdt_lidt,         TableReg,                                               1,     SENS;
    Sgdt     => system::sgdt_sidt,         TableReg,                                               0,     SENS;
    Sidt     => system::sgdt_sidt,         TableReg,                                               1,     SENS;
    Sldt     => system::sldt_str,          Plain,                                                  0,     SENS;
    Str      => system::sldt_str,          Plain,                                                  1,     SENS;
    Lldt     => system::lldt,              Plain,                                                  0,     SENS;
    Ltr      => system::ltr,               Plain,                                                  0,     SENS;
    Smsw     => system::smsw,              Plain,                                                  0,     SENS;
    Lmsw     => system::lmsw,              Plain,                                                  0,     SENS;
    Clts     => system::clts,              Plain,                                                  0,     SENS;
    Invlpg   => system::invlpg,            Plain,                                                  0,     SENS;
    Wbinvd   => system::wbinvd,            Plain,                                                  0,     SENS;
    Invd     => system::wbinvd,            Plain,                                                  0,     SENS;
    Cpuid    => system::cpuid,             Plain,                                                  0,     NONE;
    Rdtsc    => system::rdtsc,             Plain,                                                  0,     SENS;
    Rdmsr    => system::msr_op,            Plain,                                                  0,     SENS;
    Wrmsr    => system::msr_op,            Plain,                                                  1,     SENS;
    Sysenter => system::sysenter,          Plain,                                                  0,     END | SENS;
    Sysexit  => system::sysexit,           Plain,                                                  0,     END | SENS;
    Lar      => system::protq,             Plain,                                                  0,     SENS;
    Lsl      => system::protq,             Plain,                                                  1,     SENS;
    Verr     => system::protq,             Plain,                                                  2,     SENS;
    Verw     => system::protq,             Plain,                                                  3,     SENS;
    Arpl     => system::arpl,              Plain,                                                  0,     NONE;
    Ud0      => system::undefined,         Plain,                                                  0,     END;
    Ud1      => system::undefined,         Plain,                                                  0,     END;
    Ud2      => system::undefined,         Plain,                                                  0,     END;
    // Port I/O (io.rs): the width is that of the accumulator operand.
    In       => io::in_,                   PortWidth(0),                                           0,     SENS;
    Out      => io::out,                   PortWidth(1),                                           0,     SENS;
    // Far pointer loads (segments.rs): `x` is the segment register.
    Les      => segments::lxs,             Lxs,                                                    0,     NONE;
    Lss      => segments::lxs,             Lxs,                                                    2,     NONE;
    Lds      => segments::lxs,             Lxs,                                                    3,     NONE;
    Lfs      => segments::lxs,             Lxs,                                                    4,     NONE;
    Lgs      => segments::lxs,             Lxs,                                                    5,     NONE;
}

/// The line for `m`, if ringlab implements it: an index by mnemonic, built
/// once.
#[inline]
pub fn form(m: Mnemonic) -> Option<&'static Form> {
    static INDEX: OnceLock<Vec<u16>> = OnceLock::new();
    let index = INDEX.get_or_init(|| {
        let n = Mnemonic::values().len();
        let mut v = vec![u16::MAX; n];
        for (k, f) in FORMS.iter().enumerate() {
            assert_eq!(v[f.mnemonic as usize], u16::MAX, "{:?} twice", f.mnemonic);
            v[f.mnemonic as usize] = k as u16;
        }
        v
    });
    match index[m as usize] {
        u16::MAX => None,
        k => Some(&FORMS[k as usize]),
    }
}

/// Whether instruction `m` has attribute `a` (an `attr` bit).
#[inline]
pub fn has(m: Mnemonic, a: u8) -> bool {
    form(m).is_some_and(|f| f.attrs & a != 0)
}
