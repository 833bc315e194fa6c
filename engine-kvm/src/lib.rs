//! ringlab's KVM engine: the same machine on the real CPU through
//! /dev/kvm. Guest RAM is the machine's own mapping; there is no in-kernel
//! PIC or PIT — the shared 8259A and 8254 in user space serve this engine
//! as they serve the others, so interrupts are injected with KVM_INTERRUPT
//! and device deadlines interrupt KVM_RUN through a timer signal. Ring
//! transitions happen in silicon: the engine sees only VM exits, and that
//! is what it reports. See ARCHITECTURE.md, "Running a machine" and "How
//! an `OUT` reaches a device".
//!
//! The files: `vm` sets the VM and its vCPU up, `memory` maps the
//! machine's RAM into it, `vcpu` is the vCPU as the engine drives it,
//! `run` the run loop and `exits` what each exit means for the machine,
//! `clock` virtual time, `timer` the deadline signal, `insn` the decoding
//! of the instruction at a stop, `debug` breakpoints and watchpoints and
//! `pvm` the diagnosis of kvm-pvm's limits. This file is the `Engine`
//! glue, and the debugger's run loop over `run` (see `debug`).

#![deny(clippy::undocumented_unsafe_blocks)]

mod apic_shadow;
mod clock;
mod debug;
pub mod error;
pub mod exits;
pub mod host;
mod insn;
pub mod memory;
mod pvm;
mod run;
pub mod stall;
pub mod state;
mod stats;
pub mod timer;
mod vcpu;
mod vm;

pub use error::KvmError;

use debug::{GuestDebug, Patches, Plan, Slot, BP_VECTOR, DB_VECTOR, HLT, HLT_EXIT};
use kvm_ioctls::{VcpuFd, VmFd};
use machine::cpu::CpuState;
use machine::x86::paging::Regs;
use machine::{
    ClockMode, Engine, EngineError, EngineStats, Limits, Machine, PrivCause, Stop, WatchKind,
    Watchpoint,
};
use memory::Mapping;
use run::LoopState;
use std::time::{Duration, Instant};
use vcpu::Vcpu;

pub struct Kvm {
    vm: VmFd,
    vcpu: VcpuFd,
    /// The memory slots, bound to the machine the engine was created for.
    memory: Mapping,
    /// What the run loop keeps: exit counts, the clock, stepping.
    st: LoopState,
    /// Host time KVM_CREATE_VM to a ready vCPU took, in microseconds.
    setup_us: u64,
    /// Instructions run by single stepping: the only ones KVM can count.
    stepped: u64,
    /// The "hardware" under KVM is QEMU's TCG (the test VM): TR is
    /// imported with its TSS type marked available, as TCG caches it.
    tcg_host: bool,
    /// A breakpoint we stopped at: the next time execution reaches it, its
    /// instruction runs once without stopping (as on the interpreter).
    resume_bp: Option<u32>,
    /// The INT3s written into guest RAM during a run (`debug`).
    patches: Patches,
    /// What of the debug registers and INT3 interception this host's KVM
    /// does right (`debug::Caps`).
    caps: debug::Caps,
    /// What the debugger saw, for the stats.
    dbg: DebugCounts,
}

/// Counters of the debugger's work on KVM.
#[derive(Clone, Copy, Debug, Default)]
struct DebugCounts {
    /// Handler frames whose saved EFLAGS had KVM's stepping TF taken out.
    step_tf_scrubbed: u64,
    /// Single steps of STI made by the engine (`Kvm::step_sti`).
    sti_emulated: u64,
    /// Stops at a breakpoint: by an INT3 patch, by a debug register, by
    /// comparing the PC while single-stepping.
    bp_int3: u64,
    bp_hlt: u64,
    bp_dr: u64,
    bp_stepped: u64,
    /// INT3 patches hit at a linear address that is no breakpoint (the
    /// physical page mapped elsewhere too), stepped over.
    alias_steps: u64,
    /// The guest's own INT3s (and #DBs) handed back to it.
    reinjected: u64,
    /// Watchpoint stops, and read-watch hits dropped as writes.
    watch_hits: u64,
    watch_writes_dropped: u64,
}

