//! ringlab's exit status contract (documented in the README).
//!
//! Odd statuses belong to the guest: a write of v to the isa-debug-exit
//! port 0xF4 exits with (v << 1) | 1, as QEMU does. ringlab's own statuses
//! are even, so the two never collide.

use machine::Stop;

/// Bochs' shutdown port, HLT with interrupts disabled, or Ctrl-A x.
pub const OK: u8 = 0;
/// Bad command line (clap's own status).
pub const USAGE: u8 = 2;
/// The image could not be read or is malformed.
pub const BAD_IMAGE: u8 = 4;
/// The engine is unavailable or failed (host side).
pub const ENGINE_ERROR: u8 = 6;
/// The guest triple-faulted.
pub const TRIPLE_FAULT: u8 = 8;
/// The instruction budget or the wall-clock timeout was reached.
pub const LIMIT: u8 = 10;
/// HLT with interrupts enabled and nothing left to wake the CPU.
pub const IDLE: u8 = 12;
/// The guest asked for a reset (port 0x92 bit 0).
pub const RESET: u8 = 14;
/// `compare` and the demo: the engines disagreed.
pub const DISAGREE: u8 = 16;

/// The process exit status for a final stop.
pub fn for_stop(stop: &Stop) -> u8 {
    match stop {
        // The OS keeps the low 8 bits; the result stays odd.
        Stop::GuestExit { value } => ((value << 1) | 1) as u8,
        // Ctrl-A x: the user's choice, as QEMU's -nographic exits 0.
        Stop::Shutdown | Stop::Halted | Stop::Quit => OK,
        Stop::TripleFault => TRIPLE_FAULT,
        Stop::Budget | Stop::Timeout => LIMIT,
        Stop::Idle => IDLE,
        Stop::Reset => RESET,
        // Not final for `run` (the frontend sets no breakpoints or stop-on
        // events there); treat as a limit if one ever surfaces.
        Stop::Breakpoint { .. } | Stop::Stepped | Stop::Event | Stop::PostCode { .. } => LIMIT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_statuses_are_odd_and_ours_even() {
        assert_eq!(for_stop(&Stop::GuestExit { value: 0x10 }), 0x21);
        assert_eq!(for_stop(&Stop::GuestExit { value: 0 }), 1);
        assert_eq!(for_stop(&Stop::GuestExit { value: 0xFFFF_FFFF }), 0xFF);
        for s in [
            OK,
            USAGE,
            BAD_IMAGE,
            ENGINE_ERROR,
            TRIPLE_FAULT,
            LIMIT,
            IDLE,
            RESET,
            DISAGREE,
        ] {
            assert_eq!(s % 2, 0);
        }
    }
}
