//! `tsharp board`: what was detected about this machine (or a fixture tree) and the defaults
//! its profile gives, each with its reason; `--dump DIR` copies the files read.

use std::path::PathBuf;

use clap::Args;
use tensorsharp_boards::{Board, MatchedBy, SysRoot};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// `tsharp board` options.
#[derive(Args, Debug)]
pub struct BoardArgs {
    /// Read the files under this directory instead of `/` (a fixture or a dumped tree; default:
    /// TENSORSHARP_BOARD_ROOT when set, which the runtime's defaults follow too).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Copy every file detection read into this new (or empty) directory: attach it to a bug
    /// report, or add it as a test fixture (`--root DIR` detects the same board from it).
    #[arg(long, value_name = "DIR")]
    dump: Option<PathBuf>,
}

fn gib(b: u64) -> String {
    format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64)
}

/// Runs `tsharp board`.
pub fn board(a: BoardArgs) -> Result<()> {
    let root = SysRoot::new(a.root.clone().unwrap_or_else(tensorsharp_boards::host_root));
    if let Some(r) = &a.root {
        if !r.is_dir() {
            return Err(format!("--root {}: not a directory", r.display()).into());
        }
    }
    let board = Board::detect_in(&root);
    if let Some(dir) = &a.dump {
        let n = root.dump(dir)?;
        eprintln!("tsharp: {n} files written under {}", dir.display());
    }
    if a.json {
        let mut v = serde_json::to_value(&board)?;
        v["files_read"] = serde_json::json!(root.files_read());
        if root.is_live() {
            // What this build will run: the profile's tier when this CPU and build have it.
            v["kernels"] = serde_json::json!(tensorsharp_runtime::board::tier()?.name());
        }
        outln!("{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    print_text(&board, &root)
}

fn print_text(b: &Board, root: &SysRoot) -> Result<()> {
    let (d, p) = (&b.detection, &b.defaults);
    outln!("root:      {}", d.root.display())?;
    outln!("board:     {}", d.board_name().unwrap_or("(no device-tree model)"))?;
    if !d.device_tree.compatible.is_empty() {
        outln!("dt compat: {}", d.device_tree.compatible.join(", "))?;
    }
    let matched = match &p.matched_by {
        MatchedBy::Compatible { compatible } => format!("matched by \"{compatible}\""),
        MatchedBy::Architecture => "no board in the table matched: the architecture's generic profile".into(),
    };
    outln!("profile:   {} — {} ({matched})", p.profile.id, p.profile.name)?;
    if let Some(r) = d.l4t {
        outln!(
            "L4T:       {r} (JetPack {})",
            d.jetpack.unwrap_or("unknown: a release newer than the table")
        )?;
    }
    if d.soc.family.is_some() || d.soc.soc_id.is_some() {
        outln!(
            "soc0:      family {}, soc_id {}, revision {}",
            d.soc.family.as_deref().unwrap_or("?"),
            d.soc.soc_id.as_deref().unwrap_or("?"),
            d.soc.revision.as_deref().unwrap_or("?")
        )?;
    }
    let c = &d.cpu;
    outln!(
        "cpu:       {}, {} ({} online){}",
        c.arch.name(),
        c.model_name.as_deref().unwrap_or("unknown cores"),
        c.cores.len(),
        c.vendor.as_deref().map(|v| format!(", {v}")).unwrap_or_default()
    )?;
    outln!(
        "features:  {} (from {})",
        if c.features.is_empty() {
            "none".into()
        } else {
            c.features.join(" ")
        },
        c.features_source
    )?;
    let big = c.big_cores();
    for core in &c.cores {
        outln!(
            "  cpu{:<3}   {:<16} capacity {:>5}  max {:>9}{}",
            core.id,
            core.name.unwrap_or("?"),
            core.capacity.map_or("?".into(), |v| v.to_string()),
            core.max_khz
                .map_or("?".into(), |k| format!("{:.2} GHz", k as f64 / 1e6)),
            if big.contains(&core.id) && big.len() < c.cores.len() {
                "  big"
            } else {
                ""
            }
        )?;
    }
    let m = &d.memory;
    outln!(
        "memory:    total {}, available {}, cgroup limit {}; THP {}, huge page {}",
        m.total.map_or("?".into(), gib),
        m.available.map_or("?".into(), gib),
        m.cgroup_limit
            .as_ref()
            .map_or("none".into(), |(b, path)| format!("{} ({path})", gib(*b))),
        m.thp.as_deref().unwrap_or("?"),
        m.huge_page_size.map_or("?".into(), |b| format!("{} KiB", b / 1024))
    )?;
    outln!(
        "gpu:       {}{}",
        if d.gpu.cuda_present() {
            format!(
                "CUDA driver {} ({})",
                d.gpu.cuda_driver.as_deref().unwrap_or(""),
                d.gpu.device_nodes.join(", ")
            )
        } else {
            "no CUDA driver".into()
        },
        p.profile
            .cuda_cc
            .map(|cc| format!("; compute capability {cc}"))
            .unwrap_or_default()
    )?;
    if let Some(bw) = p.profile.mem_bandwidth_gbs {
        outln!("bandwidth: {bw} GB/s peak (decode is bounded by it)")?;
    }
    outln!("defaults (each overridable: --threads, --cpus, TSHARP_KERNELS, --ctx, --kv-type, --ram-budget):")?;
    for r in &p.reasons {
        outln!("  {:<11} {:<12} {}", r.setting, r.value, r.why)?;
    }
    if root.is_live() {
        outln!(
            "kernels:   {} (this build on this CPU)",
            tensorsharp_runtime::board::tier()?.name()
        )?;
    }
    Ok(())
}
