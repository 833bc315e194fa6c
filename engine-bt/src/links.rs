//! The links between translations: the chains (exits patched to jump
//! straight to their target's translation) and the bookkeeping of the
//! indirect-branch cache (`ctx::Ibtc`, which lives in the context that
//! translated code reads), with the code buffer they patch. The
//! dispatcher makes and undoes them; an `exec` callout that changed the
//! page tables (MOV CR3, INVLPG) checks them itself and goes on.

use crate::codebuf::CodeBuf;
use crate::ctx::Ibtc;
use crate::translate;
use machine::x86::paging::Regs;
use machine::Machine;

pub(crate) struct Links {
    pub buf: CodeBuf,
    /// Every chainable exit of the translations in the cache, by exit id.
    pub sites: Vec<Site>,
    /// The sites currently patched to jump straight to their target in
    /// another linear page.
    pub patched: Vec<Cross>,
    /// The physical page of each indirect-branch cache entry's target.
    pub ibtc_phys: Vec<u32>,
    /// The indirect-branch cache's slots that hold an entry, each once: a
    /// change of the page tables looks at these, not at all 1024.
    pub ibtc_used: Vec<u16>,
    /// A bit (`page_bit`) for the linear page of every target of a chain
    /// between pages and of every indirect-branch cache entry: an INVLPG
    /// of a page whose bit is clear touches none of them.
    pub target_pages: u64,
    /// The sites currently patched to jump straight to their target in the
    /// same linear page: these outlive a change of the page tables (see
    /// `unchain_across_pages`).
    pub patched_in_page: Vec<usize>,
    /// The interpreter's mapping epoch (`Interp::tlb_map_epoch`) the chains
    /// were checked under: a changed mapping (CR3, INVLPG, paging on or
    /// off) checks them again (`unchain_stale_across_pages`).
    pub chain_epoch: u64,
    /// The exit the last block left through, to chain once its target is
    /// known.
    pub pending_chain: Option<usize>,
    /// The translations' exec call sites, by number (`Ctx::exec_site`).
    pub exec_sites: Vec<crate::ctx::ExecArgs>,
    /// Indirect-branch cache entries taken out unchecked by `defer`
    /// (slot, entry, its target's physical page): `remapped` puts back
    /// those that still hold.
    pub suspended: Vec<(u16, Ibtc, u32)>,
    /// The code segment bases of 16-bit protected mode, numbered in the
    /// mode keys (`translate::key::PM16`).
    pub code16: Code16Bases,
}

/// The code segment bases 16-bit protected-mode keys name by number
/// (`translate::key::PM16`): a descriptor may give a code segment any
/// base, which the key's 16 bits cannot hold, and every translation and
/// link keyed by a number reads its base here. Numbers are handed out
/// as bases are first seen and stay until the dispatcher flushes every
/// translation with them (`full`).
#[derive(Default)]
pub(crate) struct Code16Bases {
    bases: Vec<u32>,
    numbers: std::collections::HashMap<u32, u16>,
}

impl Code16Bases {
    /// The number of `base`, given it now if new; None when all 65,536
    /// numbers are taken.
    pub fn number(&mut self, base: u32) -> Option<u16> {
        if let Some(&n) = self.numbers.get(&base) {
            return Some(n);
        }
        let n = u16::try_from(self.bases.len()).ok()?;
        self.bases.push(base);
        self.numbers.insert(base, n);
        Some(n)
    }

    /// The base numbered `n` (0 for a number never given, which no key
    /// holds).
    pub fn base(&self, n: u16) -> u32 {
        self.bases.get(n as usize).copied().unwrap_or(0)
    }

    /// Every number is taken: the next new base needs the table (and so
    /// every translation keyed by it) cleared.
    pub fn full(&self) -> bool {
        self.bases.len() > u16::MAX as usize
    }

    pub fn clear(&mut self) {
        self.bases.clear();
        self.numbers.clear();
    }
}

/// A chainable exit: its `jmp rel32` in the cache and where it goes.
/// A chain between two linear pages: the site (whose `target` is the
/// target's linear address), and the target's physical page when the
/// chain was made.
#[derive(Clone, Copy)]
pub(crate) struct Cross {
    pub site: usize,
    pub phys_page: u32,
}

