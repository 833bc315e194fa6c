//! System instructions: CLI, STI, HLT, the descriptor-table registers,
//! control and debug registers, CPUID, RDTSC, MSRs, SYSENTER/SYSEXIT and
//! the protection queries LAR, LSL, VERR, VERW, ARPL (SDM Vol 2 and Vol 3A
//! 2.8, 5.10).

use crate::cpu::{Cpu, CS, SS};
use crate::fault::{gp, gp0, np, ud, R};
use crate::ops::{Op, K_MEM, K_REG};
use machine::cpu::{access as a, cr0, cr4, flags as f, msr, Segment, TableReg};
use machine::{Event, Machine, PrivCause};

impl Cpu {
    /// Records that a sensitive instruction ran (the event the lessons count).
    /// CLI and STI raise #GP(0) in protected mode (V86 included) when CPL
    /// > IOPL (SDM Vol 2A "CLI", without VME/PVI).
    #[inline]
    pub fn cli_sti_faults(&self) -> bool {
        self.protected() && self.cpl > self.iopl()
    }

    /// The EFLAGS image PUSHF pushes: VM and RF clear (SDM Vol 2B
    /// "PUSHF"), as the guest may see it (`visible_eflags`).
    #[inline]
    pub fn pushf_image(&self) -> u32 {
        self.visible_eflags(self.fl.get() & !(f::VM | f::RF))
    }

    /// Records a sensitive instruction executed elsewhere (a translator's
    /// callout) at instruction count `icount`.
    pub fn record_sensitive(
        &mut self,
        m: &mut Machine,
        name: &'static str,
        eip: u32,
        icount: u64,
        how: machine::Handling,
    ) {
        m.trace.record(
            icount,
            m.clock.now(),
            Event::Sensitive {
                insn: std::borrow::Cow::Borrowed(name),
                cpl: self.cpl,
                eip,
                how,
            },
        );
    }

    pub fn sensitive(&mut self, m: &mut Machine, op: &Op, name: &'static str) {
        let icount = m.icount() + self.pending;
        let eip = self.eip.wrapping_sub(op.len as u32);
        let how = self.handling(name);
        self.record_sensitive(m, name, eip, icount, how);
    }

    /// Privileged instructions need CPL 0 (and real mode counts as CPL 0;
    /// V86 mode is CPL 3) — SDM Vol 3A 5.9.
    #[inline]
    pub fn need_cpl0(&self) -> R<()> {
        if self.cpl != 0 {
            gp0()
        } else {
            Ok(())
        }
    }

    /// Brings virtual time up to date with the instructions executed so far
    /// in this block (before a port access or a TSC read).
    #[inline]
    pub fn sync_clock(&mut self, m: &mut Machine) {
        if self.pending > 0 {
            m.retire(self.pending);
            self.synced += self.pending;
            self.pending = 0;
        }
    }

    pub fn write_cr0(&mut self, m: &mut Machine, v: u32) -> R<()> {
        // PG without PE, or NW without CD, is #GP(0) (SDM Vol 3A 2.5).
        if v & cr0::PG != 0 && v & cr0::PE == 0 {
            return gp0();
        }
        if v & cr0::NW != 0 && v & cr0::CD == 0 {
            return gp0();
        }
        let old = self.cr0;
        // ET is hardwired to 1 on P6-class processors.
        let v = v | cr0::ET;
        self.cr0 = v;
        if (old ^ v) & (cr0::PE | cr0::PG | cr0::WP) != 0 {
            self.tlb.flush(false);
            let from = self.cpl;
            self.refresh_mode();
            if (old ^ v) & cr0::PE != 0 {
                let eip = self.eip;
                self.note_priv(m, from, PrivCause::ModeSwitch, eip);
            }
        }
        self.exit_block = true;
        Ok(())
    }
}

/// CLI (x = 0) and STI (x = 1). In protected mode they need CPL <= IOPL,
/// in V86 mode IOPL = 3, else #GP(0) (SDM Vol 2A "CLI"; no PVI/VME). STI
/// delays interrupts until after the next instruction.
pub fn cli_sti(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    c.sensitive(m, op, if op.x == 0 { "cli" } else { "sti" });
    if c.cli_sti_faults() {
        return gp0();
    }
    if op.x == 0 {
        c.fl.bits &= !f::IF;
    } else {
        if !c.fl.if_() {
            c.shadow = true;
        }
        c.fl.bits |= f::IF;
        c.exit_block = true;
    }
    Ok(())
}

pub fn hlt(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    c.sensitive(m, op, "hlt");
    c.need_cpl0()?;
    c.halted = true;
    c.exit_block = true;
    Ok(())
}

