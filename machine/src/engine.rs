//! The contract every execution engine obeys.

use crate::{CpuState, Machine};
use serde::Serialize;
use std::sync::Arc;
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
    /// A near relative JMP to its own address (`jmp $`: EB FE, E9 with a
    /// displacement of minus its length) with EFLAGS.IF and TF clear and
    /// no NMI deliverable: a kernel's panic loop (`cli; for(;;);`), as
    /// dead as `cli; hlt` but spinning. The jump ran once.
    Spinning,
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
    /// The instruction just run made an access that a data watchpoint
    /// (`Machine::set_watchpoints`) watches: `addr` is the watchpoint's
    /// first address, `kind` its kind (`crate::watch`). A trap: the
    /// instruction completed, the next one has not run.
    Watchpoint { addr: u32, kind: crate::WatchKind },
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
    /// The user quit the run from the console (Ctrl-A x).
    Quit,
    /// COM1's paced input (`--type-after`) ended and the guest printed its
    /// prompt again: the scripted session is over.
    InputDone,
}

impl Stop {
    /// A stop after which running again makes no progress.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Stop::GuestExit { .. }
                | Stop::Shutdown
                | Stop::Halted
                | Stop::Spinning
                | Stop::Idle
                | Stop::TripleFault
                | Stop::Reset
                | Stop::Quit
                | Stop::InputDone
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
            Stop::Spinning => write!(
                f,
                "spinning on a jump to itself with interrupts disabled (a kernel's panic loop): only NMI or reset could end it"
            ),
            Stop::Idle => write!(
                f,
                "halted with interrupts enabled and nothing left to wake it"
            ),
            Stop::Budget => write!(f, "instruction budget reached"),
            Stop::Timeout => write!(f, "wall-clock timeout"),
            Stop::Breakpoint { addr } => write!(f, "breakpoint at {addr:#010x}"),
            Stop::Watchpoint { addr, kind } => {
                write!(f, "{} watchpoint at {addr:#010x} hit", kind.name())
            }
            Stop::Stepped => write!(f, "stepped"),
            Stop::Event => write!(f, "stopped on event"),
            Stop::TripleFault => write!(f, "triple fault (CPU shutdown)"),
            Stop::Reset => write!(f, "guest requested a reset"),
            Stop::PostCode { code } => write!(f, "POST code {code:#04x}"),
            Stop::Quit => write!(f, "quit from the console (Ctrl-A x)"),
            Stop::InputDone => write!(f, "input done: the guest prompted after the last line"),
        }
    }
}

/// Something went wrong on the host side, not in the guest.
///
/// Each variant's text says only its own level; the error behind it, where
/// there is one, is its `source` (print the whole with [`crate::Chain`]).
#[derive(Debug, thiserror::Error, Clone)]
pub enum EngineError {
    /// The engine cannot run on this host (no /dev/kvm, not built yet, ...):
    /// `why`, for a user, and the host's error behind it where `why` does
    /// not already say all it says (an unexpected errno from opening
    /// /dev/kvm).
    #[error("engine unavailable: {why}")]
    Unavailable {
        why: String,
        #[source]
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    },
    /// The guest needs something this engine (or this host's hypervisor)
    /// cannot do, e.g. 32-bit paging under kvm-pvm.
    #[error("unsupported by this engine: {0}")]
    Unsupported(String),
    /// A host call failed (an ioctl, mmap, a signal): `source` is the
    /// engine's error, which names the call and keeps the OS's (kvm-ioctls'
    /// errno, an `io::Error`).
    #[error("host error")]
    Host {
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// The engine found itself in a state it should never reach.
    #[error("internal engine error: {0}")]
    Internal(String),
}

impl EngineError {
    /// The engine cannot run on this host, for the reason `why`.
    pub fn unavailable(why: impl Into<String>) -> Self {
        EngineError::Unavailable {
            why: why.into(),
            source: None,
        }
    }

    /// A failed host call: the engine's error, which names it.
    pub fn host(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        EngineError::Host {
            source: Arc::new(source),
        }
    }
}

/// Errors compare by kind and by their text with every cause's (a cause,
/// an OS error, has no equality of its own).
impl PartialEq for EngineError {
    fn eq(&self, other: &Self) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
            && crate::Chain(self).to_string() == crate::Chain(other).to_string()
    }
}

impl Eq for EngineError {}

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
    /// Engine-specific counters, in display order: (label, value). A
    /// counter with a fixed meaning is labelled by its [`Counter`] key's
    /// [`Counter::label`] and read back with [`EngineStats::get`].
    pub counters: Vec<(String, u64)>,
}

