//! From what was detected to the defaults a session takes: the profile, and for each value the
//! reason it has.

use serde::Serialize;

use crate::cpu::{Arch, X86_AMX, X86_AVX2, X86_AVX512};
use crate::detect::Detection;
use crate::profiles::{self, BoardProfile, BEST_TIER};

/// How the profile was chosen.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum MatchedBy {
    /// A device-tree `compatible` string.
    Compatible {
        /// The string.
        compatible: String,
    },
    /// Nothing in the table matched: the architecture's generic profile.
    Architecture,
}

/// One default and why it has its value.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Reason {
    /// Which setting ("threads", "cpus", "tier", "n_ctx", "kv_type", "ram_budget").
    pub setting: &'static str,
    /// The value, as text.
    pub value: String,
    /// Why.
    pub why: String,
}

/// The defaults for this board.
#[derive(Debug, Clone, Serialize)]
pub struct Defaults {
    /// The profile.
    pub profile: &'static BoardProfile,
    /// How it was chosen.
    pub matched_by: MatchedBy,
    /// Threads (the caller included).
    pub threads: usize,
    /// CPUs to pin the threads to; empty: unpinned (every core is the same).
    pub cpus: Vec<usize>,
    /// Kernel tier name ("dotprod", "neon", "avx512", ...).
    pub tier: String,
    /// Context length cap.
    pub n_ctx: usize,
    /// KV cache type name.
    pub kv_type: &'static str,
    /// RAM budget, bytes (`None` when the memory is unknown).
    pub ram_budget: Option<u64>,
    /// Every value's reason, in the order above.
    pub reasons: Vec<Reason>,
}

/// The x86 tiers, best first, and the cpuinfo flag groups each needs.
const X86_TIERS: &[(&str, &[&[&str]])] = &[
    ("amx", &[X86_AVX2, X86_AVX512, X86_AMX]),
    ("avx512", &[X86_AVX2, X86_AVX512]),
    ("avx2", &[X86_AVX2]),
];

/// The aarch64 tiers, best first, and the HWCAP features each needs.
const ARM_TIERS: &[(&str, &[&[&str]])] = &[
    ("dotprod", &[&["asimd", "asimddp", "fphp", "asimdhp"]]),
    ("neon", &[&["asimd"]]),
];

/// A tier and the feature groups it needs.
type TierNeeds = (&'static str, &'static [&'static [&'static str]]);

fn tiers(arch: Arch) -> &'static [TierNeeds] {
    match arch {
        Arch::Aarch64 => ARM_TIERS,
        Arch::X86_64 => X86_TIERS,
        Arch::Other => &[],
    }
}

/// The profile for what was detected: the first of the board's `compatible` strings (most
/// specific first) that a row lists, else the architecture's generic row.
pub fn profile_for(d: &Detection) -> (&'static BoardProfile, MatchedBy) {
    for c in &d.device_tree.compatible {
        if let Some(p) = profiles::PROFILES.iter().find(|p| p.compatible.contains(&c.as_str())) {
            return (p, MatchedBy::Compatible { compatible: c.clone() });
        }
    }
    let p = match d.cpu.arch {
        Arch::Aarch64 => &profiles::GENERIC_AARCH64,
        Arch::X86_64 => &profiles::GENERIC_X86_64,
        Arch::Other => &profiles::GENERIC,
    };
    (p, MatchedBy::Architecture)
}

fn fmt_cpus(c: &[usize]) -> String {
    c.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(",")
}

fn gib(b: u64) -> String {
    format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64)
}

/// The big cores among `usable` (the cores to run on), and why they are the ones.
fn big_cores(d: &Detection, profile: &BoardProfile, usable: &[usize]) -> (Vec<usize>, String) {
    let all_big = d.cpu.big_cores();
    let heterogeneous = all_big.len() < d.cpu.cores.len();
    let detected: Vec<usize> = all_big.into_iter().filter(|c| usable.contains(c)).collect();
    let (big, why) = if !profile.big_cores.is_empty() {
        let documented: Vec<usize> = profile
            .big_cores
            .iter()
            .copied()
            .filter(|c| usable.contains(c))
            .collect();
        if heterogeneous && detected != documented {
            (
                detected,
                format!(
                    "the fastest cores by cpu_capacity / frequency (the profile documents {}, this system's cores say otherwise)",
                    fmt_cpus(profile.big_cores)
                ),
            )
        } else if documented.is_empty() {
            (
                usable.to_vec(),
                format!(
                    "none of the profile's big cores {} is usable here",
                    fmt_cpus(profile.big_cores)
                ),
            )
        } else {
            (documented, "the big cores the profile documents".to_string())
        }
    } else if heterogeneous {
        (
            detected,
            "the fastest cores by cpu_capacity / frequency / core type".to_string(),
        )
    } else {
        (usable.to_vec(), "every core is the same".to_string())
    };
    (if big.is_empty() { usable.to_vec() } else { big }, why)
}

