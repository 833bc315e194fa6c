//! Diagnosing kvm-pvm, the software hypervisor of some cloud VMs (this
//! project's machines among them, see ARCHITECTURE.md, "KVM hosts"): it
//! runs real mode and unpaged ring-0 code, but has no 32-bit paging and
//! cannot change rings (or even IRET) in unpaged protected mode.
//! It says so only by a shutdown or an internal error, or by running on
//! with wrong results; these functions turn that into an explanation.

use crate::error::KvmError;
use crate::insn;
use kvm_bindings::kvm_sregs;
use machine::cpu::{access, cr0, CpuState};
use machine::Machine;

/// EFER bit 10, LMA: long mode is active (SDM Vol 3A 2.2.1).
const EFER_LMA: u64 = 1 << 10;

/// How kvm-pvm stopped the vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PvmStop {
    /// KVM_EXIT_SHUTDOWN, which on hardware means a triple fault.
    Shutdown,
    /// KVM_EXIT_INTERNAL_ERROR.
    InternalError,
}

/// Checked at every exit: kvm-pvm has no 32-bit paging. Measured: a MOV
/// CR0 setting PG either shuts the vCPU down (with CR4.PSE) or is silently
/// dropped, and the guest runs on unpaged with wrong results. So at the
/// first exit that shows a page directory loaded in CR3 outside long mode,
/// stop and say why. (A 32-bit guest loads CR3 only to page; one that never
/// turns paging on would be stopped too, which the message makes clear.)
pub(crate) fn paging_refused(sregs: &kvm_sregs) -> Option<KvmError> {
    let long_mode = sregs.efer & EFER_LMA != 0;
    if long_mode || (sregs.cr0 & cr0::PG as u64 == 0 && sregs.cr3 == 0) {
        return None;
    }
    Some(KvmError::Unsupported(format!(
        "the guest loaded a page directory (CR3={:#x}) to use 32-bit paging, which this \
         host's kvm-pvm only supports in long mode (it ignores or refuses CR0.PG); run it on \
         the interpreter, or on a host with hardware virtualization (kvm_intel or kvm_amd)",
        sregs.cr3
    )))
}

/// Explains a stop kvm-pvm gives for what it cannot run, with the state
/// `s` it stopped in; None when the stop is the guest's own (a genuine
/// triple fault).
pub(crate) fn explain(stop: PvmStop, m: &Machine, s: &CpuState) -> Option<KvmError> {
    if std::env::var_os("RINGLAB_KVM_DEBUG").is_some() {
        eprintln!("kvm-pvm stop ({stop:?}): {s:?}");
    }
    let why = match stop {
        PvmStop::Shutdown if s.cr0 & cr0::PG != 0 || insn::sets_paging(m, s) => {
            "the guest enabled 32-bit paging (CR0.PG), which this host's kvm-pvm only \
             supports in long mode"
        }
        // A task gate taken as if it were a code segment: CS ends up
        // holding a TSS descriptor (S = 0), which no real CPU allows.
        PvmStop::Shutdown if s.protected() && s.segs[1].access & access::S == 0 => {
            "kvm-pvm cannot perform hardware task switches in 32-bit protected mode \
             (it loaded CS with a TSS descriptor and the vCPU shut down)"
        }
        PvmStop::Shutdown => return None,
        PvmStop::InternalError if insn::is_iret(m, s) => {
            "kvm-pvm cannot execute IRET in 32-bit protected mode without paging \
             (KVM internal error), even within one ring"
        }
        PvmStop::InternalError => {
            "kvm-pvm could not run this guest in 32-bit protected mode without paging \
             (KVM internal error; it fails on IRET and on ring changes there)"
        }
    };
    Some(KvmError::Unsupported(format!(
        "{why}; run it on the interpreter, or on a host with hardware virtualization \
         (kvm_intel or kvm_amd); stopped at {:04x}:{:08x} ({})",
        s.segs[1].selector,
        s.eip,
        s.mode_name()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use machine::MachineConfig;

    #[test]
    fn a_page_directory_outside_long_mode_is_refused() {
        let mut sr = kvm_sregs::default();
        assert!(paging_refused(&sr).is_none());
        sr.cr3 = 0x9000;
        let e = paging_refused(&sr).expect("refused");
        assert!(e.to_string().contains("CR3=0x9000"), "{e}");
        assert!(e.to_string().contains("32-bit paging"), "{e}");
        sr.efer = EFER_LMA;
        assert!(paging_refused(&sr).is_none(), "long mode pages on kvm-pvm");
    }

    #[test]
    fn shutdowns_and_internal_errors_are_explained() {
        let mut m = Machine::new(MachineConfig::with_ram(1 << 20)).unwrap();
        m.mem.write(0x1000, &[0xCF]).unwrap();
        let mut s = CpuState::reset();
        s.segs[1].base = 0;
        s.segs[1].selector = 0;
        s.eip = 0x1000;
        s.cr0 |= cr0::PE;
        // A shutdown in plain protected mode is the guest's own.
        assert!(explain(PvmStop::Shutdown, &m, &s).is_none());
        let iret = explain(PvmStop::InternalError, &m, &s).unwrap().to_string();
        assert!(iret.starts_with("kvm-pvm cannot execute IRET"), "{iret}");
        assert!(
            iret.ends_with("stopped at 0000:00001000 (prot16)"),
            "{iret}"
        );
        s.cr0 |= cr0::PG;
        let pg = explain(PvmStop::Shutdown, &m, &s).unwrap().to_string();
        assert!(pg.contains("32-bit paging (CR0.PG)"), "{pg}");
    }
}
