//! What the end-to-end tests of the `tsharp` crate share: the test support of
//! `tensorsharp-testkit`, and the `tsharp` binary of this build.
#![allow(dead_code, unused_imports)]

pub use tensorsharp_testkit::compare::cosine;
pub use tensorsharp_testkit::models::*;

/// Runs the `tsharp` binary of this build.
pub fn tsharp(args: &[&str]) -> std::process::Output {
    tensorsharp_testkit::cli::run(env!("CARGO_BIN_EXE_tsharp"), args)
}

/// Runs `tsharp` and parses its JSON output, failing with its stderr when it fails.
pub fn tsharp_json(args: &[&str]) -> serde_json::Value {
    tensorsharp_testkit::cli::run_json(env!("CARGO_BIN_EXE_tsharp"), args)
}
