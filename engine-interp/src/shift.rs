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

/// Group 2: x = operation (the ModRM reg field).
pub fn shift(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let n = count(c, op);
    let (loc, v) = c.loc0(m, op)?;
    if n == 0 {
        return Ok(());
    }
    let w = op.w;
    let bits = w as u32 * 8;
    let mk = mask(w);
    let sb = sign(w);
    let cf_in = c.fl.cf();
    let (r, cf, of, szp) = match op.x {
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
                return Ok(());
            }
            // Rotate the (bits+1)-bit quantity CF:v left by k.
            let wide = ((cf_in as u64) << bits) | v as u64;
            let total = bits + 1;
            let rot = ((wide << k) | (wide >> (total - k))) & ((1u64 << total) - 1);
            let r = (rot as u32) & mk;
            let cf = (rot >> bits) & 1 != 0;
            (r, cf, (r & sb != 0) ^ cf, false)
        }
        RCR => {
            let k = if bits == 32 { n } else { n % (bits + 1) };
            if k == 0 {
                return Ok(());
            }
            let wide = ((cf_in as u64) << bits) | v as u64;
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
    };
    c.put(m, op, loc, r)?;
    if szp {
        c.fl.set_szp(w, r, cf, of, false);
    } else {
        // Rotates change only CF and OF.
        c.fl.set_cf_of(cf, of);
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
