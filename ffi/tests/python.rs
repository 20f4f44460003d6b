//! The Python binding (`ffi/python`, ctypes over libtensorsharp.so): `pip install`ed into a
//! scratch directory and run on the test model (`ffi/python/test_generate.py`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn shared_lib() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe.parent().and_then(Path::parent).and_then(Path::parent).unwrap();
    let st = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "-p", "tensorsharp-ffi", "--target-dir"])
        .arg(target)
        .status()
        .expect("cargo");
    assert!(st.success(), "building libtensorsharp");
    target.join("release/libtensorsharp.so")
}

#[test]
fn pip_installed_binding_generates_text() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = shared_lib();
    let site = std::env::temp_dir().join(format!("tsharp-py-{}", std::process::id()));
    let st = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "--no-deps", "--target"])
        .arg(&site)
        .arg(root.join("python"))
        .status()
        .expect("python3 with pip (scripts/setup.sh installs it)");
    assert!(st.success(), "pip install ffi/python");
    let model = std::env::var("TSHARP_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/tensorsharp/models"))
        .join("SmolLM2-135M-Instruct.Q4_1.gguf");
    let out = Command::new("python3")
        .arg(root.join("python/test_generate.py"))
        .arg(&model)
        .env("PYTHONPATH", &site)
        .env("TENSORSHARP_LIB", &lib)
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("ok: ' Paris"), "{stdout}");
}
