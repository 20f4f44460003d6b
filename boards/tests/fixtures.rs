//! Every fixture tree under tests/fixtures/ (made by tests/fixtures/make.py from the boards'
//! public documentation) detects the expected board and defaults; broken trees (missing,
//! truncated, non-UTF-8 files, absurd values) detect something sensible without panicking; a
//! dump of what detection read detects the same again.

use std::path::{Path, PathBuf};

use tensorsharp_boards::{Board, MatchedBy, SysRoot};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

const GIB: f64 = (1u64 << 30) as f64;

/// One fixture's expected defaults.
struct Case {
    fixture: &'static str,
    profile: &'static str,
    threads: usize,
    cpus: &'static [usize],
    tier: &'static str,
    n_ctx: usize,
    kv: &'static str,
    /// Expected RAM budget in bytes (±1 byte of rounding), `None` when unknown.
    budget: Option<u64>,
    /// L4T release and JetPack.
    l4t: Option<(&'static str, Option<&'static str>)>,
    cuda: bool,
    /// The CPU model summary.
    cores: Option<&'static str>,
}

const fn kb(k: u64) -> u64 {
    k * 1024
}

fn pct(bytes: u64, p: u64) -> u64 {
    (bytes as u128 * p as u128 / 100) as u64
}

/// One row per fixture: tree, profile, threads, pinned CPUs, tier, context, KV type, budget,
/// (L4T, JetPack), CUDA present, CPU summary.
#[rustfmt::skip]
fn cases() -> Vec<Case> {
    type Row = (&'static str, &'static str, usize, &'static [usize], &'static str, usize, &'static str,
                Option<u64>, Option<(&'static str, Option<&'static str>)>, bool, Option<&'static str>);
    let a78 = |n: usize| -> Option<&'static str> {
        match n { 12 => Some("12x Cortex-A78AE"), 8 => Some("8x Cortex-A78AE"), 4 => Some("4x Cortex-A78AE"), _ => Some("6x Cortex-A78AE") }
    };
    let big_little = Some("4x Cortex-A55 + 4x Cortex-A76");
    let rows: Vec<Row> = vec![
        ("jetson-agx-orin", "jetson-agx-orin", 12, &[], "dotprod", 4096, "f16", Some(pct(kb(59912340), 75)), Some(("36.4.3", Some("6.2"))), true, a78(12)),
        ("jetson-orin-nx-16gb", "jetson-orin-nx-16gb", 8, &[], "dotprod", 4096, "f16", Some(pct(kb(13543216), 75)), Some(("35.4.1", Some("5.1.2"))), true, a78(8)),
        ("jetson-orin-nx-8gb", "jetson-orin-nx-8gb", 6, &[], "dotprod", 4096, "f16", Some(pct(kb(6102344), 75)), Some(("36.3.0", Some("6.0"))), true, a78(6)),
        ("jetson-orin-nano-8gb", "jetson-orin-nano-8gb", 6, &[], "dotprod", 4096, "f16", Some(pct(kb(6318420), 75)), Some(("36.4.3", Some("6.2"))), true, a78(6)),
        // 7 W mode: two cores offline, so four threads.
        ("jetson-orin-nano-8gb-7w", "jetson-orin-nano-8gb", 4, &[], "dotprod", 4096, "f16", Some(pct(kb(6318420), 75)), Some(("36.4.3", Some("6.2"))), true, a78(4)),
        ("jetson-orin-nano-4gb", "jetson-orin-nano-4gb", 6, &[], "dotprod", 2048, "q8_0", Some(pct(kb(2810120), 75)), Some(("35.5.0", Some("5.1.3"))), true, a78(6)),
        ("jetson-xavier-nx", "jetson-xavier-nx", 6, &[], "neon", 4096, "f16", Some(pct(kb(6231028), 75)), Some(("35.4.1", Some("5.1.2"))), true, Some("6x NVIDIA Carmel")),
        ("jetson-agx-xavier", "jetson-agx-xavier", 8, &[], "neon", 4096, "f16", Some(pct(kb(29876540), 75)), Some(("32.7.4", Some("4.6.4"))), true, Some("8x NVIDIA Carmel")),
        ("jetson-nano", "jetson-nano", 4, &[], "neon", 2048, "q8_0", Some(pct(kb(2871044), 75)), Some(("32.7.1", Some("4.6.1"))), true, Some("4x Cortex-A57")),
        ("raspberry-pi-4", "raspberry-pi-4", 4, &[], "neon", 2048, "q8_0", Some(pct(kb(7423680), 85)), None, false, Some("4x Cortex-A72")),
        ("raspberry-pi-5", "raspberry-pi-5", 4, &[], "dotprod", 4096, "f16", Some(pct(kb(7702116), 85)), None, false, Some("4x Cortex-A76")),
        // big.LITTLE: the four Cortex-A76 only, pinned.
        ("rk3588-rock-5b", "rk3588", 4, &[4, 5, 6, 7], "dotprod", 4096, "f16", Some(pct(kb(15102848), 85)), None, false, big_little),
        ("rk3588s-orangepi-5", "rk3588", 4, &[4, 5, 6, 7], "dotprod", 4096, "f16", Some(pct(kb(7201948), 85)), None, false, big_little),
        // Not in the table: the CPU says two big cores; the service's cgroup limit is the budget.
        ("unknown-aarch64-2big-6little", "generic-aarch64", 2, &[0, 1], "dotprod", 4096, "f16", Some(512 << 20), None, false, Some("2x Cortex-A78 + 6x Cortex-A55")),
        ("x86-64-docker-cgroup-v1", "generic-x86-64", 4, &[], "avx2", 4096, "f16", Some(2 << 30), None, false, Some("12th Gen Intel(R) Core(TM) i7-1260P")),
        // Broken trees.
        ("broken-empty", "generic", 1, &[], "scalar", 4096, "f16", None, None, false, None),
        ("broken-truncated", "generic-aarch64", 6, &[], "dotprod", 4096, "f16", Some(kb(7802056)), None, false, Some("1x Cortex-A78AE + 5x unknown core")),
        ("broken-garbage", "rk3588", 4, &[4, 5, 6, 7], "dotprod", 4096, "f16", None, None, false, Some("4x unknown core + 4x Cortex-A76")),
    ];
    rows.into_iter()
        .map(|(fixture, profile, threads, cpus, tier, n_ctx, kv, budget, l4t, cuda, cores)| Case {
            fixture, profile, threads, cpus, tier, n_ctx, kv, budget, l4t, cuda, cores,
        })
        .collect()
}