pub(crate) struct Site {
    /// The rel32 of its jump (a JMP's, or a conditional branch's that is
    /// the exit itself).
    pub jmp: u64,
    /// Where the jump goes while not chained (stores that tell the
    /// dispatcher the target, then the exit stub).
    pub home: u64,
    /// It leaves with the guest flags in their image: chained to its
    /// target's `Block::img_entry`.
    pub img: bool,
    pub target: u32,
    pub key: u32,
    /// The linear page of the block the exit is in.
    pub page: u32,
    /// The physical page that block was translated from.
    pub phys_page: u32,
}

impl Site {
    /// The linear address of the exit's target (its EIP in the code
    /// segment the key names).
    pub fn target_lin(&self, code16: &Code16Bases) -> u32 {
        cs_base(code16, self.key).wrapping_add(self.target)
    }
}

/// The code segment's base under mode key `key`.
pub(crate) fn cs_base(code16: &Code16Bases, key: u32) -> u32 {
    if key & translate::key::PM16 != 0 {
        code16.base((key >> 16) as u16)
    } else {
        translate::key::real_cs_base(key)
    }
}

/// `Links::target_pages`' bit for linear page `page`.
fn page_bit(page: u32) -> u64 {
    1 << (((page >> 12) ^ (page >> 18)) & 63)
}

/// The linear page of an indirect-branch cache entry's target.
fn ibtc_page(code16: &Code16Bases, e: &Ibtc) -> u32 {
    cs_base(code16, e.key).wrapping_add(e.eip) & !0xFFF
}

impl Links {
    /// Puts `e` into the indirect-branch cache (its target's code in
    /// physical page `phys_page`).
    pub fn cache_indirect(&mut self, ibtc: &mut [Ibtc], e: Ibtc, phys_page: u32) {
        let slot = crate::ctx::ibtc_slot(e.eip);
        if ibtc[slot].key == Ibtc::EMPTY.key {
            self.ibtc_used.push(slot as u16);
        }
        self.target_pages |= page_bit(ibtc_page(&self.code16, &e));
        ibtc[slot] = e;
        self.ibtc_phys[slot] = phys_page;
    }

    /// After the interpreter's mapping epoch moved (MOV CR3, INVLPG,
    /// paging turned on or off): the links checked against the page
    /// tables now, those into only the invalidated page after a lone
    /// INVLPG. Returns that page (None: any may have moved). The dispatcher
    /// calls it before entering anything, an `exec` callout after the
    /// instruction that moved it.
    pub fn remapped(
        &mut self,
        interp: &engine_interp::Interp,
        m: &Machine,
        ibtc: &mut [Ibtc],
    ) -> Option<u32> {
        let only = interp.tlb_only_page_flushed_since(self.chain_epoch);
        self.unchain_stale_across_pages(interp.cpu().paging_regs(), m, ibtc, only);
        self.chain_epoch = interp.tlb_map_epoch();
        only
    }

    /// After the page tables changed under an `exec` callout (MOV CR3): the
    /// links are left to be checked by the dispatcher (`remapped`), which
    /// translated code reaches before it follows one that may be stale.
    /// Chains within one linear page stay valid (see
    /// `unchain_across_pages`; the callout checks its own block's page);
    /// chains to another page are guarded by `Ctx::links_stale`, which
    /// the caller sets; the indirect-branch cache's entries are taken out
    /// (into `suspended`, the dispatcher puts back those that hold), so
    /// every lookup misses and goes to the dispatcher. A loop that
    /// reloads CR3 checks nothing (once the cache is empty) where each
    /// reload checked every link against the page tables.
    pub fn defer(&mut self, ibtc: &mut [Ibtc]) {
        for slot in std::mem::take(&mut self.ibtc_used) {
            let s = slot as usize;
            self.suspended.push((slot, ibtc[s], self.ibtc_phys[s]));
            ibtc[s] = Ibtc::EMPTY;
        }
    }

