//! ringlab's binary translator: guest x86-32 code translated into host
//! x86-64 code, in the VMware tradition (see ARCHITECTURE.md, "engine-bt",
//! and `translate.rs` for what is translated how).
//!
//! The interpreter is both the reference and the fallback: the translator
//! runs it alongside and shares its CPU (registers, segments, TLB, page
//! walk). The dispatcher (`run`) looks at each guest block boundary: when
//! the CPU is in a mode the translator handles (32-bit protected mode with
//! a flat code segment, real mode, or 16-bit protected mode with a
//! readable 64 KiB code segment; no single-stepping, no pending
//! interrupt or interrupt shadow) and the block fits before the next device
//! deadline and the instruction budget, the translated block runs on the
//! host CPU; otherwise the interpreter runs one instruction (or, in a mode
//! the translator never handles, such as V86, a stretch of them).
//! Exceptions, interrupts and every sensitive or privileged instruction
//! are the interpreter's, so the event trace is the interpreter's,
//! instruction count for instruction count.
//!
//! Blocks chain: a block's exit to a known guest EIP is a patchable
//! `jmp rel32` (a `Site`), which the dispatcher aims at the target's
//! translation once both exist, so hot loops run without coming back here.
//! Every chain is undone when the interpreter's TLB epoch changes (CR3,
//! INVLPG, a mode change) or translated code is invalidated, and each
//! translated block first takes its length from the budget in the context,
//! so chained code still stops at the next device deadline. Memory
//! operands go through an inline lookup in the interpreter's TLB and call
//! `callout::host_ptr` only on a miss. The translation cache (`codebuf.rs`)
//! is flushed whole when it is full. Real-mode and 16-bit protected-mode
//! code is translated under its own mode keys (`translate::key::CODE16`,
//! `PM16`), which name the code segment's base.
//!
//! Breakpoints (`Limits::breakpoints`, a debugger's) do not stop
//! translation: a block ends before any breakpoint address (`translate`),
//! the dispatcher hands an instruction at a breakpoint to the interpreter,
//! which stops there or, resuming, runs it, and no chain or indirect-branch
//! cache entry ever leads to one (both are made only by the dispatcher,
//! after its check). When a run brings breakpoints the translations were
//! not made for, the blocks that run over one are dropped and every chain
//! undone (`honour_breakpoints`). Data watchpoints need nothing of the
//! translator: the interpreter's TLB, which translated code reads, never
//! holds a watched page, so those accesses reach `callout::host_ptr`,
//! which leaves any access overlapping a watched range to the interpreter
//! (the block ends before it, the interpreter runs it, checks, and the run
//! stops after it); other accesses to such a page stay in translated code.

mod asm;
pub mod callout;
pub mod codebuf;
pub mod ctx;
mod links;
pub mod translate;

use codebuf::CodeBuf;
use ctx::Ctx;
use engine_interp::fallback::Recorded;
use engine_interp::{Cpu, Interp};
use machine::cpu::{access as a, flags as f, CpuState, Seg, Segment};
use machine::{
    Counter, Engine, EngineError, EngineStats, Limits, Machine, NotTranslated, Stop, Translation,
};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The block table's hasher: its keys are two u32s the dispatcher looks
/// up on every entry; SipHash's resistance to chosen keys is not needed
/// (the guest chooses them, but only slows its own run), its cost is.
#[derive(Default)]
struct Mix(u64);

