//! Stack instructions: PUSH, POP, PUSHA, POPA, PUSHF, POPF, ENTER, LEAVE
//! (SDM Vol 2B). The stack width comes from SS.B (the B flag), the operand
//! width from the instruction.

use crate::cpu::{Cpu, SS};
use crate::fault::{gp0, R};
use crate::ops::{Op, K_MEM};
use machine::cpu::flags as f;
use machine::Machine;

impl Cpu {
    #[inline(always)]
    pub fn sp(&self) -> u32 {
        if self.stack32() {
            self.regs[4]
        } else {
            self.regs[4] & 0xFFFF
        }
    }

    /// ESP after moving the stack top by `delta` bytes at the current
    /// stack size (SP wraps at 64 KiB on a 16-bit stack, ESP's upper half
    /// kept), without storing it.
    #[inline(always)]
    pub fn esp_after(&self, delta: u32) -> u32 {
        let v = self.regs[4].wrapping_add(delta);
        if self.stack32() {
            v
        } else {
            (self.regs[4] & 0xFFFF_0000) | (v & 0xFFFF)
        }
    }

    #[inline(always)]
    pub fn set_sp(&mut self, v: u32) {
        if self.stack32() {
            self.regs[4] = v;
        } else {
            self.regs[4] = (self.regs[4] & 0xFFFF_0000) | (v & 0xFFFF);
        }
    }

    /// Offset of the stack top after moving it by `delta` bytes.
    #[inline(always)]
    pub fn sp_plus(&self, delta: u32) -> u32 {
        let v = self.regs[4].wrapping_add(delta);
        if self.stack32() {
            v
        } else {
            v & 0xFFFF
        }
    }

    #[inline(always)]
    pub fn push(&mut self, m: &mut Machine, w: u8, v: u32) -> R<()> {
        let nsp = self.sp_plus((w as u32).wrapping_neg());
        self.wr(m, SS, nsp, w, v)?;
        self.set_sp(nsp);
        Ok(())
    }

    #[inline(always)]
    pub fn pop(&mut self, m: &mut Machine, w: u8) -> R<u32> {
        let sp = self.sp();
        let v = self.rd(m, SS, sp, w)?;
        self.set_sp(self.sp_plus(w as u32));
        Ok(v)
    }

    /// Reads the stack `k` bytes above the top without popping.
    pub fn peek(&mut self, m: &mut Machine, k: u32, w: u8) -> R<u32> {
        let off = self.sp_plus(k);
        self.rd(m, SS, off, w)
    }
}

/// PUSH r/m, reg or imm (op1 holds the source; imm already sign-extended).
pub fn push(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let v = c.get0(m, op)?;
    c.push(m, op.w, v)
}

pub fn push_r32(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let v = c.regs[op.r0 as usize];
    c.push(m, 4, v)
}

pub fn pop_r32(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let v = c.pop(m, 4)?;
    c.regs[op.r0 as usize] = v;
    Ok(())
}

/// POP r/m: a memory destination addressed through ESP uses the value of
/// ESP after the pop (SDM Vol 2B "POP").
pub fn pop(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let old = c.regs[4];
    let v = c.pop(m, op.w)?;
    if op.k0 == K_MEM {
        if let Err(e) = c.set0(m, op, v) {
            c.regs[4] = old;
            return Err(e);
        }
    } else {
        c.set_reg(op.r0, op.w, v);
    }
    Ok(())
}

/// PUSHA/PUSHAD: all eight registers, the original SP among them.
pub fn pusha(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    // Each push is checked on its own (a 16-bit SP wraps from 0000 to FFFE
    // between pushes, as on the 286 and 386); a fault restores SP.
    let old_sp = c.reg(4, op.w);
    let old = c.regs[4];
    for i in 0..8u8 {
        let v = if i == 4 { old_sp } else { c.reg(i, op.w) };
        if let Err(e) = c.push(m, op.w, v) {
            c.regs[4] = old;
            return Err(e);
        }
    }
    Ok(())
}

/// POPA/POPAD: the stored SP is skipped.
pub fn popa(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let w = op.w as u32;
    let mut vals = [0u32; 8];
    for (k, i) in (0..8u8).rev().enumerate() {
        vals[i as usize] = c.peek(m, k as u32 * w, op.w)?;
    }
    for i in 0..8u8 {
        if i != 4 {
            c.set_reg(i, op.w, vals[i as usize]);
        }
    }
    c.set_sp(c.sp_plus(8 * w));
    Ok(())
}

