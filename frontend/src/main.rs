//! The `ringlab` binary: everything is in the library (`lib.rs`), so the
//! integration tests can drive the same code.

fn main() -> std::process::ExitCode {
    ringlab::cli::main()
}
