//! The interpreter as another engine's fallback: all the binary translator
//! may use of it beyond `Engine` and the read-only `Interp::cpu`. The
//! translator shares this interpreter's CPU (registers, TLB, page walk) and
//! hands it every instruction it does not translate (`exec_one`).
//!
//! Nothing here lets a caller write a TLB entry: entries hold host
//! pointers that `read_lin`/`write_lin` dereference, so only the page walk
//! fills them, with pages it checked lie in guest RAM. Translated code
//! reads the TLB through `tlb_for_cpl` and `TLB_LAYOUT`, the one
//! description of its hash and layout.

use crate::Interp;
use machine::cpu::flags as f;
use machine::{EngineError, Handling, Limits, Machine, Stop};
use std::time::Instant;

/// How the engine that hands an instruction to `exec_one` wants a
/// sensitive one recorded: only these two make sense for an instruction
/// the interpreter executes (`Handling`'s other values belong to KVM and
/// to trap-and-emulate, which decides for itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// Executed by the interpreter: the CPU is in a mode the translator
    /// leaves to it.
    Interpreted,
    /// The emulation routine of a translator (a callout): the CPU is in a
    /// mode it translates.
    Callout,
}

impl From<Recorded> for Handling {
    fn from(r: Recorded) -> Handling {
        match r {
            Recorded::Interpreted => Handling::Interpreted,
            Recorded::Callout => Handling::Callout,
        }
    }
}

pub use crate::mmu::{TlbEntry, TlbLayout, TLB_LAYOUT};

/// What the instruction table (`decode/table.rs`) says of an instruction,
/// which the translator reads rather than keeping lists of its own:
/// `has(mnemonic, attr::SENSITIVE)` (left to the interpreter as a
/// callout), `has(mnemonic, attr::IDENT)` (copied through unchanged).
pub mod table {
    pub use crate::decode::table::{attr, has};
}

/// EFLAGS' status flags (CF, PF, AF, ZF, SF, OF): the part of EFLAGS
/// translated code computes.
pub const STATUS_FLAGS: u32 = 0x8D5;

/// A stable device register's value as `Interp::pure_mmio_read` read it,
/// and what it holds under: a read at `lin` of `size` bytes, at that
/// privilege and TLB epoch (the same physical address), while the bus's
/// stable epoch stays `bus_epoch`.
pub struct StableRead {
    pub lin: u32,
    pub size: u32,
    pub user: bool,
    pub tlb_epoch: u64,
    pub bus_epoch: u64,
    pub value: u64,
    reg: machine::bus::StableRegister,
    /// Reads served from `value` and not yet counted by the device.
    hits: u64,
}

/// An instruction decoded ahead for `Interp::exec_decoded`.
#[derive(Clone)]
pub struct Decoded(crate::ops::Op);

impl Decoded {
    /// `insn` (decoded at its EIP, in the code size it will run in) as the
    /// interpreter runs it; None for an invalid or unimplemented
    /// instruction (the run loop reports those) and a REP string
    /// instruction (which runs in chunks against a deadline).
    pub fn new(insn: &iced_x86::Instruction) -> Option<Decoded> {
        if insn.is_invalid() || insn.has_rep_prefix() || insn.has_repne_prefix() {
            return None;
        }
        crate::decode::lower(insn).map(Decoded)
    }
}

impl Interp {
    /// An interpreter that runs as another engine's fallback: it keeps the
    /// code pages it sees written for `take_stale_code_pages`.
    #[inline]
    pub fn new_fallback() -> Interp {
        let mut i = Interp::new();
        i.log_invalidated = true;
        i
    }

    /// Runs one instruction (or delivers one interrupt or exception), like
    /// `Engine::step`. A sensitive instruction is recorded as handled as
    /// `recorded` says unless trap-and-emulate mode decides otherwise. A long REP string
    /// instruction (suspended every `string::REP_CHUNK` iterations) gives
    /// up at `deadline` with `Stop::Timeout`, its registers where it
    /// stopped, so that it can go on later.
    #[inline]
    pub fn exec_one(
        &mut self,
        m: &mut Machine,
        recorded: Recorded,
        deadline: Option<Instant>,
    ) -> Result<Stop, EngineError> {
        let limits = Limits {
            deadline,
            ..Limits::default()
        };
        self.cpu.handling = recorded.into();
        let s = self.run_inner(m, &limits, true);
        self.cpu.handling = Handling::Interpreted;
        self.now = m.clock.now();
        Ok(s)
    }

