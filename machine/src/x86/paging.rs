//! The 32-bit page walk (SDM Vol 3A 4.3), without side effects.
//!
//! The walk reads the page directory and the page table through a closure
//! that returns the dword at a physical address, and writes nothing: it
//! says which accessed and dirty bits the access would set (SDM Vol 3A 4.8)
//! and leaves writing them to the caller. The interpreter calls it on a TLB
//! miss and then sets them; the inspector, KVM's diagnostics and a debugger
//! call it to look at the guest without changing it.
//!
//! What is modelled, the same on every caller: 4 KiB pages, and 4 MiB pages
//! when CR4.PSE is set (SDM Vol 3A 4.3, table 4-4; CPUID.1:EDX.PSE is set,
//! see [`super::cpuid`]). Not modelled: PAE and PSE-36, reserved-bit checks
//! (so no error code has RSVD set), PCD/PWT caching, SMEP/SMAP and NX.

use crate::cpu::{cr0, cr4, CpuState};
use crate::Machine;

/// Page-directory and page-table entry bits (SDM Vol 3A 4.3, tables 4-4 to
/// 4-6).
pub mod pte {
    /// Present.
    pub const P: u32 = 1 << 0;
    /// Read/write: writes allowed (SDM Vol 3A 4.6).
    pub const RW: u32 = 1 << 1;
    /// User/supervisor: user-mode accesses allowed (SDM Vol 3A 4.6).
    pub const US: u32 = 1 << 2;
    /// Accessed (SDM Vol 3A 4.8).
    pub const A: u32 = 1 << 5;
    /// Dirty, in the entry that maps a page (SDM Vol 3A 4.8).
    pub const D: u32 = 1 << 6;
    /// Page size: in a PDE with CR4.PSE set, the entry maps a 4 MiB page.
    pub const PS: u32 = 1 << 7;
    /// Global, in the entry that maps a page, with CR4.PGE set (SDM Vol 3A
    /// 4.10.2.4).
    pub const G: u32 = 1 << 8;
    /// The page frame of a 4 KiB page, or the page table a PDE names.
    pub const FRAME: u32 = 0xFFFF_F000;
    /// The frame of a 4 MiB page (bits 31:22 of a PDE with PS set).
    pub const LARGE_FRAME: u32 = 0xFFC0_0000;
}

/// Page-fault error code bits (SDM Vol 3A 4.7, figure 4-12).
pub mod pf {
    /// 0: the page was not present; 1: a protection violation.
    pub const P: u32 = 1 << 0;
    /// The access was a write.
    pub const W: u32 = 1 << 1;
    /// The access was made in user mode (CPL 3).
    pub const U: u32 = 1 << 2;
}

/// Bytes in a page (4 KiB) and in a large page (4 MiB, with CR4.PSE).
pub const PAGE_SIZE: u32 = 1 << 12;
pub const LARGE_PAGE_SIZE: u32 = 1 << 22;

/// What an access does, for the rights checks (SDM Vol 3A 4.6). With
/// 32-bit paging and no NX, an instruction fetch is checked as a read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Exec,
}

/// The control registers the walk depends on: CR0 (PG, WP), CR3 (the page
/// directory) and CR4 (PSE, PGE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Regs {
    pub cr0: u32,
    pub cr3: u32,
    pub cr4: u32,
}

impl Regs {
    /// The paging registers of a CPU state.
    pub fn of(st: &CpuState) -> Regs {
        Regs {
            cr0: st.cr0,
            cr3: st.cr3,
            cr4: st.cr4,
        }
    }

    /// Paging is on (CR0.PG; SDM Vol 3A 4.1.1).
    pub fn paging(&self) -> bool {
        self.cr0 & cr0::PG != 0
    }
}

/// One paging-structure entry: where it is and what it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Physical address of the entry.
    pub addr: u32,
    pub value: u32,
}

impl Entry {
    pub fn present(&self) -> bool {
        self.value & pte::P != 0
    }
}

/// The level of the paging structures an entry is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Directory,
    Table,
}

/// The walk stopped at a not-present entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotPresent {
    pub level: Level,
    pub entry: Entry,
}

/// A page fault: the error code the CPU pushes (SDM Vol 3A 4.7). The
/// faulting linear address, which goes to CR2, is the caller's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageFault {
    pub code: u32,
}

