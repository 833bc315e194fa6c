//! Segment register loads and far control transfers with the protection
//! checks of SDM Vol 3A chapter 5 (5.5-5.8) and the instruction pages of
//! MOV, POP, LDS/LES/LFS/LGS/LSS, JMP, CALL and RET.

use crate::cpu::{Cpu, CS, DS, ES, FS, GS, SS};
use crate::fault::{gp, gp0, np, ss, ts, Exc, R};
use crate::ops::{Op, K_MEM};
use machine::cpu::{access as a, Segment};
use machine::x86::descriptor::{Gate, GateKind, Kind};
use machine::{Machine, PrivCause};

/// A descriptor as read from the GDT or LDT, decoded.
#[derive(Clone, Copy, Debug)]
pub struct Desc {
    pub raw: u64,
    pub seg: Segment,
    /// Linear address of the descriptor (for the accessed/busy bits).
    pub addr: u32,
}

impl Desc {
    pub fn dpl(&self) -> u8 {
        self.seg.dpl()
    }
    pub fn is_sys(&self) -> bool {
        self.seg.access & a::S == 0
    }
    pub fn sys_type(&self) -> u32 {
        self.seg.access & a::TYPE_MASK
    }
    pub fn is_code(&self) -> bool {
        !self.is_sys() && self.seg.access & a::CODE != 0
    }
    pub fn is_data(&self) -> bool {
        !self.is_sys() && self.seg.access & a::CODE == 0
    }
    pub fn conforming(&self) -> bool {
        self.is_code() && self.seg.access & a::DC != 0
    }
    pub fn readable(&self) -> bool {
        self.is_data() || self.seg.access & a::RW != 0
    }
    pub fn writable_data(&self) -> bool {
        self.is_data() && self.seg.access & a::RW != 0
    }
    /// What the descriptor is, from its S flag and type (SDM Vol 3A 3.4.5.1,
    /// 3.5).
    pub fn kind(&self) -> Kind {
        Kind::of_access(self.seg.access)
    }
    /// The gate's fields, when the descriptor is a gate (SDM Vol 3A 5.8.3,
    /// 6.11, 7.2.5).
    pub fn gate(&self) -> Option<Gate> {
        Gate::decode(self.raw)
    }
}

impl Cpu {
    /// Reads the descriptor for `sel` from the GDT or LDT. A selector beyond
    /// the table limit raises #GP with the selector as error code (or the
    /// exception `vector` given, e.g. #TS during a task switch).
    pub fn read_desc_v(&mut self, m: &mut Machine, sel: u16, vector: u8) -> R<Desc> {
        let idx = (sel & !7) as u32;
        let (base, limit) = if sel & 4 != 0 {
            if !self.ldtr.usable() || self.ldtr.selector & !3 == 0 {
                return Err(Exc::new(vector, Some((sel & !3) as u32)));
            }
            (self.ldtr.base, self.ldtr.limit)
        } else {
            (self.gdtr.base, self.gdtr.limit as u32)
        };
        if idx + 7 > limit {
            return Err(Exc::new(vector, Some((sel & !3) as u32)));
        }
        let addr = base.wrapping_add(idx);
        let lo = self.sys_rd(m, addr, 4)? as u64;
        let hi = self.sys_rd(m, addr.wrapping_add(4), 4)? as u64;
        let raw = lo | (hi << 32);
        Ok(Desc {
            raw,
            seg: Segment::from_descriptor(sel, raw),
            addr,
        })
    }

    pub fn read_desc(&mut self, m: &mut Machine, sel: u16) -> R<Desc> {
        self.read_desc_v(m, sel, crate::fault::vec::GP)
    }

    /// Sets the accessed bit of a code or data descriptor in memory (SDM Vol
    /// 3A 3.4.5.1: the processor sets it when it loads the selector).
    pub fn set_accessed(&mut self, m: &mut Machine, d: &mut Desc) -> R<()> {
        if d.seg.access & a::ACCESSED == 0 {
            d.seg.access |= a::ACCESSED;
            let b = self.sys_rd(m, d.addr.wrapping_add(5), 1)?;
            self.sys_wr(m, d.addr.wrapping_add(5), 1, b | 1)?;
        }
        Ok(())
    }

