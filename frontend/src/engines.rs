//! Choosing and creating an engine by name.

use machine::{Engine, EngineError, Machine};

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
}

/// Creates the engine over machine `m`.
pub fn create(kind: EngineKind, m: &mut Machine) -> Result<Box<dyn Engine>, EngineError> {
    create_with(kind, m, false)
}

/// Creates the engine; `deprivilege` selects the interpreter's
/// trap-and-emulate mode.
pub fn create_with(
    kind: EngineKind,
    m: &mut Machine,
    deprivilege: bool,
) -> Result<Box<dyn Engine>, EngineError> {
    match kind {
        EngineKind::Interp => {
            let mut i = engine_interp::Interp::new();
            i.set_deprivilege(deprivilege);
            Ok(Box::new(i))
        }
        EngineKind::Bt => engine_bt::create(m),
        EngineKind::Kvm => engine_kvm::create(m),
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
