//! The complete architectural state of an i686-class CPU.
//!
//! Every engine exports and imports this, so a run can be snapshotted and
//! moved from one engine to another mid-run. Segment registers carry their
//! hidden descriptor caches (SDM Vol 3A 3.4.3): what the CPU actually uses is
//! the cache, not the selector, which is exactly what real-mode tricks
//! ("unreal mode") and the lessons on segmentation show.

use crate::x86::descriptor::{self, Descriptor};
use serde::{Deserialize, Serialize};

/// General register numbers, in the x86 encoding order.
pub const EAX: usize = 0;
pub const ECX: usize = 1;
pub const EDX: usize = 2;
pub const EBX: usize = 3;
pub const ESP: usize = 4;
pub const EBP: usize = 5;
pub const ESI: usize = 6;
pub const EDI: usize = 7;

/// Segment register numbers, in the x86 encoding order (SDM Vol 2 table 3-6
/// "Sreg" field).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Seg {
    Es = 0,
    Cs = 1,
    Ss = 2,
    Ds = 3,
    Fs = 4,
    Gs = 5,
}

impl Seg {
    pub const ALL: [Seg; 6] = [Seg::Es, Seg::Cs, Seg::Ss, Seg::Ds, Seg::Fs, Seg::Gs];
    pub fn name(self) -> &'static str {
        ["es", "cs", "ss", "ds", "fs", "gs"][self as usize]
    }
}

/// EFLAGS bits (SDM Vol 1 3.4.3).
pub mod flags {
    pub const CF: u32 = 1 << 0;
    /// Bit 1 always reads as 1.
    pub const FIXED: u32 = 1 << 1;
    pub const PF: u32 = 1 << 2;
    pub const AF: u32 = 1 << 4;
    pub const ZF: u32 = 1 << 6;
    pub const SF: u32 = 1 << 7;
    pub const TF: u32 = 1 << 8;
    pub const IF: u32 = 1 << 9;
    pub const DF: u32 = 1 << 10;
    pub const OF: u32 = 1 << 11;
    pub const IOPL: u32 = 3 << 12;
    pub const IOPL_SHIFT: u32 = 12;
    pub const NT: u32 = 1 << 14;
    pub const RF: u32 = 1 << 16;
    pub const VM: u32 = 1 << 17;
    pub const AC: u32 = 1 << 18;
    pub const VIF: u32 = 1 << 19;
    pub const VIP: u32 = 1 << 20;
    pub const ID: u32 = 1 << 21;
    /// Arithmetic status flags.
    pub const STATUS: u32 = CF | PF | AF | ZF | SF | OF;
}

/// CR0 bits (SDM Vol 3A 2.5).
pub mod cr0 {
    pub const PE: u32 = 1 << 0;
    pub const MP: u32 = 1 << 1;
    pub const EM: u32 = 1 << 2;
    pub const TS: u32 = 1 << 3;
    pub const ET: u32 = 1 << 4;
    pub const NE: u32 = 1 << 5;
    pub const WP: u32 = 1 << 16;
    pub const AM: u32 = 1 << 18;
    pub const NW: u32 = 1 << 29;
    pub const CD: u32 = 1 << 30;
    pub const PG: u32 = 1 << 31;
}

/// CR4 bits (SDM Vol 3A 2.5).
pub mod cr4 {
    pub const VME: u32 = 1 << 0;
    pub const PVI: u32 = 1 << 1;
    pub const TSD: u32 = 1 << 2;
    pub const DE: u32 = 1 << 3;
    pub const PSE: u32 = 1 << 4;
    pub const PAE: u32 = 1 << 5;
    pub const PGE: u32 = 1 << 7;
}

/// Segment access rights in the layout of the VMX guest-state "access rights"
/// field and KVM's `kvm_segment` (SDM Vol 3C 24.4.1): bits 0-7 are bits 40-47
/// of the descriptor (type, S, DPL, P), bits 12-15 are bits 52-55 (AVL, L,
/// D/B, G), and bit 16 marks an unusable segment (a null selector loaded in
/// protected mode).
pub mod access {
    use crate::x86::descriptor::system as sys;