/// LGDT (x = 0) / LIDT (x = 1): 16-bit operand size loads a 24-bit base.
pub fn lgdt_lidt(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    c.sensitive(m, op, if op.x == 0 { "lgdt" } else { "lidt" });
    if op.k0 != K_MEM {
        return ud();
    }
    c.need_cpl0()?;
    let off = op.ea(c);
    let limit = c.rd(m, op.seg as usize, off, 2)? as u16;
    let mut base = c.rd(m, op.seg as usize, off.wrapping_add(2), 4)?;
    if op.w == 2 {
        base &= 0x00FF_FFFF;
    }
    let t = TableReg { base, limit };
    if op.x == 0 {
        c.gdtr = t;
    } else {
        c.idtr = t;
    }
    Ok(())
}

/// SGDT (x = 0) / SIDT (x = 1): not privileged — the Popek-Goldberg
/// problem: ring 3 sees the real tables. 16-bit operand size stores a
/// 24-bit base with the fourth byte zero.
pub fn sgdt_sidt(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    c.sensitive(m, op, if op.x == 0 { "sgdt" } else { "sidt" });
    if op.k0 != K_MEM {
        return ud();
    }
    let t = match (c.deprivileged(), op.x) {
        (true, 0) => TableReg {
            base: crate::deprivilege::MONITOR_GDT_BASE,
            limit: crate::deprivilege::MONITOR_GDT_LIMIT,
        },
        (true, _) => TableReg {
            base: crate::deprivilege::MONITOR_IDT_BASE,
            limit: crate::deprivilege::MONITOR_IDT_LIMIT,
        },
        (false, 0) => c.gdtr,
        (false, _) => c.idtr,
    };
    let off = op.ea(c);
    let base = if op.w == 2 {
        t.base & 0x00FF_FFFF
    } else {
        t.base
    };
    let lin = c.seg_lin(op.seg as usize, off, 6, true)?;
    let user = c.cpl == 3;
    c.probe_write(m, lin, 6, user)?;
    c.write_lin(m, lin, 2, t.limit as u32, user)?;
    c.write_lin(m, lin.wrapping_add(2), 4, base, user)
}

/// Stores a 16-bit system value to r/m: to a register with a 32-bit operand
/// it is zero-extended.
fn store_sys16(c: &mut Cpu, m: &mut Machine, op: &Op, v: u32) -> R<()> {
    if op.k0 == K_REG {
        c.set_reg(op.r0, op.w, v & 0xFFFF);
        Ok(())
    } else {
        let off = op.ea(c);
        c.wr(m, op.seg as usize, off, 2, v)
    }
}

/// SLDT (x = 0) / STR (x = 1): #UD outside protected mode.
pub fn sldt_str(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    c.sensitive(m, op, if op.x == 0 { "sldt" } else { "str" });
    if !c.protected() || c.v86() {
        return ud();
    }
    let v = match (c.deprivileged(), op.x) {
        (true, 0) => crate::deprivilege::MONITOR_LDTR,
        (true, _) => crate::deprivilege::MONITOR_TR,
        (false, 0) => c.ldtr.selector,
        (false, _) => c.tr.selector,
    } as u32;
    store_sys16(c, m, op, v)
}

/// SMSW: allowed at any CPL, in real mode too. To a register the whole of
/// CR0 is stored (P6 behaviour for a 32-bit operand).
pub fn smsw(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    c.sensitive(m, op, "smsw");
    let cr0 = c.visible_cr0();
    if op.k0 == K_REG {
        let v = if op.w == 4 { cr0 } else { cr0 & 0xFFFF };
        c.set_reg(op.r0, op.w, v);
        Ok(())
    } else {
        let off = op.ea(c);
        c.wr(m, op.seg as usize, off, 2, cr0 & 0xFFFF)
    }
}

/// LMSW: loads PE, MP, EM, TS; it can set PE but never clear it.
pub fn lmsw(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    c.sensitive(m, op, "lmsw");
    c.need_cpl0()?;
    let o = Op { w: 2, ..op.clone() };
    let v = c.get0(m, &o)?;
    let keep = c.cr0 & !0xE;
    let nv = keep | (v & 0xF) | (c.cr0 & cr0::PE);
    c.write_cr0(m, nv)
}