impl Hasher for Mix {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(v as u64);
    }
    fn write_u64(&mut self, v: u64) {
        // Fx-style: rotate, xor, multiply by an odd constant.
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type FastHash = BuildHasherDefault<Mix>;
use std::time::Instant;

/// Creates a translator over the machine.
pub fn create(_m: &mut Machine) -> Result<Box<dyn Engine>, EngineError> {
    Ok(Box::new(Bt::new()?))
}

// `Bt::ibtc_used` holds slots as u16.
const _: () = assert!(ctx::IBTC_LEN <= 1 << 16);

/// Slots of `Bt::declined`: more than iced-x86 has mnemonics.
const DECLINED_SLOTS: usize = 4096;

/// Size of the translation cache; flushed whole when full.
const CACHE_BYTES: usize = 16 << 20;

/// A cache entry: the host address of a translation, or a block whose
/// first instruction is the interpreter's, or `jmp $` (the interpreter's
/// too, run in bulk: see `Bt::run`).
#[derive(Clone, Copy)]
enum Entry {
    Host {
        addr: u64,
        /// Its entry with the flags in their image (`Block::img_entry`).
        img: u32,
        insns: u32,
        len: u32,
        /// The physical page of its first instruction.
        phys_page: u32,
        /// The guest linear range it covers: [lin, lin + guest_bytes).
        lin: u32,
        guest_bytes: u32,
    },
    /// The interpreter runs the instruction here: the translator declined
    /// it (its mnemonic, decoded once, for the stats), or there is no
    /// block to make (a fetch fault, code outside RAM: None).
    Interpret(Option<iced_x86::Mnemonic>),
    SelfJump,
}

/// Most instructions the interpreter runs in one go while the CPU is in a
/// mode the translator does not handle: the translator takes over at most
/// this late after a switch to one it does.
const STRETCH: u64 = 4096;

/// Most instructions one entry into translated code may run (chained), so
/// the dispatcher looks at the wall clock (timeouts) often enough.
const SLICE: u64 = 1 << 22;

#[derive(Default, Clone, Debug)]
struct Counters {
    chained: u64,
    blocks_translated: u64,
    blocks_run: u64,
    translated_insns: u64,
    fallback_insns: u64,
    invalidations: u64,
    flushes: u64,
    callout_insns: u64,
    /// Host time spent translating blocks (decoding, encoding, copying
    /// into the cache), in nanoseconds: what a short guest pays before
    /// translated code pays it back.
    translate_ns: u64,
}

pub struct Bt {
    interp: Interp,
    /// The id of the guest RAM the translations were made from
    /// (`GuestMemory::id`; 0 before the first run).
    ram_id: u64,
    stub_bytes: usize,
    enter: extern "C" fn(*mut Ctx),
    exit_stub: u64,
    /// (guest physical address, guest linear address, key) -> translation.
    /// The linear address is part of it: a translation holds linear
    /// addresses (its exits' EIPs, the return addresses its CALLs push), so
    /// a physical page of code mapped at two linear addresses (a shared
    /// library in two processes) has a translation for each.
    blocks: HashMap<(u32, u32, u32), Entry, FastHash>,
    /// Guest physical page -> the keys of its blocks, for invalidation.
    pages: HashMap<u32, Vec<(u32, u32, u32)>>,
    ctx: Box<Ctx>,
    counters: Counters,
    /// The translation cache's code and the links between translations
    /// (chains, the indirect-branch cache's bookkeeping).
    links: links::Links,
    /// The last block left through an indirect branch that missed the
    /// indirect-branch cache (`ctx::INDIRECT_EXIT`).
    indirect_pending: bool,
    /// In translatable modes, the instructions handed to the interpreter
    /// because the translator does not translate them (sensitive and
    /// privileged ones among them), by mnemonic.
    /// Instructions the interpreter ran for the translator, by mnemonic
    /// (indexed by `Mnemonic as usize`: a map's lookup per interpreted
    /// instruction was 1% of a translated xv6's time).
    declined: Vec<u64>,
    /// The breakpoints the translations honour (sorted): blocks end before
    /// each.
    breakpoints: Vec<u32>,
}

impl Bt {
    pub fn new() -> Result<Bt, EngineError> {
        Bt::with_cache_bytes(CACHE_BYTES)
    }

    /// A translator whose translation cache holds `bytes` (rounded up to
    /// pages); a small one is flushed often (the tests use that).
    pub fn with_cache_bytes(bytes: usize) -> Result<Bt, EngineError> {
        let bytes = (bytes.max(4096) + 4095) & !4095;
        let mut buf = CodeBuf::new(bytes).map_err(EngineError::host)?;
        let (code, exit_stub, exec_stub, host_ptr_stub) = translate::stubs(buf.next_addr())
            .map_err(|e| EngineError::Internal(format!("assembling the entry stub: {e}")))?;
        let at = buf
            .push(&code)
            .ok_or_else(|| EngineError::Internal("translation cache too small".into()))?;
        // SAFETY: `at` is the start of the entry trampoline just assembled
        // for this address, which follows the C calling convention for
        // `fn(*mut Ctx)`; the buffer lives as long as `self`.
        let enter: extern "C" fn(*mut Ctx) = unsafe { std::mem::transmute(at as usize) };
        // Interrupt deliveries and IRETs from translated code run the
        // interpreter's code with its memo of their checks (the monitor's
        // shadow of the guest's gates and descriptors).
        let mut interp = Interp::new_fallback();
        interp.use_delivery_memo();
        Ok(Bt {
            interp,
            ram_id: 0,
            stub_bytes: buf.used(),
            enter,
            exit_stub,
            blocks: HashMap::default(),
            pages: HashMap::new(),
            ctx: Box::new(Ctx {
                regs: [0; 8],
                flags: 2,
                eip: 0,
                retired: 0,
                interp: std::ptr::null_mut(),
                machine: std::ptr::null_mut(),
                links: std::ptr::null_mut(),
                links_stale: 0,
                sti_due: 1,
                host_ptr: callout::host_ptr,
                sensitive: callout::sensitive,
                exec: callout::exec,
                exec_stub,
                host_ptr_stub,
                exec_site: 0,
                deadline: None,
                key: 0,
                exec_retired: 0,
                exec_before: 0,
                stop: None,
                exec_counts: [0; ctx::EXEC_SLOTS],
                exec_gotos: 0,
                target: 0,
                tlb: std::ptr::null(),
                real_base: 0,
                real_end: 0,
                budget: 0,
                block_n: 0,
                exit: ctx::NO_EXIT,
                scratch: 0,
                seg_base: [0; 6],
                seg_sel: [0; 6],
                left_by_exec: false,
                rf: false,
                moved: false,
                mmio: 0,
                mmio_reads: 0,
                sysflags: 2,
                inline_sensitive: 0,
                pushf_inline: 0,
                cli_inline: 0,
                cpu_eflags: std::ptr::null_mut(),
                stable_lin: 0,
                stable_size: 0,
                stable_user: 0,
                stable_tlb_epoch: 0,
                stable_bus_epoch: 0,
                stable_value: 0,
                stable_hits: 0,
                tlb_epoch_ptr: std::ptr::null(),
                bus_epoch_ptr: std::ptr::null(),
                room: 0,
                ibtc: [ctx::Ibtc::EMPTY; ctx::IBTC_LEN],
            }),
            counters: Counters::default(),
            links: links::Links {
                buf,
                sites: Vec::new(),
                patched: Vec::new(),
                ibtc_phys: vec![0; ctx::IBTC_LEN],
                ibtc_used: Vec::new(),
                target_pages: 0,
                patched_in_page: Vec::new(),
                chain_epoch: 0,
                pending_chain: None,
                exec_sites: Vec::new(),
                suspended: Vec::new(),
                code16: links::Code16Bases::default(),
            },
            indirect_pending: false,
            declined: vec![0; DECLINED_SLOTS],
            breakpoints: Vec::new(),
        })
    }

    /// Undoes every chain: each patched exit goes back to the dispatcher.
    fn unchain_all(&mut self) {
        self.links.unchain_all(&mut self.ctx.ibtc);
        self.ctx.links_stale = 0;
    }

    /// Drops translations of guest pages that were written (by translated
    /// code through the interpreter's slow path, by the interpreter, or by
    /// a device), in both engines' caches.
    fn invalidate_written(&mut self, m: &mut Machine) {
        let pages = self.interp.take_stale_code_pages(m);
        if !pages.is_empty() {
            // Some chain may lead into a dropped translation.
            self.unchain_all();
        }
        for page in pages {
            if let Some(keys) = self.pages.remove(&page) {
                self.counters.invalidations += keys.len() as u64;
                for k in keys {
                    self.blocks.remove(&k);
                }
            }
        }
    }

    /// Makes the translations honour `wanted` (a run's breakpoints): a
    /// block made without one of them that runs over it (the breakpoint is
    /// inside, not at its start) is dropped, and every chain and
    /// indirect-branch cache entry undone, since one may lead straight to
    /// a block that starts at a new breakpoint. The comparison is once per
    /// `run`; blocks made for breakpoints since removed stay (they end
    /// early, harmlessly).
    fn honour_breakpoints(&mut self, wanted: &[u32]) {
        if wanted == self.breakpoints.as_slice() {
            return;
        }
        let mut new = wanted.to_vec();
        new.sort_unstable();
        new.dedup();
        if new == self.breakpoints {
            return;
        }
        let added: Vec<u32> = new
            .iter()
            .copied()
            .filter(|b| self.breakpoints.binary_search(b).is_err())
            .collect();
        if !added.is_empty() {
            self.unchain_all();
            self.blocks.retain(|_, e| match *e {
                Entry::Host {
                    lin, guest_bytes, ..
                } => !added
                    .iter()
                    .any(|&b| b.wrapping_sub(lin).wrapping_sub(1) < guest_bytes.wrapping_sub(1)),
                _ => true,
            });
        }
        self.breakpoints = new;
    }

    /// Translations are keyed by guest physical address: handed another
    /// machine's RAM (`Engine::run` takes any machine), none may stay. (The
    /// interpreter inside does the same for its blocks and its TLB.)
    fn bind_ram(&mut self, m: &Machine) {
        if self.ram_id != m.mem.id() {
            self.flush();
            self.ram_id = m.mem.id();
        }
    }

    /// Empties the translation cache.
    fn flush(&mut self) {
        self.blocks.clear();
        self.pages.clear();
        self.links.clear(&mut self.ctx.ibtc, self.stub_bytes);
        self.ctx.links_stale = 0;
    }

    /// The translation key for the CPU's current mode, or None when the
    /// translator does not handle it (the interpreter runs the next
    /// instruction).
    ///
    /// A 16-bit protected-mode code segment's base gets its number in
    /// `code16` here (None when all are taken: the dispatcher then clears
    /// them with every translation).
    pub(crate) fn mode_key(c: &Cpu, m: &Machine, code16: &mut links::Code16Bases) -> Option<u32> {
        let bits = c.control_flags();
        if untranslatable_mode(c)
            || c.halted()
            || c.interrupt_shadow()
            || bits & (f::TF | f::DF) != 0
            || interrupt_due(c, m)
        {
            return None;
        }
        // Alignment checking could fault in ring 3: leave it to the
        // interpreter.
        if c.cpl() == 3 && c.cr0() & machine::cpu::cr0::AM != 0 && bits & f::AC != 0 {
            return None;
        }
        let mut key = 0;
        if c.cpl() == 3 {
            key |= translate::key::USER;
        }
        if c.stack32() {
            key |= translate::key::STACK32;
        }
        let code16 = if real_mode_code(c) {
            let cs = c.segments()[Seg::Cs as usize];
            Some(translate::key::CODE16 | (cs.base >> 4) << 16)
        } else if prot16_code(c) {
            let n = code16.number(c.segments()[Seg::Cs as usize].base)?;
            let paging = if c.paging() {
                0
            } else {
                translate::key::NOPAGE
            };
            Some(translate::key::CODE16 | translate::key::PM16 | paging | (n as u32) << 16)
        } else {
            None
        };
        if let Some(k) = code16 {
            key |= k;
            for (i, s) in c.segments().iter().enumerate() {
                if i != Seg::Cs as usize && data_64k(s) {
                    key |= translate::key::seg64k(i);
                }
            }
            return Some(key);
        }
        for (i, s) in c.segments().iter().enumerate() {
            if i != Seg::Cs as usize && flat_data(s) {
                key |= translate::key::flat(i);
            }
        }
        Some(key)
    }

    /// Finds or makes the translation of the block at CS:EIP.
    fn lookup(&mut self, m: &mut Machine, key: u32) -> Entry {
        // The linear address (EIP itself in a flat code segment); the
        // translation holds EIPs, and the key the code segment's base.
        let eip = self.interp.cpu().eip();
        let cs_base = links::cs_base(&self.links.code16, key);
        let lin = cs_base.wrapping_add(eip);
        // The interpreter's TLB first, the page walk only on a miss.
        let Some(phys) = self.interp.fetch_phys(m, lin) else {
            // The fetch faults: the interpreter raises it.
            return Entry::Interpret(None);
        };
        if let Some(e) = self.blocks.get(&(phys, lin, key)) {
            return *e;
        }
        let avail = 0x1000 - (phys & 0xFFF) as usize;
        let Ok(bytes) = m.mem.slice(phys as u64, avail).map(|b| b.to_vec()) else {
            // Code outside RAM (MMIO): the interpreter's.
            return Entry::Interpret(None);
        };
        // Timed here only, where a block is made, so running translated
        // code pays nothing for the measurement.
        let started = Instant::now();
        let exit_stub = self.exit_stub;
        let place = move |links: &links::Links| translate::Place {
            at: links.buf.next_addr(),
            exit_stub,
            first_exit: links.sites.len() as u32,
            phys_page: phys & !0xFFF,
            first_exec_site: links.exec_sites.len() as u32,
            cs_base,
        };
        let mut t = translate::translate(&bytes, eip, key, place(&self.links), &self.breakpoints);
        // The cache is full: flush it and assemble again at the new address.
        if t.as_ref()
            .is_some_and(|b| self.links.buf.used() + b.code.len() > self.links.buf.capacity())
        {
            self.flush();
            self.counters.flushes += 1;
            t = translate::translate(&bytes, eip, key, place(&self.links), &self.breakpoints);
        }
        let entry = match t {
            Some(b) => {
                let pushed = self.links.buf.push(&b.code);
                self.counters.translate_ns += started.elapsed().as_nanos() as u64;
                let Some(addr) = pushed else {
                    return Entry::Interpret(None);
                };
                self.counters.blocks_translated += 1;
                self.links.exec_sites.extend(b.exec_sites);
                let now = m.clock.now();
                m.trace.record(
                    m.icount(),
                    now,
                    machine::Event::BlockTranslated {
                        eip,
                        insns: b.insns,
                        bytes: b.code.len() as u32,
                    },
                );
                for &(off, home, target, img) in &b.exits {
                    self.links.sites.push(links::Site {
                        jmp: addr + off,
                        home: addr + home,
                        img,
                        target,
                        key,
                        page: lin & !0xFFF,
                        phys_page: phys & !0xFFF,
                    });
                }
                self.counters.callout_insns += b.callouts as u64;
                // Guest writes to these bytes must now be seen: the same
                // bookkeeping the interpreter does for its own blocks.
                self.interp.mark_code(m, phys, b.guest_bytes);
                Entry::Host {
                    addr,
                    img: b.img_entry as u32,
                    insns: b.insns,
                    len: b.code.len() as u32,
                    phys_page: phys & !0xFFF,
                    lin,
                    guest_bytes: b.guest_bytes,
                }
            }
            None => {
                self.counters.translate_ns += started.elapsed().as_nanos() as u64;
                if translate::starts_with_self_jump(&bytes, eip, key) {
                    Entry::SelfJump
                } else {
                    let bits = translate::bitness(key);
                    let d = iced_x86::Decoder::with_ip(bits, &bytes, eip as u64, 0).decode();
                    Entry::Interpret(Some(d.mnemonic()))
                }
            }
        };
        self.blocks.insert((phys, lin, key), entry);
        self.pages
            .entry(phys >> 12)
            .or_default()
            .push((phys, lin, key));
        entry
    }

    /// Runs a translated block, made under mode key `key`, and the blocks
    /// chained to it, for at most `room` instructions (a REP string
    /// instruction the interpreter runs for them stops at `deadline`).
    fn run_block(
        &mut self,
        m: &mut Machine,
        addr: u64,
        room: u64,
        key: u32,
        deadline: Option<std::time::Instant>,
    ) {
        let ctx = &mut *self.ctx;
        let c = self.interp.cpu();
        ctx.key = key;
        ctx.deadline = deadline;
        ctx.load_cpu(c);
        ctx.left_by_exec = false;
        ctx.rf = c.control_flags() & f::RF != 0;
        ctx.moved = false;
        ctx.target = addr;
        ctx.budget = room as i64;
        ctx.room = room as i64;
        ctx.tlb = self.interp.tlb_for_cpl();
        // (What the TLB would give a real-mode read there: RAM, and no
        // entry on a watched page.)
        let low = m.mem.size().min(0xA_0000);
        ctx.real_base = m.mem.host_base() as u64;
        ctx.real_end = if m.watchpoints().is_empty() {
            low.saturating_sub(3) as u32
        } else {
            0
        };
        ctx.inline_sensitive = !m.trace.wants_each(machine::EventKind::Sensitive) as u32;
        ctx.interp = &mut self.interp as *mut Interp;
        ctx.machine = m as *mut Machine;
        ctx.links = &mut self.links as *mut links::Links;
        ctx.cpu_eflags = self.interp.eflags_word();
        ctx.tlb_epoch_ptr = self.interp.tlb_epoch_ptr();
        ctx.bus_epoch_ptr = m.bus.stable_epoch_ptr();
        ctx.load_stable(&self.interp, m);
        (self.enter)(ctx as *mut Ctx);
        ctx.interp = std::ptr::null_mut();
        ctx.machine = std::ptr::null_mut();
        ctx.links = std::ptr::null_mut();
        ctx.cpu_eflags = std::ptr::null_mut();
        ctx.tlb_epoch_ptr = std::ptr::null();
        ctx.bus_epoch_ptr = std::ptr::null();
        ctx.stable_size = 0;
        self.interp
            .add_stable_hits(std::mem::take(&mut ctx.stable_hits));
        let inline = std::mem::take(&mut ctx.pushf_inline);
        m.trace
            .add_sensitive("pushf", machine::Handling::Callout, inline);
        let inline = std::mem::take(&mut ctx.cli_inline);
        m.trace
            .add_sensitive("cli", machine::Handling::Callout, inline);
        self.interp.flush_stable_reads(m);
        self.interp.flush_port_counts(m);
        self.interp
            .set_translated_state(ctx::regs_of(&ctx.regs), ctx.flags as u32, ctx.eip);
        // Every block entered took its length from the budget; the last
        // one completed only `retired` of its `block_n`.
        // (`room` less what `exec` callouts retired themselves.)
        let done = (ctx.room - ctx.budget) as u64 - (ctx.block_n - ctx.retired) as u64;
        m.retire(done);
        if ctx.rf && done > 0 {
            self.interp.clear_rf();
        }
        self.counters.blocks_run += 1;
        // What `exec` callouts retired: the translated instructions before
        // each, and theirs on the interpreter.
        self.counters.translated_insns += done + std::mem::take(&mut ctx.exec_before);
        let exec = std::mem::take(&mut ctx.exec_retired);
        self.counters.fallback_insns += exec;
        self.links.pending_chain = (ctx.exit != ctx::NO_EXIT && ctx.exit != ctx::INDIRECT_EXIT)
            .then_some(ctx.exit as usize);
        self.indirect_pending = ctx.exit == ctx::INDIRECT_EXIT;
        // A block never starts in an interrupt shadow (`mode_key`), so one
        // set now is either an STI's whose next instruction the block ran
        // (the translator ends the block right after it), or one the
        // interpreter set for an instruction it ran for the block (MOV SS,
        // POP SS), after which the block left: that one holds.
        if !ctx.left_by_exec {
            self.interp.end_shadow();
        }
    }

    /// Notes the mnemonic of the instruction at CS:EIP, which the
    /// interpreter is about to run for the translator.
    fn count_declined(&mut self, m: &mut Machine) {
        let lin = self.interp.cpu().pc();
        let Some(phys) = self.interp.walk_fetch(m, lin) else {
            return;
        };
        let len = (0x1000 - (phys & 0xFFF) as usize).min(15);
        let Ok(bytes) = m.mem.slice(phys as u64, len) else {
            return;
        };
        let bits = if self.interp.cpu().code32() { 32 } else { 16 };
        let mut d = iced_x86::Decoder::with_ip(bits, bytes, lin as u64, 0);
        let i = d.decode();
        self.declined[i.mnemonic() as usize] += 1;
    }

    /// Up to `STRETCH` instructions on the interpreter (within the run's
    /// limits); Some(stop) when the run must end.
    fn interpret_stretch(
        &mut self,
        m: &mut Machine,
        limits: &Limits,
    ) -> Result<Option<Stop>, EngineError> {
        self.interpret_for(m, limits, STRETCH)
    }

    /// Up to `n` instructions on the interpreter (within the run's
    /// limits); Some(stop) when the run must end.
    fn interpret_for(
        &mut self,
        m: &mut Machine,
        limits: &Limits,
        n: u64,
    ) -> Result<Option<Stop>, EngineError> {
        let before = m.icount();
        let stretch_end = before + n;
        // The stretch's own bound, where it is tighter than the run's: a
        // `Budget` at it is the stretch's, not the run's.
        let own_bound = limits.max_icount.is_none_or(|l| stretch_end < l);
        let l = Limits {
            max_icount: Some(
                limits
                    .max_icount
                    .map_or(stretch_end, |l| l.min(stretch_end)),
            ),
            // The same deadline: a `Timeout` is always the run's.
            deadline: limits.deadline,
            // And the same breakpoints, which it stops at (or resumes
            // from) as it would on its own.
            breakpoints: limits.breakpoints.clone(),
        };
        let s = self.interp.run(m, &l)?;
        self.counters.fallback_insns += m.icount() - before;
        Ok(match s {
            // Our own stretch ended, not the run. (A stretch that retired
            // nothing ended because the guest's exception handlers fault
            // at once, over and over: the interpreter counts those
            // deliveries against the budget, and so does the run.)
            Stop::Budget if own_bound && m.icount() > before => None,
            other => Some(other),
        })
    }

    /// One instruction (or one interrupt or exception delivery) on the
    /// interpreter, a sensitive one recorded as `recorded` says;
    /// Some(stop) when that ended the run.
    fn interpret_one(
        &mut self,
        m: &mut Machine,
        limits: &Limits,
        recorded: Recorded,
    ) -> Result<Option<Stop>, EngineError> {
        let before = m.icount();
        // The dispatcher looks at the wall clock itself; one instruction
        // needs it only where a halted CPU may wait (warping the virtual
        // clock from deadline to deadline). A clock read per interpreted
        // instruction was 1% of a translated xv6's time.
        let deadline = limits.deadline.filter(|_| self.interp.cpu().halted());
        let s = self.interp.exec_one(m, recorded, deadline)?;
        self.counters.fallback_insns += m.icount() - before;
        // Nothing retired: a REP string instruction suspended after a
        // chunk of its iterations (65,536 of them, perhaps to a device),
        // or an exception delivered. The dispatcher's own clock reads go
        // by dispatches and retired instructions, neither of which such a
        // loop advances much: look at the deadline here (a REP MOVS of 4 G
        // iterations with DF set, run here one chunk at a time, overran
        // a 2 s deadline by 13 s).
        if s == Stop::Stepped && m.icount() == before && limits.expired() {
            return Ok(Some(Stop::Timeout));
        }
        Ok(match s {
            Stop::Stepped => None,
            other => Some(other),
        })
    }
}

/// The physical page an instruction fetch at linear page `page` would use
/// now, at CPL 3 when `user`, if that fetch would set no accessed bit and
/// raise no fault; None otherwise (the dispatcher's own fetch must then
/// decide). Reads the page tables, writes nothing.
pub(crate) fn maps_for_fetch(
    m: &Machine,
    regs: machine::x86::paging::Regs,
    a20: u32,
    page: u32,
    user: bool,
) -> Option<u32> {
    use machine::x86::paging::{self, Access};
    if regs.cr0 & machine::cpu::cr0::PG == 0 {
        return Some(page & a20);
    }
    let read = |a: u32| m.mem.read_u32((a & a20) as u64).unwrap_or(0);
    let w = paging::translate(regs, page, Access::Exec, user, read).ok()?;
    if w.accessed_dirty(Access::Exec) != [None, None] {
        return None;
    }
    Some(w.phys & !0xFFF & a20)
}

/// An interrupt (IF set) or an NMI is to be taken before the next
/// instruction: translated code must not run it.
fn interrupt_due(c: &Cpu, m: &Machine) -> bool {
    (c.control_flags() & f::IF != 0 && m.interrupt_pending())
        || (!c.nmi_blocked() && m.nmi_pending())
}

/// The CPU is in a mode the translator never handles: V86, 16-bit
/// protected mode, a 32-bit code segment that is not flat (base 0, 4 GiB
/// limit), real mode with an unusual code segment (`real_mode_code`).
/// The interpreter runs such code, a stretch at a time. (Passing
/// conditions, such as an interrupt shadow or TF, are `Bt::mode_key`'s.)
fn untranslatable_mode(c: &Cpu) -> bool {
    let cs = &c.segments()[Seg::Cs as usize];
    let flat32 = c.code32() && cs.base == 0 && cs.limit == u32::MAX;
    !flat32 && !real_mode_code(c) && !prot16_code(c)
}

/// 16-bit protected mode (not V86) in a code segment translated code can
/// read through CS as real mode's (`translate::key::PM16`): present,
/// readable, a 64 KiB limit, any base, any CPL.
fn prot16_code(c: &Cpu) -> bool {
    let cs = &c.segments()[Seg::Cs as usize];
    c.protected()
        && c.control_flags() & f::VM == 0
        && !c.code32()
        && cs.limit == 0xFFFF
        && cs.access & (a::P | a::S | a::CODE | a::RW) == a::P | a::S | a::CODE | a::RW
}

/// Real mode with the code segment a real-mode far transfer loads: 16-bit,
/// base the selector times 16, a 64 KiB limit (`translate::key::CODE16`).
/// Not so right after reset (CS base FFFF0000h until the first far jump)
/// nor after a return to real mode with another code segment cached.
fn real_mode_code(c: &Cpu) -> bool {
    let cs = &c.segments()[Seg::Cs as usize];
    !c.protected() && !c.code32() && cs.limit == 0xFFFF && cs.base == (cs.selector as u32) << 4
}

/// A 64 KiB data segment, any base: expand-up, writable, present, usable
/// (`translate::key::seg64k`): what real mode's segments are.
fn data_64k(s: &Segment) -> bool {
    s.limit == 0xFFFF
        && s.access & a::UNUSABLE == 0
        && s.access & a::P != 0
        && s.access & a::S != 0
        && s.access & (a::CODE | a::DC) == 0
        && s.access & a::RW != 0
}

/// A flat data segment: base 0, 4 GiB, expand-up, writable, usable.
fn flat_data(s: &Segment) -> bool {
    s.base == 0
        && s.limit == u32::MAX
        && s.access & a::UNUSABLE == 0
        && s.access & a::P != 0
        && s.access & a::S != 0
        && s.access & (a::CODE | a::DC) == 0
        && s.access & a::RW != 0
}

impl Engine for Bt {
    fn name(&self) -> &'static str {
        "bt"
    }

    fn run(&mut self, m: &mut Machine, limits: &Limits) -> Result<Stop, EngineError> {
        self.bind_ram(m);
        // Time runs on retired instructions (KVM may have driven it by host
        // time before the machine moved here).
        m.clock.set_mode(machine::ClockMode::Instructions);
        let mut tick = 0u32;
        let mut next_clock_read = m.icount() + (1 << 20);
        let careful = m.trace.stop_pending();
        self.honour_breakpoints(&limits.breakpoints);
        let pc = self.interp.cpu().pc();
        if !limits.breakpoints.is_empty() && !limits.breakpoints.contains(&pc) {
            self.interp.leave_breakpoint(pc);
        }
        loop {
            if let Some(s) = m.stop_requested() {
                return Ok(s.to_stop());
            }
            // An event of the trace's stop-on set (privilege changes,
            // exceptions, ...) happens in the interpreter or a callout, never
            // inside translated code: checked between blocks.
            if m.trace.take_stop_hit() {
                return Ok(Stop::Event);
            }
            if let Some(max) = limits.max_icount {
                if m.icount() >= max {
                    return Ok(Stop::Budget);
                }
            }
            // The clock is read every 4096 dispatches (a dispatch is some
            // 100 ns: every 0.4 ms at most; reading it every 256 took 5%
            // of a run of xv6's usertests), or sooner once a
            // million instructions ran since the last read (translated
            // blocks may each run up to SLICE instructions).
            tick = tick.wrapping_add(1);
            if tick.is_multiple_of(4096) || m.icount() >= next_clock_read {
                next_clock_read = m.icount() + (1 << 20);
                if limits.expired() {
                    return Ok(Stop::Timeout);
                }
            }
            self.invalidate_written(m);
            self.interp.sync_tlb(m);
            // A change of mode alone (an INT or IRET loads CS) leaves the
            // chains alone: they link blocks of one mode key, and the
            // dispatcher enters a block only under the key of the mode it
            // finds.
            if self.interp.tlb_map_epoch() != self.links.chain_epoch {
                self.links.remapped(&self.interp, m, &mut self.ctx.ibtc);
                self.ctx.links_stale = 0;
            }
            // Every number for a 16-bit protected-mode code segment's base
            // is taken (`links::Code16Bases`): they are given again from
            // an empty cache.
            if self.links.code16.full() {
                self.flush();
                self.counters.flushes += 1;
                self.links.code16.clear();
            }
            let pending = self.links.pending_chain.take();
            let indirect = std::mem::take(&mut self.indirect_pending);
            // A flush during the lookup below empties the exit table.
            let flushes = self.counters.flushes;
            let c = self.interp.cpu();
            if !limits.breakpoints.is_empty() && limits.breakpoints.contains(&c.pc()) {
                // The interpreter's rule, exactly: an interrupt due is
                // taken first, then it stops at the breakpoint, or,
                // resuming from it, runs its instruction.
                if let Some(s) = self.interpret_for(m, limits, 1)? {
                    return Ok(s);
                }
                continue;
            }
            let key = if careful {
                None
            } else {
                Self::mode_key(c, m, &mut self.links.code16)
            };
            // A mode the translator leaves alone for a while (real mode
            // after reset, V86, a 16-bit code segment that is not 64 KiB,
            // a 32-bit one that is not flat): let the
            // interpreter run a stretch of it. (Passing conditions, an
            // interrupt shadow, RF, an interrupt about to be taken, get one
            // instruction, below.)
            if key.is_none() && !careful && untranslatable_mode(c) {
                if let Some(s) = self.interpret_stretch(m, limits)? {
                    return Ok(s);
                }
                continue;
            }
            let entry = match key {
                Some(k) => self.lookup(m, k),
                None => Entry::Interpret(None),
            };
            let interpret = match entry {
                Entry::Host {
                    addr,
                    img,
                    insns,
                    phys_page,
                    ..
                } => {
                    // Chain the exit that led here straight to this block,
                    // under the same key. Across pages too: a chain is a
                    // cached translation of its target's page, and like a
                    // TLB entry it lasts until the next invalidation (CR3,
                    // INVLPG, a mode change: the epoch), which undoes every
                    // chain. A page-table entry changed without one may be
                    // used old or new (SDM Vol 3A 4.10.4.2), as here.
                    let eip = self.interp.cpu().eip();
                    let pending = pending.filter(|_| self.counters.flushes == flushes);
                    if let (Some(k), true) = (key, indirect) {
                        // An indirect branch missed the cache for this
                        // block: any indirect branch to here may now come
                        // straight in, under this key, until the chains
                        // are undone. (Only targets of indirect branches go
                        // there: fewer entries to check after each change
                        // of the page tables.)
                        let e = ctx::Ibtc {
                            eip,
                            key: k,
                            host: addr + img as u64,
                        };
                        self.links.cache_indirect(&mut self.ctx.ibtc, e, phys_page);
                    }
                    if let (Some(site), Some(k)) = (pending, key) {
                        let s = &self.links.sites[site];
                        if s.target == eip && s.key == k {
                            let to = if s.img { addr + img as u64 } else { addr };
                            self.links.chain(site, to, phys_page);
                            self.counters.chained += 1;
                        }
                    }
                    // Blocks never run past the next device deadline or the
                    // budget: then the interpreter takes the rest.
                    let mut room = m.insns_until_deadline().min(SLICE);
                    if let Some(max) = limits.max_icount {
                        room = room.min(max - m.icount());
                    }
                    if insns as u64 <= room {
                        // (A translation is found only under a key.)
                        let k = key.unwrap_or(u32::MAX);
                        self.run_block(m, addr, room, k, limits.deadline);
                        // An instruction an `exec` callout ran ended the
                        // run (a guest exit, a watchpoint, ...).
                        if let Some(r) = self.ctx.stop.take() {
                            return r;
                        }
                        false
                    } else {
                        true
                    }
                }
                Entry::Interpret(mnemonic) => {
                    match mnemonic {
                        Some(mn) => self.declined[mn as usize] += 1,
                        None => self.count_declined(m),
                    }
                    true
                }
                Entry::SelfJump => {
                    // `jmp $` (never translated, so that a panic loop is
                    // seen): the interpreter spins on it up to the next
                    // device deadline, as its own run loop would (no
                    // interrupt is pending here: `mode_key` said so), or
                    // stops with `Stop::Spinning` if IF is clear. One
                    // instruction at a time, a kernel waiting on `sti;
                    // jmp $` would crawl.
                    self.count_declined(m);
                    let mut room = m.insns_until_deadline().clamp(1, SLICE);
                    if let Some(max) = limits.max_icount {
                        room = room.min(max - m.icount());
                    }
                    if let Some(s) = self.interpret_for(m, limits, room)? {
                        return Ok(s);
                    }
                    false
                }
            };
            if interpret {
                // In a mode the translator handles, the interpreter runs
                // this instruction for it: a sensitive one is recorded as
                // handled by a callout (VMware's term for the emulation
                // routine translated code calls).
                let recorded = if key.is_some() {
                    Recorded::Callout
                } else {
                    Recorded::Interpreted
                };
                if let Some(s) = self.interpret_one(m, limits, recorded)? {
                    return Ok(s);
                }
            }
        }
    }

    fn step(&mut self, m: &mut Machine) -> Result<Stop, EngineError> {
        self.bind_ram(m);
        self.invalidate_written(m);
        let before = m.icount();
        let s = self.interp.step(m);
        self.counters.fallback_insns += m.icount() - before;
        s
    }

    fn cpu_state(&mut self) -> Result<CpuState, EngineError> {
        self.interp.cpu_state()
    }

    fn set_cpu_state(&mut self, m: &mut Machine, s: &CpuState) -> Result<(), EngineError> {
        // Another engine may have written guest memory behind our back.
        self.flush();
        self.interp.set_cpu_state(m, s)
    }

    fn stats(&self) -> EngineStats {
        let k = &self.counters;
        // What the dispatcher handed the interpreter and what translated
        // code had it run, by mnemonic.
        let by_mnemonic: Vec<u64> = self
            .declined
            .iter()
            .zip(self.ctx.exec_counts.iter().chain(std::iter::repeat(&0)))
            .map(|(a, b)| a + b)
            .collect();
        let mut declined: Vec<(String, u64)> = by_mnemonic
            .iter()
            .enumerate()
            .filter(|&(_, &n)| n > 0)
            .filter_map(|(i, &n)| {
                let m = iced_x86::Mnemonic::try_from(i).ok()?;
                Some((format!("  to the interpreter: {m:?}").to_lowercase(), n))
            })
            .collect();
        declined.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let total = k.translated_insns + k.fallback_insns;
        let share = (k.fallback_insns * 1000).checked_div(total).unwrap_or(0);
        let memo = self.interp.delivery_memo_counts();
        EngineStats {
            engine: "bt".into(),
            instructions: Some(total),
            counters: vec![
                Counter::BlocksTranslated.entry(k.blocks_translated),
                Counter::TranslationTimeUs.entry(k.translate_ns / 1000),
                Counter::DispatcherEntries.entry(k.blocks_run),
                Counter::ChainedJumps.entry(k.chained),
                Counter::CacheBytes.entry((self.links.buf.used() - self.stub_bytes) as u64),
                Counter::TranslatedInstructions.entry(k.translated_insns),
                Counter::InterpreterInstructions.entry(k.fallback_insns),
                Counter::InterpreterShare.entry(share),
                Counter::CalloutInstructions.entry(k.callout_insns),
                Counter::ExecCallouts.entry(self.ctx.exec_counts.iter().sum()),
                Counter::CalloutTransfers.entry(self.ctx.exec_gotos),
                Counter::MmioReadsInTranslatedCode.entry(self.ctx.mmio_reads),
                Counter::BlocksInvalidated.entry(k.invalidations),
                Counter::CacheFlushes.entry(k.flushes),
                Counter::DeliveryMemoHits.entry(memo.0),
                Counter::DeliveryMemoMisses.entry(memo.1),
            ]
            .into_iter()
            // The TLB is the interpreter's, which translated code shares.
            .chain(
                self.interp
                    .stats()
                    .counters
                    .into_iter()
                    .filter(|(name, _)| {
                        name == Counter::TlbMisses.label() || name == Counter::TlbFlushes.label()
                    }),
            )
            .chain([Counter::DeclinedInstructions.entry(declined.iter().map(|d| d.1).sum())])
            .chain(declined)
            .collect(),
        }
    }

    fn translation_at_pc(&mut self, m: &mut Machine) -> Option<Result<Translation, NotTranslated>> {
        self.invalidate_written(m);
        self.interp.sync_tlb(m);
        let c = self.interp.cpu();
        let Some(key) = Self::mode_key(c, m, &mut self.links.code16) else {
            return Some(Err(if untranslatable_mode(c) {
                NotTranslated::Mode
            } else {
                NotTranslated::Passing
            }));
        };
        Some(match self.lookup(m, key) {
            Entry::Host {
                addr, insns, len, ..
            } => Ok(Translation {
                host_addr: addr,
                code: self.links.buf.bytes(addr, len as usize).to_vec(),
                guest_insns: insns,
            }),
            Entry::Interpret(_) | Entry::SelfJump => Err(NotTranslated::FirstInstruction),
        })
    }
}

#[cfg(test)]
mod tests {
    /// `Bt::declined` has a slot for every mnemonic iced-x86 decodes.
    #[test]
    fn every_mnemonic_has_a_declined_slot() {
        let n = iced_x86::Mnemonic::values().len();
        assert!(n <= super::DECLINED_SLOTS, "{n} mnemonics");
        assert!(iced_x86::Mnemonic::values().all(|m| (m as usize) < n));
    }
}