/// Creates the KVM engine over `m`, or says why this host cannot.
pub fn create(m: &mut Machine) -> Result<Box<dyn Engine>, EngineError> {
    Ok(Box::new(Kvm::new(m)?))
}

impl Kvm {
    /// The engine over `m`, and only `m`: KVM's memory slots map its RAM.
    pub fn new(m: &mut Machine) -> Result<Kvm, EngineError> {
        Ok(Kvm::open(m)?)
    }

    /// `new`, with the cause of a failure kept (`KvmError`).
    pub fn open(m: &mut Machine) -> Result<Kvm, KvmError> {
        let started = Instant::now();
        let host = host::detect();
        let vm::Vm {
            vm,
            vcpu,
            readonly_mem,
            memslots,
        } = vm::create(host, m.apic_base())?;
        let mut k = Kvm {
            vm,
            vcpu,
            memory: Mapping::new(m, readonly_mem, memslots)?,
            st: LoopState::new(host, m.clock.now()),
            setup_us: 0,
            stepped: 0,
            tcg_host: false,
            resume_bp: None,
            patches: Patches::default(),
            caps: debug::Caps {
                dr_exec: true,
                dr_data: true,
                int3: true,
                hlt: true,
            },
            dbg: DebugCounts::default(),
        };
        k.tcg_host = host::hypervisor_signature().as_deref() == Some("TCGTCGTCGTCG");
        let pvm = host == host::HostKind::Pvm;
        k.caps = debug::Caps {
            dr_exec: !k.tcg_host,
            dr_data: !k.tcg_host && !pvm,
            int3: !pvm && !k.tcg_host,
            hlt: !pvm,
        };
        k.st.handler_stops = k.caps.hlt;
        k.st.stats = stats::VcpuStats::open(&k.vcpu);
        k.memory.update(&k.vm, m, false)?;
        k.setup_us = started.elapsed().as_micros() as u64;
        Ok(k)
    }

    /// Whether breakpoints and watchpoints use the debug registers (DR0-DR3)
    /// where they can. On by default, except where the CPU under KVM is
    /// QEMU's TCG (its emulated SVM does not fire them: see the `debug`
    /// module); off, everything is done with INT3 patches and single
    /// stepping. For tests and diagnosis.
    pub fn use_debug_registers(&mut self, on: bool) {
        self.caps.dr_exec = on;
        self.caps.dr_data = on;
    }

    /// Whether breakpoints beyond the debug registers may be INT3 patches
    /// (KVM_GUESTDBG_USE_SW_BP). On by default on hardware; off on
    /// kvm-pvm and under QEMU's emulated SVM, where the #BP never reaches
    /// us (`debug`). For tests and diagnosis.
    pub fn use_int3(&mut self, on: bool) {
        self.caps.int3 = on;
    }

    /// Whether breakpoints that are neither in a debug register nor INT3
    /// patches may be HLT patches on supervisor-only code, and whether a
    /// single step that delivers an interrupt, runs an INT n or faults
    /// stops at the handler's first instruction by a HLT written there for
    /// the entry (`debug`). On by default except on kvm-pvm; off, such
    /// breakpoints are compared with the PC while single-stepping and a
    /// stepped delivery runs its handler unseen. For tests and diagnosis.
    pub fn use_hlt(&mut self, on: bool) {
        self.caps.hlt = on;
        self.st.handler_stops = on;
    }

    /// Whether the CPU's own writes of descriptor bits into the firmware
    /// ROM are dropped, as a PC's ROM drops them (on by default). Off, such
    /// a write wedges the vCPU inside KVM, and the watchdog stops the run
    /// with `KvmError::NoProgress`: for the watchdog's tests and diagnosis.
    pub fn drop_rom_writes(&mut self, on: bool) {
        self.st.drop_rom_writes = on;
    }

