//! The C ABI from real C: `examples/generate.c` and `tests/c/abuse.c` compiled with the system C
//! compiler against `include/tensorsharp.h` and the static library, linked, and run on the test
//! model; the C client's greedy tokens equal the runtime's; every misuse case returns its
//! documented status; under valgrind (when installed) memcheck finds no leaks or invalid accesses.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use tensorsharp_runtime::sampler::argmax;
use tensorsharp_runtime::{Model, Session, SessionParams};

/// The static library: `TSHARP_FFI_LIB`, or the libtensorsharp.a cargo built for this test
/// (`TSHARP_BUILD_PROFILE=release` for a release build).
fn static_lib() -> PathBuf {
    if let Ok(p) = std::env::var("TSHARP_FFI_LIB") {
        return p.into();
    }
    common::built_artifact("libtensorsharp.a", &["-p", "tensorsharp-ffi"])
}

/// Installs the library with `ffi/install.sh` into a fresh prefix (once per test process).
fn installed_prefix() -> PathBuf {
    static PREFIX: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PREFIX
        .get_or_init(|| {
            let lib = static_lib();
            assert!(lib.exists(), "{} not built", lib.display());
            let prefix = std::env::temp_dir().join(format!("tsharp-ffi-{}-prefix", std::process::id()));
            let root = Path::new(env!("CARGO_MANIFEST_DIR"));
            let st = Command::new(root.join("install.sh"))
                .arg(&prefix)
                .arg("--no-build")
                .arg("--lib-dir")
                .arg(lib.parent().unwrap())
                .status()
                .expect("ffi/install.sh");
            assert!(st.success(), "ffi/install.sh");
            prefix
        })
        .clone()
}

