//! The CPU: architecture, core types per CPU (`/proc/cpuinfo` implementer + part), features
//! (`AT_HWCAP`/`AT_HWCAP2` on aarch64, cpuinfo flags on x86), which CPUs are online, and each
//! core's `cpu_capacity` and `cpuinfo_max_freq` (the big.LITTLE clusters).

use serde::Serialize;

use crate::hwcap;
use crate::sysroot::SysRoot;

/// Highest CPU number considered (the kernel's NR_CPUS on arm64 defaults to 256-4096).
pub const MAX_CPUS: usize = 4096;
/// Largest `cpu_capacity` believed (the kernel scales it to 1024).
const MAX_CAPACITY: u64 = 1 << 16;
/// Largest `cpuinfo_max_freq` believed, kHz (20 GHz).
const MAX_KHZ: u64 = 20_000_000;

/// Instruction-set family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// 64-bit Arm.
    Aarch64,
    /// x86-64.
    X86_64,
    /// Anything else (or nothing readable): the scalar kernels.
    Other,
}

impl Arch {
    /// The name as Rust's `target_arch` spells it ("other" for the rest).
    pub fn name(self) -> &'static str {
        match self {
            Arch::Aarch64 => "aarch64",
            Arch::X86_64 => "x86_64",
            Arch::Other => "other",
        }
    }
}

/// (implementer, part) from `/proc/cpuinfo` → core name. Arm Ltd's and NVIDIA's part numbers from
/// their technical reference manuals (MIDR_EL1.PartNum).
const CORE_NAMES: &[(u32, u32, &str)] = &[
    (0x41, 0xd03, "Cortex-A53"),
    (0x41, 0xd04, "Cortex-A35"),
    (0x41, 0xd05, "Cortex-A55"),
    (0x41, 0xd07, "Cortex-A57"),
    (0x41, 0xd08, "Cortex-A72"),
    (0x41, 0xd09, "Cortex-A73"),
    (0x41, 0xd0a, "Cortex-A75"),
    (0x41, 0xd0b, "Cortex-A76"),
    (0x41, 0xd0c, "Neoverse-N1"),
    (0x41, 0xd0d, "Cortex-A77"),
    (0x41, 0xd40, "Neoverse-V1"),
    (0x41, 0xd41, "Cortex-A78"),
    (0x41, 0xd42, "Cortex-A78AE"),
    (0x41, 0xd44, "Cortex-X1"),
    (0x41, 0xd46, "Cortex-A510"),
    (0x41, 0xd47, "Cortex-A710"),
    (0x41, 0xd48, "Cortex-X2"),
    (0x41, 0xd49, "Neoverse-N2"),
    (0x41, 0xd4b, "Cortex-A78C"),
    (0x41, 0xd4f, "Neoverse-V2"),
    (0x41, 0xd80, "Cortex-A520"),
    (0x41, 0xd81, "Cortex-A720"),
    (0x41, 0xd82, "Cortex-X4"),
    (0x4e, 0x003, "NVIDIA Denver 2"),
    (0x4e, 0x004, "NVIDIA Carmel"),
];

/// Small in-order cores: the little cluster when a board mixes core types and sysfs says
/// nothing about capacities.
const LITTLE_CORES: &[&str] = &["Cortex-A53", "Cortex-A35", "Cortex-A55", "Cortex-A510", "Cortex-A520"];

/// One logical CPU.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Core {
    /// CPU number (`cpuN`).
    pub id: usize,
    /// Core type ("Cortex-A76"), when the implementer and part are known.
    pub name: Option<&'static str>,
    /// MIDR implementer (aarch64).
    pub implementer: Option<u32>,
    /// MIDR part number (aarch64).
    pub part: Option<u32>,
    /// `cpu_capacity` (1024 = the fastest core), from the device tree's `capacity-dmips-mhz`.
    pub capacity: Option<u32>,
    /// `cpufreq/cpuinfo_max_freq`, kHz.
    pub max_khz: Option<u64>,
}

