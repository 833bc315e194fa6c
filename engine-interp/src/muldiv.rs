//! MUL, IMUL, DIV, IDIV (SDM Vol 2A/2B), and the BCD adjustments DAA, DAS,
//! AAA, AAS, AAM, AAD.

use crate::cpu::Cpu;
use crate::fault::{de, R};
use crate::flags::{mask, parity};
use crate::ops::Op;
use machine::cpu::flags as f;
use machine::Machine;

/// The SF/ZF/PF of MUL and IMUL are undefined; a P6 leaves them as the
/// result's low part would set them, which is what we do. CF = OF = whether
/// the high half is significant.
fn set_mul_flags(c: &mut Cpu, w: u8, lo: u32, overflow: bool) {
    c.fl.set_szp(w, lo, overflow, overflow, false);
}

/// MUL r/m (one operand): AX = AL*r/m8; DX:AX; EDX:EAX.
pub fn mul(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let b = c.get0(m, op)? as u64;
    let a = c.reg(0, op.w) as u64;
    let p = a * b;
    let bits = op.w as u32 * 8;
    let lo = (p & mask(op.w) as u64) as u32;
    let hi = (p >> bits) as u32;
    match op.w {
        1 => c.set_reg(0, 2, p as u32),
        2 => {
            c.set_reg(0, 2, lo);
            c.set_reg(2, 2, hi);
        }
        _ => {
            c.regs[0] = lo;
            c.regs[2] = hi;
        }
    }
    set_mul_flags(c, op.w, lo, hi != 0);
    Ok(())
}

fn sext(v: u32, w: u8) -> i64 {
    match w {
        1 => v as u8 as i8 as i64,
        2 => v as u16 as i16 as i64,
        _ => v as i32 as i64,
    }
}

/// IMUL r/m (one operand).
pub fn imul1(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let b = sext(c.get0(m, op)?, op.w);
    let a = sext(c.reg(0, op.w), op.w);
    let p = a * b;
    let bits = op.w as u32 * 8;
    let lo = (p as u64 & mask(op.w) as u64) as u32;
    let hi = ((p as u64) >> bits) as u32 & mask(op.w);
    match op.w {
        1 => c.set_reg(0, 2, p as u32),
        2 => {
            c.set_reg(0, 2, lo);
            c.set_reg(2, 2, hi);
        }
        _ => {
            c.regs[0] = lo;
            c.regs[2] = hi;
        }
    }
    set_mul_flags(c, op.w, lo, sext(lo, op.w) != p);
    Ok(())
}

/// IMUL reg, r/m (two operands: op0 is the register, op1 r/m) and IMUL reg,
/// r/m, imm (three operands: the immediate in `imm`, `x` = 1).
pub fn imul2(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let b = sext(c.get1(m, op)?, op.w);
    let a = if op.x == 1 {
        sext(op.imm, op.w)
    } else {
        sext(c.reg(op.r0, op.w), op.w)
    };
    let p = a * b;
    let lo = (p as u64 & mask(op.w) as u64) as u32;
    c.set_reg(op.r0, op.w, lo);
    set_mul_flags(c, op.w, lo, sext(lo, op.w) != p);
    Ok(())
}

/// IMUL r32, r32 and IMUL r32, r32, imm: the hot forms, without operand
/// kinds.
pub fn imul_rr32(c: &mut Cpu, _m: &mut Machine, op: &Op) -> R<()> {
    let b = c.regs[op.r1 as usize & 7] as i32 as i64;
    let a = if op.x == 1 {
        op.imm as i32 as i64
    } else {
        c.regs[op.r0 as usize & 7] as i32 as i64
    };
    let p = a * b;
    let lo = p as u32;
    c.regs[op.r0 as usize & 7] = lo;
    set_mul_flags(c, 4, lo, lo as i32 as i64 != p);
    Ok(())
}

