//! The `ringlab` binary's segments 2 MiB aligned, so that its text starts
//! on a huge page boundary (`hugetext.rs` moves it onto huge pages).

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,max-page-size=0x200000");
        println!("cargo:rustc-link-arg-bins=-Wl,-z,separate-code");
    }
}
