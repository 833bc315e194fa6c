//! The vCPU as the engine drives it: the `Vcpu` trait (so the run loop can
//! be unit tested with synthetic exits, see `run`), its implementation on
//! kvm-ioctls' `VcpuFd`, and reading and writing `CpuState` through it.

use crate::debug::GuestDebug;
use crate::error::KvmError;
use crate::state;
use kvm_bindings::{kvm_msr_entry, kvm_regs, kvm_sregs, Msrs};
use kvm_ioctls::{VcpuExit, VcpuFd};
use machine::cpu::{msr, CpuState};

/// KVM_INTERRUPT: _IOW(KVMIO, 0x86, struct kvm_interrupt) — not wrapped by
/// kvm-ioctls.
const KVM_INTERRUPT: libc::c_ulong = 0x4004_AE86;

/// The modelled MSRs a `CpuState` carries, read back after every stop.
const STATE_MSRS: [u32; 4] = [
    msr::SYSENTER_CS,
    msr::SYSENTER_ESP,
    msr::SYSENTER_EIP,
    msr::TSC,
];

/// What the run loop needs of a vCPU.
///
/// # Safety
///
/// The data slices of an exit returned by `run` must stay valid, and be
/// touched by none of the other methods, until `run` is called again: the
/// loop keeps them as raw pointers while it calls the others (see
/// `run::Raw`).
pub(crate) unsafe trait Vcpu {
    /// KVM_RUN.
    fn run(&mut self) -> Result<VcpuExit<'_>, kvm_ioctls::Error>;
    /// The size of one item of the port I/O exit `run` just returned (its
    /// data holds `count` of them: REP INS/OUTS).
    fn io_size(&mut self) -> u8;
    /// `kvm_run.immediate_exit`: KVM_RUN returns EINTR at once while set.
    fn set_immediate_exit(&mut self, on: bool);
    /// Where `immediate_exit` lives, for the deadline timer's signal
    /// handler; valid as long as the vCPU.
    fn immediate_exit_ptr(&mut self) -> *mut u8;
    /// KVM can inject an interrupt at the next entry and the guest's IF
    /// allows one.
    fn can_inject(&mut self) -> bool;
    /// Asks KVM to exit as soon as the guest can take an interrupt.
    fn request_interrupt_window(&mut self, on: bool);
    /// KVM_INTERRUPT: delivers `vector` at the next entry.
    fn inject(&mut self, vector: u8) -> Result<(), KvmError>;
    /// KVM_SET_GUEST_DEBUG: single stepping, INT3 interception and the
    /// debug registers as `d` says (`crate::debug`).
    fn set_debug(&mut self, d: &GuestDebug) -> Result<(), KvmError>;
    /// Delivers exception `vector` (no error code) at the next entry
    /// through KVM_SET_VCPU_EVENTS, as an exception KVM had intercepted
    /// and now re-injects (how a debugger hands the guest its own INT3
    /// back, as QEMU's gdbstub does).
    fn inject_exception(&mut self, vector: u8) -> Result<(), KvmError>;
    fn regs(&self) -> Result<kvm_regs, KvmError>;
    /// Moves RIP (back over a HLT patch KVM skipped).
    fn set_rip(&mut self, rip: u64) -> Result<(), KvmError>;
    /// Does what an STI `len` bytes long does (SDM Vol 2B STI): IF set,
    /// RIP past it, and, where IF was clear (`shadow`), the interrupt
    /// shadow over the next instruction (KVM_SET_VCPU_EVENTS).
    fn emulate_sti(&mut self, len: u64, shadow: bool) -> Result<(), KvmError>;
    fn sregs(&self) -> Result<kvm_sregs, KvmError>;
    /// KVM_GET_MSRS of `indices`, every one of them or an error.
    fn msrs(&self, indices: &[u32]) -> Result<Vec<u64>, KvmError>;
    /// From KVM_GET_VCPU_EVENTS: (the guest is in an interrupt shadow,
    /// after STI or MOV SS; NMIs are blocked, one delivered and no IRET
    /// since).
    fn shadow_and_nmi_blocking(&self) -> Result<(bool, bool), KvmError>;
    /// From KVM_GET_VCPU_EVENTS: KVM holds an interrupt or exception in
    /// the middle of its delivery (taken from us, or intercepted, and not
    /// yet in the guest: the entry that was to deliver it ended first).
    /// The next entry delivers it whatever IF says.
    fn event_held(&self) -> Result<bool, KvmError>;
    /// KVM_NMI: an NMI at the next entry (KVM keeps the blocking until
    /// IRET itself).
    fn inject_nmi(&mut self) -> Result<(), KvmError>;
}

