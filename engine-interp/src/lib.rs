//! ringlab's interpreter: the reference engine. Every instruction is decoded
//! once with iced-x86, lowered into a pre-decoded `Op` (handler pointer plus
//! operands) and cached in blocks by guest physical address; execution runs
//! the handlers block by block (a block remembers the block that followed
//! it) with lazy flags and a software TLB. Faults are values that unwind to
//! the block loop, which delivers them through the IDT. See
//! ARCHITECTURE.md, "Running a machine".

mod alu;
mod block;
mod codepages;
mod control;
mod cpu;
mod decode;
pub mod deprivilege;
pub mod fallback;
mod fault;
mod flags;
mod interrupts;
mod io;
mod memo;
mod mmu;
mod muldiv;
mod ops;
mod segments;
mod shift;
mod stack;
mod string;
mod system;
mod task;

/// The interpreter's CPU, seen read-only from outside (`Interp::cpu`).
pub use cpu::Cpu;

use block::Cache;
use cpu::CS;
use machine::cpu::flags as f;
use machine::{Counter, CpuState, Engine, EngineError, EngineStats, Limits, Machine, Stop};
use std::rc::Rc;

/// Consecutive exception deliveries without a retired instruction after
/// which a guest counts as stuck in its handlers (a working handler
/// retires an instruction after each delivery; nested faults on the way
/// to #DF are a handful).
const STUCK_DELIVERIES: u64 = 64;

pub struct Interp {
    cpu: Cpu,
    cache: Cache,
    /// A breakpoint we stopped at, not to be hit again before moving on.
    resume_bp: Option<u32>,
    /// Virtual time at the last stop (for the TSC in `cpu_state`).
    now: u64,
    /// Instructions this engine retired.
    retired: u64,
    /// Consecutive exec calls that retired nothing (faulting handlers).
    stalls: u64,
    /// IN and OUT that `callout_port` ran while no one wanted each
    /// sensitive-instruction event: counted here, handed to the trace by
    /// `flush_port_counts`.
    port_counts: [u64; 2],
    /// Code pages this engine invalidated on its own, kept for an engine
    /// that runs it as its fallback (the translator) when `log_invalidated`
    /// (`Interp::new_fallback`, `take_stale_code_pages`).
    invalidated: Vec<u32>,
    log_invalidated: bool,
    /// The last device page `pure_mmio_read` translated: (linear page,
    /// user, TLB epoch, physical page). The TLB holds RAM only; this one
    /// entry spares xv6's local APIC reads a page walk each.
    mmio_page: Option<(u32, bool, u64, u32)>,
    /// The last stable device register `pure_mmio_read` read
    /// (`machine::bus::Device::mmio_read_is_stable`) and its value.
    stable: Option<fallback::StableRead>,
    /// The id of the guest RAM the block cache was filled from
    /// (`GuestMemory::id`; 0 before the first run).
    ram_id: u64,
    /// The breakpoints the cached blocks end before (sorted): a run's
    /// breakpoints stop it at block boundaries (`exec`), so blocks never
    /// run over one.
    breakpoints: Vec<u32>,
}

impl Default for Interp {
    fn default() -> Self {
        Interp::new()
    }
}

/// The run loop reads the wall clock every this many iterations (a REP
/// string instruction suspended after a chunk of its iterations ends
/// one: 8 chunks to a slow device take a few milliseconds)...
const CLOCK_EVERY: u32 = 8;
/// ...or once this many instructions retired since the last read.
const CLOCK_INSNS: u64 = 1 << 16;

/// Most instructions one `exec` call runs, so the run loop looks at the
/// wall clock (timeouts) at least every few milliseconds.
const SLICE: u64 = 1 << 22;

/// Why `exec` returned early.
/// How one instruction ended (`run_op`).
pub(crate) enum OpEnd {
    /// Completed; the block goes on.
    Next,
    /// Completed and asked the run loop to look (`exit_block`), or faulted
    /// and the exception was delivered.
    Exit,
    /// Completed: a conditional branch taken in the middle of its block
    /// (`Cpu::taken`); the run goes on at the block there.
    Taken,
    /// Faulted, and the delivery triple-faulted.
    Triple,
}

