//! The KVM engine's errors, with their causes kept (the kvm-ioctls errno,
//! an io::Error) rather than flattened into strings, as Firecracker's
//! per-module `thiserror` enums do. Each one's text says only its own
//! level (the call that failed); the cause is its `source`, and whoever
//! shows the error prints the chain (`machine::Chain`). At the `Engine`
//! boundary they become the machine's `EngineError`, which keeps them
//! as its source: `From<KvmError> for EngineError`.

use machine::EngineError;
use std::sync::Arc;

/// Something the KVM engine could not do.
#[derive(Debug, thiserror::Error)]
pub enum KvmError {
    /// There is no /dev/kvm, or it is not ours to open: `why` says which
    /// and what to do about it. That is all its errno (ENOENT, EACCES or
    /// EPERM) says, so the errno is kept but not printed as a cause.
    #[error("{why}")]
    NoKvm {
        why: &'static str,
        errno: kvm_ioctls::Error,
    },
    /// /dev/kvm is there but cannot be opened, for another reason (the
    /// errno).
    #[error("cannot open /dev/kvm")]
    Open {
        #[source]
        source: kvm_ioctls::Error,
    },
    /// An ioctl on the VM or the vCPU failed. `call` names it (and what it
    /// was for, e.g. "KVM_SET_USER_MEMORY_REGION (slot 2 of 5, A20 open)").
    #[error("{call}")]
    Ioctl {
        call: String,
        #[source]
        source: kvm_ioctls::Error,
    },
    /// KVM_GET_MSRS or KVM_SET_MSRS did only the first `done` of `wanted`
    /// MSRs: KVM stops at the first one it refuses and says so only by the
    /// count.
    #[error("{call}: the host refused MSR {refused:#x} ({done} of {wanted} done)")]
    MsrRefused {
        call: &'static str,
        refused: u32,
        done: usize,
        wanted: usize,
    },
    /// A KVM structure with a variable-length array could not be built
    /// (more entries than KVM allows).
    #[error("{what}")]
    TooLong {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A host call outside KVM failed (the deadline timer).
    #[error("{call}")]
    Os {
        call: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The guest needs what this host's KVM cannot do (32-bit paging under
    /// kvm-pvm, a read-only ROM without KVM_CAP_READONLY_MEM).
    #[error("{0}")]
    Unsupported(String),
    /// The vCPU stopped in a way the engine cannot go on from (an entry
    /// failure, an internal error, an unknown exit); `state` is a dump of
    /// the registers for the report.
    #[error("{why}; vCPU state:\n{state}")]
    VcpuFailed { why: String, state: String },
    /// KVM keeps re-entering the vCPU without the instruction at CS:EIP
    /// retiring (`crate::stall`): the run would otherwise sit there until
    /// its timeout, the process busy in the kernel.
    #[error("{0}")]
    NoProgress(Box<crate::stall::Standstill>),
    /// `run`, `step` or `set_cpu_state` was handed a machine other than the
    /// one the engine was created for: KVM's memory slots point into that
    /// machine's RAM, so running on would let the guest use memory the
    /// engine does not own.
    #[error(
        "this KVM engine was created for another machine (its memory slots map RAM \
         #{bound_id} at {bound_at:#x}, {bound_len} bytes; this machine's RAM is #{got_id} at \
         {got_at:#x}, {got_len} bytes): create an engine for each machine"
    )]
    OtherMachine {
        bound_at: usize,
        bound_len: usize,
        got_at: usize,
        got_len: usize,
        bound_id: u64,
        got_id: u64,
    },
}

impl KvmError {
    /// An ioctl error, named for the call.
    pub(crate) fn ioctl(call: impl Into<String>) -> impl FnOnce(kvm_ioctls::Error) -> KvmError {
        let call = call.into();
        move |source| KvmError::Ioctl { call, source }
    }

    /// A too-long KVM array.
    pub(crate) fn too_long<E: std::error::Error + Send + Sync + 'static>(
        what: &'static str,
    ) -> impl FnOnce(E) -> KvmError {
        move |e| KvmError::TooLong {
            what,
            source: Box::new(e),
        }
    }
}