impl PageFault {
    /// The error code for an access (SDM Vol 3A 4.7): P says whether a
    /// present page refused it (else the page was not present), W that it
    /// was a write, U that it was made in user mode.
    #[inline]
    pub fn new(present: bool, access: Access, user: bool) -> PageFault {
        PageFault {
            code: (present as u32 * pf::P)
                | ((access == Access::Write) as u32 * pf::W)
                | (user as u32 * pf::U),
        }
    }

    /// The page was present (a protection violation).
    pub fn protection(&self) -> bool {
        self.code & pf::P != 0
    }
}

/// A completed walk: where a linear address goes and the entries that took
/// it there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Walk {
    /// The physical address the linear address maps to.
    pub phys: u32,
    /// The page-directory entry.
    pub pde: Entry,
    /// The entry that maps the page: the page-table entry, or for a 4 MiB
    /// page the PDE itself.
    pub leaf: Entry,
    /// A 4 MiB page (a PDE with PS set and CR4.PSE): no page table.
    pub large: bool,
}

impl Walk {
    /// The page-table entry; None for a 4 MiB page, which the PDE maps.
    pub fn pte(&self) -> Option<Entry> {
        (!self.large).then_some(self.leaf)
    }

    /// The bits of the entries the walk went through, ANDed: the rights
    /// are those every level grants (SDM Vol 3A 4.6.1).
    #[inline]
    fn rights(&self) -> u32 {
        self.pde.value & self.leaf.value
    }

    /// User-mode accesses are allowed: U/S set at every level (SDM Vol 3A
    /// 4.6.1).
    #[inline]
    pub fn user(&self) -> bool {
        self.rights() & pte::US != 0
    }

    /// R/W set at every level.
    #[inline]
    pub fn writable(&self) -> bool {
        self.rights() & pte::RW != 0
    }

    /// A write may go to the page (SDM Vol 3A 4.6.1): user-mode writes need
    /// R/W at every level (and U/S, checked apart); supervisor-mode writes
    /// need it only when CR0.WP is set.
    #[inline]
    pub fn can_write(&self, user: bool, cr0: u32) -> bool {
        self.writable() || (!user && cr0 & cr0::WP == 0)
    }

    /// Checks an access against the page's rights (SDM Vol 3A 4.6.1): a
    /// user-mode access needs U/S, a write needs [`Walk::can_write`].
    #[inline]
    pub fn check(&self, access: Access, user: bool, cr0: u32) -> Result<(), PageFault> {
        if (user && !self.user()) || (access == Access::Write && !self.can_write(user, cr0)) {
            return Err(PageFault::new(true, access, user));
        }
        Ok(())
    }

    /// The page is global: G in the entry that maps it, with CR4.PGE (SDM
    /// Vol 3A 4.10.2.4); its TLB entries survive a CR3 load.
    #[inline]
    pub fn global(&self, cr4: u32) -> bool {
        self.leaf.value & pte::G != 0 && cr4 & cr4::PGE != 0
    }

    /// The page's dirty bit once the access is done (SDM Vol 3A 4.8: a
    /// write sets it).
    #[inline]
    pub fn dirty_after(&self, access: Access) -> bool {
        self.leaf.value & pte::D != 0 || access == Access::Write
    }

    /// The writes the CPU makes for an access that passed [`Walk::check`],
    /// in order: the PDE's accessed bit when it names a page table, then
    /// the mapping entry's accessed bit and, for a write, its dirty bit
    /// (SDM Vol 3A 4.8). None where the bits are already set. Each holds
    /// the entry's address and its new value, computed from the value the
    /// walk read.
    #[inline]
    pub fn accessed_dirty(&self, access: Access) -> [Option<Entry>; 2] {
        let pde = (!self.large && self.pde.value & pte::A == 0).then_some(Entry {
            addr: self.pde.addr,
            value: self.pde.value | pte::A,
        });
        let leaf = self.leaf;
        let mut value = leaf.value | pte::A;
        if access == Access::Write {
            value |= pte::D;
        }
        let leaf = (value != leaf.value).then_some(Entry {
            addr: leaf.addr,
            value,
        });
        [pde, leaf]
    }
}