    /// `exec_one` for an instruction decoded ahead (`d`: the instruction
    /// at CS:EIP, decoded as the current code size decodes it): the same
    /// run of it, without the run loop's look for what could come first
    /// (an interrupt or NMI to deliver, an interrupt shadow, EFLAGS.TF or
    /// RF, a stop, a halted CPU, written code to drop) and without the
    /// decoded-block lookup. None, with nothing done, when one of those
    /// might matter, or the instruction is not wholly inside the code
    /// segment's limit and its page: `exec_one` then.
    ///
    /// The translator keeps one `Decoded` per callout site (its
    /// translation, like this decoding, lives only as long as the code
    /// bytes stay unwritten).
    #[inline]
    pub fn exec_decoded(
        &mut self,
        m: &mut Machine,
        d: &Decoded,
        recorded: Recorded,
    ) -> Option<Stop> {
        let op = &d.0;
        let c = &mut self.cpu;
        let start = c.eip;
        let lin = c.segs[crate::cpu::CS].base.wrapping_add(start);
        let if_ = c.fl.bits & f::IF != 0;
        if c.fl.bits & (f::TF | f::RF) != 0
            || c.shadow
            || c.halted
            || (lin & 0xFFF) + op.len as u32 > 0x1000
            || start as u64 + op.len as u64 > c.segs[crate::cpu::CS].limit as u64 + 1
            || (if_ && m.interrupt_pending())
            || (!c.nmi_blocked && m.nmi_pending())
            || m.stop_requested().is_some()
            || m.trace.stop_pending()
            || m.mem.has_written_code_pages()
        {
            return None;
        }
        c.sync_tlb(m);
        // From here as `run_inner` and `exec` run one instruction.
        c.handling = recorded.into();
        c.exit_block = false;
        c.rep_left = crate::string::REP_CHUNK;
        c.counters.blocks_run += 1;
        let before = m.icount();
        c.eip = start.wrapping_add(op.len as u32) & c.ip_mask();
        let triple = matches!(crate::run_op(c, m, op, start), crate::OpEnd::Triple);
        let done = std::mem::take(&mut c.pending);
        m.retire(done);
        self.retired += done + std::mem::take(&mut c.synced);
        self.cpu.handling = Handling::Interpreted;
        self.now = m.clock.now();
        if triple {
            return Some(Stop::TripleFault);
        }
        self.stalls = if m.icount() == before {
            self.stalls + 1
        } else {
            0
        };
        if let Some(s) = self.watch_stop() {
            return Some(s);
        }
        // (`cli; jmp $`: dead unless an NMI waits, as in `run_inner`.)
        let spun = std::mem::take(&mut self.cpu.spinning);
        let nmi_waits = m.nmi_pending() && !self.cpu.nmi_blocked;
        if spun && !nmi_waits {
            return Some(Stop::Spinning);
        }
        Some(m.stop_requested().map_or(Stop::Stepped, |s| s.to_stop()))
    }

    /// Flushes the TLB if the machine's mappings changed (A20).
    #[inline]
    pub fn sync_tlb(&mut self, m: &Machine) {
        self.cpu.sync_tlb(m);
    }

    /// Changes whenever a linear-to-physical mapping or the code segment
    /// may have changed (CR3, INVLPG, a mode change, a code page written):
    /// links between blocks made under another epoch are stale.
    #[inline]
    pub fn tlb_epoch(&self) -> u64 {
        self.cpu.tlb.epoch
    }

    /// Changes whenever a linear-to-physical mapping may have changed (a
    /// TLB flush: CR3, INVLPG, paging turned on or off, A20), not on a mode
    /// change alone.
    #[inline]
    pub fn tlb_map_epoch(&self) -> u64 {
        self.cpu.tlb.map_epoch
    }

