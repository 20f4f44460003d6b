//! `tsharp run` end to end through the real binary: the README's command on the default model,
//! the JSON output, reproducible sampling across runs and thread counts, stop strings, and the
//! error paths (malformed, truncated or non-GGUF model files, an unknown architecture, a prompt
//! longer than the context, out-of-range parameters): a clear message, a non-zero exit, no panic.

mod common;

use std::path::PathBuf;

use tensorsharp_models::{GgmlType, GgufWriter, MetaValue};

fn smollm2() -> PathBuf {
    common::model_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// Asserts a clean failure: non-zero exit, an error line naming `needle`, no panic.
fn assert_fails(args: &[&str], needle: &str) {
    let out = common::tsharp(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "tsharp {args:?} succeeded");
    assert_eq!(out.status.code(), Some(1), "tsharp {args:?}: {err}");
    assert!(!err.contains("panicked"), "tsharp {args:?} panicked: {err}");
    assert!(err.contains("tsharp: error:"), "tsharp {args:?}: {err}");
    assert!(
        err.to_lowercase().contains(&needle.to_lowercase()),
        "tsharp {args:?}: expected {needle:?} in: {err}"
    );
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tsharp-cli-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn readme_command_on_the_default_model_says_paris() {
    // No -m: the default model (fetched by scripts/setup.sh, or on first use).
    let out = common::tsharp(&[
        "run",
        "-p",
        "The capital of France is",
        "-n",
        "12",
        "--temp",
        "0",
        "-t",
        "2",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.starts_with(" Paris"), "{stdout:?}");
    // Timings on stderr.
    assert!(stderr.contains("tok/s") && stderr.contains("load"), "{stderr}");
}

#[test]
fn json_output_matches_the_reference_greedy_tokens() {
    let r = common::reference(&common::test_models()[0]);
    let case = &r["greedy"][0];
    let prompt = case["prompt"].as_str().unwrap();
    let want: Vec<u64> = case["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap())
        .collect();
    let first_tie = case["steps"]
        .as_array()
        .unwrap()
        .iter()
        .position(|s| s["margin"].as_f64().unwrap() < 0.05);
    let n = first_tie.unwrap_or(want.len()).min(16);
    let m = smollm2();
    let n_str = n.to_string();
    let args = [
        "run",
        "-m",
        m.to_str().unwrap(),
        "-p",
        prompt,
        "-n",
        &n_str,
        "--temp",
        "0",
        "-t",
        "2",
        "--json",
    ];
    let j = common::tsharp_json(&args);
    assert_eq!(j["prompt_tokens"], case["prompt_tokens"]);
    let got: Vec<u64> = j["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap())
        .collect();
    assert_eq!(got, want[..n.min(want.len())]);
    // The zero-copy mapping gives the same tokens as the default resident weights.
    let mapped = common::tsharp_json(&[&args[..], &["--mmap"]].concat());
    assert_eq!(mapped["tokens"], j["tokens"]);
    assert!(j["text"].as_str().is_some());
    for k in ["load_ms", "prompt_tokens_per_s", "gen_tokens_per_s"] {
        assert!(j["timings"][k].as_f64().unwrap() > 0.0, "{k}: {j}");
    }
}

#[test]
fn same_seed_same_tokens_across_runs_and_thread_counts() {
    let m = smollm2();
    let sample = |threads: &str, seed: &str| {
        let j = common::tsharp_json(&[
            "run",
            "-m",
            m.to_str().unwrap(),
            "-p",
            "Once upon a time",
            "-n",
            "24",
            "-t",
            threads,
            "--seed",
            seed,
            "--temp",
            "0.9",
            "--top-k",
            "50",
            "--top-p",
            "0.95",
            "--min-p",
            "0.02",
            "--repeat-penalty",
            "1.1",
            "--presence-penalty",
            "0.1",
            "--frequency-penalty",
            "0.1",
            "--json",
        ]);
        j["tokens"].as_array().unwrap().clone()
    };
    let a = sample("1", "7");
    assert_eq!(a.len(), 24);
    assert_eq!(a, sample("1", "7"), "same seed, same thread count");
    assert_eq!(a, sample("2", "7"), "same seed, 1 vs 2 threads");
    let others: Vec<_> = ["8", "9", "10"].iter().map(|s| sample("2", s)).collect();
    assert!(
        others.iter().any(|o| *o != a),
        "different seeds should give different samples"
    );
}

#[test]
fn stop_string_ends_generation_and_is_not_printed() {
    let m = smollm2();
    let base = common::tsharp_json(&[
        "run",
        "-m",
        m.to_str().unwrap(),
        "-p",
        "The capital of France is",
        "-n",
        "12",
        "--temp",
        "0",
        "--json",
    ]);
    let text = base["text"].as_str().unwrap();
    assert!(text.starts_with(" Paris"), "{text:?}");
    // "ari" sits inside the first token " Paris": matched within a token and never printed.
    let j = common::tsharp_json(&[
        "run",
        "-m",
        m.to_str().unwrap(),
        "-p",
        "The capital of France is",
        "-n",
        "12",
        "--temp",
        "0",
        "--stop",
        "ari",
        "--json",
    ]);
    assert_eq!(j["text"], " P");
    assert_eq!(j["stop_reason"], "stop:0", "the first --stop string");
    // Streaming mode prints the same.
    let out = common::tsharp(&[
        "run",
        "-m",
        m.to_str().unwrap(),
        "-p",
        "The capital of France is",
        "-n",
        "12",
        "--temp",
        "0",
        "--stop",
        "ari",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim_end(), " P");
}

#[test]
fn truncated_malformed_and_non_gguf_models_fail_cleanly() {
    let bytes = std::fs::read(smollm2()).unwrap();
    for (i, len) in [0usize, 3, 4, 8, 24, 1000, 100_000, bytes.len() / 2, bytes.len() - 1]
        .into_iter()
        .enumerate()
    {
        let p = tmp(&format!("truncated-{i}.gguf"));
        std::fs::write(&p, &bytes[..len]).unwrap();
        let out = common::tsharp(&["run", "-m", p.to_str().unwrap(), "-p", "hi", "-n", "1"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "truncated to {len}: {err}");
        assert!(
            err.contains("tsharp: error:") && !err.contains("panicked"),
            "truncated to {len}: {err}"
        );
    }
    let p = tmp("not-a-model.gguf");
    std::fs::write(&p, b"#!/bin/sh\necho this is not a model\n").unwrap();
    assert_fails(&["run", "-m", p.to_str().unwrap(), "-p", "hi"], "magic");
    assert_fails(
        &["run", "-m", "/nonexistent/model.gguf", "-p", "hi"],
        "/nonexistent/model.gguf",
    );
    // A flipped tensor type id in the header.
    let mut bad = bytes.clone();
    let pos = find(&bad, b"token_embd.weight").unwrap() + b"token_embd.weight".len();
    // name, n_dims (u32), dims (u64 each), then the type (u32).
    let n_dims = u32::from_le_bytes(bad[pos..pos + 4].try_into().unwrap()) as usize;
    let ty = pos + 4 + 8 * n_dims;
    bad[ty..ty + 4].copy_from_slice(&999u32.to_le_bytes());
    let p = tmp("bad-type.gguf");
    std::fs::write(&p, &bad).unwrap();
    assert_fails(&["run", "-m", p.to_str().unwrap(), "-p", "hi"], "type");
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn unknown_architecture_is_named_in_the_error() {
    let mut w = GgufWriter::new();
    w.add_meta("general.architecture", MetaValue::String("mamba9".into()))
        .unwrap();
    w.add_meta("mamba9.block_count", MetaValue::U32(1)).unwrap();
    w.add_tensor("token_embd.weight", GgmlType::F32, &[4, 4], vec![0; 64])
        .unwrap();
    let p = tmp("mamba9.gguf");
    w.write_file(&p).unwrap();
    assert_fails(&["run", "-m", p.to_str().unwrap(), "-p", "hi"], "mamba9");
}

#[test]
fn prompt_longer_than_the_context_is_refused() {
    let m = smollm2();
    let prompt = "word ".repeat(100);
    assert_fails(
        &[
            "run",
            "-m",
            m.to_str().unwrap(),
            "-p",
            &prompt,
            "--ctx",
            "32",
            "-n",
            "4",
        ],
        "context",
    );
}

#[test]
fn out_of_range_parameters_are_refused() {
    let m = smollm2();
    let m = m.to_str().unwrap();
    for (flag, value, needle) in [
        ("--temp", "-1", "temperature"),
        ("--top-p", "1.5", "top_p"),
        ("--min-p", "2", "min_p"),
        ("--repeat-penalty", "0", "repeat_penalty"),
        ("--kv-type", "q3_k", "kv"),
        ("--ctx", "100000000", "ctx"),
        ("--batch", "0", "batch"),
    ] {
        assert_fails(
            &["run", "-m", m, "-p", "hi", "-n", "2", &format!("{flag}={value}")],
            needle,
        );
    }
}

#[test]
fn bench_reports_throughput_latency_and_profile() {
    let m = smollm2();
    let j = common::tsharp_json(&[
        "bench",
        "-m",
        m.to_str().unwrap(),
        "-p",
        "32",
        "-n",
        "8",
        "-r",
        "2",
        "-t",
        "2",
        "--profile",
        "--json",
    ]);
    for k in ["pp_tokens_per_s", "tg_tokens_per_s"] {
        assert!(j[k]["median"].as_f64().unwrap() > 0.0, "{k}: {j}");
        assert_eq!(j[k]["all"].as_array().unwrap().len(), 2);
    }
    assert!(j["first_token_ms"].as_f64().unwrap() > 0.0);
    // A figure says where it was measured: the CPU and the board profile.
    assert!(j["machine"].as_str().unwrap().contains("CPUs online"), "{j}");
    assert!(!j["board_profile"].as_str().unwrap().is_empty(), "{j}");
    assert!(j["decode_latency_ms"]["p99"].as_f64().unwrap() >= j["decode_latency_ms"]["p50"].as_f64().unwrap());
    assert!(j["weight_bytes_per_token"].as_u64().unwrap() > 50 << 20);
    let prof = j["profile"].as_array().unwrap();
    let share: f64 = prof.iter().map(|p| p["share"].as_f64().unwrap()).sum();
    assert!((share - 1.0).abs() < 1e-6, "{prof:?}");
    assert!(prof
        .iter()
        .any(|p| p["op"] == "ffn gate/up projections" && p["ms"].as_f64().unwrap() > 0.0));
}
