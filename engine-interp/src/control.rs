//! Near control transfers: JMP, Jcc, CALL, RET, LOOPcc, JCXZ (SDM Vol 2).
//! Relative targets are stored as displacements from the next instruction,
//! so a decoded block is position independent (the same physical code can
//! run at another linear address).

use crate::cpu::{Cpu, CS};
use crate::fault::{gp0, R};
use crate::ops::Op;
use machine::Machine;

impl Cpu {
    /// Sets EIP to a near target, masked to the operand size, checked
    /// against the CS limit (SDM Vol 2A "JMP": #GP(0) beyond the limit).
    #[inline(always)]
    pub fn jump_near(&mut self, target: u32, w: u8) -> R<()> {
        let t = if w == 2 { target & 0xFFFF } else { target };
        if t > self.segs[CS].limit {
            return gp0();
        }
        self.eip = t;
        Ok(())
    }
}

pub fn jmp_rel(c: &mut Cpu, _m: &mut Machine, op: &Op) -> R<()> {
    c.jump_near(c.eip.wrapping_add(op.imm), op.w)
}

pub fn jcc(c: &mut Cpu, _m: &mut Machine, op: &Op) -> R<()> {
    if c.fl.cond(op.x) {
        c.jump_near(c.eip.wrapping_add(op.imm), op.w)
    } else {
        Ok(())
    }
}

/// JMP r/m (near, absolute indirect).
pub fn jmp_ind(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let t = c.get0(m, op)?;
    c.jump_near(t, op.w)
}

pub fn call_rel(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let ret = c.eip;
    let t = ret.wrapping_add(op.imm);
    let t = if op.w == 2 { t & 0xFFFF } else { t };
    if t > c.segs[CS].limit {
        return gp0();
    }
    c.push(m, op.w, ret)?;
    c.eip = t;
    Ok(())
}

pub fn call_ind(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let t = c.get0(m, op)?;
    let t = if op.w == 2 { t & 0xFFFF } else { t };
    if t > c.segs[CS].limit {
        return gp0();
    }
    let ret = c.eip;
    c.push(m, op.w, ret)?;
    c.eip = t;
    Ok(())
}

/// RET / RET imm16 (near).
pub fn ret_near(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let t = c.peek(m, 0, op.w)?;
    let t = if op.w == 2 { t & 0xFFFF } else { t };
    if t > c.segs[CS].limit {
        return gp0();
    }
    c.set_sp(c.sp_plus(op.w as u32 + op.imm));
    c.eip = t;
    Ok(())
}

/// LOOP (x = 0), LOOPE (1), LOOPNE (2), JCXZ/JECXZ (3). The counter is CX
/// or ECX by the address size.
pub fn loop_(c: &mut Cpu, _m: &mut Machine, op: &Op) -> R<()> {
    let cnt = if op.a32 {
        c.regs[1]
    } else {
        c.regs[1] & 0xFFFF
    };
    let take = if op.x == 3 {
        cnt == 0
    } else {
        let n = cnt.wrapping_sub(1);
        if op.a32 {
            c.regs[1] = n;
        } else {
            c.set_reg(1, 2, n);
        }
        let n = if op.a32 { n } else { n & 0xFFFF };
        n != 0
            && match op.x {
                1 => c.fl.zf(),
                2 => !c.fl.zf(),
                _ => true,
            }
    };
    if take {
        c.jump_near(c.eip.wrapping_add(op.imm), op.w)
    } else {
        Ok(())
    }
}
