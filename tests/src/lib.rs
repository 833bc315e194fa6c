//! Helpers shared by ringlab's integration tests.
