//! The CUDA backend's weight decoders (`runtime/cuda/ts_cuda_quant.cuh`, the code every CUDA
//! matrix kernel dequantizes with) built for the host with the system C++ compiler: for every
//! type the CUDA kernels take, rows of random blocks decode to the bits of the CPU reference
//! (`tensorsharp_kernels::reference::dequantize`, ggml's arithmetic), each 32-element sub-block
//! decoded on its own as a warp lane does. (NVRTC compiles the kernels for sm_53/72/87 in
//! `scripts/cuda-check.py`; the GPU run is `scripts/gpu-check.sh`.)

use std::path::{Path, PathBuf};
use std::process::Command;

use tensorsharp_kernels::{reference, WType};

fn cuda_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cuda")
}

/// Builds the host harness once per test process.
fn harness(dir: &Path) -> PathBuf {
    let exe = dir.join("host_check");
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let out = Command::new(&cxx)
        .args([
            "-std=c++14",
            "-O1",
            "-ffp-contract=off",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-I",
        ])
        .arg(cuda_dir())
        .arg(cuda_dir().join("host_check.cpp"))
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap_or_else(|e| panic!("{cxx}: {e} (scripts/setup.sh installs g++)"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    exe
}

/// A deterministic byte stream.
struct Lcg(u64);
impl Lcg {
    fn byte(&mut self) -> u8 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 56) as u8
    }
    /// A finite f16 of magnitude about 2^-12..2^2 with a random sign, as bits.
    fn half(&mut self) -> [u8; 2] {
        let e = 3 + u16::from(self.byte() % 14); // biased exponent 3..16
        let h = (u16::from(self.byte() & 1) << 15) | (e << 10) | (u16::from(self.byte()) << 2);
        h.to_le_bytes()
    }
}

/// `n` elements of `t` as random blocks with finite scales.
fn random_row(t: WType, n: usize, rng: &mut Lcg) -> Vec<u8> {
    let (bb, be) = (t.block_bytes(), t.block_elems());
    let mut row: Vec<u8> = (0..n / be * bb).map(|_| rng.byte()).collect();
    // Byte offsets of the f16 fields of a block (every field for F16; F32 gets finite floats).
    let halves: Vec<usize> = match t {
        WType::F16 => (0..bb).step_by(2).collect(),
        WType::Q4_0 | WType::Q5_0 | WType::Q8_0 => vec![0],
        WType::Q4_1 | WType::Q4_K | WType::Q5_K => vec![0, 2],
        WType::Q6_K => vec![208],
        _ => Vec::new(),
    };
    for blk in row.chunks_exact_mut(bb) {
        for &at in &halves {
            blk[at..at + 2].copy_from_slice(&rng.half());
        }
        if t == WType::F32 {
            for v in blk.chunks_exact_mut(4) {
                let f = (f32::from(rng.byte()) - 128.0) / 37.0;
                v.copy_from_slice(&f.to_le_bytes());
            }
        }
    }
    row
}

#[test]
fn the_cuda_decoders_give_the_cpu_reference_bits_for_every_kernel_type() {
    let dir = std::env::temp_dir().join(format!("tsharp-cuda-host-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = harness(&dir);
    let mut rng = Lcg(0x5eed);
    let mut failures = Vec::new();
    let types = [
        WType::F32,
        WType::F16,
        WType::Q4_0,
        WType::Q4_1,
        WType::Q5_0,
        WType::Q8_0,
        WType::Q4_K,
        WType::Q5_K,
        WType::Q6_K,
    ];
    for t in types {
        for round in 0..4 {
            let n = 1024;
            let row = random_row(t, n, &mut rng);
            let (inp, outp) = (dir.join("row.bin"), dir.join("out.bin"));
            std::fs::write(&inp, &row).unwrap();
            let st = Command::new(&exe)
                .arg((t as u32).to_string())
                .arg(n.to_string())
                .arg(&inp)
                .arg(&outp)
                .status()
                .unwrap();
            if !st.success() {
                failures.push(format!("{t:?}: the harness failed ({st})"));
                continue;
            }
            let got: Vec<u32> = std::fs::read(&outp)
                .unwrap()
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let want: Vec<u32> = reference::dequantize(t, &row, n).iter().map(|f| f.to_bits()).collect();
            if let Some(i) = (0..n).find(|&i| got.get(i) != want.get(i)) {
                failures.push(format!(
                    "{t:?} round {round}: element {i}: {} != reference {}",
                    f32::from_bits(*got.get(i).unwrap_or(&0)),
                    f32::from_bits(want[i])
                ));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{failures:#?}");
}