    /// The machine's clock goes on from where it stood when the last run
    /// or step returned: it stands still while nobody runs the guest (a
    /// debugger holding it, the step UI waiting for a key), as QEMU's
    /// virtual clock stops with the VM. Were host time counted there,
    /// every device deadline would have passed at each resume: a
    /// conditional breakpoint on a kernel's interrupt return (gdb's
    /// `break trapret if ...` on xv6, a few ms per stop in the test VM)
    /// delivered the next timer tick at every resume, and the guest never
    /// got past it.
    fn resume_clock(&mut self, m: &Machine) {
        self.st.clock.set(m.clock.now());
    }

    fn read_regs(&self) -> Result<CpuState, KvmError> {
        vcpu::read_regs(&self.vcpu, self.st.last.as_ref())
    }

    /// The run loop proper (`run::run`) over this engine's vCPU and slots.
    fn run_loop(&mut self, m: &mut Machine, limits: &Limits) -> Result<Stop, KvmError> {
        let Kvm {
            vm,
            vcpu,
            memory,
            st,
            ..
        } = self;
        run::run(vcpu, st, m, limits, |m, w| memory.update(vm, m, w))
    }

    fn step_inner(&mut self, m: &mut Machine) -> Result<Stop, KvmError> {
        self.memory.check(m)?;
        let before = self.read_regs()?;
        if let Some(stop) = self.step_sti(m, &before)? {
            return Ok(stop);
        }
        let injected = self.st.injected;
        let gd = self.st.guest_debug;
        self.vcpu.set_debug(&GuestDebug {
            single_step: true,
            ..gd
        })?;
        self.st.stepping = true;
        if self.st.handler_stops {
            match insn::soft_interrupt_vector(m, &before, gd.sw_bp) {
                Some(vector) => run::arm_handler_stop(&mut self.st, m, &before, vector, true),
                None => run::arm_fault_stops(&mut self.st, m, &before),
            }
        }
        let limits = Limits {
            max_icount: None,
            deadline: Some(Instant::now() + Duration::from_secs(5)),
            breakpoints: vec![],
        };
        if !self.st.instruction_clock {
            m.clock.set_mode(ClockMode::HostTime);
        }
        let r = self.run_loop(m, &limits);
        self.st.stepping = false;
        self.vcpu.set_debug(&gd)?;
        // An INT3 or HLT patch stopped the step before its instruction.
        let int3 = matches!(self.st.debug_exit,
            Some(e) if e.exception == BP_VECTOR || e.exception == HLT_EXIT);
        // A debug exit after a step with nothing injected is one retired
        // instruction: the machine's count moves, so a switched run (or
        // the terminal UI) can count on KVM by stepping. A step that
        // injected an interrupt is the delivery, which the interpreter does
        // not count either.
        if matches!(r, Ok(Stop::Stepped))
            && self.st.injected == injected
            && !int3
            && !self.st.faulted
        {
            // MOV SS and POP SS hold the trap over the next instruction:
            // that step retired two.
            let n = if insn::loads_ss(m, &before) { 2 } else { 1 };
            self.stepped += n;
            m.retire(n);
        }
        // While stepping, ring changes are seen from CS (and EFLAGS.VM)
        // between two instructions; the cause is read from the instruction
        // that was stepped.
        let after = match self.read_regs() {
            Ok(after) => after,
            // The run's own error, if it failed, says more.
            Err(e) => return r.and(Err(e)),
        };
        // KVM's stepping TF, pushed into a handler's frame by a delivery
        // during the step, is taken out of it (`debug::scrub_step_trap_flag`).
        if debug::scrub_step_trap_flag(m, &before, &after) {
            self.dbg.step_tf_scrubbed += 1;
        }
        if after.cpl() != before.cpl() {
            let cause = if self.st.injected != injected {
                PrivCause::HardwareInterrupt
            } else {
                insn::ring_change_cause(m, &before)
            };
            let now = m.clock.now();
            m.trace.record(
                m.icount(),
                now,
                machine::Event::PrivilegeChange {
                    from: before.cpl(),
                    to: after.cpl(),
                    cause,
                    eip: before.eip,
                    eax: before.regs[machine::cpu::EAX],
                },
            );
        }
        r
    }
}