    /// Forgets every site and link (the translation cache was emptied;
    /// `ibtc` is the context's cache) and the code after `keep` bytes.
    pub fn clear(&mut self, ibtc: &mut [Ibtc], keep: usize) {
        self.sites.clear();
        self.patched.clear();
        self.patched_in_page.clear();
        self.pending_chain = None;
        ibtc.fill(Ibtc::EMPTY);
        self.ibtc_used.clear();
        self.target_pages = 0;
        self.exec_sites.clear();
        self.suspended.clear();
        self.buf.truncate(keep);
    }

    /// Chains exit `site` straight to the translation at host `addr`,
    /// whose code is in physical page `phys_page`.
    pub fn chain(&mut self, site: usize, addr: u64, phys_page: u32) {
        let s = &self.sites[site];
        let target_page = s.target_lin(&self.code16) & !0xFFF;
        let in_page = target_page == s.page;
        self.aim(site, addr);
        if in_page {
            self.patched_in_page.push(site);
        } else {
            self.target_pages |= page_bit(target_page);
            self.patched.push(Cross { site, phys_page });
        }
    }

    /// Points a site's jump at `target` (a translation's entry).
    pub fn aim(&mut self, site: usize, target: u64) {
        let rel32 = self.sites[site].jmp;
        let rel = (target.wrapping_sub(rel32 + 4) as i64) as i32;
        self.buf.patch(rel32, &rel.to_le_bytes());
    }

    /// Undoes every chain: each patched exit goes back to the dispatcher.
    pub fn unchain_all(&mut self, ibtc: &mut [Ibtc]) {
        for site in std::mem::take(&mut self.patched_in_page) {
            self.aim(site, self.sites[site].home);
        }
        self.unchain_across_pages(ibtc);
    }

    /// Undoes the chains between linear pages, and the indirect-branch
    /// cache: what a change of the page tables (a new CR3, INVLPG, paging
    /// turned on or off) may make stale. A chain within one linear page
    /// stays valid (as QEMU's direct jumps between blocks of one page do):
    /// a block runs only where its page maps to the physical page it was
    /// translated from (the dispatcher found it there, or a chain led to
    /// it from a block of the same page, which ran so), and then its target
    /// in that page is the same physical code as when the chain was made.
    /// Undoing and remaking every chain at each of a kernel's context
    /// switches cost xv6's usertests 8.7 million patches of translated
    /// code (each a self-modifying-code stall of the host CPU).
    pub fn unchain_across_pages(&mut self, ibtc: &mut [Ibtc]) {
        for x in std::mem::take(&mut self.patched) {
            self.aim(x.site, self.sites[x.site].home);
        }
        self.pending_chain = None;
        self.target_pages = 0;
        for slot in std::mem::take(&mut self.ibtc_used) {
            ibtc[slot as usize] = Ibtc::EMPTY;
        }
        self.suspended.clear();
    }

