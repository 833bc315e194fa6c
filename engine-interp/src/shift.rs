//! Shifts and rotates (SDM Vol 2B "RCL/RCR/ROL/ROR", "SAL/SAR/SHL/SHR",
//! "SHLD", "SHRD"). The count is masked to 5 bits (the 80286 and later); a
//! masked count of 0 changes no flags. RCL and RCR rotate through CF, so
//! their 8- and 16-bit counts are taken modulo 9 and 17.

use crate::cpu::Cpu;
use crate::fault::R;
use crate::flags::{mask, sign};
use crate::ops::{Op, K_IMM};
use machine::Machine;

pub const ROL: u8 = 0;
pub const ROR: u8 = 1;
pub const RCL: u8 = 2;
pub const RCR: u8 = 3;
pub const SHL: u8 = 4;
pub const SHR: u8 = 5;
pub const SAL: u8 = 6;
pub const SAR: u8 = 7;

/// The count operand: an immediate (1 or imm8) or CL.
#[inline]
fn count(c: &Cpu, op: &Op) -> u32 {
    if op.k1 == K_IMM {
        op.imm & 0x1F
    } else {
        c.regs[1] & 0x1F
    }
}

/// Shift or rotate `x` (the ModRM reg field) of `v`, `w` bytes wide, by
/// `n` (1..31): the result, CF, OF, and whether SF, ZF and PF follow the
/// result (the shifts; the rotates leave them). None when nothing changes
/// (RCL or RCR by a multiple of the width plus one).
#[inline(always)]
fn shift_op(c: &Cpu, x: u8, w: u8, v: u32, n: u32) -> Option<(u32, bool, bool, bool)> {
    let bits = w as u32 * 8;
    let mk = mask(w);
    let sb = sign(w);
    Some(match x {
        ROL => {
            let k = n % bits;
            let r = if k == 0 {
                v
            } else {
                ((v << k) | (v >> (bits - k))) & mk
            };
            let cf = r & 1 != 0;
            (r, cf, (r & sb != 0) ^ cf, false)
        }
        ROR => {
            let k = n % bits;
            let r = if k == 0 {
                v
            } else {
                ((v >> k) | (v << (bits - k))) & mk
            };
            let cf = r & sb != 0;
            (r, cf, (r & sb != 0) ^ (r & (sb >> 1) != 0), false)
        }
        RCL => {
            let k = if bits == 32 { n } else { n % (bits + 1) };
            if k == 0 {
                return None;
            }
            // Rotate the (bits+1)-bit quantity CF:v left by k.
            let wide = ((c.fl.cf() as u64) << bits) | v as u64;
            let total = bits + 1;
            let rot = ((wide << k) | (wide >> (total - k))) & ((1u64 << total) - 1);
            let r = (rot as u32) & mk;
            let cf = (rot >> bits) & 1 != 0;
            (r, cf, (r & sb != 0) ^ cf, false)
        }
        RCR => {
            let k = if bits == 32 { n } else { n % (bits + 1) };
            if k == 0 {
                return None;
            }
            let wide = ((c.fl.cf() as u64) << bits) | v as u64;
            let total = bits + 1;
            let rot = ((wide >> k) | (wide << (total - k))) & ((1u64 << total) - 1);
            let r = (rot as u32) & mk;
            let cf = (rot >> bits) & 1 != 0;
            (r, cf, (r & sb != 0) ^ (r & (sb >> 1) != 0), false)
        }
        SHL | SAL => {
            let wide = (v as u64) << n;
            let r = (wide as u32) & mk;
            let cf = (wide >> bits) & 1 != 0;
            (r, cf, (r & sb != 0) ^ cf, true)
        }
        SHR => {
            let r = ((v as u64) >> n) as u32 & mk;
            let cf = n <= bits && ((v as u64) >> (n - 1)) & 1 != 0;
            (r, cf, v & sb != 0, true)
        }
        _ => {
            // SAR: shift in copies of the sign bit.
            let s = match w {
                1 => v as u8 as i8 as i64,
                2 => v as u16 as i16 as i64,
                _ => v as i32 as i64,
            };
            let r = (s >> n.min(63)) as u32 & mk;
            let cf = (s >> (n - 1).min(63)) & 1 != 0;
            (r, cf, false, true)
        }
    })
}

/// The flags of a shift or rotate (`shift_op`'s).
#[inline(always)]
fn shift_flags(c: &mut Cpu, w: u8, r: u32, cf: bool, of: bool, szp: bool) {
    if szp {
        c.fl.set_szp(w, r, cf, of, false);
    } else {
        // Rotates change only CF and OF.
        c.fl.set_cf_of(cf, of);
    }
}

/// Group 2: x = operation (the ModRM reg field).
pub fn shift(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let n = count(c, op);
    let (loc, v) = c.loc0(m, op)?;
    if n == 0 {
        return Ok(());
    }
    let Some((r, cf, of, szp)) = shift_op(c, op.x, op.w, v, n) else {
        return Ok(());
    };
    c.put(m, op, loc, r)?;
    shift_flags(c, op.w, r, cf, of, szp);
    Ok(())
}

/// Group 2 operation `X` on a 32-bit register: the hot form, without
/// operand kinds.
pub fn shift_r32<const X: u8>(c: &mut Cpu, _m: &mut Machine, op: &Op) -> R<()> {
    let n = count(c, op);
    if n == 0 {
        return Ok(());
    }
    let v = c.regs[op.r0 as usize & 7];
    if let Some((r, cf, of, szp)) = shift_op(c, X, 4, v, n) {
        c.regs[op.r0 as usize & 7] = r;
        shift_flags(c, 4, r, cf, of, szp);
    }
    Ok(())
}

/// Group 2 operation `X` on an 8- or 16-bit register (real-mode code's
/// `ROL DX, 1`).
pub fn shift_r<const X: u8>(c: &mut Cpu, _m: &mut Machine, op: &Op) -> R<()> {
    let n = count(c, op);
    if n == 0 {
        return Ok(());
    }
    let v = c.reg(op.r0, op.w);
    if let Some((r, cf, of, szp)) = shift_op(c, X, op.w, v, n) {
        c.set_reg(op.r0, op.w, r);
        shift_flags(c, op.w, r, cf, of, szp);
    }
    Ok(())
}

/// SHLD (x = 0) and SHRD (x = 1): op0 r/m, op1 reg, count in imm or CL
/// (`imm2` = 1 when the count is CL).
pub fn shxd(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let n = if op.imm2 != 0 {
        c.regs[1] & 0x1F
    } else {
        op.imm & 0x1F
    };
    let src = c.reg(op.r1, op.w);
    let (loc, v) = c.loc0(m, op)?;
    if n == 0 {
        return Ok(());
    }
    let bits = op.w as u32 * 8;
    let mk = mask(op.w);
    // With a 16-bit operand and a count above 16 the result is undefined;
    // shifting the concatenation dest:src:dest gives what P6 CPUs show.
    let t = ((v as u128) << (2 * bits)) | ((src as u128) << bits) | v as u128;
    let (r, cf) = if op.x == 0 {
        let s = t << n;
        ((s >> (2 * bits)) as u32 & mk, (s >> (3 * bits)) & 1 != 0)
    } else {
        ((t >> n) as u32 & mk, (t >> (n - 1)) & 1 != 0)
    };
    c.put(m, op, loc, r)?;
    let of = (r ^ v) & sign(op.w) != 0;
    c.fl.set_szp(op.w, r, cf, of, false);
    Ok(())
}