impl Kvm {
    /// A step of STI, made here rather than by the CPU: QEMU's TCG (the
    /// test VM's CPU) takes no single-step trap after an instruction that
    /// opens an interrupt shadow (its translate.c: the trap is skipped
    /// under `inhibit`, which STI sets as MOV SS does), so a TF step of STI
    /// ran the next instruction too, and a breakpoint there (the
    /// interrupts lesson's `sti; idle: hlt`) was passed. The SDM (Vol 3A
    /// 17.3.1.4) holds the trap back after MOV SS and POP SS only. Done
    /// where STI does not fault: IF set, EIP past it, the shadow where IF
    /// was clear (SDM Vol 2B STI). Only there: elsewhere the CPU steps
    /// STI as the SDM says.
    fn step_sti(&mut self, m: &mut Machine, before: &CpuState) -> Result<Option<Stop>, KvmError> {
        if !self.tcg_host {
            return Ok(None);
        }
        let iopl = ((before.eflags & machine::cpu::flags::IOPL) >> 12) as u8;
        let allowed = !before.protected() || !before.v86() && before.cpl() <= iopl;
        let Some(len) = insn::sti_len(m, before).filter(|_| allowed) else {
            return Ok(None);
        };
        run::complete_io(&mut self.vcpu, &mut self.st)?;
        let shadow = before.eflags & machine::cpu::flags::IF == 0;
        self.vcpu.emulate_sti(len, shadow)?;
        self.st.halted = false;
        self.stepped += 1;
        m.retire(1);
        self.dbg.sti_emulated += 1;
        Ok(Some(Stop::Stepped))
    }
}

/// One of our patches (`byte`: INT3 or HLT) stopped the guest at `pc`:
/// at a breakpoint, counted (unless it is the one being resumed from),
/// and CheckPc stops there or steps over it; elsewhere another mapping's
/// alias of a patched byte, stepped over.
fn patch_hit(
    dbg: &mut DebugCounts,
    resume_bp: Option<u32>,
    bps: &[u32],
    pc: u32,
    byte: u8,
) -> Next {
    if !bps.contains(&pc) {
        dbg.alias_steps += 1;
        return Next::StepOver(pc);
    }
    if resume_bp != Some(pc) {
        if byte == HLT {
            dbg.bp_hlt += 1;
        } else {
            dbg.bp_int3 += 1;
        }
    }
    Next::CheckPc
}

/// Why the debugger's loop enters the guest next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    /// Look at the PC first: a breakpoint there stops the run (or, the
    /// one stopped at last, is stepped over).
    CheckPc,
    /// Enter without looking: an exception was just queued for the guest
    /// (its own INT3), which the entry delivers.
    Enter,
    /// Step over the INT3 patch at this PC, which is no breakpoint at this
    /// linear address (an alias).
    StepOver(u32),
}

impl Kvm {
    /// `run` with breakpoints or watchpoints: the plan (`debug::Plan`),
    /// then `debug_loop`; whatever ends it, the INT3s are taken back and
    /// KVM's guest debugging is off again before returning.
    fn debug_run(&mut self, m: &mut Machine, limits: &Limits) -> Result<Stop, KvmError> {
        let watch = m.watchpoints().to_vec();
        let plan =
            Plan::new(&limits.breakpoints, &watch, self.caps).map_err(KvmError::Unsupported)?;
        let r = self.debug_loop(m, limits, &plan, &watch);
        self.patches.clear(m);
        self.st.exit_on_hlt = false;
        self.st.guest_debug = GuestDebug::default();
        let off = self.vcpu.set_debug(&GuestDebug::default());
        let stop = r?;
        off?;
        Ok(stop)
    }

