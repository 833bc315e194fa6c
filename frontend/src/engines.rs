//! Choosing an engine by name (`session` creates it).

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineKind {
    /// The interpreter: every instruction decoded and executed in software.
    Interp,
    /// The binary translator: guest code translated to host code.
    Bt,
    /// Hardware-assisted virtualization through /dev/kvm.
    Kvm,
}

impl EngineKind {
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Interp => "interp",
            EngineKind::Bt => "bt",
            EngineKind::Kvm => "kvm",
        }
    }

    /// Whether the engine counts the instructions it runs (and so can
    /// stop at a count by itself); KVM runs the guest uncounted.
    pub fn counts_instructions(self) -> bool {
        self != EngineKind::Kvm
    }
}

/// Which KVM this host has, asked once and up front (before anything
/// waits on a guest): Err says why there is none usable (no /dev/kvm,
/// no permission, or the errno of opening it).
pub fn kvm_host() -> Result<engine_kvm::host::HostKind, engine_kvm::KvmError> {
    engine_kvm::host::open()?;
    Ok(engine_kvm::host::detect())
}
