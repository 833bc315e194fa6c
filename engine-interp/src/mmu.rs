//! Memory access: segmentation checks, 32-bit paging (SDM Vol 3A 4.3) and a
//! software TLB mapping linear pages straight to host pointers into guest
//! RAM, so the common access costs a compare and an add.
//!
//! Safety argument: a TLB entry only ever holds the host address of a
//! physical page that lies entirely inside `GuestMemory` (checked when the
//! entry is filled), and the fast path only serves accesses that do not
//! cross the page. Everything else (MMIO, addresses past RAM, page-crossing
//! accesses) goes through `Machine::read_phys`/`write_phys`, which are
//! bounds-checked.
//!
//! Data watchpoints (`machine::watch`, a debugger's `watch`, `rwatch`,
//! `awatch`): a page holding a watched range never gets a TLB entry (it is
//! walked on every access instead), so every access to it takes the slow
//! path, which checks the watchpoints after the access is translated and
//! records a hit in `Cpu::watch_hit`; the run loop stops after the
//! instruction (a trap, as the x86's data breakpoints are, SDM Vol 3A
//! 17.3.1.2). Generated code reads the same TLB, so it cannot bypass them
//! either. With no watchpoint set the fast path is exactly what it was.
//! Checked: every explicit memory operand, the stack (PUSH, POP, CALL,
//! RET, ENTER, LEAVE, PUSHA, the frames interrupt and exception delivery
//! push, far transfers' pushes), string instructions (INS and OUTS item
//! by item: their bulk paths are off while watchpoints are set). Not
//! checked, as implicit accesses made on the CPU's own behalf: descriptor
//! table reads and accessed-bit writes (GDT, LDT, IDT), TSS reads and
//! writes (stack switches, task switches, the I/O bitmap), all of which
//! go through `sys_rd`/`sys_wr`; page-table walks (physical,
//! `translate`); and instruction fetches.

use crate::cpu::{Cpu, SS};
use crate::fault::{vec, Exc, R};
use machine::cpu::cr0;
use machine::x86::paging;
use machine::Machine;

/// Slots in each of the two TLBs (a power of two).
pub(crate) const TLB_SIZE: usize = 1024;

/// The TLB's hash and entry layout, for code that looks an entry up
/// without calling into Rust: the binary translator generates its inline
/// lookup from `TLB_LAYOUT`, and `tlb_slot` computes the same hash, so
/// there is one hash and one layout. A slot's tags are compared with
/// `lin & page_mask`; on a match, `lin + addend` is the host address (for
/// an access that does not cross the page).
#[derive(Clone, Copy, Debug)]
pub struct TlbLayout {
    /// slot = (lin >> page_shift) & slot_mask: the page number's low bits,
    /// so the pages of any aligned 4 MiB never evict each other. (The
    /// directory index was once folded in, xored with the page number:
    /// it moved which pages share a slot, 4 MiB apart now, and cost
    /// generated code two instructions a lookup. Every 1024-slot index
    /// has such pairs.)
    pub page_shift: u32,
    pub slot_mask: u32,
    /// The tag of a linear address: its page (`lin & page_mask`).
    pub page_mask: u32,
    /// Size of an entry: slot `i` is at `i * entry_size` from the start of
    /// the TLB.
    pub entry_size: u32,
    /// Offsets in an entry of the read tag (u32), the write tag (u32) and
    /// the addend (u64: host address of the page minus its linear address).
    pub rtag_offset: i32,
    pub wtag_offset: i32,
    pub addend_offset: i32,
}

impl TlbLayout {
    /// The slot of linear address `lin`.
    #[inline(always)]
    pub const fn slot(&self, lin: u32) -> usize {
        (lin >> self.page_shift) as usize & self.slot_mask as usize
    }
}

pub const TLB_LAYOUT: TlbLayout = TlbLayout {
    page_shift: 12,
    slot_mask: (TLB_SIZE - 1) as u32,
    page_mask: !0xFFF,
    entry_size: std::mem::size_of::<TlbEntry>() as u32,
    rtag_offset: std::mem::offset_of!(TlbEntry, rtag) as i32,
    wtag_offset: std::mem::offset_of!(TlbEntry, wtag) as i32,
    addend_offset: std::mem::offset_of!(TlbEntry, addend) as i32,
};

// The translator loads the addend as a 64-bit value.
const _: () = assert!(std::mem::size_of::<usize>() == 8);

/// The TLB slot of a linear address (`TLB_LAYOUT`'s hash).
#[inline(always)]
pub(crate) fn tlb_slot(lin: u32) -> usize {
    TLB_LAYOUT.slot(lin)
}
/// The tag of no page. Not 1: generated code compares a tag with the
/// page of an access together with its misaligned low bits (at most 3),
/// which must never match an empty entry.
const INVALID: u32 = 0xFFF;

