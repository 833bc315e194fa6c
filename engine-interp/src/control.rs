//! Near control transfers: JMP, Jcc, CALL, RET, LOOPcc, JCXZ (SDM Vol 2).
//! Relative targets are stored as displacements from the next instruction,
//! so a decoded block is position independent (the same physical code can
//! run at another linear address).

use crate::cpu::{Cpu, CS};
use crate::fault::{gp0, R};
use crate::ops::Op;
use machine::cpu::flags as f;
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
    let next = c.eip;
    c.jump_near(next.wrapping_add(op.imm), op.w)?;
    // `jmp $` (EB FE, E9 FB FF FF FF, E9 FD FF in 16-bit code, or any
    // prefixed form): the displacement is minus the instruction's length.
    // One compare of the pre-decoded operands on the hot path; the rest
    // only for such a jump.
    if op.imm.wrapping_add(op.len as u32) & c.ip_mask() == 0 {
        self_jump(c, next, op);
    }
    Ok(())
}

/// A JMP whose displacement cancels its length (`next`: the address after
/// it): if it landed on itself with IF clear (`cli; for(;;);`, a kernel's
/// panic loop) and no single-step trap, only an NMI or a reset could ever
/// end it; the run loop stops there (`Stop::Spinning`) unless an NMI can
/// be taken. With IF set it is a legitimate wait for interrupts and runs
/// on.
#[cold]
fn self_jump(c: &mut Cpu, next: u32, op: &Op) {
    let start = next.wrapping_sub(op.len as u32) & c.ip_mask();
    if c.eip == start && c.fl.bits & (f::IF | f::TF) == 0 {
        c.spinning = true;
        c.exit_block = true;
    }
}

pub fn jcc(c: &mut Cpu, _m: &mut Machine, op: &Op) -> R<()> {
    if c.fl.cond(op.x) {
        c.jump_near(c.eip.wrapping_add(op.imm), op.w)
    } else {
        Ok(())
    }
}

/// Jcc in the middle of a block (the block goes on after it when not
/// taken: `block::lookup`): taken, it ends the block (`Cpu::taken`).
pub fn jcc_mid(c: &mut Cpu, _m: &mut Machine, op: &Op) -> R<()> {
    if c.fl.cond(op.x) {
        c.jump_near(c.eip.wrapping_add(op.imm), op.w)?;
        c.taken = true;
        c.exit_block = true;
    }
    Ok(())
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