/// PUSHF/PUSHFD. In V86 mode with IOPL < 3 it faults (no VME); the image
/// has VM and RF clear (SDM Vol 2B "PUSHF").
pub fn pushf(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    c.sensitive(m, op, "pushf");
    if c.v86() && c.iopl() < 3 {
        return gp0();
    }
    let v = c.pushf_image();
    c.push(m, op.w, v)
}

/// POPF/POPFD with the privilege rules (SDM Vol 2B "POPF"): IOPL changes
/// only at CPL 0; IF only when CPL <= IOPL (otherwise it is silently kept:
/// the classic Popek-Goldberg violation); VM, VIP, VIF never change here;
/// RF is cleared. V86 with IOPL < 3 faults.
pub fn popf(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    c.sensitive(m, op, "popf");
    if c.v86() && c.iopl() < 3 {
        return gp0();
    }
    let v = c.pop(m, op.w)?;
    let old = c.fl.get();
    let mut changeable = f::STATUS | f::TF | f::DF | f::NT;
    if op.w == 4 {
        changeable |= f::AC | f::ID;
    }
    if c.deprivileged() {
        // Really at CPL 1 with IOPL 0: IF and IOPL silently stay.
    } else if !c.protected() || c.cpl == 0 {
        changeable |= f::IOPL | f::IF;
    } else if c.cpl <= c.iopl() {
        changeable |= f::IF;
    }
    if c.v86() {
        // IOPL is 3 here; IOPL itself cannot change from V86 mode.
        changeable &= !f::IOPL;
        changeable |= f::IF;
    }
    let mut nv = (old & !changeable) | (v & changeable);
    nv &= !f::RF;
    c.fl.set(nv);
    // IF or TF may have changed: let the loop look for interrupts.
    c.exit_block = true;
    Ok(())
}

/// ENTER imm16, imm8 (SDM Vol 2A "ENTER"): imm = frame size, imm2 = level.
pub fn enter(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let w = op.w;
    let level = op.imm2 & 0x1F;
    let old_sp = c.regs[4];
    let old_bp = c.regs[5];
    let r = (|| {
        let bp = c.reg(5, if c.stack32() { 4 } else { 2 });
        c.push(m, w, c.reg(5, w))?;
        // FrameTemp is ESP or SP by the operand size (SDM Vol 2A, ENTER,
        // "Operation"), whatever the stack size: a 32-bit ENTER on a
        // 16-bit stack keeps ESP's upper half in the frame pointer it
        // pushes and loads into EBP (test386.asm checks this).
        let frame = c.reg(4, w);
        let mut bp_walk = bp;
        for _ in 1..level {
            bp_walk = if c.stack32() {
                bp_walk.wrapping_sub(w as u32)
            } else {
                bp_walk.wrapping_sub(w as u32) & 0xFFFF
            };
            let v = c.rd(m, SS, bp_walk, w)?;
            c.push(m, w, v)?;
        }
        if level > 0 {
            c.push(m, w, frame)?;
        }
        // The new stack top must be writable (the frame is allocated).
        let nsp = c.sp_plus(op.imm.wrapping_neg());
        // (SDM Vol 2A, ENTER: #SS or #PF "if a write using the final
        // value of the stack pointer ... would" fault, checked before any
        // register changes.)
        if op.imm != 0 {
            let lin = c.seg_lin(SS, nsp, 1, true)?;
            c.probe_write(m, lin, 1, c.user())?;
        }
        // EBP or BP, by the operand size.
        c.set_reg(5, w, frame);
        c.set_sp(nsp);
        Ok(())
    })();
    if r.is_err() {
        c.regs[4] = old_sp;
        c.regs[5] = old_bp;
    }
    r
}

/// LEAVE: SP = BP, then pop BP.
pub fn leave(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let old = c.regs[4];
    let bp = if c.stack32() {
        c.regs[5]
    } else {
        c.regs[5] & 0xFFFF
    };
    c.set_sp(bp);
    match c.pop(m, op.w) {
        Ok(v) => {
            c.set_reg(5, op.w, v);
            Ok(())
        }
        Err(e) => {
            c.regs[4] = old;
            Err(e)
        }
    }
}
