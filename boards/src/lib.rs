//! TensorSharp board detection and default profiles.
//!
//! [`Board::detect`] reads what Linux exposes about the machine — the device tree's `model` and
//! `compatible`, `/etc/nv_tegra_release`, `/sys/devices/soc0`, `/proc/cpuinfo` (core types),
//! `AT_HWCAP`/`AT_HWCAP2`, per-core `cpu_capacity` and maximum frequency, `MemTotal` /
//! `MemAvailable` and the cgroup memory limit, huge pages, the CUDA driver — from a root
//! directory (`/`, or a fixture tree in tests), matches it against a table of board profiles
//! ([`profiles::PROFILES`]) and resolves the defaults a session takes: threads, core pinning,
//! kernel tier, context, KV type and RAM budget, each with its reason. An unknown board, or a
//! missing or corrupt file, is never an error: the defaults then follow what the CPU and memory
//! say.
//!
//! ```
//! let board = tensorsharp_boards::Board::host();
//! assert!(board.defaults.threads >= 1);
//! println!("{} -> {} threads", board.defaults.profile.id, board.defaults.threads);
//! ```

mod choose;
pub mod cpu;
mod detect;
pub mod devicetree;
mod error;
pub mod gpu;
pub mod hwcap;
pub mod memory;
pub mod profiles;
mod sysroot;
pub mod tegra;

use std::path::Path;
use std::sync::OnceLock;

use serde::Serialize;

pub use choose::{choose, profile_for, Defaults, MatchedBy, Reason};
pub use detect::Detection;
pub use error::{BoardError, Result};
pub use profiles::BoardProfile;
pub use sysroot::SysRoot;

/// The environment variable that points detection at another root directory.
pub const ROOT_ENV: &str = "TENSORSHARP_BOARD_ROOT";

/// The root [`Board::host`] reads: `TENSORSHARP_BOARD_ROOT` when set and not empty, else `/`.
pub fn host_root() -> std::path::PathBuf {
    std::env::var_os(ROOT_ENV)
        .filter(|v| !v.is_empty())
        .map_or_else(|| "/".into(), std::path::PathBuf::from)
}

/// A detected board and its defaults.
#[derive(Debug, Clone, Serialize)]
pub struct Board {
    /// What was read.
    pub detection: Detection,
    /// The defaults chosen from it.
    pub defaults: Defaults,
}

impl Board {
    /// The RAM this process may use now, read again (the smaller of `MemAvailable` and the
    /// cgroup limit), and where the figure comes from.
    pub fn usable_now(&self) -> Option<(u64, String)> {
        memory::Memory::read(&SysRoot::new(&self.detection.root)).usable()
    }

    /// Detects the board whose files are under `root` (`/` for this machine).
    pub fn detect(root: &Path) -> Board {
        Board::detect_in(&SysRoot::new(root))
    }

    /// Detects from `root`, which remembers the files read (for [`SysRoot::dump`]).
    pub fn detect_in(root: &SysRoot) -> Board {
        let detection = Detection::read(root);
        let defaults = choose(&detection);
        Board { detection, defaults }
    }

    /// This machine, detected once per process: from `/`, or from the tree named by
    /// `TENSORSHARP_BOARD_ROOT` (a container without `/proc/device-tree`, given a bind mount or
    /// a `tsharp board --dump` of its host; or a fixture, to see a board's defaults elsewhere).
    pub fn host() -> &'static Board {
        static HOST: OnceLock<Board> = OnceLock::new();
        HOST.get_or_init(|| Board::detect(&host_root()))
    }

    /// The RAM budget now: the profile's share of what is usable at this moment
    /// (`MemAvailable` changes as other programs run), with a description of where it came from.
    pub fn ram_budget_now(&self) -> Option<(u64, String)> {
        let (bytes, from) = self.usable_now()?;
        let pct = self.defaults.profile.ram_percent;
        let b = self.defaults.profile.ram_share(bytes);
        Some(if pct == 100 {
            (b, from)
        } else {
            (
                b,
                format!("{pct} % of {from} (board profile {})", self.defaults.profile.id),
            )
        })
    }
}
