//! Each tier is its own object compiled with its own flags: the baseline objects must not
//! contain instructions of the newer tiers (otherwise a baseline CPU would fault on them).
//! Checked by disassembling the built static libraries with the target's objdump
//! (`OBJDUMP` overrides the tool; `scripts/setup.sh` installs binutils for both targets).

use std::process::Command;

fn disassemble(tier: &str) -> String {
    let lib = format!("{}/libts_kernels_{tier}.a", env!("TS_KERNELS_LIB_DIR"));
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
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.lines().count() > 1000, "{lib}: suspiciously little code");
    text
}

fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

#[test]
#[cfg(target_arch = "x86_64")]
fn x86_baseline_has_no_avx_and_avx2_has_no_avx512() {
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