/// What the CPU is.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Cpu {
    /// Instruction-set family.
    pub arch: Arch,
    /// x86 `vendor_id` ("GenuineIntel", "AuthenticAMD"); the implementer's name on aarch64.
    pub vendor: Option<String>,
    /// x86 `model name`; on aarch64 the core types ("4x Cortex-A55 + 4x Cortex-A76").
    pub model_name: Option<String>,
    /// The online CPUs, by number.
    pub cores: Vec<Core>,
    /// CPU features that matter for the kernels (asimd, asimddp, i8mm, sve, sve2, bf16 on
    /// aarch64; avx2, fma, f16c, avx512*, amx_* on x86), present on every core.
    pub features: Vec<String>,
    /// Where the features came from ("getauxval(AT_HWCAP, AT_HWCAP2)", "/proc/cpuinfo flags", ...).
    pub features_source: &'static str,
    /// The board model line some firmwares put in cpuinfo (Raspberry Pi: "Model : ...").
    pub cpuinfo_model: Option<String>,
}

impl Cpu {
    /// Whether every core has `feature`.
    pub fn has(&self, feature: &str) -> bool {
        self.features.iter().any(|f| f == feature)
    }

    /// Reads the CPU description under `root`.
    pub fn read(root: &SysRoot) -> Cpu {
        let info = root.text("/proc/cpuinfo").unwrap_or_default();
        let parsed = parse_cpuinfo(&info);
        let arch = if root.is_live() {
            match std::env::consts::ARCH {
                "aarch64" => Arch::Aarch64,
                "x86_64" => Arch::X86_64,
                _ => Arch::Other,
            }
        } else if parsed.procs.iter().any(|p| p.implementer.is_some()) || parsed.features_line.is_some() {
            Arch::Aarch64
        } else if parsed.vendor.is_some() || parsed.flags.is_some() {
            Arch::X86_64
        } else {
            Arch::Other
        };

        let online = online_cpus(root, &parsed);
        let cores: Vec<Core> = online
            .iter()
            .map(|&id| {
                let p = parsed.procs.iter().find(|p| p.id == id);
                let (implementer, part) = (p.and_then(|p| p.implementer), p.and_then(|p| p.part));
                let name = match (implementer, part) {
                    (Some(i), Some(pt)) => CORE_NAMES.iter().find(|c| c.0 == i && c.1 == pt).map(|c| c.2),
                    _ => None,
                };
                let capacity = root
                    .number(&format!("/sys/devices/system/cpu/cpu{id}/cpu_capacity"))
                    .filter(|&c| c > 0 && c <= MAX_CAPACITY)
                    .map(|c| c as u32);
                let max_khz = root
                    .number(&format!("/sys/devices/system/cpu/cpu{id}/cpufreq/cpuinfo_max_freq"))
                    .filter(|&f| f > 0 && f <= MAX_KHZ);
                Core {
                    id,
                    name,
                    implementer,
                    part,
                    capacity,
                    max_khz,
                }
            })
            .collect();

        let (features, features_source) = match arch {
            Arch::Aarch64 => hwcap::aarch64_features(root, parsed.features_line.as_deref()),
            Arch::X86_64 => (
                x86_features(parsed.flags.as_deref().unwrap_or("")),
                "/proc/cpuinfo flags",
            ),
            Arch::Other => (Vec::new(), "none"),
        };
        let vendor = parsed.vendor.clone().or_else(|| {
            cores
                .iter()
                .find_map(|c| c.implementer)
                .map(|i| implementer_name(i).to_string())
        });
        let model_name = parsed.model_name.clone().or_else(|| core_summary(&cores));
        Cpu {
            arch,
            vendor,
            model_name,
            cores,
            features,
            features_source,
            cpuinfo_model: parsed.board_model.clone(),
        }
    }

