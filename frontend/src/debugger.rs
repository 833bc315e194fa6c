//! The debugger behind `ringlab step`: what its keys do, apart from the
//! terminal: step, step over, run to the next privilege change or
//! exception, continue, breakpoints, switching engines, restarting. It
//! drives the machine through its `Session`. The terminal UI (`tui.rs`)
//! draws a `Debugger` and feeds it commands; the tests drive it directly.
//! (`step.rs` is the `ringlab step` command itself, as `run.rs` is
//! `ringlab run`: it loads the guest and starts the UI.)

use crate::engines::EngineKind;
use crate::inspect::{self, IntFrame};
use crate::session::Session;
use machine::{Chain, CpuState, EngineError, EventKind, EventMask, Limits, Machine, Stop};
use std::time::{Duration, Instant};

/// How long one "run" command may take before it gives control back (the
/// UI stays responsive; run again to go on).
pub const RUN_SLICE: Duration = Duration::from_millis(200);
/// Instructions one "run to" command executes at most before it gives up
/// and says so (a guest that never changes ring would otherwise spin).
pub const RUN_TO_BUDGET: u64 = 200_000_000;
/// On KVM a "run to" single-steps (it sees ring changes only between
/// steps): fewer steps before it gives up.
pub const KVM_RUN_TO_STEPS: u64 = 200_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// One instruction (or one interrupt or exception delivered).
    Step,
    /// Step, but run over CALL, INT n, REP strings and LOOP.
    StepOver,
    /// Run until the privilege level changes.
    RunToRingChange,
    /// Run until an exception or interrupt is delivered.
    RunToException,
    /// Run until a breakpoint or the guest stops (one slice at a time).
    Continue,
    /// Set or clear a breakpoint at a linear address.
    ToggleBreakpoint(u32),
    /// Move the machine to another engine and go on there.
    Switch(EngineKind),
    /// Reload the guest and start again from its entry, on the engine
    /// running now.
    Restart,
}

/// Builds the machine afresh with the guest loaded, and the CPU state to
/// enter it with (what `ringlab step` did at start-up).
pub type Reload = Box<dyn FnMut() -> anyhow::Result<(Machine, CpuState)>>;

pub struct Debugger {
    pub session: Session,
    pub breakpoints: Vec<u32>,
    /// The linear addresses of the last instructions stepped (oldest first),
    /// shown above EIP in the disassembly.
    pub history: Vec<u32>,
    /// The last stop and what the last command did, for the status line.
    pub last_stop: Option<Stop>,
    pub message: String,
    /// The guest has stopped for good (exit, halt, triple fault): the
    /// final stop is in `last_stop`.
    pub finished: bool,
    /// The running engine failed (a host-side error, not the guest's):
    /// its error. The machine is as the engine left it; switching engines
    /// or restarting goes on from there.
    pub engine_failed: Option<EngineError>,
    /// The last interrupt or exception frame the debugger stopped at.
    pub frame: Option<IntFrame>,
    reload: Option<Reload>,
    /// Where the engine last stopped at a breakpoint (while the CPU is
    /// still there). The interpreter remembers that address so that its
    /// next run with breakpoints goes past it; a step, or a run without
    /// that breakpoint, would leave the memory stale and skip the
    /// breakpoint the next time round. So the debugger leaves such a place
    /// through a one-instruction run with that breakpoint.
    resume_at: Option<u32>,
}

const HISTORY: usize = 6;

/// "1 instruction", "5 instructions".
fn instructions(n: u64) -> String {
    if n == 1 {
        "1 instruction".into()
    } else {
        format!("{n} instructions")
    }
}

impl Debugger {
    pub fn new(session: Session) -> Debugger {
        Debugger {
            session,
            breakpoints: Vec::new(),
            history: Vec::new(),
            last_stop: None,
            message: "ready: press ? for the keys".into(),
            finished: false,
            engine_failed: None,
            frame: None,
            reload: None,
            resume_at: None,
        }
    }

    /// A debugger that can restart its guest: `reload` builds the machine
    /// again.
    pub fn with_reload(session: Session, reload: Reload) -> Debugger {
        let mut s = Debugger::new(session);
        s.reload = Some(reload);
        s
    }

    fn pc(&mut self) -> Option<u32> {
        self.session.cpu_state().ok().map(|s| s.pc_linear())
    }