    pub const TYPE_MASK: u32 = 0xF;
    /// Data: accessed. Code: accessed.
    pub const ACCESSED: u32 = 1 << 0;
    /// Data: writable. Code: readable.
    pub const RW: u32 = 1 << 1;
    /// Data: expand-down. Code: conforming.
    pub const DC: u32 = 1 << 2;
    /// Code (1) or data (0), for S=1 descriptors.
    pub const CODE: u32 = 1 << 3;
    /// S: code/data (1) or system (0) descriptor.
    pub const S: u32 = 1 << 4;
    pub const DPL_SHIFT: u32 = 5;
    pub const DPL_MASK: u32 = 3 << 5;
    pub const P: u32 = 1 << 7;
    pub const AVL: u32 = 1 << 12;
    pub const L: u32 = 1 << 13;
    pub const DB: u32 = 1 << 14;
    pub const G: u32 = 1 << 15;
    pub const UNUSABLE: u32 = 1 << 16;
    /// System descriptor types (S=0) used by a 32-bit CPU (SDM Vol 3A 3.5),
    /// as [`crate::x86::descriptor::system`] defines them.
    pub const SYS_TSS16_AVAIL: u32 = sys::TSS16_AVAIL as u32;
    pub const SYS_LDT: u32 = sys::LDT as u32;
    pub const SYS_TSS16_BUSY: u32 = sys::TSS16_BUSY as u32;
    pub const SYS_CALL_GATE16: u32 = sys::CALL_GATE16 as u32;
    pub const SYS_TASK_GATE: u32 = sys::TASK_GATE as u32;
    pub const SYS_INT_GATE16: u32 = sys::INT_GATE16 as u32;
    pub const SYS_TRAP_GATE16: u32 = sys::TRAP_GATE16 as u32;
    pub const SYS_TSS32_AVAIL: u32 = sys::TSS32_AVAIL as u32;
    pub const SYS_TSS32_BUSY: u32 = sys::TSS32_BUSY as u32;
    pub const SYS_CALL_GATE32: u32 = sys::CALL_GATE32 as u32;
    pub const SYS_INT_GATE32: u32 = sys::INT_GATE32 as u32;
    pub const SYS_TRAP_GATE32: u32 = sys::TRAP_GATE32 as u32;
}

/// A segment register: the visible selector and the hidden descriptor cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub selector: u16,
    pub base: u32,
    /// Byte-granular limit (already scaled when G=1).
    pub limit: u32,
    /// Access rights, see [`access`].
    pub access: u32,
}

impl Segment {
    /// A real-mode segment as loaded by `MOV Sreg` in real mode: base =
    /// selector * 16, the limit and rights left as they were (SDM Vol 3A
    /// 20.1.1) — the caller passes the previous cache for that.
    pub fn real_mode_load(prev: Segment, selector: u16) -> Segment {
        Segment {
            selector,
            base: (selector as u32) << 4,
            ..prev
        }
    }

    /// A 64 KiB read/write, accessed, present data segment, as after reset.
    pub fn real_mode_data(selector: u16) -> Segment {
        Segment {
            selector,
            base: (selector as u32) << 4,
            limit: 0xFFFF,
            access: access::P | access::S | access::RW | access::ACCESSED,
        }
    }

    /// A 64 KiB execute/read, accessed, present code segment.
    pub fn real_mode_code(selector: u16) -> Segment {
        Segment {
            selector,
            base: (selector as u32) << 4,
            limit: 0xFFFF,
            access: access::P | access::S | access::CODE | access::RW | access::ACCESSED,
        }
    }