// SAFETY: kvm-ioctls makes an exit's data slices point into the vCPU's
// kvm_run mapping, which lives as long as the `VcpuFd`, and KVM changes
// them only inside KVM_RUN. Port I/O data sits at `io.data_offset`, one
// page into the mapping (KVM_PIO_PAGE_OFFSET in Linux), past the 2352-byte
// `struct kvm_run` that `io_size` borrows; MMIO data is inside
// `struct kvm_run`, and no method but `run` borrows the struct while an
// MMIO exit is being handled (the loop clears `immediate_exit` only before
// the next entry).
unsafe impl Vcpu for VcpuFd {
    fn run(&mut self) -> Result<VcpuExit<'_>, kvm_ioctls::Error> {
        VcpuFd::run(self)
    }

    fn io_size(&mut self) -> u8 {
        // SAFETY: called only after a KVM_EXIT_IO, for which `io` is the
        // union member the kernel filled in.
        unsafe { self.get_kvm_run().__bindgen_anon_1.io.size }
    }

    fn set_immediate_exit(&mut self, on: bool) {
        self.set_kvm_immediate_exit(on as u8);
    }

    fn immediate_exit_ptr(&mut self) -> *mut u8 {
        &mut self.get_kvm_run().immediate_exit
    }

    fn can_inject(&mut self) -> bool {
        let run = self.get_kvm_run();
        run.ready_for_interrupt_injection != 0 && run.if_flag != 0
    }

    fn request_interrupt_window(&mut self, on: bool) {
        self.get_kvm_run().request_interrupt_window = on as u8;
    }

    fn inject(&mut self, vector: u8) -> Result<(), KvmError> {
        let irq = kvm_bindings::kvm_interrupt { irq: vector as u32 };
        // SAFETY: KVM_INTERRUPT takes a pointer to a kvm_interrupt on a vCPU
        // fd; both are valid for the call, and the kernel only reads it.
        let r = unsafe {
            libc::ioctl(
                std::os::unix::io::AsRawFd::as_raw_fd(self),
                KVM_INTERRUPT,
                &irq,
            )
        };
        if r != 0 {
            return Err(KvmError::Ioctl {
                call: "KVM_INTERRUPT".into(),
                source: kvm_ioctls::Error::last(),
            });
        }
        Ok(())
    }

    fn set_debug(&mut self, d: &GuestDebug) -> Result<(), KvmError> {
        VcpuFd::set_guest_debug(self, &d.to_kvm()).map_err(KvmError::ioctl("KVM_SET_GUEST_DEBUG"))
    }

    fn inject_exception(&mut self, vector: u8) -> Result<(), KvmError> {
        let mut ev = self
            .get_vcpu_events()
            .map_err(KvmError::ioctl("KVM_GET_VCPU_EVENTS"))?;
        // An intercepted exception is re-injected as "injected" (not
        // "pending"): KVM delivers it at the next entry with the RIP it
        // had. For INT3 (a trap, a "soft" exception) KVM works out the
        // length of the instruction at RIP itself, so the handler sees
        // the EIP after it, as on hardware (Linux arch/x86/kvm/svm,
        // svm_update_soft_interrupt_rip; VMX keeps the exit's length).
        ev.exception.injected = 1;
        ev.exception.pending = 0;
        ev.exception.nr = vector;
        ev.exception.has_error_code = 0;
        ev.exception.error_code = 0;
        ev.flags = 0;
        self.set_vcpu_events(&ev)
            .map_err(KvmError::ioctl("KVM_SET_VCPU_EVENTS"))
    }

    fn regs(&self) -> Result<kvm_regs, KvmError> {
        self.get_regs().map_err(KvmError::ioctl("KVM_GET_REGS"))
    }

    fn set_rip(&mut self, rip: u64) -> Result<(), KvmError> {
        let mut r = Vcpu::regs(self)?;
        r.rip = rip;
        self.set_regs(&r).map_err(KvmError::ioctl("KVM_SET_REGS"))
    }

    fn emulate_sti(&mut self, len: u64, shadow: bool) -> Result<(), KvmError> {
        let mut r = Vcpu::regs(self)?;
        r.rip = r.rip.wrapping_add(len);
        r.rflags |= u64::from(machine::cpu::flags::IF);
        self.set_regs(&r).map_err(KvmError::ioctl("KVM_SET_REGS"))?;
        if shadow {
            let mut ev = self
                .get_vcpu_events()
                .map_err(KvmError::ioctl("KVM_GET_VCPU_EVENTS"))?;
            // KVM_X86_SHADOW_INT_STI.
            ev.interrupt.shadow = 1;
            ev.flags = kvm_bindings::KVM_VCPUEVENT_VALID_SHADOW;
            self.set_vcpu_events(&ev)
                .map_err(KvmError::ioctl("KVM_SET_VCPU_EVENTS"))?;
        }
        Ok(())
    }

    fn sregs(&self) -> Result<kvm_sregs, KvmError> {
        self.get_sregs().map_err(KvmError::ioctl("KVM_GET_SREGS"))
    }

    fn msrs(&self, indices: &[u32]) -> Result<Vec<u64>, KvmError> {
        let mut msrs = msr_list(indices.iter().map(|&i| (i, 0)))?;
        let n = self
            .get_msrs(&mut msrs)
            .map_err(KvmError::ioctl("KVM_GET_MSRS"))?;
        // KVM stops at the first MSR it cannot read and says so only by
        // the count.
        if n < indices.len() {
            return Err(KvmError::MsrRefused {
                call: "KVM_GET_MSRS",
                refused: indices[n],
                done: n,
                wanted: indices.len(),
            });
        }
        Ok(msrs.as_slice().iter().map(|e| e.data).collect())
    }

    fn shadow_and_nmi_blocking(&self) -> Result<(bool, bool), KvmError> {
        let ev = self
            .get_vcpu_events()
            .map_err(KvmError::ioctl("KVM_GET_VCPU_EVENTS"))?;
        Ok((ev.interrupt.shadow != 0, ev.nmi.masked != 0))
    }

    fn event_held(&self) -> Result<bool, KvmError> {
        let ev = self
            .get_vcpu_events()
            .map_err(KvmError::ioctl("KVM_GET_VCPU_EVENTS"))?;
        Ok(ev.interrupt.injected != 0 || ev.exception.injected != 0)
    }

    fn inject_nmi(&mut self) -> Result<(), KvmError> {
        self.nmi().map_err(KvmError::ioctl("KVM_NMI"))
    }
}

