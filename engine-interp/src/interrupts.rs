//! Interrupt and exception delivery (SDM Vol 3A chapter 6; real mode 20.1.4),
//! the double- and triple-fault rules (6.15, interrupt 8), IRET, INT n,
//! INT3, INTO and BOUND.

use crate::cpu::{Cpu, CS, DS, ES, FS, GS, SS};
use crate::fault::{gp, gp0, is_double, np, vec, Exc, R};
use crate::memo::{GateMemo, GatePlan, IretMemo};
use crate::ops::Op;
use crate::segments::{v86_segment, Desc};
use machine::cpu::{access as a, flags as f};
use machine::x86::descriptor::{Gate, GateKind, Kind};
use machine::{Event, Machine, PrivCause};

/// Where an interrupt comes from: it decides the EXT bit of error codes,
/// whether the gate's DPL is checked, and the event recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A CPU exception, with its error code if it has one.
    Exception(Option<u32>),
    /// INT n, INT3, INTO at this address: the gate DPL must allow the CPL.
    Software(u32),
    /// A hardware interrupt from the PIC.
    External,
}

impl Cpu {
    /// Delivers `vector` with EIP already set to the address to return to.
    /// On failure nothing has been changed and the error is the fault hit.
    pub fn deliver(&mut self, m: &mut Machine, vector: u8, src: Source) -> R<()> {
        let saved_segs = self.segs;
        let saved_esp = self.regs[4];
        let saved_fl = self.fl;
        let saved_eip = self.eip;
        let saved_tr = self.tr;
        let saved_ldtr = self.ldtr;
        let saved_regs = self.regs;
        let saved_cr3 = self.cr3;
        let r = if self.protected() {
            self.deliver_protected(m, vector, src)
        } else {
            self.deliver_real(m, vector)
        };
        if r.is_err() {
            self.segs = saved_segs;
            self.regs = saved_regs;
            self.regs[4] = saved_esp;
            self.fl = saved_fl;
            self.eip = saved_eip;
            self.tr = saved_tr;
            self.ldtr = saved_ldtr;
            self.cr3 = saved_cr3;
            self.refresh_all();
        }
        self.exit_block = true;
        r
    }

    /// Real mode: the interrupt vector table at IDTR.base (SDM Vol 3A 20.1.4).
    fn deliver_real(&mut self, m: &mut Machine, vector: u8) -> R<()> {
        let idx = vector as u32 * 4;
        if idx + 3 > self.idtr.limit as u32 {
            return gp((idx * 2) + 2);
        }
        let ent = self.sys_rd(m, self.idtr.base.wrapping_add(idx), 4)?;
        let flags = self.fl.get();
        self.push(m, 2, flags)?;
        self.push(m, 2, self.segs[CS].selector as u32)?;
        self.push(m, 2, self.eip)?;
        let sel = (ent >> 16) as u16;
        let prev = self.segs[CS];
        self.set_seg(CS, machine::cpu::Segment::real_mode_load(prev, sel));
        self.eip = ent & 0xFFFF;
        let nf = flags & !(f::IF | f::TF | f::AC | f::RF);
        self.fl.set(nf);
        Ok(())
    }

