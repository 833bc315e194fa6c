//! ringlab's shared machine model: the PC every engine runs.
//!
//! See ARCHITECTURE.md, "The machine". This crate depends on no engine;
//! engines depend on it.

pub mod board;
pub mod bus;
pub mod clock;
pub mod cpu;
pub mod devices;
pub mod disk;
pub mod engine;
pub mod error;
pub mod event;
pub mod firmware;
pub mod loader;
pub mod machine;
pub mod memory;
pub mod watch;
pub mod x86;

pub use bus::{Bus, Device, DeviceId, IoCtx};
pub use clock::{Clock, ClockMode};
pub use cpu::{CpuState, Seg, Segment, TableReg};
pub use engine::{
    Counter, Engine, EngineError, EngineStats, Limits, NotTranslated, Stop, Translation,
};
pub use error::Chain;
pub use event::{Event, EventKind, EventMask, Handling, PrivCause, Record, Trace};
pub use machine::{Machine, MachineConfig, MachineStop, RomMap};
pub use memory::GuestMemory;
pub use watch::{WatchKind, Watchpoint};
