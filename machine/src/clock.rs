//! Virtual time.
//!
//! Everything in the machine that depends on time (the 8254's counters, the
//! VGA retrace bit, the TSC an engine shows) reads it from here, never from
//! the host. The interpreter and the translator advance it by retired
//! instructions, like QEMU's `-icount`: `ns_per_insn` nanoseconds each, so two
//! runs of the same guest see interrupts at the same instruction. The KVM
//! engine advances it by host time, since the real CPU does not count for us.
//! When a CPU halts with interrupts enabled the engine warps the clock to the
//! next device deadline.

use serde::{Deserialize, Serialize};

/// Default instruction-counted rate: one instruction per nanosecond, a
/// 1 GHz CPU retiring one instruction per cycle.
pub const DEFAULT_NS_PER_INSN: u64 = 1;

/// How the clock is being driven.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClockMode {
    /// Advanced by retired instructions (deterministic).
    Instructions,
    /// Advanced by host time (KVM).
    HostTime,
}

#[derive(Clone, Debug)]
pub struct Clock {
    now_ns: u64,
    ns_per_insn: u64,
    mode: ClockMode,
    warps: u64,
    warped_ns: u64,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    pub fn new() -> Self {
        Clock {
            now_ns: 0,
            ns_per_insn: DEFAULT_NS_PER_INSN,
            mode: ClockMode::Instructions,
            warps: 0,
            warped_ns: 0,
        }
    }

    /// Virtual nanoseconds since power-on.
    #[inline]
    pub fn now(&self) -> u64 {
        self.now_ns
    }

    pub fn mode(&self) -> ClockMode {
        self.mode
    }

    pub fn set_mode(&mut self, mode: ClockMode) {
        self.mode = mode;
    }

    /// Virtual nanoseconds one retired instruction takes in instruction mode.
    #[inline]
    pub fn ns_per_insn(&self) -> u64 {
        self.ns_per_insn
    }

    pub fn set_ns_per_insn(&mut self, ns: u64) {
        self.ns_per_insn = ns.max(1);
    }

    /// Instructions that fit before `deadline` at the instruction rate
    /// (at least one, so an engine always makes progress).
    #[inline]
    pub fn insns_until(&self, deadline: u64) -> u64 {
        (deadline.saturating_sub(self.now_ns))
            .div_ceil(self.ns_per_insn)
            .max(1)
    }

    /// Moves time forward; time never goes back.
    #[inline]
    pub(crate) fn set(&mut self, ns: u64) {
        if ns > self.now_ns {
            self.now_ns = ns;
        }
    }

    /// Records a warp (a halted CPU skipping to the next deadline).
    pub(crate) fn warp_to(&mut self, ns: u64) {
        if ns > self.now_ns {
            self.warps += 1;
            self.warped_ns += ns - self.now_ns;
            self.now_ns = ns;
        }
    }

    /// How many times, and over how many nanoseconds, a halted CPU warped.
    pub fn warp_stats(&self) -> (u64, u64) {
        (self.warps, self.warped_ns)
    }
}

/// Nanoseconds per second.
pub const NS_PER_SEC: u64 = 1_000_000_000;

/// Converts virtual nanoseconds to ticks of a `hz` clock (floor).
#[inline]
pub fn ns_to_ticks(ns: u64, hz: u64) -> u64 {
    ((ns as u128 * hz as u128) / NS_PER_SEC as u128) as u64
}

/// The first nanosecond at which `ticks` ticks of a `hz` clock have elapsed
/// (the inverse of `ns_to_ticks`, rounded up).
#[inline]
pub fn ticks_to_ns(ticks: u64, hz: u64) -> u64 {
    let v = (ticks as u128 * NS_PER_SEC as u128).div_ceil(hz as u128);
    v.min(u64::MAX as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_conversion_round_trips() {
        let hz = 1_193_182;
        for t in [0u64, 1, 2, 1000, 11932, 1 << 40] {
            let ns = ticks_to_ns(t, hz);
            assert_eq!(ns_to_ticks(ns, hz), t, "ticks {t}");
            if ns > 0 {
                assert_eq!(ns_to_ticks(ns - 1, hz), t - 1, "ticks {t}");
            }
        }
    }

    #[test]
    fn time_is_monotonic_and_warps_are_counted() {
        let mut c = Clock::new();
        c.set(100);
        c.set(50);
        assert_eq!(c.now(), 100);
        c.warp_to(1000);
        assert_eq!(c.warp_stats(), (1, 900));
        assert_eq!(c.insns_until(1000), 1);
        assert_eq!(c.insns_until(1010), 10);
    }
}
