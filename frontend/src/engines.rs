//! Choosing an engine by name (`session` creates it).

use machine::EngineError;

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
/// waits on a guest): Err names why there is none usable (no /dev/kvm,
/// no permission).
pub fn kvm_host() -> Result<engine_kvm::host::HostKind, String> {
    engine_kvm::host::open().map_err(|e| match e {
        EngineError::Unavailable(why) => why,
        other => other.to_string(),
    })?;
    Ok(engine_kvm::host::detect())
}
