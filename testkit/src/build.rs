//! The target directory of the running test and builds into it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The target directory this test binary was built into (target/<profile>/deps/<test> → target).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .expect("a test binary lives in target/<profile>/deps")
        .to_path_buf()
}

/// The output directory of the running test's build (target/<profile>, or
/// target/<triple>/<profile> when cross-compiled): where cargo has put, before running an
/// integration test, its own package's library in every crate type it declares (libtensorsharp.a
/// and .so for the C-ABI tests) and, in a workspace run, the workspace's binaries.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("a test binary lives in <profile>/deps")
        .to_path_buf()
}

/// An artifact of this test's own build, unless another profile was asked for with
/// `TSHARP_BUILD_PROFILE`: `profile_dir()/deps/name` (where `cargo test` writes every crate type
/// of the package's own library — libtensorsharp.a and .so for the C-ABI tests — without
/// copying them up), else `profile_dir()/name` (the workspace's binaries, which it does copy
/// up). Otherwise `cargo build <args>` with that profile, which compiles again whatever the
/// narrower feature set of a single-package build changes (the proc-macro crates and everything
/// above them: half a minute or more on two cores).
pub fn built_artifact(name: &str, args: &[&str]) -> PathBuf {
    if std::env::var_os("TSHARP_BUILD_PROFILE").is_none() {
        let dir = profile_dir();
        for p in [dir.join("deps").join(name), dir.join(name)] {
            if p.exists() {
                return p;
            }
        }
    }
    test_build(args).join(name)
}

/// `cargo build --profile <profile> <args>` into this test's target directory (a no-op when up
/// to date); returns the profile's output directory. The `test` profile shares its directory
/// (`debug`) and its optimisation settings with the test build, so it reuses what that built.
pub fn cargo_build(profile: &str, args: &[&str]) -> PathBuf {
    let target = target_dir();
    let st = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--profile", profile])
        .args(args)
        .arg("--target-dir")
        .arg(&target)
        .status()
        .expect("cargo");
    assert!(st.success(), "cargo build --profile {profile} {args:?}");
    target.join(match profile {
        "dev" | "test" => "debug",
        "bench" => "release",
        p => p,
    })
}

/// `cargo build --release <args>` into this test's target directory; returns target/release.
pub fn release_build(args: &[&str]) -> PathBuf {
    cargo_build("release", args)
}

/// `cargo build` with the profile of the test build (`TSHARP_BUILD_PROFILE`, default `test`:
/// the artifacts `cargo test` has just built are reused, where a release build would compile
/// the workspace a second time); returns the profile's output directory.
pub fn test_build(args: &[&str]) -> PathBuf {
    let profile = std::env::var("TSHARP_BUILD_PROFILE").unwrap_or_else(|_| "test".into());
    cargo_build(&profile, args)
}
