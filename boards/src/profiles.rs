//! The board profiles: one row of data per board, matched by device-tree `compatible` string.
//! Figures from the vendors' public datasheets (memory bandwidth is the theoretical peak of the
//! memory interface; compute capability from NVIDIA's CUDA GPU list).
//!
//! Adding a board is adding a row (and a fixture tree under `tests/fixtures/`, which
//! `tsharp board --dump DIR` makes on the board itself).

use serde::Serialize;

/// The kernel tier a profile asks for: a named one, or the best the CPU has.
pub const BEST_TIER: &str = "best";

/// One board's defaults.
#[derive(Debug, Clone, Serialize)]
pub struct BoardProfile {
    /// Stable identifier ("jetson-orin-nano-8gb").
    pub id: &'static str,
    /// Human name.
    pub name: &'static str,
    /// Device-tree `compatible` strings that select this profile (the board's or module's
    /// most specific ones; a SoC-wide string such as "nvidia,tegra234" only in fallback rows).
    pub compatible: &'static [&'static str],
    /// Peak memory bandwidth, GB/s (decode speed is bounded by it).
    pub mem_bandwidth_gbs: Option<f32>,
    /// CUDA compute capability of the integrated GPU ("8.7").
    pub cuda_cc: Option<&'static str>,
    /// CPU numbers of the big cores, from the SoC's documentation; empty: every core is the
    /// same. Checked against the detected `cpu_capacity` / frequencies, which win on conflict.
    pub big_cores: &'static [usize],
    /// Default threads (one per big core); 0: one per big core detected.
    pub threads: usize,
    /// Kernel tier ("dotprod", "neon", or [`BEST_TIER`]); a CPU without the tier's features
    /// gets the best it has.
    pub tier: &'static str,
    /// Default context length cap (positions).
    pub n_ctx: usize,
    /// Default KV cache type ("f16", "q8_0").
    pub kv_type: &'static str,
    /// RAM budget: this percentage of the usable RAM (`MemAvailable`, or the cgroup limit when
    /// smaller). Below 100 where the GPU, the camera and video engines share the DRAM.
    pub ram_percent: u8,
}

impl BoardProfile {
    /// This profile's RAM budget out of `usable` bytes (`ram_percent` of it).
    pub fn ram_share(&self, usable: u64) -> u64 {
        (usable as u128 * self.ram_percent as u128 / 100) as u64
    }
}

const fn row(id: &'static str, name: &'static str, compatible: &'static [&'static str]) -> BoardProfile {
    BoardProfile {
        id,
        name,
        compatible,
        mem_bandwidth_gbs: None,
        cuda_cc: None,
        big_cores: &[],
        threads: 0,
        tier: BEST_TIER,
        n_ctx: 4096,
        kv_type: "f16",
        ram_percent: 100,
    }
}

/// Jetson modules share their DRAM with the GPU, the camera ISP and the video engines: the
/// default budget leaves a quarter for them.
const JETSON_RAM: u8 = 75;
/// Small single-board computers run the rest of the appliance (audio, network) beside us.
const SBC_RAM: u8 = 85;

