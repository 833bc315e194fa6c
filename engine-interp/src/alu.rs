//! Integer ALU instructions: ADD..CMP, TEST, INC/DEC, NEG/NOT, MOV and its
//! relatives, XCHG, CMPXCHG, XADD, BSWAP, SETcc, CMOVcc, conversions and
//! the flag instructions (SDM Vol 2).

use crate::cpu::Cpu;
use crate::fault::R;
use crate::flags::{mask, Lazy};
use crate::ops::{Loc, Op, K_MEM};
use machine::cpu::flags as f;
use machine::Machine;

pub const ADD: u8 = 0;
pub const OR: u8 = 1;
pub const ADC: u8 = 2;
pub const SBB: u8 = 3;
pub const AND: u8 = 4;
pub const SUB: u8 = 5;
pub const XOR: u8 = 6;
pub const CMP: u8 = 7;

/// Computes an ALU operation and records its flags.
#[inline(always)]
pub fn alu_op<const K: u8>(c: &mut Cpu, w: u8, a: u32, b: u32) -> u32 {
    let m = mask(w);
    let (a, b) = (a & m, b & m);
    match K {
        ADD => {
            let r = a.wrapping_add(b) & m;
            c.fl.set_lazy(Lazy::Add, w, a, b, r);
            r
        }
        ADC => {
            let cin = c.fl.cf() as u32;
            let r = a.wrapping_add(b).wrapping_add(cin) & m;
            c.fl.set_lazy(if cin != 0 { Lazy::Adc } else { Lazy::Add }, w, a, b, r);
            r
        }
        SUB | CMP => {
            let r = a.wrapping_sub(b) & m;
            c.fl.set_lazy(Lazy::Sub, w, a, b, r);
            r
        }
        SBB => {
            let cin = c.fl.cf() as u32;
            let r = a.wrapping_sub(b).wrapping_sub(cin) & m;
            c.fl.set_lazy(if cin != 0 { Lazy::Sbb } else { Lazy::Sub }, w, a, b, r);
            r
        }
        AND => {
            let r = a & b;
            c.fl.set_lazy(Lazy::Logic, w, a, b, r);
            r
        }
        OR => {
            let r = a | b;
            c.fl.set_lazy(Lazy::Logic, w, a, b, r);
            r
        }
        _ => {
            let r = a ^ b;
            c.fl.set_lazy(Lazy::Logic, w, a, b, r);
            r
        }
    }
}

/// `op0 = op0 K op1` for every form (r/m,reg; reg,r/m; r/m,imm; acc,imm).
pub fn alu<const K: u8>(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    if K == CMP {
        let a = c.get0(m, op)?;
        let b = c.get1(m, op)?;
        alu_op::<K>(c, op.w, a, b);
        return Ok(());
    }
    let b = c.get1(m, op)?;
    let (loc, a) = c.loc0(m, op)?;
    // Compute into a scratch copy of the flags so a faulting write leaves
    // EFLAGS untouched.
    let saved = c.fl;
    let r = alu_op::<K>(c, op.w, a, b);
    if let Err(e) = c.put(m, op, loc, r) {
        c.fl = saved;
        return Err(e);
    }
    Ok(())
}

/// ALU with a 32-bit register and a dword of memory (`reg op= [mem]`),
/// the address of shape `EA`: one read through the TLB, no operand kinds.
pub fn alu_rm32<const K: u8, const EA: u8>(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let off = op.ea_k::<EA>(c);
    let b = c.rd(m, op.seg as usize, off, 4)?;
    let a = c.regs[op.r0 as usize & 7];
    let r = alu_op::<K>(c, 4, a, b);
    if K != CMP {
        c.regs[op.r0 as usize & 7] = r;
    }
    Ok(())
}

/// ALU on a dword of memory and a 32-bit register (`[mem] op= reg`, not
/// CMP, which writes nothing), the address of shape `EA`: the read and the
/// write through one TLB lookup for writing where it hits
/// (`Cpu::rmw_ptr`); else the general form.
pub fn alu_mr32<const K: u8, const EA: u8>(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let off = op.ea_k::<EA>(c);
    let lin = c.seg_lin(op.seg as usize, off, 4, true)?;
    c.align_check(lin, 4)?;
    if let Some(p) = c.rmw_ptr(lin, 4) {
        let b = c.regs[op.r1 as usize & 7];
        // SAFETY: `rmw_ptr` gives an address inside guest RAM with the
        // four bytes in one page (see the TLB's module comment).
        let a = unsafe { (p as *const u32).read_unaligned() };
        let r = alu_op::<K>(c, 4, a, b);
        // SAFETY: as above; a write entry: no cached code there.
        unsafe { (p as *mut u32).write_unaligned(r) };
        return Ok(());
    }
    alu::<K>(c, m, op)
}

