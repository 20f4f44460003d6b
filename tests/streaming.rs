//! `--ram-budget` below a model's plan (issue 23): Qwen2.5 0.5B with a budget of 50 % and 75 %
//! of its unconstrained plan runs, streaming what does not fit from the file, with the greedy
//! output of the unconstrained run and a peak RSS (the process's own getrusage) within the
//! budget (read with O_DIRECT at 50 %, through the page cache at 75 %); `tsharp plan` shows the placement it would use (and, with `--gpu-budget`, the one a
//! GPU of that size would get); a budget below what streaming needs is refused with the numbers.

mod common;

fn qwen() -> String {
    let m = tensorsharp_testkit::models::test_models()
        .into_iter()
        .find(|m| m.reference == "qwen2.5-coder-0.5b-q4_k_m")
        .expect("the Qwen test model (scripts/setup.sh fetches it)");
    m.path.to_str().unwrap().to_owned()
}

const SESSION: [&str; 4] = ["--ctx", "512", "-t", "2"];

fn run(model: &str, budget: Option<u64>, direct_io: &str) -> serde_json::Value {
    let b = budget.map(|b| b.to_string());
    let mut args = vec![
        "run",
        "-m",
        model,
        "-p",
        "Write a quicksort in Python",
        "-n",
        "24",
        "--temp",
        "0",
        "--json",
    ];
    args.extend(SESSION);
    if let Some(b) = &b {
        args.extend(["--ram-budget", b.as_str()]);
    }
    args.extend(["--direct-io", direct_io]);
    common::tsharp_json(&args)
}

#[test]
fn qwen_at_half_and_three_quarters_of_its_plan_gives_the_same_text_within_the_budget() {
    let q = qwen();
    let mut args = vec!["plan", "-m", q.as_str(), "--json"];
    args.extend(SESSION);
    let full_plan = common::tsharp_json(&args)["total_bytes"].as_u64().unwrap();
    let want = run(&q, None, "auto");
    assert!(
        want["streamed_reads"].is_null(),
        "nothing streams: {}",
        want["streamed_reads"]
    );
    assert!(want["tokens"].as_array().unwrap().len() >= 24);
    for pct in [50, 75] {
        let budget = full_plan * pct / 100;
        let b = budget.to_string();
        let mut args = vec!["plan", "-m", q.as_str(), "--json", "--ram-budget", b.as_str()];
        args.extend(SESSION);
        let plan = common::tsharp_json(&args);
        assert_eq!(plan["fits"], true, "{pct} %: {plan}");
        let r = &plan["residency"];
        assert!(r["streamed_bytes_per_token"].as_u64().unwrap() > 0, "{pct} %: {r}");
        assert_eq!(r["staging_slots"], 2);
        // At half the plan the streamed reads go around the page cache (O_DIRECT; the page
        // cache where the file system does not take it), at three quarters through it.
        let io = if pct == 50 { "on" } else { "off" };
        let got = run(&q, Some(budget), io);
        let reads = got["streamed_reads"].as_str().unwrap_or("none").to_owned();
        assert!(
            reads == if io == "on" { "direct" } else { "page cache" } || (io == "on" && reads == "page cache"),
            "{pct} %: streamed reads {reads}"
        );
        let rss = got["peak_rss_bytes"].as_u64().unwrap();
        eprintln!(
            "{pct} % of the plan ({:.1} MiB, {reads}): peak RSS {:.1} MiB, {:.1} MiB streamed per token, {:.1} tok/s (unconstrained {:.1})",
            budget as f64 / 1048576.0,
            rss as f64 / 1048576.0,
            r["streamed_bytes_per_token"].as_u64().unwrap() as f64 / 1048576.0,
            got["timings"]["gen_tokens_per_s"].as_f64().unwrap(),
            want["timings"]["gen_tokens_per_s"].as_f64().unwrap()
        );
        assert_eq!(got["tokens"], want["tokens"], "{pct} %: the greedy output differs");
        assert_eq!(got["text"], want["text"]);
        assert!(rss <= budget, "{pct} %: peak RSS {rss} over the budget {budget}");
    }
}

#[test]
fn a_budget_below_what_streaming_needs_is_refused_with_the_numbers() {
    let q = qwen();
    // The rest of the plan fits, the weights' minimum (two staging slots) does not.
    let mut args = vec!["plan", "-m", q.as_str(), "--json"];
    args.extend(SESSION);
    let p = common::tsharp_json(&args);
    let rest = p["total_bytes"].as_u64().unwrap() - p["weights"]["bytes"].as_u64().unwrap();
    let b = (rest + (14 << 20) + (12 << 20)).to_string();
    for cmd in ["plan", "run"] {
        let mut args = vec![cmd, "-m", q.as_str(), "--ram-budget", b.as_str()];
        args.extend(SESSION);
        if cmd == "run" {
            args.extend(["-p", "hi", "-n", "2"]);
        }
        let out = common::tsharp(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {err}");
        assert!(
            err.contains("over budget") && err.contains("streamed from storage"),
            "{cmd}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    // A percentage is a share of the RAM available; a bad one is an error, not a panic.
    for bad in ["0%", "150%", "x%"] {
        let out = common::tsharp(&["plan", "-m", q.as_str(), "--ram-budget", bad]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{bad}");
        assert!(err.contains("percentage") || err.contains("size"), "{bad}: {err}");
    }
    let out = common::tsharp(&["plan", "-m", q.as_str(), "--ram-budget", "90%"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn plan_shows_the_gpu_placement_for_a_gpu_budget() {
    let q = qwen();
    for (budget, streams) in [("200M", true), ("10G", false)] {
        let mut args = vec!["plan", "-m", q.as_str(), "--json", "--gpu-budget", budget];
        args.extend(SESSION);
        let g = common::tsharp_json(&args)["gpu_residency"].clone();
        let on_gpu = g["resident_bytes"].as_u64().unwrap() + g["staging_bytes"].as_u64().unwrap();
        let limit = tensorsharp_runtime::plan::parse_size(budget).unwrap();
        assert!(on_gpu <= limit, "{budget}: {g}");
        assert_eq!(
            g["streamed_bytes_per_token"].as_u64().unwrap() > 0,
            streams,
            "{budget}: {g}"
        );
    }
    let out = common::tsharp(&["plan", "-m", q.as_str(), "--gpu-budget", "4M"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("over budget"), "{err}");
}