    /// The linear page whose mapping alone moved between map epoch
    /// `since` and now (a single INVLPG of it, SDM Vol 3A 4.10.4.1), or
    /// None when more may have (several flushes, a whole flush).
    #[inline]
    pub fn tlb_only_page_flushed_since(&self, since: u64) -> Option<u32> {
        let t = &self.cpu.tlb;
        (t.map_epoch == since + 1 && t.page_flush.0 == t.map_epoch).then_some(t.page_flush.1)
    }

    /// The physical address of the code at linear `lin` at the current
    /// CPL, from the TLB or a page walk; None when the fetch faults (the
    /// interpreter raises that when it runs the instruction).
    #[inline]
    pub fn fetch_phys(&mut self, m: &mut Machine, lin: u32) -> Option<u32> {
        self.cpu.fetch_phys(m, lin).ok()
    }

    /// Like `fetch_phys`, but always walks the page tables (setting
    /// accessed bits and refilling the TLB as the walk does).
    #[inline]
    pub fn walk_fetch(&mut self, m: &mut Machine, lin: u32) -> Option<u32> {
        let user = self.cpu.cpl == 3;
        self.cpu.translate(m, lin, crate::mmu::Acc::Exec, user).ok()
    }

    /// The host address of a `size`-byte guest access at linear `lin` (a
    /// write when `write`), or null when the interpreter must perform it (a
    /// fault, MMIO, a page crossing, a write to code): the slow path of
    /// translated code's inline TLB lookup. The address stays valid until
    /// the TLB changes (a flush, another walk).
    #[inline]
    pub fn host_ptr(&mut self, m: &mut Machine, lin: u32, size: u32, write: bool) -> *mut u8 {
        self.cpu.host_ptr(m, lin, size, write)
    }

    /// PUSHFD for translated code, where it is a callout: records the
    /// sensitive instruction at `eip` as instruction `icount` and returns
    /// the part of the image that translated code does not hold, every bit
    /// of EFLAGS but the status flags (VM and RF clear, as PUSHFD pushes
    /// them). Only in the modes the translator runs (never V86).
    pub fn callout_pushfd(&mut self, m: &mut Machine, eip: u32, icount: u64) -> u32 {
        let c = &mut self.cpu;
        c.record_sensitive(m, "pushf", eip, icount, machine::Handling::Callout);
        c.pushf_image() & !STATUS_FLAGS
    }

    /// The word holding the CPU's EFLAGS (IF among them, never lazy), for
    /// translated code's inline CLI at CPL 0, which clears IF there as
    /// `callout_cli` does. Valid while this interpreter is neither moved
    /// nor dropped, and only while nothing else borrows it.
    pub fn eflags_word(&mut self) -> *mut u32 {
        &mut self.cpu.fl.bits
    }

    /// CLI for translated code: false (nothing done, nothing recorded)
    /// when it faults (CPL > IOPL), for the interpreter to run it;
    /// otherwise records it and clears IF.
    pub fn callout_cli(&mut self, m: &mut Machine, eip: u32, icount: u64) -> bool {
        let c = &mut self.cpu;
        if c.cli_sti_faults() {
            return false;
        }
        c.record_sensitive(m, "cli", eip, icount, machine::Handling::Callout);
        c.fl.bits &= !f::IF;
        true
    }

