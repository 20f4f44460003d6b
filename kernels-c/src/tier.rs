//! ISA tiers: which kernel object to run, chosen by CPU feature detection (cpuid on x86-64,
//! HWCAP via `getauxval` on Linux/aarch64), overridable with `TSHARP_KERNELS`.

use crate::ffi::{self, KernelTable};
use crate::KernelError;

/// The environment variable that forces a tier (`scalar`, `avx2`, `avx512`, `amx`, `neon`,
/// `dotprod`).
pub const TIER_ENV: &str = "TSHARP_KERNELS";

/// One compiled kernel tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    /// Portable C, baseline target flags.
    Scalar,
    /// x86-64 AVX2 + FMA + F16C.
    Avx2,
    /// x86-64 AVX-512 F/BW/VL/DQ with VNNI.
    Avx512,
    /// The AVX-512 tier with AMX-INT8 tile products for prefill matmuls (Sapphire Rapids and
    /// later; needs Linux 5.16+ to grant the tile state).
    Amx,
    /// aarch64 Advanced SIMD (armv8-a).
    Neon,
    /// aarch64 NEON with the dot-product extension (armv8.2-a+dotprod).
    Dotprod,
}

impl Tier {
    /// Every tier, best last.
    pub const ALL: [Tier; 6] = [
        Tier::Scalar,
        Tier::Avx2,
        Tier::Avx512,
        Tier::Amx,
        Tier::Neon,
        Tier::Dotprod,
    ];

    /// The tier's name, as `TSHARP_KERNELS` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Scalar => "scalar",
            Tier::Avx2 => "avx2",
            Tier::Avx512 => "avx512",
            Tier::Amx => "amx",
            Tier::Neon => "neon",
            Tier::Dotprod => "dotprod",
        }
    }

    /// Parses a tier name.
    pub fn from_name(s: &str) -> Option<Tier> {
        Tier::ALL
            .iter()
            .copied()
            .find(|t| t.name().eq_ignore_ascii_case(s.trim()))
    }

    /// Whether this build contains the tier (it is compiled for the target architecture).
    pub fn is_compiled(self) -> bool {
        match self {
            Tier::Scalar => true,
            Tier::Avx2 | Tier::Avx512 | Tier::Amx => cfg!(ts_tier_x86),
            Tier::Neon | Tier::Dotprod => cfg!(ts_tier_aarch64),
        }
    }

    /// Whether this build contains the tier and this CPU can run it.
    pub fn is_supported(self) -> bool {
        self.is_compiled() && cpu_has(self)
    }

    /// Every tier this host can run, best last.
    pub fn supported() -> Vec<Tier> {
        Tier::ALL.iter().copied().filter(|t| t.is_supported()).collect()
    }

    /// The best tier this host can run.
    pub fn best() -> Tier {
        Tier::supported().last().copied().unwrap_or(Tier::Scalar)
    }

    /// The tier named by `TSHARP_KERNELS`, or the best one when it is unset.
    pub fn from_env() -> Result<Tier, KernelError> {
        match std::env::var(TIER_ENV) {
            Err(_) => Ok(Tier::best()),
            Ok(s) if s.trim().is_empty() || s.trim() == "auto" => Ok(Tier::best()),
            Ok(s) => {
                let t = Tier::from_name(&s).ok_or_else(|| KernelError::UnknownTier(s.clone()))?;
                if !t.is_supported() {
                    return Err(KernelError::TierUnavailable(t));
                }
                Ok(t)
            }
        }
    }

    pub(crate) fn table(self) -> Result<&'static KernelTable, KernelError> {
        if !self.is_supported() {
            return Err(KernelError::TierUnavailable(self));
        }
        // SAFETY: each `ts_*_kernel_table` returns a pointer to a static, immutable table that
        // lives for the whole program; the tier is compiled in (checked above).
        let ptr = unsafe {
            match self {
                Tier::Scalar => ffi::ts_scalar_kernel_table(),
                #[cfg(ts_tier_x86)]
                Tier::Avx2 => ffi::ts_avx2_kernel_table(),
                #[cfg(ts_tier_x86)]
                Tier::Avx512 => ffi::ts_avx512_kernel_table(),
                #[cfg(ts_tier_x86)]
                Tier::Amx => ffi::ts_amx_kernel_table(),
                #[cfg(ts_tier_aarch64)]
                Tier::Neon => ffi::ts_neon_kernel_table(),
                #[cfg(ts_tier_aarch64)]
                Tier::Dotprod => ffi::ts_dotprod_kernel_table(),
                #[allow(unreachable_patterns)]
                _ => return Err(KernelError::TierUnavailable(self)),
            }
        };
        // SAFETY: non-null pointer to a 'static table (see above).
        Ok(unsafe { &*ptr })
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(target_arch = "x86_64")]
fn cpu_has(t: Tier) -> bool {
    use std::arch::is_x86_feature_detected as has;
    match t {
        Tier::Scalar => true,
        Tier::Avx2 => has!("avx2") && has!("fma") && has!("f16c"),
        Tier::Amx => cpu_has(Tier::Avx512) && amx_usable(),
        Tier::Avx512 => {
            has!("avx2")
                && has!("fma")
                && has!("f16c")
                && has!("avx512f")
                && has!("avx512bw")
                && has!("avx512vl")
                && has!("avx512dq")
                && has!("avx512vnni")
        }
        Tier::Neon | Tier::Dotprod => false,
    }
}

/// AMX-INT8 present, enabled by the OS and granted to this process (asked once).
#[cfg(target_arch = "x86_64")]
fn amx_usable() -> bool {
    static USABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    // SAFETY: ts_amx_int8_usable only runs cpuid/xgetbv (after checking OSXSAVE) and the
    // arch_prctl request; it touches no memory of ours.
    *USABLE.get_or_init(|| unsafe { crate::ffi::ts_amx_int8_usable() } == 1)
}

#[cfg(target_arch = "aarch64")]
fn cpu_has(t: Tier) -> bool {
    use std::arch::is_aarch64_feature_detected as has;
    match t {
        Tier::Scalar => true,
        Tier::Neon => has!("neon"),
        Tier::Dotprod => has!("neon") && has!("dotprod") && has!("fp16"),
        Tier::Avx2 | Tier::Avx512 | Tier::Amx => false,
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn cpu_has(t: Tier) -> bool {
    t == Tier::Scalar
}
