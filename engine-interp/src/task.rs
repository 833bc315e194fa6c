//! Hardware task switching (SDM Vol 3A chapter 7): JMP or CALL to a TSS or
//! a task gate, INT or an exception through a task gate, and IRET with NT
//! set returning along the back link.

use crate::cpu::{Cpu, CS, DS, ES, FS, GS, SS};
use crate::fault::{gp, np, ts, Exc, R};
use crate::segments::{v86_code_segment, v86_segment, Desc};
use machine::cpu::{access as a, cr0, flags as f, Segment};
use machine::x86::descriptor::{Gate, Kind, TSS16_MIN_LIMIT, TSS32_MIN_LIMIT, TSS_BUSY};
use machine::{Machine, PrivCause};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Switch {
    Jump,
    Call,
    Interrupt,
    Iret,
}

/// A 32-bit TSS, from a TSS descriptor's or TR's access rights (SDM Vol 3A
/// 7.2.2).
fn is_tss32(access: u32) -> bool {
    matches!(Kind::of_access(access), Kind::Tss { bits32: true, .. })
}

impl Cpu {
    /// JMP or CALL whose selector names a TSS or a task gate.
    pub fn task_switch_via(
        &mut self,
        m: &mut Machine,
        d: Desc,
        sel: u16,
        kind: Switch,
        insn_eip: u32,
    ) -> R<()> {
        let err = (sel & !3) as u32;
        let rpl = (sel & 3) as u8;
        if d.dpl() < self.cpl || d.dpl() < rpl {
            return gp(err);
        }
        if !d.seg.present() {
            return np(err);
        }
        let from = self.cpl;
        if let Some(gate) = d.gate() {
            self.task_switch_gate(m, gate, kind, false)?;
        } else {
            self.switch_to(m, sel, d, kind)?;
        }
        self.note_priv(m, from, PrivCause::TaskSwitch, insn_eip);
        Ok(())
    }

    /// Through a task gate: the TSS selector is in the gate.
    pub fn task_switch_gate(
        &mut self,
        m: &mut Machine,
        gate: Gate,
        kind: Switch,
        ext: bool,
    ) -> R<()> {
        let tsel = gate.selector;
        let terr = (tsel & !3) as u32 + ext as u32;
        if tsel & 4 != 0 {
            return gp(terr);
        }
        let d = self.read_desc(m, tsel)?;
        if !matches!(d.kind(), Kind::Tss { busy: false, .. }) {
            return gp(terr);
        }
        if !d.seg.present() {
            return np(terr);
        }
        self.switch_to(m, tsel, d, kind)
    }

    /// IRET with NT set: return to the task in the back link.
    pub fn task_return(&mut self, m: &mut Machine, insn_eip: u32) -> R<()> {
        let link = self.sys_rd(m, self.tr.base, 2)? as u16;
        let err = (link & !3) as u32;
        if link & 4 != 0 || link & !3 == 0 {
            return ts(err);
        }
        let d = self.read_desc_v(m, link, crate::fault::vec::TS)?;
        if !matches!(d.kind(), Kind::Tss { busy: true, .. }) {
            return ts(err);
        }
        if !d.seg.present() {
            return np(err);
        }
        let from = self.cpl;
        self.switch_to(m, link, d, Switch::Iret)?;
        self.note_priv(m, from, PrivCause::TaskSwitch, insn_eip);
        Ok(())
    }