/// The kernel tier: the profile's if the CPU has what it needs, else the best it has; and why.
fn tier(d: &Detection, profile: &BoardProfile, source: &str) -> (String, String) {
    let available: Vec<&str> = tiers(d.cpu.arch)
        .iter()
        .filter(|(_, needs)| needs.iter().copied().flatten().all(|f| d.cpu.has(f)))
        .map(|(t, _)| *t)
        .collect();
    let best = available.first().copied().unwrap_or("scalar");
    if profile.tier == BEST_TIER {
        (
            best.into(),
            format!("the best tier this CPU's features allow ({})", d.cpu.features_source),
        )
    } else if available.contains(&profile.tier) {
        (profile.tier.into(), format!("{source}; the CPU has its features"))
    } else {
        (
            best.into(),
            format!(
                "{source} asks for {}, but this CPU lacks its features ({}): the best it has",
                profile.tier, d.cpu.features_source
            ),
        )
    }
}

/// Resolves the defaults for what was detected.
pub fn choose(d: &Detection) -> Defaults {
    let (profile, matched_by) = profile_for(d);
    let mut reasons = Vec::new();
    let mut why = |setting: &'static str, value: String, why: String| reasons.push(Reason { setting, value, why });
    let source = match &matched_by {
        MatchedBy::Compatible { compatible } => format!("profile {} (device tree \"{compatible}\")", profile.id),
        MatchedBy::Architecture => format!("profile {} (no board in the table matched)", profile.id),
    };

    // Cores: the CPUs this process may run on, the big ones among them.
    let online: Vec<usize> = d.cpu.cores.iter().map(|c| c.id).collect();
    let usable: Vec<usize> = match &d.allowed_cpus {
        Some(allowed) => online.iter().copied().filter(|c| allowed.contains(c)).collect(),
        None => online.clone(),
    };
    let usable = if usable.is_empty() { online } else { usable };
    let (big, big_why) = big_cores(d, profile, &usable);
    let big_names = {
        let mut names: Vec<&str> = d
            .cpu
            .cores
            .iter()
            .filter(|c| big.contains(&c.id))
            .filter_map(|c| c.name)
            .collect();
        names.dedup();
        if names.is_empty() {
            String::new()
        } else {
            format!(" ({})", names.join(", "))
        }
    };

    let threads = match profile.threads {
        0 => big.len(),
        n => n.min(big.len()),
    }
    .max(1);
    let thread_why = if profile.threads != 0 && profile.threads > big.len() {
        format!(
            "{source} says {}, but only {} of those cores are usable here (offline cores, an affinity mask or a power mode): one per usable big core",
            profile.threads,
            big.len()
        )
    } else {
        format!("one per big core{big_names}: {big_why}; {source}")
    };
    why("threads", threads.to_string(), thread_why);

    let cpus: Vec<usize> = if big.len() < usable.len() {
        big.iter().copied().take(threads).collect()
    } else {
        Vec::new()
    };
    if cpus.is_empty() {
        why(
            "cpus",
            "unpinned".into(),
            "every usable core is a big core: the scheduler may place threads anywhere".into(),
        );
    } else {
        why(
            "cpus",
            fmt_cpus(&cpus),
            format!("pinned to the big cores{big_names}: a thread on a little core would hold every step back"),
        );
    }

    let (tier, tier_why) = tier(d, profile, &source);
    why("tier", tier.clone(), tier_why);
    why(
        "n_ctx",
        profile.n_ctx.to_string(),
        format!("at most this many positions unless the model's context is shorter; {source}"),
    );
    why("kv_type", profile.kv_type.into(), source.clone());

    let ram_budget = d.memory.usable().map(|(bytes, from)| {
        let b = profile.ram_share(bytes);
        why(
            "ram_budget",
            gib(b),
            format!("{} % of {from} ({}); {source}", profile.ram_percent, gib(bytes)),
        );
        b
    });
    if ram_budget.is_none() {
        why(
            "ram_budget",
            "unknown".into(),
            "neither MemAvailable nor a cgroup limit could be read".into(),
        );
    }

    Defaults {
        profile,
        matched_by,
        threads,
        cpus,
        tier,
        n_ctx: profile.n_ctx,
        kv_type: profile.kv_type,
        ram_budget,
        reasons,
    }
}