    fn note_pc(&mut self, pc: Option<u32>) {
        if let Some(pc) = pc {
            if self.history.last() != Some(&pc) {
                self.history.push(pc);
                if self.history.len() > HISTORY {
                    self.history.remove(0);
                }
            }
        }
    }

    /// Carries out one command; what happened ends up in `message`.
    pub fn exec(&mut self, cmd: Command) {
        match cmd {
            Command::ToggleBreakpoint(a) => return self.toggle_breakpoint(a),
            Command::Switch(to) => return self.switch(to),
            Command::Restart => return self.restart(),
            _ => {}
        }
        if let Some(err) = &self.engine_failed {
            self.message = format!(
                "the {} engine failed (w moves the machine to another engine, which goes on \
                 from instruction {}; x restarts): {}",
                self.session.kind().name(),
                self.session.m.icount(),
                Chain(err)
            );
            return;
        }
        if self.finished {
            if let Some(stop) = &self.last_stop {
                self.message =
                    format!("the guest has stopped ({stop}); nothing more to run -- x restarts it");
                return;
            }
        }
        let before = self.session.m.icount();
        let rings_before = self.session.m.trace.count(EventKind::PrivilegeChange);
        let pc = self.pc();
        // Only while the CPU is still where it stopped.
        self.resume_at = self.resume_at.filter(|&a| Some(a) == pc);
        let mut over = None;
        let r = match cmd {
            Command::Step => {
                let r = self.step_one(EventMask::NONE);
                if r.is_ok() {
                    self.note_pc(pc);
                }
                r
            }
            Command::StepOver => {
                let target = self
                    .session
                    .cpu_state()
                    .ok()
                    .and_then(|st| inspect::step_over_target(&self.session.m, &st));
                self.note_pc(pc);
                match target {
                    Some((t, text)) => {
                        over = Some((t, text));
                        // The user's breakpoints inside the call stop it
                        // too, as in gdb; `t` is a temporary one.
                        let mut bps = self.breakpoints.clone();
                        bps.push(t);
                        self.run_until(EventMask::NONE, bps)
                    }
                    None => self.step_one(EventMask::NONE),
                }
            }
            Command::RunToRingChange => {
                self.history.clear();
                let bps = self.breakpoints.clone();
                self.run_until(EventMask::NONE.with(EventKind::PrivilegeChange), bps)
            }
            Command::RunToException if self.session.kind() == EngineKind::Kvm => {
                self.message = "KVM does not see exceptions or interrupts the CPU delivers \
                                itself (only its VM exits): run to a ring change, or switch \
                                to the interpreter (w) to stop at them"
                    .into();
                return;
            }
            Command::RunToException => {
                self.history.clear();
                let bps = self.breakpoints.clone();
                self.run_until(
                    EventMask::NONE
                        .with(EventKind::Exception)
                        .with(EventKind::Interrupt),
                    bps,
                )
            }
            Command::Continue => {
                self.history.clear();
                let limits = Limits {
                    max_icount: None,
                    deadline: Some(Instant::now() + RUN_SLICE),
                    breakpoints: self.breakpoints.clone(),
                };
                self.run_from_here(&limits, EventMask::NONE)
            }
            Command::ToggleBreakpoint(_) | Command::Switch(_) | Command::Restart => {
                unreachable!("handled above")
            }
        };
        let ran = self.session.m.icount() - before;
        match r {
            Ok(stop) => {
                self.finished = stop.is_final();
                self.message = self.describe(&stop, cmd, ran, over.as_ref());
                if cmd == Command::Step
                    && self.session.m.trace.count(EventKind::PrivilegeChange) > rings_before
                {
                    // A step across a ring change says which.
                    if let Some(r) = self
                        .session
                        .m
                        .trace
                        .records()
                        .rev()
                        .find(|r| matches!(r.event, machine::Event::PrivilegeChange { .. }))
                    {
                        self.message += &format!(": {}", inspect::event_what(&r.event));
                    }
                }
                self.resume_at = match stop {
                    Stop::Breakpoint { addr } => Some(addr),
                    _ => None,
                };
                self.last_stop = Some(stop);
            }
            Err(e) => {
                self.message = format!(
                    "engine error on {} after {} (w moves the machine to another engine and \
                     goes on there; x restarts): {}",
                    self.session.kind().name(),
                    instructions(ran),
                    Chain(&e)
                );
                self.engine_failed = Some(e);
                self.resume_at = None;
            }
        }
        self.capture_frame();
    }