/// One TLB entry. Its fields are the interpreter's alone: `read_lin` and
/// `write_lin` dereference `lin + addend`, so only `Cpu::translate`, which
/// checks that the page lies in guest RAM, fills one. Its layout is
/// `TLB_LAYOUT` for generated code.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct TlbEntry {
    /// Linear page address when reads may use the entry, else INVALID.
    pub(crate) rtag: u32,
    /// Linear page address when writes may use the entry, else INVALID.
    pub(crate) wtag: u32,
    /// Host address of the page minus its linear address.
    pub(crate) addend: usize,
}

// Sixteen bytes: the slot's offset is the page number shifted and masked,
// with no multiply (`TLB_LAYOUT`).
const _: () = assert!(std::mem::size_of::<TlbEntry>() == 16);

const EMPTY: TlbEntry = TlbEntry {
    rtag: INVALID,
    wtag: INVALID,
    addend: 0,
};

/// A slot's bookkeeping, beside its entry (`Tlb::meta`), which generated
/// code never reads: the physical page address, with `GLOBAL` in bit 0.
pub(crate) type TlbMeta = u32;

/// In `TlbMeta`: the entry came from a global page (CR4.PGE and PTE.G).
pub(crate) const GLOBAL: TlbMeta = 1;

/// Two direct-mapped TLBs: index 0 for supervisor accesses, 1 for user
/// accesses (CPL 3), as QEMU keeps one per MMU mode.
pub(crate) struct Tlb {
    pub(crate) e: Box<[[TlbEntry; TLB_SIZE]; 2]>,
    /// Each slot's physical page and global bit (`TlbMeta`), kept apart
    /// so that the entries generated code reads stay sixteen bytes.
    pub(crate) meta: Box<[[TlbMeta; TLB_SIZE]; 2]>,
    /// The machine's mapping generation the entries were filled under.
    pub(crate) generation: u64,
    /// The `GuestMemory::id` of the RAM the entries point into (0: none
    /// yet): an interpreter handed another machine drops them.
    pub(crate) mem_id: u64,
    /// Bumped whenever a linear-to-physical mapping or the code segment may
    /// have changed: block chain links made under another epoch are stale.
    pub(crate) epoch: u64,
    /// Bumped whenever a linear-to-physical mapping may have changed (a
    /// flush of the TLB or of a page), not when only the mode or a segment
    /// did: the translator's chains, checked against page mappings, care
    /// only about these (an INT or IRET loads CS and bumps `epoch`).
    pub(crate) map_epoch: u64,
    /// The last flush of a single page (INVLPG): the `map_epoch` it made
    /// and the page. When that is the current epoch and the one before
    /// was the last a user looked at, only that page's mapping moved.
    pub(crate) page_flush: (u64, u32),
    /// Some entry came from a 4 MiB page: INVLPG must then drop every
    /// entry of that large page (SDM Vol 3A 4.10.4.1), which we do by
    /// flushing everything.
    pub(crate) large: bool,
    /// Which slots of each TLB may hold an entry (a bit per slot), so a
    /// flush clears only those: a guest that reloads CR3 often (every
    /// task switch) touches a few dozen pages, not all 2048 slots.
    used: [[u64; TLB_SIZE / 64]; 2],
}

impl Tlb {
    pub fn new() -> Tlb {
        Tlb {
            e: {
                // Built on the heap: the array is too large for a thread's
                // stack.
                let flat: Box<[TlbEntry]> = vec![EMPTY; 2 * TLB_SIZE].into_boxed_slice();
                // SAFETY: `[[TlbEntry; TLB_SIZE]; 2]` is `2 * TLB_SIZE`
                // entries laid out one after the other, as the slice is.
                unsafe { Box::from_raw(Box::into_raw(flat) as *mut [[TlbEntry; TLB_SIZE]; 2]) }
            },
            meta: Box::new([[0; TLB_SIZE]; 2]),
            generation: 0,
            mem_id: 0,
            epoch: 0,
            map_epoch: 0,
            page_flush: (0, 0),
            large: false,
            used: [[0; TLB_SIZE / 64]; 2],
        }
    }

    /// The slots marked filled in one TLB's `used` bits, in order.
    fn filled(used: [u64; TLB_SIZE / 64]) -> impl Iterator<Item = usize> {
        used.into_iter().enumerate().flat_map(|(w, mut bits)| {
            std::iter::from_fn(move || {
                (bits != 0).then(|| {
                    let b = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    w * 64 + b
                })
            })
        })
    }