    /// Decodes an 8-byte GDT/LDT descriptor into a cache (SDM Vol 3A 3.4.5;
    /// the fields as [`crate::x86::descriptor`] reads them).
    #[inline]
    pub fn from_descriptor(selector: u16, raw: u64) -> Segment {
        Segment {
            selector,
            base: descriptor::base(raw),
            limit: descriptor::limit(raw),
            access: descriptor::access_rights(raw),
        }
    }

    /// Encodes this cache back into a descriptor (for tests and loaders).
    pub fn to_descriptor(&self) -> u64 {
        Descriptor::from_cache(self.base, self.limit, self.access).encode()
    }

    #[inline]
    pub fn dpl(&self) -> u8 {
        ((self.access & access::DPL_MASK) >> access::DPL_SHIFT) as u8
    }
    #[inline]
    pub fn present(&self) -> bool {
        self.access & access::P != 0
    }
    #[inline]
    pub fn usable(&self) -> bool {
        self.access & access::UNUSABLE == 0
    }
    /// Default operand/address size is 32 bits (D/B set).
    #[inline]
    pub fn big(&self) -> bool {
        self.access & access::DB != 0
    }
    /// 4 GiB flat: base 0, limit 0xFFFFFFFF, usable.
    pub fn is_flat(&self) -> bool {
        self.base == 0 && self.limit == u32::MAX && self.usable()
    }

    /// A flat 4 GiB ring-0 32-bit code or data segment.
    pub fn flat32(selector: u16, code: bool) -> Segment {
        let ty = if code {
            access::CODE | access::RW
        } else {
            access::RW
        };
        Segment {
            selector,
            base: 0,
            limit: u32::MAX,
            access: ty | access::ACCESSED | access::S | access::P | access::DB | access::G,
        }
    }
}

/// GDTR or IDTR.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableReg {
    pub base: u32,
    pub limit: u16,
}

/// The modelled MSRs (SDM Vol 4 table 2-2 numbers).
pub mod msr {
    pub const TSC: u32 = 0x10;
    /// IA32_APIC_BASE: the local APIC's base and global enable.
    pub const APIC_BASE: u32 = 0x1B;
    pub const SYSENTER_CS: u32 = 0x174;
    pub const SYSENTER_ESP: u32 = 0x175;
    pub const SYSENTER_EIP: u32 = 0x176;
    pub const EFER: u32 = 0xC000_0080;
}

/// Everything a CPU holds that software can observe or that survives across
/// instructions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuState {
    /// EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI.
    pub regs: [u32; 8],
    pub eip: u32,
    pub eflags: u32,
    /// ES, CS, SS, DS, FS, GS (indexed by [`Seg`]).
    pub segs: [Segment; 6],
    pub cr0: u32,
    pub cr2: u32,
    pub cr3: u32,
    pub cr4: u32,
    pub gdtr: TableReg,
    pub idtr: TableReg,
    pub ldtr: Segment,
    pub tr: Segment,
    /// DR0-DR3 breakpoint addresses.
    pub dr: [u32; 4],
    pub dr6: u32,
    pub dr7: u32,
    pub tsc: u64,
    pub sysenter_cs: u32,
    pub sysenter_esp: u32,
    pub sysenter_eip: u32,
    pub efer: u64,
    /// Interrupts are inhibited for one instruction after STI or MOV SS /
    /// POP SS (SDM Vol 3A 6.8.3).
    pub interrupt_shadow: bool,
    /// The CPU is in the HLT state, waiting for an interrupt.
    pub halted: bool,
    /// NMIs are blocked: one was delivered and no IRET has run since (SDM
    /// Vol 3A 6.7.1).
    #[serde(default)]
    pub nmi_blocked: bool,
}