    /// Loads data segment register `s` (ES, SS, DS, FS, GS) with `sel`,
    /// with every check (SDM Vol 2B "MOV", "POP"; Vol 3A 5.6, 5.7).
    pub fn load_seg(&mut self, m: &mut Machine, s: usize, sel: u16) -> R<()> {
        if !self.protected() {
            let prev = self.segs[s];
            self.set_seg(s, Segment::real_mode_load(prev, sel));
            return Ok(());
        }
        if self.v86() {
            self.set_seg(s, v86_segment(sel));
            return Ok(());
        }
        let err = (sel & !3) as u32;
        if sel & !3 == 0 {
            if s == SS {
                return gp0();
            }
            self.set_seg(
                s,
                Segment {
                    selector: sel,
                    base: 0,
                    limit: 0,
                    access: a::UNUSABLE,
                },
            );
            return Ok(());
        }
        let mut d = self.read_desc(m, sel)?;
        let rpl = (sel & 3) as u8;
        if s == SS {
            if rpl != self.cpl || !d.writable_data() || d.dpl() != self.cpl {
                return gp(err);
            }
            if !d.seg.present() {
                return ss(err);
            }
        } else {
            if d.is_sys() || !d.readable() {
                return gp(err);
            }
            if (d.is_data() || !d.conforming()) && (rpl > d.dpl() || self.cpl > d.dpl()) {
                return gp(err);
            }
            if !d.seg.present() {
                return np(err);
            }
        }
        self.set_accessed(m, &mut d)?;
        self.set_seg(s, d.seg);
        Ok(())
    }

    /// After a return to an outer ring: data segment registers whose DPL is
    /// below the new CPL (and are not conforming code) become null (SDM Vol
    /// 2A "RET", "IRET": the segment registers are invalidated).
    pub fn null_outer_segs(&mut self) {
        for s in [ES, DS, FS, GS] {
            let seg = self.segs[s];
            let conforming_code = seg.access & a::CODE != 0 && seg.access & a::DC != 0;
            if seg.usable() && !conforming_code && seg.dpl() < self.cpl {
                self.set_seg(
                    s,
                    Segment {
                        selector: 0,
                        base: 0,
                        limit: 0,
                        access: a::UNUSABLE,
                    },
                );
            }
        }
    }

    /// The code segment a far RET or an IRET returns to, checked (SDM Vol
    /// 2A "RET", "IRET"): a null selector is #GP(0); an RPL below the
    /// CPL, a descriptor that is not code, a conforming one whose DPL is
    /// above the RPL or a non-conforming one whose DPL is not the RPL is
    /// #GP(selector); not present is #NP(selector).
    pub(crate) fn return_code_desc(&mut self, m: &mut Machine, sel: u16) -> R<Desc> {
        let err = (sel & !3) as u32;
        if sel & !3 == 0 {
            return gp0();
        }
        let rpl = (sel & 3) as u8;
        if rpl < self.cpl {
            return gp(err);
        }
        let d = self.read_desc(m, sel)?;
        if !d.is_code() {
            return gp(err);
        }
        if d.conforming() {
            if d.dpl() > rpl {
                return gp(err);
            }
        } else if d.dpl() != rpl {
            return gp(err);
        }
        if !d.seg.present() {
            return np(err);
        }
        Ok(d)
    }

    /// The stack segment a far RET or an IRET to an outer ring `rpl`
    /// loads, checked (SDM Vol 2A "RET", "IRET"): a null selector is
    /// #GP(0); an RPL or DPL other than `rpl`, or a descriptor that is not
    /// writable data, is #GP(selector); not present is #SS(selector).
    pub(crate) fn return_stack_desc(&mut self, m: &mut Machine, sel: u16, rpl: u8) -> R<Desc> {
        let err = (sel & !3) as u32;
        if sel & !3 == 0 {
            return gp0();
        }
        let d = self.read_desc(m, sel)?;
        if (sel & 3) as u8 != rpl || !d.writable_data() || d.dpl() != rpl {
            return gp(err);
        }
        if !d.seg.present() {
            return ss(err);
        }
        Ok(d)
    }

