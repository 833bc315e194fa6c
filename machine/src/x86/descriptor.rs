//! Segment descriptors, gates and TSS descriptors: the 8 bytes of a GDT,
//! LDT or IDT entry decoded into their fields (SDM Vol 3A 3.4.5, 3.5, 5.8.3,
//! 6.11, 7.2.2), and encoded back. Pure functions of the bytes: reading
//! the table, the protection checks and the accessed and busy bits are the
//! engine's.

use crate::cpu::access;

/// The type of a system descriptor (S = 0; SDM Vol 3A 3.5, table 3-2).
pub mod system {
    pub const TSS16_AVAIL: u8 = 1;
    pub const LDT: u8 = 2;
    pub const TSS16_BUSY: u8 = 3;
    pub const CALL_GATE16: u8 = 4;
    pub const TASK_GATE: u8 = 5;
    pub const INT_GATE16: u8 = 6;
    pub const TRAP_GATE16: u8 = 7;
    pub const TSS32_AVAIL: u8 = 9;
    pub const TSS32_BUSY: u8 = 11;
    pub const CALL_GATE32: u8 = 12;
    pub const INT_GATE32: u8 = 14;
    pub const TRAP_GATE32: u8 = 15;
}

/// The busy flag (B) of a TSS descriptor: bit 1 of the type, bit 1 of the
/// descriptor's byte 5 (SDM Vol 3A 7.2.2, figure 7-3).
pub const TSS_BUSY: u8 = 1 << 1;

/// The smallest limit of a 32-bit TSS (SDM Vol 3A 7.2.2: "a limit less than
/// 67H" raises #TS) and of a 16-bit TSS (44 bytes, 7.6, figure 7-11).
pub const TSS32_MIN_LIMIT: u32 = 0x67;
pub const TSS16_MIN_LIMIT: u32 = 0x2B;

/// A code, data or system descriptor, by its S flag and type (SDM Vol 3A
/// 3.4.5.1, table 3-1, and 3.5, table 3-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Data {
        expand_down: bool,
        writable: bool,
        accessed: bool,
    },
    Code {
        conforming: bool,
        readable: bool,
        accessed: bool,
    },
    /// A task-state segment (7.2.2): 16- or 32-bit, available or busy.
    Tss {
        bits32: bool,
        busy: bool,
    },
    Ldt,
    Gate {
        kind: GateKind,
        /// A 32-bit gate (false for task gates, which have no size).
        bits32: bool,
    },
    /// Types 0, 8, 10 and 13 of a system descriptor.
    Reserved,
}

impl Kind {
    /// The kind of a descriptor with S flag `s` and type `ty` (the low four
    /// bits are used): the same for a descriptor in memory and for the
    /// access rights of a segment cache ([`access`]).
    #[inline]
    pub fn of(s: bool, ty: u8) -> Kind {
        let ty = ty & 0xF;
        let bit = |n: u8| ty & (1 << n) != 0;
        if s {
            // Bit 3: code; bit 2: conforming / expand-down; bit 1: readable
            // / writable; bit 0: accessed (table 3-1).
            return if bit(3) {
                Kind::Code {
                    conforming: bit(2),
                    readable: bit(1),
                    accessed: bit(0),
                }
            } else {
                Kind::Data {
                    expand_down: bit(2),
                    writable: bit(1),
                    accessed: bit(0),
                }
            };
        }
        let gate = |kind, bits32| Kind::Gate { kind, bits32 };
        match ty {
            system::TSS16_AVAIL | system::TSS16_BUSY => Kind::Tss {
                bits32: false,
                busy: ty & TSS_BUSY != 0,
            },
            system::TSS32_AVAIL | system::TSS32_BUSY => Kind::Tss {
                bits32: true,
                busy: ty & TSS_BUSY != 0,
            },
            system::LDT => Kind::Ldt,
            system::CALL_GATE16 => gate(GateKind::Call, false),
            system::CALL_GATE32 => gate(GateKind::Call, true),
            system::TASK_GATE => gate(GateKind::Task, false),
            system::INT_GATE16 => gate(GateKind::Interrupt, false),
            system::INT_GATE32 => gate(GateKind::Interrupt, true),
            system::TRAP_GATE16 => gate(GateKind::Trap, false),
            system::TRAP_GATE32 => gate(GateKind::Trap, true),
            _ => Kind::Reserved,
        }
    }

    /// The kind of a segment cache's access rights ([`access`] layout).
    #[inline]
    pub fn of_access(ar: u32) -> Kind {
        Kind::of(ar & access::S != 0, (ar & access::TYPE_MASK) as u8)
    }
}