    /// Puts `entry` in slot `i` of TLB `which` (0 supervisor, 1 user),
    /// with its bookkeeping `meta`.
    #[inline]
    pub fn fill(&mut self, which: usize, i: usize, (entry, meta): (TlbEntry, TlbMeta)) {
        self.e[which][i] = entry;
        self.meta[which][i] = meta;
        self.used[which][i / 64] |= 1 << (i % 64);
    }

    pub fn flush(&mut self, keep_global: bool) {
        self.epoch += 1;
        self.map_epoch += 1;
        if !keep_global {
            self.large = false;
        }
        for ((t, meta), used) in self
            .e
            .iter_mut()
            .zip(self.meta.iter())
            .zip(self.used.iter_mut())
        {
            for i in Self::filled(*used) {
                if !(keep_global && meta[i] & GLOBAL != 0) {
                    t[i] = EMPTY;
                    used[i / 64] &= !(1 << (i % 64));
                }
            }
        }
    }

    pub fn flush_page(&mut self, lin: u32) {
        if self.large {
            self.flush(false);
            return;
        }
        self.epoch += 1;
        self.map_epoch += 1;
        self.page_flush = (self.map_epoch, lin & !0xFFF);
        let i = tlb_slot(lin);
        for t in self.e.iter_mut() {
            if t[i].rtag == lin & !0xFFF || t[i].wtag == lin & !0xFFF {
                t[i] = EMPTY;
            }
        }
    }

    /// Stops fast-path writes to physical page `phys` (it now holds cached
    /// code, so writes must be seen).
    pub fn protect_phys_page(&mut self, phys: u32) {
        for ((t, meta), used) in self
            .e
            .iter_mut()
            .zip(self.meta.iter())
            .zip(self.used.iter())
        {
            for i in Self::filled(*used) {
                if meta[i] & !0xFFF == phys {
                    t[i].wtag = INVALID;
                }
            }
        }
    }
}

impl Default for Tlb {
    fn default() -> Self {
        Tlb::new()
    }
}

/// What an access wants, for paging checks.
pub use machine::x86::paging::Access as Acc;

impl Cpu {
    // ---- segmentation ---------------------------------------------------

    /// Checks an access of `len` bytes at `off` in segment `s` and returns
    /// its linear address (SDM Vol 3A 5.3: limit; 5.6-5.7: rights).
    #[inline(always)]
    pub fn seg_lin(&self, s: usize, off: u32, len: u32, write: bool) -> R<u32> {
        let c = &self.segchk[s];
        let ok_rights = if write { c.write } else { c.read };
        let last = off.wrapping_add(len - 1);
        // A 4 GiB expand-up segment never faults on its limit (accesses wrap).
        let ok_limit = if c.hi == u32::MAX && c.lo == 0 {
            true
        } else {
            off >= c.lo && last >= off && last <= c.hi
        };
        if ok_rights && ok_limit {
            Ok(self.segs[s].base.wrapping_add(off))
        } else {
            Err(self.seg_fault(s))
        }
    }

    /// The exception for a failed segment check: #SS for the stack segment,
    /// #GP otherwise, both with error code 0.
    pub fn seg_fault(&self, s: usize) -> Exc {
        if s == SS {
            Exc::new(vec::SS, Some(0))
        } else {
            Exc::new(vec::GP, Some(0))
        }
    }

    // ---- TLB and paging -------------------------------------------------

    #[inline(always)]
    fn tlb_index(user: bool) -> usize {
        user as usize
    }

    /// Checks the TLB against the machine's mapping generation (A20) and
    /// against the RAM its host pointers point into. Called before every
    /// use of the TLB on a machine (`run_inner`, the translator's
    /// dispatcher), this is what makes `read_lin`/`write_lin` sound when
    /// an engine is run on another machine than before: `Engine::run`
    /// accepts any `&mut Machine`, and `Machine::mem` is a public field.
    #[inline]
    pub fn sync_tlb(&mut self, m: &Machine) {
        if self.tlb.generation != m.mapping_generation() {
            self.tlb.flush(false);
            self.tlb.generation = m.mapping_generation();
            self.counters.tlb_flushes += 1;
        }
        if self.tlb.mem_id != m.mem.id() {
            self.rebind_tlb(m);
        }
    }

    /// Points the TLB at another machine's RAM: nothing filled for the
    /// old one may stay (a host event, not counted as a guest's flush).
    #[cold]
    fn rebind_tlb(&mut self, m: &Machine) {
        if self.tlb.mem_id != 0 {
            self.tlb.flush(false);
        }
        self.tlb.mem_id = m.mem.id();
    }