/// ALU on two registers of 32 bits: the hot form, without operand kinds.
pub fn alu_rr32<const K: u8>(c: &mut Cpu, _m: &mut Machine, op: &Op) -> R<()> {
    let a = c.regs[op.r0 as usize & 7];
    let b = c.regs[op.r1 as usize & 7];
    let r = alu_op::<K>(c, 4, a, b);
    if K != CMP {
        c.regs[op.r0 as usize & 7] = r;
    }
    Ok(())
}

/// ALU on two registers of 8 or 16 bits (real-mode code's hot form).
pub fn alu_rr<const K: u8>(c: &mut Cpu, _m: &mut Machine, op: &Op) -> R<()> {
    let a = c.reg(op.r0, op.w);
    let b = c.reg(op.r1, op.w);
    let r = alu_op::<K>(c, op.w, a, b);
    if K != CMP {
        c.set_reg(op.r0, op.w, r);
    }
    Ok(())
}

/// ALU with a register of 8 or 16 bits and an immediate.
pub fn alu_ri<const K: u8>(c: &mut Cpu, _m: &mut Machine, op: &Op) -> R<()> {
    let a = c.reg(op.r0, op.w);
    let r = alu_op::<K>(c, op.w, a, op.imm);
    if K != CMP {
        c.set_reg(op.r0, op.w, r);
    }
    Ok(())
}

/// ALU with a 32-bit register and an immediate.
pub fn alu_ri32<const K: u8>(c: &mut Cpu, _m: &mut Machine, op: &Op) -> R<()> {
    let a = c.regs[op.r0 as usize & 7];
    let r = alu_op::<K>(c, 4, a, op.imm);
    if K != CMP {
        c.regs[op.r0 as usize & 7] = r;
    }
    Ok(())
}

pub fn test(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let a = c.get0(m, op)?;
    let b = c.get1(m, op)?;
    alu_op::<AND>(c, op.w, a, b);
    Ok(())
}

/// INC (x = 0) and DEC (x = 1).
pub fn incdec(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let (loc, a) = c.loc0(m, op)?;
    let mk = mask(op.w);
    let r = if op.x == 0 {
        a.wrapping_add(1)
    } else {
        a.wrapping_sub(1)
    } & mk;
    c.put(m, op, loc, r)?;
    c.fl.set_incdec(op.x != 0, op.w, a, r);
    Ok(())
}

/// INC/DEC of a register of 8 or 16 bits.
pub fn incdec_r(c: &mut Cpu, _m: &mut Machine, op: &Op) -> R<()> {
    let a = c.reg(op.r0, op.w);
    let r = if op.x == 0 {
        a.wrapping_add(1)
    } else {
        a.wrapping_sub(1)
    } & mask(op.w);
    c.set_reg(op.r0, op.w, r);
    c.fl.set_incdec(op.x != 0, op.w, a, r);
    Ok(())
}

/// INC r32 (x = 0) / DEC r32 (x = 1), the hot forms.
pub fn incdec_r32(c: &mut Cpu, _m: &mut Machine, op: &Op) -> R<()> {
    let a = c.regs[op.r0 as usize & 7];
    let r = if op.x == 0 {
        a.wrapping_add(1)
    } else {
        a.wrapping_sub(1)
    };
    c.regs[op.r0 as usize & 7] = r;
    c.fl.set_incdec(op.x != 0, 4, a, r);
    Ok(())
}

pub fn neg(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let (loc, a) = c.loc0(m, op)?;
    let r = 0u32.wrapping_sub(a) & mask(op.w);
    c.put(m, op, loc, r)?;
    c.fl.set_lazy(Lazy::Sub, op.w, 0, a, r);
    Ok(())
}

pub fn not(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let (loc, a) = c.loc0(m, op)?;
    c.put(m, op, loc, !a & mask(op.w))
}