/// Every profile; matched in the order of the board's `compatible` list (most specific first),
/// so a module's row wins over its SoC's fallback row.
pub const PROFILES: &[BoardProfile] = &[
    BoardProfile {
        mem_bandwidth_gbs: Some(204.8),
        cuda_cc: Some("8.7"),
        threads: 12,
        tier: "dotprod",
        ram_percent: JETSON_RAM,
        ..row(
            "jetson-agx-orin",
            "NVIDIA Jetson AGX Orin",
            &[
                "nvidia,p3737-0000+p3701-0000",
                "nvidia,p3737-0000+p3701-0004",
                "nvidia,p3737-0000+p3701-0005",
                "nvidia,p3701-0000",
                "nvidia,p3701-0004",
                "nvidia,p3701-0005",
                "nvidia,p3701-0008",
            ],
        )
    },
    BoardProfile {
        mem_bandwidth_gbs: Some(102.4),
        cuda_cc: Some("8.7"),
        threads: 8,
        tier: "dotprod",
        ram_percent: JETSON_RAM,
        ..row(
            "jetson-orin-nx-16gb",
            "NVIDIA Jetson Orin NX 16GB",
            &[
                "nvidia,p3768-0000+p3767-0000",
                "nvidia,p3509-0000+p3767-0000",
                "nvidia,p3767-0000",
            ],
        )
    },
    BoardProfile {
        mem_bandwidth_gbs: Some(102.4),
        cuda_cc: Some("8.7"),
        threads: 6,
        tier: "dotprod",
        ram_percent: JETSON_RAM,
        ..row(
            "jetson-orin-nx-8gb",
            "NVIDIA Jetson Orin NX 8GB",
            &[
                "nvidia,p3768-0000+p3767-0001",
                "nvidia,p3509-0000+p3767-0001",
                "nvidia,p3767-0001",
            ],
        )
    },
    BoardProfile {
        mem_bandwidth_gbs: Some(68.0),
        cuda_cc: Some("8.7"),
        threads: 6,
        tier: "dotprod",
        ram_percent: JETSON_RAM,
        ..row(
            "jetson-orin-nano-8gb",
            "NVIDIA Jetson Orin Nano 8GB",
            &[
                "nvidia,p3768-0000+p3767-0005",
                "nvidia,p3768-0000+p3767-0003",
                "nvidia,p3509-0000+p3767-0003",
                "nvidia,p3767-0005",
                "nvidia,p3767-0003",
            ],
        )
    },
    BoardProfile {
        mem_bandwidth_gbs: Some(34.0),
        cuda_cc: Some("8.7"),
        threads: 6,
        tier: "dotprod",
        n_ctx: 2048,
        kv_type: "q8_0",
        ram_percent: JETSON_RAM,
        ..row(
            "jetson-orin-nano-4gb",
            "NVIDIA Jetson Orin Nano 4GB",
            &[
                "nvidia,p3768-0000+p3767-0004",
                "nvidia,p3509-0000+p3767-0004",
                "nvidia,p3767-0004",
            ],
        )
    },
    // Any other Orin module or carrier: the SoC is known, the memory is not; the smallest
    // module's bandwidth and every online core.
    BoardProfile {
        cuda_cc: Some("8.7"),
        tier: "dotprod",
        ram_percent: JETSON_RAM,
        ..row(
            "jetson-orin",
            "NVIDIA Jetson Orin (module not in the table)",
            &["nvidia,p3767", "nvidia,tegra234"],
        )
    },
    BoardProfile {
        mem_bandwidth_gbs: Some(59.7),
        cuda_cc: Some("7.2"),
        threads: 6,
        // NVIDIA Carmel is ARMv8.2-A without the dot-product extension.
        tier: "neon",
        ram_percent: JETSON_RAM,
        ..row(
            "jetson-xavier-nx",
            "NVIDIA Jetson Xavier NX",
            &[
                "nvidia,p3509-0000+p3668-0000",
                "nvidia,p3509-0000+p3668-0001",
                "nvidia,p3449-0000+p3668-0000",
                "nvidia,p3449-0000+p3668-0001",
                "nvidia,p3668-0000",
                "nvidia,p3668-0001",
                "nvidia,p3668",
            ],
        )
    },
    BoardProfile {
        mem_bandwidth_gbs: Some(136.5),
        cuda_cc: Some("7.2"),
        threads: 8,
        tier: "neon",
        ram_percent: JETSON_RAM,
        ..row(
            "jetson-agx-xavier",
            "NVIDIA Jetson AGX Xavier",
            &[
                "nvidia,p2972-0000",
                "nvidia,p2822-0000+p2888-0001",
                "nvidia,p2888-0001",
                "nvidia,p2888-0004",
                "nvidia,p2888-0006",
                "nvidia,p2888-0008",
                "nvidia,p2888",
                "nvidia,galen",
            ],
        )
    },
    BoardProfile {
        cuda_cc: Some("7.2"),
        tier: "neon",
        ram_percent: JETSON_RAM,
        ..row(
            "jetson-xavier",
            "NVIDIA Jetson Xavier (module not in the table)",
            &["nvidia,tegra194"],
        )
    },
    BoardProfile {
        mem_bandwidth_gbs: Some(25.6),
        cuda_cc: Some("5.3"),
        threads: 4,
        tier: "neon",
        n_ctx: 2048,
        kv_type: "q8_0",
        ram_percent: JETSON_RAM,
        ..row(
            "jetson-nano",
            "NVIDIA Jetson Nano",
            &[
                "nvidia,p3450-0000",
                "nvidia,p3541-0000",
                "nvidia,p3449-0000-b00+p3448-0000-b00",
                "nvidia,p3449-0000-a02+p3448-0000-a02",
                "nvidia,p3448-0000",
                "nvidia,p3448-0002",
                "nvidia,p3448-0003",
                "nvidia,jetson-nano",
                "nvidia,tegra210",
            ],
        )
    },
    BoardProfile {
        mem_bandwidth_gbs: Some(12.8),
        threads: 4,
        // Cortex-A72: ARMv8.0-A, no dot product.
        tier: "neon",
        n_ctx: 2048,
        kv_type: "q8_0",
        ram_percent: SBC_RAM,
        ..row(
            "raspberry-pi-4",
            "Raspberry Pi 4",
            &[
                "raspberrypi,4-model-b",
                "raspberrypi,400",
                "raspberrypi,4-compute-module",
                "brcm,bcm2711",
            ],
        )
    },
    BoardProfile {
        mem_bandwidth_gbs: Some(17.1),
        threads: 4,
        tier: "dotprod",
        ram_percent: SBC_RAM,
        ..row(
            "raspberry-pi-5",
            "Raspberry Pi 5",
            &[
                "raspberrypi,5-model-b",
                "raspberrypi,500",
                "raspberrypi,5-compute-module",
                "brcm,bcm2712",
            ],
        )
    },
    // RK3588 and RK3588S (the same cores and memory interface; fewer I/O lanes): 4x Cortex-A55
    // (cpu0-3) + 4x Cortex-A76 (cpu4-7); decode on the A76 cluster only (a thread on an A55 holds
    // every step back).
    BoardProfile {
        mem_bandwidth_gbs: Some(34.1),
        big_cores: &[4, 5, 6, 7],
        threads: 4,
        tier: "dotprod",
        ram_percent: SBC_RAM,
        ..row(
            "rk3588",
            "Rockchip RK3588 / RK3588S",
            &["rockchip,rk3588", "rockchip,rk3588s"],
        )
    },
];