impl CpuState {
    /// The state after RESET (SDM Vol 3A 9.1.4, table 9-1): real mode,
    /// CS selector F000 with base FFFF0000, EIP FFF0, so the first fetch is
    /// at FFFFFFF0; EDX holds the family/model/stepping signature.
    pub fn reset() -> CpuState {
        let mut segs = [Segment::real_mode_data(0); 6];
        segs[Seg::Cs as usize] = Segment {
            base: 0xFFFF_0000,
            ..Segment::real_mode_code(0xF000)
        };
        let mut regs = [0; 8];
        regs[EDX] = crate::x86::cpuid::SIGNATURE;
        CpuState {
            regs,
            eip: 0xFFF0,
            eflags: flags::FIXED,
            segs,
            // CD and NW set, ET set (SDM table 9-1: 60000010H).
            cr0: cr0::CD | cr0::NW | cr0::ET,
            cr2: 0,
            cr3: 0,
            cr4: 0,
            gdtr: TableReg {
                base: 0,
                limit: 0xFFFF,
            },
            idtr: TableReg {
                base: 0,
                limit: 0xFFFF,
            },
            ldtr: Segment {
                selector: 0,
                base: 0,
                limit: 0xFFFF,
                access: access::P | access::SYS_LDT,
            },
            tr: Segment {
                selector: 0,
                base: 0,
                limit: 0xFFFF,
                access: access::P | access::SYS_TSS32_BUSY,
            },
            dr: [0; 4],
            dr6: 0xFFFF_0FF0,
            dr7: 0x400,
            tsc: 0,
            sysenter_cs: 0,
            sysenter_esp: 0,
            sysenter_eip: 0,
            efer: 0,
            interrupt_shadow: false,
            halted: false,
            nmi_blocked: false,
        }
    }

    /// The state a PC BIOS leaves when it jumps to a boot sector: real mode,
    /// CS:IP = 0000:7C00, DL = boot drive 0x80, all segments 0, a stack just
    /// below the boot sector. A real BIOS jumps with IF set; ringlab has no
    /// BIOS and no interrupt vector table behind it, so IF is clear and the
    /// guest enables interrupts once it has installed its own handlers.
    pub fn boot_sector(entry: u16) -> CpuState {
        let mut s = CpuState::reset();
        s.cr0 = cr0::ET;
        for seg in Seg::ALL {
            s.segs[seg as usize] = Segment::real_mode_data(0);
        }
        s.segs[Seg::Cs as usize] = Segment::real_mode_code(0);
        s.eip = entry as u32;
        s.regs = [0; 8];
        s.regs[EDX] = 0x80;
        s.regs[ESP] = 0x7C00;
        s
    }

    /// The state a multiboot v1 loader leaves (Multiboot spec 0.6.96, 3.2
    /// "Machine state"): EAX = 0x2BADB002, EBX = info structure, flat 4 GiB
    /// code and data segments with offset 0, CR0.PE set, paging off, IF and
    /// VM clear. The GDTR is not valid for the kernel to use; ringlab points
    /// it at a small GDT that matches the caches (`gdt_base`) so that a
    /// kernel reloading segments before setting its own GDT still works.
    pub fn multiboot(entry: u32, info_addr: u32, gdt_base: u32) -> CpuState {
        let mut s = CpuState::reset();
        s.regs = [0; 8];
        s.regs[EAX] = crate::loader::MULTIBOOT_BOOTLOADER_MAGIC;
        s.regs[EBX] = info_addr;
        s.eip = entry;
        s.eflags = flags::FIXED;
        s.cr0 = cr0::PE | cr0::ET;
        s.gdtr = TableReg {
            base: gdt_base,
            limit: 3 * 8 - 1,
        };
        s.idtr = TableReg {
            base: 0,
            limit: 0x3FF,
        };
        for seg in Seg::ALL {
            s.segs[seg as usize] = Segment::flat32(0x10, false);
        }
        s.segs[Seg::Cs as usize] = Segment::flat32(0x08, true);
        s.tr.access = access::P | access::SYS_TSS32_BUSY;
        s
    }

    #[inline]
    pub fn seg(&self, s: Seg) -> &Segment {
        &self.segs[s as usize]
    }

    /// Protected mode is on (CR0.PE).
    pub fn protected(&self) -> bool {
        self.cr0 & cr0::PE != 0
    }

