//! What each VM exit means for the machine: a free function over the exit,
//! so unit tests can drive it with synthetic exits (as Firecracker does).

use machine::event::VmExit;
use machine::{Event, Machine, Stop};

/// A VM exit, as the run loop hands it over.
#[derive(Debug)]
pub enum Exit<'a> {
    /// IN: `count` items of `size` bytes into `data`.
    IoIn {
        port: u16,
        size: u8,
        data: &'a mut [u8],
    },
    IoOut {
        port: u16,
        size: u8,
        data: &'a [u8],
    },
    MmioRead {
        addr: u64,
        data: &'a mut [u8],
    },
    MmioWrite {
        addr: u64,
        data: &'a [u8],
    },
    Hlt,
    IrqWindowOpen,
    /// KVM_RUN was interrupted by the deadline timer (EINTR).
    Intr,
    Shutdown,
    /// A debug exit (a single step, a debug register, an INT3 with
    /// KVM_GUESTDBG_USE_SW_BP) at linear `pc`: `exception` 1 (#DB, DR6
    /// says which) or 3 (#BP).
    Debug {
        pc: u64,
        exception: u32,
        dr6: u64,
    },
    FailEntry(u64),
    InternalError(u32),
    /// Any other KVM_EXIT_* reason, by name.
    Other(&'static str),
}

impl Exit<'_> {
    /// The reason without operands, for the per-reason counters.
    pub fn kind(&self) -> &'static str {
        match self {
            Exit::IoIn { .. } | Exit::IoOut { .. } => "io",
            Exit::MmioRead { .. } | Exit::MmioWrite { .. } => "mmio",
            Exit::Hlt => "hlt",
            Exit::IrqWindowOpen => "irq window",
            Exit::Intr => "timer",
            Exit::Shutdown => "shutdown",
            Exit::Debug { .. } => "debug",
            Exit::FailEntry(_) => "fail entry",
            Exit::InternalError(_) => "internal error",
            Exit::Other(_) => "other",
        }
    }

    /// The reason, as counted in the stats and named in events; an MMIO
    /// exit names the device register it hit when the device can.
    pub fn reason(&self, m: &Machine) -> VmExit {
        match self {
            Exit::IoIn { port, .. } => VmExit::IoIn { port: *port },
            Exit::IoOut { port, .. } => VmExit::IoOut { port: *port },
            Exit::MmioRead { addr, .. } => VmExit::Mmio {
                write: false,
                addr: *addr,
                register: m.bus.mmio_register_name(*addr),
            },
            Exit::MmioWrite { addr, .. } => VmExit::Mmio {
                write: true,
                addr: *addr,
                register: m.bus.mmio_register_name(*addr),
            },
            Exit::Hlt => VmExit::Hlt,
            Exit::IrqWindowOpen => VmExit::IrqWindow,
            Exit::Intr => VmExit::Timer,
            Exit::Shutdown => VmExit::Shutdown,
            Exit::Debug { pc, .. } => VmExit::Debug { pc: *pc },
            Exit::FailEntry(r) => VmExit::FailEntry { reason: *r },
            Exit::InternalError(s) => VmExit::InternalError { suberror: *s },
            Exit::Other(name) => VmExit::Other { name },
        }
    }
}

/// What the run loop does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Enter the guest again.
    Resume,
    /// The vCPU executed HLT: the loop decides from IF and the devices.
    Halted,
    Stop(Stop),
    /// The host side failed (the loop adds a state dump).
    Fail(String),
}