fn pkg_config(prefix: &Path, args: &[&str]) -> Vec<String> {
    let out = Command::new("pkg-config")
        .args(args)
        .arg("tensorsharp")
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
        .output()
        .expect("pkg-config (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "pkg-config {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// Compiles a C file against the installed header and library found through pkg-config:
/// statically linked (`shared == false`) or against libtensorsharp.so.1.
fn compile(src: &str, out: &str, shared: bool) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let prefix = installed_prefix();
    let exe = std::env::temp_dir().join(format!("tsharp-ffi-{}-{out}", std::process::id()));
    let mut cc = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    cc.args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-g", "-D_DEFAULT_SOURCE"])
        .args(pkg_config(&prefix, &["--cflags"]))
        .arg(root.join(src));
    if shared {
        cc.args(pkg_config(&prefix, &["--libs"]))
            .arg(format!("-Wl,-rpath,{}", prefix.join("lib").display()));
    } else {
        cc.arg("-Wl,-Bstatic")
            .args(pkg_config(&prefix, &["--libs"]))
            .arg("-Wl,-Bdynamic");
    }
    let st = cc
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&exe)
        .status()
        .expect("a C compiler (cc)");
    assert!(st.success(), "compiling {src}");
    exe
}

fn greedy_reference(model: &Path, prompt: &str, n: usize) -> Vec<u32> {
    let m = Arc::new(Model::load(model).unwrap());
    let ids = m.tokenizer().tokenize(prompt, true, true);
    let mut s = Session::new(
        Arc::clone(&m),
        SessionParams {
            n_ctx: 512,
            n_threads: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let mut next = argmax(s.prefill(&ids).unwrap());
    let mut out = Vec::new();
    while out.len() < n && !m.tokenizer().is_eog(next) {
        out.push(next);
        next = argmax(s.decode(next).unwrap());
    }
    out
}

/// The tokens `tsharp run --temp 0 --json` generates (the binary of the test build: the one a
/// workspace test run has just built, or built here when missing).
fn tsharp_run_tokens(model: &Path, prompt: &str, n: usize) -> Vec<u32> {
    let tsharp = common::built_artifact("tsharp", &["-p", "tensorsharp", "--bin", "tsharp"]);
    let out = Command::new(tsharp)
        .arg("run")
        .arg("-m")
        .arg(model)
        .args([
            "-p",
            prompt,
            "-n",
            &n.to_string(),
            "--temp",
            "0",
            "-t",
            "2",
            "--ctx",
            "512",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let j = String::from_utf8_lossy(&out.stdout);
    let toks = j
        .split("\"tokens\":[")
        .nth(1)
        .and_then(|s| s.split(']').next())
        .expect("tokens in the JSON");
    toks.split(',')
        .filter(|t| !t.is_empty())
        .map(|t| t.trim().parse().unwrap())
        .collect()
}

fn parse_tokens(stderr: &str) -> Vec<u32> {
    let line = stderr.lines().find(|l| l.starts_with("tokens:")).expect("tokens line");
    line["tokens:".len()..]
        .split_whitespace()
        .map(|t| t.parse().unwrap())
        .collect()
}

#[test]
fn generate_c_matches_the_runtime_and_runs_clean() {
    let exe = compile("examples/generate.c", "generate", false);
    let model = common::model_path();
    let prompt = "The capital of France is";
    let out = Command::new(&exe).arg(&model).arg(prompt).arg("16").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with(" Paris"), "{stdout:?}");
    assert_eq!(parse_tokens(&stderr), greedy_reference(&model, prompt, 16));
    assert_eq!(
        parse_tokens(&stderr),
        tsharp_run_tokens(&model, prompt, 16),
        "vs tsharp run --temp 0"
    );

    // The same program against the shared library: same tokens; the soname carries the ABI.
    let dyn_exe = compile("examples/generate.c", "generate-shared", true);
    let out = Command::new(&dyn_exe)
        .arg(&model)
        .arg(prompt)
        .arg("16")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        parse_tokens(&String::from_utf8_lossy(&out.stderr)),
        greedy_reference(&model, prompt, 16)
    );
    let so = installed_prefix().join("lib/libtensorsharp.so.1");
    let readelf = Command::new("readelf").arg("-d").arg(&so).output().unwrap();
    assert!(
        String::from_utf8_lossy(&readelf.stdout).contains("[libtensorsharp.so.1]"),
        "soname"
    );
    // Installed stripped by default; --split-debug keeps the debug info in a linked file.
    let sections = |f: &Path| {
        let out = Command::new("readelf").arg("-S").arg(f).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(
        !sections(&so).contains(".debug_info"),
        "the installed library has debug info"
    );
    let lib = static_lib();
    let split = std::env::temp_dir().join(format!("tsharp-ffi-{}-split", std::process::id()));
    let st = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh"))
        .arg(&split)
        .args(["--no-build", "--split-debug", "--lib-dir"])
        .arg(lib.parent().unwrap())
        .status()
        .unwrap();
    assert!(st.success(), "install.sh --split-debug");
    let split_so = split.join("lib/libtensorsharp.so.1");
    assert!(sections(&split_so).contains(".gnu_debuglink") && !sections(&split_so).contains(".debug_info"));
    assert!(sections(&split.join("lib/debug/libtensorsharp.so.1.debug")).contains(".debug_info"));
    let _ = std::fs::remove_dir_all(&split);

    // valgrind memcheck: no leaks, no invalid reads or writes.
    if Command::new("valgrind").arg("--version").output().is_ok() {
        let out = Command::new("valgrind")
            .args([
                "--error-exitcode=97",
                "--leak-check=full",
                "--errors-for-leak-kinds=definite,indirect",
                "-q",
            ])
            .arg(&exe)
            .arg(&model)
            .arg(prompt)
            .arg("3")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "valgrind: {stderr}");
    } else {
        eprintln!("valgrind not installed: memcheck skipped (scripts/setup.sh installs it)");
    }
}

#[test]
fn misuse_from_c_returns_documented_statuses() {
    let exe = compile("tests/c/abuse.c", "abuse", false);
    let not_model = std::env::temp_dir().join(format!("tsharp-ffi-{}-not-a-model.gguf", std::process::id()));
    std::fs::write(&not_model, b"definitely not a GGUF file, just some bytes to read").unwrap();
    let out = Command::new(&exe)
        .arg(common::model_path())
        .arg(&not_model)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("0 failures"), "{stdout}");
}