    /// Loads CS for a far transfer to a code segment descriptor `d`, with
    /// the new CPL in the RPL (SDM Vol 3A 5.8.1-5.8.2).
    pub fn load_cs(&mut self, mut d: Desc, sel: u16, cpl: u8) -> Segment {
        d.seg.selector = (sel & !3) | cpl as u16;
        d.seg.access |= a::ACCESSED;
        d.seg
    }

    /// Records a privilege change if the CPL moved.
    pub fn note_priv(&mut self, m: &mut Machine, from: u8, cause: PrivCause, eip: u32) {
        if from != self.cpl {
            let icount = m.icount() + self.pending;
            let now = m.clock.now();
            m.trace.record(
                icount,
                now,
                machine::Event::PrivilegeChange {
                    from,
                    to: self.cpl,
                    cause,
                    eip,
                    eax: self.regs[0],
                },
            );
        }
    }

    /// Where the current TSS holds the inner-ring stack for `dpl`: the
    /// linear addresses of its stack pointer and of its selector, and the
    /// pointer's width (SDM Vol 3A 7.2.1, figure 7-2 and 7-11 for the
    /// 16-bit layout).
    pub(crate) fn tss_stack_slots(&self, dpl: u8) -> R<(u32, u32, u8)> {
        let tss32 = matches!(
            self.tr.access & a::TYPE_MASK,
            a::SYS_TSS32_AVAIL | a::SYS_TSS32_BUSY
        );
        let trsel = (self.tr.selector & !3) as u32;
        let base = self.tr.base;
        if tss32 {
            let off = 4 + 8 * dpl as u32;
            if off + 5 > self.tr.limit {
                return ts(trsel);
            }
            Ok((base.wrapping_add(off), base.wrapping_add(off + 4), 4))
        } else {
            let off = 2 + 4 * dpl as u32;
            if off + 3 > self.tr.limit {
                return ts(trsel);
            }
            Ok((base.wrapping_add(off), base.wrapping_add(off + 2), 2))
        }
    }

    /// Reads the inner-ring stack (SS, ESP) for `dpl` from the current TSS.
    pub fn tss_stack(&mut self, m: &mut Machine, dpl: u8) -> R<(u16, u32)> {
        let (esp_at, ss_at, w) = self.tss_stack_slots(dpl)?;
        let esp = self.sys_rd(m, esp_at, w)?;
        let ss = self.sys_rd(m, ss_at, 2)? as u16;
        Ok((ss, esp))
    }

    /// Checks the stack segment selector read from a TSS for a privilege
    /// change to `dpl` (SDM Vol 3A 6.12.1, 5.8.5): #TS on any failure.
    pub fn check_inner_ss(&mut self, m: &mut Machine, sel: u16, dpl: u8) -> R<Desc> {
        let err = (sel & !3) as u32;
        if sel & !3 == 0 {
            return ts(err);
        }
        let d = self.read_desc_v(m, sel, crate::fault::vec::TS)?;
        if (sel & 3) as u8 != dpl || d.dpl() != dpl || !d.writable_data() {
            return ts(err);
        }
        if !d.seg.present() {
            return ss(err);
        }
        Ok(d)
    }

