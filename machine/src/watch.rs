//! Data watchpoints: what a debugger (gdb's `watch`, `rwatch`, `awatch`)
//! asks the engines to stop on.
//!
//! As the x86's own data breakpoints (SDM Vol 3A 17.2.4, 17.3.1.2), a
//! watchpoint names a range of *linear* addresses and the kind of access,
//! and it is a trap: the instruction that made the access completes (its
//! write is in memory, its registers are updated) and the engine stops
//! after it with `Stop::Watchpoint`, the next instruction not yet run. A
//! REP string instruction stops after the iteration that hit (its
//! registers then say where it will go on), as a data breakpoint does.
//!
//! The engines read the set from the machine (`Machine::watchpoints`) and
//! learn that it changed from `Machine::mapping_generation`, which moves
//! with it: pages holding a watched range must not stay in a TLB that
//! would let an access bypass the check.

/// Which accesses hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum WatchKind {
    /// Writes (gdb's `watch`). A write of the value already there hits
    /// too, as on hardware.
    Write,
    /// Reads (gdb's `rwatch`).
    Read,
    /// Reads and writes (gdb's `awatch`).
    Access,
}

impl WatchKind {
    /// Whether an access that writes (`write`) or reads hits.
    #[inline]
    pub fn hits(self, write: bool) -> bool {
        match self {
            WatchKind::Write => write,
            WatchKind::Read => !write,
            WatchKind::Access => true,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            WatchKind::Write => "write",
            WatchKind::Read => "read",
            WatchKind::Access => "access",
        }
    }
}

/// One watched range of linear addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Watchpoint {
    /// The first linear address watched.
    pub addr: u32,
    /// How many bytes from `addr` (at least 1).
    pub len: u32,
    pub kind: WatchKind,
}

impl Watchpoint {
    /// Whether an access of `size` bytes at linear `addr` overlaps this
    /// range (wrapping at 4 GiB as linear addresses do).
    #[inline]
    pub fn overlaps(&self, addr: u32, size: u32) -> bool {
        let a = addr as u64;
        let (s, e) = (self.addr as u64, self.addr as u64 + self.len.max(1) as u64);
        let end = a + size.max(1) as u64;
        // An access crossing 4 GiB is checked in two pieces.
        if end > 1 << 32 {
            return self.overlaps(addr, ((1u64 << 32) - a) as u32)
                || self.overlaps(0, (end - (1 << 32)) as u32);
        }
        a < e && s < end
    }

    /// Whether the range touches the 4 KiB linear page `page` (an address
    /// with the low 12 bits clear).
    #[inline]
    pub fn on_page(&self, page: u32) -> bool {
        self.overlaps(page & !0xFFF, 0x1000)
    }
}

/// The first of `set` that an access of `size` bytes at `addr` hits.
#[inline]
pub fn hit(set: &[Watchpoint], addr: u32, size: u32, write: bool) -> Option<Watchpoint> {
    set.iter()
        .find(|w| w.kind.hits(write) && w.overlaps(addr, size))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_kinds_and_pages() {
        let w = Watchpoint {
            addr: 0x1002,
            len: 4,
            kind: WatchKind::Write,
        };
        assert!(w.overlaps(0x1000, 4), "the last two bytes of a dword");
        assert!(w.overlaps(0x1005, 1));
        assert!(!w.overlaps(0x1006, 2));
        assert!(!w.overlaps(0x0FFE, 4), "ends just before");
        assert!(w.on_page(0x1000) && !w.on_page(0x2000) && !w.on_page(0));
        assert_eq!(hit(&[w], 0x1003, 1, true), Some(w));
        assert_eq!(hit(&[w], 0x1003, 1, false), None, "a read of a write watch");
        let r = Watchpoint {
            kind: WatchKind::Read,
            ..w
        };
        let a = Watchpoint {
            kind: WatchKind::Access,
            ..w
        };
        assert_eq!(hit(&[r, a], 0x1003, 1, true), Some(a));
        assert_eq!(hit(&[r, a], 0x1003, 1, false), Some(r));
        // Wrapping at 4 GiB.
        let top = Watchpoint {
            addr: 0,
            len: 1,
            kind: WatchKind::Access,
        };
        assert!(top.overlaps(0xFFFF_FFFE, 4));
        assert!(!top.overlaps(0xFFFF_FFFC, 4));
        let zero_len = Watchpoint { len: 0, ..w };
        assert!(
            zero_len.overlaps(0x1002, 1),
            "a zero length watches one byte"
        );
    }
}
