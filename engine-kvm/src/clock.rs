//! Virtual time under KVM: host time plus an offset. The guest runs at the
//! host's pace, so the machine's clock follows host time; it jumps ahead
//! when an idle HLT warps to the next device deadline, and the offset
//! remembers the jump. It stands still between the engine's runs
//! (`Kvm::resume_clock` sets it at each run and step).

use machine::Machine;
use std::time::Instant;

pub(crate) struct HostClock {
    /// Virtual time minus host time since `epoch` (moves when HLT warps).
    offset: i128,
    epoch: Instant,
}

impl HostClock {
    /// A clock that reads `now` (nanoseconds of virtual time) at once.
    pub fn new(now: u64) -> HostClock {
        HostClock {
            offset: now as i128,
            epoch: Instant::now(),
        }
    }

    /// Virtual time by the host's clock.
    pub fn now(&self) -> u64 {
        let t = self.epoch.elapsed().as_nanos() as i128 + self.offset;
        t.max(0) as u64
    }

    /// Makes this clock read `now` from here on (after a warp, or when a
    /// state is imported).
    pub fn set(&mut self, now: u64) {
        self.offset = now as i128 - self.epoch.elapsed().as_nanos() as i128;
    }

    /// Advances the machine's time to host time, never backwards: if the
    /// machine is ahead (it warped), this clock catches up instead.
    pub fn sync(&mut self, m: &mut Machine) {
        let t = self.now();
        if t > m.clock.now() {
            m.set_time(t);
        } else {
            self.offset += (m.clock.now() - t) as i128;
        }
    }

    /// `sync`, with this clock first held back to `limit` if it is past
    /// it (it then reads `limit` and goes on from there).
    pub fn sync_upto(&mut self, m: &mut Machine, limit: u64) {
        if self.now() > limit {
            self.set(limit);
        }
        self.sync(m);
    }
}