    /// The far JMP, CALL (through a call gate as well) common part for a
    /// target selector in protected mode. `call` selects CALL semantics.
    pub fn far_transfer(
        &mut self,
        m: &mut Machine,
        op: &Op,
        sel: u16,
        off: u32,
        call: bool,
    ) -> R<()> {
        let insn_eip = self.eip.wrapping_sub(op.len as u32);
        let ret_eip = self.eip;
        let w = op.w;
        if !self.protected() || self.v86() {
            let off = if w == 2 { off & 0xFFFF } else { off };
            if call {
                let cs = self.segs[CS].selector as u32;
                self.push(m, w, cs)?;
                if let Err(e) = self.push(m, w, ret_eip) {
                    self.set_sp(self.sp_plus(w as u32));
                    return Err(e);
                }
            }
            let seg = if self.v86() {
                v86_code_segment(sel)
            } else {
                Segment::real_mode_load(self.segs[CS], sel)
            };
            if off > seg.limit {
                return gp0();
            }
            self.set_seg(CS, seg);
            self.eip = off;
            return Ok(());
        }
        let err = (sel & !3) as u32;
        if sel & !3 == 0 {
            return gp0();
        }
        let d = self.read_desc(m, sel)?;
        let rpl = (sel & 3) as u8;
        let cpl = self.cpl;
        if d.is_code() {
            if d.conforming() {
                if d.dpl() > cpl {
                    return gp(err);
                }
            } else if rpl > cpl || d.dpl() != cpl {
                return gp(err);
            }
            if !d.seg.present() {
                return np(err);
            }
            let off = if w == 2 { off & 0xFFFF } else { off };
            if off > d.seg.limit {
                return gp0();
            }
            let mut d = d;
            self.set_accessed(m, &mut d)?;
            if call {
                let old_sp = self.regs[4];
                let cs = self.segs[CS].selector as u32;
                let r = self.push(m, w, cs).and_then(|_| self.push(m, w, ret_eip));
                if let Err(e) = r {
                    self.regs[4] = old_sp;
                    return Err(e);
                }
            }
            let seg = self.load_cs(d, sel, cpl);
            self.set_seg(CS, seg);
            self.eip = off;
            return Ok(());
        }
        // Else a call gate, a task gate or an available TSS (SDM Vol 2A
        // "JMP", "CALL"); anything else is #GP.
        let task = match d.gate() {
            Some(g) if g.kind == GateKind::Call => {
                return self.call_gate(m, g, sel, call, insn_eip, ret_eip);
            }
            Some(g) => g.kind == GateKind::Task,
            None => matches!(d.kind(), Kind::Tss { busy: false, .. }),
        };
        if !task {
            return gp(err);
        }
        let kind = if call {
            crate::task::Switch::Call
        } else {
            crate::task::Switch::Jump
        };
        self.task_switch_via(m, d, sel, kind, insn_eip)
    }

    /// A far CALL or JMP through a call gate (SDM Vol 3A 5.8.4-5.8.5). The
    /// gate's size, not the instruction's, sets the width of what is pushed.
    fn call_gate(
        &mut self,
        m: &mut Machine,
        gate: Gate,
        gsel: u16,
        call: bool,
        insn_eip: u32,
        ret_eip: u32,
    ) -> R<()> {
        let gerr = (gsel & !3) as u32;
        let cpl = self.cpl;
        let rpl = (gsel & 3) as u8;
        if gate.dpl < cpl || gate.dpl < rpl {
            return gp(gerr);
        }
        if !gate.present {
            return np(gerr);
        }
        let tsel = gate.selector;
        let terr = (tsel & !3) as u32;
        if tsel & !3 == 0 {
            return gp0();
        }
        let mut td = self.read_desc(m, tsel)?;
        if !td.is_code() || td.dpl() > cpl {
            return gp(terr);
        }
        if !call && !td.conforming() && td.dpl() != cpl {
            return gp(terr);
        }
        if !td.seg.present() {
            return np(terr);
        }
        let gw: u8 = if gate.bits32 { 4 } else { 2 };
        let off = gate.offset;
        if off > td.seg.limit {
            return gp0();
        }
        self.set_accessed(m, &mut td)?;
        if call && !td.conforming() && td.dpl() < cpl {
            // More privileged: switch to the inner stack from the TSS and
            // copy the parameters.
            let dpl = td.dpl();
            let (nss, nesp) = self.tss_stack(m, dpl)?;
            let ssd = self.check_inner_ss(m, nss, dpl)?;
            let old_ss = self.segs[SS];
            let old_esp = self.regs[4];
            let old_sp = self.sp();
            let nparams = gate.params as u32;
            let mut params = Vec::with_capacity(nparams as usize);
            for k in (0..nparams).rev() {
                params.push(self.peek(m, k * gw as u32, gw)?);
            }
            let saved = (self.segs, self.regs[4], self.cpl);
            let mut ssd = ssd;
            self.set_accessed(m, &mut ssd)?;
            self.cpl = dpl;
            self.set_seg(SS, ssd.seg);
            self.regs[4] = nesp;
            let r = (|| {
                self.push(m, gw, old_ss.selector as u32)?;
                self.push(m, gw, if gw == 2 { old_sp } else { old_esp })?;
                for p in &params {
                    self.push(m, gw, *p)?;
                }
                self.push(m, gw, self.segs[CS].selector as u32)?;
                self.push(m, gw, ret_eip)
            })();
            if let Err(e) = r {
                self.segs = saved.0;
                self.regs[4] = saved.1;
                self.cpl = saved.2;
                self.refresh_all();
                return Err(e);
            }
            let seg = self.load_cs(td, tsel, dpl);
            self.set_seg(CS, seg);
            self.eip = off;
            self.note_priv(m, cpl, PrivCause::CallGate, insn_eip);
            return Ok(());
        }
        if call {
            let old_sp = self.regs[4];
            let cs = self.segs[CS].selector as u32;
            let r = self.push(m, gw, cs).and_then(|_| self.push(m, gw, ret_eip));
            if let Err(e) = r {
                self.regs[4] = old_sp;
                return Err(e);
            }
        }
        let seg = self.load_cs(td, tsel, cpl);
        self.set_seg(CS, seg);
        self.eip = off;
        Ok(())
    }