/// The four gates (SDM Vol 3A 5.8.3 call gates, 6.11 interrupt and trap
/// gates, 7.2.5 task gates).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GateKind {
    Call,
    Task,
    Interrupt,
    Trap,
}

/// A segment or TSS/LDT descriptor's fields (SDM Vol 3A 3.4.5, figure 3-8;
/// 7.2.2, figure 7-3 for a TSS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Descriptor {
    pub base: u32,
    /// The limit in bytes: the 20-bit field, scaled to 4 KiB units and
    /// filled with ones below when G is set (3.4.5, "G flag").
    pub limit: u32,
    /// Type (bits 11:8 of the high dword).
    pub ty: u8,
    /// S: a code or data segment (true) or a system descriptor.
    pub s: bool,
    pub dpl: u8,
    pub present: bool,
    pub avl: bool,
    /// L: 64-bit code segment (IA-32e mode only).
    pub l: bool,
    /// D/B: default operation size, stack pointer size or expand-down upper
    /// bound is 32-bit.
    pub db: bool,
    /// G: the limit counts 4 KiB units.
    pub g: bool,
}

/// The base of a segment or TSS/LDT descriptor: bits 15:0 in bits 31:16 of
/// the low dword, 23:16 in bits 7:0 and 31:24 in bits 31:24 of the high
/// dword (SDM Vol 3A 3.4.5, figure 3-8).
#[inline]
pub fn base(raw: u64) -> u32 {
    let (lo, hi) = (raw as u32, (raw >> 32) as u32);
    (lo >> 16) | ((hi & 0xFF) << 16) | (hi & 0xFF00_0000)
}

/// The limit in bytes: the 20-bit field (bits 15:0 of the low dword, 19:16
/// of the high), in 4 KiB units with the low 12 bits all ones when G (bit
/// 23 of the high dword) is set (3.4.5, "G flag").
#[inline]
pub fn limit(raw: u64) -> u32 {
    let (lo, hi) = (raw as u32, (raw >> 32) as u32);
    let field = (lo & 0xFFFF) | (hi & 0x000F_0000);
    if hi & (1 << 23) != 0 {
        (field << 12) | 0xFFF
    } else {
        field
    }
}

/// The access rights of a segment cache ([`access`]) for a descriptor:
/// its type, S, DPL and P byte (bits 15:8 of the high dword) and AVL, L,
/// D/B and G (bits 23:20) in bits 15:12.
#[inline]
pub fn access_rights(raw: u64) -> u32 {
    let hi = (raw >> 32) as u32;
    ((hi >> 8) & 0xFF) | (((hi >> 20) & 0xF) << 12)
}

impl Descriptor {
    /// Decodes a descriptor, read as a little-endian u64.
    #[inline]
    pub fn decode(raw: u64) -> Descriptor {
        Descriptor::from_cache(base(raw), limit(raw), access_rights(raw))
    }

    /// The 8 bytes of this descriptor, as a little-endian u64. With G set
    /// the limit is stored in 4 KiB units (its low 12 bits are dropped).
    pub fn encode(&self) -> u64 {
        let field = if self.g { self.limit >> 12 } else { self.limit };
        let lo = (field & 0xFFFF) | (self.base << 16);
        let hi = ((self.base >> 16) & 0xFF)
            | ((self.ty as u32 & 0xF) << 8)
            | ((self.s as u32) << 12)
            | ((self.dpl as u32 & 3) << 13)
            | ((self.present as u32) << 15)
            | (field & 0x000F_0000)
            | ((self.avl as u32) << 20)
            | ((self.l as u32) << 21)
            | ((self.db as u32) << 22)
            | ((self.g as u32) << 23)
            | (self.base & 0xFF00_0000);
        (lo as u64) | ((hi as u64) << 32)
    }

    #[inline]
    pub fn kind(&self) -> Kind {
        Kind::of(self.s, self.ty)
    }

    /// The access rights a segment cache keeps ([`access`]: the type, S,
    /// DPL and P byte, then AVL, L, D/B and G in bits 15:12), as
    /// [`access_rights`] reads them from the descriptor.
    pub fn access_rights(&self) -> u32 {
        (self.ty as u32 & access::TYPE_MASK)
            | (self.s as u32 * access::S)
            | ((self.dpl as u32 & 3) << access::DPL_SHIFT)
            | (self.present as u32 * access::P)
            | (self.avl as u32 * access::AVL)
            | (self.l as u32 * access::L)
            | (self.db as u32 * access::DB)
            | (self.g as u32 * access::G)
    }