    fn deliver_protected(&mut self, m: &mut Machine, vector: u8, src: Source) -> R<()> {
        if self.memo.is_some() {
            let software = matches!(src, Source::Software(_));
            if let Some((plan, nesp)) = self.gate_memo_hit(vector, software) {
                return self.enter_gate(m, plan, nesp, src, false);
            }
        }
        let ext = matches!(src, Source::Exception(_) | Source::External) as u32;
        let idx = vector as u32 * 8;
        let gate_err = idx + 2 + ext;
        if idx + 7 > self.idtr.limit as u32 {
            return gp(gate_err);
        }
        let gaddr = self.idtr.base.wrapping_add(idx);
        let lo = self.sys_rd(m, gaddr, 4)? as u64;
        let hi = self.sys_rd(m, gaddr.wrapping_add(4), 4)? as u64;
        let raw = lo | (hi << 32);
        // An IDT entry must be a task, interrupt or trap gate (SDM Vol 3A
        // 6.11).
        let gate = match Gate::decode(raw) {
            Some(g) if g.kind != GateKind::Call => g,
            _ => return gp(gate_err),
        };
        if matches!(src, Source::Software(_)) && gate.dpl < self.cpl {
            return gp(idx + 2);
        }
        if !gate.present {
            return np(gate_err);
        }
        let code = match src {
            Source::Exception(c) => c,
            _ => None,
        };
        if gate.kind == GateKind::Task {
            let from = self.cpl;
            let insn_eip = event_eip(src, self.eip);
            self.task_switch_gate(m, gate, crate::task::Switch::Interrupt, ext != 0)?;
            if let Some(c) = code {
                let tss32 = Kind::Tss {
                    bits32: true,
                    busy: true,
                };
                let w = if Kind::of_access(self.tr.access) == tss32 {
                    4
                } else {
                    2
                };
                self.push(m, w, c)?;
            }
            let cause = cause_of(src);
            self.note_priv(m, from, cause, insn_eip);
            return Ok(());
        }
        let tsel = gate.selector;
        let terr = (tsel & !3) as u32 + ext;
        if tsel & !3 == 0 {
            return gp(ext);
        }
        let d = self
            .read_desc(m, tsel)
            .map_err(|e| Exc::new(e.vector(), e.code().map(|c| c | ext)))?;
        if !d.is_code() || d.dpl() > self.cpl {
            return gp(terr);
        }
        if !d.seg.present() {
            return np(terr);
        }
        let gw: u8 = if gate.bits32 { 4 } else { 2 };
        let v86 = self.v86();
        // Inter-privilege: the inner stack comes from the TSS.
        let inter = !d.conforming() && d.dpl() < self.cpl;
        let dpl = if inter { d.dpl() } else { self.cpl };
        if v86 && (!inter || dpl != 0) {
            return gp(terr);
        }
        // What the memo needs (`memo.rs`): a GDT code descriptor, not V86.
        let mut keep = !v86 && tsel & 4 == 0;
        let mut stack = None;
        if inter {
            let (nss, nesp) = self.tss_stack(m, dpl)?;
            let mut ssd = self
                .check_inner_ss(m, nss, dpl)
                .map_err(|e| Exc::new(e.vector(), e.code().map(|c| c | ext)))?;
            // (And an accessed stack descriptor: no write to remember.)
            keep &= nss & 4 == 0 && ssd.seg.access & a::ACCESSED != 0;
            let ss_raw = ssd.raw;
            self.set_accessed(m, &mut ssd)?;
            stack = Some((ssd.seg, nesp, nss, ss_raw));
        }
        let plan = GatePlan {
            cs: self.load_cs(d, tsel, dpl),
            dpl,
            ss: stack.map(|s| s.0),
            off: if gw == 2 {
                gate.offset & 0xFFFF
            } else {
                gate.offset
            },
            gw,
            interrupt: gate.kind == GateKind::Interrupt,
        };
        if keep {
            let (_, _, ss_sel, ss_raw) = stack.unwrap_or_default();
            let memo = GateMemo {
                software: matches!(src, Source::Software(_)),
                cpl: self.cpl,
                idtr: self.idtr,
                gdtr: self.gdtr,
                gate_raw: raw,
                cs_sel: tsel,
                cs_raw: d.raw,
                tr: self.tr,
                ss_sel,
                ss_raw,
                plan,
            };
            self.gate_memo_keep(vector, memo);
        }
        let nesp = stack.map_or(0, |s| s.1);
        self.enter_gate(m, plan, nesp, src, v86)
    }