    /// The fastest cores: those within 60 % of the best core's capacity (else maximum frequency,
    /// else core type), so a big.LITTLE board's big cluster (RK3588's four Cortex-A76) and all
    /// cores of a homogeneous one.
    pub fn big_cores(&self) -> Vec<usize> {
        // The measures in order of trust; the first that every core has decides.
        let measures: [fn(&Core) -> Option<u64>; 3] = [
            |c| c.capacity.map(u64::from),
            |c| c.max_khz,
            |c| {
                Some(if c.name.is_some_and(|n| LITTLE_CORES.contains(&n)) {
                    1
                } else {
                    2
                })
            },
        ];
        for measure in measures {
            let scores: Option<Vec<u64>> = self.cores.iter().map(measure).collect();
            if let Some(scores) = scores {
                let best = scores.iter().copied().max().unwrap_or(0);
                if best == 0 {
                    continue;
                }
                // 60 %: a little core is a third to a half of a big one; a mid core (0.7) counts as big.
                return self
                    .cores
                    .iter()
                    .zip(&scores)
                    .filter(|(_, &s)| s * 10 >= best * 6)
                    .map(|(c, _)| c.id)
                    .collect();
            }
        }
        self.cores.iter().map(|c| c.id).collect()
    }
}

fn implementer_name(i: u32) -> &'static str {
    match i {
        0x41 => "ARM",
        0x42 => "Broadcom",
        0x43 => "Cavium",
        0x48 => "HiSilicon",
        0x4e => "NVIDIA",
        0x51 => "Qualcomm",
        0x61 => "Apple",
        0xc0 => "Ampere",
        _ => "unknown implementer",
    }
}

/// "4x Cortex-A55 + 4x Cortex-A76" from the cores' types, in CPU order; `None` when no type is known.
fn core_summary(cores: &[Core]) -> Option<String> {
    cores.iter().find_map(|c| c.name)?;
    let mut groups: Vec<(&str, usize)> = Vec::new();
    for c in cores {
        let n = c.name.unwrap_or("unknown core");
        match groups.iter_mut().find(|g| g.0 == n) {
            Some(g) => g.1 += 1,
            None => groups.push((n, 1)),
        }
    }
    (!groups.is_empty()).then(|| {
        groups
            .iter()
            .map(|(n, k)| format!("{k}x {n}"))
            .collect::<Vec<_>>()
            .join(" + ")
    })
}

/// The x86 flags of the AVX2 tier (with FMA and F16C).
pub(crate) const X86_AVX2: &[&str] = &["avx2", "fma", "f16c"];
/// What the AVX-512 tier adds.
pub(crate) const X86_AVX512: &[&str] = &["avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni"];
/// What the AMX tier adds.
pub(crate) const X86_AMX: &[&str] = &["amx_tile", "amx_int8"];
/// Other flags worth reporting.
const X86_OTHER: &[&str] = &["sse4_2", "avx", "avx512_bf16", "amx_bf16"];

/// The interesting flags among cpuinfo's, in a fixed order.
fn x86_features(flags: &str) -> Vec<String> {
    let have: Vec<&str> = flags.split_whitespace().collect();
    [X86_OTHER, X86_AVX2, X86_AVX512, X86_AMX]
        .into_iter()
        .flatten()
        .filter(|f| have.contains(f))
        .map(|f| f.to_string())
        .collect()
}

/// One `processor` block of cpuinfo.
#[derive(Debug, Default)]
struct Proc {
    id: usize,
    implementer: Option<u32>,
    part: Option<u32>,
}

#[derive(Debug, Default)]
struct CpuInfo {
    procs: Vec<Proc>,
    vendor: Option<String>,
    model_name: Option<String>,
    /// The x86 flags common to every processor.
    flags: Option<String>,
    /// The aarch64 Features common to every processor.
    features_line: Option<String>,
    board_model: Option<String>,
}

fn parse_hex(v: &str) -> Option<u32> {
    u32::from_str_radix(v.trim().trim_start_matches("0x").trim_start_matches("0X"), 16).ok()
}