    /// Translates a linear address (SDM Vol 3A 4.3), setting accessed and
    /// dirty bits, and fills the TLB when the page is RAM. `user` is true
    /// for accesses made at CPL 3 (not for implicit supervisor accesses to
    /// descriptor tables and the TSS). The walk and the rights are
    /// `machine::x86::paging`'s; this adds the side effects: CR2 on a
    /// fault, the accessed and dirty bits, the TLB entry.
    pub fn translate(&mut self, m: &mut Machine, lin: u32, acc: Acc, user: bool) -> R<u32> {
        self.walk_and_fill(m, lin, acc, user).map(|(phys, _)| phys)
    }

    /// `translate`, also handing back the entry it filled (None outside
    /// RAM or on a watched page, which gets none): a caller that wants a
    /// host pointer makes it from the entry at hand (read back from the
    /// TLB just written, it stalled on the fill's stores).
    #[inline(always)]
    fn walk_and_fill(
        &mut self,
        m: &mut Machine,
        lin: u32,
        acc: Acc,
        user: bool,
    ) -> R<(u32, Option<TlbEntry>)> {
        let (phys, entry) = self.walk(m, lin, acc, user)?;
        let entry = entry.filter(|_| !Self::watched_page(m, lin));
        if let Some(e) = entry {
            self.tlb.fill(Self::tlb_index(user), tlb_slot(lin), e);
        }
        Ok((phys, entry.map(|(e, _)| e)))
    }

    /// `translate` without the TLB fill: the physical address and the
    /// entry the TLB would get, with its bookkeeping (None outside RAM).
    #[inline(always)]
    fn walk(
        &mut self,
        m: &mut Machine,
        lin: u32,
        acc: Acc,
        user: bool,
    ) -> R<(u32, Option<(TlbEntry, TlbMeta)>)> {
        self.counters.tlb_misses += 1;
        // Entries are filled only for the RAM the TLB is bound to.
        if self.tlb.mem_id != m.mem.id() {
            self.rebind_tlb(m);
        }
        let a20 = m.a20_mask();
        let (phys_page, writable, global, dirty) = if !self.paging() {
            ((lin & !0xFFF) & a20, true, false, true)
        } else {
            let regs = paging::Regs {
                cr0: self.cr0,
                cr3: self.cr3,
                cr4: self.cr4,
            };
            // The entries from RAM directly, as `read_phys` would read
            // them (RAM first); anything else through it.
            let read = |a: u32| match m.mem.read_u32((a & a20) as u64) {
                Some(v) => v,
                None => m.read_phys(a, 4) as u32,
            };
            let w = match paging::translate(regs, lin, acc, user, read) {
                Ok(w) => w,
                Err(f) => {
                    self.cr2 = lin;
                    return Err(Exc::new(vec::PF, Some(f.code)));
                }
            };
            // Accessed bits on every walk, dirty on a write (SDM Vol 3A 4.8).
            let [pde, leaf] = w.accessed_dirty(acc);
            if let Some(e) = pde {
                m.write_phys(e.addr, 4, e.value as u64);
            }
            if let Some(e) = leaf {
                m.write_phys(e.addr, 4, e.value as u64);
            }
            if w.large {
                self.tlb.large = true;
            }
            (
                (w.phys & !0xFFF) & a20,
                w.can_write(user, self.cr0),
                w.global(self.cr4),
                w.dirty_after(acc),
            )
        };
        // An entry only for pages wholly inside RAM.
        let entry = m.mem.host_ptr(phys_page as u64, 4096).map(|host| {
            // Code pages and ROM take the slow path for writes: the one
            // invalidates what was decoded, the other ignores the write.
            let code =
                m.mem.is_code_page(phys_page >> 12) || m.mem.is_read_only_page(phys_page >> 12);
            let page = lin & !0xFFF;
            let e = TlbEntry {
                rtag: page,
                wtag: if writable && dirty && !code {
                    page
                } else {
                    INVALID
                },
                addend: (host as usize).wrapping_sub(page as usize),
            };
            (e, phys_page | if global { GLOBAL } else { 0 })
        });
        Ok((phys_page | (lin & 0xFFF), entry))
    }

    /// Whether the linear page of `lin` holds a watched range: such a page
    /// never gets a TLB entry, so that no access to it bypasses the check.
    #[inline]
    fn watched_page(m: &Machine, lin: u32) -> bool {
        let set = m.watchpoints();
        !set.is_empty() && set.iter().any(|w| w.on_page(lin & !0xFFF))
    }

    /// After an access of `w` bytes at `lin` the slow path translated:
    /// records the first watchpoint it hits (the run loop stops once the
    /// instruction completes). Not for the implicit accesses of `sys_rd`
    /// and `sys_wr`.
    #[inline]
    fn check_watch(&mut self, m: &Machine, lin: u32, w: u8, write: bool) {
        if m.watchpoints().is_empty() || self.implicit || self.watch_hit.is_some() {
            return;
        }
        if let Some(h) = machine::watch::hit(m.watchpoints(), lin, w as u32, write) {
            self.watch_hit = Some(h);
            self.exit_block = true;
        }
    }

