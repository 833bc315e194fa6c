//! ringlab: one x86 guest, three ways to run it — an interpreter, a binary
//! translator and KVM — and what each shows of privilege rings.
//!
//! The library behind the `ringlab` binary: the command line (`cli`), the
//! comparison table, the stepping terminal UI and its `debugger`, the VGA
//! renderer, the benchmark table, and `session`: the one place engines
//! are created and machines run to a stop (every command and test goes
//! through it), whose engine can be swapped mid-run.

pub mod bench;
pub mod bench_suite;
pub mod cli;
pub mod compare;
pub mod console;
pub mod debugger;
pub mod departure;
pub mod engines;
pub mod gdb;
pub mod hugetext;
pub mod inspect;
pub mod report;
pub mod run;
pub mod session;
pub mod signals;
pub mod status;
pub mod step;
pub mod tui;
pub mod vga;
pub mod xv6;
