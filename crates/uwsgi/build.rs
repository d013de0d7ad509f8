//! Declares the `fuzzing` cfg that cargo-fuzz sets, so `#[cfg(fuzzing)]` passes the
//! `unexpected_cfgs` lint (the workspace lints cannot be extended per crate).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(fuzzing)");
}