/// Into the machine's error: opening /dev/kvm is `Unavailable`, what the
/// guest needs but the host lacks is `Unsupported`, a machine mix-up is
/// `Internal`, the rest is `Host`, with this error as its source.
impl From<KvmError> for EngineError {
    fn from(e: KvmError) -> EngineError {
        match e {
            KvmError::NoKvm { why, .. } => EngineError::unavailable(why),
            KvmError::Open { source } => EngineError::Unavailable {
                why: "cannot open /dev/kvm".into(),
                source: Some(Arc::new(source)),
            },
            KvmError::Unsupported(why) => EngineError::Unsupported(why),
            e @ KvmError::OtherMachine { .. } => EngineError::Internal(e.to_string()),
            // The whole KvmError is the source: its errno (kvm-ioctls' or
            // the OS's) stays reachable through `Error::source`.
            e => EngineError::host(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use machine::Chain;
    use std::error::Error;

    #[test]
    fn ioctl_errors_keep_their_errno_and_print_it_once() {
        let e = KvmError::ioctl("KVM_GET_REGS")(kvm_ioctls::Error::new(libc::EBADF));
        let errno = e
            .source()
            .and_then(|s| s.downcast_ref::<kvm_ioctls::Error>())
            .map(|s| s.errno());
        assert_eq!(errno, Some(libc::EBADF));
        // Its own level; the errno is the cause.
        assert_eq!(e.to_string(), "KVM_GET_REGS");
        let os = kvm_ioctls::Error::new(libc::EBADF).to_string();
        assert_eq!(Chain(&e).to_string(), format!("KVM_GET_REGS: {os}"));
        let engine_error = EngineError::from(e);
        assert_eq!(engine_error.to_string(), "host error");
        assert_eq!(
            Chain(&engine_error).to_string(),
            format!("host error: KVM_GET_REGS: {os}"),
            "the machine's error carries the whole story, each part once"
        );
        // And the errno, through the chain: EngineError -> KvmError ->
        // kvm_ioctls::Error.
        let errno = engine_error
            .source()
            .and_then(|s| s.source())
            .and_then(|s| s.downcast_ref::<kvm_ioctls::Error>())
            .map(|s| s.errno());
        assert_eq!(errno, Some(libc::EBADF));
    }

    #[test]
    fn each_kind_maps_to_its_engine_error() {
        let none = KvmError::NoKvm {
            why: "there is no /dev/kvm",
            errno: kvm_ioctls::Error::new(libc::ENOENT),
        };
        assert_eq!(
            EngineError::from(none),
            EngineError::unavailable("there is no /dev/kvm")
        );
        // Another errno: unavailable, with the errno as the cause.
        let busy = EngineError::from(KvmError::Open {
            source: kvm_ioctls::Error::new(libc::EBUSY),
        });
        assert!(matches!(busy, EngineError::Unavailable { .. }), "{busy:?}");
        assert_eq!(
            Chain(&busy).to_string(),
            format!(
                "engine unavailable: cannot open /dev/kvm: {}",
                kvm_ioctls::Error::new(libc::EBUSY)
            )
        );
        assert_eq!(
            EngineError::from(KvmError::Unsupported("no paging".into())),
            EngineError::Unsupported("no paging".into())
        );
        let other = KvmError::OtherMachine {
            bound_at: 0x1000,
            bound_len: 4096,
            got_at: 0x2000,
            got_len: 4096,
            bound_id: 1,
            got_id: 2,
        };
        assert!(matches!(EngineError::from(other), EngineError::Internal(s)
            if s.starts_with("this KVM engine was created for another machine")));
        let failed = KvmError::VcpuFailed {
            why: "unexpected VM exit: KVM_EXIT_NMI".into(),
            state: "  at 0008:00001000\n".into(),
        };
        let e = EngineError::from(failed);
        assert!(matches!(e, EngineError::Host { .. }), "{e:?}");
        assert_eq!(
            Chain(&e).to_string(),
            "host error: unexpected VM exit: KVM_EXIT_NMI; vCPU state:\n  at 0008:00001000\n"
        );
        let short = KvmError::MsrRefused {
            call: "KVM_SET_MSRS",
            refused: 0x174,
            done: 0,
            wanted: 3,
        };
        assert_eq!(
            short.to_string(),
            "KVM_SET_MSRS: the host refused MSR 0x174 (0 of 3 done)"
        );
    }
}
