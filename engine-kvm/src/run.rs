//! The run loop: inject what the shared PIC has pending, enter the guest
//! until a device deadline at the latest, carry the VM exit out on the
//! shared machine (`exits::handle`), and go on until something stops the
//! run. A free function over the `Vcpu` trait, so unit tests drive it with
//! synthetic `VcpuExit`s, as Firecracker tests its exit handling.

use crate::clock::HostClock;
use crate::debug::{self, DebugExit, GuestDebug, Patch};
use crate::error::KvmError;
use crate::exits::{self, Action, Exit};
use crate::host::HostKind;
use crate::insn;
use crate::pvm::{self, PvmStop};
use crate::stall;
use crate::state;
use crate::timer::DeadlineTimer;
use crate::vcpu::{read_regs, read_state, Vcpu};
use kvm_ioctls::VcpuExit;
use machine::cpu::{flags as f, CpuState};
use machine::{Event, Limits, Machine, Stop};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The longest the loop stays in the guest without a device deadline: it
/// comes back out to look at the timeout and the machine's stop requests.
const MAX_SLICE: Duration = Duration::from_millis(100);

/// What the loop keeps between exits and between runs.
pub(crate) struct LoopState {
    pub host: HostKind,
    pub clock: HostClock,
    /// VM exits by kind, for the stats.
    pub exits: BTreeMap<&'static str, u64>,
    pub injected: u64,
    /// `step` is running: a debug exit ends the run.
    pub stepping: bool,
    /// What KVM_SET_GUEST_DEBUG is set to (re-armed before every entry
    /// while stepping). With any of it on, every debug exit ends the run
    /// with `debug_exit` set (`crate::debug`).
    pub guest_debug: GuestDebug,
    /// The debug exit that ended the last run, if one did.
    pub debug_exit: Option<DebugExit>,
    /// HLT patches are armed (`crate::debug`, where INT3 is not
    /// intercepted): a HLT exit ends the run with `debug_exit` HLT_EXIT,
    /// for the debugger to tell its patch from the guest's own HLT.
    pub exit_on_hlt: bool,
    /// While stepping, a delivery (an interrupt injected, an INT n
    /// stepped, a fault of the stepped instruction) stops at its handler's
    /// first instruction: a HLT written there for the one entry
    /// (`arm_handler_stop`, `arm_fault_stops`). The delivery clears TF, so
    /// KVM's step alone would run the whole handler unseen, with its
    /// breakpoints and watched writes.
    pub handler_stops: bool,
    /// The handlers' HLTs of the entry being made: one for a delivery
    /// (an injected interrupt, a software interrupt), or the exception
    /// handlers' for a stepped instruction that may fault (`fault_stops`).
    pub handler_patches: Vec<Patch>,
    /// The armed patches are the exception handlers' (the step keeps its
    /// TF: without a fault it ends after the instruction).
    pub fault_stops: bool,
    /// The last run ended on an exception handler's first instruction:
    /// the stepped instruction faulted (it did not retire).
    pub faulted: bool,
    /// The machine's clock advances by retired instructions, as on the
    /// interpreter, not by host time (`Kvm::step`).
    pub instruction_clock: bool,
    /// The machine's clock may not pass this time (`STEPPED_NS`: a step of
    /// a run that single-steps).
    pub clock_cap: Option<u64>,
    /// The last exit was port I/O or MMIO and KVM has not re-entered the
    /// guest since: the instruction is not complete (EIP still on it, an
    /// IN not yet in EAX) until the next KVM_RUN (`complete_io`).
    pub io_pending: bool,
    /// The state last imported or read: what KVM does not hold of it.
    pub last: Option<CpuState>,
    /// The vCPU executed HLT and nothing has woken it yet. Without an
    /// in-kernel irqchip KVM leaves the waiting to user space: entered
    /// again, the guest would simply run the instruction after the HLT.
    /// So the loop enters only once an interrupt (with IF set) or an NMI
    /// is there to be delivered; it is part of the exported state
    /// (`CpuState::halted`) too.
    pub halted: bool,
    /// RIP when the HLT exit came (the instruction after the HLT): the
    /// halt holds only while the vCPU is still there, so a state set since
    /// (a debugger's register write) or any entry that ran code ends it.
    pub halted_rip: u64,
    /// The registers when the vCPU last moved (`crate::stall`).
    pub stall: Option<stall::Window>,
    /// The next entry is the watchdog's single-step probe (`crate::stall`).
    pub probing: bool,
    /// Probes made (each a standstill of `wedged_after`).
    pub probes: u64,
    /// Whether descriptor writes into the ROM are dropped (`crate::stall`);
    /// on unless a test turns it off to see the watchdog catch the wedge.
    pub drop_rom_writes: bool,
    /// How long the registers must stand still before the watchdog's probe
    /// (`stall::WEDGED_AFTER`; shorter in unit tests).
    pub wedged_after: Duration,
    /// Accessed- and busy-bit writes to descriptors in the ROM, dropped as
    /// a PC's ROM drops them.
    pub rom_writes_dropped: u64,
    /// KVM's statistics for the vCPU, where the kernel has them.
    pub stats: Option<crate::stats::VcpuStats>,
}

impl LoopState {
    pub fn new(host: HostKind, now: u64) -> LoopState {
        LoopState {
            host,
            clock: HostClock::new(now),
            exits: BTreeMap::new(),
            injected: 0,
            stepping: false,
            guest_debug: GuestDebug::default(),
            debug_exit: None,
            exit_on_hlt: false,
            handler_stops: false,
            handler_patches: Vec::new(),
            fault_stops: false,
            faulted: false,
            instruction_clock: false,
            clock_cap: None,
            io_pending: false,
            last: None,
            halted: false,
            halted_rip: 0,
            stall: None,
            probing: false,
            probes: 0,
            drop_rom_writes: true,
            wedged_after: stall::WEDGED_AFTER,
            rom_writes_dropped: 0,
            stats: None,
        }
    }
}