    // ---- linear accesses ------------------------------------------------

    /// Reads `w` (1, 2 or 4) bytes at a linear address.
    #[inline(always)]
    pub fn read_lin(&mut self, m: &mut Machine, lin: u32, w: u8, user: bool) -> R<u32> {
        let e = &self.tlb.e[Self::tlb_index(user)][tlb_slot(lin)];
        if e.rtag == lin & !0xFFF && (lin & 0xFFF) <= 0x1000 - w as u32 {
            let p = (lin as usize).wrapping_add(e.addend) as *const u8;
            // SAFETY: the entry maps this linear page to a host page inside
            // guest RAM (see the module comment) and the access stays in it.
            return Ok(unsafe {
                match w {
                    1 => *p as u32,
                    2 => (p as *const u16).read_unaligned() as u32,
                    _ => (p as *const u32).read_unaligned(),
                }
            });
        }
        self.read_lin_slow(m, lin, w, user, Acc::Read)
    }

    #[cold]
    pub fn read_lin_slow(
        &mut self,
        m: &mut Machine,
        lin: u32,
        w: u8,
        user: bool,
        acc: Acc,
    ) -> R<u32> {
        if (lin & 0xFFF) + w as u32 <= 0x1000 {
            let p = self.translate(m, lin, acc, user)?;
            let v = m.read_phys(p, w) as u32;
            if acc != Acc::Exec {
                self.check_watch(m, lin, w, false);
            }
            self.end_block_if_interrupted(m);
            return Ok(v);
        }
        // Crossing a page: translate both pages before reading anything.
        let first = self.translate(m, lin, acc, user)?;
        let second_lin = (lin | 0xFFF).wrapping_add(1);
        let second = self.translate(m, second_lin, acc, user)?;
        if acc != Acc::Exec {
            self.check_watch(m, lin, w, false);
        }
        let mut v = 0u32;
        for k in 0..w as u32 {
            let a = lin.wrapping_add(k);
            let p = if a & !0xFFF == lin & !0xFFF {
                first + (a - lin)
            } else {
                second + (a & 0xFFF)
            };
            v |= (m.read_phys(p, 1) as u32) << (8 * k);
        }
        self.end_block_if_interrupted(m);
        Ok(v)
    }

    /// After an access outside the TLB's fast path (MMIO among them): a
    /// device register access may have made an interrupt pending (a local
    /// APIC ICR, TPR or EOI write, an I/O APIC unmask, a timer read that
    /// settles an expiry). With IF set the block ends after this
    /// instruction, so the run loop delivers it at the next instruction
    /// boundary, as the translator (which leaves MMIO to `exec_one`) and
    /// KVM (an MMIO exit, then injection) do; otherwise a chained block
    /// or a spin loop would run on until the next device deadline.
    #[inline]
    fn end_block_if_interrupted(&mut self, m: &Machine) {
        if self.fl.if_() && m.interrupt_pending() {
            self.exit_block = true;
        }
    }

    #[inline(always)]
    pub fn write_lin(&mut self, m: &mut Machine, lin: u32, w: u8, v: u32, user: bool) -> R<()> {
        let e = &self.tlb.e[Self::tlb_index(user)][tlb_slot(lin)];
        if e.wtag == lin & !0xFFF && (lin & 0xFFF) <= 0x1000 - w as u32 {
            let p = (lin as usize).wrapping_add(e.addend) as *mut u8;
            // SAFETY: as in `read_lin`; write entries exist only for pages
            // that hold no cached code, so no decoded block goes stale.
            unsafe {
                match w {
                    1 => *p = v as u8,
                    2 => (p as *mut u16).write_unaligned(v as u16),
                    _ => (p as *mut u32).write_unaligned(v),
                }
            }
            return Ok(());
        }
        self.write_lin_slow(m, lin, w, v, user)
    }

