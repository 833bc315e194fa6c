//! Setting up: the VM, its one vCPU, the CPUID the guest sees and the MSRs
//! that make KVM's CPU match the machine's.

use crate::error::KvmError;
use crate::host::{self, HostKind};
use crate::vcpu;
use kvm_bindings::{kvm_cpuid_entry2, CpuId};
use kvm_ioctls::{VcpuFd, VmFd};

/// IA32_APIC_BASE (SDM Vol 3A 11.4.4).
const IA32_APIC_BASE: u32 = 0x1B;

/// Where KVM_SET_TSS_ADDR puts the three pages VMX needs for real mode
/// without unrestricted guest: just below the BIOS area at the top of
/// 4 GiB, where no guest of this machine has memory.
const TSS_ADDR: usize = 0xFFFB_D000;

/// A new VM with its vCPU, before any memory is mapped.
pub(crate) struct Vm {
    pub vm: VmFd,
    pub vcpu: VcpuFd,
    /// KVM_CAP_READONLY_MEM: read-only slots (for a ROM).
    pub readonly_mem: bool,
    /// KVM_CAP_NR_MEMSLOTS: how many slots a VM may have.
    pub memslots: usize,
}

/// Opens /dev/kvm and makes the VM and its vCPU, with the machine's CPUID.
pub(crate) fn create(host: HostKind, apic_base: u64) -> Result<Vm, KvmError> {
    let kvm = host::open()?;
    let vm = kvm.create_vm().map_err(KvmError::ioctl("KVM_CREATE_VM"))?;
    let readonly_mem = kvm.check_extension(kvm_ioctls::Cap::ReadonlyMem);
    let memslots = kvm.get_nr_memslots();
    // Needed by VMX without unrestricted guest for real mode, so an error
    // there is one; elsewhere KVM ignores it (AMD), or may refuse it
    // (kvm-pvm), and nothing depends on it.
    match vm.set_tss_address(TSS_ADDR) {
        Err(e) if host == HostKind::Intel => {
            return Err(KvmError::ioctl("KVM_SET_TSS_ADDR")(e));
        }
        Ok(()) | Err(_) => {}
    }
    let vcpu = vm
        .create_vcpu(0)
        .map_err(KvmError::ioctl("KVM_CREATE_VCPU"))?;
    // The machine's fixed CPUID table, so the guest sees one CPU on every
    // engine.
    let entries: Vec<kvm_cpuid_entry2> = machine::x86::cpuid::entries()
        .into_iter()
        .map(|(function, index, r)| kvm_cpuid_entry2 {
            function,
            index,
            flags: 0,
            eax: r[0],
            ebx: r[1],
            ecx: r[2],
            edx: r[3],
            ..Default::default()
        })
        .collect();
    let cpuid = CpuId::from_entries(&entries).map_err(KvmError::too_long("CPUID table"))?;
    vcpu.set_cpuid2(&cpuid)
        .map_err(KvmError::ioctl("KVM_SET_CPUID2"))?;
    // The local APIC is the machine's (no in-kernel irqchip: its registers
    // arrive here as MMIO exits). KVM keeps IA32_APIC_BASE itself and
    // reports CPUID.01H:EDX.APIC from its global enable (bit 11), so it
    // starts as the machine's APIC is. A guest's later WRMSR stays in KVM
    // (the machine's APIC does not see it on this engine).
    vcpu::set_msrs(&vcpu, &[(IA32_APIC_BASE, apic_base)])?;
    Ok(Vm {
        vm,
        vcpu,
        readonly_mem,
        memslots,
    })
}