/// Any other aarch64 machine: what the CPU and memory say.
pub const GENERIC_AARCH64: BoardProfile = row("generic-aarch64", "generic aarch64", &[]);
/// Any x86-64 machine.
pub const GENERIC_X86_64: BoardProfile = row("generic-x86-64", "generic x86-64", &[]);
/// Any other architecture (the portable kernels).
pub const GENERIC: BoardProfile = row("generic", "generic", &[]);

/// The profile with this id (the table's rows and the generic ones).
pub fn by_id(id: &str) -> Option<&'static BoardProfile> {
    PROFILES
        .iter()
        .chain([&GENERIC_AARCH64, &GENERIC_X86_64, &GENERIC])
        .find(|p| p.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        let mut ids = std::collections::HashSet::new();
        let mut compat = std::collections::HashSet::new();
        for p in PROFILES {
            assert!(ids.insert(p.id), "duplicate id {}", p.id);
            assert!(!p.compatible.is_empty(), "{} matches nothing", p.id);
            for c in p.compatible {
                assert!(compat.insert(*c), "{c} selects two profiles");
                assert!(c.contains(','), "{c} is not a vendor,device string");
            }
            assert!(
                ["best", "neon", "dotprod"].contains(&p.tier),
                "{}: tier {}",
                p.id,
                p.tier
            );
            assert!(["f16", "q8_0"].contains(&p.kv_type), "{}: kv {}", p.id, p.kv_type);
            assert!((1..=100).contains(&p.ram_percent) && p.n_ctx >= 512, "{}", p.id);
            assert!(p.big_cores.is_empty() || p.threads == p.big_cores.len(), "{}", p.id);
        }
        assert!(by_id("generic-x86-64").is_some() && by_id("rk3588").is_some() && by_id("nope").is_none());
    }
}
