//! Helpers shared by ringlab's integration tests.
pub mod guest;