    /// Far RET [imm16] (SDM Vol 2B "RET", far return to the same or an outer
    /// privilege level).
    pub fn far_return(&mut self, m: &mut Machine, op: &Op) -> R<()> {
        let w = op.w;
        let insn_eip = self.eip.wrapping_sub(op.len as u32);
        let off = self.peek(m, 0, w)?;
        let sel = self.peek(m, w as u32, 2)? as u16;
        if !self.protected() || self.v86() {
            let off = if w == 2 { off & 0xFFFF } else { off };
            let seg = if self.v86() {
                v86_code_segment(sel)
            } else {
                Segment::real_mode_load(self.segs[CS], sel)
            };
            if off > seg.limit {
                return gp0();
            }
            self.set_seg(CS, seg);
            self.eip = off;
            self.set_sp(self.sp_plus(2 * w as u32 + op.imm));
            return Ok(());
        }
        let rpl = (sel & 3) as u8;
        let cpl = self.cpl;
        let mut d = self.return_code_desc(m, sel)?;
        let off = if w == 2 { off & 0xFFFF } else { off };
        if off > d.seg.limit {
            return gp0();
        }
        if rpl == cpl {
            self.set_accessed(m, &mut d)?;
            let seg = self.load_cs(d, sel, cpl);
            self.set_seg(CS, seg);
            self.eip = off;
            self.set_sp(self.sp_plus(2 * w as u32 + op.imm));
            return Ok(());
        }
        // Return to an outer ring: the outer SS:ESP follow the CS:EIP and
        // the imm16 bytes of parameters.
        let k = 2 * w as u32 + op.imm;
        let nesp = self.peek(m, k, w)?;
        let nss = self.peek(m, k + w as u32, 2)? as u16;
        let mut sd = self.return_stack_desc(m, nss, rpl)?;
        self.set_accessed(m, &mut d)?;
        self.set_accessed(m, &mut sd)?;
        let seg = self.load_cs(d, sel, rpl);
        self.set_seg(CS, seg);
        self.eip = off;
        self.set_seg(SS, sd.seg);
        let nesp = if w == 2 { nesp & 0xFFFF } else { nesp };
        if self.stack32() {
            self.regs[4] = nesp.wrapping_add(op.imm);
        } else {
            self.set_sp(nesp.wrapping_add(op.imm));
        }
        self.null_outer_segs();
        self.note_priv(m, cpl, PrivCause::FarReturn, insn_eip);
        Ok(())
    }
}

/// A V86-mode segment: base = selector * 16, 64 KiB, DPL 3 (SDM Vol 3A 20.2).
pub fn v86_segment(sel: u16) -> Segment {
    Segment {
        selector: sel,
        base: (sel as u32) << 4,
        limit: 0xFFFF,
        access: a::P | a::S | a::RW | a::ACCESSED | (3 << a::DPL_SHIFT),
    }
}

pub fn v86_code_segment(sel: u16) -> Segment {
    Segment {
        access: v86_segment(sel).access | a::CODE,
        ..v86_segment(sel)
    }
}

// ---- handlers ----------------------------------------------------------------

