//! The CLI under careless use (issue 18): a closed or full standard output, an empty stop
//! string, a subnormal temperature, and paths that are not model files (a device, a FIFO with no
//! writer, a directory). Each ends with a clear message or the right output, never a panic or a
//! hang.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn smollm2() -> String {
    common::model_dir()
        .join("SmolLM2-135M-Instruct.Q4_1.gguf")
        .to_string_lossy()
        .into_owned()
}

/// Starts `tsharp args` with its output piped.
fn spawn(args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_tsharp"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for `child`, failing the test if it has not ended within `limit`.
fn wait_within(mut child: std::process::Child, limit: Duration, what: &str) -> std::process::Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            child.kill().ok();
            panic!("{what} still running after {limit:?} (blocked?)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Runs `tsharp args`, failing the test if it has not ended within `limit`.
fn run_within(args: &[&str], limit: Duration) -> std::process::Output {
    wait_within(spawn(args), limit, &format!("tsharp {args:?}"))
}

fn assert_clean_failure(out: &std::process::Output, args: &[&str], needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "tsharp {args:?}: {err}");
    assert!(!err.contains("panicked"), "tsharp {args:?} panicked: {err}");
    assert!(
        err.contains("tsharp: error:") && err.contains(needle),
        "tsharp {args:?}: expected {needle:?} in: {err}"
    );
}

#[test]
fn a_closed_stdout_ends_quietly_and_a_full_one_is_an_error() {
    let m = smollm2();
    let commands: [&[&str]; 4] = [
        &["kernels"],
        &["tokenize", "-m", &m, "The capital of France is"],
        &["detokenize", "-m", &m, "504", "3575"],
        &["plan", "-m", &m, "--ctx", "256"],
    ];
    for args in commands {
        // The reader is gone before the first write (`tsharp ... | head -c0`): EPIPE.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_tsharp"))
            .args(args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "tsharp {args:?} | (closed): {err}");
        assert_eq!(out.status.code(), Some(0), "tsharp {args:?} | (closed): {err}");
        // A full disk is a real error: a message and status 1.
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_tsharp"))
            .args(args)
            .stdout(full)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_clean_failure(&out, args, "No space left on device");
    }
}

#[test]
fn an_empty_stop_string_is_refused() {
    let m = smollm2();
    let args = ["run", "-m", &m, "-p", "hi", "-n", "4", "--stop", ""];
    let out = run_within(&args, Duration::from_secs(60));
    assert_clean_failure(&out, &args, "stop");
}

#[test]
fn a_subnormal_temperature_acts_as_greedy() {
    let m = smollm2();
    let base = ["run", "-m", &m, "-p", "The capital of France is", "-n", "8", "--json"];
    let greedy = common::tsharp_json(&[&base[..], &["--temp", "0"]].concat());
    for seed in ["1", "2", "3"] {
        let args = [
            &base[..],
            &[
                "--temp", "1e-40", "--top-k", "0", "--top-p", "1", "--min-p", "0", "--seed", seed,
            ],
        ]
        .concat();
        let j = common::tsharp_json(&args);
        assert_eq!(j["tokens"], greedy["tokens"], "--temp 1e-40 --seed {seed}");
    }
}

#[test]
fn paths_that_are_not_model_files_are_named_as_such() {
    let dir = std::env::temp_dir().join(format!("tsharp-cli-misuse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo: PathBuf = dir.join("model.fifo");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    let fifo = fifo.to_string_lossy().into_owned();
    let d = dir.to_string_lossy().into_owned();
    for (path, kind) in [
        ("/dev/zero", "character device"),
        (fifo.as_str(), "FIFO"),
        (d.as_str(), "directory"),
    ] {
        for cmd in [
            vec!["run", "-m", path, "-p", "hi", "-n", "1"],
            vec!["info", path],
            vec!["tokenize", "-m", path, "hi"],
        ] {
            let out = run_within(&cmd, Duration::from_secs(30));
            assert_clean_failure(&out, &cmd, "not a regular file");
            assert_clean_failure(&out, &cmd, kind);
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_64_kib_main_stack_still_runs() {
    // `ulimit -s 64` (some boards' init scripts): the command runs on a thread of its own stack.
    let m = smollm2();
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -s 64 && exec \"$0\" run -m \"$1\" -p 'The capital of France is' -n 4 --temp 0")
        .arg(env!("CARGO_BIN_EXE_tsharp"))
        .arg(&m)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ulimit -s 64: {:?} {err}", out.status);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Paris"), "{err}");
}

#[test]
fn a_model_file_truncated_under_mmap_is_an_error_not_sigbus() {
    use std::io::Read;
    let dir = std::env::temp_dir().join(format!("tsharp-cli-trunc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("model.gguf");
    std::fs::copy(smollm2(), &copy).unwrap();
    let c = copy.to_string_lossy().into_owned();
    let args = [
        "run",
        "--mmap",
        "-m",
        &c,
        "-p",
        "1, 2, 3, 4, 5,",
        "-n",
        "500",
        "--temp",
        "0",
    ];
    let mut child = spawn(&args);
    // Generation is running once the first text arrives; then the file shrinks under it.
    let mut first = [0u8; 1];
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&copy)
        .unwrap()
        .set_len(4096)
        .unwrap();
    let out = wait_within(child, Duration::from_secs(60), "tsharp after the truncation");
    assert_clean_failure(&out, &args, "truncated or rewritten while mapped");
    assert_clean_failure(&out, &args, &c);
    std::fs::remove_dir_all(&dir).ok();
}

/// `tsharp run` under `ulimit -v KIB`: Ok(stdout) or Err(stderr) for a clean failure; a signal
/// (the SIGABRT of a failed allocation) or any other status fails the test.
fn run_with_address_space(kib: u64) -> Result<String, String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v \"$2\" && exec \"$0\" run -m \"$1\" -p 'The capital of France is' -n 4 --temp 0")
        .arg(env!("CARGO_BIN_EXE_tsharp"))
        .arg(smollm2())
        .arg(kib.to_string())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "ulimit -v {kib}: {err}");
    match out.status.code() {
        Some(0) => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        Some(1) => {
            assert!(err.contains("tsharp: error:"), "ulimit -v {kib}: {err}");
            Err(err)
        }
        _ => panic!("ulimit -v {kib}: ended by {:?}: {err}", out.status),
    }
}

#[test]
fn address_space_limits_give_a_clear_error_never_an_abort() {
    // The smallest limit that runs (16 MiB steps), found by bisection; every probe on the way,
    // and the limits just below it, must fail cleanly or succeed.
    let (mut lo, mut hi) = (64u64 << 10, 8u64 << 20); // KiB: 64 MiB .. 8 GiB
    assert!(run_with_address_space(hi).is_ok(), "does not run under an 8 GiB limit");
    while hi - lo > 16 << 10 {
        let mid = (lo + hi) / 2;
        match run_with_address_space(mid) {
            Ok(_) => hi = mid,
            Err(_) => lo = mid,
        }
    }
    println!("smallest address-space limit that runs: about {} MiB", hi >> 10);
    let mut messages = Vec::new();
    for step in 1..=8u64 {
        let kib = hi.saturating_sub(step * (2 << 10));
        match run_with_address_space(kib) {
            Ok(out) => assert!(out.contains("Paris"), "ulimit -v {kib}: {out}"),
            Err(e) => messages.push(e),
        }
    }
    // The refusals name the limit (from the plan or the load check) or the failed allocation.
    for e in &messages {
        assert!(
            e.contains("address-space limit") || e.contains("out of memory") || e.contains("ulimit -v"),
            "{e}"
        );
    }
}