    #[cold]
    pub fn write_lin_slow(
        &mut self,
        m: &mut Machine,
        lin: u32,
        w: u8,
        v: u32,
        user: bool,
    ) -> R<()> {
        if (lin & 0xFFF) + w as u32 <= 0x1000 {
            let p = self.translate(m, lin, Acc::Write, user)?;
            self.check_watch(m, lin, w, true);
            let page = p >> 12;
            if m.mem.is_code_page(page) {
                let code = self.code_chunks.get(&page).copied().unwrap_or(u64::MAX);
                if code & crate::codepages::chunk_mask(p & 0xFFF, w as u32) == 0
                    && m.mem
                        .write_untracked(p as u64, &v.to_le_bytes()[..w as usize])
                        .is_ok()
                {
                    // A code page, but no decoded byte in these chunks.
                    return Ok(());
                }
            }
            m.write_phys(p, w, v as u64);
        } else {
            let first = self.translate(m, lin, Acc::Write, user)?;
            let second_lin = (lin | 0xFFF).wrapping_add(1);
            let second = self.translate(m, second_lin, Acc::Write, user)?;
            self.check_watch(m, lin, w, true);
            for k in 0..w as u32 {
                let a = lin.wrapping_add(k);
                let p = if a & !0xFFF == lin & !0xFFF {
                    first + (a - lin)
                } else {
                    second + (a & 0xFFF)
                };
                m.write_phys(p, 1, ((v >> (8 * k)) & 0xFF) as u64);
            }
        }
        if m.mem.has_written_code_pages() {
            // Self-modifying code: the block being run may be stale.
            self.exit_block = true;
        }
        self.end_block_if_interrupted(m);
        Ok(())
    }

    /// The host address of a `size`-byte access at linear `lin` (a write
    /// when `write`), from the TLB or after a page walk that fills it; null
    /// when the fast path cannot serve it: a fault, MMIO or an address with
    /// no RAM, an access crossing a page, a write to a page holding code.
    /// A fault is not raised: the caller leaves the access to the
    /// interpreter, which raises it. The address is valid as long as the
    /// TLB entry is (until the next flush or `translate`).
    pub(crate) fn host_ptr(
        &mut self,
        m: &mut Machine,
        lin: u32,
        size: u32,
        write: bool,
    ) -> *mut u8 {
        if (lin & 0xFFF) + size > 0x1000 {
            return std::ptr::null_mut();
        }
        // Never a pointer into another machine's RAM.
        if self.tlb.mem_id != m.mem.id() {
            self.rebind_tlb(m);
        }
        let user = self.cpl == 3;
        let page = lin & !0xFFF;
        let slot = tlb_slot(lin);
        let hit = |cpu: &Cpu| {
            let e = &cpu.tlb.e[Self::tlb_index(user)][slot];
            let tag = if write { e.wtag } else { e.rtag };
            (tag == page).then(|| (lin as usize).wrapping_add(e.addend) as *mut u8)
        };
        if let Some(p) = hit(self) {
            return p;
        }
        // A miss: walk the page tables (accessed and dirty bits, the TLB
        // fill). Write entries exist only for pages without decoded or
        // translated code, so writes to code are the interpreter's and
        // invalidate what they must.
        let acc = if write { Acc::Write } else { Acc::Read };
        if Self::watched_page(m, lin) {
            return self.host_ptr_watched(m, lin, size, acc, user);
        }
        let Ok((_, Some(e))) = self.walk_and_fill(m, lin, acc, user) else {
            return std::ptr::null_mut();
        };
        let tag = if write { e.wtag } else { e.rtag };
        if tag != page {
            return std::ptr::null_mut();
        }
        (lin as usize).wrapping_add(e.addend) as *mut u8
    }

    /// `host_ptr` on a page holding a watched range, which has no TLB
    /// entry: an access that overlaps a watched range, of whatever kind
    /// (the caller's may read and write), is the interpreter's, which
    /// decides whether it hits; any other gets its host address from a
    /// walk, as the TLB entry would give it.
    #[cold]
    fn host_ptr_watched(
        &mut self,
        m: &mut Machine,
        lin: u32,
        size: u32,
        acc: Acc,
        user: bool,
    ) -> *mut u8 {
        if m.watchpoints().iter().any(|w| w.overlaps(lin, size)) {
            return std::ptr::null_mut();
        }
        let Ok((_, Some((e, _)))) = self.walk(m, lin, acc, user) else {
            return std::ptr::null_mut();
        };
        let tag = if acc == Acc::Write { e.wtag } else { e.rtag };
        if tag != lin & !0xFFF {
            return std::ptr::null_mut();
        }
        (lin as usize).wrapping_add(e.addend) as *mut u8
    }

    /// The start of the TLB that accesses at the current CPL use (laid out
    /// as `TLB_LAYOUT` says), for generated code's inline lookup. Valid as
    /// long as this `Cpu` lives (the TLB is boxed and never reallocated).
    pub(crate) fn tlb_for_cpl(&self) -> *const TlbEntry {
        self.tlb.e[Self::tlb_index(self.cpl == 3)].as_ptr()
    }

