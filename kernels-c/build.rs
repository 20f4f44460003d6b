//! Compiles csrc/ts_kernels.c once per ISA tier of the target architecture, each tier as its own
//! static library with its own flags (so the baseline tier never contains newer instructions).

use std::env;

struct Tier {
    name: &'static str,
    define: &'static str,
    flags: &'static [&'static str],
}

const X86: &[Tier] = &[
    Tier {
        name: "scalar",
        define: "TS_ISA_SCALAR",
        flags: &[],
    },
    Tier {
        name: "avx2",
        define: "TS_ISA_AVX2",
        flags: &["-mavx2", "-mfma", "-mf16c"],
    },
    Tier {
        name: "avx512",
        define: "TS_ISA_AVX512",
        flags: &[
            "-mavx2",
            "-mfma",
            "-mf16c",
            "-mavx512f",
            "-mavx512bw",
            "-mavx512vl",
            "-mavx512dq",
            "-mavx512vnni",
        ],
    },
];

const AARCH64: &[Tier] = &[
    Tier {
        name: "scalar",
        define: "TS_ISA_SCALAR",
        flags: &[],
    },
    Tier {
        name: "neon",
        define: "TS_ISA_NEON",
        flags: &["-march=armv8-a"],
    },
    Tier {
        name: "dotprod",
        define: "TS_ISA_DOTPROD",
        flags: &["-march=armv8.2-a+dotprod+fp16"],
    },
];

const OTHER: &[Tier] = &[Tier {
    name: "scalar",
    define: "TS_ISA_SCALAR",
    flags: &[],
}];

fn main() {
    println!("cargo:rerun-if-changed=csrc");
    println!("cargo:rerun-if-changed=build.rs");
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let tiers = match arch.as_str() {
        "x86_64" => X86,
        "aarch64" => AARCH64,
        _ => OTHER,
    };
    for t in tiers {
        let mut b = cc::Build::new();
        b.file("csrc/ts_kernels.c")
            .include("csrc")
            .define(t.define, None)
            .opt_level(3)
            .flag_if_supported("-std=c11")
            .flag("-ffp-contract=off")
            .flag_if_supported("-Wno-psabi")
            .flag_if_supported("-fno-math-errno")
            .warnings(true)
            .extra_warnings(true)
            .warnings_into_errors(true);
        for f in t.flags {
            b.flag(f);
        }
        b.compile(&format!("ts_kernels_{}", t.name));
    }
    // Tests disassemble the tier libraries to prove the baseline ones hold no newer instructions.
    println!(
        "cargo:rustc-env=TS_KERNELS_LIB_DIR={}",
        env::var("OUT_DIR").unwrap_or_default()
    );
    println!("cargo:rustc-check-cfg=cfg(ts_tier_x86)");
    println!("cargo:rustc-check-cfg=cfg(ts_tier_aarch64)");
    match arch.as_str() {
        "x86_64" => println!("cargo:rustc-cfg=ts_tier_x86"),
        "aarch64" => println!("cargo:rustc-cfg=ts_tier_aarch64"),
        _ => {}
    }
}
