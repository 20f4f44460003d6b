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

/// Compiles the heap-call counting shim (`tests/tools/malloc_count.c`, an LD_PRELOAD library)
/// into `dir` with the system C compiler.
pub fn build_malloc_shim(dir: &std::path::Path) -> std::path::PathBuf {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/malloc_count.c");
    let lib = dir.join("libmalloc_count.so");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let st = std::process::Command::new(&cc)
        .args(["-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&lib)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| panic!("{cc}: {e}"));
    assert!(st.success(), "{cc} could not build {}", src.display());
    lib
}