/// Runs `op`, the instruction at `start` (EIP already past it), as the
/// run loop does: a completed instruction counted in `pending` (unless it
/// is to run again: a REP string instruction's next chunk), a faulting
/// one's exception raised with EIP back at `start`. `Interp::exec` and
/// `Interp::exec_decoded` share it.
#[inline(always)]
pub(crate) fn run_op(c: &mut Cpu, m: &mut Machine, op: &ops::Op, start: u32) -> OpEnd {
    match (op.f)(c, m, op) {
        Ok(()) => {
            if c.exit_block {
                if std::mem::take(&mut c.taken) {
                    c.exit_block = false;
                    c.pending += 1;
                    return OpEnd::Taken;
                }
                if !std::mem::take(&mut c.restart) {
                    c.pending += 1;
                }
                return OpEnd::Exit;
            }
            c.pending += 1;
            OpEnd::Next
        }
        Err(e) => {
            c.eip = start;
            // A faulting instruction did not complete: its accesses do not
            // trap (the delivery's pushes may, after it).
            c.watch_hit = None;
            if c.raise(m, e) {
                OpEnd::Exit
            } else {
                OpEnd::Triple
            }
        }
    }
}

enum Flow {
    Continue,
    Triple,
}

impl Interp {
    pub fn new() -> Interp {
        Interp {
            cpu: Cpu::reset(),
            cache: Cache::new(),
            resume_bp: None,
            now: 0,
            retired: 0,
            stalls: 0,
            port_counts: [0; 2],
            invalidated: Vec::new(),
            log_invalidated: false,
            mmio_page: None,
            stable: None,
            ram_id: 0,
            breakpoints: Vec::new(),
        }
    }

    /// Decides interrupt deliveries and IRETs whose inputs are byte for
    /// byte those of an earlier one as that one was decided (`memo.rs`).
    /// The translator's choice; the interpreter, the reference, checks
    /// every one in full.
    pub fn use_delivery_memo(&mut self) {
        self.cpu.memo = Some(Box::new(memo::Memos::new()));
    }

    /// Deliveries and IRETs that the memo decided, and those it had but
    /// that were checked in full (something had changed).
    pub fn delivery_memo_counts(&self) -> (u64, u64) {
        self.cpu
            .memo
            .as_ref()
            .map_or((0, 0), |m| (m.hits, m.misses))
    }

    /// Trap-and-emulate mode for the Popek-Goldberg lab (see
    /// `deprivilege.rs`): the guest's ring 0 runs as if in ring 1 under a
    /// monitor.
    pub fn set_deprivilege(&mut self, on: bool) {
        self.cpu.deprivilege = on;
    }

    /// The CPU, read-only.
    pub fn cpu(&self) -> &Cpu {
        &self.cpu
    }