/// A KVM MSR list of (index, value) pairs.
pub(crate) fn msr_list(entries: impl Iterator<Item = (u32, u64)>) -> Result<Msrs, KvmError> {
    let entries: Vec<kvm_msr_entry> = entries
        .map(|(index, data)| kvm_msr_entry {
            index,
            data,
            ..Default::default()
        })
        .collect();
    Msrs::from_entries(&entries).map_err(KvmError::too_long("MSR list"))
}

/// KVM_SET_MSRS of every (index, value) pair, or an error naming the first
/// MSR the host refused (KVM stops there and reports only the count).
pub(crate) fn set_msrs(vcpu: &VcpuFd, entries: &[(u32, u64)]) -> Result<(), KvmError> {
    let msrs = msr_list(entries.iter().copied())?;
    let n = vcpu
        .set_msrs(&msrs)
        .map_err(KvmError::ioctl("KVM_SET_MSRS"))?;
    if n < entries.len() {
        return Err(KvmError::MsrRefused {
            call: "KVM_SET_MSRS",
            refused: entries[n].0,
            done: n,
            wanted: entries.len(),
        });
    }
    Ok(())
}

/// Registers and segment state only (two ioctls): enough for the CPL and
/// the PC, as single stepping needs after every instruction. What KVM does
/// not hold comes from `last` (the state last imported or read).
pub(crate) fn read_regs(v: &impl Vcpu, last: Option<&CpuState>) -> Result<CpuState, KvmError> {
    let regs = v.regs()?;
    let sregs = v.sregs()?;
    let mut s = last.cloned().unwrap_or_else(CpuState::reset);
    state::from_kvm(&regs, &sregs, &mut s);
    Ok(s)
}