    /// The delivery through an interrupt or trap gate once its checks
    /// passed (`plan`; `nesp` the inner ESP from the TSS when it changes
    /// privilege): the stack switch, the pushes, CS:EIP and EFLAGS. A push
    /// that faults leaves the rest undone (`deliver` puts back the state).
    fn enter_gate(
        &mut self,
        m: &mut Machine,
        plan: GatePlan,
        nesp: u32,
        src: Source,
        v86: bool,
    ) -> R<()> {
        let ext = matches!(src, Source::Exception(_) | Source::External) as u32;
        let code = match src {
            Source::Exception(c) => c,
            _ => None,
        };
        let gw = plan.gw;
        let from = self.cpl;
        let old_eflags = self.fl.get();
        let ret_eip = self.eip;
        let old_cs = self.segs[CS].selector as u32;
        if let Some(ss) = plan.ss {
            let old_ss = self.segs[SS].selector as u32;
            let old_esp = self.regs[4];
            let old_data = [
                self.segs[GS].selector,
                self.segs[FS].selector,
                self.segs[DS].selector,
                self.segs[ES].selector,
            ];
            // Switch to the inner stack with the new CPL, so the pushes are
            // supervisor accesses.
            if v86 {
                self.fl.put(f::VM, false);
            }
            self.set_seg(CS, plan.cs);
            self.set_seg(SS, ss);
            self.regs[4] = nesp;
            if v86 {
                for sel in old_data {
                    self.push(m, gw, sel as u32)?;
                }
            }
            self.push(m, gw, old_ss)?;
            self.push(m, gw, old_esp)?;
            if v86 {
                // The data segment registers are nulled on entry from V86
                // (SDM Vol 3A 20.3.1.1).
                for s in [ES, DS, FS, GS] {
                    self.set_seg(
                        s,
                        machine::cpu::Segment {
                            selector: 0,
                            base: 0,
                            limit: 0,
                            access: a::UNUSABLE,
                        },
                    );
                }
            }
        } else {
            self.set_seg(CS, plan.cs);
        }
        self.push(m, gw, old_eflags)?;
        self.push(m, gw, old_cs)?;
        self.push(m, gw, ret_eip)?;
        if let Some(c) = code {
            self.push(m, gw, c)?;
        }
        if plan.off > self.segs[CS].limit {
            return gp(ext);
        }
        self.eip = plan.off;
        let mut nf = old_eflags & !(f::TF | f::NT | f::RF | f::VM);
        if plan.interrupt {
            nf &= !f::IF;
        }
        self.fl.set(nf);
        self.refresh_mode();
        self.note_priv(m, from, cause_of(src), event_eip(src, ret_eip));
        Ok(())
    }

    /// Raises exception `e` at the current EIP (already set to the faulting
    /// instruction for faults), applying the double- and triple-fault rules.
    /// Returns false on a triple fault (the CPU shuts down).
    pub fn raise(&mut self, m: &mut Machine, e: Exc) -> bool {
        self.counters.exceptions += 1;
        let icount = m.icount() + self.pending;
        m.trace.record(
            icount,
            m.clock.now(),
            Event::Exception {
                vector: e.vector(),
                error_code: e.code(),
                eip: self.eip,
            },
        );
        // "For any fault-class exception except a debug exception generated
        // in response to an instruction breakpoint, the value pushed for RF
        // is 1" (SDM Vol 3A 17.3.1.1): set it in EFLAGS before delivery, so
        // the image pushed, or saved in the TSS by a task gate, carries it.
        if is_fault_class(e.vector()) {
            self.fl.bits |= f::RF;
        }
        let mut cur = e;
        for _ in 0..4 {
            match self.deliver(m, cur.vector(), Source::Exception(cur.code())) {
                Ok(()) => return true,
                Err(e2) => {
                    if cur.vector() == vec::DF {
                        return false;
                    }
                    let double = is_double(cur.vector(), e2.vector());
                    if double {
                        // The exception hit while delivering, then the #DF
                        // it turned into.
                        let icount = m.icount() + self.pending;
                        m.trace.record(
                            icount,
                            m.clock.now(),
                            Event::Exception {
                                vector: e2.vector(),
                                error_code: e2.code(),
                                eip: self.eip,
                            },
                        );
                    }
                    cur = if double {
                        Exc::new(vec::DF, Some(0))
                    } else {
                        e2
                    };
                    let icount = m.icount() + self.pending;
                    m.trace.record(
                        icount,
                        m.clock.now(),
                        Event::Exception {
                            vector: cur.vector(),
                            error_code: cur.code(),
                            eip: self.eip,
                        },
                    );
                }
            }
        }
        false
    }

