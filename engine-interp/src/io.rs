//! Port I/O: IN, OUT, INS, OUTS and the protection rules (SDM Vol 1 19.5):
//! in protected mode with CPL > IOPL, and always in V86 mode, the TSS I/O
//! permission bitmap decides.

use crate::cpu::{Cpu, ES};
use crate::fault::{gp0, R};
use crate::ops::Op;
use crate::string;
use machine::cpu::access as a;
use machine::Machine;

impl Cpu {
    /// #GP(0) unless the access to `port..port+w` is allowed.
    pub fn check_io(&mut self, m: &mut Machine, port: u16, w: u8) -> R<()> {
        if !self.protected() || (!self.v86() && self.cpl <= self.iopl()) {
            return Ok(());
        }
        // The bitmap exists only in a 32-bit TSS (SDM Vol 1 19.5.2).
        let ty = self.tr.access & a::TYPE_MASK;
        if !matches!(ty, a::SYS_TSS32_AVAIL | a::SYS_TSS32_BUSY) || self.tr.limit < 0x67 {
            return gp0();
        }
        let base = self.sys_rd(m, self.tr.base.wrapping_add(0x66), 2)?;
        let byte = base + port as u32 / 8;
        if byte + 1 > self.tr.limit {
            return gp0();
        }
        let bits = self.sys_rd(m, self.tr.base.wrapping_add(byte), 2)?;
        let mask = ((1u32 << w) - 1) << (port % 8);
        if bits & mask != 0 {
            return gp0();
        }
        Ok(())
    }

    pub fn port_in(&mut self, m: &mut Machine, port: u16, w: u8) -> u32 {
        self.sync_clock(m);
        let v = m.io_read(port, w);
        self.exit_block = true;
        v
    }

    pub fn port_out(&mut self, m: &mut Machine, port: u16, w: u8, v: u32) {
        self.sync_clock(m);
        m.io_write(port, w, v);
        self.exit_block = true;
    }
}

/// IN acc, imm8 (k1 = imm) or IN acc, DX.
pub fn in_(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let port = if op.k1 == crate::ops::K_IMM {
        op.imm as u16
    } else {
        c.regs[2] as u16
    };
    c.sensitive(m, op, "in");
    c.check_io(m, port, op.w)?;
    let v = c.port_in(m, port, op.w);
    c.set_reg(0, op.w, v);
    Ok(())
}

/// OUT imm8, acc (k0 = imm) or OUT DX, acc.
pub fn out(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let port = if op.k0 == crate::ops::K_IMM {
        op.imm as u16
    } else {
        c.regs[2] as u16
    };
    c.sensitive(m, op, "out");
    c.check_io(m, port, op.w)?;
    let v = c.reg(0, op.w);
    c.port_out(m, port, op.w, v);
    Ok(())
}

/// INS: [ES:(E)DI] = port DX, with REP.
pub fn ins(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let port = c.regs[2] as u16;
    c.sensitive(m, op, "ins");
    c.check_io(m, port, op.w)?;
    let st = string::step(c, op.w);
    string::rep(c, m, op, |c, m| {
        let di = string::index(c, op, 7);
        // The destination is checked before the port is read.
        let lin = c.seg_lin(ES, di, op.w as u32, true)?;
        let user = c.cpl == 3;
        c.probe_write(m, lin, op.w, user)?;
        let v = c.port_in(m, port, op.w);
        c.write_lin(m, lin, op.w, v, user)?;
        string::advance(c, op, 7, st);
        Ok(true)
    })
}

/// OUTS: port DX = [seg:(E)SI], with REP; a write that stops the machine
/// (an exit port) ends the repetition.
pub fn outs(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let port = c.regs[2] as u16;
    c.sensitive(m, op, "outs");
    c.check_io(m, port, op.w)?;
    let st = string::step(c, op.w);
    string::rep(c, m, op, |c, m| {
        let si = string::index(c, op, 6);
        let v = c.rd(m, op.seg as usize, si, op.w)?;
        c.port_out(m, port, op.w, v);
        string::advance(c, op, 6, st);
        Ok(m.stop_requested().is_none())
    })
}
