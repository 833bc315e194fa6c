//! KVM's binary statistics for the vCPU (KVM_GET_STATS_FD, Linux 5.14;
//! Documentation/virt/kvm/api.rst, "KVM_GET_STATS_FD"): the counters KVM
//! keeps inside the kernel, which show what the vCPU does between the
//! exits user space sees. The watchdog (`crate::watchdog`) reads them to
//! tell a vCPU that KVM keeps re-entering without retiring an instruction
//! (page faults taken and instructions emulated climbing by the hundred
//! thousand a second, RIP standing still) from a guest that spins.
//!
//! The file: a header (`kvm_stats_header`), then `num_desc` descriptors
//! (`kvm_stats_desc`, each followed by a `name_size`-byte name), then the
//! data, one u64 (or `size` of them, for histograms) per descriptor at its
//! `offset` from `data_offset`. The descriptors are read once; each sample
//! is one `pread` of the data block.

use kvm_bindings::{kvm_stats_desc, kvm_stats_header};
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::FileExt;

/// KVM_GET_STATS_FD: _IO(KVMIO, 0xce).
const KVM_GET_STATS_FD: libc::c_ulong = 0xAECE;

/// The counters the watchdog looks at, by their names in the file.
const NAMES: [&str; 6] = [
    "exits",
    "signal_exits",
    "pf_taken",
    "pf_emulate",
    "insn_emulation",
    "insn_emulation_fail",
];

/// One sample of the counters in `NAMES` (a counter the kernel does not
/// have reads 0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    /// Every VM exit, handled in the kernel or not.
    pub exits: u64,
    /// Exits for a signal pending on the vCPU thread (ringlab's slice
    /// timer).
    pub signal_exits: u64,
    /// Page faults (shadow or nested) the kernel handled.
    pub pf_taken: u64,
    /// Page faults that needed the instruction emulated.
    pub pf_emulate: u64,
    /// Instructions KVM's emulator ran.
    pub insn_emulation: u64,
    /// Instructions KVM's emulator could not run.
    pub insn_emulation_fail: u64,
}

impl Counters {
    /// `self - earlier`, counter by counter (0 where one went back).
    pub fn since(&self, earlier: &Counters) -> Counters {
        Counters {
            exits: self.exits.saturating_sub(earlier.exits),
            signal_exits: self.signal_exits.saturating_sub(earlier.signal_exits),
            pf_taken: self.pf_taken.saturating_sub(earlier.pf_taken),
            pf_emulate: self.pf_emulate.saturating_sub(earlier.pf_emulate),
            insn_emulation: self.insn_emulation.saturating_sub(earlier.insn_emulation),
            insn_emulation_fail: self
                .insn_emulation_fail
                .saturating_sub(earlier.insn_emulation_fail),
        }
    }
}

/// The vCPU's statistics file, with where each counter of `NAMES` sits.
pub(crate) struct VcpuStats {
    file: File,
    data_offset: u64,
    data_len: usize,
    /// Byte offset in the data block of each counter of `NAMES`.
    at: [Option<usize>; NAMES.len()],
}

impl VcpuStats {
    /// Opens the statistics of the vCPU behind `vcpu_fd`; `None` where the
    /// kernel has none (before 5.14) or its layout is not as documented.
    pub fn open(vcpu_fd: &impl AsRawFd) -> Option<VcpuStats> {
        // SAFETY: KVM_GET_STATS_FD takes no argument and returns a new file
        // descriptor or -1; the vCPU fd is valid for the call.
        let fd = unsafe { libc::ioctl(vcpu_fd.as_raw_fd(), KVM_GET_STATS_FD, 0) };
        if fd < 0 {
            return None;
        }
        // SAFETY: `fd` was just returned to us by the kernel and nothing
        // else owns it: the File takes it over and closes it.
        let file = unsafe { File::from_raw_fd(fd) };
        let mut raw = [0u8; std::mem::size_of::<kvm_stats_header>()];
        file.read_exact_at(&mut raw, 0).ok()?;
        let word = |i: usize| u32::from_ne_bytes(raw[i * 4..i * 4 + 4].try_into().unwrap());
        // flags, name_size, num_desc, id_offset, desc_offset, data_offset
        let (name_size, num_desc, desc_offset, data_offset) = (word(1), word(2), word(4), word(5));
        let desc_len = std::mem::size_of::<kvm_stats_desc>() + name_size as usize;
        if num_desc == 0 || num_desc > 4096 || name_size > 4096 {
            return None;
        }
        let mut descs = vec![0u8; desc_len * num_desc as usize];
        file.read_exact_at(&mut descs, desc_offset as u64).ok()?;
        let mut at = [None; NAMES.len()];
        let mut data_len = 0usize;
        for d in descs.chunks_exact(desc_len) {
            // struct kvm_stats_desc: u32 flags; s16 exponent; u16 size;
            // u32 offset; u32 bucket_size; char name[].
            let size = u16::from_ne_bytes([d[6], d[7]]) as usize;
            let offset = u32::from_ne_bytes(d[8..12].try_into().unwrap()) as usize;
            let name = &d[std::mem::size_of::<kvm_stats_desc>()..];
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
            data_len = data_len.max(offset + size * 8);
            if let Some(i) = NAMES.iter().position(|n| n.as_bytes() == name) {
                if size == 1 {
                    at[i] = Some(offset);
                }
            }
        }
        // Without the exit count there is nothing to go on.
        at[0]?;
        Some(VcpuStats {
            file,
            data_offset: data_offset as u64,
            data_len,
            at,
        })
    }

    /// The counters now (one `pread`).
    pub fn read(&self) -> Option<Counters> {
        let mut data = vec![0u8; self.data_len];
        self.file.read_exact_at(&mut data, self.data_offset).ok()?;
        let get = |i: usize| {
            self.at[i]
                .map(|o| u64::from_ne_bytes(data[o..o + 8].try_into().unwrap()))
                .unwrap_or(0)
        };
        Some(Counters {
            exits: get(0),
            signal_exits: get(1),
            pf_taken: get(2),
            pf_emulate: get(3),
            insn_emulation: get(4),
            insn_emulation_fail: get(5),
        })
    }
}