pub fn mov(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let v = c.get1(m, op)?;
    c.set0(m, op, v)
}

pub fn mov_rr32(c: &mut Cpu, _m: &mut Machine, op: &Op) -> R<()> {
    c.regs[op.r0 as usize & 7] = c.regs[op.r1 as usize & 7];
    Ok(())
}

pub fn mov_ri32(c: &mut Cpu, _m: &mut Machine, op: &Op) -> R<()> {
    c.regs[op.r0 as usize & 7] = op.imm;
    Ok(())
}

/// MOV r32, [mem].
pub fn mov_rm32<const EA: u8>(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let off = op.ea_k::<EA>(c);
    let v = c.rd(m, op.seg as usize, off, 4)?;
    c.regs[op.r0 as usize & 7] = v;
    Ok(())
}

/// MOV [mem], r32.
pub fn mov_mr32<const EA: u8>(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let off = op.ea_k::<EA>(c);
    let v = c.regs[op.r1 as usize & 7];
    c.wr(m, op.seg as usize, off, 4, v)
}

/// MOVZX/MOVSX: source width in `x` (1 or 2), bit 7 of... `imm2` = 1 for
/// sign extension.
pub fn movx(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let sw = op.x;
    let v = if op.k1 == K_MEM {
        let off = op.ea(c);
        c.rd(m, op.seg as usize, off, sw)?
    } else {
        c.reg(op.r1, sw)
    };
    let v = if op.imm2 != 0 {
        if sw == 1 {
            v as u8 as i8 as i32 as u32
        } else {
            v as u16 as i16 as i32 as u32
        }
    } else {
        v
    };
    c.set_reg(op.r0, op.w, v);
    Ok(())
}

pub fn lea(c: &mut Cpu, _m: &mut Machine, op: &Op) -> R<()> {
    let a = op.ea(c);
    c.set_reg(op.r0, op.w, a);
    Ok(())
}

pub fn xchg(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let b = c.reg(op.r1, op.w);
    let (loc, a) = c.loc0(m, op)?;
    c.put(m, op, loc, b)?;
    c.set_reg(op.r1, op.w, a);
    Ok(())
}

/// CMPXCHG r/m, reg (SDM Vol 2A): compares the accumulator with r/m.
pub fn cmpxchg(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let src = c.reg(op.r1, op.w);
    let (loc, dst) = c.loc0(m, op)?;
    let acc = c.reg(0, op.w);
    if acc == dst {
        c.put(m, op, loc, src)?;
    } else {
        // The destination is written back with its own value (the processor
        // always writes, so a read-only page faults either way).
        c.put(m, op, loc, dst)?;
        c.set_reg(0, op.w, dst);
    }
    alu_op::<CMP>(c, op.w, acc, dst);
    Ok(())
}

pub fn cmpxchg8b(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    if op.k0 != K_MEM {
        return crate::fault::ud();
    }
    let off = op.ea(c);
    let lin = c.seg_lin(op.seg as usize, off, 8, true)?;
    // A misaligned m64 at CPL 3 with AC set is #AC (SDM Vol 3A 6.15,
    // table 6-7: 8-byte operands, 8-byte alignment).
    c.align_check(lin, 8)?;
    let user = c.cpl == 3;
    c.probe_write(m, lin, 4, user)?;
    c.probe_write(m, lin.wrapping_add(4), 4, user)?;
    let lo = c.read_lin(m, lin, 4, user)?;
    let hi = c.read_lin(m, lin.wrapping_add(4), 4, user)?;
    let (eax, edx) = (c.regs[0], c.regs[2]);
    if lo == eax && hi == edx {
        c.write_lin(m, lin, 4, c.regs[3], user)?;
        c.write_lin(m, lin.wrapping_add(4), 4, c.regs[1], user)?;
        c.fl.put(f::ZF, true);
    } else {
        c.write_lin(m, lin, 4, lo, user)?;
        c.write_lin(m, lin.wrapping_add(4), 4, hi, user)?;
        c.regs[0] = lo;
        c.regs[2] = hi;
        c.fl.put(f::ZF, false);
    }
    Ok(())
}

