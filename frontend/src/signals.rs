//! SIGINT and SIGTERM during `ringlab run`: the guest stops, the disks are
//! flushed, and ringlab then dies of the same signal.
//!
//! What a user of an emulator expects from Ctrl-C (with stdin not a
//! terminal in raw mode, where Ctrl-C is a key for the guest) or from a
//! `kill`: nothing the guest wrote is lost, and the terminal is usable
//! again. So the handler only records the signal (an atomic store, which is
//! async-signal-safe); the run loop looks at it between engine calls, at
//! most a report slice (20-100 ms of host time) apart on every engine:
//! interp and bt return at the slice's deadline, KVM's deadline timer
//! interrupts KVM_RUN there (and a signal landing on the vCPU thread ends
//! KVM_RUN with EINTR, which the engine takes as a timer exit). The guest
//! is therefore stopped between two instructions, never inside a device
//! access: an ATA command in progress has finished its block (disk writes
//! complete inside the OUT that ends the block). `run` then flushes every
//! disk (`sync_data`), prints one line on stderr, restores the terminal
//! (the console's drop), and `cli::main`, once the command has cleaned up
//! (`ringlab xv6` removes its temporary boot disk), re-raises the signal
//! with its default action ([`die_of`]).
//!
//! Why die of the signal rather than exit with 128+N: a parent (a shell
//! script, make, an autograder) must be able to tell "stopped by SIGINT"
//! from an exit status, and ringlab's exit statuses are all taken (odd
//! ones are the guest's, even ones ringlab's): a process killed by a
//! signal is told apart by `wait` itself (WIFSIGNALED), and shells still
//! show 128+N (130 for SIGINT, 143 for SIGTERM). It is also what makes a
//! shell loop running ringlab stop at Ctrl-C (bash's "wait and cooperative
//! exit").
//!
//! The wait for gdb to connect (`--gdb`) looks at the flag too. A second
//! SIGINT or SIGTERM while the first is being handled kills ringlab at once
//! (the terminal's modes restored first), as QEMU does: a run where the
//! flag is not looked at (gdb holding the guest stopped, blocked on its
//! socket) can always be ended. Disk writes are write-through (see `machine::disk`), so
//! even then every completed guest write is in the file.

use std::sync::atomic::{AtomicI32, Ordering};

/// The first SIGINT or SIGTERM received (0: none yet).
static PENDING: AtomicI32 = AtomicI32::new(0);

/// The signals handled here.
const SIGNALS: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

/// Installs the handler for SIGINT and SIGTERM (once per process; later
/// calls do nothing). Errors are ignored: the signals then keep their
/// default action, which still ends the process.
pub fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for sig in SIGNALS {
            // SAFETY: sigaction is plain data, zeroed then filled in; the
            // handler only does async-signal-safe things (an atomic
            // compare-exchange, and on a second signal tcsetattr, signal
            // and raise). SA_RESTART: the stdin reader's read and the disk
            // writes are restarted, not failed with EINTR (KVM_RUN returns
            // EINTR either way, which the KVM engine expects).
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
                sa.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(sig, &sa, std::ptr::null_mut());
            }
        }
    });
}

extern "C" fn on_signal(sig: libc::c_int) {
    if PENDING
        .compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok()
    {
        return; // the run loop stops the guest
    }
    // A second signal: at once.
    crate::console::restore_terminal_in_handler();
    // SAFETY: signal and raise are async-signal-safe; with the default
    // action back the signal ends the process once this handler returns
    // (it is blocked while the handler runs).
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// The signal received, if any: the run should stop.
pub fn pending() -> Option<i32> {
    match PENDING.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// "SIGINT" or "SIGTERM" (the signals handled here).
pub fn name(sig: i32) -> String {
    match sig {
        libc::SIGINT => "SIGINT".to_string(),
        libc::SIGTERM => "SIGTERM".to_string(),
        s => format!("signal {s}"),
    }
}

/// Ends the process with `sig`'s default action, as if ringlab had not
/// caught it: its parent sees it killed by `sig`. Call once everything is
/// cleaned up (disks flushed and closed, terminal restored).
pub fn die_of(sig: i32) -> ! {
    use std::io::Write;
    // What is still buffered goes out first; nothing can be done about a
    // closed stream.
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: restores the default action, unblocks the signal and raises
    // it: the process ends here.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(sig);
    }
    // Not reached for SIGINT or SIGTERM; the shell's convention otherwise.
    std::process::exit(128 + sig)
}
