//! Helpers shared by the C-ABI tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The SmolLM2 Q4_1 test model in the fetch cache (`TSHARP_MODEL_DIR`, or
/// `${XDG_CACHE_HOME:-~/.cache}/tensorsharp/models`).
pub fn model_path() -> PathBuf {
    let dir = std::env::var("TSHARP_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            let cache = std::env::var("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache"));
            cache.join("tensorsharp/models")
        });
    let p = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(p.exists(), "{} is missing: run scripts/fetch-models.sh", p.display());
    p
}

/// The target directory this test binary was built into (target/<profile>/deps/<test> → target).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .unwrap()
        .to_path_buf()
}

/// `cargo build --release <args>` into this test's target directory (a no-op when up to date);
/// returns target/release.
pub fn release_build(args: &[&str]) -> PathBuf {
    let target = target_dir();
    let st = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release"])
        .args(args)
        .arg("--target-dir")
        .arg(&target)
        .status()
        .expect("cargo");
    assert!(st.success(), "cargo build --release {args:?}");
    target.join("release")
}
