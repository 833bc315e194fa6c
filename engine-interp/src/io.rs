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

    /// IN (`out` false: the port's value into the accumulator) or OUT
    /// (the accumulator to the port) of `w` bytes, the access allowed;
    /// EAX after it.
    pub fn acc_port(&mut self, m: &mut Machine, out: bool, port: u16, w: u8) -> u32 {
        let mask = crate::flags::mask(w);
        let eax = self.regs[0];
        if out {
            self.port_out(m, port, w, eax & mask);
            eax
        } else {
            // (EAX merged here, in a register, and handed back: a read of
            // it from memory after a narrower store would wait for that
            // store.)
            let eax = (eax & !mask) | (self.port_in(m, port, w) & mask);
            self.regs[0] = eax;
            eax
        }
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
    c.acc_port(m, false, port, op.w);
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
    c.acc_port(m, true, port, op.w);
    Ok(())
}

/// INS: [ES:(E)DI] = port DX, with REP.
pub fn ins(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let port = c.regs[2] as u16;
    c.sensitive(m, op, "ins");
    c.check_io(m, port, op.w)?;
    let st = string::step(c, op.w);
    // With watchpoints set, item by item: a hit stops after its item.
    if op.x != 0 && !c.fl.df() && m.watchpoints().is_empty() {
        ins_bulk(c, m, op, port)?;
    }
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
    if op.x != 0 && !c.fl.df() && m.watchpoints().is_empty() {
        outs_bulk(c, m, op, port)?;
    }
    string::rep(c, m, op, |c, m| {
        let si = string::index(c, op, 6);
        let v = c.rd(m, op.seg as usize, si, op.w)?;
        c.port_out(m, port, op.w, v);
        string::advance(c, op, 6, st);
        Ok(m.stop_requested().is_none())
    })
}

/// Bytes one bulk transfer moves at most (eight sectors).
const BULK_BYTES: usize = 4096;

/// How many items of a forward REP string operation at offset `off` of
/// the address size can move in one bulk transfer: no more than the count
/// and the chunk allow, within one page of `lin`, without the offset
/// wrapping.
fn bulk_items(c: &Cpu, op: &Op, off: u32, lin: u32) -> u32 {
    let w = op.w as u32;
    let count = string::count(c, op).min(c.rep_left);
    let in_page = (0x1000 - (lin & 0xFFF)) / w;
    let room = if op.a32 {
        u32::MAX
    } else {
        (0x1_0000 - off) / w
    };
    count
        .min(in_page)
        .min(room)
        .min((BULK_BYTES / op.w as usize) as u32)
}

/// REP INS through the device's bulk path (the ATA data port): whole runs
/// of items read at once, then stored with the same checks as one by one.
/// Stops, leaving the rest to the item-by-item loop, wherever that loop
/// could fault or the device has no bulk path.
fn ins_bulk(c: &mut Cpu, m: &mut Machine, op: &Op, port: u16) -> R<()> {
    let w = op.w as u32;
    let user = c.cpl == 3;
    let mut buf = [0u8; BULK_BYTES];
    loop {
        let di = string::index(c, op, 7);
        let Ok(lin) = c.seg_lin(ES, di, w, true) else {
            return Ok(());
        };
        let n = bulk_items(c, op, di, lin);
        // Aligned items never meet alignment checking.
        if n < 2 || lin % w != 0 || c.seg_lin(ES, di, n * w, true).is_err() {
            return Ok(());
        }
        // One page: one probe covers every item.
        if c.probe_write(m, lin, op.w, user).is_err() {
            return Ok(());
        }
        c.sync_clock(m);
        c.exit_block = true;
        let got = m.io_read_bulk(port, op.w, &mut buf[..(n * w) as usize]) as u32 / w;
        for i in 0..got {
            let at = (i * w) as usize;
            let mut b = [0u8; 4];
            b[..op.w as usize].copy_from_slice(&buf[at..at + op.w as usize]);
            c.write_lin(m, lin + i * w, op.w, u32::from_le_bytes(b), user)?;
            string::advance(c, op, 7, w);
            string::dec_count(c, op);
        }
        c.rep_left -= got;
        if got < n {
            return Ok(());
        }
    }
}

/// REP OUTS through the device's bulk path.
fn outs_bulk(c: &mut Cpu, m: &mut Machine, op: &Op, port: u16) -> R<()> {
    let w = op.w as u32;
    let user = c.cpl == 3;
    let seg = op.seg as usize;
    let mut buf = [0u8; BULK_BYTES];
    loop {
        let si = string::index(c, op, 6);
        let Ok(lin) = c.seg_lin(seg, si, w, false) else {
            return Ok(());
        };
        let n = bulk_items(c, op, si, lin);
        if n < 2 || lin % w != 0 || c.seg_lin(seg, si, n * w, false).is_err() {
            return Ok(());
        }
        for i in 0..n {
            let at = (i * w) as usize;
            let Ok(v) = c.read_lin(m, lin + i * w, op.w, user) else {
                return Ok(());
            };
            buf[at..at + op.w as usize].copy_from_slice(&v.to_le_bytes()[..op.w as usize]);
        }
        c.sync_clock(m);
        c.exit_block = true;
        let done = m.io_write_bulk(port, op.w, &buf[..(n * w) as usize]) as u32 / w;
        for _ in 0..done {
            string::advance(c, op, 6, w);
            string::dec_count(c, op);
        }
        c.rep_left -= done;
        if done < n || m.stop_requested().is_some() {
            return Ok(());
        }
    }
}