/// Walks the paging structures for linear `lin` (SDM Vol 3A 4.3), with
/// paging on: the page directory at CR3, then the page table the PDE names,
/// or a 4 MiB page when the PDE has PS set and CR4.PSE is on. `read` gives
/// the dword at a physical address. Reads at most two entries, writes
/// nothing, checks no rights.
#[inline]
pub fn walk(
    cr3: u32,
    cr4: u32,
    lin: u32,
    mut read: impl FnMut(u32) -> u32,
) -> Result<Walk, NotPresent> {
    // Bits 31:22 of the linear address select the PDE, 21:12 the PTE
    // (SDM Vol 3A 4.3, figure 4-2).
    let addr = (cr3 & pte::FRAME) | ((lin >> 22) << 2);
    let pde = Entry {
        addr,
        value: read(addr),
    };
    if !pde.present() {
        return Err(NotPresent {
            level: Level::Directory,
            entry: pde,
        });
    }
    if pde.value & pte::PS != 0 && cr4 & cr4::PSE != 0 {
        // A 4 MiB page: bits 21:0 of the address are the offset (figure 4-3).
        return Ok(Walk {
            phys: (pde.value & pte::LARGE_FRAME) | (lin & (LARGE_PAGE_SIZE - 1)),
            pde,
            leaf: pde,
            large: true,
        });
    }
    let addr = (pde.value & pte::FRAME) | (((lin >> 12) & 0x3FF) << 2);
    let pte = Entry {
        addr,
        value: read(addr),
    };
    if !pte.present() {
        return Err(NotPresent {
            level: Level::Table,
            entry: pte,
        });
    }
    Ok(Walk {
        phys: (pte.value & pte::FRAME) | (lin & (PAGE_SIZE - 1)),
        pde,
        leaf: pte,
        large: false,
    })
}

/// Translates `lin` for an access as the CPU does with paging on: the walk,
/// then the rights (SDM Vol 3A 4.6), or the page fault it raises (4.7).
/// `user` is true for accesses made at CPL 3 (not for the implicit
/// supervisor accesses to descriptor tables and the TSS, SDM Vol 3A 4.6).
/// The caller sets the bits [`Walk::accessed_dirty`] names.
#[inline]
pub fn translate(
    regs: Regs,
    lin: u32,
    access: Access,
    user: bool,
    read: impl FnMut(u32) -> u32,
) -> Result<Walk, PageFault> {
    let w = walk(regs.cr3, regs.cr4, lin, read).map_err(|_| PageFault::new(false, access, user))?;
    w.check(access, user, regs.cr0)?;
    Ok(w)
}

/// The physical address of `lin`, paging on or off (with CR0.PG clear a
/// linear address is physical), without rights checks: what an inspector
/// or a debugger wants. None when the page is not present.
pub fn linear_to_phys(regs: Regs, lin: u32, read: impl FnMut(u32) -> u32) -> Option<u32> {
    if !regs.paging() {
        return Some(lin);
    }
    walk(regs.cr3, regs.cr4, lin, read).ok().map(|w| w.phys)
}

/// Reads up to `buf.len()` bytes at linear `lin` into `buf`, a page at a
/// time, and returns how many it read: it stops at the first page that is
/// not present or the first byte `read_u8` has not got (outside memory).
/// `read_u32` gives the dword at a physical address for the walk (return 0,
/// not present, where there is nothing to read). Changes nothing: this is
/// how to read guest code at EIP on any engine.
pub fn read_linear(
    regs: Regs,
    lin: u32,
    buf: &mut [u8],
    mut read_u32: impl FnMut(u32) -> u32,
    mut read_u8: impl FnMut(u32) -> Option<u8>,
) -> usize {
    let mut n = 0;
    while n < buf.len() {
        let at = lin.wrapping_add(n as u32);
        let Some(phys) = linear_to_phys(regs, at, &mut read_u32) else {
            break;
        };
        let in_page = (PAGE_SIZE - (at & (PAGE_SIZE - 1))) as usize;
        for k in 0..in_page.min(buf.len() - n) {
            let Some(b) = read_u8(phys.wrapping_add(k as u32)) else {
                return n;
            };
            buf[n] = b;
            n += 1;
        }
    }
    n
}

// ---- on a machine -----------------------------------------------------------

/// The walk's reader over a machine's RAM, for looking without touching: the
/// dword at a physical address with the A20 mask applied, and 0 (not
/// present) outside RAM. It reads no device, so no MMIO read happens.
pub fn ram_reader(m: &Machine) -> impl Fn(u32) -> u32 + '_ {
    let a20 = m.a20_mask();
    move |a| m.mem.read_u32((a & a20) as u64).unwrap_or(0)
}

