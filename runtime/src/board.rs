//! The board profile's defaults, as a session takes them: every value a caller leaves automatic
//! (threads 0, context 0, no RAM budget, no `TSHARP_KERNELS`, KV type `auto`) comes from the
//! profile `tensorsharp-boards` picks for this machine (`tsharp board` shows it and why).

use tensorsharp_kernels::{Kernels, Tier, TIER_ENV};

pub use tensorsharp_boards::{Board, Defaults};

use crate::error::Result;
use crate::session::KvType;

/// This machine's board and defaults (detected once per process).
pub fn host() -> &'static Board {
    Board::host()
}

/// The kernel tier: `TSHARP_KERNELS` when set; else the board profile's tier when this build
/// and CPU run it; else the best this CPU runs.
pub fn tier() -> Result<Tier> {
    if std::env::var_os(TIER_ENV).is_some() {
        return Ok(Tier::from_env()?);
    }
    Ok(Tier::from_name(&host().defaults.tier)
        .filter(|t| t.is_supported())
        .unwrap_or_else(Tier::best))
}

/// The kernels of [`tier`].
pub fn kernels() -> Result<Kernels> {
    Ok(Kernels::new(tier()?)?)
}

/// A KV type by name, `auto` being the board profile's.
pub fn kv_type(name: &str) -> Result<KvType> {
    if name.trim().eq_ignore_ascii_case("auto") {
        KvType::from_name(host().defaults.kv_type)
    } else {
        KvType::from_name(name)
    }
}