/// LLDT (SDM Vol 2A): a GDT selector of an LDT descriptor, or null.
pub fn lldt(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    c.sensitive(m, op, "lldt");
    if !c.protected() || c.v86() {
        return ud();
    }
    c.need_cpl0()?;
    let o = Op { w: 2, ..op.clone() };
    let sel = c.get0(m, &o)? as u16;
    if sel & !3 == 0 {
        c.ldtr = Segment {
            selector: sel,
            base: 0,
            limit: 0,
            access: a::UNUSABLE,
        };
        return Ok(());
    }
    let err = (sel & !3) as u32;
    if sel & 4 != 0 {
        return gp(err);
    }
    let d = c.read_desc(m, sel)?;
    if !d.is_sys() || d.sys_type() != a::SYS_LDT {
        return gp(err);
    }
    if !d.seg.present() {
        return np(err);
    }
    c.ldtr = d.seg;
    Ok(())
}

/// LTR: loads an available TSS and marks it busy.
pub fn ltr(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    c.sensitive(m, op, "ltr");
    if !c.protected() || c.v86() {
        return ud();
    }
    c.need_cpl0()?;
    let o = Op { w: 2, ..op.clone() };
    let sel = c.get0(m, &o)? as u16;
    let err = (sel & !3) as u32;
    if sel & !3 == 0 {
        return gp0();
    }
    if sel & 4 != 0 {
        return gp(err);
    }
    let d = c.read_desc(m, sel)?;
    if !d.is_sys() || !matches!(d.sys_type(), a::SYS_TSS16_AVAIL | a::SYS_TSS32_AVAIL) {
        return gp(err);
    }
    if !d.seg.present() {
        return np(err);
    }
    let b = c.sys_rd(m, d.addr + 5, 1)?;
    c.sys_wr(m, d.addr + 5, 1, b | 0x2)?;
    let mut s = d.seg;
    s.access |= 0x2;
    c.tr = s;
    Ok(())
}

/// MOV CRn, r32 (x = n, r1 = source) and MOV r32, CRn (imm2 = 1).
pub fn mov_cr(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    c.sensitive(
        m,
        op,
        if op.imm2 == 1 {
            "mov from cr"
        } else {
            "mov to cr"
        },
    );
    if c.v86() {
        return gp0();
    }
    c.need_cpl0()?;
    if op.imm2 == 1 {
        let v = match op.x {
            0 => c.cr0,
            2 => c.cr2,
            3 => c.cr3,
            4 => c.cr4,
            _ => return ud(),
        };
        c.regs[op.r0 as usize] = v;
        return Ok(());
    }
    let v = c.regs[op.r1 as usize];
    match op.x {
        0 => c.write_cr0(m, v)?,
        2 => c.cr2 = v,
        3 => {
            c.cr3 = v & 0xFFFF_F018;
            c.tlb.flush(true);
            c.exit_block = true;
        }
        4 => {
            // Only VME, PVI, TSD, DE, PSE, PGE of the P6 set are accepted;
            // the engines do not implement VME/PVI, so those bits #GP too.
            let allowed = cr4::TSD | cr4::DE | cr4::PSE | cr4::PGE;
            if v & !allowed != 0 {
                return gp0();
            }
            c.cr4 = v;
            c.tlb.flush(false);
            c.exit_block = true;
        }
        _ => return ud(),
    }
    Ok(())
}

/// MOV DRn, r32 / MOV r32, DRn (imm2 = 1). Breakpoints are stored but not
/// armed (the debug-trap machinery is not modelled).
pub fn mov_dr(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    c.sensitive(m, op, "mov dr");
    if c.v86() {
        return gp0();
    }
    c.need_cpl0()?;
    let n = op.x;
    if (n == 4 || n == 5) && c.cr4 & cr4::DE != 0 {
        return ud();
    }
    if op.imm2 == 1 {
        let v = match n {
            0..=3 => c.dr[n as usize],
            4 | 6 => c.dr6,
            _ => c.dr7,
        };
        c.regs[op.r0 as usize] = v;
    } else {
        let v = c.regs[op.r1 as usize];
        match n {
            0..=3 => c.dr[n as usize] = v,
            4 | 6 => c.dr6 = v | 0xFFFF_0FF0,
            _ => c.dr7 = (v | 0x400) & !0x0000_D800,
        }
    }
    Ok(())
}

pub fn clts(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    c.sensitive(m, op, "clts");
    c.need_cpl0()?;
    c.cr0 &= !cr0::TS;
    Ok(())
}

pub fn invlpg(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    c.sensitive(m, op, "invlpg");
    if op.k0 != K_MEM {
        return ud();
    }
    c.need_cpl0()?;
    let off = op.ea(c);
    let lin = c.segs[op.seg as usize].base.wrapping_add(off);
    c.tlb.flush_page(lin);
    c.exit_block = true;
    Ok(())
}