/// [`read_linear`] over a machine's RAM and ROM as the CPU with `regs` sees
/// them, with no side effect (no accessed bits, no device reads): how an
/// inspector, KVM's diagnostics or a debugger read the guest's code at its
/// EIP, paging on or off.
pub fn peek_linear(m: &Machine, regs: Regs, lin: u32, buf: &mut [u8]) -> usize {
    read_linear(regs, lin, buf, ram_reader(m), |p| m.peek_phys(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Physical memory as a sparse map of dwords; absent dwords read 0.
    #[derive(Default)]
    struct Phys(HashMap<u32, u32>);

    impl Phys {
        fn set(&mut self, addr: u32, v: u32) {
            self.0.insert(addr, v);
        }
        fn read(&self) -> impl FnMut(u32) -> u32 + '_ {
            |a| self.0.get(&a).copied().unwrap_or(0)
        }
    }

    const PD: u32 = 0x1_0000;
    const PT: u32 = 0x1_1000;
    const P: u32 = pte::P;
    const RW: u32 = pte::RW;
    const US: u32 = pte::US;

    /// Linear 0x0040_3000 through PD[1] and PT[3], with the given flags on
    /// each, to physical page 0x2_0000.
    fn small(pde_flags: u32, pte_flags: u32) -> Phys {
        let mut m = Phys::default();
        m.set(PD + 4, PT | pde_flags);
        m.set(PT + 3 * 4, 0x2_0000 | pte_flags);
        m
    }

    const LIN: u32 = 0x0040_3123;
    const NO_WP: u32 = cr0::PG | cr0::PE;
    const WP: u32 = NO_WP | cr0::WP;

    fn regs(cr0: u32, cr4: u32) -> Regs {
        Regs { cr0, cr3: PD, cr4 }
    }

    #[test]
    fn walks_a_4k_page_through_both_levels() {
        let m = small(P | RW | US, P | RW | US | pte::A);
        let w = walk(PD | 0xFFF, 0, LIN, m.read()).unwrap();
        assert_eq!(w.phys, 0x2_0123);
        assert_eq!(
            w.pde,
            Entry {
                addr: PD + 4,
                value: PT | P | RW | US
            }
        );
        assert_eq!(
            w.pte(),
            Some(Entry {
                addr: PT + 12,
                value: 0x2_0000 | P | RW | US | pte::A
            })
        );
        assert!(!w.large);
        assert_eq!(w.leaf, w.pte().unwrap());
        assert!(w.user() && w.writable());
    }

    #[test]
    fn not_present_at_each_level() {
        let m = small(RW | US, P | RW | US);
        assert_eq!(
            walk(PD, 0, LIN, m.read()),
            Err(NotPresent {
                level: Level::Directory,
                entry: Entry {
                    addr: PD + 4,
                    value: PT | RW | US
                }
            })
        );
        let m = small(P | RW | US, RW | US);
        assert_eq!(
            walk(PD, 0, LIN, m.read()),
            Err(NotPresent {
                level: Level::Table,
                entry: Entry {
                    addr: PT + 12,
                    value: 0x2_0000 | RW | US
                }
            })
        );
        // Not present: P clear in the error code, W and U as the access.
        for (access, user, code) in [
            (Access::Read, false, 0),
            (Access::Write, false, pf::W),
            (Access::Exec, true, pf::U),
            (Access::Write, true, pf::W | pf::U),
        ] {
            let r = translate(regs(WP, 0), LIN, access, user, m.read());
            assert_eq!(r, Err(PageFault { code }), "{access:?} user {user}");
            assert!(!PageFault { code }.protection());
        }
        // An empty directory: every address faults at the first level.
        let empty = Phys::default();
        assert_eq!(
            walk(PD, 0, 0xFFFF_FFFF, empty.read())
                .unwrap_err()
                .entry
                .addr,
            PD + 0xFFC
        );
    }

    /// Every U/S and R/W combination in the PDE and PTE, user and
    /// supervisor, read and write, CR0.WP clear and set, against SDM Vol 3A
    /// 4.6.1: the rights are the AND of both levels; a user access needs
    /// U/S, a user write R/W too; a supervisor read always succeeds, a
    /// supervisor write needs R/W only with CR0.WP set.
    #[test]
    fn rights_combine_both_levels_per_sdm_4_6() {
        for bits in 0..16u32 {
            let pde_f = P | if bits & 1 != 0 { US } else { 0 } | if bits & 2 != 0 { RW } else { 0 };
            let pte_f = P | if bits & 4 != 0 { US } else { 0 } | if bits & 8 != 0 { RW } else { 0 };
            let m = small(pde_f, pte_f);
            let us = bits & 1 != 0 && bits & 4 != 0;
            let rw = bits & 2 != 0 && bits & 8 != 0;
            for cr0 in [NO_WP, WP] {
                for user in [false, true] {
                    for access in [Access::Read, Access::Exec, Access::Write] {
                        let write = access == Access::Write;
                        let allowed = match (user, write) {
                            (true, false) => us,
                            (true, true) => us && rw,
                            (false, false) => true,
                            (false, true) => rw || cr0 & cr0::WP == 0,
                        };
                        let r = translate(regs(cr0, 0), LIN, access, user, m.read());
                        let what = format!(
                            "pde {pde_f:#x} pte {pte_f:#x} cr0 {cr0:#x} user {user} {access:?}"
                        );
                        if allowed {
                            assert_eq!(r.map(|w| w.phys), Ok(0x2_0123), "{what}");
                        } else {
                            let code = pf::P | (write as u32 * pf::W) | (user as u32 * pf::U);
                            assert_eq!(r, Err(PageFault { code }), "{what}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn writability_with_and_without_cr0_wp() {
        let w = walk(PD, 0, LIN, small(P | US, P | US | RW).read()).unwrap();
        assert!(!w.writable());
        assert!(w.can_write(false, NO_WP));
        assert!(!w.can_write(false, WP));
        assert!(!w.can_write(true, NO_WP));
        let w = walk(PD, 0, LIN, small(P | RW, P | RW).read()).unwrap();
        assert!(w.writable() && !w.user());
        assert!(w.can_write(true, WP), "R/W alone; U/S is checked apart");
        assert_eq!(
            w.check(Access::Read, true, WP),
            Err(PageFault {
                code: pf::P | pf::U
            })
        );
    }

    #[test]
    fn pse_maps_4m_pages_only_with_cr4_pse() {
        let mut m = Phys::default();
        // PD[2] (linear 0x0080_0000) with PS: a 4 MiB page at 0x0040_0000
        // with PSE on; with PSE off a page table at 0x0040_0000 (empty).
        let pde = 0x0040_0000 | pte::PS | pte::G | pte::D | P | RW | US;
        m.set(PD + 8, pde);
        let lin = 0x00BF_FFFF;
        assert_eq!(
            walk(PD, 0, lin, m.read()),
            Err(NotPresent {
                level: Level::Table,
                entry: Entry {
                    addr: 0x0040_0000 + 0x3FF * 4,
                    value: 0
                }
            })
        );
        let w = walk(PD, cr4::PSE, lin, m.read()).unwrap();
        assert_eq!(w.phys, 0x007F_FFFF);
        assert!(w.large);
        assert_eq!(w.pte(), None);
        assert_eq!(
            w.leaf,
            Entry {
                addr: PD + 8,
                value: pde
            }
        );
        // Bits 21:12 of a 4 MiB PDE are not part of the frame.
        m.set(PD + 8, pde | 0x003F_E000);
        assert_eq!(
            walk(PD, cr4::PSE, 0x0080_0010, m.read()).unwrap().phys,
            0x0040_0010
        );
        // G counts only with CR4.PGE.
        assert!(!w.global(cr4::PSE));
        assert!(w.global(cr4::PSE | cr4::PGE));
        // A 4 MiB page sets A (D is set already) in the PDE itself, once.
        assert_eq!(
            w.accessed_dirty(Access::Write),
            [
                None,
                Some(Entry {
                    addr: PD + 8,
                    value: pde | pte::A
                })
            ]
        );
        // The rights are the PDE's alone.
        let ro = 0x0040_0000 | pte::PS | P | US;
        m.set(PD + 8, ro);
        assert_eq!(
            translate(regs(WP, cr4::PSE), lin, Access::Write, true, m.read()),
            Err(PageFault {
                code: pf::P | pf::W | pf::U
            })
        );
    }

    #[test]
    fn accessed_and_dirty_bits_to_set_per_sdm_4_8() {
        let m = small(P | RW | US, P | RW | US);
        let w = walk(PD, 0, LIN, m.read()).unwrap();
        assert_eq!(
            w.accessed_dirty(Access::Read),
            [
                Some(Entry {
                    addr: PD + 4,
                    value: PT | P | RW | US | pte::A
                }),
                Some(Entry {
                    addr: PT + 12,
                    value: 0x2_0000 | P | RW | US | pte::A
                })
            ]
        );
        assert!(!w.dirty_after(Access::Read));
        assert!(w.dirty_after(Access::Write));
        assert_eq!(
            w.accessed_dirty(Access::Write)[1],
            Some(Entry {
                addr: PT + 12,
                value: 0x2_0000 | P | RW | US | pte::A | pte::D
            })
        );
        // Bits already set: nothing to write. G in a PDE naming a page
        // table is ignored (4.10.2.4).
        let m = small(P | RW | pte::A | pte::G, P | RW | pte::A | pte::D);
        let w = walk(PD, 0, LIN, m.read()).unwrap();
        assert_eq!(w.accessed_dirty(Access::Write), [None, None]);
        assert!(w.dirty_after(Access::Read));
        assert!(!w.global(cr4::PGE));
        // A clean page read: A set, D not.
        let m = small(P | pte::A, P | pte::A | pte::G);
        let w = walk(PD, 0, LIN, m.read()).unwrap();
        assert_eq!(w.accessed_dirty(Access::Exec), [None, None]);
        assert!(w.global(cr4::PGE));
    }

    #[test]
    fn reads_linear_bytes_across_pages_and_stops_at_a_hole() {
        // Linear 0x0040_3000 -> 0x2_0000, 0x0040_4000 -> 0x5_0000,
        // 0x0040_5000 not present. Bytes read as the low byte of their
        // physical address.
        let mut m = small(P | RW, P | RW);
        m.set(PT + 4 * 4, 0x5_0000 | P);
        let byte = |a: u32| (a < 0x10_0000).then_some(a as u8);
        let r = regs(WP, 0);
        let mut buf = [0u8; 4];
        assert_eq!(read_linear(r, 0x0040_3FFE, &mut buf, m.read(), byte), 4);
        assert_eq!(buf, [0xFE, 0xFF, 0x00, 0x01]);
        let mut buf = [0u8; 8];
        assert_eq!(read_linear(r, 0x0040_4FFC, &mut buf, m.read(), byte), 4);
        assert_eq!(&buf[..4], &[0xFC, 0xFD, 0xFE, 0xFF]);
        // Paging off: linear is physical; the reader's end stops it.
        let off = Regs { cr0: cr0::PE, ..r };
        let mut buf = [0u8; 3];
        assert_eq!(read_linear(off, 0xF_FFFE, &mut buf, m.read(), byte), 2);
        assert_eq!(&buf[..2], &[0xFE, 0xFF]);
        assert_eq!(
            linear_to_phys(off, 0x1234_5678, m.read()),
            Some(0x1234_5678)
        );
        assert_eq!(linear_to_phys(r, 0x0040_5000, m.read()), None);
        assert_eq!(linear_to_phys(r, 0x0040_4ABC, m.read()), Some(0x5_0ABC));
    }

    #[test]
    fn peeks_a_machines_memory_through_its_tables_with_a20_and_changes_nothing() {
        use crate::MachineConfig;
        let mut m = Machine::new(MachineConfig::with_ram(4 << 20)).unwrap();
        // The directory at 0x1_0000 and table at 0x1_1000 map linear
        // 0x0040_3000 to physical 0x10_2000 (just above 1 MiB).
        m.mem.write_u32(0x1_0000 + 4, 0x1_1000 | P).unwrap();
        m.mem.write_u32(0x1_1000 + 3 * 4, 0x10_2000 | P).unwrap();
        m.mem.write(0x10_2000, b"above").unwrap();
        m.mem.write(0x00_2000, b"below").unwrap();
        let r = regs(WP, 0);
        let mut buf = [0u8; 5];
        assert_eq!(peek_linear(&m, r, 0x0040_3000, &mut buf), 5);
        assert_eq!(&buf, b"above");
        // A20 off (port 0x92 bit 1): physical bit 20 is forced to 0, for
        // the page the walk lands on as for the tables.
        m.io_write(0x92, 1, 0x00);
        assert_eq!(peek_linear(&m, r, 0x0040_3000, &mut buf), 5);
        assert_eq!(&buf, b"below");
        // Not present, and past the end of RAM with paging off.
        assert_eq!(peek_linear(&m, r, 0x0040_4000, &mut buf), 0);
        let off = Regs { cr0: 0, ..r };
        assert_eq!(peek_linear(&m, off, (4 << 20) - 2, &mut buf), 2);
        // No accessed bits were set.
        assert_eq!(m.mem.read_u32(0x1_0000 + 4), Some(0x1_1000 | P));
        assert_eq!(m.mem.read_u32(0x1_1000 + 12), Some(0x10_2000 | P));
    }
}