pub fn xadd(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let src = c.reg(op.r1, op.w);
    let (loc, dst) = c.loc0(m, op)?;
    let saved = c.fl;
    let sum = alu_op::<ADD>(c, op.w, dst, src);
    // SDM Vol 2B "XADD": TEMP = SRC + DEST; SRC = DEST; DEST = TEMP. The
    // destination is written last, so XADD EBX, EBX leaves the sum (the
    // native oracle found the old order leaving the original value).
    if let Loc::Reg(_) = loc {
        c.set_reg(op.r1, op.w, dst);
        return c.put(m, op, loc, sum);
    }
    if let Err(e) = c.put(m, op, loc, sum) {
        c.fl = saved;
        return Err(e);
    }
    c.set_reg(op.r1, op.w, dst);
    Ok(())
}

pub fn bswap(c: &mut Cpu, _m: &mut Machine, op: &Op) -> R<()> {
    let r = op.r0 as usize;
    if op.w == 4 {
        c.regs[r] = c.regs[r].swap_bytes();
    } else {
        // BSWAP with a 16-bit operand is undefined; a P6 zeroes the low word.
        c.regs[r] &= 0xFFFF_0000;
    }
    Ok(())
}

pub fn setcc(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let v = c.fl.cond(op.x) as u32;
    c.set0(m, op, v)
}

/// CMOVcc: the source is read (and may fault) even when the condition is
/// false (SDM Vol 2A CMOVcc).
pub fn cmovcc(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let v = c.get1(m, op)?;
    if c.fl.cond(op.x) {
        c.set_reg(op.r0, op.w, v);
    }
    Ok(())
}

/// CBW / CWDE (w = 2 / 4).
pub fn cbw(c: &mut Cpu, _m: &mut Machine, op: &Op) -> R<()> {
    if op.w == 2 {
        let v = c.regs[0] as u8 as i8 as i16 as u16;
        c.set_reg(0, 2, v as u32);
    } else {
        c.regs[0] = c.regs[0] as u16 as i16 as i32 as u32;
    }
    Ok(())
}

/// CWD / CDQ.
pub fn cwd(c: &mut Cpu, _m: &mut Machine, op: &Op) -> R<()> {
    if op.w == 2 {
        let v = if c.regs[0] & 0x8000 != 0 { 0xFFFF } else { 0 };
        c.set_reg(2, 2, v);
    } else {
        c.regs[2] = if c.regs[0] & 0x8000_0000 != 0 {
            u32::MAX
        } else {
            0
        };
    }
    Ok(())
}

pub fn lahf(c: &mut Cpu, _m: &mut Machine, _op: &Op) -> R<()> {
    let v = c.fl.get() & 0xFF;
    c.set_reg(4, 1, v);
    Ok(())
}

pub fn sahf(c: &mut Cpu, _m: &mut Machine, _op: &Op) -> R<()> {
    let ah = c.reg(4, 1);
    let keep = f::CF | f::PF | f::AF | f::ZF | f::SF;
    let v = (c.fl.get() & !keep) | (ah & keep);
    c.fl.set(v);
    Ok(())
}

/// CLC, STC, CMC, CLD, STD (x = 0..4).
pub fn flagop(c: &mut Cpu, _m: &mut Machine, op: &Op) -> R<()> {
    match op.x {
        0 => c.fl.put(f::CF, false),
        1 => c.fl.put(f::CF, true),
        2 => {
            let cf = c.fl.cf();
            c.fl.put(f::CF, !cf)
        }
        3 => c.fl.put(f::DF, false),
        _ => c.fl.put(f::DF, true),
    }
    Ok(())
}

pub fn nop(_c: &mut Cpu, _m: &mut Machine, _op: &Op) -> R<()> {
    Ok(())
}

/// XLAT: AL = [seg:(E)BX + AL].
pub fn xlat(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let mut off = c.regs[3].wrapping_add(c.regs[0] & 0xFF);
    if !op.a32 {
        off &= 0xFFFF;
    }
    let v = c.rd(m, op.seg as usize, off, 1)?;
    c.set_reg(0, 1, v);
    Ok(())
}

/// SALC (undocumented D6): AL = CF ? FF : 00.
pub fn salc(c: &mut Cpu, _m: &mut Machine, _op: &Op) -> R<()> {
    let v = if c.fl.cf() { 0xFF } else { 0 };
    c.set_reg(0, 1, v);
    Ok(())
}
