//! `CpuState` to and from KVM's register structures (`kvm_regs`,
//! `kvm_sregs`, MSRs, vCPU events). Segment access rights are kept in the
//! VMX "access rights" layout in `CpuState`, which `kvm_segment` spells
//! out field by field.

use kvm_bindings::{kvm_dtable, kvm_regs, kvm_segment, kvm_sregs};
use machine::cpu::{access as a, CpuState, Seg, Segment, TableReg};

pub fn to_kvm_segment(s: &Segment) -> kvm_segment {
    let ar = s.access;
    kvm_segment {
        base: s.base as u64,
        limit: s.limit,
        selector: s.selector,
        type_: (ar & a::TYPE_MASK) as u8,
        present: (ar & a::P != 0) as u8,
        dpl: ((ar & a::DPL_MASK) >> a::DPL_SHIFT) as u8,
        db: (ar & a::DB != 0) as u8,
        s: (ar & a::S != 0) as u8,
        l: 0,
        g: (ar & a::G != 0) as u8,
        avl: (ar & a::AVL != 0) as u8,
        unusable: (ar & a::UNUSABLE != 0) as u8,
        padding: 0,
    }
}

pub fn from_kvm_segment(k: &kvm_segment) -> Segment {
    let mut ar = k.type_ as u32 & a::TYPE_MASK;
    if k.s != 0 {
        ar |= a::S;
    }
    ar |= (k.dpl as u32 & 3) << a::DPL_SHIFT;
    if k.present != 0 {
        ar |= a::P;
    }
    if k.avl != 0 {
        ar |= a::AVL;
    }
    if k.db != 0 {
        ar |= a::DB;
    }
    if k.g != 0 {
        ar |= a::G;
    }
    if k.unusable != 0 {
        ar |= a::UNUSABLE;
    }
    Segment {
        selector: k.selector,
        base: k.base as u32,
        limit: k.limit,
        access: ar,
    }
}

fn dtable(t: &TableReg) -> kvm_dtable {
    kvm_dtable {
        base: t.base as u64,
        limit: t.limit,
        padding: [0; 3],
    }
}

pub fn to_kvm(s: &CpuState, base: &kvm_sregs) -> (kvm_regs, kvm_sregs) {
    let r = &s.regs;
    let regs = kvm_regs {
        rax: r[0] as u64,
        rcx: r[1] as u64,
        rdx: r[2] as u64,
        rbx: r[3] as u64,
        rsp: r[4] as u64,
        rbp: r[5] as u64,
        rsi: r[6] as u64,
        rdi: r[7] as u64,
        rip: s.eip as u64,
        rflags: s.eflags as u64,
        ..Default::default()
    };
    let seg = |x: Seg| to_kvm_segment(&s.segs[x as usize]);
    let mut sr = *base;
    sr.es = seg(Seg::Es);
    sr.cs = seg(Seg::Cs);
    sr.ss = seg(Seg::Ss);
    sr.ds = seg(Seg::Ds);
    sr.fs = seg(Seg::Fs);
    sr.gs = seg(Seg::Gs);
    sr.tr = to_kvm_segment(&s.tr);
    sr.ldt = to_kvm_segment(&s.ldtr);
    sr.gdt = dtable(&s.gdtr);
    sr.idt = dtable(&s.idtr);
    sr.cr0 = s.cr0 as u64;
    sr.cr2 = s.cr2 as u64;
    sr.cr3 = s.cr3 as u64;
    sr.cr4 = s.cr4 as u64;
    sr.efer = s.efer;
    sr.interrupt_bitmap = [0; 4];
    (regs, sr)
}