    /// The host address of a `w`-byte access at `lin` that may read and
    /// write, when the TLB has the page for writing (so for reading too:
    /// present, writable at this CPL, accessed and dirty, RAM without
    /// cached code or a watchpoint) and the access stays in it: a
    /// read-modify-write's one lookup. None: the caller takes the general
    /// path, which walks the page tables and raises the faults.
    #[inline(always)]
    pub(crate) fn rmw_ptr(&self, lin: u32, w: u8) -> Option<*mut u8> {
        let e = &self.tlb.e[Self::tlb_index(self.cpl == 3)][tlb_slot(lin)];
        (e.wtag == lin & !0xFFF && (lin & 0xFFF) <= 0x1000 - w as u32)
            .then(|| (lin as usize).wrapping_add(e.addend) as *mut u8)
    }

    /// The host address of a `len`-byte read at `lin` (as the user when
    /// `user`) when the TLB has the page for reading and the read stays in
    /// it: then the full read would neither walk nor change anything.
    #[inline(always)]
    pub(crate) fn read_ptr(&self, lin: u32, len: u32, user: bool) -> Option<*const u8> {
        let e = &self.tlb.e[Self::tlb_index(user)][tlb_slot(lin)];
        (e.rtag == lin & !0xFFF && (lin & 0xFFF) <= 0x1000 - len)
            .then(|| (lin as usize).wrapping_add(e.addend) as *const u8)
    }

    /// Checks that a write of `w` bytes at `lin` would succeed (for
    /// instructions that must not change anything before they fault).
    ///
    /// A page the TLB holds a write entry for passes at once: that entry
    /// was made by a write walk that found the page writable and left its
    /// accessed and dirty bits set, so the walk would change nothing (a
    /// read-modify-write of memory walked the page tables on every
    /// execution: 75 M times in the suite's lcg loop, a third of its time).
    #[inline]
    pub fn probe_write(&mut self, m: &mut Machine, lin: u32, w: u8, user: bool) -> R<()> {
        let e = &self.tlb.e[Self::tlb_index(user)][tlb_slot(lin)];
        if e.wtag == lin & !0xFFF && (lin & 0xFFF) <= 0x1000 - w as u32 {
            return Ok(());
        }
        self.probe_write_slow(m, lin, w, user)
    }

    #[cold]
    fn probe_write_slow(&mut self, m: &mut Machine, lin: u32, w: u8, user: bool) -> R<()> {
        self.translate(m, lin, Acc::Write, user)?;
        if (lin & 0xFFF) + w as u32 > 0x1000 {
            self.translate(m, (lin | 0xFFF).wrapping_add(1), Acc::Write, user)?;
        }
        Ok(())
    }

    // ---- segmented accesses (what instructions use) ----------------------

    #[inline(always)]
    pub fn user(&self) -> bool {
        self.cpl == 3
    }

    /// Alignment check (SDM Vol 3A 6.15, interrupt 17): a misaligned data
    /// access at CPL 3 with CR0.AM and EFLAGS.AC set raises #AC(0).
    #[inline(always)]
    pub(crate) fn align_check(&self, lin: u32, w: u8) -> R<()> {
        if lin & (w as u32 - 1) != 0
            && self.cpl == 3
            && self.cr0 & cr0::AM != 0
            && self.fl.bits & machine::cpu::flags::AC != 0
        {
            return Err(Exc::new(vec::AC, Some(0)));
        }
        Ok(())
    }

    #[inline(always)]
    pub fn rd(&mut self, m: &mut Machine, s: usize, off: u32, w: u8) -> R<u32> {
        let lin = self.seg_lin(s, off, w as u32, false)?;
        self.align_check(lin, w)?;
        self.read_lin(m, lin, w, self.cpl == 3)
    }

    #[inline(always)]
    pub fn wr(&mut self, m: &mut Machine, s: usize, off: u32, w: u8, v: u32) -> R<()> {
        let lin = self.seg_lin(s, off, w as u32, true)?;
        self.align_check(lin, w)?;
        self.write_lin(m, lin, w, v, self.cpl == 3)
    }

    /// Implicit supervisor-mode read (descriptor tables, IDT, TSS). Not
    /// checked against data watchpoints (see the module comment).
    #[inline]
    pub fn sys_rd(&mut self, m: &mut Machine, lin: u32, w: u8) -> R<u32> {
        let outer = std::mem::replace(&mut self.implicit, true);
        let r = self.read_lin(m, lin, w, false);
        self.implicit = outer;
        r
    }