/// DIV r/m: #DE on division by zero or a quotient that does not fit.
pub fn div(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let d = c.get0(m, op)? as u64;
    if d == 0 {
        return de();
    }
    let bits = op.w as u32 * 8;
    let n: u64 = match op.w {
        1 => c.reg(0, 2) as u64,
        2 => ((c.reg(2, 2) as u64) << 16) | c.reg(0, 2) as u64,
        _ => ((c.regs[2] as u64) << 32) | c.regs[0] as u64,
    };
    let q = n / d;
    let r = n % d;
    if q >> bits != 0 {
        return de();
    }
    match op.w {
        1 => c.set_reg(0, 2, (q as u32 & 0xFF) | ((r as u32 & 0xFF) << 8)),
        2 => {
            c.set_reg(0, 2, q as u32);
            c.set_reg(2, 2, r as u32);
        }
        _ => {
            c.regs[0] = q as u32;
            c.regs[2] = r as u32;
        }
    }
    Ok(())
}

/// IDIV r/m: signed; #DE also when the quotient overflows (e.g. -2^31 / -1).
pub fn idiv(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let d = sext(c.get0(m, op)?, op.w) as i128;
    if d == 0 {
        return de();
    }
    let n: i128 = match op.w {
        1 => c.reg(0, 2) as u16 as i16 as i128,
        2 => (((c.reg(2, 2) << 16) | c.reg(0, 2)) as i32) as i128,
        _ => ((((c.regs[2] as u64) << 32) | c.regs[0] as u64) as i64) as i128,
    };
    let q = n / d;
    let r = n % d;
    let bits = op.w as u32 * 8;
    let max = (1i128 << (bits - 1)) - 1;
    let min = -(1i128 << (bits - 1));
    if q > max || q < min {
        return de();
    }
    let (q, r) = (q as u32 & mask(op.w), r as u32 & mask(op.w));
    match op.w {
        1 => c.set_reg(0, 2, q | (r << 8)),
        2 => {
            c.set_reg(0, 2, q);
            c.set_reg(2, 2, r);
        }
        _ => {
            c.regs[0] = q;
            c.regs[2] = r;
        }
    }
    Ok(())
}

// ---- BCD -------------------------------------------------------------------

fn bcd_flags(c: &mut Cpu, al: u32, cf: bool, af: bool, of: bool) {
    c.fl.set_szp(1, al, cf, of, af);
}

/// DAA (SDM Vol 2A, the algorithm given there).
pub fn daa(c: &mut Cpu, _m: &mut Machine, _op: &Op) -> R<()> {
    let old_al = c.reg(0, 1);
    let old_cf = c.fl.cf();
    let mut al = old_al;
    let mut cf = false;
    let mut af = false;
    if al & 0xF > 9 || c.fl.af() {
        al = (al + 6) & 0xFF;
        cf = old_cf || old_al + 6 > 0xFF;
        af = true;
    }
    if old_al > 0x99 || old_cf {
        al = (al + 0x60) & 0xFF;
        cf = true;
    }
    c.set_reg(0, 1, al);
    // OF is undefined; like real CPUs, report signed overflow of the addition.
    let of = old_al & 0x80 == 0 && al & 0x80 != 0;
    bcd_flags(c, al, cf, af, of);
    Ok(())
}

pub fn das(c: &mut Cpu, _m: &mut Machine, _op: &Op) -> R<()> {
    let old_al = c.reg(0, 1);
    let old_cf = c.fl.cf();
    let mut al = old_al;
    let mut cf = false;
    let mut af = false;
    if al & 0xF > 9 || c.fl.af() {
        cf = old_cf || al < 6;
        al = al.wrapping_sub(6) & 0xFF;
        af = true;
    }
    if old_al > 0x99 || old_cf {
        al = al.wrapping_sub(0x60) & 0xFF;
        cf = true;
    }
    c.set_reg(0, 1, al);
    let of = old_al & 0x80 != 0 && al & 0x80 == 0;
    bcd_flags(c, al, cf, af, of);
    Ok(())
}

/// AAA (x = 0) and AAS (x = 1).
pub fn aaa_aas(c: &mut Cpu, _m: &mut Machine, op: &Op) -> R<()> {
    let ax = c.reg(0, 2);
    let adjust = ax & 0xF > 9 || c.fl.af();
    let mut v = ax;
    if adjust {
        v = if op.x == 0 {
            // The 386 and later add 0x106 to AX as a whole.
            ax.wrapping_add(0x106)
        } else {
            ax.wrapping_sub(6).wrapping_sub(0x100)
        };
    }
    let v = v & 0xFF0F;
    c.set_reg(0, 2, v);
    let fl = c.fl.get() & !(f::CF | f::AF);
    c.fl.set(fl | if adjust { f::CF | f::AF } else { 0 });
    Ok(())
}

