//! The memory plan through the CLI: `tsharp plan` itemises and totals it; `tsharp run` stays
//! within the plan's total + its program image (executable and libraries, all resident under
//! `mlockall`) + 8 MiB of peak RSS (getrusage, reported by the process itself);
//! with `--mlock` nothing major-faults after load; an over-budget plan is refused with the
//! numbers; the real-time options are validated.

mod common;

#[test]
fn plan_itemises_and_totals() {
    for m in common::test_models() {
        let p = m.path.to_str().unwrap();
        let j = common::tsharp_json(&["plan", "-m", p, "--ctx", "2048", "-t", "2", "--json"]);
        let items = j["arena"]["items"].as_array().unwrap();
        let names: Vec<&str> = items.iter().map(|i| i["name"].as_str().unwrap()).collect();
        for want in [
            "kv cache",
            "logits",
            "activations: residual",
            "scratch: attention scores (per thread)",
        ] {
            assert!(names.contains(&want), "{p}: {names:?}");
        }
        let sum: u64 = [
            "model_tables_bytes",
            "tokenizer_bytes",
            "sampler_bytes",
            "thread_stack_bytes",
        ]
        .iter()
        .map(|k| j[k].as_u64().unwrap())
        .sum::<u64>()
            + j["weights"]["bytes"].as_u64().unwrap()
            + j["arena"]["bytes"].as_u64().unwrap();
        assert_eq!(sum, j["total_bytes"].as_u64().unwrap(), "{p}");
        assert_eq!(
            j["weights"]["bytes"].as_u64().unwrap(),
            std::fs::metadata(&m.path).unwrap().len()
        );
        // The KV cache doubles with the context.
        let j2 = common::tsharp_json(&["plan", "-m", p, "--ctx", "4096", "-t", "2", "--json"]);
        assert_eq!(
            j2["kv_cache_bytes"].as_u64().unwrap(),
            2 * j["kv_cache_bytes"].as_u64().unwrap()
        );
        let q8 = common::tsharp_json(&[
            "plan",
            "-m",
            p,
            "--ctx",
            "4096",
            "-t",
            "2",
            "--kv-type",
            "q8_0",
            "--json",
        ]);
        assert!(q8["kv_cache_bytes"].as_u64().unwrap() * 17 / 32 <= j2["kv_cache_bytes"].as_u64().unwrap() * 9 / 16);
    }
}

#[test]
fn peak_rss_stays_within_the_plan_and_mlock_stops_major_faults() {
    for m in common::test_models() {
        let p = m.path.to_str().unwrap();
        let j = common::tsharp_json(&[
            "run",
            "-m",
            p,
            "-p",
            "The capital of France is",
            "-n",
            "128",
            "-t",
            "2",
            "--mlock",
            "--json",
        ]);
        let (rss, plan, image) = (
            j["peak_rss_bytes"].as_u64().unwrap(),
            j["plan_total_bytes"].as_u64().unwrap(),
            j["program_image_bytes"].as_u64().unwrap(),
        );
        let mib = |b: u64| b as f64 / 1048576.0;
        eprintln!(
            "{}: peak RSS {:.1} MiB, plan total {:.1} MiB, program image {:.1} MiB, major faults after load {}",
            m.reference,
            mib(rss),
            mib(plan),
            mib(image),
            j["major_faults_after_load"]
        );
        // The image is the executable and the libraries (a few MiB stripped, ~20 MiB in a
        // debug build); what neither covers (heap of the CLI, C library, main stack) is small.
        assert!(image > 0 && image < (256 << 20), "{p}: program image {image}");
        assert!(
            rss <= plan + image + (8 << 20),
            "{p}: peak RSS {rss} > plan {plan} + program image {image} + 8 MiB"
        );
        assert_eq!(j["major_faults_after_load"], 0, "{p}");
    }
}

#[test]
fn over_budget_is_refused_with_the_numbers() {
    let m = &common::test_models()[0];
    let p = m.path.to_str().unwrap();
    for cmd in ["plan", "run"] {
        let mut args = vec![cmd, "-m", p, "--ctx", "8192", "--ram-budget", "120M"];
        if cmd == "run" {
            args.extend(["-p", "hi", "-n", "4"]);
        }
        let out = common::tsharp(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("over budget") && err.contains("120.0 MiB") && err.contains("over by"),
            "{err}"
        );
        assert!(err.contains("--ctx") && err.contains("--kv-type q8_0"), "{err}");
        assert!(!err.contains("panicked"));
    }
    // The weights alone over budget: a different suggestion.
    let out = common::tsharp(&["plan", "-m", p, "--ram-budget", "10M"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("weights alone"), "{err}");
}

#[test]
fn real_time_options_are_applied_or_refused_clearly() {
    let m = &common::test_models()[0];
    let p = m.path.to_str().unwrap();
    // Pinning to CPU 0 works everywhere.
    let j = common::tsharp_json(&[
        "run",
        "-m",
        p,
        "-p",
        "Hi",
        "-n",
        "4",
        "-t",
        "2",
        "--cpus",
        "0",
        "--huge-pages",
        "--spin-us",
        "50",
        "--temp",
        "0",
        "--json",
    ]);
    assert_eq!(j["tokens"].as_array().unwrap().len(), 4);
    for (flag, needle) in [
        ("--cpus=99999", "cpu"),
        ("--cpus=3-1", "cpu"),
        ("--rt-priority=150", "rt_priority"),
        ("--mlock=sometimes", "mlock"),
        ("--ram-budget=lots", "size"),
    ] {
        let out = common::tsharp(&["run", "-m", p, "-p", "Hi", "-n", "2", flag]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{flag}: {err}");
        assert!(err.contains(needle) && !err.contains("panicked"), "{flag}: {err}");
    }
    // A real-time priority either applies or degrades with a warning; the run succeeds.
    let out = common::tsharp(&[
        "run",
        "-m",
        p,
        "-p",
        "Hi",
        "-n",
        "2",
        "--rt-priority",
        "10",
        "--temp",
        "0",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
