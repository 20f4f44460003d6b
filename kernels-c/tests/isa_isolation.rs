//! Each tier is its own object compiled with its own flags: the baseline objects must not
//! contain instructions of the newer tiers (otherwise a baseline CPU would fault on them).
//! Checked by disassembling the built static libraries with the target's objdump
//! (`OBJDUMP` overrides the tool; `scripts/setup.sh` installs binutils for both targets).

use std::process::Command;

fn disassemble(tier: &str) -> String {
    let text = disassemble_lib(&format!("ts_kernels_{tier}"));
    assert!(text.lines().count() > 1000, "{tier}: suspiciously little code");
    text
}

fn disassemble_lib(name: &str) -> String {
    // build.rs puts each library in a directory of its own: the tier's name, or "cpu".
    let dir = name.strip_prefix("ts_kernels_").unwrap_or("cpu");
    let lib = format!("{}/{dir}/lib{name}.a", env!("TS_KERNELS_LIB_DIR"));
    let tool = std::env::var("OBJDUMP").unwrap_or_else(|_| {
        if cfg!(target_arch = "aarch64") {
            "aarch64-linux-gnu-objdump".into()
        } else {
            "objdump".into()
        }
    });
    let out = Command::new(&tool)
        .arg("-d")
        .arg(&lib)
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert!(
        out.status.success(),
        "{tool} -d {lib}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

#[test]
#[cfg(target_arch = "x86_64")]
fn x86_each_tier_uses_only_its_own_instructions() {
    let scalar = disassemble("scalar");
    assert_eq!(
        count(&scalar, "%ymm") + count(&scalar, "%zmm") + count(&scalar, "{vex}") + count(&scalar, "\tv"),
        0
    );
    let avx2 = disassemble("avx2");
    assert!(count(&avx2, "%ymm") > 100, "the avx2 tier should use 256-bit registers");
    assert_eq!(count(&avx2, "%zmm") + count(&avx2, "vpdpbusd") + count(&avx2, "{%k"), 0);
    let avx512 = disassemble("avx512");
    assert!(count(&avx512, "vpdpbusd") > 0, "the avx512 tier should use VNNI");
    assert!(count(&avx512, "%zmm") > 0);
    assert_eq!(
        count(&avx512, "tdpb") + count(&avx512, "ldtilecfg"),
        0,
        "AMX instructions belong to the amx tier only"
    );
    let amx = disassemble("amx");
    assert!(count(&amx, "tdpbssd") > 0, "the amx tier should use tile dot products");
    assert!(
        count(&amx, "tdpbsud") > 0,
        "Q4_1/Q5_1 and the K-quant mins use unsigned x signed"
    );
    assert!(count(&amx, "ldtilecfg") > 0);
    // The baseline CPU probe decides whether the tile kernels may run: it must itself run anywhere.
    let cpu = disassemble_lib("ts_cpu");
    assert_eq!(count(&cpu, "%ymm") + count(&cpu, "%zmm") + count(&cpu, "tdpb"), 0);
}

#[test]
#[cfg(target_arch = "aarch64")]
fn aarch64_baseline_and_neon_have_no_dotprod() {
    for t in ["scalar", "neon"] {
        let text = disassemble(t);
        assert_eq!(
            count(&text, "sdot") + count(&text, "udot") + count(&text, "smmla"),
            0,
            "{t}"
        );
    }
    assert!(count(&disassemble("dotprod"), "sdot") > 0);
}
