//! The chat surface of the CLI (issue 19): `tsharp template` prints the reference renderings
//! exactly; `tsharp run --chat/--system` wraps the prompt in the template; `--prompt-cache`
//! reuses the prompt on the next run and refuses or rebuilds a bad file; `tsharp chat` used as a
//! person uses it, through a real pseudo-terminal: a question and its reply, Ctrl-C in the middle
//! of a reply, the arrow-key history, a multi-line message, /stats, Ctrl-D.

mod common;

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("tsharp-clichat-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn template_prints_the_reference_renderings_exactly() {
    let dir = scratch("template");
    let mut n = 0;
    for m in common::test_models() {
        let r = common::reference(&m);
        for (i, case) in r["chat"].as_array().unwrap().iter().enumerate() {
            let f = dir.join(format!("{}-{i}.json", m.reference));
            std::fs::write(&f, serde_json::to_string(case).unwrap()).unwrap();
            let out = common::tsharp(&["template", "-m", m.path.to_str().unwrap(), "-f", f.to_str().unwrap()]);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            assert_eq!(
                String::from_utf8(out.stdout).unwrap(),
                case["rendered"].as_str().unwrap()
            );
            n += 1;
        }
    }
    assert!(n >= 4);
    // Gemma 3 has no template: the Gemma built-in, the system text opening the user turn.
    let gemma = common::test_models()
        .into_iter()
        .find(|m| m.reference == "gemma3-270m-q4_k_m")
        .unwrap();
    let f = dir.join("gemma.json");
    std::fs::write(
        &f,
        r#"{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], "add_generation_prompt": false}"#,
    )
    .unwrap();
    let out = common::tsharp(&[
        "template",
        "-m",
        gemma.path.to_str().unwrap(),
        "-f",
        f.to_str().unwrap(),
    ]);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
    );
    // A malformed conversation and a broken template: one clear line, no panic.
    std::fs::write(&f, r#"{"messages": [{"content": "no role"}]}"#).unwrap();
    let out = common::tsharp(&[
        "template",
        "-m",
        gemma.path.to_str().unwrap(),
        "-f",
        f.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("message 0 has no string \"role\""),
        "{err}"
    );
    let t = dir.join("bad.jinja");
    std::fs::write(&t, "ok\n{% for m in messages %}\n{{ m.content + 1 }}\n{% endfor %}").unwrap();
    std::fs::write(&f, r#"{"messages": [{"role": "user", "content": "x"}]}"#).unwrap();
    let out = common::tsharp(&[
        "template",
        "-m",
        gemma.path.to_str().unwrap(),
        "-f",
        f.to_str().unwrap(),
        "--chat-template",
        t.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("line 3"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn run_chat_wraps_the_prompt_in_the_template() {
    let m = common::default_model();
    let j = common::tsharp_json(&[
        "run",
        "-m",
        m.to_str().unwrap(),
        "-p",
        "Hi",
        "--system",
        "Be brief.",
        "-n",
        "4",
        "--temp",
        "0",
        "--json",
    ]);
    let want = common::tsharp_json(&[
        "tokenize",
        "-m",
        m.to_str().unwrap(),
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    ]);
    assert_eq!(j["prompt_tokens"], want);
    assert_eq!(j["cached_tokens"], 0);
}

fn run_json(args: &[&str]) -> (bool, Value, String) {
    let out = common::tsharp(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let j = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.success(), j, stderr)
}

#[test]
fn prompt_cache_is_reused_and_bad_files_are_refused_or_rebuilt() {
    let dir = scratch("pcache");
    let cache = dir.join("p.cache");
    let m = common::default_model();
    let system = "You are the voice assistant of a kitchen robot. Keep answers short and safe. ".repeat(6);
    let args = |ctx: &'static str| -> Vec<String> {
        [
            "run",
            "-m",
            m.to_str().unwrap(),
            "--system",
            &system,
            "-p",
            "What can you cook?",
            "-n",
            "8",
            "--temp",
            "0",
            "--json",
            "--ctx",
            ctx,
            "--prompt-cache",
            cache.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let call = |ctx| {
        let a = args(ctx);
        run_json(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let (ok, cold, err) = call("512");
    assert!(ok, "{err}");
    assert_eq!(cold["cached_tokens"], 0);
    let n_prompt = cold["prompt_tokens"].as_array().unwrap().len();
    let (ok, warm, err) = call("512");
    assert!(ok, "{err}");
    assert_eq!(warm["cached_tokens"].as_u64().unwrap() as usize, n_prompt - 1);
    assert_eq!(warm["tokens"], cold["tokens"]);
    // Another context size: refused, naming the file; the file stays as it was.
    let before = std::fs::read(&cache).unwrap();
    let (ok, _, err) = call("256");
    assert!(
        !ok && err.contains("prompt-cache") && err.contains("context size"),
        "{err}"
    );
    assert_eq!(std::fs::read(&cache).unwrap(), before);
    // Damaged: a warning, the prompt prefilled, the file rebuilt (and then used again).
    let mut bad = before.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 1;
    std::fs::write(&cache, &bad).unwrap();
    let (ok, j, err) = call("512");
    assert!(ok && err.contains("rebuilding"), "{err}");
    assert_eq!((j["cached_tokens"].as_u64(), &j["tokens"]), (Some(0), &cold["tokens"]));
    std::fs::write(&cache, &before[..before.len() - 100]).unwrap();
    let (ok, _, err) = call("512");
    assert!(ok && err.contains("rebuilding"), "{err}");
    let (ok, j, err) = call("512");
    assert!(ok, "{err}");
    assert_eq!(j["cached_tokens"].as_u64().unwrap() as usize, n_prompt - 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn chat_file_json_parses_tool_calls() {
    // Qwen2.5 with the arm tools of the template test data: its greedy reply calls move_arm.
    let qwen = common::test_models()
        .into_iter()
        .find(|m| m.reference == "qwen2.5-coder-0.5b-q4_k_m")
        .unwrap();
    let data: Value = serde_json::from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/runtime/tests/data/chat_cases.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let case = data["template_cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["model"] == "qwen2.5-coder-0.5b-q4_k_m" && c.get("tools").is_some())
        .unwrap();
    let dir = scratch("tools");
    let f = dir.join("conv.json");
    std::fs::write(
        &f,
        serde_json::json!({"messages": case["messages"], "tools": case["tools"]}).to_string(),
    )
    .unwrap();
    let j = common::tsharp_json(&[
        "chat",
        "-m",
        qwen.path.to_str().unwrap(),
        "-f",
        f.to_str().unwrap(),
        "--json",
        "--temp",
        "0",
        "-n",
        "80",
    ]);
    assert_eq!(j["tool_calls"][0]["name"], "move_arm", "{j}");
    assert_eq!(j["tool_calls"][0]["arguments"]["joint"], "elbow", "{j}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A child process on a pseudo-terminal, as a person at a terminal runs it.
struct Pty {
    master: OwnedFd,
    child: std::process::Child,
    seen: Vec<u8>,
}

impl Pty {
    fn spawn(args: &[&str]) -> Pty {
        let ws = nix::pty::Winsize {
            ws_row: 40,
            ws_col: 120,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let p = nix::pty::openpty(Some(&ws), None).unwrap();
        let slave = p.slave;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tsharp"));
        cmd.args(args)
            .env("TERM", "xterm")
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        // SAFETY: only async-signal-safe calls between fork and exec: a new session whose
        // controlling terminal is the pty (stdin), so Ctrl-C typed there sends SIGINT.
        unsafe {
            cmd.pre_exec(|| {
                if nix::libc::setsid() < 0 || nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        Pty {
            master: p.master,
            child,
            seen: Vec::new(),
        }
    }

    fn send(&mut self, s: &str) {
        let mut f = std::fs::File::from(self.master.try_clone().unwrap());
        f.write_all(s.as_bytes()).unwrap();
    }

    /// Reads what arrives within `ms` milliseconds; false at end of output.
    fn read_some(&mut self, ms: u16) -> bool {
        let mut fds = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(&self.master),
            nix::poll::PollFlags::POLLIN,
        )];
        if nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms)).unwrap_or(0) > 0 {
            let mut buf = [0u8; 4096];
            match nix::unistd::read(self.master.as_raw_fd(), &mut buf) {
                Ok(0) | Err(_) => return false,
                Ok(n) => self.seen.extend_from_slice(&buf[..n]),
            }
        }
        true
    }

    /// Reads until the output is at least `n` bytes long.
    fn wait_len(&mut self, n: usize, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.seen.len() < n {
            assert!(
                Instant::now() < deadline && self.read_some(200),
                "waited {secs} s for {n} bytes of output:\n{}",
                String::from_utf8_lossy(&self.seen)
            );
        }
    }

    /// Reads until `pat` appears after byte `from` of the output; returns where it ends.
    fn expect_from(&mut self, from: usize, pat: &str, secs: u64) -> usize {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(at) = find(&self.seen[from.min(self.seen.len())..], pat.as_bytes()) {
                return from + at + pat.len();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "waited {secs} s for {pat:?}; output so far:\n{}",
                String::from_utf8_lossy(&self.seen)
            );
            if !self.read_some(left.as_millis().min(1000) as u16) {
                assert!(
                    find(&self.seen[from.min(self.seen.len())..], pat.as_bytes()).is_some(),
                    "the program ended before {pat:?}:\n{}",
                    String::from_utf8_lossy(&self.seen)
                );
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn chat_through_a_pseudo_terminal() {
    let m = common::default_model();
    let mut t = Pty::spawn(&[
        "chat",
        "-m",
        m.to_str().unwrap(),
        "--temp",
        "0",
        "-t",
        "2",
        "--ctx",
        "4096",
        "-n",
        "400",
    ]);
    let mut at = t.expect_from(0, "/help", 60);
    at = t.expect_from(at, "> ", 30);
    // A long reply, stopped by Ctrl-C once it is streaming: the program stays.
    t.send("Write a very long story about a robot who learns to cook. Make it at least twenty paragraphs.\r");
    let echo = t.expect_from(at, "paragraphs.", 10);
    t.wait_len(echo + 40, 60);
    t.send("\x03");
    at = t.expect_from(echo, "[stopped]", 30);
    at = t.expect_from(at, "> ", 10);
    // A question, its streamed reply, and the prompt again.
    t.send("What is the capital of France?\r");
    let echo = t.expect_from(at, "France?", 10);
    at = t.expect_from(echo, "> ", 120);
    let reply = String::from_utf8_lossy(&t.seen[echo..at]).into_owned();
    assert!(
        reply.chars().filter(|c| c.is_alphabetic()).count() > 3,
        "no reply: {reply:?}"
    );
    assert!(!reply.contains("[stopped]"));
    // /stats shows the prefix reuse of the last turn.
    t.send("/stats\r");
    at = t.expect_from(at, "cached", 10);
    at = t.expect_from(at, "> ", 10);
    // History: the up arrow brings back /stats.
    t.send("\x1b[A\r");
    at = t.expect_from(at, "cached", 10);
    at = t.expect_from(at, "> ", 10);
    // A multi-line message.
    t.send("\"\"\"\r");
    at = t.expect_from(at, ". ", 10);
    // (Each line after its prompt, as a person types: input typed ahead of a prompt is
    // discarded when the line editor takes the terminal.)
    t.send("Say yes\r");
    at = t.expect_from(at, "yes", 10);
    at = t.expect_from(at, ". ", 10);
    t.send("in one word.\"\"\"\r");
    at = t.expect_from(at, "word.", 10);
    at = t.expect_from(at, "> ", 120);
    // Ctrl-C at the prompt clears the line; the program stays.
    t.send("half a line");
    at = t.expect_from(at, "half a line", 10);
    t.send("\x03");
    at = t.expect_from(at, "> ", 10);
    let _ = at;
    // Ctrl-D leaves, with success.
    t.send("\x04");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = t.child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "tsharp chat did not exit on Ctrl-D");
        t.read_some(50);
    };
    assert!(status.success(), "{status:?}\n{}", String::from_utf8_lossy(&t.seen));
}
