//! The contract every execution engine obeys.

use crate::{CpuState, Machine};
use serde::Serialize;
use std::time::Instant;

/// Why an engine returned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "stop", rename_all = "snake_case")]
pub enum Stop {
    /// The guest wrote `value` to the isa-debug-exit port (0xF4).
    GuestExit { value: u32 },
    /// The guest wrote "Shutdown" to Bochs' port 0x8900.
    Shutdown,
    /// HLT with interrupts disabled: nothing but NMI or reset can wake it.
    Halted,
    /// HLT with interrupts enabled but no device will ever interrupt
    /// (no deadline pending and no interrupt requested).
    Idle,
    /// The machine's instruction count reached the run's bound
    /// (`Limits::max_icount`).
    Budget,
    /// The host clock passed the run's deadline (`Limits::deadline`).
    Timeout,
    /// Execution reached a breakpoint (linear address of the instruction).
    Breakpoint { addr: u32 },
    /// `step` executed one instruction (or delivered one interrupt/exception).
    Stepped,
    /// An event of a kind in the trace's stop-on set was recorded.
    Event,
    /// A fault while delivering a double fault (SDM Vol 3A 6.15, interrupt 8).
    TripleFault,
    /// The guest asked for a reset (port 0x92 bit 0).
    Reset,
    /// A POST code written to port 0x80, with stops on POST codes on
    /// (`Machine::set_stop_on_post`); running again goes on.
    PostCode { code: u8 },
}

impl Stop {
    /// A stop after which running again makes no progress.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Stop::GuestExit { .. }
                | Stop::Shutdown
                | Stop::Halted
                | Stop::Idle
                | Stop::TripleFault
                | Stop::Reset
        )
    }
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::GuestExit { value } => {
                write!(f, "guest exit through port 0xf4 with value {value:#x}")
            }
            Stop::Shutdown => write!(f, "guest shutdown through port 0x8900"),
            Stop::Halted => write!(f, "halted with interrupts disabled"),
            Stop::Idle => write!(
                f,
                "halted with interrupts enabled and nothing left to wake it"
            ),
            Stop::Budget => write!(f, "instruction budget reached"),
            Stop::Timeout => write!(f, "wall-clock timeout"),
            Stop::Breakpoint { addr } => write!(f, "breakpoint at {addr:#010x}"),
            Stop::Stepped => write!(f, "stepped"),
            Stop::Event => write!(f, "stopped on event"),
            Stop::TripleFault => write!(f, "triple fault (CPU shutdown)"),
            Stop::Reset => write!(f, "guest requested a reset"),
            Stop::PostCode { code } => write!(f, "POST code {code:#04x}"),
        }
    }
}

/// Something went wrong on the host side, not in the guest.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum EngineError {
    /// The engine cannot run on this host (no /dev/kvm, not built yet, ...).
    #[error("engine unavailable: {0}")]
    Unavailable(String),
    /// The guest needs something this engine (or this host's hypervisor)
    /// cannot do, e.g. 32-bit paging under kvm-pvm.
    #[error("unsupported by this engine: {0}")]
    Unsupported(String),
    /// A host call failed (an ioctl, mmap, a signal).
    #[error("host error: {0}")]
    Host(String),
    /// The engine found itself in a state it should never reach.
    #[error("internal engine error: {0}")]
    Internal(String),
}

/// Bounds on one `run` call. Both are absolute, so that a run cut into
/// several calls (a progress report, an engine switch, the translator
/// handing a stretch to its interpreter) passes the same bounds on and
/// nobody has to work out what is left: the bound that ended a run is
/// the one whose value was reached.
#[derive(Clone, Debug, Default)]
pub struct Limits {
    /// Stop with `Stop::Budget` once the machine's instruction count
    /// (`Machine::icount`) reaches this value.
    pub max_icount: Option<u64>,
    /// Stop with `Stop::Timeout` once the host clock passes this instant.
    pub deadline: Option<Instant>,
    /// Stop with `Stop::Breakpoint` before executing an instruction at any of
    /// these linear addresses.
    pub breakpoints: Vec<u32>,
}

impl Limits {
    /// Whether the deadline has passed.
    pub fn expired(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Host time left before the deadline (zero once it passed); None
    /// without one.
    pub fn time_left(&self) -> Option<std::time::Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }
}

/// What an engine counted, for `--stats` and the comparison table.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct EngineStats {
    pub engine: String,
    /// Guest instructions retired: exact on the interpreter and the
    /// translator; None on KVM, where the CPU runs the guest uncounted.
    pub instructions: Option<u64>,
    /// Engine-specific counters, in display order.
    pub counters: Vec<(String, u64)>,
}

impl EngineStats {
    pub fn counter(&self, name: &str) -> Option<u64> {
        self.counters
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, v)| v)
    }
}

/// The host code a binary translator made of the guest block at the PC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Translation {
    /// Where the code lives in the host's address space.
    pub host_addr: u64,
    pub code: Vec<u8>,
    /// Guest instructions the block holds.
    pub guest_insns: u32,
}

/// An execution engine: runs the CPU of a [`Machine`].
pub trait Engine {
    /// "interp", "bt" or "kvm".
    fn name(&self) -> &'static str;

    /// Runs until the guest stops, a limit is reached, or a stop-on event
    /// was recorded. Never panics on guest behaviour.
    fn run(&mut self, m: &mut Machine, limits: &Limits) -> Result<Stop, EngineError>;

    /// Executes exactly one instruction (or delivers one pending interrupt
    /// or exception) and returns `Stop::Stepped`, or the stop it caused.
    fn step(&mut self, m: &mut Machine) -> Result<Stop, EngineError>;

    /// The architectural state now.
    fn cpu_state(&mut self) -> Result<CpuState, EngineError>;

    /// Replaces the architectural state (a loader's entry state or another
    /// engine's export).
    fn set_cpu_state(&mut self, m: &mut Machine, s: &CpuState) -> Result<(), EngineError>;

    /// Counters.
    fn stats(&self) -> EngineStats;

    /// The host code this engine runs for the guest block at the PC,
    /// translating it now if needed: Some(Ok) from a binary translator,
    /// Some(Err(why)) when it leaves that code to its interpreter, None
    /// from engines that do not translate.
    fn translation_at_pc(&mut self, _m: &mut Machine) -> Option<Result<Translation, String>> {
        None
    }
}
