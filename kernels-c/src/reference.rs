//! Plain-Rust reference of every kernel, written straight from ggml's scalar dequantization
//! (not from our C), for the tests. Slow and obvious on purpose.

use crate::blocks::{BlockQ8a, WType, QK_A, QK_K};

/// IEEE binary16 bits to f32 (exact).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0f32 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let man = f32::from(h & 0x3ff);
    match exp {
        0 => sign * man * 2f32.powi(-24),
        31 if man == 0.0 => sign * f32::INFINITY,
        31 => f32::NAN,
        e => sign * (1.0 + man / 1024.0) * 2f32.powi(e - 15),
    }
}

/// bfloat16 bits to f32 (exact).
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

fn h(b: &[u8], at: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[at], b[at + 1]]))
}

const IQ4NL: [i8; 16] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

/// Dequantizes `n` elements of type `t` from `w`. Panics on short input (test code).
pub fn dequantize(t: WType, w: &[u8], n: usize) -> Vec<f32> {
    let mut y = Vec::with_capacity(n);
    let bb = t.block_bytes();
    for blk in w[..n / t.block_elems() * bb].chunks_exact(bb) {
        dequant_block(t, blk, &mut y);
    }
    y
}

fn dequant_block(t: WType, b: &[u8], y: &mut Vec<f32>) {
    match t {
        WType::F32 => y.push(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        WType::F16 => y.push(h(b, 0)),
        WType::BF16 => y.push(bf16_to_f32(u16::from_le_bytes([b[0], b[1]]))),
        WType::Q8_0 => {
            let d = h(b, 0);
            y.extend(b[2..34].iter().map(|&q| f32::from(q as i8) * d));
        }
        WType::Q4_0 | WType::Q4_1 | WType::IQ4_NL => {
            let d = h(b, 0);
            let (m, qs) = if t == WType::Q4_1 {
                (h(b, 2), &b[4..20])
            } else {
                (0.0, &b[2..18])
            };
            let val = |q: u8| match t {
                WType::Q4_0 => f32::from(q as i8 - 8) * d,
                WType::Q4_1 => f32::from(q) * d + m,
                _ => d * f32::from(IQ4NL[q as usize]),
            };
            y.extend(qs.iter().map(|&q| val(q & 15)));
            y.extend(qs.iter().map(|&q| val(q >> 4)));
        }
        WType::Q5_0 | WType::Q5_1 => {
            let d = h(b, 0);
            let (m, rest) = if t == WType::Q5_1 {
                (h(b, 2), &b[4..])
            } else {
                (0.0, &b[2..])
            };
            let qh = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
            let qs = &rest[4..20];
            let val = |q: u32| {
                if t == WType::Q5_0 {
                    (q as i32 - 16) as f32 * d
                } else {
                    q as f32 * d + m
                }
            };
            y.extend((0..16).map(|j| val(u32::from(qs[j] & 15) | (((qh >> j) & 1) << 4))));
            y.extend((0..16).map(|j| val(u32::from(qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4))));
        }
        WType::Q2_0 => {
            let d = h(b, 0);
            y.extend((0..64).map(|j| f32::from(((b[2 + j / 4] >> (2 * (j % 4))) & 3) as i8 - 1) * d));
        }
        WType::TQ2_0 => {
            let d = h(b, 64);
            for j in [0, 32] {
                for l in 0..4 {
                    y.extend((0..32).map(|m| f32::from(((b[j + m] >> (2 * l)) & 3) as i8 - 1) * d));
                }
            }
        }
        WType::Q2_K => {
            let (scales, qs) = (&b[0..16], &b[16..80]);
            let (d, dmin) = (h(b, 80), h(b, 82));
            let mut is = 0;
            for n in [0, 32] {
                for shift in [0, 2, 4, 6] {
                    for half in [0, 16] {
                        let sc = scales[is];
                        is += 1;
                        let (dl, ml) = (d * f32::from(sc & 0xF), dmin * f32::from(sc >> 4));
                        y.extend((0..16).map(|l| dl * f32::from((qs[n + half + l] >> shift) & 3) - ml));
                    }
                }
            }
        }
        WType::Q3_K => {
            let (hmask, qs, sraw) = (&b[0..32], &b[32..96], &b[96..108]);
            let d = h(b, 108);
            // 16 6-bit scales: low 4 bits from sraw[0..8] nibbles, high 2 bits from sraw[8..12].
            let scale = |i: usize| -> i32 {
                let lo = if i < 8 { sraw[i] & 0xF } else { sraw[i - 8] >> 4 };
                let hi = (sraw[8 + i % 4] >> (2 * (i / 4))) & 3;
                i32::from(lo | (hi << 4)) - 32
            };
            let mut is = 0;
            let mut m = 1u8;
            for n in [0, 32] {
                for shift in [0, 2, 4, 6] {
                    for half in [0, 16] {
                        let dl = d * scale(is) as f32;
                        is += 1;
                        y.extend((0..16).map(|l| {
                            let k = n + half + l;
                            let q = i32::from((qs[k] >> shift) & 3) - if hmask[half + l] & m != 0 { 0 } else { 4 };
                            dl * q as f32
                        }));
                    }
                    m <<= 1;
                }
            }
        }
        WType::Q4_K | WType::Q5_K => {
            let (d, dmin, sc) = (h(b, 0), h(b, 2), &b[4..16]);
            let (qh, ql) = if t == WType::Q5_K {
                (&b[16..48], &b[48..176])
            } else {
                (&b[0..0], &b[16..144])
            };
            let get = |j: usize| -> (u8, u8) {
                if j < 4 {
                    (sc[j] & 63, sc[j + 4] & 63)
                } else {
                    (
                        (sc[j + 4] & 0xF) | ((sc[j - 4] >> 6) << 4),
                        (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4),
                    )
                }
            };
            for j in 0..4 {
                for (sub, shift) in [(2 * j, 0), (2 * j + 1, 4)] {
                    let (s, m) = get(sub);
                    let (d1, m1) = (d * f32::from(s), dmin * f32::from(m));
                    y.extend((0..32).map(|l| {
                        let mut q = (ql[32 * j + l] >> shift) & 0xF;
                        if t == WType::Q5_K && (qh[l] >> sub) & 1 != 0 {
                            q += 16;
                        }
                        d1 * f32::from(q) - m1
                    }));
                }
            }
        }
        WType::Q6_K => {
            let (ql, qh, sc) = (&b[0..128], &b[128..192], &b[192..208]);
            let d = h(b, 208);
            let mut out = [0f32; QK_K];
            for (n, (ql, qh)) in [(0, (&ql[..64], &qh[..32])), (128, (&ql[64..], &qh[32..]))] {
                for l in 0..32 {
                    let q = [
                        (ql[l] & 0xF) | ((qh[l] & 3) << 4),
                        (ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4),
                        (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4),
                        (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4),
                    ];
                    for (k, q) in q.iter().enumerate() {
                        let i = n + l + 32 * k;
                        out[i] = d * f32::from(sc[i / 16] as i8) * f32::from(*q as i8 - 32);
                    }
                }
            }
            y.extend_from_slice(&out);
        }
    }
}

/// Quantizes activations with per-32 scales: values round-half-even(x · 127/amax), scale
/// amax/127 rounded to f16 (llama.cpp's x86 Q8_0 quantizer).
pub fn quantize_q8a(x: &[f32]) -> Vec<BlockQ8a> {
    x.chunks_exact(QK_A)
        .map(|xb| {
            let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
            let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
            let mut b = BlockQ8a {
                d: f16_to_f32(f32_to_f16(amax / 127.0)),
                ..Default::default()
            };
            for (j, v) in xb.iter().enumerate() {
                let q = (v * id).round_ties_even().clamp(-127.0, 127.0) as i8;
                b.qs[j] = q;
                b.s[j / 16] += i16::from(q);
            }
            b.sd = f16_to_f32(f32_to_f16(amax / 127.0 * f32::from(b.s[0] + b.s[1])));
            b
        })
        .collect()
}

/// Quantizes activations with one scale per 256 values (llama.cpp's Q8_K): iscale = -127/max
/// where max is the value of largest magnitude (the first one on ties), scale 1/iscale.
pub fn quantize_q8a_k(x: &[f32]) -> Vec<BlockQ8a> {
    let mut out = Vec::with_capacity(x.len() / QK_A);
    for xs in x.chunks_exact(QK_K) {
        let (mut amax, mut max) = (0f32, 0f32);
        for &v in xs {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        let iscale = if amax != 0.0 { -127.0 / max } else { 0.0 };
        let d = if amax != 0.0 { 1.0 / iscale } else { 0.0 };
        for xb in xs.chunks_exact(QK_A) {
            let mut b = BlockQ8a {
                d,
                ..Default::default()
            };
            for (j, v) in xb.iter().enumerate() {
                let q = (iscale * v).round_ties_even().min(127.0) as i8;
                b.qs[j] = q;
                b.s[j / 16] += i16::from(q);
            }
            b.sd = d * f32::from(b.s[0] + b.s[1]);
            out.push(b);
        }
    }
    out
}

/// Quantizes activations the way weight type `t` expects them.
pub fn quantize_for(t: WType, x: &[f32]) -> Vec<BlockQ8a> {
    match t.act_quant() {
        crate::ActQuant::PerBlock => quantize_q8a(x),
        crate::ActQuant::PerSuperBlock => quantize_q8a_k(x),
    }
}

/// f32 to IEEE half bits, round to nearest even.
pub fn f32_to_f16(f: f32) -> u16 {
    // Exhaustive search over the two neighbours of the truncated value keeps this obviously right.
    if f.is_nan() {
        return 0x7e00;
    }
    let sign = if f.is_sign_negative() { 0x8000u16 } else { 0 };
    let a = f.abs();
    if a >= 65520.0 {
        return sign | 0x7c00;
    }
    // Largest half not above `a`, by binary search over the ordered positive halves.
    let (mut lo, mut hi) = (0u16, 0x7c00u16);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if f16_to_f32(mid) <= a {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let (dl, dh) = (a - f16_to_f32(lo), f16_to_f32(hi) - a);
    let pick = if dl < dh || (dl == dh && lo % 2 == 0) { lo } else { hi };
    sign | pick
}

/// The float activations a [`BlockQ8a`] vector stands for.
pub fn dequantize_q8a(a: &[BlockQ8a]) -> Vec<f32> {
    a.iter()
        .flat_map(|b| b.qs.iter().map(move |&q| b.d * f32::from(q)))
        .collect()
}

/// `dequantize(w) · x` in f64.
pub fn dot_f32(t: WType, w: &[u8], x: &[f32]) -> f64 {
    dequantize(t, w, x.len())
        .iter()
        .zip(x)
        .map(|(&a, &b)| f64::from(a) * f64::from(b))
        .sum()
}

/// What the 8-bit kernels compute, in f64 without their float rounding:
/// `dequantize(w) · dequantize_q8a(a)`, except that for Q4_1 and Q5_1 the min term uses the
/// block's rounded sum `sd` (as llama.cpp does) instead of the exact one.
pub fn dot_q8a(t: WType, w: &[u8], a: &[BlockQ8a]) -> f64 {
    let exact = dot_f32(t, w, &dequantize_q8a(a));
    if !matches!(t, WType::Q4_1 | WType::Q5_1) {
        return exact;
    }
    let bb = t.block_bytes();
    let correction: f64 = w
        .chunks_exact(bb)
        .zip(a)
        .map(|(blk, ab)| {
            let m = f64::from(h(blk, 2));
            let exact_sum = f64::from(ab.d) * f64::from(ab.s[0] + ab.s[1]);
            m * (f64::from(ab.sd) - exact_sum)
        })
        .sum();
    exact + correction
}

/// `_mm512_reduce_add_ps` as GCC computes it: lanes i and i+8, then i and i+4, then (0+2)+(1+3).
fn reduce16(a: &[f32; 16]) -> f32 {
    let t3: [f32; 8] = std::array::from_fn(|i| a[i + 8] + a[i]);
    let t6: [f32; 4] = std::array::from_fn(|i| t3[i + 4] + t3[i]);
    (t6[0] + t6[2]) + (t6[1] + t6[3])
}

/// Lane-ordered sum of `n` products `f(i)` as ggml's f16 matmuls run it on AVX-512: `lanes` 16
/// (llamafile tinyBLAS: element i on lane i mod 16) or 64 (`ggml_vec_dot_f16`: blocks of 64,
/// four accumulators of 16 combined (0+2)+(1+3), a tail past the last full block in double).
/// `first` shifts the element index (cache cell of element 0; the cells before add zeros).
fn lane_sum(n: usize, first: usize, lanes: usize, f: impl Fn(usize) -> (f32, f32)) -> f32 {
    let total = first + n;
    let full = if lanes == 64 { total & !63 } else { total };
    let mut acc = [0f32; 64];
    for i in 0..n {
        let e = first + i;
        if e < full {
            let (a, b) = f(i);
            acc[e % lanes] = a.mul_add(b, acc[e % lanes]);
        }
    }
    let l: [f32; 16] = if lanes == 64 {
        std::array::from_fn(|t| (acc[t] + acc[32 + t]) + (acc[16 + t] + acc[48 + t]))
    } else {
        std::array::from_fn(|t| acc[t])
    };
    let r = reduce16(&l);
    if full == total {
        return r;
    }
    let mut s = f64::from(r);
    for i in full.saturating_sub(first)..n {
        let (a, b) = f(i);
        s += f64::from(a * b);
    }
    s as f32
}

/// ggml's AVX-512 `ggml_v_expf` for one lane (a polynomial in the reduced argument, scaled by
/// 2^n with one rounding).
pub fn ggml_expf(x: f32) -> f32 {
    let r = f32::from_bits(0x4b40_0000); // 0x1.8p23
    let z = x.mul_add(f32::from_bits(0x3fb8_aa3b), r); // 0x1.715476p+0
    let n = z - r;
    let b = (-n).mul_add(
        f32::from_bits(0x35bf_be8e),
        (-n).mul_add(f32::from_bits(0x3f31_7200), x),
    );
    if n.abs() > 192.0 {
        return if n <= 0.0 { 0.0 } else { f32::INFINITY };
    }
    let u = b * b;
    let c = |bits: u32| f32::from_bits(bits);
    let j = c(0x3c07_2010)
        .mul_add(b, c(0x3d2b_9f17))
        .mul_add(u, c(0x3e2a_af33).mul_add(b, c(0x3eff_fedb)))
        .mul_add(u, c(0x3f7f_fff6).mul_add(b, 1.0));
    (f64::from(j) * 2f64.powi(n as i32)) as f32
}

/// One query over f16 keys and values as llama.cpp's CPU backend computes attention without
/// flash attention (the reference outputs' setting), rounding for rounding: see
/// `Kernels::attention_f16_raw`. `k[j * k_stride ..]`, `v[j * v_stride ..]` are the rows of cache
/// cells `first + j`.
#[allow(clippy::too_many_arguments)]
pub fn attention_f16(
    q: &[f32],
    k: &[u16],
    k_stride: usize,
    v: &[u16],
    v_stride: usize,
    first: usize,
    npos: usize,
    hdv: usize,
    scale: f32,
    batched: bool,
) -> Vec<f32> {
    let hd = q.len();
    let q16: Vec<f32> = q.iter().map(|&x| f16_to_f32(f32_to_f16(x))).collect();
    let kq_lanes = if batched && hd.is_multiple_of(16) { 16 } else { 64 };
    let s: Vec<f32> = (0..npos)
        .map(|j| lane_sum(hd, 0, kq_lanes, |d| (f16_to_f32(k[j * k_stride + d]), q16[d])) * scale)
        .collect();
    let m = s.iter().fold(f32::NEG_INFINITY, |m, &x| if m > x { m } else { x });
    let e: Vec<f32> = s.iter().map(|&x| ggml_expf(x - m)).collect();
    // Chunks of 16 cells from a multiple of 16, each reduced, summed in double.
    let mut sum = 0f64;
    let mut c0 = first & !15;
    while c0 < first + npos {
        let lanes: [f32; 16] = std::array::from_fn(|t| {
            let cell = c0 + t;
            if cell >= first && cell < first + npos {
                e[cell - first]
            } else {
                0.0
            }
        });
        sum += f64::from(reduce16(&lanes));
        c0 += 16;
    }
    let inv = (1.0 / sum) as f32;
    let p: Vec<f32> = e.iter().map(|&x| f16_to_f32(f32_to_f16(x * inv))).collect();
    let pv_lanes = if batched && hdv.is_multiple_of(4) { 16 } else { 64 };
    (0..hdv)
        .map(|d| {
            // The value matmul runs over every cell of the cache: the tail rule of the one-token
            // order counts from cell 0, so pad the positions to the full cache (zeros past npos).
            let n_kv = (first + npos).next_multiple_of(256);
            lane_sum(n_kv - first, first, pv_lanes, |j| {
                if j < npos {
                    (f16_to_f32(v[j * v_stride + d]), p[j])
                } else {
                    (0.0, 0.0)
                }
            })
        })
        .collect()
}