impl EngineStats {
    /// The counter `key`, None if this engine does not count it. Code that
    /// needs a counter (tests, tools) reads it this way and fails on None,
    /// never through its label, which is free to change for readers.
    pub fn get(&self, key: Counter) -> Option<u64> {
        self.counter(key.label())
    }

    /// The counter labelled `label`: for the breakdowns whose labels are
    /// made at run time (KVM's `exits: REASON`, the translator's
    /// instructions left to the interpreter by mnemonic), which have no
    /// [`Counter`] key. For the others use [`EngineStats::get`].
    pub fn counter(&self, label: &str) -> Option<u64> {
        self.counters
            .iter()
            .find(|(n, _)| n == label)
            .map(|&(_, v)| v)
    }
}

/// The stable key of an engine counter with a fixed meaning. Engines build
/// their [`EngineStats::counters`] entries with [`Counter::entry`], so the
/// display label is written once, here, and a reader that asks
/// [`EngineStats::get`] for a key finds it whatever the label says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Counter {
    // The interpreter's (engine-interp).
    /// Decoded blocks built (instructions lowered into `Op`s).
    BlocksBuilt,
    /// Decoded blocks run from the block cache.
    BlocksRun,
    /// Decoded blocks dropped because their code page was written.
    BlockInvalidations,
    /// Software TLB misses (page walks).
    TlbMisses,
    /// Whole software-TLB flushes forced by a change of the machine's
    /// address mapping (the A20 gate); the guest's own (MOV CR3, INVLPG)
    /// are not counted.
    TlbFlushes,
    /// Exceptions delivered.
    Exceptions,
    /// External interrupts delivered.
    Interrupts,

    // The translator's (engine-bt).
    /// Guest blocks translated into host code.
    BlocksTranslated,
    /// Host time spent translating, in microseconds.
    TranslationTimeUs,
    /// Times the dispatcher entered translated code.
    DispatcherEntries,
    /// Block exits patched into direct jumps to the next block.
    ChainedJumps,
    /// Bytes of host code in the translation cache.
    CacheBytes,
    /// Guest instructions retired in translated code.
    TranslatedInstructions,
    /// Guest instructions retired on the interpreter.
    InterpreterInstructions,
    /// The interpreter's share of the instructions, per mille.
    InterpreterShare,
    /// Instructions translated into a callout or rewritten.
    CalloutInstructions,
    /// Instructions translated code had the interpreter run and then went
    /// on (or left) from (in-TC callouts, `Plan::Exec`).
    ExecCallouts,
    /// Control transfers (INT, IRET, a far jump, an exception delivered)
    /// run by such a callout that went straight on into the target's
    /// translation, without the dispatcher.
    CalloutTransfers,
    /// Device registers read from translated code (pure MMIO reads).
    MmioReadsInTranslatedCode,
    /// Translations dropped because their guest code was written.
    BlocksInvalidated,
    /// Whole-cache flushes (the cache was full).
    CacheFlushes,
    /// Interrupt deliveries and IRETs whose protection checks the
    /// delivery memo decided (the same gate and descriptors as before).
    DeliveryMemoHits,
    /// Those the memo had an entry for that were checked in full again
    /// (a descriptor, a table register or the CPL differed).
    DeliveryMemoMisses,
    /// Instructions the interpreter ran in modes the translator handles
    /// (the sum of the per-mnemonic breakdown that follows it).
    DeclinedInstructions,

    // KVM's (engine-kvm).
    /// Interrupts injected with KVM_INTERRUPT.
    InterruptsInjected,
    /// Instructions run one at a time with KVM's single-stepping.
    InstructionsSingleStepped,
    /// Host time to create the VM and vCPU, in microseconds.
    SetupTimeUs,
}

impl Counter {
    /// Every key, for tests that check the labels.
    pub const ALL: [Counter; 27] = [
        Counter::BlocksBuilt,
        Counter::BlocksRun,
        Counter::BlockInvalidations,
        Counter::TlbMisses,
        Counter::TlbFlushes,
        Counter::Exceptions,
        Counter::Interrupts,
        Counter::BlocksTranslated,
        Counter::TranslationTimeUs,
        Counter::DispatcherEntries,
        Counter::ChainedJumps,
        Counter::CacheBytes,
        Counter::TranslatedInstructions,
        Counter::InterpreterInstructions,
        Counter::InterpreterShare,
        Counter::CalloutInstructions,
        Counter::ExecCallouts,
        Counter::CalloutTransfers,
        Counter::MmioReadsInTranslatedCode,
        Counter::BlocksInvalidated,
        Counter::CacheFlushes,
        Counter::DeliveryMemoHits,
        Counter::DeliveryMemoMisses,
        Counter::DeclinedInstructions,
        Counter::InterruptsInjected,
        Counter::InstructionsSingleStepped,
        Counter::SetupTimeUs,
    ];