/// MOV Sreg, r/m16 (r0 = segment register index). MOV SS inhibits
/// interrupts for one instruction (SDM Vol 3A 6.8.3). Loading CS is #UD.
pub fn mov_sreg(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let sel = if op.k1 == K_MEM {
        let off = op.ea(c);
        c.rd(m, op.seg as usize, off, 2)?
    } else {
        c.reg(op.r1, 2)
    } as u16;
    let s = op.r0 as usize;
    if s == CS {
        return crate::fault::ud();
    }
    c.load_seg(m, s, sel)?;
    if s == SS {
        c.shadow = true;
        c.exit_block = true;
    }
    Ok(())
}

/// MOV r/m, Sreg (r1 = segment register). To a register with a 32-bit
/// operand the upper half is zeroed on P6-class CPUs.
pub fn mov_from_sreg(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let s = op.r1 as usize;
    if s == CS || s == SS {
        c.sensitive(
            m,
            op,
            if s == CS {
                "mov from cs"
            } else {
                "mov from ss"
            },
        );
    }
    let v = if s == CS || s == SS {
        c.visible_rpl(c.segs[s].selector) as u32
    } else {
        c.segs[s].selector as u32
    };
    if op.k0 == K_MEM {
        let off = op.ea(c);
        c.wr(m, op.seg as usize, off, 2, v)
    } else {
        c.set_reg(op.r0, op.w, v);
        Ok(())
    }
}

/// PUSH Sreg (r0 = segment register). A 32-bit push moves ESP by 4 but
/// writes only the selector's word, leaving the upper two bytes of the
/// slot as they were: the SDM (Vol 2B "PUSH") allows this or a
/// zero-extended dword, and says recent processors do this; the native
/// oracle's host does (tests/tests/native_oracle).
pub fn push_sreg(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let s = op.r0 as usize;
    if s == CS {
        c.sensitive(m, op, "push cs");
    }
    let v = if s == CS {
        c.visible_rpl(c.segs[s].selector) as u32
    } else {
        c.segs[s].selector as u32
    };
    let nsp = c.sp_plus((op.w as u32).wrapping_neg());
    c.wr(m, SS, nsp, 2, v)?;
    c.set_sp(nsp);
    Ok(())
}

pub fn pop_sreg(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let s = op.r0 as usize;
    let v = c.peek(m, 0, op.w)? as u16;
    // The pop moves SP or ESP by the stack size of the SS it was popped
    // from: POP SS from a 16-bit stack into a 32-bit one must still wrap
    // SP at 64 KiB (the new SS's B bit only applies afterwards).
    let esp = c.esp_after(op.w as u32);
    c.load_seg(m, s, v)?;
    c.regs[4] = esp;
    if s == SS {
        c.shadow = true;
        c.exit_block = true;
    }
    Ok(())
}

/// LDS, LES, LFS, LGS, LSS r, m16:16/32 (r1 = segment register index).
pub fn lxs(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    if op.k1 != K_MEM {
        return crate::fault::ud();
    }
    let off = op.ea(c);
    let v = c.rd(m, op.seg as usize, off, op.w)?;
    let sel = c.rd(m, op.seg as usize, off.wrapping_add(op.w as u32), 2)? as u16;
    let s = op.imm2 as usize;
    c.load_seg(m, s, sel)?;
    c.set_reg(op.r0, op.w, v);
    if s == SS {
        c.exit_block = true;
    }
    Ok(())
}

/// JMP ptr16:16/32 (imm = offset, imm2 = selector) or JMP m16:16/32 (k0 mem).
pub fn jmp_far(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let (sel, off) = far_operand(c, m, op)?;
    c.far_transfer(m, op, sel, off, false)
}

pub fn call_far(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let (sel, off) = far_operand(c, m, op)?;
    c.far_transfer(m, op, sel, off, true)
}

fn far_operand(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<(u16, u32)> {
    if op.k0 == K_MEM {
        let a = op.ea(c);
        let off = c.rd(m, op.seg as usize, a, op.w)?;
        let sel = c.rd(m, op.seg as usize, a.wrapping_add(op.w as u32), 2)? as u16;
        Ok((sel, off))
    } else if op.k0 == crate::ops::K_IMM {
        Ok((op.imm2 as u16, op.imm))
    } else {
        // JMP FAR with a register operand does not exist.
        crate::fault::ud()
    }
}

pub fn ret_far(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    c.far_return(m, op)
}
