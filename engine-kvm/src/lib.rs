//! The KVM engine: the guest on the real CPU through /dev/kvm.
//!
//! Not written yet (issue 4). Until it is, `create` answers with
//! `EngineError::Unavailable` so the frontend can say so clearly.

use machine::{Engine, EngineError, Machine};

/// Opens /dev/kvm and creates a VM over the machine's RAM.
pub fn create(_m: &mut Machine) -> Result<Box<dyn Engine>, EngineError> {
    Err(EngineError::Unavailable(
        "the KVM engine is not implemented yet (issue 4); use --engine interp".into(),
    ))
}
