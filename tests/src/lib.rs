//! Helpers shared by ringlab's integration tests.
pub mod fuzz;
pub mod guards;
pub mod guest;
pub mod skip;

pub use skip::skip;
pub mod elf;
pub mod firmware;
pub mod gdb;
pub mod native;
pub mod platform;
pub mod qemu;