/// Fills the register parts of `s` from KVM (MSRs, TSC and events are
/// added by the caller).
pub fn from_kvm(regs: &kvm_regs, sr: &kvm_sregs, s: &mut CpuState) {
    s.regs = [
        regs.rax as u32,
        regs.rcx as u32,
        regs.rdx as u32,
        regs.rbx as u32,
        regs.rsp as u32,
        regs.rbp as u32,
        regs.rsi as u32,
        regs.rdi as u32,
    ];
    s.eip = regs.rip as u32;
    s.eflags = regs.rflags as u32;
    let mut set = |x: Seg, k: &kvm_segment| s.segs[x as usize] = from_kvm_segment(k);
    set(Seg::Es, &sr.es);
    set(Seg::Cs, &sr.cs);
    set(Seg::Ss, &sr.ss);
    set(Seg::Ds, &sr.ds);
    set(Seg::Fs, &sr.fs);
    set(Seg::Gs, &sr.gs);
    s.tr = from_kvm_segment(&sr.tr);
    if sr.tr.s == 0 && sr.tr.present != 0 && matches!(sr.tr.type_, 1 | 9) {
        // TR always holds a busy TSS once loaded (LTR and task switches
        // mark it busy, SDM Vol 3A 7.2.4); QEMU's TCG, the CPU under KVM in
        // the test VM, caches the type it read before setting the bit.
        s.tr.access |= 2;
    }
    s.ldtr = from_kvm_segment(&sr.ldt);
    s.gdtr = TableReg {
        base: sr.gdt.base as u32,
        limit: sr.gdt.limit,
    };
    s.idtr = TableReg {
        base: sr.idt.base as u32,
        limit: sr.idt.limit,
    };
    s.cr0 = sr.cr0 as u32;
    s.cr2 = sr.cr2 as u32;
    s.cr3 = sr.cr3 as u32;
    s.cr4 = sr.cr4 as u32;
    s.efer = sr.efer;
}

/// The vCPU state for an error message: where it was, the registers, the
/// segments with their caches and the control registers.
pub fn dump(s: &CpuState) -> String {
    let r = &s.regs;
    let mut out = format!(
        "  at {:04x}:{:08x} ({}, CPL {})\n  eax {:08x} ecx {:08x} edx {:08x} ebx {:08x}\n  \
         esp {:08x} ebp {:08x} esi {:08x} edi {:08x}\n  eflags {:08x} cr0 {:08x} cr2 {:08x} \
         cr3 {:08x} cr4 {:08x}\n  gdtr {:08x}/{:04x} idtr {:08x}/{:04x} tr {:04x} ldtr {:04x}\n",
        s.segs[1].selector,
        s.eip,
        s.mode_name(),
        s.cpl(),
        r[0],
        r[1],
        r[2],
        r[3],
        r[4],
        r[5],
        r[6],
        r[7],
        s.eflags,
        s.cr0,
        s.cr2,
        s.cr3,
        s.cr4,
        s.gdtr.base,
        s.gdtr.limit,
        s.idtr.base,
        s.idtr.limit,
        s.tr.selector,
        s.ldtr.selector
    );
    for (name, g) in ["es", "cs", "ss", "ds", "fs", "gs"].iter().zip(&s.segs) {
        out.push_str(&format!(
            "  {name} {:04x} base {:08x} limit {:08x} access {:04x}\n",
            g.selector, g.base, g.limit, g.access
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_round_trip() {
        for s in [
            Segment::flat32(0x08, true),
            Segment::flat32(0x23, false),
            Segment::real_mode_code(0xF000),
            Segment {
                selector: 0,
                base: 0,
                limit: 0,
                access: a::UNUSABLE,
            },
            Segment::from_descriptor(0x28, 0x0000_8912_3456_0067),
        ] {
            assert_eq!(from_kvm_segment(&to_kvm_segment(&s)), s);
        }
    }

    #[test]
    fn state_round_trip() {
        let st = CpuState::multiboot(0x10_0000, 0x9000, 0x500);
        let (r, sr) = to_kvm(&st, &kvm_sregs::default());
        let mut back = CpuState::reset();
        from_kvm(&r, &sr, &mut back);
        assert_eq!(back.regs, st.regs);
        assert_eq!(back.segs, st.segs);
        assert_eq!(
            (back.eip, back.eflags, back.cr0),
            (st.eip, st.eflags, st.cr0)
        );
        assert_eq!((back.gdtr, back.idtr, back.tr), (st.gdtr, st.idtr, st.tr));
    }
}