    /// Virtual-8086 mode (EFLAGS.VM in protected mode).
    pub fn v86(&self) -> bool {
        self.protected() && self.eflags & flags::VM != 0
    }

    /// The code size the CPU decodes with now: 32 in protected mode with a
    /// 32-bit code segment (CS.D set, SDM Vol 3A 3.4.5), else 16 (real
    /// mode, virtual-8086 mode, 16-bit code segments).
    pub fn code_bits(&self) -> u32 {
        if self.protected() && !self.v86() && self.seg(Seg::Cs).big() {
            32
        } else {
            16
        }
    }

    /// Current privilege level: CS.RPL in protected mode (SDM Vol 3A 5.5),
    /// 3 in virtual-8086 mode, 0 in real mode.
    pub fn cpl(&self) -> u8 {
        if !self.protected() {
            0
        } else if self.eflags & flags::VM != 0 {
            3
        } else {
            (self.segs[Seg::Cs as usize].selector & 3) as u8
        }
    }

    /// I/O privilege level from EFLAGS.
    pub fn iopl(&self) -> u8 {
        ((self.eflags & flags::IOPL) >> flags::IOPL_SHIFT) as u8
    }

    /// Linear address of the next instruction (CS base + EIP).
    pub fn pc_linear(&self) -> u32 {
        self.segs[Seg::Cs as usize].base.wrapping_add(self.eip)
    }

    /// A short human-readable name of the mode: "real", "v86", "prot16",
    /// "prot32", with "+paging" when CR0.PG is set.
    pub fn mode_name(&self) -> String {
        let base = if !self.protected() {
            "real"
        } else if self.v86() {
            "v86"
        } else if self.segs[Seg::Cs as usize].big() {
            "prot32"
        } else {
            "prot16"
        };
        if self.cr0 & cr0::PG != 0 {
            format!("{base}+paging")
        } else {
            base.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_state_matches_sdm_table_9_1() {
        let s = CpuState::reset();
        assert_eq!(s.pc_linear(), 0xFFFF_FFF0);
        assert_eq!(s.seg(Seg::Cs).selector, 0xF000);
        assert_eq!(s.eflags, 0x2);
        assert_eq!(s.cr0, 0x6000_0010);
        assert_eq!(s.dr6, 0xFFFF_0FF0);
        assert_eq!(s.dr7, 0x400);
        assert_eq!(s.cpl(), 0);
        assert!(!s.protected());
    }

    #[test]
    fn descriptor_round_trip() {
        // A flat 4 GiB ring-3 code descriptor as Linux and the lessons write it.
        let raw = 0x00CF_FA00_0000_FFFFu64;
        let s = Segment::from_descriptor(0x1B, raw);
        assert_eq!(s.base, 0);
        assert_eq!(s.limit, 0xFFFF_FFFF);
        assert_eq!(s.dpl(), 3);
        assert!(s.big());
        assert_eq!(s.to_descriptor(), raw);
        let tss = Segment::from_descriptor(0x28, 0x0000_8912_3456_0067);
        assert_eq!(tss.base, 0x0012_3456);
        assert_eq!(tss.limit, 0x67);
        assert_eq!(tss.access & access::TYPE_MASK, access::SYS_TSS32_AVAIL);
    }

    #[test]
    fn entry_states() {
        let b = CpuState::boot_sector(0x7C00);
        assert_eq!(b.pc_linear(), 0x7C00);
        assert_eq!(b.regs[EDX], 0x80);
        let m = CpuState::multiboot(0x100000, 0x9000, 0x500);
        assert_eq!(m.regs[EAX], 0x2BAD_B002);
        assert_eq!(m.regs[EBX], 0x9000);
        assert!(m.protected());
        assert_eq!(m.cpl(), 0);
        assert_eq!(m.mode_name(), "prot32");
        assert!(m.seg(Seg::Ds).is_flat());
    }
}