    /// After a change of the page tables (the epoch): undoes the chains
    /// between pages whose target page no longer maps where it did, and
    /// the indirect-branch cache. A chain stays where the dispatcher would
    /// find the same translation now: the target's linear page maps to the
    /// same physical page, present, executable at the chain's privilege,
    /// with the accessed bits the fetch would set already set (so skipping
    /// the fetch's walk changes nothing the guest can see; a walk that
    /// would set one undoes the chain). A kernel mapped alike in every
    /// address space (xv6's) keeps its chains across context switches;
    /// undoing and remaking them each time cost xv6's usertests millions of
    /// patches of translated code.
    ///
    /// `only`: the one linear page whose mapping moved (an INVLPG): the
    /// links into other pages stand without a look at the page tables.
    fn unchain_stale_across_pages(
        &mut self,
        regs: Regs,
        m: &Machine,
        ibtc: &mut [Ibtc],
        only: Option<u32>,
    ) {
        // The exit the last block left through is chained once its target
        // is found under the page tables as they are now, if that block's
        // own page still maps where it was translated from (a loop that
        // reloads CR3 chains its exit to itself; else it would go through
        // the dispatcher at every iteration).
        let pending = self.pending_chain.take();
        if only.is_some_and(|p| self.target_pages & page_bit(p) == 0) && self.suspended.is_empty() {
            self.pending_chain = pending.filter(|&p| only != Some(self.sites[p].page));
            return;
        }
        let a20 = m.a20_mask();
        // A (page, privilege) walked once, mostly: a direct-mapped memo
        // (tag: the page with the privilege in bit 0; 1 never is one).
        let mut seen = [(1u32, None::<u32>); 64];
        let mut now = |page: u32, user: bool| {
            let tag = page | user as u32;
            let slot = ((page >> 12) ^ (page >> 21) ^ user as u32) as usize & (seen.len() - 1);
            if seen[slot].0 == tag {
                return seen[slot].1;
            }
            let phys = crate::maps_for_fetch(m, regs, a20, page, user);
            seen[slot] = (tag, phys);
            phys
        };
        let moved = |page: u32| only.is_none_or(|p| p == page);
        self.pending_chain = pending.filter(|&p| {
            let s = &self.sites[p];
            !moved(s.page) || now(s.page, s.key & translate::key::USER != 0) == Some(s.phys_page)
        });
        // The bits of what stays.
        let mut bits = 0;
        let mut patched = std::mem::take(&mut self.patched);
        patched.retain(|x| {
            let site = &self.sites[x.site];
            let page = site.target_lin(&self.code16) & !0xFFF;
            let user = site.key & translate::key::USER != 0;
            if !moved(page) || now(page, user) == Some(x.phys_page) {
                bits |= page_bit(page);
                return true;
            }
            self.aim(x.site, self.sites[x.site].home);
            false
        });
        self.patched = patched;
        // The indirect-branch cache likewise, entry by entry.
        let phys = &self.ibtc_phys;
        self.ibtc_used.retain(|&slot| {
            let e = &mut ibtc[slot as usize];
            let page = ibtc_page(&self.code16, e);
            let keep = !moved(page)
                || now(page, e.key & translate::key::USER != 0) == Some(phys[slot as usize]);
            if keep {
                bits |= page_bit(page);
            } else {
                *e = Ibtc::EMPTY;
            }
            keep
        });
        // The entries `defer` took out: back where their slot is still
        // free and they hold.
        for (slot, e, p) in std::mem::take(&mut self.suspended) {
            let s = slot as usize;
            let page = ibtc_page(&self.code16, &e);
            if ibtc[s].key != Ibtc::EMPTY.key
                || moved(page) && now(page, e.key & translate::key::USER != 0) != Some(p)
            {
                continue;
            }
            ibtc[s] = e;
            self.ibtc_phys[s] = p;
            self.ibtc_used.push(slot);
            bits |= page_bit(page);
        }
        self.target_pages = bits;
    }
}

#[cfg(test)]
mod tests {
    use super::{cs_base, Code16Bases};
    use crate::translate::key;

    /// Each base keeps its number; after 65,536 distinct bases there is no
    /// number for a new one (an old one keeps its own) until the table is
    /// cleared; a key names its base through it, a real-mode key through
    /// its selector.
    #[test]
    fn code_segment_bases_are_numbered_until_the_numbers_run_out() {
        let mut t = Code16Bases::default();
        assert_eq!(t.number(0x7C00), Some(0));
        assert_eq!(t.number(0x12345), Some(1));
        assert_eq!(t.number(0x7C00), Some(0));
        let pm16 = key::CODE16 | key::PM16 | 1 << 16;
        assert_eq!(cs_base(&t, pm16), 0x12345);
        assert_eq!(cs_base(&t, key::CODE16 | 0x07C0 << 16), 0x7C00);
        assert_eq!(cs_base(&t, key::USER), 0);
        for b in 2..=u16::MAX as u32 {
            assert_eq!(t.number(0x100_0000 + b), Some(b as u16));
        }
        assert!(t.full());
        assert_eq!(t.number(0xDEAD_0000), None);
        assert_eq!(t.number(0x12345), Some(1));
        t.clear();
        assert!(!t.full());
        assert_eq!(t.number(0xDEAD_0000), Some(0));
    }
}