/// WBINVD / INVD: privileged, no cache to model.
pub fn wbinvd(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    c.sensitive(m, op, "wbinvd");
    c.need_cpl0()
}

/// CPUID from the machine's fixed table, the same on every engine; the
/// APIC bit follows IA32_APIC_BASE's global enable (SDM Vol 3A 11.4.3).
pub fn cpuid(c: &mut Cpu, m: &mut Machine, _op: &Op) -> R<()> {
    let mut r = machine::x86::cpuid::cpuid(c.regs[0], c.regs[1]);
    if c.regs[0] == 1 && m.apic_base() & machine::x86::cpuid::APIC_BASE_ENABLE == 0 {
        r[3] &= !machine::x86::cpuid::edx1::APIC;
    }
    c.regs[0] = r[0];
    c.regs[3] = r[1];
    c.regs[1] = r[2];
    c.regs[2] = r[3];
    Ok(())
}

/// RDTSC: virtual nanoseconds (1 GHz) plus the guest's offset. CR4.TSD
/// makes it privileged.
pub fn rdtsc(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    if c.cr4 & cr4::TSD != 0 {
        c.sensitive(m, op, "rdtsc");
        c.need_cpl0()?;
    }
    c.sync_clock(m);
    let t = m.clock.now().wrapping_add(c.tsc_offset);
    c.regs[0] = t as u32;
    c.regs[2] = (t >> 32) as u32;
    Ok(())
}

/// RDMSR (x = 0) / WRMSR (x = 1) for the modelled MSRs; others #GP(0).
pub fn msr_op(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    c.sensitive(m, op, if op.x == 0 { "rdmsr" } else { "wrmsr" });
    c.need_cpl0()?;
    let idx = c.regs[1];
    if op.x == 0 {
        let v: u64 = match idx {
            msr::TSC => {
                c.sync_clock(m);
                m.clock.now().wrapping_add(c.tsc_offset)
            }
            msr::SYSENTER_CS => c.sysenter_cs as u64,
            msr::SYSENTER_ESP => c.sysenter_esp as u64,
            msr::SYSENTER_EIP => c.sysenter_eip as u64,
            msr::APIC_BASE => m.apic_base(),
            _ => return gp0(),
        };
        c.regs[0] = v as u32;
        c.regs[2] = (v >> 32) as u32;
    } else {
        let v = ((c.regs[2] as u64) << 32) | c.regs[0] as u64;
        match idx {
            msr::TSC => {
                c.sync_clock(m);
                c.tsc_offset = v.wrapping_sub(m.clock.now());
            }
            msr::SYSENTER_CS => c.sysenter_cs = v as u32,
            msr::SYSENTER_ESP => c.sysenter_esp = v as u32,
            msr::SYSENTER_EIP => c.sysenter_eip = v as u32,
            // Reserved bits #GP; a relocation ringlab does not do leaves
            // the APIC where it is and says so in the trace.
            msr::APIC_BASE => match m.set_apic_base(v) {
                Ok(()) => {}
                Err(machine::devices::lapic::ApicBaseError::Reserved { .. }) => return gp0(),
                Err(e) => m.note("local APIC", e.to_string()),
            },
            _ => return gp0(),
        }
    }
    Ok(())
}

fn flat(sel: u16, code: bool, dpl: u8) -> Segment {
    let mut s = Segment::flat32(sel, code);
    s.access = (s.access & !a::DPL_MASK) | ((dpl as u32) << a::DPL_SHIFT);
    s
}

/// SYSENTER (SDM Vol 2B): to ring 0 with flat segments from the MSRs.
pub fn sysenter(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    c.sensitive(m, op, "sysenter");
    if !c.protected() || c.sysenter_cs & 0xFFFC == 0 {
        return gp0();
    }
    let from = c.cpl;
    let eip = c.eip.wrapping_sub(op.len as u32);
    let cs = (c.sysenter_cs & 0xFFFC) as u16;
    c.fl.bits &= !(f::VM | f::IF | f::RF);
    c.set_seg(CS, flat(cs, true, 0));
    c.set_seg(SS, flat(cs + 8, false, 0));
    c.regs[4] = c.sysenter_esp;
    c.eip = c.sysenter_eip;
    c.refresh_mode();
    c.note_priv(m, from, PrivCause::Sysenter, eip);
    c.exit_block = true;
    Ok(())
}