    /// The descriptor a segment cache with this base, byte limit and access
    /// rights was loaded from (the unusable flag is not part of it).
    #[inline]
    pub fn from_cache(base: u32, limit: u32, ar: u32) -> Descriptor {
        Descriptor {
            base,
            limit,
            ty: (ar & access::TYPE_MASK) as u8,
            s: ar & access::S != 0,
            dpl: ((ar & access::DPL_MASK) >> access::DPL_SHIFT) as u8,
            present: ar & access::P != 0,
            avl: ar & access::AVL != 0,
            l: ar & access::L != 0,
            db: ar & access::DB != 0,
            g: ar & access::G != 0,
        }
    }
}

/// A call, task, interrupt or trap gate's fields (SDM Vol 3A 5.8.3, figure
/// 5-8; 6.11, figure 6-2; 7.2.5, figure 7-8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gate {
    pub kind: GateKind,
    /// A 32-bit gate: its offset has 32 bits and what it pushes is 32-bit.
    /// False for task gates.
    pub bits32: bool,
    /// The code segment selector; for a task gate the TSS selector.
    pub selector: u16,
    /// The entry point: bits 15:0 in the low dword, 31:16 in the high one
    /// for 32-bit gates. 0 for a task gate, whose offset fields are
    /// reserved.
    pub offset: u32,
    /// Call gates: the number of parameters copied to the new stack (bits
    /// 4:0 of the high dword); 0 for other gates.
    pub params: u8,
    pub dpl: u8,
    pub present: bool,
}

impl Gate {
    /// Decodes a gate; None unless the descriptor is one (S clear and a
    /// gate type, SDM Vol 3A 3.5, table 3-2).
    #[inline]
    pub fn decode(raw: u64) -> Option<Gate> {
        let d = Descriptor::decode(raw);
        let Kind::Gate { kind, bits32 } = d.kind() else {
            return None;
        };
        let lo = raw as u32;
        let hi = (raw >> 32) as u32;
        let offset = match (kind, bits32) {
            (GateKind::Task, _) => 0,
            (_, false) => lo & 0xFFFF,
            (_, true) => (lo & 0xFFFF) | (hi & 0xFFFF_0000),
        };
        Some(Gate {
            kind,
            bits32,
            selector: (lo >> 16) as u16,
            offset,
            params: if kind == GateKind::Call {
                (hi & 0x1F) as u8
            } else {
                0
            },
            dpl: d.dpl,
            present: d.present,
        })
    }

    /// The descriptor type this gate has (table 3-2).
    pub fn ty(&self) -> u8 {
        match (self.kind, self.bits32) {
            (GateKind::Task, _) => system::TASK_GATE,
            (GateKind::Call, false) => system::CALL_GATE16,
            (GateKind::Call, true) => system::CALL_GATE32,
            (GateKind::Interrupt, false) => system::INT_GATE16,
            (GateKind::Interrupt, true) => system::INT_GATE32,
            (GateKind::Trap, false) => system::TRAP_GATE16,
            (GateKind::Trap, true) => system::TRAP_GATE32,
        }
    }

