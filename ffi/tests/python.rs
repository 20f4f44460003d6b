//! The Python binding (`ffi/python`, ctypes over libtensorsharp.so): `pip install`ed into a
//! scratch directory and run on the test model (`ffi/python/test_generate.py`).

mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn pip_installed_binding_generates_text() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = common::built_artifact("libtensorsharp.so", &["-p", "tensorsharp-ffi"]);
    let site = std::env::temp_dir().join(format!("tsharp-py-{}", std::process::id()));
    let st = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "--no-deps", "--target"])
        .arg(&site)
        .arg(root.join("python"))
        .status()
        .expect("python3 with pip (scripts/setup.sh installs it)");
    assert!(st.success(), "pip install ffi/python");
    let model = common::model_path();
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
    assert!(stdout.starts_with("board: "), "{stdout}");
    assert!(stdout.contains("\nok: ' Paris"), "{stdout}");
}