/// AAM imm8: #DE when the immediate is 0.
pub fn aam(c: &mut Cpu, _m: &mut Machine, op: &Op) -> R<()> {
    let base = op.imm & 0xFF;
    if base == 0 {
        return de();
    }
    let al = c.reg(0, 1);
    let ah = al / base;
    let al = al % base;
    c.set_reg(0, 2, (ah << 8) | al);
    c.fl.set_szp(1, al, false, false, false);
    Ok(())
}

pub fn aad(c: &mut Cpu, _m: &mut Machine, op: &Op) -> R<()> {
    let base = op.imm & 0xFF;
    let al = c.reg(0, 1);
    let ah = c.reg(4, 1);
    let prod = ah * base;
    let r = (al + prod) & 0xFF;
    c.set_reg(0, 2, r);
    // CF/OF/AF undefined; report them as the 8-bit addition AL + AH*imm does.
    let p8 = prod & 0xFF;
    let cf = al + p8 > 0xFF;
    let of = (al ^ r) & (p8 ^ r) & 0x80 != 0;
    let af = (al ^ p8 ^ r) & 0x10 != 0;
    c.fl.set_szp(1, r, cf, of, af);
    Ok(())
}

// ---- bit instructions -------------------------------------------------------

/// BT, BTS, BTR, BTC (x = 0..3). With a register offset and a memory
/// operand the offset is signed and addresses beyond the operand (SDM Vol 2A
/// "BT": bit string addressing).
pub fn bt(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let bits = op.w as u32 * 8;
    if op.k0 == crate::ops::K_REG {
        let off = if op.k1 == crate::ops::K_IMM {
            op.imm
        } else {
            c.reg(op.r1, op.w)
        } % bits;
        let v = c.reg(op.r0, op.w);
        let bit = (v >> off) & 1 != 0;
        let nv = match op.x {
            1 => v | (1 << off),
            2 => v & !(1 << off),
            3 => v ^ (1 << off),
            _ => v,
        };
        if op.x != 0 {
            c.set_reg(op.r0, op.w, nv);
        }
        c.fl.put(f::CF, bit);
        return Ok(());
    }
    let base = op.ea(c);
    let (addr, off) = if op.k1 == crate::ops::K_IMM {
        (base, op.imm % bits)
    } else {
        let raw = c.reg(op.r1, op.w);
        let s = sext(raw, op.w);
        let byte_off = (s >> 3) & !((op.w as i64) - 1);
        let a = base.wrapping_add(byte_off as u32);
        (if op.a32 { a } else { a & 0xFFFF }, raw % bits)
    };
    let seg = op.seg as usize;
    if op.x == 0 {
        let v = c.rd(m, seg, addr, op.w)?;
        c.fl.put(f::CF, (v >> off) & 1 != 0);
        return Ok(());
    }
    let lin = c.seg_lin(seg, addr, op.w as u32, true)?;
    let user = c.cpl == 3;
    // A read-modify-write of the operand-size word holding the bit:
    // alignment and write access are checked before the read, as the CPU
    // does (see `Cpu::loc0`).
    c.align_check(lin, op.w)?;
    c.probe_write(m, lin, op.w, user)?;
    let v = c.read_lin(m, lin, op.w, user)?;
    let nv = match op.x {
        1 => v | (1 << off),
        2 => v & !(1 << off),
        _ => v ^ (1 << off),
    };
    c.write_lin(m, lin, op.w, nv, user)?;
    c.fl.put(f::CF, (v >> off) & 1 != 0);
    Ok(())
}

/// BSF (x = 0) and BSR (x = 1): ZF = source is zero; then the destination
/// is left unchanged (as P6-class CPUs do).
pub fn bsf_bsr(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let v = c.get1(m, op)? & mask(op.w);
    let fl = c.fl.get();
    if v == 0 {
        c.fl.set(fl | f::ZF);
        return Ok(());
    }
    let idx = if op.x == 0 {
        v.trailing_zeros()
    } else {
        31 - v.leading_zeros()
    };
    c.set_reg(op.r0, op.w, idx);
    let mut nf = fl & !f::ZF;
    nf = (nf & !f::PF) | if parity(idx) { f::PF } else { 0 };
    c.fl.set(nf);
    Ok(())
}
