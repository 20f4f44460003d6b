//! Compiles csrc/ts_kernels.c once per ISA tier of the target architecture, each tier as its own
//! static library with its own flags (so the baseline tier never contains newer instructions).

use std::env;
use std::path::PathBuf;

struct Tier {
    name: &'static str,
    defines: &'static [&'static str],
    /// Compiler flags, in groups (a tier may extend another's list).
    flags: &'static [&'static [&'static str]],
}

const AVX512_FLAGS: &[&str] = &[
    "-mavx2",
    "-mfma",
    "-mf16c",
    "-mavx512f",
    "-mavx512bw",
    "-mavx512vl",
    "-mavx512dq",
    "-mavx512vnni",
];

const X86: &[Tier] = &[
    Tier {
        name: "scalar",
        defines: &["TS_ISA_SCALAR"],
        flags: &[],
    },
    Tier {
        name: "avx2",
        defines: &["TS_ISA_AVX2"],
        flags: &[&["-mavx2", "-mfma", "-mf16c"]],
    },
    Tier {
        name: "avx512",
        defines: &["TS_ISA_AVX512"],
        flags: &[AVX512_FLAGS],
    },
    // The AVX-512 tier plus AMX-INT8 tile matmuls for prefill (Sapphire Rapids and later).
    Tier {
        name: "amx",
        defines: &["TS_ISA_AVX512", "TS_ISA_AMX"],
        flags: &[AVX512_FLAGS, &["-mamx-tile", "-mamx-int8"]],
    },
];

const AARCH64: &[Tier] = &[
    Tier {
        name: "scalar",
        defines: &["TS_ISA_SCALAR"],
        flags: &[],
    },
    Tier {
        name: "neon",
        defines: &["TS_ISA_NEON"],
        flags: &[&["-march=armv8-a"]],
    },
    Tier {
        name: "dotprod",
        defines: &["TS_ISA_DOTPROD"],
        flags: &[&["-march=armv8.2-a+dotprod+fp16"]],
    },
];

const OTHER: &[Tier] = &[Tier {
    name: "scalar",
    defines: &["TS_ISA_SCALAR"],
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
    // Each tier in its own directory (the tiers compile the same source file, so their objects
    // would share a name), all at once: the tiers are independent, and this build script is on
    // the critical path of every build (the largest single unit of a fresh test build).
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // The portable tier is the fallback of CPUs without any SIMD tier (and of other
    // architectures): optimised fully in release builds. In debug and test builds it is only
    // checked for its bits (which the optimisation level does not change: no fast-math, no fp
    // contraction), and GCC's -O3 on it took 45 of the 110 CPU-seconds of the x86 tiers' compile
    // (-O1: 6), on the critical path of every fresh build (host, aarch64, the Yocto check).
    let release = env::var("PROFILE").is_ok_and(|p| p == "release");
    let mut builds = Vec::new();
    for t in tiers {
        let mut b = cc::Build::new();
        let opt = if t.name == "scalar" && !release { 1 } else { 3 };
        b.file("csrc/ts_kernels.c")
            .include("csrc")
            .out_dir(out.join(t.name))
            .opt_level(opt)
            .flag_if_supported("-std=c11")
            .flag("-ffp-contract=off")
            .flag_if_supported("-Wno-psabi")
            .flag_if_supported("-fno-math-errno")
            // Large frames (the tile buffers) probe each page: an overflow always hits the guard
            // page instead of jumping past it into other memory.
            .flag_if_supported("-fstack-clash-protection")
            .warnings(true)
            .extra_warnings(true)
            .warnings_into_errors(true);
        for d in t.defines {
            b.define(d, None);
        }
        for f in t.flags.iter().copied().flatten() {
            b.flag(f);
        }
        builds.push((b, format!("ts_kernels_{}", t.name)));
    }
    // CPU feature checks that need the operating system's consent (AMX tile data), compiled with
    // the baseline flags so that they run on any CPU of the architecture.
    if arch == "x86_64" {
        let mut b = cc::Build::new();
        b.file("csrc/ts_cpu.c")
            .out_dir(out.join("cpu"))
            .opt_level(2)
            .flag_if_supported("-std=c11")
            .warnings(true)
            .extra_warnings(true)
            .warnings_into_errors(true);
        builds.push((b, "ts_cpu".into()));
    }
    std::thread::scope(|s| {
        for (b, name) in &builds {
            s.spawn(move || b.compile(name));
        }
    });
    // Tests disassemble the tier libraries (OUT_DIR/<tier>/libts_kernels_<tier>.a) to prove the
    // baseline ones hold no newer instructions.
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