    /// The status line's words for a stop.
    fn describe(
        &self,
        stop: &Stop,
        cmd: Command,
        ran: u64,
        over: Option<&(u32, String)>,
    ) -> String {
        match (stop, cmd) {
            (Stop::Breakpoint { addr }, Command::StepOver)
                if over.is_some_and(|(t, _)| t == addr) && !self.breakpoints.contains(addr) =>
            {
                let text = over.map_or("", |(_, t)| t.as_str());
                format!("stepped over `{text}` ({})", instructions(ran))
            }
            (Stop::Budget, Command::RunToRingChange | Command::RunToException) => {
                format!("gave up after {}: no such event", instructions(ran))
            }
            (Stop::Timeout, Command::Continue) => {
                format!("running... ({ran} instructions this slice; any key pauses)")
            }
            (Stop::Event, Command::RunToRingChange | Command::RunToException) => {
                let last = self.session.m.trace.records().next_back();
                format!(
                    "stopped after {}: {}",
                    instructions(ran),
                    last.map_or(String::new(), |r| format!(
                        "{} (at instruction {})",
                        inspect::event_what(&r.event),
                        r.icount
                    ))
                )
            }
            (Stop::Stepped | Stop::Event | Stop::Budget, _) => match ran {
                1 => "stepped one instruction".to_string(),
                0 => "stepped: an interrupt or exception was delivered".to_string(),
                n => format!("stepped ({n} instructions)"),
            },
            (s, _) => format!("{s} ({})", instructions(ran)),
        }
    }

    fn toggle_breakpoint(&mut self, a: u32) {
        if let Some(i) = self.breakpoints.iter().position(|&b| b == a) {
            self.breakpoints.remove(i);
            self.message = format!("breakpoint at {a:#010x} cleared");
        } else {
            self.breakpoints.push(a);
            self.message = format!("breakpoint at {a:#010x} set");
        }
    }

    fn switch(&mut self, to: EngineKind) {
        let from = self.session.kind();
        if from == to && self.engine_failed.is_none() {
            self.message = format!("already running on {}", to.name());
            return;
        }
        match self.session.switch_to(to) {
            Ok(()) => {
                self.message = format!(
                    "moved the machine from {} to {} at instruction {}",
                    from.name(),
                    to.name(),
                    self.session.m.icount()
                );
                // The new engine starts from the state the old one left:
                // a failure was the old engine's, and so is the memory of
                // a breakpoint.
                self.engine_failed = None;
                self.resume_at = None;
            }
            Err(e) => {
                self.message = format!("cannot switch to {}: {}", to.name(), Chain(&e));
            }
        }
    }

    fn restart(&mut self) {
        let kind = self.session.kind();
        let Some(reload) = self.reload.as_mut() else {
            self.message =
                "this debugger was built without its guest image: it cannot restart".into();
            return;
        };
        let fresh = reload()
            .and_then(|(m, entry)| Ok(Session::new(m, kind, self.session.options(), &entry)?));
        match fresh {
            Ok(s) => {
                self.session = s;
                self.history.clear();
                self.last_stop = None;
                self.finished = false;
                self.engine_failed = None;
                self.frame = None;
                self.resume_at = None;
                self.message = format!(
                    "restarted: the guest reloaded, at its entry on {} (breakpoints kept)",
                    kind.name()
                );
            }
            Err(e) => {
                self.message = format!("cannot restart on {}: {e:#}", kind.name());
            }
        }
    }

    /// After a command: if it stopped right where an interrupt or
    /// exception handler begins, the frame the CPU pushed is at SS:ESP;
    /// keep where it is (the stack pane shows it until the next one).
    fn capture_frame(&mut self) {
        let Ok(st) = self.session.cpu_state() else {
            return;
        };
        if let Some(f) = inspect::frame_at_entry(&self.session.m, &st) {
            self.frame = Some(f);
        }
    }

    /// One instruction (or one delivery). At a breakpoint address it goes
    /// through `run_from_here`, which steps off the breakpoint the way the
    /// engines expect (see there).
    fn step_one(&mut self, stop_on: EventMask) -> Result<Stop, EngineError> {
        let pc = self.pc();
        let at_bp =
            pc.is_some_and(|pc| self.breakpoints.contains(&pc) || self.resume_at == Some(pc));
        if !at_bp || self.session.kind() == EngineKind::Kvm {
            return self.session.step();
        }
        let pc = pc.unwrap_or_default();
        // One instruction, or up to a delivery (which retires none).
        let limits = Limits {
            max_icount: Some(self.session.m.icount() + 1),
            deadline: Some(Instant::now() + RUN_SLICE),
            breakpoints: vec![pc],
        };
        let deliveries = stop_on
            .with(EventKind::Exception)
            .with(EventKind::Interrupt)
            .with(EventKind::PrivilegeChange);
        match self.run_from_here(&limits, deliveries)? {
            Stop::Budget | Stop::Event => Ok(Stop::Stepped),
            s => Ok(s),
        }
    }