    fn debug_loop(
        &mut self,
        m: &mut Machine,
        limits: &Limits,
        plan: &Plan,
        watch: &[Watchpoint],
    ) -> Result<Stop, KvmError> {
        let bps = &limits.breakpoints;
        let s = self.read_regs()?;
        // What the watched bytes hold, for telling a read watchpoint's
        // reads from writes (DR7 has no read-only kind).
        let mut seen: Vec<Vec<Option<u8>>> = watch
            .iter()
            .map(|w| debug::watched_bytes(m, Regs::of(&s), w))
            .collect();
        let mut next = Next::CheckPc;
        loop {
            if limits.expired() {
                return Ok(Stop::Timeout);
            }
            let s = self.read_regs()?;
            let pc = s.pc_linear();
            // The breakpoint whose patch (or register) is left out for
            // one stepped instruction.
            let mut except = None;
            match next {
                Next::CheckPc if bps.contains(&pc) => {
                    if self.resume_bp != Some(pc) {
                        self.resume_bp = Some(pc);
                        return Ok(Stop::Breakpoint { addr: pc });
                    }
                    except = Some(pc);
                }
                Next::StepOver(at) => except = Some(at),
                _ => {}
            }
            next = Next::CheckPc;
            self.patches
                .refresh(m, Regs::of(&s), &plan.soft, except, plan.patch_byte);
            // (For the whole run: a patch may be made at any exit.)
            self.st.exit_on_hlt = plan.patch_byte == HLT && !plan.soft.is_empty();
            // Single-step: over a breakpoint, past breakpoints that could
            // not be patched (compared with the PC above), or to check
            // watchpoints by decoding.
            let stepping = except.is_some()
                || !self.patches.unpatched.is_empty()
                || !plan.stepped_bps.is_empty()
                || !plan.stepped_watch.is_empty();
            self.st.guest_debug = GuestDebug {
                single_step: false,
                sw_bp: !plan.soft.is_empty() && plan.patch_byte == debug::INT3,
                hw: plan.debugregs(except),
            };
            self.vcpu.set_debug(&self.st.guest_debug)?;
            let accesses = if plan.stepped_watch.is_empty() {
                None
            } else {
                insn::accesses(m, &s)
            };
            let injected = self.st.injected;
            let icount = m.icount();
            let r = if stepping {
                // The clock goes on by host time, at most `STEPPED_NS` a
                // step (see there).
                self.st.clock_cap = Some(m.clock.now() + run::STEPPED_NS);
                let r = self.step_inner(m);
                self.st.clock_cap = None;
                r?
            } else {
                self.run_patched(m, limits, plan)?
            };
            if r != Stop::Stepped {
                return Ok(r);
            }
            let exit = self.st.debug_exit.take();
            // A step that ran the instruction at the PC (not an interrupt
            // delivered instead, not an INT3 patch that stopped it).
            let ran = stepping && self.st.injected == injected && m.icount() > icount;
            if ran && except == self.resume_bp && except.is_some() {
                self.resume_bp = None;
            }
            // (Not run, an interrupt delivered first: the breakpoint is
            // stepped over when execution comes back to it, `resume_bp`
            // stays, as on the interpreter.)
            let Some(e) = exit else {
                // A step completed through an I/O exit, or the patches
                // asked to re-plan (a breakpoint's page went away).
                if ran {
                    if let Some(stop) = self.stepped_watch_hit(plan, accesses.as_ref(), &s) {
                        return Ok(stop);
                    }
                }
                continue;
            };
            match e.exception {
                HLT_EXIT => {
                    // KVM skipped the HLT: `e.pc` is after it.
                    let pc = (e.pc as u32).wrapping_sub(1);
                    let regs = Regs::of(&self.read_regs()?);
                    let ours = debug::phys_of(m, regs, pc)
                        .and_then(|p| self.patches.at_phys(p))
                        .is_some_and(|p| p.byte == HLT);
                    let rip = self.vcpu.regs()?.rip;
                    if !ours {
                        // The guest's own HLT: halted, as the run loop
                        // keeps it (a step that ran it retired it).
                        self.st.halted = true;
                        self.st.halted_rip = rip;
                        if stepping && self.st.injected == injected {
                            self.stepped += 1;
                            m.retire(1);
                        }
                        continue;
                    }
                    self.vcpu.set_rip(rip.wrapping_sub(1))?;
                    next = patch_hit(&mut self.dbg, self.resume_bp, bps, pc, HLT);
                }
                BP_VECTOR => {
                    let pc = e.pc as u32;
                    let regs = Regs::of(&self.read_regs()?);
                    let ours = debug::phys_of(m, regs, pc)
                        .and_then(|p| self.patches.at_phys(p))
                        .is_some();
                    if !ours {
                        // The guest's own INT3: delivered as on hardware.
                        self.vcpu.inject_exception(BP_VECTOR as u8)?;
                        self.dbg.reinjected += 1;
                        next = Next::Enter;
                    } else {
                        next = patch_hit(&mut self.dbg, self.resume_bp, bps, pc, debug::INT3);
                    }
                }
                DB_VECTOR => match plan.hit(e.dr6) {
                    Some(Slot::Exec(a)) => {
                        if self.resume_bp != Some(a) {
                            self.dbg.bp_dr += 1;
                        }
                    }
                    Some(Slot::Data { w, .. }) => {
                        let regs = Regs::of(&self.read_regs()?);
                        let i = watch.iter().position(|x| *x == w).unwrap_or(0);
                        let now = debug::watched_bytes(m, regs, &w);
                        let changed = seen.get(i).is_some_and(|b| *b != now);
                        if let Some(b) = seen.get_mut(i) {
                            *b = now;
                        }
                        if w.kind == WatchKind::Read && changed {
                            self.dbg.watch_writes_dropped += 1;
                            next = Next::Enter;
                            continue;
                        }
                        self.dbg.watch_hits += 1;
                        return Ok(Stop::Watchpoint {
                            addr: w.addr,
                            kind: w.kind,
                        });
                    }
                    None if stepping => {
                        if ran {
                            if let Some(stop) = self.stepped_watch_hit(plan, accesses.as_ref(), &s)
                            {
                                return Ok(stop);
                            }
                        }
                        if !self.patches.unpatched.is_empty() || !plan.stepped_bps.is_empty() {
                            // Compared with the PC at the top.
                            self.dbg.bp_stepped +=
                                bps.contains(&self.read_regs()?.pc_linear()) as u64;
                        }
                    }
                    None => {
                        // The guest's own #DB (its TF, ICEBP) while KVM
                        // takes them all for the debug registers.
                        self.vcpu.inject_exception(DB_VECTOR as u8)?;
                        self.dbg.reinjected += 1;
                        next = Next::Enter;
                    }
                },
                _ => {}
            }
        }
    }

