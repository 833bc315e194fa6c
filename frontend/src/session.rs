//! The one way to run a machine: a `Session` creates the engine (this is
//! the only engine factory outside the engine crates), runs the machine to
//! a real stop, and moves it from one engine to another. The CLI, the step
//! UI, the comparison, `bench`, the lockstep search of `departure` and the
//! tests all drive machines through it.
//!
//! **Bounds.** `Limits` are absolute (an instruction count the machine's
//! count must reach, a host-clock deadline), so a run cut into several
//! engine calls passes the same bounds on. A session may cut a run itself:
//! into slices, to report progress (`run_reporting`), and at the planned
//! engine switches (`plan_switch`). It knows which bound it set for each
//! engine call, so the caller sees only its own: `Stop::Budget` from a
//! session means the caller's `max_icount` was reached, `Stop::Timeout`
//! its deadline; slices and switch points never leak out.
//!
//! **Switching engines** is the `CpuState` contract at work (DESIGN.md):
//! the running engine exports the architectural state, a new engine of
//! another kind is created over the same `Machine` (same RAM, same
//! devices, same clock and trace) and imports it. A fresh engine starts
//! with empty caches, so nothing the previous one cached (decoded blocks,
//! translations, TLB entries) can go stale behind its back.
//!
//! **KVM** runs the guest uncounted. A session asked to stop KVM at an
//! instruction count (a `max_icount`, a switch point) single-steps it
//! there, one VM exit per instruction, each step retiring one instruction
//! on the machine's count (`step_until`, the one place this is done).

use crate::engines::EngineKind;
use machine::{CpuState, Engine, EngineError, EngineStats, Limits, Machine, Stop};
use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

/// How an engine is made, beyond its kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// The interpreter's trap-and-emulate mode (the Popek-Goldberg lab):
    /// the guest's ring 0 runs as if deprivileged to ring 1. The
    /// interpreter's only; other engines ignore it.
    pub deprivilege: bool,
    /// The translator's cache size in bytes (None: its default); a small
    /// cache is flushed often, which the tests use.
    pub bt_cache_bytes: Option<usize>,
}

impl Options {
    /// The options with the trap-and-emulate mode on or off.
    pub fn deprivileged(on: bool) -> Options {
        Options {
            deprivilege: on,
            ..Options::default()
        }
    }
}

/// Creates engine `kind` over `m`: the only place engines are made.
fn create(kind: EngineKind, m: &mut Machine, o: &Options) -> Result<Box<dyn Engine>, EngineError> {
    match kind {
        EngineKind::Interp => {
            let mut i = engine_interp::Interp::new();
            i.set_deprivilege(o.deprivilege);
            Ok(Box::new(i))
        }
        EngineKind::Bt => match o.bt_cache_bytes {
            Some(bytes) => Ok(Box::new(engine_bt::Bt::with_cache_bytes(bytes)?)),
            None => engine_bt::create(m),
        },
        EngineKind::Kvm => engine_kvm::create(m),
    }
}

/// One engine change: at which instruction count, from which engine to which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Switch {
    pub icount: u64,
    pub from: EngineKind,
    pub to: EngineKind,
}

/// An engine failed during a run (a host-side error, not the guest's).
#[derive(Debug)]
pub struct RunError {
    /// The engine that failed: the running one, or the one a planned
    /// switch was moving the machine to.
    pub engine: EngineKind,
    /// The planned switch point, when the failure was the switch (the old
    /// engine still holds the machine then).
    pub switch_at: Option<u64>,
    pub error: EngineError,
}

/// Which engine failed, and when; the engine's error is the source.
impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.switch_at {
            Some(n) => write!(f, "switching to {} at instruction {n}", self.engine.name()),
            None => write!(f, "{}", self.engine.name()),
        }
    }
}

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// How often `run_reporting` reports, and to what.
type Report<'a> = (Duration, &'a mut dyn FnMut(&mut Session) -> ControlFlow<()>);

/// Instructions a counting engine runs at most between two progress
/// reports of `run_reporting` (its time slice bounds KVM).
const SLICE_INSNS: u64 = 20_000_000;

