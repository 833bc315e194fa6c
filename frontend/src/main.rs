//! The `ringlab` binary: everything is in the library (`lib.rs`), so the
//! integration tests can drive the same code.

fn main() -> std::process::ExitCode {
    // First, while this is the only thread (see hugetext.rs).
    ringlab::hugetext::remap();
    ringlab::cli::main()
}
