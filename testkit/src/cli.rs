//! Running a built binary and reading its output.

use std::path::Path;
use std::process::Output;

/// Runs `exe` with `args` and returns its output (panics when it cannot start).
pub fn run(exe: impl AsRef<Path>, args: &[&str]) -> Output {
    let exe = exe.as_ref();
    std::process::Command::new(exe)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", exe.display()))
}

/// Runs `exe` and parses its standard output as JSON, failing with its stderr when it fails.
pub fn run_json(exe: impl AsRef<Path>, args: &[&str]) -> serde_json::Value {
    let out = run(&exe, args);
    assert!(
        out.status.success(),
        "{} {args:?}: {}",
        exe.as_ref().display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{} {args:?}: not JSON ({e}): {}",
            exe.as_ref().display(),
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Builds an argument list from string-like values (`args!["-m", path, "--ctx", 256]`).
#[macro_export]
macro_rules! args {
    ($($a:expr),* $(,)?) => {
        vec![$($a.to_string()),*]
    };
}

/// `&[String]` as `Vec<&str>` for [`run`] and [`run_json`].
pub fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}