    /// IN or OUT (`out`) of `w` bytes (1, 2, 4) between the accumulator
    /// and port `imm`, or DX when None, for translated code, at the
    /// instruction `eip` whose successor is `next`: what the interpreter's
    /// own IN/OUT does (the sensitive-instruction record, the I/O
    /// permission check, the access at the current virtual time, the
    /// instruction retired, RF gone) without decoding or the run loop.
    /// EAX after it; None, with nothing done or recorded, where the access
    /// is not allowed (#GP): the interpreter then runs the instruction
    /// itself.
    pub fn callout_port(
        &mut self,
        m: &mut Machine,
        out: bool,
        imm: Option<u16>,
        w: u8,
        eip: u32,
        next: u32,
    ) -> Option<u32> {
        let c = &mut self.cpu;
        let port = imm.unwrap_or(c.regs[2] as u16);
        if c.check_io(m, port, w).is_err() {
            return None;
        }
        if m.trace.wants_each(machine::EventKind::Sensitive) {
            let name = if out { "out" } else { "in" };
            c.record_sensitive(m, name, eip, m.icount(), machine::Handling::Callout);
        } else {
            // (Counted in bulk, as translated code counts its PUSHFs and
            // CLIs: a record each costs more than the rest of a port
            // access to a simple device.)
            self.port_counts[out as usize] += 1;
        }
        let eax = c.acc_port(m, out, port, w);
        c.eip = next;
        c.fl.bits &= !f::RF;
        self.stalls = 0;
        m.retire(1);
        Some(eax)
    }

    /// Hands the trace the IN and OUT instructions `callout_port` counted
    /// (it must have them before anyone reads its counters).
    pub fn flush_port_counts(&mut self, m: &mut Machine) {
        let [i, o] = std::mem::take(&mut self.port_counts);
        m.trace.add_sensitive("in", machine::Handling::Callout, i);
        m.trace.add_sensitive("out", machine::Handling::Callout, o);
    }

    /// Whether `lin` is on the device page `pure_mmio_read` last found,
    /// its translation still valid: a read there need not look for a TLB
    /// entry first (a device page has none, and looking walks the page
    /// tables every time).
    #[inline]
    pub fn on_pure_mmio_page(&self, lin: u32) -> bool {
        matches!(self.mmio_page, Some((p, u, e, _))
            if p == lin & !0xFFF && u == (self.cpu.cpl == 3) && e == self.cpu.tlb.epoch)
    }

    /// STI for translated code: false (nothing done, nothing recorded)
    /// when it faults (CPL > IOPL), for the interpreter to run it;
    /// otherwise records it and sets IF, with the interrupt shadow when IF
    /// was clear, as the interpreter's STI does. The translated block runs
    /// the shadow's instruction and then leaves; the translator ends the
    /// shadow there (`end_shadow`).
    pub fn callout_sti(&mut self, m: &mut Machine, eip: u32, icount: u64) -> bool {
        let c = &mut self.cpu;
        if c.cli_sti_faults() {
            return false;
        }
        c.record_sensitive(m, "sti", eip, icount, machine::Handling::Callout);
        if c.fl.bits & f::IF == 0 {
            c.shadow = true;
        }
        c.fl.bits |= f::IF;
        true
    }

    /// The instruction in an STI's interrupt shadow has run (in translated
    /// code): interrupts may come again.
    #[inline]
    pub fn end_shadow(&mut self) {
        self.cpu.shadow = false;
    }

    /// An instruction has completed in translated code: EFLAGS.RF, which
    /// lasts until the next instruction completes (SDM Vol 3A 17.3.1.1),
    /// goes, as the interpreter's own run clears it.
    #[inline]
    pub fn clear_rf(&mut self) {
        self.cpu.fl.bits &= !f::RF;
    }