fn check(case: &Case) -> Vec<String> {
    let board = Board::detect(&fixture(case.fixture));
    let (d, det) = (&board.defaults, &board.detection);
    let mut errs = Vec::new();
    let mut eq = |what: &str, got: String, want: String| {
        if got != want {
            errs.push(format!("{}: {what} is {got}, expected {want}", case.fixture));
        }
    };
    eq("profile", d.profile.id.into(), case.profile.into());
    eq("threads", d.threads.to_string(), case.threads.to_string());
    eq("cpus", format!("{:?}", d.cpus), format!("{:?}", case.cpus));
    eq("tier", d.tier.clone(), case.tier.into());
    eq("n_ctx", d.n_ctx.to_string(), case.n_ctx.to_string());
    eq("kv_type", d.kv_type.into(), case.kv.into());
    eq(
        "ram budget",
        format!("{:?}", d.ram_budget),
        format!("{:?}", case.budget),
    );
    eq(
        "l4t",
        format!("{:?}", det.l4t.map(|r| (r.to_string(), det.jetpack))),
        format!("{:?}", case.l4t.map(|(r, j)| (r.to_string(), j))),
    );
    eq("cuda", det.gpu.cuda_present().to_string(), case.cuda.to_string());
    eq(
        "cpu model",
        format!("{:?}", det.cpu.model_name),
        format!("{:?}", case.cores),
    );
    // Every value has its reason, and the reasons name the values.
    for setting in ["threads", "cpus", "tier", "n_ctx", "kv_type", "ram_budget"] {
        if !d.reasons.iter().any(|r| r.setting == setting && !r.why.is_empty()) {
            errs.push(format!("{}: no reason for {setting}", case.fixture));
        }
    }
    if case.profile.starts_with("generic") != (d.matched_by == MatchedBy::Architecture) {
        errs.push(format!("{}: matched by {:?}", case.fixture, d.matched_by));
    }
    errs
}

