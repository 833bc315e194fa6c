//! The delivery memo: what the protection checks of an interrupt delivery
//! and of an IRET decided, kept with every input they read, so that the
//! next delivery through the same gate (or IRET to the same selectors)
//! whose inputs are byte for byte the same loads the same segments without
//! deciding again.
//!
//! A delivery from ring 3 reads the gate, the code segment's descriptor,
//! the TSS's inner stack and that stack segment's descriptor, and checks
//! some twenty conditions on them (SDM Vol 3A 6.12.1); an IRET to ring 3
//! reads and checks two descriptors. Each input is re-read here on every
//! use (the tables are guest memory the guest may rewrite at any time,
//! untracked), but through the TLB only: a read the TLB does not serve
//! goes the full way, for it would walk the page tables and set accessed
//! bits. So a memo hit reads exactly what the full checks would, changes
//! nothing they would not, and skips only their decisions: the pushes,
//! the stack switch, EFLAGS and the events are the full path's own code
//! (`Cpu::enter_gate`, `Cpu::iret` after its checks). Kept only where the
//! checks changed nothing in memory (the descriptors' accessed bits were
//! already set), from a GDT descriptor (not the LDT), outside V86 mode,
//! through an interrupt or trap gate.
//!
//! The translator turns it on (`Interp::use_delivery_memo`), as VMware's
//! monitor kept shadow descriptor state for its guests' system calls. The
//! interpreter, the reference engine, leaves it off: every differential
//! test between the two then checks the memo against the full checks.

use crate::cpu::Cpu;
use machine::cpu::{Segment, TableReg};

/// Vectors with a gate memo each: all of them.
const GATES: usize = 256;
/// IRET memos, by the code selector's index (low bits).
const IRETS: usize = 4;

/// What a delivery through an interrupt or trap gate loads, once its
/// checks passed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GatePlan {
    /// CS as loaded: the gate's selector with the new CPL as its RPL.
    pub cs: Segment,
    /// The new CPL (the code segment's DPL on an inter-privilege
    /// delivery, else the CPL).
    pub dpl: u8,
    /// An inter-privilege delivery: the inner stack segment, loaded from
    /// the selector in the TSS (ESP from there too).
    pub ss: Option<Segment>,
    /// The entry point (16 bits through a 16-bit gate).
    pub off: u32,
    /// The gate's width in bytes: what each push writes.
    pub gw: u8,
    /// An interrupt gate (IF cleared), not a trap gate.
    pub interrupt: bool,
}

/// A gate memo: the plan and what decided it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GateMemo {
    pub software: bool,
    pub cpl: u8,
    pub idtr: TableReg,
    pub gdtr: TableReg,
    pub gate_raw: u64,
    pub cs_sel: u16,
    pub cs_raw: u64,
    /// Inter-privilege only: the TSS register, the stack selector it held
    /// and that selector's descriptor.
    pub tr: Segment,
    pub ss_sel: u16,
    pub ss_raw: u64,
    pub plan: GatePlan,
}

/// An IRET memo: the code segment it returned to and, to an outer ring,
/// the stack segment, with what decided them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IretMemo {
    pub cpl: u8,
    pub w: u8,
    pub gdtr: TableReg,
    pub cs_sel: u16,
    pub cs_raw: u64,
    /// CS as loaded (RPL as popped, accessed).
    pub cs: Segment,
    /// To an outer ring: the stack selector popped, its descriptor, and
    /// SS as loaded.
    pub ss_sel: u16,
    pub ss_raw: u64,
    pub ss: Option<Segment>,
}

pub(crate) struct Memos {
    pub gates: Vec<Option<GateMemo>>,
    pub irets: [Option<IretMemo>; IRETS],
    /// Deliveries and IRETs that took a memo, and those that checked in
    /// full.
    pub hits: u64,
    pub misses: u64,
}

impl Memos {
    pub fn new() -> Memos {
        Memos {
            gates: vec![None; GATES],
            irets: [None; IRETS],
            hits: 0,
            misses: 0,
        }
    }
}

/// The IRET memo slot for code selector `sel`.
pub(crate) fn iret_slot(sel: u16) -> usize {
    (sel as usize >> 3) % IRETS
}

impl Cpu {
    /// The 8 bytes at linear `lin` as a supervisor read sees them, if the
    /// TLB serves that read (`read_ptr`): then the full read (`sys_rd`)
    /// would neither walk nor change anything either.
    #[inline]
    fn tlb_peek_u64(&self, lin: u32) -> Option<u64> {
        let p = self.read_ptr(lin, 8, false)?;
        // SAFETY: `read_ptr` gave a host address in guest RAM whose 8
        // bytes stay in the page its TLB entry maps.
        Some(unsafe { (p as *const u64).read_unaligned() })
    }