    /// A read of `size` bytes at linear `lin` from a device register whose
    /// reading is pure (`Machine::read_pure_mmio`), through the page
    /// tables as the interpreter's own read would go (permissions and the
    /// accessed bit); None when the interpreter must do it (a fault, a page
    /// crossing, RAM, a register with effects).
    pub fn pure_mmio_read(&mut self, m: &mut Machine, lin: u32, size: u32) -> Option<u64> {
        if (lin & 0xFFF) + size > 0x1000 {
            return None;
        }
        // A watched device register is the interpreter's, which checks.
        if m.watchpoints().iter().any(|w| w.overlaps(lin, size)) {
            return None;
        }
        let user = self.cpu.cpl == 3;
        let page = lin & !0xFFF;
        let epoch = self.cpu.tlb.epoch;
        // The register read last, if it is stable and nothing that could
        // change it happened since (the bus's stable epoch), at the same
        // linear address under the same mapping and privilege: its value,
        // and the read counted later (`flush_stable_reads`).
        if let Some(s) = &mut self.stable {
            if s.lin == lin
                && s.size == size
                && s.user == user
                && s.tlb_epoch == epoch
                && s.bus_epoch == m.bus.stable_epoch()
            {
                s.hits += 1;
                return Some(s.value);
            }
        }
        let phys = match self.mmio_page {
            // As a TLB entry would: until the next invalidation (CR3,
            // INVLPG, a mode change), for the same privilege.
            Some((p, u, e, phys_page)) if p == page && u == user && e == epoch => {
                phys_page | (lin & 0xFFF)
            }
            _ => {
                let phys = self
                    .cpu
                    .translate(m, lin, crate::mmu::Acc::Read, user)
                    .ok()?;
                self.mmio_page = Some((page, user, epoch, phys & !0xFFF));
                phys
            }
        };
        let v = m.read_pure_mmio(phys, size as u8)?;
        if let Some(reg) = m.stable_mmio(phys, size as u8) {
            self.flush_stable_reads(m);
            self.stable = Some(StableRead {
                lin,
                size,
                user,
                tlb_epoch: epoch,
                bus_epoch: m.bus.stable_epoch(),
                value: v,
                reg,
                hits: 0,
            });
        }
        Some(v)
    }

    /// The stable register `pure_mmio_read` keeps a copy of, if any: the
    /// translator reads it from translated code under the same conditions
    /// (`bt`'s `Ctx::load_stable`), counting what it served with
    /// `add_stable_hits`.
    pub fn stable_read(&self) -> Option<&StableRead> {
        self.stable.as_ref()
    }

    /// Counts `n` reads served from the copy `stable_read` shows, made
    /// while it was the current one: handed over by `flush_stable_reads`.
    pub fn add_stable_hits(&mut self, n: u64) {
        if let Some(s) = &mut self.stable {
            s.hits += n;
        }
    }

    /// Where the TLB's epoch is (`Cpu::tlb`): a stable register's copy
    /// holds only while it stays the one recorded. Valid while this
    /// interpreter is neither moved nor dropped.
    pub fn tlb_epoch_ptr(&self) -> *const u64 {
        &self.cpu.tlb.epoch
    }

    /// Hands the reads `pure_mmio_read` served from its copy of a stable
    /// register over to the device and the bus, which count them as if
    /// each had been made: the translator calls this whenever translated
    /// code returns, so the machine's statistics are whole whenever
    /// anything outside the run can read them.
    pub fn flush_stable_reads(&mut self, m: &mut Machine) {
        if let Some(s) = &mut self.stable {
            if s.hits > 0 {
                m.bus.count_stable_reads(s.reg, std::mem::take(&mut s.hits));
            }
        }
    }

    /// A run of the translator starts at `pc`, which is not one of its
    /// breakpoints: the breakpoint the last run stopped at, if that was
    /// `pc`, has been left (as the interpreter's own run loop decides at
    /// its first instruction), so it stops there again next time.
    #[inline]
    pub fn leave_breakpoint(&mut self, pc: u32) {
        if self.resume_bp == Some(pc) {
            self.resume_bp = None;
        }
    }

    /// The TLB that accesses at the current CPL use, laid out as
    /// `TLB_LAYOUT` says, for translated code to read (never to write). It
    /// lives as long as this interpreter.
    #[inline]
    pub fn tlb_for_cpl(&self) -> *const TlbEntry {
        self.cpu.tlb_for_cpl()
    }

    /// Takes back what translated code changed: the general registers,
    /// the status flags (`STATUS_FLAGS` of `status`; the rest of EFLAGS is
    /// left alone) and EIP.
    #[inline]
    pub fn set_translated_state(&mut self, regs: [u32; 8], status: u32, eip: u32) {
        let c = &mut self.cpu;
        c.regs = regs;
        let old = c.fl.get();
        c.fl.set((old & !STATUS_FLAGS) | (status & STATUS_FLAGS) | 2);
        c.eip = eip;
    }
}