    /// One step with the watchpoints checked: in the debug registers, or
    /// by decoding the instruction.
    fn step_watched(&mut self, m: &mut Machine) -> Result<Stop, KvmError> {
        let watch = m.watchpoints().to_vec();
        let plan = Plan::new(&[], &watch, self.caps).map_err(KvmError::Unsupported)?;
        let s = self.read_regs()?;
        let accesses = if plan.stepped_watch.is_empty() {
            None
        } else {
            insn::accesses(m, &s)
        };
        let before: Vec<_> = watch
            .iter()
            .map(|w| debug::watched_bytes(m, Regs::of(&s), w))
            .collect();
        self.st.guest_debug = GuestDebug {
            hw: plan.debugregs(None),
            ..GuestDebug::default()
        };
        let (injected, icount) = (self.st.injected, m.icount());
        let r = self.step_inner(m);
        self.st.guest_debug = GuestDebug::default();
        self.vcpu.set_debug(&GuestDebug::default())?;
        let r = r?;
        let ran = self.st.injected == injected && m.icount() > icount;
        match self.st.debug_exit.take().map(|e| plan.hit(e.dr6)) {
            Some(Some(Slot::Data { w, .. })) => {
                let i = watch.iter().position(|x| *x == w).unwrap_or(0);
                let now = debug::watched_bytes(m, Regs::of(&self.read_regs()?), &w);
                if w.kind == WatchKind::Read && before.get(i) != Some(&now) {
                    self.dbg.watch_writes_dropped += 1;
                    return Ok(r);
                }
                self.dbg.watch_hits += 1;
                Ok(Stop::Watchpoint {
                    addr: w.addr,
                    kind: w.kind,
                })
            }
            _ if ran => Ok(self
                .stepped_watch_hit(&plan, accesses.as_ref(), &s)
                .unwrap_or(r)),
            _ => Ok(r),
        }
    }