pub struct Session {
    pub m: Machine,
    engine: Box<dyn Engine>,
    kind: EngineKind,
    options: Options,
    /// Switches still to make, by instruction count (`plan_switch`).
    plan: VecDeque<(u64, EngineKind)>,
    /// Every switch so far, in order.
    pub switches: Vec<Switch>,
    /// The statistics of the engines switched away from.
    pub earlier: Vec<EngineStats>,
}

/// The smaller bound; None is no bound.
fn tighter(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Session {
    /// Creates engine `kind` over `m` and gives it the state `entry`.
    pub fn new(
        mut m: Machine,
        kind: EngineKind,
        options: Options,
        entry: &CpuState,
    ) -> Result<Session, EngineError> {
        let engine = create(kind, &mut m, &options)?;
        Session::start(m, engine, kind, options, entry)
    }

    /// A session whose engine is a test double wrapped around the
    /// interpreter (made here, as every engine is), which the session and
    /// the UI call `shown_as`: a test's engine that fails on purpose, say.
    pub fn with_test_double(
        mut m: Machine,
        shown_as: EngineKind,
        entry: &CpuState,
        wrap: impl FnOnce(Box<dyn Engine>) -> Box<dyn Engine>,
    ) -> Result<Session, EngineError> {
        let options = Options::default();
        let engine = wrap(create(EngineKind::Interp, &mut m, &options)?);
        Session::start(m, engine, shown_as, options, entry)
    }

    fn start(
        mut m: Machine,
        mut engine: Box<dyn Engine>,
        kind: EngineKind,
        options: Options,
        entry: &CpuState,
    ) -> Result<Session, EngineError> {
        engine.set_cpu_state(&mut m, entry)?;
        Ok(Session {
            m,
            engine,
            kind,
            options,
            plan: VecDeque::new(),
            switches: Vec::new(),
            earlier: Vec::new(),
        })
    }

    pub fn kind(&self) -> EngineKind {
        self.kind
    }

    /// The options engines are made with (a restart makes them alike).
    pub fn options(&self) -> Options {
        self.options
    }

    /// The running engine's counters; after a switch, the instruction
    /// count is the machine's (all engines together).
    pub fn stats(&self) -> EngineStats {
        let mut s = self.engine.stats();
        if !self.switches.is_empty() {
            s.instructions = Some(self.m.icount());
        }
        s
    }

    pub fn cpu_state(&mut self) -> Result<CpuState, EngineError> {
        self.engine.cpu_state()
    }

    /// Replaces the architectural state (a test's initial state, a
    /// debugger's register write); the engine drops what it cached.
    pub fn set_cpu_state(&mut self, s: &CpuState) -> Result<(), EngineError> {
        self.engine.set_cpu_state(&mut self.m, s)
    }

    /// Moves the machine to engine `to`: the state leaves the running
    /// engine and enters a new one. On failure the old engine keeps running.
    pub fn switch_to(&mut self, to: EngineKind) -> Result<(), EngineError> {
        let state = self.engine.cpu_state()?;
        let mut next = create(to, &mut self.m, &self.options)?;
        next.set_cpu_state(&mut self.m, &state)?;
        let old = std::mem::replace(&mut self.engine, next);
        self.earlier.push(old.stats());
        let now = self.m.clock.now();
        self.m.trace.record(
            self.m.icount(),
            now,
            machine::Event::EngineSwitch {
                from: self.kind.name().into(),
                to: to.name().into(),
            },
        );
        self.switches.push(Switch {
            icount: self.m.icount(),
            from: self.kind,
            to,
        });
        self.kind = to;
        Ok(())
    }

    /// Plans a switch to `to` once the machine has retired `icount`
    /// instructions: the runs stop there exactly (KVM single-stepping up
    /// to it) and go on on `to`. Switches are made in count order.
    pub fn plan_switch(&mut self, icount: u64, to: EngineKind) {
        let at = self.plan.partition_point(|&(n, _)| n <= icount);
        self.plan.insert(at, (icount, to));
    }

    /// Whether a run that starts on `first`, switches as `plan` says and
    /// is bounded by `max_icount` single-steps KVM somewhere: wherever a
    /// KVM stretch must end at a count (a switch away from it, or the
    /// bound), `run_until` steps it there, one VM exit per instruction.
    /// Known before the session exists, so a front end can say so first.
    pub fn single_steps_kvm(
        first: EngineKind,
        plan: &[(u64, EngineKind)],
        max_icount: Option<u64>,
    ) -> bool {
        let order: Vec<EngineKind> = std::iter::once(first)
            .chain(plan.iter().map(|&(_, k)| k))
            .collect();
        order.iter().enumerate().any(|(i, &k)| {
            !k.counts_instructions() && (i + 1 < order.len() || max_icount.is_some())
        })
    }

    /// The planned switches not made yet (the guest stopped before them).
    pub fn planned_switches(&self) -> impl Iterator<Item = (u64, EngineKind)> + '_ {
        self.plan.iter().copied()
    }

    /// The host code of the block at the PC (the translator only).
    pub fn translation_at_pc(
        &mut self,
    ) -> Option<Result<machine::Translation, machine::NotTranslated>> {
        self.engine.translation_at_pc(&mut self.m)
    }

    /// One instruction (or one interrupt or exception delivered).
    ///
    /// On KVM a step that delivers an interrupt (one the interrupt
    /// controllers hold, with IF set and no interrupt shadow, or an NMI)
    /// or runs a software interrupt (INT n, INT3, INTO, INT1) is made on
    /// the interpreter, the machine moving there and back (two
    /// `EngineSwitch` events): KVM single-steps with TF in the guest's
    /// EFLAGS, which the delivery pushes into the handler's frame and then
    /// clears, so KVM's step would run the whole handler unseen and the
    /// frame's TF would come back at its IRET (xv6 then kills the process
    /// with a #DB). The interpreter stops at the handler's first
    /// instruction, as every engine should.
    pub fn step(&mut self) -> Result<Stop, EngineError> {
        if self.kind == EngineKind::Kvm && self.kvm_step_delivers()? {
            self.switch_to(EngineKind::Interp)?;
            let s = self.engine.step(&mut self.m);
            self.switch_to(EngineKind::Kvm)?;
            return s;
        }
        self.engine.step(&mut self.m)
    }

    /// The next step delivers an interrupt or runs a software interrupt.
    fn kvm_step_delivers(&mut self) -> Result<bool, EngineError> {
        let st = self.engine.cpu_state()?;
        let maskable = st.eflags & machine::cpu::flags::IF != 0
            && !st.interrupt_shadow
            && self.m.interrupt_pending();
        Ok(self.m.nmi_pending() || maskable || at_software_interrupt(&self.m, &st))
    }

    /// Runs until the guest stops, a breakpoint, an event of the trace's
    /// stop-on set, a POST code (with stops on them), or one of the
    /// caller's bounds: `Stop::Budget` once the machine's count reaches
    /// `limits.max_icount` (exactly, on every engine: KVM single-steps to
    /// it), `Stop::Timeout` once the host clock passes `limits.deadline`.
    /// Planned switches are made on the way.
    pub fn run_until(&mut self, limits: &Limits) -> Result<Stop, RunError> {
        self.run_sliced(limits, None)
    }

    /// `run_until`, calling `report` at least every `every` of host time
    /// (and every few million instructions) while the run goes on, and
    /// once when it ends: to stream the serial output, redraw a screen,
    /// show progress.
    pub fn run_reporting(
        &mut self,
        limits: &Limits,
        every: Duration,
        report: &mut dyn FnMut(&mut Session) -> ControlFlow<()>,
    ) -> Result<Stop, RunError> {
        self.run_sliced(limits, Some((every, report)))
    }

    fn run_sliced(
        &mut self,
        limits: &Limits,
        mut report: Option<Report<'_>>,
    ) -> Result<Stop, RunError> {
        loop {
            if let Some(&(at, _)) = self.plan.front() {
                if self.m.icount() >= at {
                    self.switch_planned()?;
                    continue;
                }
            }
            let switch_at = self.plan.front().map(|&(n, _)| n);
            // The point this engine call must stop at exactly.
            let exact = tighter(limits.max_icount, switch_at);
            let counted = self.kind.counts_instructions();
            let now = Instant::now();
            let slice = report
                .as_ref()
                .map(|&(every, _)| (self.m.icount().saturating_add(SLICE_INSNS), now + every));
            // KVM cannot stop at a count on its own: its slices are time
            // only (and `step_until` stops it at `exact`).
            let slice_max = slice.map(|s| s.0).filter(|_| counted);
            let slice_deadline = slice.map(|s| s.1);
            let bounds = Limits {
                max_icount: tighter(exact, slice_max),
                deadline: match (limits.deadline, slice_deadline) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                },
                breakpoints: limits.breakpoints.clone(),
            };
            let r = match exact {
                Some(n) if !counted => self.step_until(n, &bounds),
                _ => self.engine.run(&mut self.m, &bounds),
            };
            let stop = r.map_err(|error| RunError {
                engine: self.kind,
                switch_at: None,
                error,
            })?;
            if let Some((_, f)) = report.as_mut() {
                if f(self).is_break() {
                    return Ok(Stop::Quit);
                }
            }
            // Which bound ended it: the one whose value was set.
            match stop {
                Stop::Budget if switch_at.is_some() && bounds.max_icount == switch_at => {
                    // The engine counts stuck exception deliveries against
                    // its bound (so a faulting loop ends): it may stop just
                    // short of the point, which is the switch point then.
                    self.switch_planned()?;
                }
                Stop::Budget
                    if slice_max.is_some()
                        && bounds.max_icount == slice_max
                        && bounds.max_icount != limits.max_icount =>
                {
                    // A slice; a guest stuck in faulting deliveries ends
                    // every slice at once, so the deadline is looked at
                    // here too.
                    if limits.expired() {
                        return Ok(Stop::Timeout);
                    }
                }
                Stop::Timeout
                    if slice_deadline.is_some()
                        && bounds.deadline == slice_deadline
                        && bounds.deadline != limits.deadline => {}
                s => return Ok(s),
            }
        }
    }

    /// Makes the next planned switch (to the same engine: none).
    fn switch_planned(&mut self) -> Result<(), RunError> {
        let Some((at, to)) = self.plan.pop_front() else {
            return Ok(());
        };
        if to == self.kind {
            return Ok(());
        }
        self.switch_to(to).map_err(|error| RunError {
            engine: to,
            switch_at: Some(at),
            error,
        })
    }

    /// KVM's exact count: single steps until the machine has retired
    /// `max` instructions, a breakpoint (not at the first instruction,
    /// where the run starts), the deadline, or a stop.
    fn step_until(&mut self, max: u64, limits: &Limits) -> Result<Stop, EngineError> {
        let mut first = true;
        loop {
            if self.m.icount() >= max {
                return Ok(Stop::Budget);
            }
            if limits.expired() {
                return Ok(Stop::Timeout);
            }
            if !limits.breakpoints.is_empty() {
                let pc = self.engine.cpu_state()?.pc_linear();
                if !first && limits.breakpoints.contains(&pc) {
                    return Ok(Stop::Breakpoint { addr: pc });
                }
            }
            first = false;
            match self.engine.step(&mut self.m)? {
                Stop::Stepped => {}
                s => return Ok(s),
            }
            if self.m.trace.take_stop_hit() {
                return Ok(Stop::Event);
            }
        }
    }
}