/// Everything: registers, segments, the modelled MSRs and the interrupt
/// shadow.
pub(crate) fn read_state(v: &impl Vcpu, last: Option<&CpuState>) -> Result<CpuState, KvmError> {
    let mut s = read_regs(v, last)?;
    let values = v.msrs(&STATE_MSRS)?;
    for (&index, &data) in STATE_MSRS.iter().zip(&values) {
        match index {
            msr::SYSENTER_CS => s.sysenter_cs = data as u32,
            msr::SYSENTER_ESP => s.sysenter_esp = data as u32,
            msr::SYSENTER_EIP => s.sysenter_eip = data as u32,
            msr::TSC => s.tsc = data,
            _ => unreachable!("STATE_MSRS lists only these"),
        }
    }
    (s.interrupt_shadow, s.nmi_blocked) = v.shadow_and_nmi_blocking()?;
    Ok(s)
}

/// Loads `s` into the vCPU: segments first (they set the mode the
/// registers are then read in), then the registers and the SYSENTER MSRs.
/// `tcg_host`: the "hardware" is QEMU's TCG, see below.
pub(crate) fn write_state(vcpu: &VcpuFd, s: &CpuState, tcg_host: bool) -> Result<(), KvmError> {
    let base = vcpu.sregs()?;
    let (regs, mut sregs) = state::to_kvm(s, &base);
    if tcg_host && sregs.tr.s == 0 && matches!(sregs.tr.type_, 3 | 11) {
        // After LTR a real CPU caches TR as a busy TSS (VM entry even
        // requires it, SDM Vol 3C 26.3.1.2); QEMU's TCG keeps the
        // "available" type it read and aborts the whole VM ("invalid
        // tss type") at the next ring change through a busy one.
        // Measured in the test VM: interp -> kvm switches of the rings
        // lesson. The type is made busy again on export.
        sregs.tr.type_ &= !2;
    }
    vcpu.set_sregs(&sregs)
        .map_err(KvmError::ioctl("KVM_SET_SREGS"))?;
    vcpu.set_regs(&regs)
        .map_err(KvmError::ioctl("KVM_SET_REGS"))?;
    // NMI blocking travels with the CPU (an engine switch inside an NMI
    // handler): kvm_vcpu_events.nmi.masked is always applied. Only then,
    // so an import never depends on an ioctl a CPU outside an NMI handler
    // does not need.
    if s.nmi_blocked {
        let mut ev = vcpu
            .get_vcpu_events()
            .map_err(KvmError::ioctl("KVM_GET_VCPU_EVENTS"))?;
        ev.nmi.masked = 1;
        ev.flags = 0;
        vcpu.set_vcpu_events(&ev)
            .map_err(KvmError::ioctl("KVM_SET_VCPU_EVENTS"))?;
    }
    set_msrs(
        vcpu,
        &[
            (msr::SYSENTER_CS, s.sysenter_cs as u64),
            (msr::SYSENTER_ESP, s.sysenter_esp as u64),
            (msr::SYSENTER_EIP, s.sysenter_eip as u64),
        ],
    )
}