    /// Delivers an external interrupt. False on a triple fault.
    pub fn interrupt(&mut self, m: &mut Machine, vector: u8) -> bool {
        self.counters.interrupts += 1;
        self.halted = false;
        let icount = m.icount() + self.pending;
        m.trace.record(
            icount,
            m.clock.now(),
            Event::Interrupt {
                vector,
                eip: self.eip,
            },
        );
        match self.deliver(m, vector, Source::External) {
            Ok(()) => true,
            Err(e) => self.raise(m, e),
        }
    }

    /// IRET/IRETD (SDM Vol 2A "IRET").
    pub fn iret(&mut self, m: &mut Machine, op: &Op) -> R<()> {
        // IRET ends NMI blocking, even one that faults (SDM Vol 3A 6.7.1:
        // "...until the next IRET instruction is executed").
        self.nmi_blocked = false;
        let w = op.w;
        let insn_eip = self.eip.wrapping_sub(op.len as u32);
        if !self.protected() {
            let ip = self.peek(m, 0, w)?;
            let cs = self.peek(m, w as u32, 2)? as u16;
            let fl = self.peek(m, 2 * w as u32, w)?;
            let ip = if w == 2 { ip & 0xFFFF } else { ip };
            if ip > self.segs[CS].limit {
                return gp0();
            }
            self.set_sp(self.sp_plus(3 * w as u32));
            let prev = self.segs[CS];
            self.set_seg(CS, machine::cpu::Segment::real_mode_load(prev, cs));
            self.eip = ip;
            let old = self.fl.get();
            let nf = if w == 2 {
                (old & 0xFFFF_0000) | (fl & 0xFFFF)
            } else {
                (fl & !(f::VM | f::VIF | f::VIP)) | (old & (f::VM | f::VIF | f::VIP))
            };
            self.fl.set(nf);
            self.exit_block = true;
            return Ok(());
        }
        if self.v86() {
            if self.iopl() < 3 {
                return gp0();
            }
            let ip = self.peek(m, 0, w)?;
            let cs = self.peek(m, w as u32, 2)? as u16;
            let fl = self.peek(m, 2 * w as u32, w)?;
            let ip = if w == 2 { ip & 0xFFFF } else { ip };
            if ip > 0xFFFF {
                return gp0();
            }
            self.set_sp(self.sp_plus(3 * w as u32));
            self.set_seg(CS, crate::segments::v86_code_segment(cs));
            self.eip = ip;
            let old = self.fl.get();
            let keep = f::IOPL | f::VM | f::VIF | f::VIP;
            let nf = if w == 2 {
                (old & (0xFFFF_0000 | keep)) | (fl & 0xFFFF & !keep)
            } else {
                (old & keep) | (fl & !keep)
            };
            self.fl.set(nf & !f::RF);
            self.exit_block = true;
            return Ok(());
        }
        if self.fl.bits & f::NT != 0 {
            return self.task_return(m, insn_eip);
        }
        let from = self.cpl;
        let eip = self.peek(m, 0, w)?;
        let cs = self.peek(m, w as u32, 2)? as u16;
        let fl = self.peek(m, 2 * w as u32, w)?;
        if w == 4 && fl & f::VM != 0 && self.cpl == 0 {
            return self.iret_to_v86(m, eip, cs, fl, insn_eip);
        }
        let rpl = (cs & 3) as u8;
        // The code segment: as the memo has it (`memo.rs`), or checked.
        let hit = self.iret_memo_hit(cs, w);
        let mut d = None;
        let cs_seg = match &hit {
            Some(r) => r.cs,
            None => {
                let dd = self.return_code_desc(m, cs)?;
                d = Some(dd);
                self.load_cs(dd, cs, rpl)
            }
        };
        let eip = if w == 2 { eip & 0xFFFF } else { eip };
        if eip > cs_seg.limit {
            return gp0();
        }
        let outer = rpl > self.cpl;
        // To an outer ring: the stack segment, as the memo has it or
        // checked (then loaded once its accessed bit is set).
        let mut stack = None;
        let mut sd = None;
        if outer {
            let nesp = self.peek(m, 3 * w as u32, w)?;
            let nss = self.peek(m, 4 * w as u32, 2)? as u16;
            match hit.as_ref().and_then(|r| self.iret_memo_stack(r, nss)) {
                Some(seg) => stack = Some((seg, nesp, nss)),
                None => sd = Some((self.return_stack_desc(m, nss, rpl)?, nesp, nss)),
            }
        }
        // EFLAGS: which bits this CPL may change (SDM Vol 2A "IRET").
        let old = self.fl.get();
        let mut changeable = f::STATUS | f::TF | f::DF | f::NT | f::RF;
        if w == 4 {
            changeable |= f::AC | f::ID;
        }
        if self.cpl <= self.iopl() {
            changeable |= f::IF;
        }
        if self.cpl == 0 {
            changeable |= f::IOPL | f::IF;
            if w == 4 {
                changeable |= f::VIF | f::VIP;
            }
        }
        let nf = (old & !changeable) | (fl & changeable);
        self.rf_loaded = nf & f::RF != 0;
        // What the memo keeps: GDT descriptors whose accessed bits were
        // already set (the checks wrote nothing).
        let fresh = |dd: &Desc, sel: u16| sel & 4 == 0 && dd.seg.access & a::ACCESSED != 0;
        let mut keep = match (&d, &hit) {
            (Some(dd), _) => fresh(dd, cs).then_some(IretMemo {
                cpl: self.cpl,
                w,
                gdtr: self.gdtr,
                cs_sel: cs,
                cs_raw: dd.raw,
                cs: cs_seg,
                ss_sel: 0,
                ss_raw: 0,
                ss: None,
            }),
            (None, Some(r)) => Some(*r),
            (None, None) => None,
        };
        if let Some(mut dd) = d {
            self.set_accessed(m, &mut dd)?;
        }
        if let Some((mut dd, nesp, nss)) = sd {
            let was = fresh(&dd, nss);
            self.set_accessed(m, &mut dd)?;
            stack = Some((dd.seg, nesp, nss));
            keep = keep.filter(|_| was).map(|r| IretMemo {
                ss_sel: nss,
                ss_raw: dd.raw,
                ss: Some(dd.seg),
                ..r
            });
        }
        if hit.is_some() {
            self.memo_counts(sd.is_none());
        }
        if let Some(r) = keep.filter(|_| d.is_some() || sd.is_some()) {
            self.iret_memo_keep(r);
        }
        if let Some((ss, nesp, _)) = stack {
            self.set_seg(CS, cs_seg);
            self.set_seg(SS, ss);
            let nesp = if w == 2 { nesp & 0xFFFF } else { nesp };
            if ss.big() {
                self.regs[4] = nesp;
            } else {
                self.set_sp(nesp);
            }
            self.null_outer_segs();
        } else {
            self.set_seg(CS, cs_seg);
            self.set_sp(self.sp_plus(3 * w as u32));
        }
        self.eip = eip;
        self.fl.set(nf);
        self.refresh_mode();
        self.note_priv(m, from, PrivCause::Iret, insn_eip);
        self.exit_block = true;
        Ok(())
    }