    /// Runs within `limits`, first executing the instruction at a
    /// breakpoint the CPU sits on (as gdb does: a breakpoint stops the CPU
    /// *before* its instruction, so continuing from one must not stop there
    /// again at once). The interpreter (and the translator, which hands
    /// breakpoints to it) remembers the breakpoint it stopped at and runs
    /// past it on the next run; where it did not stop there itself (a
    /// breakpoint just set at EIP, a step-over target) the first run stops
    /// at once with nothing executed, and the second one runs past it.
    fn run_from_here(&mut self, limits: &Limits, stop_on: EventMask) -> Result<Stop, EngineError> {
        self.session.m.trace.set_stop_on(stop_on);
        let r = self.run_off_breakpoint(limits);
        self.session.m.trace.set_stop_on(EventMask::NONE);
        // A stop-on hit noted but not yet taken must not end the next run.
        self.session.m.trace.take_stop_hit();
        r
    }

    fn run_off_breakpoint(&mut self, limits: &Limits) -> Result<Stop, EngineError> {
        let start = self.session.m.icount();
        let pc = self.pc();
        let at_bp = pc.filter(|pc| limits.breakpoints.contains(pc));
        let stale = pc.filter(|&pc| {
            self.resume_at.take() == Some(pc)
                && at_bp.is_none()
                && self.session.kind() != EngineKind::Kvm
        });
        if let Some(pc) = stale {
            // One instruction with the breakpoint the engine remembers, so
            // that it forgets it (see `resume_at`); then the run asked for.
            let one = Limits {
                max_icount: Some(start + 1),
                deadline: limits.deadline,
                breakpoints: vec![pc],
            };
            let mut r = self.run(&one)?;
            if r == (Stop::Breakpoint { addr: pc }) && self.session.m.icount() == start {
                // It did not remember after all: this run stopped there
                // and the next goes past.
                r = self.run(&one)?;
            }
            match r {
                Stop::Budget if limits.max_icount.is_none_or(|m| m > start + 1) => {}
                s => return Ok(s),
            }
        }
        if let (Some(pc), EngineKind::Kvm) = (at_bp, self.session.kind()) {
            // KVM single-steps past it (the session's stepping to a count
            // skips a breakpoint at the first instruction already; its
            // free runs do not).
            match self.session.step()? {
                Stop::Stepped => {}
                s => return Ok(s),
            }
            if self.session.m.trace.take_stop_hit() {
                return Ok(Stop::Event);
            }
            if self.pc() == Some(pc) {
                return Ok(Stop::Breakpoint { addr: pc });
            }
        }
        let r = self.run(limits)?;
        match (r, at_bp) {
            (Stop::Breakpoint { addr }, Some(pc))
                if addr == pc && self.session.m.icount() == start =>
            {
                self.run(limits)
            }
            (r, _) => Ok(r),
        }
    }

    /// Runs until an event of `stop_on` is recorded, a breakpoint, the
    /// guest stops, or the budget. The budget is an instruction count, so
    /// the session single-steps KVM up to it, which is also the only way
    /// KVM sees ring changes: a smaller budget there.
    fn run_until(
        &mut self,
        stop_on: EventMask,
        breakpoints: Vec<u32>,
    ) -> Result<Stop, machine::EngineError> {
        let kvm = self.session.kind() == EngineKind::Kvm;
        let budget = if kvm { KVM_RUN_TO_STEPS } else { RUN_TO_BUDGET };
        let limits = Limits {
            max_icount: Some(self.session.m.icount() + budget),
            deadline: Some(Instant::now() + Duration::from_secs(20)),
            breakpoints,
        };
        self.run_from_here(&limits, stop_on)
    }

    /// One run of the session, whose failure is its engine's (the debugger
    /// plans no switches: it makes them itself).
    fn run(&mut self, limits: &Limits) -> Result<Stop, EngineError> {
        self.session.run_until(limits).map_err(|e| e.error)
    }
}
