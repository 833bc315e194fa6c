//! Which KVM this host has, and opening /dev/kvm with errors that say why
//! it failed.

use crate::error::KvmError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostKind {
    /// Intel VT-x.
    Intel,
    /// AMD-V (SVM).
    Amd,
    /// kvm-pvm: a software hypervisor for nested clouds (no 32-bit paging,
    /// no ring changes in unpaged protected mode).
    Pvm,
    Unknown,
}

impl HostKind {
    pub fn name(self) -> &'static str {
        match self {
            HostKind::Intel => "kvm_intel",
            HostKind::Amd => "kvm_amd",
            HostKind::Pvm => "kvm-pvm",
            HostKind::Unknown => "unknown KVM",
        }
    }
}

/// Looks at the loaded modules.
pub fn detect() -> HostKind {
    let has = |m: &str| std::path::Path::new(&format!("/sys/module/{m}")).exists();
    if has("kvm_pvm") {
        HostKind::Pvm
    } else if has("kvm_intel") {
        HostKind::Intel
    } else if has("kvm_amd") {
        HostKind::Amd
    } else {
        HostKind::Unknown
    }
}

/// Opens /dev/kvm; the error says why it cannot be (`KvmError::NoKvm`,
/// what to do about it), or keeps the errno (`KvmError::Open`).
pub fn open() -> Result<kvm_ioctls::Kvm, KvmError> {
    kvm_ioctls::Kvm::new().map_err(|errno| {
        let why = match errno.errno() {
            libc::ENOENT => {
                "there is no /dev/kvm: KVM is not available on this host (no \
                 kvm_intel/kvm_amd module, or a virtual machine without nested \
                 virtualization)"
            }
            libc::EACCES | libc::EPERM => {
                "permission denied on /dev/kvm: add your user to the `kvm` group \
                 (sudo adduser $USER kvm) and log in again"
            }
            _ => return KvmError::Open { source: errno },
        };
        KvmError::NoKvm { why, errno }
    })
}

/// The hypervisor this host itself runs under, from CPUID leaf 0x40000000
/// (the 12-byte signature: "KVMKVMKVM", "TCGTCGTCGTCG" for QEMU's TCG,
/// "Microsoft Hv", ...), or None on bare metal. Under QEMU's TCG the "real
/// CPU" that KVM runs guests on is QEMU's x86 emulation, with its known
/// departures from the SDM (see tests/src/guest.rs).
pub fn hypervisor_signature() -> Option<String> {
    let l1 = std::arch::x86_64::__cpuid(1);
    if l1.ecx & (1 << 31) == 0 {
        return None;
    }
    // Leaf 0x40000000 is reserved for hypervisors (CPUID.1:ECX bit 31).
    let r = std::arch::x86_64::__cpuid(0x4000_0000);
    let bytes: Vec<u8> = [r.ebx, r.ecx, r.edx]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .filter(|&b| b != 0)
        .collect();
    Some(String::from_utf8_lossy(&bytes).into_owned())
}