    /// Runs up to `budget` instructions, block after block, until a block
    /// ends with something the run loop must look at (`exit_block`: I/O,
    /// a mode or IF change, a write to cached code, an exception) or the
    /// budget is used up. Device deadlines are already folded into `budget`.
    /// It also returns before a block that starts at one of `bps` (other
    /// than the first, which the run loop has just let through), for the
    /// run loop to stop there; blocks end before breakpoints
    /// (`honour_breakpoints`), so that is exact.
    fn exec(&mut self, m: &mut Machine, budget: u64, bps: &[u32]) -> Flow {
        let c = &mut self.cpu;
        let mut first = true;
        c.exit_block = false;
        c.rep_left = string::REP_CHUNK;
        let mut remaining = budget;
        let mut flow = Flow::Continue;
        let mut prev: Option<Rc<block::Block>> = None;
        'blocks: while remaining > 0 {
            let lin = c.segs[CS].base.wrapping_add(c.eip);
            let at_bp = !bps.is_empty() && bps.contains(&lin);
            if at_bp && !first {
                break;
            }
            first = false;
            let chained = prev.as_ref().and_then(|p| p.chained(lin, c.tlb.epoch));
            let blk = match chained {
                Some(b) => b,
                None => match block::lookup(c, m, &mut self.cache, &self.breakpoints) {
                    Ok(b) => {
                        if let Some(p) = &prev {
                            p.link(lin, c.tlb.epoch, &b);
                        }
                        b
                    }
                    Err(e) => {
                        c.watch_hit = None;
                        if !c.raise(m, e) {
                            flow = Flow::Triple;
                        }
                        break;
                    }
                },
            };
            let cs_limit = c.segs[CS].limit;
            let limit_ok = (c.eip as u64 + blk.bytes as u64) <= cs_limit as u64 + 1;
            let ip_mask = c.ip_mask();
            let entry = (c.eip, c.tlb.epoch);
            // A block that jumps back to its own start (a hot loop) runs
            // again at once, as long as nothing changed its mapping.
            loop {
                c.counters.blocks_run += 1;
                let mut n = (blk.ops.len() as u64).min(remaining) as usize;
                for (k, op) in blk.ops[..n].iter().enumerate() {
                    let start = c.eip;
                    if !limit_ok && start as u64 + op.len as u64 > cs_limit as u64 + 1 {
                        if !c.raise(m, fault::Exc::new(fault::vec::GP, Some(0))) {
                            flow = Flow::Triple;
                        }
                        break 'blocks;
                    }
                    c.eip = start.wrapping_add(op.len as u32) & ip_mask;
                    match run_op(c, m, op, start) {
                        OpEnd::Next => {}
                        OpEnd::Taken => {
                            n = k + 1;
                            break;
                        }
                        OpEnd::Exit => break 'blocks,
                        OpEnd::Triple => {
                            flow = Flow::Triple;
                            break 'blocks;
                        }
                    }
                }
                remaining -= n as u64;
                if remaining == 0 || (c.eip, c.tlb.epoch) != entry || at_bp {
                    break;
                }
            }
            prev = Some(blk);
        }
        // Port accesses may have retired part of `pending` already.
        let done = c.pending;
        c.pending = 0;
        m.retire(done);
        self.retired += done + std::mem::take(&mut c.synced);
        flow
    }

    fn run_inner(&mut self, m: &mut Machine, limits: &Limits, single: bool) -> Stop {
        // Time runs on retired instructions here, also after KVM (which
        // drives it by host time) handed the machine over.
        m.clock.set_mode(machine::ClockMode::Instructions);
        // Blocks are cached by guest physical address: handed another
        // machine's RAM (`Engine::run` takes any machine), none may stay.
        if self.ram_id != m.mem.id() {
            self.cache.clear();
            self.ram_id = m.mem.id();
        }
        let step_target = m.icount() + 1;
        let careful = m.trace.stop_pending() || single;
        self.honour_breakpoints(&limits.breakpoints);
        // The wall clock is read on the first iteration, then every
        // CLOCK_EVERY iterations or once CLOCK_INSNS instructions retired
        // since the last read: a loop whose iterations are short (an
        // exception and its handler's IRET each end one) read it every
        // few instructions (a fifth of the time of a page-fault loop).
        let mut tick = 0u32;
        let mut next_clock_read = 0u64;
        loop {
            if let Some(s) = m.stop_requested() {
                return s.to_stop();
            }
            self.invalidate_written(m);
            self.cpu.sync_tlb(m);
            if m.trace.take_stop_hit() {
                return Stop::Event;
            }
            if single && m.icount() >= step_target {
                return Stop::Stepped;
            }
            if let Some(max) = limits.max_icount {
                // Exception deliveries that retire nothing count against
                // the budget only once a guest is stuck in them (so a
                // handler that faults at once still ends at the budget);
                // a lone fault must not stop a run short of an exact
                // point (a switch, a step target).
                let stuck = if self.stalls >= STUCK_DELIVERIES {
                    self.stalls
                } else {
                    0
                };
                if m.icount() + stuck >= max {
                    return Stop::Budget;
                }
            }
            tick = tick.wrapping_add(1);
            if (tick % CLOCK_EVERY == 1 || m.icount() >= next_clock_read)
                && limits.deadline.is_some()
            {
                next_clock_read = m.icount() + CLOCK_INSNS;
                if limits.expired() {
                    return Stop::Timeout;
                }
            }
            let c = &mut self.cpu;
            // NMI: not masked by IF, blocked after one until the next IRET
            // and, like every interrupt, for the instruction after MOV SS
            // (SDM Vol 3A 6.7.1, 6.8.3); it wakes a halted CPU.
            if !c.nmi_blocked && !c.shadow && m.take_nmi() {
                c.nmi_blocked = true;
                if !c.interrupt(m, 2) {
                    return Stop::TripleFault;
                }
                if let Some(s) = self.watch_stop() {
                    return s;
                }
                if single {
                    return Stop::Stepped;
                }
                continue;
            }
            let if_ = c.fl.bits & f::IF != 0;
            if c.halted {
                if if_ && m.interrupt_pending() {
                    let v = m.acknowledge_interrupt();
                    if !c.interrupt(m, v) {
                        return Stop::TripleFault;
                    }
                    if let Some(s) = self.watch_stop() {
                        return s;
                    }
                    if single {
                        return Stop::Stepped;
                    }
                    continue;
                }
                if !if_ {
                    return Stop::Halted;
                }
                if !m.warp_to_deadline() {
                    return Stop::Idle;
                }
                continue;
            }
            let mut budget = u64::MAX;
            if c.shadow {
                c.shadow = false;
                budget = 1;
            } else if if_ && m.interrupt_pending() {
                let v = m.acknowledge_interrupt();
                if !c.interrupt(m, v) {
                    return Stop::TripleFault;
                }
                if let Some(s) = self.watch_stop() {
                    return s;
                }
                if single {
                    return Stop::Stepped;
                }
                continue;
            }
            if !limits.breakpoints.is_empty() {
                let pc = c.segs[CS].base.wrapping_add(c.eip);
                if self.resume_bp == Some(pc) {
                    self.resume_bp = None;
                } else if limits.breakpoints.contains(&pc) {
                    self.resume_bp = Some(pc);
                    return Stop::Breakpoint { addr: pc };
                }
            }
            // EFLAGS.TF: a #DB trap after each instruction (SDM Vol 3A
            // 17.3.1.4); sampled before the instruction, so the one that
            // sets TF (POPF, IRET) does not trap.
            let single_step = c.fl.bits & f::TF != 0;
            // EFLAGS.RF (set by a fault's delivery and brought back by the
            // handler's IRET) lasts until the next instruction completes.
            let rf = c.fl.bits & f::RF != 0;
            if rf {
                c.rf_loaded = false;
            }
            if careful || single_step || rf {
                budget = 1;
            }
            if let Some(max) = limits.max_icount {
                budget = budget.min(max.saturating_sub(m.icount()).max(1));
            }
            // (One instruction needs no look at the deadline: a division.)
            if budget > 1 {
                budget = budget.min(m.insns_until_deadline().max(1)).min(SLICE);
            }
            let before = m.icount();
            if let Flow::Triple = self.exec(m, budget, &limits.breakpoints) {
                return Stop::TripleFault;
            }
            // A guest whose exception handlers fault at once retires
            // nothing; those deliveries count against the budget so such a
            // loop still ends (a real CPU would spin there forever).
            if m.icount() == before {
                self.stalls += 1;
            } else {
                self.stalls = 0;
                if rf && !self.cpu.rf_loaded {
                    self.cpu.fl.bits &= !f::RF;
                }
                if single_step && !self.cpu.halted {
                    self.cpu.dr6 |= 1 << 14; // DR6.BS
                    if !self.cpu.raise(m, fault::Exc::new(fault::vec::DB, None)) {
                        return Stop::TripleFault;
                    }
                }
            }
            // A data watchpoint hit: a trap, after the instruction (a
            // REP string instruction stopped after the iteration) or
            // after the delivery that pushed onto a watched stack. A #DB
            // from TF is delivered first, so nothing is lost.
            if let Some(s) = self.watch_stop() {
                return s;
            }
            // `cli; jmp $` (`control::jmp_rel`): dead unless an NMI is
            // waiting to be taken (the loop's top delivers it).
            let spun = std::mem::take(&mut self.cpu.spinning);
            let nmi_waits = m.nmi_pending() && !self.cpu.nmi_blocked;
            if spun && !nmi_waits {
                return Stop::Spinning;
            }
            if single {
                // One instruction, or one exception delivered.
                return m.stop_requested().map_or(Stop::Stepped, |s| s.to_stop());
            }
        }
    }
}