    /// The 8 bytes of this gate, as a little-endian u64.
    pub fn encode(&self) -> u64 {
        let lo = (self.offset & 0xFFFF) | ((self.selector as u32) << 16);
        let hi = (self.offset & 0xFFFF_0000)
            | ((self.ty() as u32) << 8)
            | ((self.dpl as u32 & 3) << 13)
            | ((self.present as u32) << 15)
            | (self.params as u32 & 0x1F);
        (lo as u64) | ((hi as u64) << 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_field_of_a_flat_ring3_code_descriptor() {
        // As Linux and the lessons write it: base 0, limit FFFFF pages, G,
        // D, P, DPL 3, S, type A (execute/read).
        let raw = 0x00CF_FA00_0000_FFFFu64;
        let d = Descriptor::decode(raw);
        assert_eq!(
            d,
            Descriptor {
                base: 0,
                limit: 0xFFFF_FFFF,
                ty: 0xA,
                s: true,
                dpl: 3,
                present: true,
                avl: false,
                l: false,
                db: true,
                g: true,
            }
        );
        assert_eq!(
            d.kind(),
            Kind::Code {
                conforming: false,
                readable: true,
                accessed: false
            }
        );
        assert_eq!(
            d.access_rights(),
            0xA | access::S | (3 << 5) | access::P | access::DB | access::G
        );
        assert_eq!(access_rights(raw), d.access_rights());
        assert_eq!((base(raw), limit(raw)), (0, 0xFFFF_FFFF));
        assert_eq!(d.encode(), raw);
        assert_eq!(
            Descriptor::from_cache(d.base, d.limit, d.access_rights()),
            d
        );
    }

    #[test]
    fn decodes_scattered_base_and_limit_bits() {
        // Base 0xAB12_3456 in three pieces, byte-granular limit 0x5_4321,
        // AVL and L set, P clear, DPL 2, expand-down writable data.
        let raw = 0xAB35_5612_3456_4321u64;
        let d = Descriptor::decode(raw);
        assert_eq!(d.base, 0xAB12_3456);
        assert_eq!(d.limit, 0x5_4321);
        assert_eq!((d.ty, d.s, d.dpl, d.present), (6, true, 2, false));
        assert_eq!((d.avl, d.l, d.db, d.g), (true, true, false, false));
        assert_eq!(access_rights(raw), d.access_rights());
        assert_eq!(
            d.kind(),
            Kind::Data {
                expand_down: true,
                writable: true,
                accessed: false
            }
        );
        assert_eq!(d.encode(), raw);
        // G set: the limit counts 4 KiB units.
        let d = Descriptor::decode(raw | (1 << 55));
        assert_eq!(d.limit, 0x5432_1FFF);
        assert_eq!(d.encode(), raw | (1 << 55));
    }

    #[test]
    fn decodes_tss_and_ldt_descriptors() {
        // A 32-bit available TSS at 0x0012_3456, limit 0x67 (SDM 7.2.2).
        let d = Descriptor::decode(0x0000_8912_3456_0067);
        assert_eq!(d.base, 0x0012_3456);
        assert_eq!(d.limit, TSS32_MIN_LIMIT);
        assert_eq!(
            (d.ty, d.s, d.dpl, d.present),
            (system::TSS32_AVAIL, false, 0, true)
        );
        assert_eq!(
            d.kind(),
            Kind::Tss {
                bits32: true,
                busy: false
            }
        );
        assert_eq!(
            Kind::of(false, system::TSS32_AVAIL | TSS_BUSY),
            Kind::Tss {
                bits32: true,
                busy: true
            }
        );
        assert_eq!(
            Kind::of(false, system::TSS16_BUSY),
            Kind::Tss {
                bits32: false,
                busy: true
            }
        );
        assert_eq!(Kind::of(false, system::LDT), Kind::Ldt);
        for reserved in [0, 8, 10, 13] {
            assert_eq!(Kind::of(false, reserved), Kind::Reserved);
        }
        assert_eq!(
            Kind::of_access(access::P | system::TSS16_AVAIL as u32),
            Kind::Tss {
                bits32: false,
                busy: false
            }
        );
    }

    #[test]
    fn decodes_interrupt_trap_call_and_task_gates() {
        // 32-bit interrupt gate, DPL 3, present, to 0008:C010_2030.
        let raw = 0xC010_EE00_0008_2030u64;
        assert_eq!(
            Gate::decode(raw),
            Some(Gate {
                kind: GateKind::Interrupt,
                bits32: true,
                selector: 0x08,
                offset: 0xC010_2030,
                params: 0,
                dpl: 3,
                present: true,
            })
        );
        assert_eq!(Gate::decode(raw).unwrap().encode(), raw);
        // 16-bit trap gate: the high offset bits are not used.
        let g = Gate::decode(0xFFFF_8700_0010_1234).unwrap();
        assert_eq!(
            (g.kind, g.bits32, g.selector, g.offset, g.dpl),
            (GateKind::Trap, false, 0x10, 0x1234, 0)
        );
        // 32-bit call gate with 5 parameters (bits 4:0), DPL 3, not present.
        let g = Gate::decode(0x0040_6C05_001B_0100).unwrap();
        assert_eq!(
            g,
            Gate {
                kind: GateKind::Call,
                bits32: true,
                selector: 0x1B,
                offset: 0x0040_0100,
                params: 5,
                dpl: 3,
                present: false,
            }
        );
        assert_eq!(g.encode(), 0x0040_6C05_001B_0100);
        // Task gate: the TSS selector; the offset fields are reserved.
        let g = Gate::decode(0xFFFF_E500_0028_FFFF).unwrap();
        assert_eq!(
            (g.kind, g.selector, g.offset, g.params, g.dpl),
            (GateKind::Task, 0x28, 0, 0, 3)
        );
        assert_eq!(g.ty(), system::TASK_GATE);
        // Not gates: a TSS, a code segment with a gate's type bits.
        assert_eq!(Gate::decode(0x0000_8912_3456_0067), None);
        assert_eq!(Gate::decode(0x0000_9C00_0000_FFFF), None);
    }
}