#[test]
fn every_fixture_detects_its_board() {
    let cases = cases();
    let errs: Vec<String> = cases.iter().flat_map(check).collect();
    assert!(
        errs.is_empty(),
        "{} of {} fixtures differ:\n{}",
        errs.len(),
        cases.len(),
        errs.join("\n")
    );
    // Every fixture directory has a case (a new tree is not silently untested).
    let dirs: Vec<String> = std::fs::read_dir(fixture(""))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for d in &dirs {
        assert!(
            cases.iter().any(|c| c.fixture == d),
            "fixture {d} has no expected profile in this test"
        );
    }
}

#[test]
fn every_profiled_board_has_a_fixture() {
    let covered: Vec<&str> = cases().iter().map(|c| c.profile).collect();
    for p in tensorsharp_boards::profiles::PROFILES {
        // The SoC-only fallback rows (module not in the table) are covered by their siblings.
        if p.id == "jetson-orin" || p.id == "jetson-xavier" {
            continue;
        }
        assert!(covered.contains(&p.id), "profile {} has no fixture tree", p.id);
    }
}

#[test]
fn a_dump_detects_the_same_board() {
    for name in [
        "rk3588-rock-5b",
        "jetson-orin-nano-4gb",
        "x86-64-docker-cgroup-v1",
        "broken-garbage",
    ] {
        let root = SysRoot::new(fixture(name));
        let board = Board::detect_in(&root);
        let dir = std::env::temp_dir().join(format!("tsharp-board-dump-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let n = root.dump(&dir).unwrap();
        assert!(n >= 5, "{name}: only {n} files dumped");
        let again = Board::detect(&dir);
        let json = |b: &Board| {
            let mut v = serde_json::to_value(b).unwrap();
            v["detection"]["root"] = serde_json::Value::Null;
            v
        };
        assert_eq!(json(&board), json(&again), "{name}: the dump detects differently");
        // A dump never writes into a directory that has files.
        let err = root.dump(&dir).unwrap_err().to_string();
        assert!(err.contains("not empty"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn a_fixture_cannot_read_the_host_through_a_symlink() {
    let dir = std::env::temp_dir().join(format!("tsharp-board-link-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("proc")).unwrap();
    std::os::unix::fs::symlink("/proc/cpuinfo", dir.join("proc/cpuinfo")).unwrap();
    let board = Board::detect(&dir);
    assert!(board.detection.cpu.cores.len() == 1 && board.detection.cpu.model_name.is_none());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn this_machine_detects_without_panicking() {
    let b = Board::host();
    assert!(b.defaults.threads >= 1);
    assert!(!b.detection.cpu.cores.is_empty());
    if cfg!(target_os = "linux") {
        let total = b.detection.memory.total.expect("MemTotal");
        assert!(total as f64 > 0.1 * GIB, "{total}");
        assert!(b.ram_budget_now().is_some());
    }
    // On aarch64 (under qemu -cpu max in the test command) the live features come from
    // getauxval and pick the tier the kernels' own detection would.
    #[cfg(target_arch = "aarch64")]
    {
        use std::arch::is_aarch64_feature_detected as has;
        assert_eq!(b.detection.cpu.features_source, "getauxval(AT_HWCAP, AT_HWCAP2)");
        let want = if has!("dotprod") && has!("fp16") {
            "dotprod"
        } else {
            "neon"
        };
        assert_eq!(b.defaults.tier, want, "{:?}", b.detection.cpu.features);
    }
}
