//! The KVM engine's errors, with their causes kept (the kvm-ioctls errno,
//! an io::Error) rather than flattened into strings, as Firecracker's
//! per-module `thiserror` enums do. At the `Engine` boundary they become
//! the machine's `EngineError`, whose text is what users and tests see:
//! `From<KvmError> for EngineError` keeps that text as it always was.

use machine::EngineError;

/// Something the KVM engine could not do.
#[derive(Debug, thiserror::Error)]
pub enum KvmError {
    /// /dev/kvm cannot be opened; `why` says what to do about it.
    #[error("{why}")]
    Open {
        why: String,
        #[source]
        source: kvm_ioctls::Error,
    },
    /// An ioctl on the VM or the vCPU failed. `call` names it (and what it
    /// was for, e.g. "KVM_SET_USER_MEMORY_REGION (slot 2 of 5, A20 open)").
    #[error("{call}: {source}")]
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
    #[error("{what}: {source:?}")]
    TooLong {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A host call outside KVM failed (the deadline timer).
    #[error("{call}: {source}")]
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

/// Into the machine's error, with the text it always had: opening
/// /dev/kvm is `Unavailable`, what the guest needs but the host lacks is
/// `Unsupported`, a machine mix-up is `Internal`, the rest is `Host`.
impl From<KvmError> for EngineError {
    fn from(e: KvmError) -> EngineError {
        match e {
            KvmError::Open { why, .. } => EngineError::Unavailable(why),
            KvmError::Unsupported(why) => EngineError::Unsupported(why),
            e @ KvmError::OtherMachine { .. } => EngineError::Internal(e.to_string()),
            // The whole KvmError is the source: its errno (kvm-ioctls' or
            // the OS's) stays reachable through `Error::source`.
            e => EngineError::host(e.to_string(), e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    #[test]
    fn ioctl_errors_keep_their_errno_and_their_text() {
        let e = KvmError::ioctl("KVM_GET_REGS")(kvm_ioctls::Error::new(libc::EBADF));
        let errno = e
            .source()
            .and_then(|s| s.downcast_ref::<kvm_ioctls::Error>())
            .map(|s| s.errno());
        assert_eq!(errno, Some(libc::EBADF));
        let text = e.to_string();
        assert!(text.starts_with("KVM_GET_REGS: "), "{text}");
        let engine_error = EngineError::from(e);
        assert_eq!(
            engine_error.to_string(),
            format!("host error: {text}"),
            "the machine's error carries the same text"
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
        let open = KvmError::Open {
            why: "there is no /dev/kvm".into(),
            source: kvm_ioctls::Error::new(libc::ENOENT),
        };
        assert_eq!(
            EngineError::from(open),
            EngineError::Unavailable("there is no /dev/kvm".into())
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
            e.to_string(),
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
