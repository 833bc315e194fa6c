//! Settings shared by the fuzz targets (tests/tests/fuzz_*.rs).
//!
//! Each target runs a number of cases small enough for CI (the whole of a
//! fuzz binary takes seconds in release). Two environment variables of
//! proptest's own make a longer or a different run:
//!
//! - `PROPTEST_CASES=N`: N cases per target instead (a soak);
//! - `PROPTEST_RNG_SEED=S`: another sequence of cases. Without it the
//!   targets start from [`DEFAULT_SEED`], so a CI run depends only on the
//!   code: a failure there is a change's doing, never the luck of the draw,
//!   and replays exactly.
//!
//! A failure prints the input proptest shrank it to; the bugs found so far
//! are kept as named regression tests next to their targets.

use proptest::test_runner::{Config, RngSeed};

/// The seed of CI's runs ("ringlab!").
pub const DEFAULT_SEED: u64 = u64::from_be_bytes(*b"ringlab!");

/// Cases per target: `PROPTEST_CASES`, else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The runner's configuration for a target whose CI run has `default`
/// cases. No failure files: the failures found are named tests.
pub fn config(default: u32) -> Config {
    let mut c = Config {
        cases: cases(default),
        failure_persistence: None,
        ..Config::default()
    };
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        c.rng_seed = RngSeed::Fixed(DEFAULT_SEED);
    }
    c
}

/// True when a target runs at least its CI cases: its checks that the
/// generators reached every path it aims at (counts of outcomes) only
/// hold for a run that long.
pub fn full_run(default: u32) -> bool {
    cases(default) >= default
}