impl Interp {
    /// Makes the cached blocks end before each of `wanted` (a run's
    /// breakpoints): when one is new, the cache is emptied (blocks are
    /// rebuilt as they run). A run without breakpoints changes nothing:
    /// blocks that end early at a breakpoint since removed are harmless,
    /// and the translator, which runs this interpreter with and without
    /// its breakpoints, does not empty the cache each time.
    fn honour_breakpoints(&mut self, wanted: &[u32]) {
        if wanted.is_empty()
            || wanted
                .iter()
                .all(|b| self.breakpoints.binary_search(b).is_ok())
        {
            return;
        }
        self.breakpoints = wanted.to_vec();
        self.breakpoints.sort_unstable();
        self.breakpoints.dedup();
        self.cache.clear();
    }

    /// The stop for a data watchpoint the last instruction or delivery
    /// hit, if it hit one.
    #[inline]
    fn watch_stop(&mut self) -> Option<Stop> {
        let w = self.cpu.watch_hit.take()?;
        Some(Stop::Watchpoint {
            addr: w.addr,
            kind: w.kind,
        })
    }
}

impl Engine for Interp {
    fn name(&self) -> &'static str {
        "interp"
    }

    fn run(&mut self, m: &mut Machine, limits: &Limits) -> Result<Stop, EngineError> {
        let s = self.run_inner(m, limits, false);
        self.now = m.clock.now();
        Ok(s)
    }

    fn step(&mut self, m: &mut Machine) -> Result<Stop, EngineError> {
        self.exec_one(m, fallback::Recorded::Interpreted, None)
    }

    fn cpu_state(&mut self) -> Result<CpuState, EngineError> {
        Ok(self.cpu.to_state(self.now))
    }

    fn set_cpu_state(&mut self, m: &mut Machine, s: &CpuState) -> Result<(), EngineError> {
        self.now = m.clock.now();
        let deprivilege = self.cpu.deprivilege;
        let memo = self.cpu.memo.is_some();
        self.cpu = Cpu::from_state(s, self.now);
        self.cpu.deprivilege = deprivilege;
        if memo {
            self.use_delivery_memo();
        }
        // Another engine (KVM) may have written guest memory without telling
        // us: start from an empty cache.
        self.cache.clear();
        self.cpu.tlb.epoch += 1;
        m.mem.take_written_code_pages();
        self.cpu.tlb.generation = m.mapping_generation();
        Ok(())
    }

    fn stats(&self) -> EngineStats {
        let k = &self.cpu.counters;
        EngineStats {
            engine: "interp".into(),
            instructions: Some(self.retired),
            counters: vec![
                Counter::BlocksBuilt.entry(k.blocks_built),
                Counter::BlocksRun.entry(k.blocks_run),
                Counter::BlockInvalidations.entry(k.block_invalidations),
                Counter::TlbMisses.entry(k.tlb_misses),
                Counter::TlbFlushes.entry(k.tlb_flushes),
                Counter::Exceptions.entry(k.exceptions),
                Counter::Interrupts.entry(k.interrupts),
            ],
        }
    }
}