    #[inline]
    pub fn sys_wr(&mut self, m: &mut Machine, lin: u32, w: u8, v: u32) -> R<()> {
        let outer = std::mem::replace(&mut self.implicit, true);
        let r = self.write_lin(m, lin, w, v, false);
        self.implicit = outer;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(page: u32, global: bool) -> (TlbEntry, TlbMeta) {
        let e = TlbEntry {
            rtag: page,
            wtag: page,
            addend: 0,
        };
        (e, page | if global { GLOBAL } else { 0 })
    }

    fn valid(t: &Tlb) -> Vec<(usize, u32)> {
        let mut v = Vec::new();
        for (w, e) in t.e.iter().enumerate() {
            for x in e.iter() {
                if x.rtag != INVALID || x.wtag != INVALID {
                    v.push((w, x.rtag));
                }
            }
        }
        v.sort();
        v
    }

    #[test]
    fn a_tlb_never_reads_another_machines_ram() {
        use machine::MachineConfig;
        let mut c = Cpu::reset();
        let mut m1 = Machine::new(MachineConfig::with_ram(4 << 20)).unwrap();
        m1.mem.write_u8(0x5000, 0x11).unwrap();
        c.sync_tlb(&m1);
        assert_eq!(c.read_lin(&mut m1, 0x5000, 1, false), Ok(0x11));
        assert_eq!(c.tlb.e[0][tlb_slot(0x5000)].rtag, 0x5000, "filled");
        drop(m1);
        // Another machine, with the same mapping generation: the entry,
        // whose host pointer points into the freed RAM, must go.
        let mut m2 = Machine::new(MachineConfig::with_ram(4 << 20)).unwrap();
        m2.mem.write_u8(0x5000, 0x22).unwrap();
        c.sync_tlb(&m2);
        assert_eq!(c.tlb.e[0][tlb_slot(0x5000)].rtag, INVALID);
        assert_eq!(c.read_lin(&mut m2, 0x5000, 1, false), Ok(0x22));
        // Its RAM swapped behind the machine's back: the same.
        m2.mem = machine::GuestMemory::new(4 << 20).unwrap();
        c.sync_tlb(&m2);
        assert_eq!(c.read_lin(&mut m2, 0x5000, 1, false), Ok(0));
    }

    #[test]
    fn tlb_layout_finds_an_entry_as_generated_code_does() {
        let mut t = Tlb::new();
        let lin = 0x0020_3ABC;
        let page = lin & TLB_LAYOUT.page_mask;
        t.fill(
            1,
            tlb_slot(lin),
            (
                TlbEntry {
                    rtag: page,
                    wtag: INVALID,
                    addend: 0x1234_5678_9000,
                },
                0x5000,
            ),
        );
        // The pages of any 4 MiB-aligned 4 MiB take different slots.
        let slots: std::collections::HashSet<usize> = (0..1024u32)
            .map(|p| tlb_slot(0x8040_0000 + (p << 12)))
            .collect();
        assert_eq!(slots.len(), TLB_SIZE);
        let base = t.e[1].as_ptr() as *const u8;
        let at = base.wrapping_add(TLB_LAYOUT.slot(lin) * TLB_LAYOUT.entry_size as usize);
        // SAFETY: the slot is inside the array, and the offsets are the
        // fields' (`offset_of!`), read unaligned as plain integers.
        let (rtag, wtag, addend) = unsafe {
            (
                (at.add(TLB_LAYOUT.rtag_offset as usize) as *const u32).read_unaligned(),
                (at.add(TLB_LAYOUT.wtag_offset as usize) as *const u32).read_unaligned(),
                (at.add(TLB_LAYOUT.addend_offset as usize) as *const u64).read_unaligned(),
            )
        };
        assert_eq!((rtag, wtag, addend), (page, INVALID, 0x1234_5678_9000));
    }

    #[test]
    fn flushes_clear_every_filled_slot_and_keep_globals_when_asked() {
        let mut t = Tlb::new();
        let pages = [
            0x0000_0000u32,
            0x0040_1000,
            0x0010_0000,
            0xFFFF_E000,
            0x003F_F000,
        ];
        for (k, &p) in pages.iter().enumerate() {
            t.fill(k % 2, tlb_slot(p), entry(p, p == 0x0010_0000));
        }
        assert_eq!(valid(&t).len(), pages.len());
        // MOV CR3 with CR4.PGE: the global page stays.
        t.flush(true);
        assert_eq!(valid(&t), vec![(0, 0x0010_0000)]);
        // Refilled, then a full flush (CR4.PGE toggled): nothing stays,
        // including the global entry kept by the flush before.
        t.fill(1, tlb_slot(0x1234_5000), entry(0x1234_5000, false));
        t.flush(false);
        assert!(valid(&t).is_empty());
        // A page write-protected for code loses only its write tag.
        t.fill(0, tlb_slot(0x8000), entry(0x8000, false));
        t.fill(1, tlb_slot(0x9000), entry(0x9000, false));
        t.protect_phys_page(0x8000);
        assert_eq!(t.e[0][tlb_slot(0x8000)].wtag, INVALID);
        assert_eq!(t.e[0][tlb_slot(0x8000)].rtag, 0x8000);
        assert_eq!(t.e[1][tlb_slot(0x9000)].wtag, 0x9000);
    }
}
