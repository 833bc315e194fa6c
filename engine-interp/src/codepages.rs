//! Code pages: the bookkeeping of guest pages that hold cached code, the
//! interpreter's decoded blocks or the translator's translations. Both
//! engines mark code here (`Cpu::mark_code`) so a guest write to it is seen
//! (the TLB sends such writes down the slow path, and `GuestMemory` notes
//! the written page), and both learn here which pages were written
//! (`Interp::take_stale_code_pages`, for the translator; `Interp`'s own run
//! loop calls `invalidate_written`).

use crate::cpu::Cpu;
use crate::Interp;
use machine::Machine;

/// The 64-byte chunks of a page that `[off, off + len)` touches.
#[inline]
pub(crate) fn chunk_mask(off: u32, len: u32) -> u64 {
    let first = off / 64;
    let last = (off + len.max(1) - 1).min(0xFFF) / 64;
    let n = last - first + 1;
    let bits = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
    bits << first
}

impl Cpu {
    /// Records that the `len` bytes at physical `phys` (within one page)
    /// are cached as code: which 64-byte chunks (so a write that misses
    /// them, a stack sharing the page, leaves the code alone), the page in
    /// the machine's code-page set (so a write is noted), and no more
    /// fast-path writes to it through the TLB.
    pub(crate) fn mark_code(&mut self, m: &mut Machine, phys: u32, len: u32) {
        let page = phys >> 12;
        *self.code_chunks.entry(page).or_default() |= chunk_mask(phys & 0xFFF, len);
        m.mem.mark_code_page(page);
        self.tlb.protect_phys_page(phys & !0xFFF);
    }
}

impl Interp {
    /// Drops the cached blocks of physical pages written behind this
    /// interpreter's back (by another engine, or a device).
    fn invalidate_pages(&mut self, pages: &[u32]) {
        for &page in pages {
            self.cpu.code_chunks.remove(&page);
            let n = self.cache.invalidate_page(page);
            self.cpu.tlb.epoch += 1;
            self.cpu.counters.block_invalidations += n as u64;
        }
    }

    /// Drops the decoded blocks of the code pages written since the last
    /// look, keeping the pages for `take_stale_code_pages` when this
    /// interpreter is another engine's fallback.
    /// (Inlined: the run loop calls it on every turn, and a page is
    /// seldom written.)
    #[inline(always)]
    pub(crate) fn invalidate_written(&mut self, m: &mut Machine) {
        if m.mem.has_written_code_pages() {
            self.drop_written(m);
        }
    }

    fn drop_written(&mut self, m: &mut Machine) {
        let pages = m.mem.take_written_code_pages();
        self.invalidate_pages(&pages);
        if self.log_invalidated {
            self.invalidated.extend_from_slice(&pages);
        }
    }

    /// The code pages written since the last call (by the guest on this
    /// interpreter, by translated code through it, or by a device), in the
    /// order they were seen; this interpreter has dropped its own blocks
    /// of them, the caller drops its translations. For an interpreter made
    /// by `Interp::new_fallback`.
    #[inline]
    pub fn take_stale_code_pages(&mut self, m: &mut Machine) -> Vec<u32> {
        self.invalidate_written(m);
        std::mem::take(&mut self.invalidated)
    }

    /// Whether some code page was written since the last
    /// `take_stale_code_pages` (nothing is taken).
    #[inline]
    pub fn code_pages_stale(&self, m: &Machine) -> bool {
        m.mem.has_written_code_pages() || !self.invalidated.is_empty()
    }

    /// Records that the `len` bytes at physical `phys` (within one page)
    /// hold code the caller translated, as `Cpu::mark_code` does for the
    /// interpreter's blocks: a guest write to them will show up in
    /// `take_stale_code_pages`.
    #[inline]
    pub fn mark_code(&mut self, m: &mut Machine, phys: u32, len: u32) {
        self.cpu.mark_code(m, phys, len);
    }
}
