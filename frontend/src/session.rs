//! A machine and the engine running it, which can be swapped mid-run.
//!
//! Switching engines is the `CpuState` contract at work (DESIGN.md): the
//! running engine exports the architectural state, a new engine of another
//! kind is created over the same `Machine` (same RAM, same devices, same
//! clock and trace) and imports it. A fresh engine starts with empty caches,
//! so nothing the previous one cached (decoded blocks, translations, TLB
//! entries) can go stale behind its back.
//!
//! KVM runs the guest uncounted; where a run must stop at an exact
//! instruction count (a switch point, `--max-instructions`) the session
//! single-steps KVM, one VM exit per instruction, and each step retires one
//! instruction on the machine's count.

use crate::engines::{self, EngineKind};
use machine::{CpuState, Engine, EngineError, EngineStats, Limits, Machine, Stop};
use std::time::Instant;

/// One engine change: at which instruction count, from which engine to which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Switch {
    pub icount: u64,
    pub from: EngineKind,
    pub to: EngineKind,
}

pub struct Session {
    pub m: Machine,
    engine: Box<dyn Engine>,
    kind: EngineKind,
    deprivilege: bool,
    /// Every switch so far, in order.
    pub switches: Vec<Switch>,
    /// The statistics of the engines switched away from.
    pub earlier: Vec<EngineStats>,
}

impl Session {
    /// Creates engine `kind` over `m` and gives it the state `entry`.
    pub fn new(
        mut m: Machine,
        kind: EngineKind,
        deprivilege: bool,
        entry: &CpuState,
    ) -> Result<Session, EngineError> {
        let mut engine = engines::create_with(kind, &mut m, deprivilege)?;
        engine.set_cpu_state(&mut m, entry)?;
        Ok(Session {
            m,
            engine,
            kind,
            deprivilege,
            switches: Vec::new(),
            earlier: Vec::new(),
        })
    }

    /// A session over an engine made elsewhere (a test's engine that fails
    /// on purpose, say); `kind` is what the UI calls it.
    pub fn with_engine(
        mut m: Machine,
        mut engine: Box<dyn Engine>,
        kind: EngineKind,
        entry: &CpuState,
    ) -> Result<Session, EngineError> {
        engine.set_cpu_state(&mut m, entry)?;
        Ok(Session {
            m,
            engine,
            kind,
            deprivilege: false,
            switches: Vec::new(),
            earlier: Vec::new(),
        })
    }

    pub fn kind(&self) -> EngineKind {
        self.kind
    }

    /// Whether the interpreter runs in its trap-and-emulate mode.
    pub fn deprivilege(&self) -> bool {
        self.deprivilege
    }

    pub fn engine(&mut self) -> &mut dyn Engine {
        &mut *self.engine
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

    /// Moves the machine to engine `to`: the state leaves the running
    /// engine and enters a new one. On failure the old engine keeps running.
    pub fn switch_to(&mut self, to: EngineKind) -> Result<(), EngineError> {
        let state = self.engine.cpu_state()?;
        // The trap-and-emulate mode belongs to the interpreter only.
        let deprivilege = self.deprivilege && to == EngineKind::Interp;
        let mut next = engines::create_with(to, &mut self.m, deprivilege)?;
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

    /// The host code of the block at the PC (the translator only).
    pub fn translation_at_pc(&mut self) -> Option<Result<machine::Translation, String>> {
        self.engine.translation_at_pc(&mut self.m)
    }

    /// One instruction (or one interrupt or exception delivered).
    pub fn step(&mut self) -> Result<Stop, EngineError> {
        self.engine.step(&mut self.m)
    }

    /// Runs within `limits`. `exact` says that `limits.max_icount` is a
    /// point the run must stop at exactly; KVM, which cannot count, then
    /// single-steps up to it (otherwise it runs free and only the timeout
    /// bounds it).
    pub fn run(&mut self, limits: &Limits, exact: bool) -> Result<Stop, EngineError> {
        match limits.max_icount {
            Some(max) if exact && self.kind == EngineKind::Kvm => self.step_until(max, limits),
            _ => self.engine.run(&mut self.m, limits),
        }
    }

    /// Single steps until the machine has retired `max` instructions, a
    /// breakpoint, the timeout, or a stop.
    fn step_until(&mut self, max: u64, limits: &Limits) -> Result<Stop, EngineError> {
        let start = Instant::now();
        let mut first = true;
        loop {
            if self.m.icount() >= max {
                return Ok(Stop::Budget);
            }
            if limits.timeout.is_some_and(|t| start.elapsed() >= t) {
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
                Stop::Event => return Ok(Stop::Event),
                s => return Ok(s),
            }
            if self.m.trace.take_stop_hit() {
                return Ok(Stop::Event);
            }
        }
    }
}
