//! aarch64 CPU features: `getauxval(AT_HWCAP)` / `getauxval(AT_HWCAP2)` on the running system,
//! `/proc/self/auxv` in a dumped tree, and cpuinfo's `Features` line as the last resort.

use crate::sysroot::SysRoot;

/// `AT_HWCAP` (include/uapi/linux/auxvec.h).
pub const AT_HWCAP: u64 = 16;
/// `AT_HWCAP2`.
pub const AT_HWCAP2: u64 = 26;

/// `AT_HWCAP` bits (arch/arm64/include/uapi/asm/hwcap.h) and the names cpuinfo gives them; only
/// those that matter for the kernels or describe the core's generation.
const HWCAP: &[(u32, &str)] = &[
    (0, "fp"),
    (1, "asimd"),
    (8, "atomics"),
    (9, "fphp"),
    (10, "asimdhp"),
    (12, "asimdrdm"),
    (20, "asimddp"),
    (22, "sve"),
    (23, "asimdfhm"),
];

/// `AT_HWCAP2` bits.
const HWCAP2: &[(u32, &str)] = &[(1, "sve2"), (9, "svei8mm"), (12, "svebf16"), (13, "i8mm"), (14, "bf16")];

/// The feature names set in `hwcap` / `hwcap2`, in table order.
pub fn names(hwcap: u64, hwcap2: u64) -> Vec<String> {
    let pick = |bits: u64, table: &[(u32, &str)]| -> Vec<String> {
        table
            .iter()
            .filter(|(b, _)| bits & (1u64 << b) != 0)
            .map(|(_, n)| n.to_string())
            .collect()
    };
    let mut v = pick(hwcap, HWCAP);
    v.extend(pick(hwcap2, HWCAP2));
    v
}

/// `AT_HWCAP` and `AT_HWCAP2` from an auxiliary vector (`/proc/self/auxv`: native-endian
/// 64-bit type/value pairs, ended by `AT_NULL`); `None` when malformed or without `AT_HWCAP`.
pub fn parse_auxv(bytes: &[u8]) -> Option<(u64, u64)> {
    let (mut hwcap, mut hwcap2) = (None, 0);
    for pair in bytes.chunks_exact(16) {
        let word = |i: usize| u64::from_ne_bytes(pair[i..i + 8].try_into().unwrap_or([0; 8]));
        match (word(0), word(8)) {
            (0, _) => break,
            (AT_HWCAP, v) => hwcap = Some(v),
            (AT_HWCAP2, v) => hwcap2 = v,
            _ => {}
        }
    }
    Some((hwcap?, hwcap2))
}

/// The interesting aarch64 features, and where they came from.
pub fn aarch64_features(root: &SysRoot, cpuinfo_features: Option<&str>) -> (Vec<String>, &'static str) {
    // Recorded for `--dump` on a live system, read on a dumped tree.
    let auxv = root.bytes("/proc/self/auxv").and_then(|b| parse_auxv(&b));
    if root.is_live() {
        if let Some((h, h2)) = live_hwcaps() {
            return (names(h, h2), "getauxval(AT_HWCAP, AT_HWCAP2)");
        }
    } else if let Some((h, h2)) = auxv {
        return (names(h, h2), "/proc/self/auxv");
    }
    let keep: Vec<&str> = HWCAP.iter().chain(HWCAP2).map(|(_, n)| *n).collect();
    let words = cpuinfo_features.unwrap_or("");
    let from_cpuinfo: Vec<String> = keep
        .iter()
        .filter(|k| words.split_whitespace().any(|w| w == **k))
        .map(|k| k.to_string())
        .collect();
    (from_cpuinfo, "/proc/cpuinfo Features")
}

#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
fn live_hwcaps() -> Option<(u64, u64)> {
    // SAFETY: getauxval only reads the process's auxiliary vector; it has no preconditions and
    // returns 0 for an absent entry.
    let (h, h2) = unsafe { (libc::getauxval(libc::AT_HWCAP), libc::getauxval(libc::AT_HWCAP2)) };
    (h != 0).then_some((h, h2))
}

#[cfg(not(all(target_os = "linux", target_arch = "aarch64")))]
fn live_hwcaps() -> Option<(u64, u64)> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_map_to_cpuinfo_names() {
        let h = (1 << 0) | (1 << 1) | (1 << 20) | (1 << 22);
        let h2 = (1 << 1) | (1 << 13) | (1 << 14);
        assert_eq!(names(h, h2), ["fp", "asimd", "asimddp", "sve", "sve2", "i8mm", "bf16"]);
        assert!(names(0, 0).is_empty());
    }

    #[test]
    fn auxv_pairs_parse() {
        let mut v = Vec::new();
        for (t, x) in [(6u64, 4096u64), (AT_HWCAP, 0b11), (AT_HWCAP2, 1 << 13), (0, 0)] {
            v.extend_from_slice(&t.to_ne_bytes());
            v.extend_from_slice(&x.to_ne_bytes());
        }
        assert_eq!(parse_auxv(&v), Some((0b11, 1 << 13)));
        assert_eq!(parse_auxv(&v[..20]), None, "truncated before AT_HWCAP");
        assert_eq!(parse_auxv(b""), None);
    }

    /// On aarch64 (under qemu -cpu max in the test command) getauxval answers, and the features
    /// it gives agree with what the kernels' tier detection sees.
    #[cfg(all(target_os = "linux", target_arch = "aarch64"))]
    #[test]
    fn live_hwcaps_answer() {
        let (h, h2) = live_hwcaps().expect("getauxval(AT_HWCAP)");
        let n = names(h, h2);
        assert!(n.iter().any(|f| f == "asimd"), "{n:?}");
        assert_eq!(
            n.iter().any(|f| f == "asimddp"),
            std::arch::is_aarch64_feature_detected!("dotprod")
        );
        assert_eq!(
            n.iter().any(|f| f == "i8mm"),
            std::arch::is_aarch64_feature_detected!("i8mm")
        );
    }
}
