//! The binary translator engine.
//!
//! Not written yet (issue 6). Until it is, `create` answers with
//! `EngineError::Unavailable` so the frontend can say so clearly.

use machine::{Engine, EngineError, Machine};

/// Creates a translator over the machine.
pub fn create(_m: &mut Machine) -> Result<Box<dyn Engine>, EngineError> {
    Err(EngineError::Unavailable(
        "the binary translator is not implemented yet (issue 6); use --engine interp".into(),
    ))
}
