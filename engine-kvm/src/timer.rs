//! Making KVM_RUN return at a device deadline (the PIT's next interrupt) or
//! a wall-clock limit while the guest computes: a POSIX timer signals the
//! vCPU thread, and the signal handler sets `kvm_run.immediate_exit`, so a
//! signal that arrives just before KVM_RUN is not lost (the crosvm and
//! Firecracker pattern).

use crate::error::KvmError;
use std::cell::Cell;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

thread_local! {
    /// This thread's `kvm_run.immediate_exit` byte while a vCPU runs here.
    static IMMEDIATE_EXIT: Cell<*mut u8> = const { Cell::new(std::ptr::null_mut()) };
}

fn signal() -> libc::c_int {
    libc::SIGRTMIN() + 2
}

extern "C" fn on_signal(_: libc::c_int) {
    // A const-initialised thread local is a plain TLS slot: reading it in a
    // signal handler is async-signal-safe.
    let p = IMMEDIATE_EXIT.with(|c| c.get());
    if !p.is_null() {
        // SAFETY: the pointer is this thread's mapped kvm_run, set by
        // `DeadlineTimer::new` and cleared before the mapping goes away.
        unsafe { std::ptr::write_volatile(p, 1) };
    }
}

/// A one-shot timer that interrupts this thread's KVM_RUN.
pub struct DeadlineTimer {
    id: libc::timer_t,
    /// When the timer fires next, if it is armed.
    armed: Option<Instant>,
}

impl DeadlineTimer {
    /// `immediate_exit` points into this thread's vCPU `kvm_run` mapping.
    pub fn new(immediate_exit: *mut u8) -> Result<DeadlineTimer, KvmError> {
        // The handler is process-wide: installed once, and its result (an
        // errno) kept for every later timer to report.
        static INSTALLED: OnceLock<Result<(), i32>> = OnceLock::new();
        let installed = INSTALLED.get_or_init(|| {
            // SAFETY: installs a handler that only does an async-signal-safe
            // volatile store; no SA_RESTART, so KVM_RUN returns EINTR. The
            // sigaction struct is plain data, zeroed then filled in.
            let r = unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as *const () as usize;
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(signal(), &sa, std::ptr::null_mut())
            };
            if r == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
            }
        });
        if let Err(errno) = *installed {
            return Err(KvmError::Os {
                call: "sigaction",
                source: std::io::Error::from_raw_os_error(errno),
            });
        }
        // SAFETY: sigevent is plain data; zeroed is a valid start.
        let mut ev: libc::sigevent = unsafe { std::mem::zeroed() };
        ev.sigev_notify = libc::SIGEV_THREAD_ID;
        ev.sigev_signo = signal();
        // SAFETY: gettid has no preconditions.
        ev.sigev_notify_thread_id = unsafe { libc::gettid() };
        let mut id: libc::timer_t = std::ptr::null_mut();
        // SAFETY: valid pointers to initialised values.
        let r = unsafe { libc::timer_create(libc::CLOCK_MONOTONIC, &mut ev, &mut id) };
        if r != 0 {
            return Err(KvmError::Os {
                call: "timer_create",
                source: std::io::Error::last_os_error(),
            });
        }
        // Only now, with the timer made: on an error above nothing would
        // clear the pointer (Drop runs for a made timer only).
        IMMEDIATE_EXIT.with(|c| c.set(immediate_exit));
        Ok(DeadlineTimer { id, armed: None })
    }

    /// Makes sure the timer fires no later than `target`. A timer already
    /// armed for an earlier instant still to come is left alone: firing
    /// early costs one spurious exit, while re-arming costs a system call
    /// on every entry into the guest.
    pub fn arm_by(&mut self, target: Instant) -> Result<(), KvmError> {
        let now = Instant::now();
        if let Some(a) = self.armed {
            if a > now && a <= target {
                return Ok(());
            }
        }
        self.arm(target.saturating_duration_since(now))?;
        self.armed = Some(target);
        Ok(())
    }

    /// Fires once after `d` (replacing any earlier arming).
    fn arm(&self, d: Duration) -> Result<(), KvmError> {
        let d = if d.is_zero() {
            Duration::from_nanos(1)
        } else {
            d
        };
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: d.as_secs() as libc::time_t,
                tv_nsec: d.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: `id` is a live timer of this object; `spec` is
        // initialised and the old value is not asked for.
        let r = unsafe { libc::timer_settime(self.id, 0, &spec, std::ptr::null_mut()) };
        if r != 0 {
            return Err(KvmError::Os {
                call: "timer_settime",
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }
}

impl Drop for DeadlineTimer {
    fn drop(&mut self) {
        IMMEDIATE_EXIT.with(|c| c.set(std::ptr::null_mut()));
        // SAFETY: deletes the timer this object created. It fails only
        // for an invalid id, which `new` never hands out, and a drop could
        // not report it anyway.
        unsafe { libc::timer_delete(self.id) };
    }
}