/// The instruction at CS:EIP is a software interrupt (INT n, INT3, INTO,
/// INT1).
pub(crate) fn at_software_interrupt(m: &Machine, st: &CpuState) -> bool {
    use iced_x86::{Decoder, DecoderOptions, Mnemonic};
    let lin = st.pc_linear();
    let bytes = crate::inspect::read_linear(m, st, lin, 15);
    let mut dec = Decoder::with_ip(st.code_bits(), &bytes, lin as u64, DecoderOptions::NONE);
    matches!(
        dec.decode().mnemonic(),
        Mnemonic::Int | Mnemonic::Int3 | Mnemonic::Into | Mnemonic::Int1
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use machine::MachineConfig;

    /// `code` at 0x7C00 in real mode, on `kind`.
    fn session(code: &[u8], kind: EngineKind) -> Session {
        let mut m = Machine::new(MachineConfig::default()).expect("machine");
        m.mem.write(0x7C00, code).expect("code");
        Session::new(m, kind, Options::default(), &CpuState::boot_sector(0x7C00)).expect("session")
    }

    /// `1: nop; jmp 1b`: runs forever, one instruction at a time. (Not
    /// `jmp $`, which with interrupts disabled is a panic loop that stops
    /// the run: `Stop::Spinning`.)
    const SPIN: &[u8] = &[0x90, 0xEB, 0xFD];

    #[test]
    fn a_reported_run_stops_at_the_callers_count_not_at_its_slices() {
        let mut s = session(SPIN, EngineKind::Interp);
        let limits = Limits {
            max_icount: Some(2 * SLICE_INSNS + 5),
            ..Limits::default()
        };
        let mut reports = 0;
        let stop = s
            .run_reporting(&limits, Duration::from_secs(60), &mut |_| {
                reports += 1;
                ControlFlow::Continue(())
            })
            .expect("run");
        assert_eq!(stop, Stop::Budget);
        assert_eq!(s.m.icount(), 2 * SLICE_INSNS + 5);
        // Two slices of SLICE_INSNS, then the rest: a report after each.
        assert_eq!(reports, 3);
    }

    #[test]
    fn a_reported_run_ends_at_the_callers_deadline_not_at_its_slices() {
        let mut s = session(SPIN, EngineKind::Bt);
        let start = Instant::now();
        let limits = Limits {
            deadline: Some(start + Duration::from_millis(100)),
            ..Limits::default()
        };
        let stop = s
            .run_reporting(&limits, Duration::from_millis(10), &mut |_| {
                ControlFlow::Continue(())
            })
            .expect("run");
        assert_eq!(stop, Stop::Timeout);
        // Ten times the slice: the slices did not end the run. (How many
        // reports came depends on the host's scheduling, so it is not
        // asserted: a loaded machine may give one slice all the time.)
        assert!(start.elapsed() >= Duration::from_millis(100));
    }

    #[test]
    fn planned_switches_happen_at_their_exact_counts() {
        let mut s = session(SPIN, EngineKind::Interp);
        s.plan_switch(3000, EngineKind::Interp);
        s.plan_switch(1000, EngineKind::Bt);
        let limits = Limits {
            max_icount: Some(5000),
            ..Limits::default()
        };
        assert_eq!(s.run_until(&limits).expect("run"), Stop::Budget);
        assert_eq!(s.m.icount(), 5000);
        let made: Vec<(u64, EngineKind, EngineKind)> = s
            .switches
            .iter()
            .map(|w| (w.icount, w.from, w.to))
            .collect();
        assert_eq!(
            made,
            [
                (1000, EngineKind::Interp, EngineKind::Bt),
                (3000, EngineKind::Bt, EngineKind::Interp)
            ]
        );
        assert_eq!(s.planned_switches().count(), 0);
    }

    /// Real mode, the #UD vector pointing at a UD2: every delivery faults
    /// again at once and nothing ever retires.
    fn stuck() -> Session {
        let mut s = session(&[0x0F, 0x0B], EngineKind::Interp);
        // IVT entry 6 (#UD): 0000:7C00, the UD2 itself.
        s.m.mem
            .write(6 * 4, &[0x00, 0x7C, 0x00, 0x00])
            .expect("IVT");
        s
    }

    #[test]
    fn a_guest_stuck_in_faulting_deliveries_still_ends_at_a_bound() {
        // The interpreter counts such deliveries against the instruction
        // bound; the session takes that as the caller's bound.
        let mut s = stuck();
        let limits = Limits {
            max_icount: Some(1000),
            ..Limits::default()
        };
        assert_eq!(s.run_until(&limits).expect("run"), Stop::Budget);
        assert_eq!(s.m.icount(), 0);
        // In slices, each of which the stuck guest ends at once, the
        // deadline still ends the run.
        let mut s = stuck();
        let limits = Limits {
            deadline: Some(Instant::now() + Duration::from_millis(50)),
            ..Limits::default()
        };
        let stop = s
            .run_reporting(&limits, Duration::from_millis(10), &mut |_| {
                ControlFlow::Continue(())
            })
            .expect("run");
        assert_eq!(stop, Stop::Timeout);
    }

    #[test]
    fn kvm_is_single_stepped_where_a_stretch_ends_at_a_count() {
        use EngineKind::{Bt, Interp, Kvm};
        assert!(!Session::single_steps_kvm(Kvm, &[], None));
        assert!(Session::single_steps_kvm(Kvm, &[], Some(10)));
        assert!(Session::single_steps_kvm(Kvm, &[(5, Interp)], None));
        assert!(!Session::single_steps_kvm(Interp, &[(5, Kvm)], None));
        assert!(Session::single_steps_kvm(Bt, &[(5, Kvm)], Some(10)));
    }
}
