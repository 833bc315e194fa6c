//! ringlab's exit status contract (documented in the README), and how an
//! error carries its status to the binary's edge.
//!
//! Odd statuses belong to the guest: a write of v to the isa-debug-exit
//! port 0xF4 exits with (v << 1) | 1, as QEMU does. ringlab's own statuses
//! are even, so the two never collide.
//!
//! The frontend's errors are `anyhow::Error`s: each layer adds its context
//! ("--engine kvm", "cannot read boot.bin") and keeps the error below as
//! its cause, with no error type to write per layer. Where an error's
//! status is decided (a bad image, a bad command line, an engine that
//! failed), `.status(..)` gives it one; `cli::main` finds it again
//! (`of_error`) and prints the error with its causes on one line.

use machine::Stop;
use std::fmt;

/// Bochs' shutdown port, HLT with interrupts disabled, Ctrl-A x, or the
/// end of a `--type-after` script.
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
/// A jump to itself with interrupts disabled (`cli; jmp $`): the loop a
/// kernel's panic() ends in, so a failure, unlike HLT with interrupts
/// disabled (`Stop::Spinning`).
pub const SPINNING: u8 = 18;

/// The process exit status for a final stop.
pub fn for_stop(stop: &Stop) -> u8 {
    match stop {
        // The OS keeps the low 8 bits; the result stays odd.
        Stop::GuestExit { value } => ((value << 1) | 1) as u8,
        // Ctrl-A x: the user's choice, as QEMU's -nographic exits 0.
        // The end of a scripted session (`--type-after`) is a success too.
        Stop::Shutdown | Stop::Halted | Stop::Quit | Stop::InputDone => OK,
        Stop::TripleFault => TRIPLE_FAULT,
        Stop::Budget | Stop::Timeout => LIMIT,
        Stop::Idle => IDLE,
        Stop::Spinning => SPINNING,
        Stop::Reset => RESET,
        // Not final for `run` (the frontend sets no breakpoints or stop-on
        // events there); treat as a limit if one ever surfaces.
        Stop::Breakpoint { .. }
        | Stop::Watchpoint { .. }
        | Stop::Stepped
        | Stop::Event
        | Stop::PostCode { .. } => LIMIT,
    }
}

/// An error and the exit status it ends ringlab with. It prints as the
/// error it wraps, and its causes are that error's, so the status never
/// shows in a message; anyhow finds it under any context added later
/// (`anyhow::Error::downcast_ref` looks through context layers).
#[derive(Debug)]
struct WithStatus {
    status: u8,
    error: anyhow::Error,
}

impl fmt::Display for WithStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl std::error::Error for WithStatus {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

/// Gives an error the exit status it ends ringlab with.
pub trait Status<T> {
    fn status(self, status: u8) -> anyhow::Result<T>;
}

impl<T, E: Into<anyhow::Error>> Status<T> for Result<T, E> {
    fn status(self, status: u8) -> anyhow::Result<T> {
        self.map_err(|e| with_status(status, e))
    }
}

/// `error` with the exit status `status`.
pub fn with_status(status: u8, error: impl Into<anyhow::Error>) -> anyhow::Error {
    anyhow::Error::new(WithStatus {
        status,
        error: error.into(),
    })
}

/// An error that is only a message, with its exit status.
pub fn error(
    status: u8,
    message: impl fmt::Display + fmt::Debug + Send + Sync + 'static,
) -> anyhow::Error {
    with_status(status, anyhow::Error::msg(message))
}

/// The exit status `e` ends ringlab with: the one given to it last; an
/// error given none failed on the host side (ENGINE_ERROR).
pub fn of_error(e: &anyhow::Error) -> u8 {
    e.downcast_ref::<WithStatus>()
        .map_or(ENGINE_ERROR, |w| w.status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn the_status_travels_with_the_error_and_never_prints() {
        let e = std::fs::read("/nonexistent/boot.bin")
            .context("cannot read /nonexistent/boot.bin")
            .status(BAD_IMAGE)
            .context("lesson x")
            .unwrap_err();
        assert_eq!(of_error(&e), BAD_IMAGE);
        assert_eq!(
            format!("{e:#}"),
            format!(
                "lesson x: cannot read /nonexistent/boot.bin: {}",
                std::fs::read("/nonexistent/boot.bin").unwrap_err()
            )
        );
        // The last status given wins; an error given none is the host's.
        assert_eq!(of_error(&with_status(USAGE, e)), USAGE);
        assert_eq!(of_error(&anyhow::anyhow!("?")), ENGINE_ERROR);
        assert_eq!(format!("{:#}", error(USAGE, "bad")), "bad");
    }

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
            SPINNING,
        ] {
            assert_eq!(s % 2, 0);
        }
    }
}