    /// The watchpoint an instruction that just ran hit, from its accesses
    /// decoded before it ran (no working debug registers).
    /// `before` is the state the instruction started from: a REP string
    /// instruction may have run several iterations in one step (kvm-pvm
    /// steps them whole), which ECX tells; each access then covers them.
    fn stepped_watch_hit(
        &mut self,
        plan: &Plan,
        accesses: Option<&insn::Accesses>,
        before: &CpuState,
    ) -> Option<Stop> {
        let after = self.read_regs().ok()?;
        let ecx = machine::cpu::ECX;
        let done = before.regs[ecx].wrapping_sub(after.regs[ecx]);
        let (list, rep) = accesses?;
        let iterations = if *rep && done > 1 && done <= 1 << 20 {
            done
        } else {
            1
        };
        let down = before.eflags & machine::cpu::flags::DF != 0;
        let w = list.iter().find_map(|&(a, n, write)| {
            let len = n.saturating_mul(iterations);
            let start = if down { a.wrapping_sub(len - n) } else { a };
            machine::watch::hit(&plan.stepped_watch, start, len, write)
        })?;
        self.dbg.watch_hits += 1;
        Some(Stop::Watchpoint {
            addr: w.addr,
            kind: w.kind,
        })
    }

    /// The run loop at full speed with the patches armed: before every
    /// entry (after every exit) they follow the page tables; a breakpoint
    /// that can no longer be patched ends the run, so the caller
    /// single-steps instead.
    fn run_patched(
        &mut self,
        m: &mut Machine,
        limits: &Limits,
        plan: &Plan,
    ) -> Result<Stop, KvmError> {
        let Kvm {
            vm,
            vcpu,
            memory,
            st,
            patches,
            ..
        } = self;
        run::run_with(
            vcpu,
            st,
            m,
            limits,
            |m, w| memory.update(vm, m, w),
            |v, m| {
                if plan.soft.is_empty() {
                    return Ok(false);
                }
                let sr = vcpu::Vcpu::sregs(v)?;
                let regs = Regs {
                    cr0: sr.cr0 as u32,
                    cr3: sr.cr3 as u32,
                    cr4: sr.cr4 as u32,
                };
                patches.refresh(m, regs, &plan.soft, None, plan.patch_byte);
                Ok(!patches.unpatched.is_empty())
            },
        )
    }
}