/// SYSEXIT: to ring 3 at EDX with stack ECX.
pub fn sysexit(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    c.sensitive(m, op, "sysexit");
    if !c.protected() || c.v86() || c.sysenter_cs & 0xFFFC == 0 {
        return gp0();
    }
    c.need_cpl0()?;
    let from = c.cpl;
    let eip = c.eip.wrapping_sub(op.len as u32);
    let cs = (c.sysenter_cs as u16 & 0xFFFC) + 16;
    c.set_seg(CS, flat(cs | 3, true, 3));
    c.set_seg(SS, flat((cs + 8) | 3, false, 3));
    c.regs[4] = c.regs[1];
    c.eip = c.regs[2];
    c.refresh_mode();
    c.note_priv(m, from, PrivCause::Sysexit, eip);
    c.exit_block = true;
    Ok(())
}

/// LAR (x = 0), LSL (x = 1), VERR (x = 2), VERW (x = 3): ZF tells whether
/// the selector is valid for the query at this CPL (SDM Vol 2A).
pub fn protq(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let name = ["lar", "lsl", "verr", "verw"][op.x as usize & 3];
    c.sensitive(m, op, name);
    if !c.protected() || c.v86() {
        return ud();
    }
    let src = if op.x >= 2 {
        let o = Op { w: 2, ..op.clone() };
        c.get0(m, &o)?
    } else {
        let o = Op { w: 2, ..op.clone() };
        c.get1(m, &o)?
    } as u16;
    let result = query(c, m, op.x, src)?;
    match result {
        Some(v) => {
            if op.x < 2 {
                c.set_reg(op.r0, op.w, v);
            }
            c.fl.put(f::ZF, true);
        }
        None => c.fl.put(f::ZF, false),
    }
    Ok(())
}

fn query(c: &mut Cpu, m: &mut Machine, x: u8, sel: u16) -> R<Option<u32>> {
    if sel & !3 == 0 {
        return Ok(None);
    }
    let d = match c.read_desc(m, sel) {
        Ok(d) => d,
        Err(e) if e.vector() == crate::fault::vec::GP => return Ok(None),
        Err(e) => return Err(e),
    };
    let rpl = (sel & 3) as u8;
    let conforming = d.conforming();
    let visible = conforming || (d.dpl() >= c.cpl && d.dpl() >= rpl);
    if !visible {
        return Ok(None);
    }
    let ty = d.sys_type();
    match x {
        0 => {
            let ok = !d.is_sys() || matches!(ty, 1 | 2 | 3 | 4 | 5 | 9 | 11 | 12);
            // Bits 8-23 of the descriptor's high word masked with 00F0FF00H:
            // the limit bits 19:16 read as 0 (SDM Vol 2A "LAR").
            let mut ar = (d.raw >> 32) as u32 & 0x00F0_FF00;
            if c.deprivileged() && !d.is_sys() && d.dpl() == 0 {
                // The monitor's shadow descriptor: DPL 0 compressed to 1.
                ar |= 1 << 13;
            }
            Ok(ok.then_some(ar))
        }
        1 => {
            let ok = !d.is_sys() || matches!(ty, 1 | 2 | 3 | 9 | 11);
            Ok(ok.then_some(d.seg.limit))
        }
        2 => Ok((!d.is_sys() && d.readable()).then_some(0)),
        _ => Ok(d.writable_data().then_some(0)),
    }
}

/// ARPL r/m16, r16: raises the RPL of the destination to the source's.
pub fn arpl(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    if !c.protected() || c.v86() {
        return ud();
    }
    let src = c.reg(op.r1, 2);
    // The destination is written only when its RPL is raised (SDM Vol 2A,
    // ARPL, "Operation"): left as it is, a memory operand is only read, so
    // a read-only segment or page does not fault (a real 386 does not;
    // test386.asm checks it, and Bochs, which checks for a write first,
    // fails there).
    let user = c.user();
    let (dst, mem_off) = if op.k0 == K_REG {
        (c.reg(op.r0, 2), None)
    } else {
        let off = op.ea(c);
        let lin = c.seg_lin(op.seg as usize, off, 2, false)?;
        (c.read_lin(m, lin, 2, user)?, Some(off))
    };
    if dst & 3 < src & 3 {
        let v = (dst & !3) | (src & 3);
        match mem_off {
            None => c.set_reg(op.r0, 2, v),
            Some(off) => {
                let lin = c.seg_lin(op.seg as usize, off, 2, true)?;
                c.write_lin(m, lin, 2, v, user)?;
            }
        }
        c.fl.put(f::ZF, true);
    } else {
        c.fl.put(f::ZF, false);
    }
    Ok(())
}

/// UD2 and any instruction without a handler: #UD.
pub fn undefined(_c: &mut Cpu, _m: &mut Machine, _op: &Op) -> R<()> {
    ud()
}