    /// The label `--stats`, `--json` and the comparison table show.
    pub const fn label(self) -> &'static str {
        match self {
            Counter::BlocksBuilt => "blocks built",
            Counter::BlocksRun => "blocks run",
            Counter::BlockInvalidations => "block invalidations",
            Counter::TlbMisses => "tlb misses",
            Counter::TlbFlushes => "tlb flushes",
            Counter::Exceptions => "exceptions",
            Counter::Interrupts => "interrupts",
            Counter::BlocksTranslated => "blocks translated",
            Counter::TranslationTimeUs => "translation time (us)",
            Counter::DispatcherEntries => "dispatcher entries into translated code",
            Counter::ChainedJumps => "chained jumps made",
            Counter::CacheBytes => "cache bytes",
            Counter::TranslatedInstructions => "translated instructions run",
            Counter::InterpreterInstructions => "instructions on the interpreter",
            Counter::InterpreterShare => "interpreter share (per mille)",
            Counter::CalloutInstructions => "rewritten or callout instructions",
            Counter::ExecCallouts => "instructions the interpreter ran for translated code",
            Counter::CalloutTransfers => "callouts that went straight on to another translation",
            Counter::MmioReadsInTranslatedCode => "device registers read in translated code",
            Counter::BlocksInvalidated => "blocks invalidated",
            Counter::CacheFlushes => "cache flushes",
            Counter::DeliveryMemoHits => "deliveries and IRETs decided by the memo",
            Counter::DeliveryMemoMisses => "deliveries and IRETs the memo missed",
            Counter::DeclinedInstructions => {
                "instructions left to the interpreter in translated modes"
            }
            Counter::InterruptsInjected => "interrupts injected",
            Counter::InstructionsSingleStepped => "instructions single-stepped",
            Counter::SetupTimeUs => "VM setup time (us)",
        }
    }

    /// The [`EngineStats::counters`] entry of this counter with `value`.
    pub fn entry(self, value: u64) -> (String, u64) {
        (self.label().to_string(), value)
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

/// Why a binary translator has no host code for the block at the PC: its
/// interpreter runs what is there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotTranslated {
    /// A mode the translator never translates.
    #[error(
        "the CPU is in a mode the translator leaves to the interpreter \
         (V86, 16-bit code whose segment limit is not 64 KiB, non-flat \
         32-bit code, real mode before the first far jump)"
    )]
    Mode,
    /// A condition that passes with the next instruction or two.
    #[error(
        "a passing condition (interrupt shadow, TF, RF, DF or HLT) makes \
         the interpreter run this instruction"
    )]
    Passing,
    /// No block starts here: the dispatcher hands the instruction to the
    /// interpreter (one after which translated code would always leave,
    /// such as INT or IRET, `jmp $`, or an undecodable one).
    #[error(
        "no block starts here: the interpreter runs this instruction for the \
         translator (a control transfer or mode change such as INT, IRET or \
         MOV CR3, a `jmp $`, or one it cannot decode)"
    )]
    FirstInstruction,
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
    fn translation_at_pc(
        &mut self,
        _m: &mut Machine,
    ) -> Option<Result<Translation, NotTranslated>> {
        None
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn counter_labels_are_distinct_and_found_by_key() {
        let mut labels: Vec<&str> = Counter::ALL.iter().map(|c| c.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), Counter::ALL.len(), "two keys share a label");
        let stats = EngineStats {
            engine: "test".into(),
            instructions: None,
            counters: vec![
                Counter::CacheFlushes.entry(3),
                ("exits: io".into(), 5),
                Counter::BlocksTranslated.entry(7),
            ],
        };
        assert_eq!(stats.get(Counter::CacheFlushes), Some(3));
        assert_eq!(stats.get(Counter::BlocksTranslated), Some(7));
        assert_eq!(stats.get(Counter::BlocksBuilt), None);
        assert_eq!(stats.counter("exits: io"), Some(5));
    }
}