    /// As `tlb_peek_u64`, `w` (2 or 4) bytes.
    #[inline]
    fn tlb_peek(&self, lin: u32, w: u8) -> Option<u32> {
        let p = self.read_ptr(lin, w as u32, false)?;
        // SAFETY: as in `tlb_peek_u64`.
        Some(unsafe {
            if w == 2 {
                (p as *const u16).read_unaligned() as u32
            } else {
                (p as *const u32).read_unaligned()
            }
        })
    }

    /// The descriptor of GDT selector `sel` as the TLB serves it.
    #[inline]
    fn tlb_peek_gdt(&self, sel: u16) -> Option<u64> {
        self.tlb_peek_u64(self.gdtr.base.wrapping_add((sel & !7) as u32))
    }

    /// A delivery of `vector` (software: by INT n) that the gate memo
    /// decides: its plan and, inter-privilege, the inner ESP read from
    /// the TSS. None where anything it was decided on differs now, or a
    /// read would not come from the TLB.
    pub(crate) fn gate_memo_hit(&mut self, vector: u8, software: bool) -> Option<(GatePlan, u32)> {
        let g = self.memo.as_ref()?.gates[vector as usize]?;
        let hit = self.gate_memo_check(&g, vector, software);
        self.memo_counts(hit.is_some());
        hit
    }

    fn gate_memo_check(&self, g: &GateMemo, vector: u8, software: bool) -> Option<(GatePlan, u32)> {
        if g.software != software
            || g.cpl != self.cpl
            || self.v86()
            || g.idtr != self.idtr
            || g.gdtr != self.gdtr
        {
            return None;
        }
        let gate = self.idtr.base.wrapping_add(vector as u32 * 8);
        if self.tlb_peek_u64(gate)? != g.gate_raw || self.tlb_peek_gdt(g.cs_sel)? != g.cs_raw {
            return None;
        }
        let mut esp = 0;
        if g.plan.ss.is_some() {
            if g.tr != self.tr {
                return None;
            }
            let (esp_at, ss_at, w) = self.tss_stack_slots(g.plan.dpl).ok()?;
            esp = self.tlb_peek(esp_at, w)?;
            let ss = self.tlb_peek(ss_at, 2)? as u16;
            if ss != g.ss_sel || self.tlb_peek_gdt(ss)? != g.ss_raw {
                return None;
            }
        }
        Some((g.plan, esp))
    }

    /// Keeps what the full checks decided for a delivery (see the module
    /// comment for which are kept).
    pub(crate) fn gate_memo_keep(&mut self, vector: u8, memo: GateMemo) {
        if let Some(m) = self.memo.as_mut() {
            m.gates[vector as usize] = Some(memo);
        }
    }

    /// The IRET memo for returning to code selector `cs` with `w`-byte
    /// pops, if everything its code segment was decided on is the same
    /// (counted by the caller, which knows whether the stack segment's
    /// part held too; a miss here is counted here).
    pub(crate) fn iret_memo_hit(&mut self, cs: u16, w: u8) -> Option<IretMemo> {
        let r = self.memo.as_ref()?.irets[iret_slot(cs)]?;
        let same = r.cs_sel == cs
            && r.cpl == self.cpl
            && r.w == w
            && r.gdtr == self.gdtr
            && self.tlb_peek_gdt(cs) == Some(r.cs_raw);
        if !same {
            self.memo_counts(false);
        }
        same.then_some(r)
    }

    /// Counts a delivery or IRET the memo decided (`hit`), or one it had an
    /// entry for that was checked in full.
    pub(crate) fn memo_counts(&mut self, hit: bool) {
        if let Some(m) = self.memo.as_mut() {
            if hit {
                m.hits += 1;
            } else {
                m.misses += 1;
            }
        }
    }

    /// The stack segment an IRET memo holds for stack selector `ss`, if
    /// its descriptor is the same.
    pub(crate) fn iret_memo_stack(&self, r: &IretMemo, ss: u16) -> Option<Segment> {
        let seg = r.ss?;
        (r.ss_sel == ss && self.tlb_peek_gdt(ss) == Some(r.ss_raw)).then_some(seg)
    }

    pub(crate) fn iret_memo_keep(&mut self, memo: IretMemo) {
        if let Some(m) = self.memo.as_mut() {
            m.irets[iret_slot(memo.cs_sel)] = Some(memo);
        }
    }
}