    /// IRETD from ring 0 with VM set in the popped EFLAGS: back to V86 mode
    /// (SDM Vol 2A "IRET", RETURN-TO-VIRTUAL-8086-MODE).
    fn iret_to_v86(&mut self, m: &mut Machine, eip: u32, cs: u16, fl: u32, insn_eip: u32) -> R<()> {
        let esp = self.peek(m, 12, 4)?;
        let ss = self.peek(m, 16, 2)? as u16;
        let es = self.peek(m, 20, 2)? as u16;
        let ds = self.peek(m, 24, 2)? as u16;
        let fs = self.peek(m, 28, 2)? as u16;
        let gs = self.peek(m, 32, 2)? as u16;
        let from = self.cpl;
        self.fl.set(fl);
        self.set_seg(CS, crate::segments::v86_code_segment(cs));
        for (s, sel) in [(SS, ss), (ES, es), (DS, ds), (FS, fs), (GS, gs)] {
            self.set_seg(s, v86_segment(sel));
        }
        self.regs[4] = esp;
        self.eip = eip & 0xFFFF;
        self.refresh_mode();
        self.note_priv(m, from, PrivCause::Iret, insn_eip);
        self.exit_block = true;
        Ok(())
    }
}

/// The address an event names: the INT instruction itself for software
/// interrupts (as for every other transfer), else the return address.
fn event_eip(src: Source, ret_eip: u32) -> u32 {
    match src {
        Source::Software(at) => at,
        _ => ret_eip,
    }
}

