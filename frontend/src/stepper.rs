//! What the keys of `ringlab step` do, apart from the terminal: step, step
//! over, run to the next privilege change or exception, continue,
//! breakpoints, switching engines. The terminal UI (`tui.rs`) draws a
//! `Stepper` and feeds it commands; the tests drive it directly.

use crate::engines::EngineKind;
use crate::inspect;
use crate::session::Session;
use machine::{EventKind, EventMask, Limits, Stop};
use std::time::Duration;

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
}

pub struct Stepper {
    pub session: Session,
    pub breakpoints: Vec<u32>,
    /// The linear addresses of the last instructions stepped (oldest first),
    /// shown above EIP in the disassembly.
    pub history: Vec<u32>,
    /// The last stop and what the last command did, for the status line.
    pub last_stop: Option<Stop>,
    pub message: String,
    /// The guest has stopped for good (exit, halt, triple fault).
    pub finished: bool,
}

const HISTORY: usize = 6;

impl Stepper {
    pub fn new(session: Session) -> Stepper {
        Stepper {
            session,
            breakpoints: Vec::new(),
            history: Vec::new(),
            last_stop: None,
            message: "ready: press ? for the keys".into(),
            finished: false,
        }
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

    /// Carries out one command; errors end up in `message`.
    pub fn exec(&mut self, cmd: Command) {
        if self.finished && !matches!(cmd, Command::ToggleBreakpoint(_) | Command::Switch(_)) {
            self.message = format!(
                "the guest has stopped ({}); nothing more to run",
                self.last_stop
                    .as_ref()
                    .map_or("?".into(), |s| s.to_string())
            );
            return;
        }
        let before = self.session.m.icount();
        let r = match cmd {
            Command::Step => {
                let pc = self.pc();
                let r = self.session.step();
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
                match target {
                    Some(t) => {
                        let pc = self.pc();
                        self.note_pc(pc);
                        self.run_until(EventMask::NONE, vec![t])
                    }
                    None => {
                        let pc = self.pc();
                        let r = self.session.step();
                        if r.is_ok() {
                            self.note_pc(pc);
                        }
                        r
                    }
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
                    timeout: Some(RUN_SLICE),
                    breakpoints: self.breakpoints.clone(),
                };
                self.session.run(&limits, false)
            }
            Command::ToggleBreakpoint(a) => {
                if let Some(i) = self.breakpoints.iter().position(|&b| b == a) {
                    self.breakpoints.remove(i);
                    self.message = format!("breakpoint at {a:#010x} cleared");
                } else {
                    self.breakpoints.push(a);
                    self.message = format!("breakpoint at {a:#010x} set");
                }
                return;
            }
            Command::Switch(to) => {
                let from = self.session.kind();
                if from == to {
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
                    }
                    Err(e) => {
                        self.message = format!("cannot switch to {}: {e}", to.name());
                    }
                }
                return;
            }
        };
        let ran = self.session.m.icount() - before;
        match r {
            Ok(stop) => {
                self.finished = stop.is_final();
                self.message = match (&stop, cmd) {
                    (Stop::Budget, Command::RunToRingChange | Command::RunToException) => {
                        format!("gave up after {ran} instructions: no such event")
                    }
                    (Stop::Timeout, Command::Continue) => {
                        format!("running... ({ran} instructions this slice; any key pauses)")
                    }
                    (Stop::Event, _) => {
                        let last = self.session.m.trace.records().next_back();
                        format!(
                            "stopped after {ran} instructions: {}",
                            last.map_or(String::new(), |r| format!(
                                "{} (at instruction {})",
                                inspect::event_what(&r.event),
                                r.icount
                            ))
                        )
                    }
                    (Stop::Stepped, _) => match ran {
                        1 => "stepped one instruction".to_string(),
                        0 => "stepped: an interrupt or exception was delivered".to_string(),
                        n => format!("stepped ({n} instructions)"),
                    },
                    (s, _) => format!("{s} ({ran} instructions)"),
                };
                self.last_stop = Some(stop);
            }
            Err(e) => {
                self.message = format!("engine error: {e}");
                self.finished = true;
            }
        }
    }

    /// Runs until an event of `stop_on` is recorded, a breakpoint, the
    /// guest stops, or the budget. On KVM, which sees ring changes only
    /// when single-stepping, this steps.
    fn run_until(
        &mut self,
        stop_on: EventMask,
        breakpoints: Vec<u32>,
    ) -> Result<Stop, machine::EngineError> {
        let kvm = self.session.kind() == EngineKind::Kvm;
        let budget = if kvm { KVM_RUN_TO_STEPS } else { RUN_TO_BUDGET };
        let limits = Limits {
            max_icount: Some(self.session.m.icount() + budget),
            timeout: Some(Duration::from_secs(20)),
            breakpoints,
        };
        self.session.m.trace.set_stop_on(stop_on);
        let r = self.session.run(&limits, kvm);
        self.session.m.trace.set_stop_on(EventMask::NONE);
        // A stop-on hit noted but not yet taken must not end the next run.
        self.session.m.trace.take_stop_hit();
        r
    }
}