/// Carries out `exit` on the shared machine and records it in the trace.
pub fn handle(exit: Exit, m: &mut Machine) -> Action {
    let now = m.clock.now();
    let icount = m.icount();
    m.trace.record(
        icount,
        now,
        Event::VmExit {
            reason: exit.reason(m),
        },
    );
    match exit {
        Exit::IoIn { port, size, data } => {
            // A string IN (REP INSW from the ATA data port) arrives as one
            // exit with every item: the device's bulk path takes them at
            // once where it has one.
            let bulk = if data.len() > size as usize && size > 0 {
                m.io_read_bulk(port, size, data)
            } else {
                0
            };
            for chunk in data[bulk..].chunks_mut(size.max(1) as usize) {
                let v = m.io_read(port, size);
                chunk.copy_from_slice(&v.to_le_bytes()[..chunk.len()]);
            }
            Action::Resume
        }
        Exit::IoOut { port, size, data } => {
            let bulk = if data.len() > size as usize && size > 0 {
                m.io_write_bulk(port, size, data)
            } else {
                0
            };
            for chunk in data[bulk..].chunks(size.max(1) as usize) {
                let mut b = [0u8; 4];
                b[..chunk.len()].copy_from_slice(chunk);
                m.io_write(port, size, u32::from_le_bytes(b));
            }
            match m.stop_requested() {
                Some(s) => Action::Stop(s.to_stop()),
                None => Action::Resume,
            }
        }
        Exit::MmioRead { addr, data } => {
            let v = m.read_phys(addr as u32, data.len() as u8);
            let n = data.len();
            data.copy_from_slice(&v.to_le_bytes()[..n]);
            Action::Resume
        }
        Exit::MmioWrite { addr, data } => {
            let mut b = [0u8; 8];
            b[..data.len()].copy_from_slice(data);
            m.write_phys(addr as u32, data.len() as u8, u64::from_le_bytes(b));
            match m.stop_requested() {
                Some(s) => Action::Stop(s.to_stop()),
                None => Action::Resume,
            }
        }
        Exit::Hlt => Action::Halted,
        Exit::IrqWindowOpen | Exit::Intr | Exit::Debug { .. } => Action::Resume,
        Exit::Shutdown => Action::Stop(Stop::TripleFault),
        Exit::FailEntry(r) => Action::Fail(format!(
            "KVM could not enter the guest (hardware entry failure reason {r:#x})"
        )),
        Exit::InternalError(sub) => Action::Fail(format!(
            "KVM reported an internal error (suberror {sub}) — on kvm-pvm this is what a \
             ring change in unpaged protected mode gives"
        )),
        Exit::Other(s) => Action::Fail(format!("unexpected VM exit: {s}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use machine::MachineConfig;

    fn machine() -> Machine {
        Machine::new(MachineConfig::with_ram(2 << 20)).unwrap()
    }

    #[test]
    fn port_io_reaches_the_shared_devices() {
        let mut m = machine();
        assert_eq!(
            handle(
                Exit::IoOut {
                    port: 0xE9,
                    size: 1,
                    data: b"k"
                },
                &mut m
            ),
            Action::Resume
        );
        assert_eq!(m.debugcon_output(), b"k");
        let mut buf = [0u8; 1];
        handle(
            Exit::IoIn {
                port: 0x1234,
                size: 1,
                data: &mut buf,
            },
            &mut m,
        );
        assert_eq!(buf, [0xFF], "unclaimed ports read all ones");
        // REP OUTSB: three items of one byte.
        handle(
            Exit::IoOut {
                port: 0xE9,
                size: 1,
                data: b"abc",
            },
            &mut m,
        );
        assert_eq!(m.debugcon_output(), b"kabc");
    }

    #[test]
    fn exit_port_and_shutdown_stop_the_run() {
        let mut m = machine();
        assert_eq!(
            handle(
                Exit::IoOut {
                    port: 0xF4,
                    size: 1,
                    data: &[3]
                },
                &mut m
            ),
            Action::Stop(Stop::GuestExit { value: 3 })
        );
        assert_eq!(
            handle(Exit::Shutdown, &mut machine()),
            Action::Stop(Stop::TripleFault)
        );
        assert_eq!(handle(Exit::Hlt, &mut machine()), Action::Halted);
    }

    #[test]
    fn mmio_outside_ram_reads_all_ones() {
        let mut m = machine();
        let mut buf = [0u8; 4];
        handle(
            Exit::MmioRead {
                addr: 0xFED0_0000,
                data: &mut buf,
            },
            &mut m,
        );
        assert_eq!(buf, [0xFF; 4]);
        assert!(matches!(
            handle(Exit::InternalError(1), &mut m),
            Action::Fail(s) if s.contains("internal error")
        ));
        assert_eq!(m.trace.count(machine::EventKind::VmExit), 2);
    }
}