impl Engine for Kvm {
    fn name(&self) -> &'static str {
        "kvm"
    }

    fn run(&mut self, m: &mut Machine, limits: &Limits) -> Result<Stop, EngineError> {
        self.memory.check(m)?;
        m.clock.set_mode(ClockMode::HostTime);
        self.resume_clock(m);
        if limits.breakpoints.is_empty() && m.watchpoints().is_empty() {
            return Ok(self.run_loop(m, limits)?);
        }
        Ok(self.debug_run(m, limits)?)
    }

    /// One instruction on the CPU, through KVM's single-step debug exit.
    /// As on hardware, the instruction after MOV SS or POP SS runs in the
    /// same step (the SS shadow holds the #DB, SDM Vol 3A 6.8.3).
    ///
    /// A single step advances the machine's clock as the interpreter's
    /// does, by the instructions it retires (`ClockMode::Instructions`),
    /// not by the host time it took, which is the debugger's (VM exits,
    /// ioctls: milliseconds a step in the test VM, where a timer tick
    /// was then due at nearly every step and `stepi` across xv6's IRET
    /// to user mode delivered the tick instead). A run goes on by host
    /// time from there.
    fn step(&mut self, m: &mut Machine) -> Result<Stop, EngineError> {
        self.resume_clock(m);
        m.clock.set_mode(ClockMode::Instructions);
        self.st.instruction_clock = true;
        let pc = self.read_regs();
        let r = pc.and_then(|pc| {
            let r = if m.watchpoints().is_empty() {
                self.step_inner(m)
            } else {
                self.step_watched(m)
            };
            r.map(|r| (pc.pc_linear(), r))
        });
        self.st.instruction_clock = false;
        m.clock.set_mode(ClockMode::HostTime);
        self.resume_clock(m);
        let (pc, r) = r?;
        if self.read_regs()?.pc_linear() != pc {
            // It moved on: a breakpoint it stopped at is behind it.
            self.resume_bp = None;
        }
        Ok(r)
    }

    fn cpu_state(&mut self) -> Result<CpuState, EngineError> {
        run::complete_io(&mut self.vcpu, &mut self.st)?;
        let mut s = vcpu::read_state(&self.vcpu, self.st.last.as_ref())?;
        s.halted = self.st.halted && s.eip as u64 == self.st.halted_rip;
        Ok(s)
    }

    fn set_cpu_state(&mut self, m: &mut Machine, s: &CpuState) -> Result<(), EngineError> {
        self.memory.check(m)?;
        // A half-done I/O instruction would otherwise complete on top of
        // the new state at the next entry.
        run::complete_io(&mut self.vcpu, &mut self.st)?;
        vcpu::write_state(&self.vcpu, s, self.tcg_host)?;
        self.resume_bp = None;
        self.st.halted = s.halted;
        self.st.halted_rip = s.eip as u64;
        self.st.clock.set(m.clock.now());
        self.st.last = Some(s.clone());
        Ok(())
    }

    fn stats(&self) -> EngineStats {
        let mut counters: Vec<(String, u64)> = self
            .st
            .exits
            .iter()
            .map(|(k, v)| (format!("exits: {k}"), *v))
            .collect();
        counters.push(machine::Counter::InterruptsInjected.entry(self.st.injected));
        counters.push(machine::Counter::InstructionsSingleStepped.entry(self.stepped));
        counters.push(machine::Counter::SetupTimeUs.entry(self.setup_us));
        if self.st.rom_writes_dropped > 0 {
            counters.push((
                "ROM descriptor writes dropped".into(),
                self.st.rom_writes_dropped,
            ));
        }
        if let Some(apic) = &self.memory.apic {
            counters.push((
                "local APIC page refreshes (reads without exits)".into(),
                apic.refreshes,
            ));
        }
        if self.st.probes > 0 {
            counters.push(("standstills probed (watchdog)".into(), self.st.probes));
        }
        let d = &self.dbg;
        for (label, v) in [
            ("breakpoint stops by INT3", d.bp_int3),
            ("breakpoint stops by HLT patch", d.bp_hlt),
            ("breakpoint stops by debug register", d.bp_dr),
            ("breakpoint stops while single-stepping", d.bp_stepped),
            ("patches stepped over (other mappings)", d.alias_steps),
            ("guest INT3/#DB handed back", d.reinjected),
            (
                "stepping TF taken out of handler frames",
                d.step_tf_scrubbed,
            ),
            ("STI steps made by the engine", d.sti_emulated),
            ("watchpoint stops", d.watch_hits),
            ("read-watch hits dropped as writes", d.watch_writes_dropped),
            (
                "INT3 patches overwritten by the guest",
                self.patches.overwritten,
            ),
        ] {
            if v > 0 {
                counters.push((label.to_string(), v));
            }
        }
        EngineStats {
            engine: format!("kvm ({})", self.st.host.name()),
            // The CPU runs the guest: instructions are not counted.
            instructions: None,
            counters,
        }
    }
}