    /// The switch itself (SDM Vol 3A 7.3, steps 4-14).
    fn switch_to(&mut self, m: &mut Machine, nsel: u16, nd: Desc, kind: Switch) -> R<()> {
        let nerr = (nsel & !3) as u32;
        let n32 = is_tss32(nd.seg.access);
        let min_limit = if n32 {
            TSS32_MIN_LIMIT
        } else {
            TSS16_MIN_LIMIT
        };
        if nd.seg.limit < min_limit {
            return ts(nerr);
        }
        let o32 = is_tss32(self.tr.access);
        let obase = self.tr.base;
        let nbase = nd.seg.base;
        // Save the outgoing task's state (EIP is the return address).
        let mut oflags = self.fl.get();
        if kind == Switch::Iret {
            oflags &= !f::NT;
        }
        if o32 {
            self.sys_wr(m, obase + 0x20, 4, self.eip)?;
            self.sys_wr(m, obase + 0x24, 4, oflags)?;
            for i in 0..8 {
                self.sys_wr(m, obase + 0x28 + 4 * i, 4, self.regs[i as usize])?;
            }
            for (k, s) in [ES, CS, SS, DS, FS, GS].iter().enumerate() {
                self.sys_wr(
                    m,
                    obase + 0x48 + 4 * k as u32,
                    2,
                    self.segs[*s].selector as u32,
                )?;
            }
        } else {
            self.sys_wr(m, obase + 0x0E, 2, self.eip)?;
            self.sys_wr(m, obase + 0x10, 2, oflags)?;
            for i in 0..8 {
                self.sys_wr(m, obase + 0x12 + 2 * i, 2, self.regs[i as usize])?;
            }
            for (k, s) in [ES, CS, SS, DS].iter().enumerate() {
                self.sys_wr(
                    m,
                    obase + 0x22 + 2 * k as u32,
                    2,
                    self.segs[*s].selector as u32,
                )?;
            }
        }
        // Read the incoming state before committing.
        let (ncr3, neip, mut nflags, nregs, nsels, nldt) = if n32 {
            let cr3 = self.sys_rd(m, nbase + 0x1C, 4)?;
            let eip = self.sys_rd(m, nbase + 0x20, 4)?;
            let fl = self.sys_rd(m, nbase + 0x24, 4)?;
            let mut regs = [0u32; 8];
            for (i, r) in regs.iter_mut().enumerate() {
                *r = self.sys_rd(m, nbase + 0x28 + 4 * i as u32, 4)?;
            }
            let mut sels = [0u16; 6];
            for (k, s) in sels.iter_mut().enumerate() {
                *s = self.sys_rd(m, nbase + 0x48 + 4 * k as u32, 2)? as u16;
            }
            let ldt = self.sys_rd(m, nbase + 0x60, 2)? as u16;
            (Some(cr3), eip, fl, regs, sels, ldt)
        } else {
            let eip = self.sys_rd(m, nbase + 0x0E, 2)?;
            let fl = self.sys_rd(m, nbase + 0x10, 2)?;
            let mut regs = self.regs;
            for (i, r) in regs.iter_mut().enumerate() {
                *r = (*r & 0xFFFF_0000) | self.sys_rd(m, nbase + 0x12 + 2 * i as u32, 2)?;
            }
            let mut sels = [0u16; 6];
            for (k, s) in sels.iter_mut().take(4).enumerate() {
                *s = self.sys_rd(m, nbase + 0x22 + 2 * k as u32, 2)? as u16;
            }
            let ldt = self.sys_rd(m, nbase + 0x2A, 2)? as u16;
            (None, eip, fl, regs, sels, ldt)
        };
        // Busy bits and the back link.
        if matches!(kind, Switch::Jump | Switch::Iret) {
            let odesc = self.read_desc(m, self.tr.selector)?;
            let b = self.sys_rd(m, odesc.addr + 5, 1)?;
            self.sys_wr(m, odesc.addr + 5, 1, b & !(TSS_BUSY as u32))?;
        }
        if matches!(kind, Switch::Call | Switch::Interrupt) {
            self.sys_wr(m, nbase, 2, self.tr.selector as u32)?;
            nflags |= f::NT;
        }
        if kind != Switch::Iret {
            let b = self.sys_rd(m, nd.addr + 5, 1)?;
            self.sys_wr(m, nd.addr + 5, 1, b | TSS_BUSY as u32)?;
        }
        // Commit: from here on faults belong to the new task (SDM Vol 3A 7.3).
        let mut tr = nd.seg;
        tr.access |= TSS_BUSY as u32;
        self.tr = tr;
        self.cr0 |= cr0::TS;
        if let Some(cr3) = ncr3 {
            if self.paging() {
                self.cr3 = cr3;
                self.tlb.flush(true);
            }
        }
        self.regs = nregs;
        self.eip = neip;
        self.fl.set(nflags);
        self.rf_loaded = nflags & f::RF != 0;
        // Selectors first, caches after the checks.
        let order = [ES, CS, SS, DS, FS, GS];
        for (k, s) in order.iter().enumerate() {
            self.segs[*s].selector = nsels[k];
            self.segs[*s].access |= a::UNUSABLE;
        }
        // (Written directly: the next mode refresh recomputes every check.)
        self.segchk_prot = None;
        self.ldtr = Segment {
            selector: nldt,
            base: 0,
            limit: 0,
            access: a::UNUSABLE,
        };
        if self.fl.bits & f::VM != 0 {
            self.set_seg(CS, v86_code_segment(nsels[1]));
            for (k, s) in order.iter().enumerate() {
                if *s != CS {
                    self.set_seg(*s, v86_segment(nsels[k]));
                }
            }
            self.refresh_mode();
            return self.load_task_ldt(m, nldt);
        }
        self.load_task_ldt(m, nldt)?;
        // CS decides the CPL of the new task.
        let cs = nsels[1];
        let cerr = (cs & !3) as u32;
        if cs & !3 == 0 {
            return ts(cerr);
        }
        let d = self.read_desc_v(m, cs, crate::fault::vec::TS)?;
        let rpl = (cs & 3) as u8;
        if !d.is_code() || (d.conforming() && d.dpl() > rpl) || (!d.conforming() && d.dpl() != rpl)
        {
            return ts(cerr);
        }
        if !d.seg.present() {
            return np(cerr);
        }
        let seg = self.load_cs(d, cs, rpl);
        self.set_seg(CS, seg);
        // SS, then the data segments, with #TS for what MOV would #GP.
        let ssel = nsels[2];
        let d = self.check_inner_ss(m, ssel, self.cpl)?;
        self.set_seg(SS, d.seg);
        for (k, s) in order.iter().enumerate() {
            if *s == CS || *s == SS {
                continue;
            }
            let sel = nsels[k];
            self.load_seg(m, *s, sel).map_err(|e| {
                if e.vector() == crate::fault::vec::GP {
                    Exc::new(crate::fault::vec::TS, e.code())
                } else {
                    e
                }
            })?;
        }
        self.exit_block = true;
        Ok(())
    }

    fn load_task_ldt(&mut self, m: &mut Machine, sel: u16) -> R<()> {
        if sel & !3 == 0 {
            return Ok(());
        }
        let err = (sel & !3) as u32;
        if sel & 4 != 0 {
            return ts(err);
        }
        let d = self.read_desc_v(m, sel, crate::fault::vec::TS)?;
        if d.kind() != Kind::Ldt {
            return ts(err);
        }
        if !d.seg.present() {
            return ts(err);
        }
        self.ldtr = d.seg;
        Ok(())
    }
}