/// A VM exit with its data area as a raw pointer into the vCPU's kvm_run
/// mapping, so the borrow of the vCPU ends before the exit is handled.
enum Raw {
    IoIn(u16, *mut u8, usize),
    IoOut(u16, *const u8, usize),
    MmioRead(u64, *mut u8, usize),
    MmioWrite(u64, *const u8, usize),
    Plain(Exit<'static>),
}

fn raw_of(e: VcpuExit<'_>) -> Raw {
    match e {
        VcpuExit::IoIn(port, data) => Raw::IoIn(port, data.as_mut_ptr(), data.len()),
        VcpuExit::IoOut(port, data) => Raw::IoOut(port, data.as_ptr(), data.len()),
        VcpuExit::MmioRead(addr, data) => Raw::MmioRead(addr, data.as_mut_ptr(), data.len()),
        VcpuExit::MmioWrite(addr, data) => Raw::MmioWrite(addr, data.as_ptr(), data.len()),
        VcpuExit::Hlt => Raw::Plain(Exit::Hlt),
        VcpuExit::IrqWindowOpen => Raw::Plain(Exit::IrqWindowOpen),
        VcpuExit::Shutdown => Raw::Plain(Exit::Shutdown),
        VcpuExit::Debug(arch) => Raw::Plain(Exit::Debug {
            pc: arch.pc,
            exception: arch.exception,
            dr6: arch.dr6,
        }),
        VcpuExit::FailEntry(r, _) => Raw::Plain(Exit::FailEntry(r)),
        VcpuExit::InternalError => Raw::Plain(Exit::InternalError(0)),
        VcpuExit::Intr => Raw::Plain(Exit::Intr),
        other => Raw::Plain(Exit::Other(other_name(&other))),
    }
}

/// The name of an exit ringlab does not expect (KVM_EXIT_*), for the error
/// and the trace.
fn other_name(e: &VcpuExit<'_>) -> &'static str {
    match e {
        VcpuExit::Unknown => "KVM_EXIT_UNKNOWN",
        VcpuExit::Exception => "KVM_EXIT_EXCEPTION",
        VcpuExit::Hypercall(_) => "KVM_EXIT_HYPERCALL",
        VcpuExit::SetTpr => "KVM_EXIT_SET_TPR",
        VcpuExit::TprAccess => "KVM_EXIT_TPR_ACCESS",
        VcpuExit::Nmi => "KVM_EXIT_NMI",
        VcpuExit::SystemEvent(..) => "KVM_EXIT_SYSTEM_EVENT",
        VcpuExit::IoapicEoi(_) => "KVM_EXIT_IOAPIC_EOI",
        VcpuExit::Hyperv => "KVM_EXIT_HYPERV",
        VcpuExit::X86Rdmsr(_) => "KVM_EXIT_X86_RDMSR",
        VcpuExit::X86Wrmsr(_) => "KVM_EXIT_X86_WRMSR",
        VcpuExit::Watchdog => "KVM_EXIT_WATCHDOG",
        _ => "an exit reason of another architecture",
    }
}

/// Enters the guest once and returns the exit it came back with; EINTR
/// and EAGAIN (the deadline timer's signal, `immediate_exit`) are the
/// timer exit.
pub(crate) fn enter<'a, V: Vcpu>(v: &mut V) -> Result<Exit<'a>, KvmError> {
    let raw = match v.run() {
        Ok(e) => raw_of(e),
        Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => Raw::Plain(Exit::Intr),
        Err(source) => {
            return Err(KvmError::Ioctl {
                call: "KVM_RUN".into(),
                source,
            })
        }
    };
    // The slices below: each pointer and length is the data area `run`
    // returned for this exit, which the `Vcpu` contract keeps valid and
    // untouched by its other methods (`io_size` among them) until the next
    // `run`; the exit is handled, and the slices dropped, before the loop
    // enters again.
    Ok(match raw {
        Raw::IoIn(port, p, n) => {
            let size = v.io_size();
            // SAFETY: the exit's data area, as said above.
            let data = unsafe { std::slice::from_raw_parts_mut(p, n) };
            Exit::IoIn { port, size, data }
        }
        Raw::IoOut(port, p, n) => {
            let size = v.io_size();
            // SAFETY: the exit's data area, as said above.
            let data = unsafe { std::slice::from_raw_parts(p, n) };
            Exit::IoOut { port, size, data }
        }
        Raw::MmioRead(addr, p, n) => {
            // SAFETY: the exit's data area, as said above.
            let data = unsafe { std::slice::from_raw_parts_mut(p, n) };
            Exit::MmioRead { addr, data }
        }
        Raw::MmioWrite(addr, p, n) => {
            // SAFETY: the exit's data area, as said above.
            let data = unsafe { std::slice::from_raw_parts(p, n) };
            Exit::MmioWrite { addr, data }
        }
        Raw::Plain(e) => e,
    })
}

/// Runs the vCPU until the guest stops, a limit passes, or (stepping) one
/// instruction retired. `memory` brings KVM's memory slots up to date with
/// the machine (the A20 gate, a ROM) before every entry.
pub(crate) fn run<V: Vcpu>(
    v: &mut V,
    st: &mut LoopState,
    m: &mut Machine,
    limits: &Limits,
    memory: impl FnMut(&Machine, bool) -> Result<(), KvmError>,
) -> Result<Stop, KvmError> {
    run_with(v, st, m, limits, memory, |_, _| Ok(false))
}

/// `run`, with `before_entry` called before every entry into the guest
/// (so after every exit): the debugger's patches follow the page tables
/// there (`crate::debug`). When it returns true the run ends with
/// `Stop::Stepped` and no `debug_exit`: the caller re-plans.
pub(crate) fn run_with<V: Vcpu>(
    v: &mut V,
    st: &mut LoopState,
    m: &mut Machine,
    limits: &Limits,
    memory: impl FnMut(&Machine, bool) -> Result<(), KvmError>,
    before_entry: impl FnMut(&mut V, &mut Machine) -> Result<bool, KvmError>,
) -> Result<Stop, KvmError> {
    st.faulted = false;
    let r = run_inner(v, st, m, limits, memory, before_entry);
    // Handler stops not reached (no fault, the delivery went elsewhere,
    // the run ended first) are taken back.
    disarm_handler_stops(st, m);
    r
}

/// The most the machine's clock advances in one step of a run that
/// single-steps (breakpoints compared with the PC, watchpoints decoded):
/// 1 us, where the step's host time is the stepping's own (a VM exit and
/// ioctls: some 5 us on hardware, 200 us under QEMU's TCG). Counted in
/// full, a 100 Hz timer fell due every 50 steps under TCG, and an
/// interrupt handler stepped longer than that (the interrupts lesson's,
/// which prints) never got back to the code it interrupted: every IRET
/// delivered the next tick.
pub(crate) const STEPPED_NS: u64 = 1_000;

/// The machine's clock by host time (`HostClock::sync`), held to
/// `clock_cap`, or left to the instructions retired (`instruction_clock`).
fn sync_clock(st: &mut LoopState, m: &mut Machine) {
    if st.instruction_clock {
        return;
    }
    match st.clock_cap {
        Some(cap) => st.clock.sync_upto(m, cap),
        None => st.clock.sync(m),
    }
}

/// Takes the handlers' HLTs back.
pub(crate) fn disarm_handler_stops(st: &mut LoopState, m: &mut Machine) {
    // Backwards: a handler patched twice (two vectors, one entry) gets
    // its first original back last.
    for p in std::mem::take(&mut st.handler_patches).iter().rev() {
        debug::restore(m, p);
    }
    st.fault_stops = false;
}

/// Writes a HLT at `lin`/`phys` (a handler's entry) for the next entry,
/// unless the PC is there (the stepped instruction itself) or it is done.
/// Nor inside the interrupt table's 256 entries, which the delivery reads
/// (a real-mode vector table left zero names 0000:0000, the table
/// itself; the real-mode IDTR's limit is 0xFFFF from reset, SDM Vol 3A
/// 9.1.1, where the 256 vectors take 1 KiB).
fn arm_one(st: &mut LoopState, m: &mut Machine, s: &CpuState, lin: u32, phys: u32) {
    let entries = if s.protected() { 256 * 8 } else { 256 * 4 };
    let in_table = lin.wrapping_sub(s.idtr.base) < (s.idtr.limit as u32 + 1).min(entries);
    if in_table || lin == s.pc_linear() || st.handler_patches.iter().any(|p| p.phys == phys) {
        return;
    }
    let Some(orig) = m.mem.read_u8(phys as u64) else {
        return;
    };
    // Untracked, as the breakpoints' patches: back before anyone else
    // runs the guest.
    if m.mem.write_untracked(phys as u64, &[debug::HLT]).is_ok() {
        st.handler_patches.push(Patch {
            lin,
            phys,
            orig,
            byte: debug::HLT,
        });
    }
}

/// Exception vectors whose handlers a stepped instruction may enter: all
/// but #DB (the step's own trap, KVM's), NMI and #BP/#OF (software
/// interrupts, `arm_handler_stop`), and #MC.
const FAULTS: [u8; 27] = [
    0, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29,
    30, 31,
];

/// Writes a HLT over the first instruction of every exception handler
/// the stepped instruction at `s`'s PC could enter by faulting (those that
/// run at CPL 0, `debug::handler_entry`), for the next entry: a fault
/// clears TF on the way in, so the step would run the handler unseen; the
/// HLT ends it on the handler's first instruction instead, as on the
/// interpreter. Without a fault the step ends after the instruction and
/// the patches go back.
///
/// A HLT is written only where the step will not read it as data: not
/// inside the interrupt table (`arm_one`), not on a byte the instruction
/// accesses (decoded, `insn::accesses`; an instruction that does not
/// decode gets no fault stops).
pub(crate) fn arm_fault_stops(st: &mut LoopState, m: &mut Machine, s: &CpuState) {
    disarm_handler_stops(st, m);
    let Some((accesses, _)) = insn::accesses(m, s) else {
        return;
    };
    let within = |lin: u32, base: u32, len: u32| lin.wrapping_sub(base) < len;
    for v in FAULTS {
        if let Some((lin, phys)) = debug::handler_entry(m, s, v, false) {
            if !accesses.iter().any(|&(a, n, _)| within(lin, a, n)) {
                arm_one(st, m, s, lin, phys);
            }
        }
    }
    st.fault_stops = !st.handler_patches.is_empty();
}

/// Writes a HLT over the first instruction of the handler that delivering
/// `vector` in state `s` runs, for the next entry (`LoopState::
/// handler_stops`); `soft` for an INT n, whose gate's DPL must allow the
/// CPL. Nothing where the handler does not run at CPL 0 or is not in RAM
/// (`debug::handler_entry`): the step then runs it unseen, as before.
pub(crate) fn arm_handler_stop(
    st: &mut LoopState,
    m: &mut Machine,
    s: &CpuState,
    vector: u8,
    soft: bool,
) {
    disarm_handler_stops(st, m);
    if let Some((lin, phys)) = debug::handler_entry(m, s, vector, soft) {
        arm_one(st, m, s, lin, phys);
    }
}

fn run_inner<V: Vcpu>(
    v: &mut V,
    st: &mut LoopState,
    m: &mut Machine,
    limits: &Limits,
    mut memory: impl FnMut(&Machine, bool) -> Result<(), KvmError>,
    mut before_entry: impl FnMut(&mut V, &mut Machine) -> Result<bool, KvmError>,
) -> Result<Stop, KvmError> {
    let mut timer = DeadlineTimer::new(v.immediate_exit_ptr())?;
    st.debug_exit = None;
    loop {
        if let Some(s) = m.stop_requested() {
            return Ok(s.to_stop());
        }
        if before_entry(v, m)? {
            return Ok(Stop::Stepped);
        }
        if limits.expired() {
            return Ok(Stop::Timeout);
        }
        sync_clock(st, m);
        // A halted CPU waits for an interrupt it can take, or an NMI: with
        // interrupts disabled for ever; with them enabled the clock skips
        // to the next device deadline, as every engine does.
        let halted_regs = if st.halted { Some(v.regs()?) } else { None };
        if halted_regs.is_some_and(|r| r.rip != st.halted_rip) {
            st.halted = false;
        }
        if let Some(r) = halted_regs.filter(|_| st.halted) {
            let if_ = r.rflags as u32 & f::IF != 0;
            // An interrupt already taken from the controllers (its bit in
            // the 8259A's ISR) that KVM still holds also ends the halt:
            // the next entry delivers it. The machine sees nothing
            // pending then, and the halt would wait for ever for an
            // interrupt it has had (asked only when the halt would stop
            // or wait: one ioctl).
            let wakes = m.nmi_pending() || if_ && m.interrupt_pending();
            if !(wakes || v.event_held()?) {
                if !if_ {
                    st.last = Some(read_state(v, st.last.as_ref())?);
                    return Ok(Stop::Halted);
                }
                if !m.warp_to_deadline() {
                    return Ok(Stop::Idle);
                }
                st.clock.set(m.clock.now());
                continue;
            }
            st.halted = false;
        }
        // An NMI goes in at once: IF does not mask it, and KVM holds it
        // while NMIs are blocked.
        let nmi_sent = m.take_nmi();
        if nmi_sent {
            let eip = v.regs()?.rip as u32;
            m.trace.record(
                m.icount(),
                m.clock.now(),
                Event::Interrupt { vector: 2, eip },
            );
            v.inject_nmi()?;
            st.halted = false;
        }
        // Interrupts from the shared interrupt controllers: inject when the
        // guest can take one, else ask KVM to exit when it can.
        v.request_interrupt_window(false);
        if m.interrupt_pending() {
            // `can_inject` reads what KVM said at the last exit, which may
            // be another state's (the first entry after the machine moved
            // here). While stepping, the guest's IF now decides: an
            // interrupt queued with IF clear is delivered by KVM as soon
            // as the stepped instruction sets IF (an IRET to ring 3), in
            // the same step, so the step ends in the handler and the ring
            // change is never seen (found in the test VM: the step UI's r
            // from trapret's IRET on KVM).
            // And the interrupt shadow now: an STI the step emulated
            // (`Kvm::step_inner`) set it without an exit.
            let ready = v.can_inject()
                && (!st.stepping
                    || v.regs()?.rflags & u64::from(f::IF) != 0 && !v.shadow_and_nmi_blocking()?.0);
            if ready {
                let vector = m.acknowledge_interrupt();
                let now = m.clock.now();
                let eip = v.regs()?.rip as u32;
                m.trace
                    .record(m.icount(), now, Event::Interrupt { vector, eip });
                v.inject(vector)?;
                st.halted = false;
                st.injected += 1;
                if st.stepping && st.handler_stops {
                    let s = read_state(v, st.last.as_ref())?;
                    arm_handler_stop(st, m, &s, vector, false);
                }
            } else if !st.stepping {
                v.request_interrupt_window(true);
            }
            // While stepping, no window: an instruction that sets IF (IRET,
            // STI, POPF) would open it and KVM would deliver the interrupt
            // in the same step, whose one "instruction" then ran a return
            // to ring 3 and the handler's entry unseen (found in the test
            // VM: a step of trapret's IRET came back in ring 0, the ring
            // change never recorded). The next step, with IF set, injects
            // it at its start instead: a step that is the delivery.
        }
        // The slots as the machine is now (A20, the ROM), and the local
        // APIC's page as reads would see it after what was just injected
        // (`crate::apic_shadow`).
        memory(m, false)?;
        // Return from KVM_RUN at the next device deadline or the timeout.
        let mut wait = MAX_SLICE;
        if let Some(d) = m.next_deadline() {
            wait = wait.min(Duration::from_nanos(d.saturating_sub(m.clock.now())));
        }
        if let Some(left) = limits.time_left() {
            wait = wait.min(left);
        }
        if st.probing {
            wait = wait.min(stall::PROBE_SLICE);
            v.set_debug(&GuestDebug {
                single_step: true,
                ..st.guest_debug
            })?;
        }
        if st.stepping {
            // Re-arm before every entry: KVM keeps the trap flag it set
            // for stepping only until the guest's own EFLAGS change (an
            // INT clears TF on the way into the handler). Not with a
            // handler stop armed: its HLT ends the step, and the frame the
            // delivery pushes keeps the guest's own TF.
            v.set_debug(&GuestDebug {
                single_step: st.handler_patches.is_empty() || st.fault_stops,
                ..st.guest_debug
            })?;
        }
        // Cleared before arming, not after: a signal from here on must
        // still make this entry return (the crosvm/Firecracker pattern).
        v.set_immediate_exit(false);
        timer.arm_by(Instant::now() + wait)?;
        st.io_pending = false;
        let exit = enter(v)?;
        sync_clock(st, m);
        let kind = exit.kind();
        *st.exits.entry(kind).or_default() += 1;
        st.io_pending = matches!(kind, "io" | "mmio");
        if st.probing && stall::after_probe(v, st, m, &exit)? {
            continue;
        }
        if let Exit::Debug { pc, exception, dr6 } = exit {
            if st.stepping || st.guest_debug != GuestDebug::default() {
                st.debug_exit = Some(DebugExit { exception, pc, dr6 });
                return Ok(Stop::Stepped);
            }
        }
        if matches!(exit, Exit::Hlt) && (!st.handler_patches.is_empty() || st.exit_on_hlt) {
            // KVM has skipped the HLT: RIP is after it.
            let rip = v.regs()?.rip;
            let after = (v.sregs()?.cs.base.wrapping_add(rip)) as u32;
            let at = after.wrapping_sub(1);
            match st.handler_patches.iter().any(|p| p.lin == at) {
                true => {
                    // The delivery is made (or the instruction faulted):
                    // the step ends on the handler's first instruction.
                    st.faulted = st.fault_stops;
                    disarm_handler_stops(st, m);
                    v.set_rip(rip.wrapping_sub(1))?;
                    return Ok(Stop::Stepped);
                }
                false if st.exit_on_hlt => {
                    st.debug_exit = Some(DebugExit {
                        exception: debug::HLT_EXIT,
                        pc: after as u64,
                        dr6: 0,
                    });
                    return Ok(Stop::Stepped);
                }
                false => {}
            }
        }
        if st.host == HostKind::Pvm {
            if let Some(e) = pvm::paging_refused(&v.sregs()?) {
                return Err(e);
            }
        }
        match exits::handle(exit, m) {
            Action::Resume if st.stepping && st.io_pending => {
                // Finish the port or MMIO instruction now and end the step
                // there. Left to the next entry, kvm-pvm completes it and
                // runs one more instruction before the debug trap
                // (measured: OUT then MOV in one step).
                complete_io(v, st)?;
                return Ok(Stop::Stepped);
            }
            // The periodic exit (a device deadline, or MAX_SLICE without
            // one, so also in a run without a timeout): a guest spinning
            // in `cli; jmp $` never exits otherwise. Not while an NMI
            // just injected may still be waiting in KVM, nor stepping.
            Action::Resume if kind == "timer" && !st.stepping && !nmi_sent => {
                if spinning(v, st, m)? {
                    return Ok(Stop::Spinning);
                }
                stall::at_timer_exit(v, st, m, &mut memory)?;
            }
            Action::Resume => {}
            Action::Stop(Stop::TripleFault) => {
                if st.host == HostKind::Pvm {
                    let s = read_state(v, st.last.as_ref())?;
                    if let Some(e) = pvm::explain(PvmStop::Shutdown, m, &s) {
                        return Err(e);
                    }
                }
                return Ok(Stop::TripleFault);
            }
            Action::Stop(s) => return Ok(s),
            // The wait is the loop's, at its top; a step ends with the HLT
            // retired and the CPU halted, as on the interpreter (the next
            // step is the wait and the delivery that ends it).
            Action::Halted => {
                st.halted = true;
                st.halted_rip = v.regs()?.rip;
                if st.stepping {
                    return Ok(Stop::Stepped);
                }
            }
            Action::Fail(why) => {
                let s = read_state(v, st.last.as_ref());
                if kind == "internal error" && st.host == HostKind::Pvm {
                    // An unreadable state is reported with the failure
                    // below.
                    if let Ok(s) = &s {
                        if let Some(e) = pvm::explain(PvmStop::InternalError, m, s) {
                            return Err(e);
                        }
                    }
                }
                let state = s
                    .map(|s| state::dump(&s))
                    .unwrap_or_else(|e| format!("(state unreadable: {})", machine::Chain(&e)));
                return Err(KvmError::VcpuFailed { why, state });
            }
        }
    }
}

/// The guest sits on a JMP to itself with IF and TF clear and no NMI
/// waiting (a kernel's panic loop, `Stop::Spinning`, as the interpreter
/// sees it where it runs the jump). One KVM_GET_REGS when IF is set, as
/// it mostly is; the code is read through the guest's page tables only
/// with IF clear. The state is kept, as a halt keeps it.
fn spinning(v: &mut impl Vcpu, st: &mut LoopState, m: &Machine) -> Result<bool, KvmError> {
    let rflags = v.regs()?.rflags as u32;
    if rflags & (f::IF | f::TF) != 0 || m.nmi_pending() {
        return Ok(false);
    }
    let s = read_regs(v, st.last.as_ref())?;
    if !insn::is_self_jump(m, &s) {
        return Ok(false);
    }
    st.last = Some(read_state(v, st.last.as_ref())?);
    Ok(true)
}

/// Finishes an instruction left half done by a port I/O or MMIO exit, so
/// the state read next is architectural: KVM completes it on the next
/// KVM_RUN, and with `immediate_exit` set that entry returns EINTR right
/// after (the documented way, Documentation/virt/kvm/api.rst,
/// "immediate_exit").
pub(crate) fn complete_io(v: &mut impl Vcpu, st: &mut LoopState) -> Result<(), KvmError> {
    if !st.io_pending {
        return Ok(());
    }
    st.io_pending = false;
    v.set_immediate_exit(true);
    let r = v.run().map(|_| ());
    v.set_immediate_exit(false);
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => Ok(()),
        Err(source) => Err(KvmError::Ioctl {
            call: "KVM_RUN (completing an I/O exit)".into(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvm_bindings::{kvm_debug_exit_arch, kvm_regs, kvm_sregs};
    use machine::MachineConfig;
    use std::collections::VecDeque;
    use std::error::Error;

    /// One exit the fake vCPU returns.
    #[derive(Clone, Debug)]
    enum Scripted {
        Out {
            port: u16,
            size: u8,
            data: Vec<u8>,
        },
        In {
            port: u16,
            size: u8,
            len: usize,
        },
        MmioRead {
            addr: u64,
            len: usize,
        },
        Hlt,
        Shutdown,
        Debug,
        /// A debug exit after an instruction that moved RIP by `len`.
        Stepped {
            len: u64,
        },
        InternalError,
        Nmi,
        Errno(i32),
    }

    /// A vCPU that plays a script of exits and records what the loop did
    /// to it.
    struct Fake {
        script: VecDeque<Scripted>,
        /// The data area of the current exit.
        buf: Vec<u8>,
        io_size: u8,
        imm: u8,
        regs: kvm_regs,
        sregs: kvm_sregs,
        ready: bool,
        window: bool,
        injected: Vec<u8>,
        single_step: bool,
        /// What the loop wrote for each IN and MMIO read, in order.
        filled: Vec<Vec<u8>>,
        /// Entries with `immediate_exit` set (returned EINTR at once).
        immediate_runs: usize,
        fill_pending: bool,
        /// What `event_held` answers.
        held: bool,
    }

    impl Fake {
        fn new(script: &[Scripted]) -> Fake {
            Fake {
                script: script.iter().cloned().collect(),
                buf: Vec::new(),
                io_size: 0,
                imm: 0,
                // Reserved bit 1 of EFLAGS is always set; IF clear.
                regs: kvm_regs {
                    rflags: 2,
                    ..Default::default()
                },
                sregs: kvm_sregs::default(),
                ready: false,
                window: false,
                injected: Vec::new(),
                single_step: false,
                filled: Vec::new(),
                immediate_runs: 0,
                fill_pending: false,
                held: false,
            }
        }
    }

    // SAFETY: the data of an exit is `buf`, which only `run` replaces.
    unsafe impl Vcpu for Fake {
        fn run(&mut self) -> Result<VcpuExit<'_>, kvm_ioctls::Error> {
            if std::mem::take(&mut self.fill_pending) {
                self.filled.push(self.buf.clone());
            }
            if self.imm != 0 {
                // As KVM: an entry with immediate_exit set returns EINTR.
                self.immediate_runs += 1;
                return Err(kvm_ioctls::Error::new(libc::EINTR));
            }
            let next = self.script.pop_front().expect("the script ran out");
            Ok(match next {
                Scripted::Out { port, size, data } => {
                    self.io_size = size;
                    self.buf = data;
                    VcpuExit::IoOut(port, &self.buf)
                }
                Scripted::In { port, size, len } => {
                    self.io_size = size;
                    self.buf = vec![0; len];
                    self.fill_pending = true;
                    VcpuExit::IoIn(port, &mut self.buf)
                }
                Scripted::MmioRead { addr, len } => {
                    self.buf = vec![0; len];
                    self.fill_pending = true;
                    VcpuExit::MmioRead(addr, &mut self.buf)
                }
                Scripted::Hlt => VcpuExit::Hlt,
                Scripted::Shutdown => VcpuExit::Shutdown,
                Scripted::Debug => VcpuExit::Debug(kvm_debug_exit_arch::default()),
                Scripted::Stepped { len } => {
                    self.regs.rip += len;
                    VcpuExit::Debug(kvm_debug_exit_arch::default())
                }
                Scripted::InternalError => VcpuExit::InternalError,
                Scripted::Nmi => VcpuExit::Nmi,
                Scripted::Errno(e) => return Err(kvm_ioctls::Error::new(e)),
            })
        }
        fn io_size(&mut self) -> u8 {
            self.io_size
        }
        fn set_immediate_exit(&mut self, on: bool) {
            self.imm = on as u8;
        }
        fn immediate_exit_ptr(&mut self) -> *mut u8 {
            &mut self.imm
        }
        fn can_inject(&mut self) -> bool {
            self.ready
        }
        fn request_interrupt_window(&mut self, on: bool) {
            self.window = on;
        }
        fn inject(&mut self, vector: u8) -> Result<(), KvmError> {
            self.injected.push(vector);
            Ok(())
        }
        fn set_debug(&mut self, d: &GuestDebug) -> Result<(), KvmError> {
            self.single_step = d.single_step;
            Ok(())
        }
        fn inject_exception(&mut self, vector: u8) -> Result<(), KvmError> {
            self.injected.push(vector);
            Ok(())
        }
        fn regs(&self) -> Result<kvm_regs, KvmError> {
            Ok(self.regs)
        }
        fn set_rip(&mut self, rip: u64) -> Result<(), KvmError> {
            self.regs.rip = rip;
            Ok(())
        }
        fn emulate_sti(&mut self, len: u64, _shadow: bool) -> Result<(), KvmError> {
            self.regs.rip += len;
            self.regs.rflags |= u64::from(f::IF);
            Ok(())
        }
        fn sregs(&self) -> Result<kvm_sregs, KvmError> {
            Ok(self.sregs)
        }
        fn msrs(&self, indices: &[u32]) -> Result<Vec<u64>, KvmError> {
            Ok(vec![0; indices.len()])
        }
        fn shadow_and_nmi_blocking(&self) -> Result<(bool, bool), KvmError> {
            Ok((false, false))
        }
        fn event_held(&self) -> Result<bool, KvmError> {
            Ok(self.held)
        }
        fn inject_nmi(&mut self) -> Result<(), KvmError> {
            self.injected.push(2);
            Ok(())
        }
    }

    fn machine() -> Machine {
        Machine::new(MachineConfig::with_ram(2 << 20)).unwrap()
    }

    fn limits() -> Limits {
        Limits {
            max_icount: None,
            deadline: Some(Instant::now() + Duration::from_secs(10)),
            breakpoints: vec![],
        }
    }

    /// Runs `script` to its stop on a host of `host`'s kind.
    fn play(
        host: HostKind,
        script: &[Scripted],
        m: &mut Machine,
    ) -> (Result<Stop, KvmError>, Fake, LoopState) {
        let mut v = Fake::new(script);
        let mut st = LoopState::new(host, 0);
        let r = run(&mut v, &mut st, m, &limits(), |_, _| Ok(()));
        (r, v, st)
    }

    fn out(port: u16, data: &[u8]) -> Scripted {
        Scripted::Out {
            port,
            size: 1,
            data: data.to_vec(),
        }
    }

    #[test]
    fn port_output_reaches_the_devices_until_the_exit_port() {
        let mut m = machine();
        let script = [out(0xE9, b"hi"), out(0xE9, b"!"), out(0xF4, &[5])];
        let (r, v, st) = play(HostKind::Amd, &script, &mut m);
        assert_eq!(r.unwrap(), Stop::GuestExit { value: 5 });
        assert_eq!(m.debugcon_output(), b"hi!");
        assert_eq!(st.exits.get("io"), Some(&3));
        assert!(st.io_pending, "the OUT is complete only at the next entry");
        assert!(v.script.is_empty());
    }

    #[test]
    fn input_and_mmio_reads_are_filled_in_before_the_next_entry() {
        let mut m = machine();
        let script = [
            // IN AX, DX: one item of two bytes from an unclaimed port.
            Scripted::In {
                port: 0x1234,
                size: 2,
                len: 2,
            },
            // REP INSB: three items of one byte.
            Scripted::In {
                port: 0x1234,
                size: 1,
                len: 3,
            },
            Scripted::MmioRead {
                addr: 0xFED0_0000,
                len: 4,
            },
            out(0xF4, &[0]),
        ];
        let (r, v, st) = play(HostKind::Intel, &script, &mut m);
        assert_eq!(r.unwrap(), Stop::GuestExit { value: 0 });
        assert_eq!(v.filled, vec![vec![0xFF; 2], vec![0xFF; 3], vec![0xFF; 4]]);
        assert_eq!(st.exits.get("io"), Some(&3));
        assert_eq!(st.exits.get("mmio"), Some(&1));
    }

    #[test]
    fn hlt_with_interrupts_off_halts_and_with_them_on_idles() {
        let mut m = machine();
        let (r, _, st) = play(HostKind::Amd, &[Scripted::Hlt], &mut m);
        assert_eq!(r.unwrap(), Stop::Halted);
        assert!(st.last.is_some(), "the halted state is kept");

        let mut v = Fake::new(&[Scripted::Hlt]);
        v.regs.rflags = 2 | f::IF as u64;
        let mut st = LoopState::new(HostKind::Amd, 0);
        let r = run(&mut v, &mut st, &mut machine(), &limits(), |_, _| Ok(()));
        assert_eq!(r.unwrap(), Stop::Idle, "no device will ever wake it");
    }

    /// Running a halted vCPU again does not enter the guest (KVM would run
    /// the instruction after the HLT, as the test VM showed under gdb's
    /// `continue`): it is still halted, until an interrupt it can take.
    #[test]
    fn a_halted_vcpu_stays_halted_until_something_wakes_it() {
        let mut m = machine();
        let mut v = Fake::new(&[Scripted::Hlt]);
        let mut st = LoopState::new(HostKind::Amd, 0);
        assert_eq!(
            run(&mut v, &mut st, &mut m, &limits(), |_, _| Ok(())).unwrap(),
            Stop::Halted
        );
        assert!(st.halted);
        // The script is empty: an entry would panic.
        for _ in 0..3 {
            assert_eq!(
                run(&mut v, &mut st, &mut m, &limits(), |_, _| Ok(())).unwrap(),
                Stop::Halted
            );
        }
        // IF set and nothing will ever interrupt: idle, still not entered.
        v.regs.rflags = 2 | f::IF as u64;
        assert_eq!(
            run(&mut v, &mut st, &mut m, &limits(), |_, _| Ok(())).unwrap(),
            Stop::Idle
        );
        assert!(st.halted && v.script.is_empty());
    }

    /// An interrupt KVM still holds (taken from the 8259A, its delivery
    /// not made: the entry ended first) wakes a halted vCPU: the loop
    /// enters, and KVM delivers it. Without the check the run stopped as
    /// idle with the interrupt in the 8259A's ISR and never in the guest.
    #[test]
    fn a_halted_vcpu_enters_while_kvm_holds_an_interrupt() {
        let mut m = machine();
        let mut v = Fake::new(&[Scripted::Hlt, Scripted::Shutdown]);
        v.regs.rflags = 2 | f::IF as u64;
        let mut st = LoopState::new(HostKind::Amd, 0);
        st.halted = true;
        st.halted_rip = v.regs.rip;
        v.held = true;
        // The entry runs the script: the HLT exit, then, KVM holding
        // the interrupt still, the next entry (a shutdown here).
        let r = run(&mut v, &mut st, &mut m, &limits(), |_, _| Ok(()));
        assert_eq!(r.unwrap(), Stop::TripleFault);
        assert!(v.script.is_empty(), "both entries made");
        // Nothing held: the same halt is idle, the vCPU not entered.
        let mut v = Fake::new(&[Scripted::Shutdown]);
        v.regs.rflags = 2 | f::IF as u64;
        let mut st = LoopState::new(HostKind::Amd, 0);
        st.halted = true;
        st.halted_rip = v.regs.rip;
        let r = run(&mut v, &mut st, &mut m, &limits(), |_, _| Ok(()));
        assert_eq!(r.unwrap(), Stop::Idle);
        assert_eq!(v.script.len(), 1, "not entered");
    }

    #[test]
    fn a_timer_exit_on_jmp_self_with_interrupts_off_is_a_spin() {
        // Real mode, CS:IP 0:0 on EB FE, IF clear: the first periodic exit
        // ends the run.
        let mut m = machine();
        m.mem.write(0, &[0xEB, 0xFE]).unwrap();
        let (r, v, st) = play(HostKind::Amd, &[Scripted::Errno(libc::EINTR)], &mut m);
        assert_eq!(r.unwrap(), Stop::Spinning);
        assert!(v.script.is_empty());
        assert!(st.last.is_some(), "the spinning state is kept");

        // IF set: a wait for interrupts, which runs on.
        let mut v = Fake::new(&[Scripted::Errno(libc::EINTR), Scripted::Shutdown]);
        v.regs.rflags = 2 | f::IF as u64;
        let mut st = LoopState::new(HostKind::Amd, 0);
        let r = run(&mut v, &mut st, &mut m, &limits(), |_, _| Ok(()));
        assert_eq!(r.unwrap(), Stop::TripleFault);

        // An NMI injected before that entry may still be waiting in KVM.
        m.raise_nmi();
        let script = [Scripted::Errno(libc::EINTR), Scripted::Shutdown];
        let (r, v, _) = play(HostKind::Amd, &script, &mut m);
        assert_eq!(r.unwrap(), Stop::TripleFault);
        assert_eq!(v.injected, vec![2]);
    }

    #[test]
    fn a_vcpu_that_stands_still_is_probed_and_stopped_only_if_the_step_does_not_retire() {
        // Protected mode, IF set, on 00 00 (not a jump to itself): every
        // timer exit finds the registers as they were.
        let mut m = machine();
        let mut v = Fake::new(&[
            // A window starts, the registers stand still: the probe.
            Scripted::Errno(libc::EINTR),
            Scripted::Errno(libc::EINTR),
            // The probe's single step retires (00 00 is two bytes): the
            // watch starts over.
            Scripted::Stepped { len: 2 },
            Scripted::Errno(libc::EINTR),
            Scripted::Errno(libc::EINTR),
            // This time the step's slice ends with the vCPU where it was.
            Scripted::Errno(libc::EINTR),
            // And a debug exit without the step done (as kvm-pvm gives
            // for the write it retries) is no progress either.
            Scripted::Errno(libc::EINTR),
            Scripted::Errno(libc::EINTR),
            Scripted::Debug,
        ]);
        v.regs.rflags = 2 | f::IF as u64;
        v.regs.rip = 0x1000;
        v.sregs.cr0 = 1;
        v.sregs.cs.db = 1;
        v.sregs.cs.present = 1;
        v.sregs.cs.selector = 8;
        let mut st = LoopState::new(HostKind::Amd, 0);
        st.wedged_after = Duration::ZERO;
        let e = run(&mut v, &mut st, &mut m, &limits(), |_, _| Ok(())).unwrap_err();
        assert_eq!(v.script.len(), 3, "the first stop is the slice's end");
        assert_eq!(v.regs.rip, 0x1002);
        assert!(!v.single_step, "the probe's single step is disarmed");
        let text = e.to_string();
        assert!(matches!(e, KvmError::NoProgress(_)), "{text}");
        assert!(
            text.starts_with(
                "the vCPU makes no progress: KVM re-enters it at 0008:00001002 (prot32) \
                 without `add [eax],al` retiring;"
            ),
            "{text}"
        );
        assert!(text.contains("Likely cause: unknown"), "{text}");
        let e = run(&mut v, &mut st, &mut m, &limits(), |_, _| Ok(())).unwrap_err();
        assert!(matches!(e, KvmError::NoProgress(_)), "{e}");
        assert!(v.script.is_empty());

        // A jump to itself is a spin: never probed.
        m.mem.write(0x1000, &[0xEB, 0xFE]).unwrap();
        let mut v = Fake::new(&[
            Scripted::Errno(libc::EINTR),
            Scripted::Errno(libc::EINTR),
            Scripted::Errno(libc::EINTR),
            Scripted::Shutdown,
        ]);
        v.regs = kvm_regs {
            rflags: 2 | f::IF as u64,
            rip: 0x1000,
            ..Default::default()
        };
        v.sregs.cr0 = 1;
        v.sregs.cs.db = 1;
        v.sregs.cs.present = 1;
        let mut st = LoopState::new(HostKind::Amd, 0);
        st.wedged_after = Duration::ZERO;
        let r = run(&mut v, &mut st, &mut m, &limits(), |_, _| Ok(()));
        assert_eq!(r.unwrap(), Stop::TripleFault);
        assert!(!st.probing);
    }

    #[test]
    fn the_timer_signal_resumes_and_other_errors_keep_their_errno() {
        let mut m = machine();
        let script = [Scripted::Errno(libc::EINTR), Scripted::Errno(libc::EBADF)];
        let (r, _, st) = play(HostKind::Amd, &script, &mut m);
        assert_eq!(st.exits.get("timer"), Some(&1));
        let e = r.unwrap_err();
        assert_eq!(e.to_string(), "KVM_RUN", "the call; the errno is its cause");
        let errno = e
            .source()
            .and_then(|s| s.downcast_ref::<kvm_ioctls::Error>())
            .map(|s| s.errno());
        assert_eq!(errno, Some(libc::EBADF));
    }

    #[test]
    fn shutdown_is_a_triple_fault_except_where_kvm_pvm_explains_it() {
        let (r, _, _) = play(HostKind::Amd, &[Scripted::Shutdown], &mut machine());
        assert_eq!(r.unwrap(), Stop::TripleFault);
        // kvm-pvm, CR0.PG set: its missing 32-bit paging, not the guest.
        let mut v = Fake::new(&[Scripted::Shutdown]);
        v.sregs.cr0 = (machine::cpu::cr0::PE | machine::cpu::cr0::PG) as u64;
        let mut st = LoopState::new(HostKind::Pvm, 0);
        let e = run(&mut v, &mut st, &mut machine(), &limits(), |_, _| Ok(())).unwrap_err();
        assert!(
            matches!(&e, KvmError::Unsupported(why) if why.contains("32-bit paging")),
            "{e}"
        );
    }

    #[test]
    fn kvm_pvm_stops_at_the_first_exit_with_a_page_directory() {
        let mut v = Fake::new(&[out(0xE9, b"x"), out(0xE9, b"y")]);
        v.sregs.cr3 = 0x9000;
        let mut st = LoopState::new(HostKind::Pvm, 0);
        let mut m = machine();
        let e = run(&mut v, &mut st, &mut m, &limits(), |_, _| Ok(())).unwrap_err();
        assert!(e.to_string().contains("CR3=0x9000"), "{e}");
        assert_eq!(m.debugcon_output(), b"", "stopped before handling it");
    }

    #[test]
    fn unknown_exits_and_internal_errors_fail_with_a_state_dump() {
        let (r, _, _) = play(HostKind::Intel, &[Scripted::Nmi], &mut machine());
        let e = r.unwrap_err();
        assert!(matches!(e, KvmError::VcpuFailed { .. }));
        let text = e.to_string();
        assert!(
            text.starts_with("unexpected VM exit: KVM_EXIT_NMI; vCPU state:\n  at "),
            "{text}"
        );
        let (r, _, st) = play(HostKind::Intel, &[Scripted::InternalError], &mut machine());
        assert!(r.unwrap_err().to_string().contains("internal error"));
        assert_eq!(st.exits.get("internal error"), Some(&1));
    }

    #[test]
    fn stepping_ends_at_the_debug_exit_or_after_completing_io() {
        let mut v = Fake::new(&[Scripted::Debug]);
        let mut st = LoopState::new(HostKind::Amd, 0);
        st.stepping = true;
        let r = run(&mut v, &mut st, &mut machine(), &limits(), |_, _| Ok(()));
        assert_eq!(r.unwrap(), Stop::Stepped);
        assert!(v.single_step, "single stepping armed before the entry");

        // An OUT while stepping: the instruction is completed by an entry
        // with immediate_exit set, and the step ends there.
        let mut v = Fake::new(&[out(0xE9, b"s")]);
        st.io_pending = false;
        let mut m = machine();
        let r = run(&mut v, &mut st, &mut m, &limits(), |_, _| Ok(()));
        assert_eq!(r.unwrap(), Stop::Stepped);
        assert_eq!(m.debugcon_output(), b"s");
        assert_eq!(v.immediate_runs, 1);
        assert!(!st.io_pending);
        assert_eq!(v.imm, 0, "immediate_exit cleared again");
    }

    #[test]
    fn memory_errors_stop_the_run_before_any_entry() {
        let mut v = Fake::new(&[]);
        let mut st = LoopState::new(HostKind::Amd, 0);
        let r = run(&mut v, &mut st, &mut machine(), &limits(), |_, _| {
            Err(KvmError::Unsupported("no ROM here".into()))
        });
        assert!(matches!(r, Err(KvmError::Unsupported(s)) if s == "no ROM here"));
    }

    #[test]
    fn a_pending_interrupt_is_injected_when_the_guest_can_take_it() {
        let mut m = machine();
        // 8259A master: ICW1-4 (vectors from 0x08), then only IRQ4 unmasked.
        for (port, v) in [
            (0x20, 0x11),
            (0x21, 0x08),
            (0x21, 0x04),
            (0x21, 0x01),
            (0x21, 0xEF),
        ] {
            m.io_write(port, 1, v);
        }
        // 16550A: OUT2 gates its IRQ on a PC; interrupt on received data.
        m.io_write(0x3FC, 1, 0x08);
        m.io_write(0x3F9, 1, 0x01);
        m.serial_input(b"x");
        assert!(m.interrupt_pending());

        // Not ready: the loop asks for an interrupt window instead.
        let mut v = Fake::new(&[out(0xF4, &[0])]);
        let mut st = LoopState::new(HostKind::Amd, 0);
        run(&mut v, &mut st, &mut m, &limits(), |_, _| Ok(())).unwrap();
        assert!(v.window);
        assert!(v.injected.is_empty());

        m.clear_stop();
        let mut v = Fake::new(&[out(0xF4, &[0])]);
        v.ready = true;
        run(&mut v, &mut st, &mut m, &limits(), |_, _| Ok(())).unwrap();
        assert_eq!(v.injected, vec![0x0C], "IRQ4 at vector base 0x08");
        assert_eq!(st.injected, 1);
        assert!(!v.window);
    }

    /// Real mode, the vector table at 0: #DE (0) and #UD (6) to 0000:5000,
    /// #GP (13) to 0000:6000, the rest left zero (0000:0000, inside the
    /// table).
    fn real_mode_vectors(m: &mut Machine) -> CpuState {
        m.mem.write(0, &[0x00, 0x50, 0, 0]).unwrap();
        m.mem.write(6 * 4, &[0x00, 0x50, 0, 0]).unwrap();
        m.mem.write(13 * 4, &[0x00, 0x60, 0, 0]).unwrap();
        m.mem.write(0x5000, &[0x55]).unwrap();
        m.mem.write(0x6000, &[0x56]).unwrap();
        let mut s = CpuState::boot_sector(0x7C00);
        s.idtr.base = 0;
        s.idtr.limit = 0x3FF;
        s
    }

    #[test]
    fn fault_stops_patch_the_exception_handlers_but_not_what_the_step_reads() {
        let mut m = machine();
        let s = real_mode_vectors(&mut m);
        let mut st = LoopState::new(HostKind::Amd, 0);
        // nop: every handler in RAM outside the table is patched, once.
        m.mem.write(0x7C00, &[0x90]).unwrap();
        arm_fault_stops(&mut st, &mut m, &s);
        assert!(st.fault_stops);
        let at: Vec<u32> = st.handler_patches.iter().map(|p| p.phys).collect();
        assert_eq!(at, vec![0x5000, 0x6000], "not 0000:0000, the table itself");
        assert_eq!(m.mem.read_u8(0x5000), Some(debug::HLT));
        assert_eq!(m.mem.read_u8(0), Some(0), "the table untouched");
        disarm_handler_stops(&mut st, &mut m);
        assert_eq!(m.mem.slice(0x5000, 1).unwrap(), &[0x55]);
        assert_eq!(m.mem.slice(0x6000, 1).unwrap(), &[0x56]);
        assert!(!st.fault_stops);
        // mov al, [0x6000]: that handler's byte is read by the step.
        m.mem.write(0x7C00, &[0xA0, 0x00, 0x60]).unwrap();
        arm_fault_stops(&mut st, &mut m, &s);
        let at: Vec<u32> = st.handler_patches.iter().map(|p| p.phys).collect();
        assert_eq!(at, vec![0x5000]);
        disarm_handler_stops(&mut st, &mut m);
        // An INT n's own handler only.
        arm_handler_stop(&mut st, &mut m, &s, 13, true);
        let at: Vec<u32> = st.handler_patches.iter().map(|p| p.phys).collect();
        assert_eq!(at, vec![0x6000]);
        assert!(!st.fault_stops);
        disarm_handler_stops(&mut st, &mut m);
        assert_eq!(m.mem.slice(0x6000, 1).unwrap(), &[0x56]);
    }
}
