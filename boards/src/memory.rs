//! Memory: `MemTotal` / `MemAvailable`, the cgroup (v1 or v2) memory limit of this process, and
//! huge-page support.

use serde::Serialize;

use crate::sysroot::SysRoot;

/// Largest memory size believed (bytes): 1 PiB. A larger `MemTotal` or limit is a corrupt file.
const MAX_BYTES: u64 = 1 << 50;
/// Smallest believed: 1 MiB (no Linux system runs in less; a smaller figure is a corrupt file).
const MIN_BYTES: u64 = 1 << 20;

/// What memory this process has.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Memory {
    /// `MemTotal`, bytes.
    pub total: Option<u64>,
    /// `MemAvailable`, bytes.
    pub available: Option<u64>,
    /// The cgroup memory limit and the file it came from (`memory.max`, v2, or
    /// `memory.limit_in_bytes`, v1); `None` when unlimited or not in a memory cgroup.
    pub cgroup_limit: Option<(u64, String)>,
    /// Transparent huge pages mode (`always`, `madvise`, `never`).
    pub thp: Option<String>,
    /// `Hugepagesize`, bytes.
    pub huge_page_size: Option<u64>,
}

impl Memory {
    /// Reads the memory description under `root`.
    pub fn read(root: &SysRoot) -> Memory {
        let meminfo = root.text("/proc/meminfo").unwrap_or_default();
        let kb = |key: &str| -> Option<u64> {
            meminfo
                .lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .and_then(|k| k.checked_mul(1024))
                .filter(|&b| (MIN_BYTES..=MAX_BYTES).contains(&b))
        };
        let thp = root.text("/sys/kernel/mm/transparent_hugepage/enabled").and_then(|t| {
            // "always [madvise] never": the bracketed word is the mode.
            let s = t.split('[').nth(1)?.split(']').next()?.trim().to_string();
            (!s.is_empty()).then_some(s)
        });
        let total = kb("MemTotal");
        Memory {
            total,
            // A MemAvailable above MemTotal is a corrupt file.
            available: kb("MemAvailable").filter(|&a| total.is_none_or(|t| a <= t)),
            cgroup_limit: cgroup_limit(root),
            thp,
            huge_page_size: kb("Hugepagesize"),
        }
    }

    /// The RAM this process may use: the smaller of `MemAvailable` and the cgroup limit, with
    /// what it came from; `None` when neither is known.
    /// Kernels before 3.14 have no `MemAvailable`: then `MemTotal`.
    pub fn usable(&self) -> Option<(u64, String)> {
        let avail = match (self.available, self.total) {
            (Some(a), _) => Some((a, "MemAvailable".to_string())),
            (None, Some(t)) => Some((t, "MemTotal (no MemAvailable)".to_string())),
            (None, None) => None,
        };
        match (avail, self.cgroup_limit.clone()) {
            (Some(a), Some(c)) => Some(if c.0 < a.0 {
                (c.0, format!("cgroup limit {}", c.1))
            } else {
                a
            }),
            (Some(a), None) => Some(a),
            (None, Some(c)) => Some((c.0, format!("cgroup limit {}", c.1))),
            (None, None) => None,
        }
    }
}

/// This process's cgroup memory limit: `/proc/self/cgroup` names the group, then `memory.max`
/// (v2) or `memory.limit_in_bytes` (v1) under `/sys/fs/cgroup`; "max" or a near-2^63 value means
/// unlimited.
fn cgroup_limit(root: &SysRoot) -> Option<(u64, String)> {
    let cg = root.text("/proc/self/cgroup")?;
    for line in cg.lines() {
        // v2: "0::/path"; v1: "N:memory:/path" (or "N:memory,other:/path").
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(ctrl), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if path.contains("..") {
            continue;
        }
        let path = path.trim().trim_end_matches('/');
        let candidates = if ctrl.is_empty() {
            [
                format!("/sys/fs/cgroup{path}/memory.max"),
                "/sys/fs/cgroup/memory.max".to_string(),
            ]
        } else if ctrl.split(',').any(|c| c == "memory") {
            [
                format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes"),
                "/sys/fs/cgroup/memory/memory.limit_in_bytes".to_string(),
            ]
        } else {
            continue;
        };
        for p in candidates {
            if let Some(v) = root.line(&p) {
                if let Ok(b) = v.parse::<u64>() {
                    if (MIN_BYTES..=MAX_BYTES).contains(&b) {
                        return Some((b, p));
                    }
                }
                break;
            }
        }
    }
    None
}
