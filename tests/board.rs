//! `tsharp board` (issue 22): on this machine it reports the real CPU, tier and memory; on a
//! fixture tree it shows the board's profile and reasons; `--dump` makes a tree that detects
//! the same; the defaults reach sessions (`tsharp plan` under TENSORSHARP_BOARD_ROOT).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{tsharp, tsharp_json};

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("boards/tests/fixtures")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn meminfo_kb(key: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn this_machine_reports_its_real_cpu_tier_and_memory() {
    let v = tsharp_json(&["board", "--json"]);
    let cpu = &v["detection"]["cpu"];
    assert_eq!(cpu["arch"], std::env::consts::ARCH, "{cpu}");
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    let n_online: usize = online
        .trim()
        .split(',')
        .map(|r| match r.split_once('-') {
            Some((a, b)) => b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1,
            None => 1,
        })
        .sum();
    assert_eq!(cpu["cores"].as_array().unwrap().len(), n_online, "{cpu}");
    if cfg!(target_arch = "x86_64") {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
        let model = cpuinfo.lines().find_map(|l| l.strip_prefix("model name")).unwrap();
        assert_eq!(
            cpu["model_name"],
            model.trim_start_matches([' ', '\t', ':']).trim(),
            "{cpu}"
        );
        assert!(cpu["features"].as_array().unwrap().iter().any(|f| f == "avx2") == cpuinfo.contains(" avx2"));
    }
    // The memory is /proc/meminfo's (MemAvailable moves: within 10 %).
    let mem = &v["detection"]["memory"];
    assert_eq!(mem["total"].as_u64().unwrap(), meminfo_kb("MemTotal") * 1024, "{mem}");
    let avail = meminfo_kb("MemAvailable") as f64 * 1024.0;
    assert!((mem["available"].as_f64().unwrap() / avail - 1.0).abs() < 0.1, "{mem}");
    // The tier the runtime uses is the one `tsharp kernels` selects, and the profile's when
    // this CPU has it.
    let kernels = String::from_utf8(tsharp(&["kernels"]).stdout).unwrap();
    let selected = kernels.lines().find_map(|l| l.strip_prefix("selected: ")).unwrap();
    let tier = v["kernels"].as_str().unwrap();
    assert!(selected.starts_with(&format!("{tier} ")), "{selected} vs {tier}");
    // The profile's tier (from the CPU's flags) is what runs, unless this build or the OS cannot
    // run it (AMX flags without the kernel's permission to use the tiles).
    let profile_tier = v["defaults"]["tier"].as_str().unwrap();
    if profile_tier != tier {
        let line = kernels.lines().find(|l| l.starts_with(profile_tier)).unwrap_or("");
        assert!(
            line.split_whitespace().nth(1) != Some("supported"),
            "profile tier {profile_tier} is runnable but {tier} ran:\n{kernels}"
        );
    }
    let threads = v["defaults"]["threads"].as_u64().unwrap() as usize;
    assert!(threads >= 1 && threads <= n_online);
    assert!(!v["files_read"].as_array().unwrap().is_empty());
    // The text form says the same, with a reason per value.
    let text = String::from_utf8(tsharp(&["board"]).stdout).unwrap();
    for want in [
        "profile:",
        "cpu:",
        "memory:",
        "threads",
        "ram_budget",
        &format!("kernels:   {tier}"),
    ] {
        assert!(text.contains(want), "{want:?} missing:\n{text}");
    }
}

#[test]
fn a_fixture_board_shows_its_profile_and_reasons() {
    let v = tsharp_json(&["board", "--root", &fixture("rk3588-rock-5b"), "--json"]);
    assert_eq!(v["defaults"]["profile"]["id"], "rk3588");
    assert_eq!(v["defaults"]["cpus"], serde_json::json!([4, 5, 6, 7]));
    assert_eq!(v["defaults"]["threads"], 4);
    assert!(
        v.get("kernels").is_none(),
        "a fixture says nothing about this build's kernels"
    );
    let out = tsharp(&["board", "--root", &fixture("jetson-orin-nano-8gb-7w")]);
    let text = String::from_utf8(out.stdout).unwrap();
    for want in [
        "NVIDIA Jetson Orin Nano Developer Kit",
        "jetson-orin-nano-8gb",
        "L4T:       36.4.3 (JetPack 6.2)",
        "CUDA driver",
        "compute capability 8.7",
        "only 4 of those cores are usable",
    ] {
        assert!(text.contains(want), "{want:?} missing:\n{text}");
    }
}

#[test]
fn a_dump_detects_the_same_and_never_overwrites() {
    let dir = std::env::temp_dir().join(format!("tsharp-board-dump-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_string_lossy().into_owned();
    let first = tsharp_json(&["board", "--json", "--dump", &d]);
    let again = tsharp_json(&["board", "--json", "--root", &d]);
    assert_eq!(first["detection"]["cpu"]["cores"], again["detection"]["cpu"]["cores"]);
    assert_eq!(
        first["detection"]["memory"]["total"],
        again["detection"]["memory"]["total"]
    );
    assert_eq!(first["defaults"]["profile"]["id"], again["defaults"]["profile"]["id"]);
    assert!(PathBuf::from(&d).join("proc/cpuinfo").is_file());
    let out = tsharp(&["board", "--dump", &d]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not empty"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
    let out = tsharp(&["board", "--root", "/nonexistent/board"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("not a directory"));
}

#[test]
fn sessions_take_the_profile_defaults_unless_set() {
    let model = common::default_model().to_string_lossy().into_owned();
    let plan = |root: &str, extra: &[&str]| {
        let mut args = vec!["plan", "-m", &model, "--json"];
        args.extend_from_slice(extra);
        let out = Command::new(env!("CARGO_BIN_EXE_tsharp"))
            .args(&args)
            .env("TENSORSHARP_BOARD_ROOT", root)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    // A Jetson Nano: 2048 positions, q8_0 KV, a 75 % budget; threads: its four, capped by the
    // CPUs this process may use.
    let nano = plan(&fixture("jetson-nano"), &[]);
    assert_eq!(nano["n_ctx"], 2048, "{nano}");
    assert_eq!(nano["kv_type"], "q8_0");
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert_eq!(nano["n_threads"].as_u64().unwrap() as usize, 4.min(cpus));
    let budget = &nano["budget"];
    assert_eq!(budget["bytes"].as_u64().unwrap(), 2871044 * 1024 * 75 / 100, "{budget}");
    assert!(budget["source"].as_str().unwrap().contains("jetson-nano"), "{budget}");
    // Every value set explicitly wins.
    let set = plan(
        &fixture("jetson-nano"),
        &["--ctx", "1024", "--kv-type", "f16", "-t", "1", "--ram-budget", "1G"],
    );
    assert_eq!(
        (set["n_ctx"].as_u64(), set["kv_type"].as_str()),
        (Some(1024), Some("f16"))
    );
    assert_eq!(
        (set["n_threads"].as_u64(), set["budget"]["bytes"].as_u64()),
        (Some(1), Some(1 << 30))
    );
    // A cgroup v1 limit of 2 GiB is the budget on a generic x86-64.
    let docker = plan(&fixture("x86-64-docker-cgroup-v1"), &[]);
    assert_eq!(docker["budget"]["bytes"], 2u64 << 30, "{docker}");
    assert_eq!(
        (docker["n_ctx"].as_u64(), docker["kv_type"].as_str()),
        (Some(4096), Some("f16"))
    );
}

/// A big.LITTLE board whose big core is cpu1 (a tree written here to match this machine's two
/// CPU numbers): `tsharp run` with the profile's defaults runs one thread, pinned to cpu1.
#[test]
fn automatic_threads_are_pinned_to_the_big_core() {
    let allowed = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:").map(|v| v.trim().to_string()))
        .unwrap();
    if !["0-1", "0,1"].contains(&allowed.as_str()) && !allowed.starts_with("0-") {
        eprintln!("skipped: this process may not run on cpu0 and cpu1 ({allowed})");
        return;
    }
    let root = std::env::temp_dir().join(format!("tsharp-board-bl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let write = |rel: &str, text: &str| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    let core = |i: usize, part: &str| {
        format!(
            "processor\t: {i}\nFeatures\t: fp asimd fphp asimdhp asimddp\nCPU implementer\t: 0x41\nCPU part\t: {part}\n\n"
        )
    };
    write("proc/cpuinfo", &(core(0, "0xd05") + &core(1, "0xd0b")));
    write("proc/device-tree/compatible", "acme,test-big-little\0");
    write("sys/devices/system/cpu/online", "0-1\n");
    write("sys/devices/system/cpu/cpu0/cpu_capacity", "405\n");
    write("sys/devices/system/cpu/cpu1/cpu_capacity", "1024\n");
    write("proc/meminfo", "MemTotal: 8000000 kB\nMemAvailable: 6000000 kB\n");
    let model = common::default_model().to_string_lossy().into_owned();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tsharp"))
        .args([
            "run",
            "-m",
            &model,
            "-p",
            "Once upon a time",
            "-n",
            "2000",
            "--temp",
            "0",
        ])
        .env("TENSORSHARP_BOARD_ROOT", &root)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // While it generates, every thread of the process that has been pinned says cpu1; the
    // command thread (which computes with the pool) is one of them.
    let tasks = format!("/proc/{}/task", child.id());
    let start = std::time::Instant::now();
    let mut pinned = Vec::new();
    while start.elapsed() < std::time::Duration::from_secs(60)
        && pinned.is_empty()
        && child.try_wait().unwrap().is_none()
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
        for t in std::fs::read_dir(&tasks).into_iter().flatten().flatten() {
            let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
            let list = status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .map(str::trim);
            let name = status.lines().find_map(|l| l.strip_prefix("Name:")).map(str::trim);
            if list == Some("1") {
                pinned.push(name.unwrap_or("?").to_string());
            }
        }
    }
    child.kill().ok();
    let out = child.wait_with_output().unwrap();
    std::fs::remove_dir_all(&root).unwrap();
    assert!(
        !pinned.is_empty(),
        "no thread pinned to cpu1 within 60 s: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