/// Keeps the words of `a` that are also in `b` (features every core has).
fn intersect(a: &str, b: &str) -> String {
    let b: Vec<&str> = b.split_whitespace().collect();
    a.split_whitespace()
        .filter(|w| b.contains(w))
        .collect::<Vec<_>>()
        .join(" ")
}

fn parse_cpuinfo(text: &str) -> CpuInfo {
    let mut info = CpuInfo::default();
    let mut cur: Option<Proc> = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "processor" => {
                if let Some(p) = cur.take() {
                    info.procs.push(p);
                }
                // "Processor : AArch64 Processor rev 4" (old arm64 kernels) is not a number.
                cur = value
                    .parse::<usize>()
                    .ok()
                    .filter(|&id| id < MAX_CPUS)
                    .map(|id| Proc { id, ..Proc::default() });
            }
            "CPU implementer" => {
                if let Some(p) = cur.as_mut() {
                    p.implementer = parse_hex(value);
                }
            }
            "CPU part" => {
                if let Some(p) = cur.as_mut() {
                    p.part = parse_hex(value);
                }
            }
            "vendor_id" if info.vendor.is_none() => info.vendor = Some(value.to_string()),
            "model name" if info.model_name.is_none() && !value.is_empty() => info.model_name = Some(value.to_string()),
            "flags" => info.flags = Some(info.flags.as_deref().map_or(value.to_string(), |f| intersect(f, value))),
            "Features" => {
                info.features_line = Some(
                    info.features_line
                        .as_deref()
                        .map_or(value.to_string(), |f| intersect(f, value)),
                )
            }
            "Model" if !value.is_empty() => info.board_model = Some(value.to_string()),
            _ => {}
        }
    }
    if let Some(p) = cur {
        info.procs.push(p);
    }
    info.procs.sort_by_key(|p| p.id);
    info.procs.dedup_by_key(|p| p.id);
    info
}

/// Parses a kernel CPU list ("0-3,6,8-9"); `None` when malformed.
pub fn parse_cpu_list(s: &str) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.trim().is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<usize>().ok()?, b.trim().parse::<usize>().ok()?),
            None => {
                let a = part.trim().parse::<usize>().ok()?;
                (a, a)
            }
        };
        if a > b || b >= MAX_CPUS {
            return None;
        }
        out.extend(a..=b);
    }
    out.sort_unstable();
    out.dedup();
    (!out.is_empty()).then_some(out)
}

/// The online CPUs: sysfs `online`, else the processors cpuinfo lists, else one.
fn online_cpus(root: &SysRoot, info: &CpuInfo) -> Vec<usize> {
    if let Some(list) = root
        .line("/sys/devices/system/cpu/online")
        .and_then(|l| parse_cpu_list(&l))
    {
        return list;
    }
    if !info.procs.is_empty() {
        return info.procs.iter().map(|p| p.id).collect();
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse() {
        assert_eq!(parse_cpu_list("0-3,6\n"), Some(vec![0, 1, 2, 3, 6]));
        assert_eq!(parse_cpu_list("5"), Some(vec![5]));
        for bad in ["", "3-1", "a", "0-99999", "1,,x"] {
            assert_eq!(parse_cpu_list(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn cpuinfo_blocks_and_common_features() {
        let text = "processor\t: 0\nFeatures\t: fp asimd asimddp\nCPU implementer\t: 0x41\nCPU part\t: 0xd05\n\n\
                    processor\t: 4\nFeatures\t: fp asimd asimddp i8mm\nCPU implementer\t: 0x41\nCPU part\t: 0xd0b\n";
        let info = parse_cpuinfo(text);
        assert_eq!(info.procs.len(), 2);
        assert_eq!((info.procs[1].id, info.procs[1].part), (4, Some(0xd0b)));
        assert_eq!(info.features_line.as_deref(), Some("fp asimd asimddp"));
    }
}