fn cause_of(src: Source) -> PrivCause {
    match src {
        Source::Exception(_) => PrivCause::Exception,
        Source::Software(_) => PrivCause::SoftwareInterrupt,
        Source::External => PrivCause::HardwareInterrupt,
    }
}

// ---- handlers ----------------------------------------------------------------

/// INT imm8 (x = 0), INT3 (x = 1), INTO (x = 2). In V86 mode with IOPL < 3,
/// INT n faults (#GP(0)) so the monitor can emulate it (SDM Vol 3A 20.3.3).
pub fn int(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let vector = match op.x {
        1 => vec::BP,
        2 => {
            if !c.fl.of() {
                return Ok(());
            }
            vec::OF
        }
        _ => op.imm as u8,
    };
    if c.v86() && c.iopl() < 3 && op.x == 0 {
        return gp0();
    }
    if op.x != 0 {
        let icount = m.icount() + c.pending;
        m.trace.record(
            icount,
            m.clock.now(),
            Event::Exception {
                vector,
                error_code: None,
                eip: c.eip.wrapping_sub(op.len as u32),
            },
        );
    }
    c.sensitive(m, op, "int");
    // EIP already points after the INT: the return address.
    let at = c.eip.wrapping_sub(op.len as u32);
    c.deliver(m, vector, Source::Software(at))
}

pub fn iret(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    c.sensitive(m, op, "iret");
    c.iret(m, op)
}

/// BOUND r, m: #BR (a fault) when the index is outside [lower, upper].
pub fn bound(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    if op.k1 != crate::ops::K_MEM {
        return crate::fault::ud();
    }
    let off = op.ea(c);
    let signed = |x: u32| {
        if op.w == 2 {
            x as u16 as i16 as i32
        } else {
            x as i32
        }
    };
    let v = signed(c.reg(op.r0, op.w));
    // The lower bound is read and checked before the upper bound is read:
    // an index below it is #BR even when the upper bound lies in an
    // unmapped page (the native oracle's host; the SDM does not order the
    // reads).
    let lo = signed(c.rd(m, op.seg as usize, off, op.w)?);
    if v < lo {
        return Err(Exc::new(vec::BR, None));
    }
    let hi = signed(c.rd(m, op.seg as usize, off.wrapping_add(op.w as u32), op.w)?);
    if v > hi {
        return Err(Exc::new(vec::BR, None));
    }
    Ok(())
}

/// Exceptions of the fault class (SDM Vol 3A Table 6-1): the saved EIP is
/// the faulting instruction's. (#DB from TF is a trap; the interpreter does
/// not arm instruction breakpoints.)
fn is_fault_class(vector: u8) -> bool {
    matches!(
        vector,
        0 | 5 | 6 | 7 | 10 | 11 | 12 | 13 | 14 | 16 | 17 | 19 | 20
    )
}
