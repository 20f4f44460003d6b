//! TensorSharp quantized CPU kernels.
//!
//! The kernels are C (`csrc/`), compiled once per ISA tier with that tier's flags:
//! portable scalar, x86-64 AVX2+FMA, x86-64 AVX-512 with VNNI, aarch64 NEON and aarch64 NEON
//! with dotprod. [`Kernels`] picks a tier at run time ([`Tier::from_env`]: CPU detection,
//! overridable with `TSHARP_KERNELS=scalar|avx2|avx512|amx|neon|dotprod`) and offers safe,
//! length-checked entry points:
//!
//! - [`Kernels::dequantize`]: a row to f32;
//! - [`Kernels::quantize_q8a`]: activations to 8-bit blocks ([`BlockQ8a`]), the one activation
//!   format every quantized weight type takes;
//! - [`Kernels::matmul_q8a`] / [`Kernels::matmul_f32`]: `nrows` weight rows against `ncols`
//!   activation vectors (one row = a dot product, many rows = GEMV, many of both = a GEMM tile);
//!   [`Kernels::dot_q8a`] and [`Kernels::dot_f32`] are the 1×1 case.
//!
//! [`reference`] is a plain-Rust implementation of every kernel, used by the tests.
#![deny(missing_docs)]

pub mod blocks;
mod ffi;
pub mod reference;
mod tier;

pub use blocks::{ActQuant, BlockQ8a, MatmulForm, WType, QK_A};
pub use tier::{Tier, TIER_ENV};

/// Errors from the kernel entry points. Every one is a caller mistake caught before any C code
/// runs.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum KernelError {
    /// `TSHARP_KERNELS` names no tier.
    #[error("unknown kernel tier '{0}' (expected scalar, avx2, avx512, amx, neon or dotprod)")]
    UnknownTier(String),
    /// The tier is not compiled for this architecture or the CPU lacks its features.
    #[error("kernel tier '{0}' cannot run on this CPU")]
    TierUnavailable(Tier),
    /// The weight type has no kernel for this operation.
    #[error("no {op} kernel for weight type {wtype}")]
    Unsupported {
        /// The operation.
        op: &'static str,
        /// The weight type.
        wtype: WType,
    },
    /// A length that does not fit the operation.
    #[error("{0}")]
    BadLength(String),
}

type Result<T> = std::result::Result<T, KernelError>;

/// An operation a tier may implement for some weight types only (see [`Kernels::require`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelOp {
    /// [`Kernels::dequantize`].
    Dequantize,
    /// [`Kernels::matmul_q8a`] and its raw form.
    MatmulQ8a,
    /// [`Kernels::matmul_f32`] and its raw form.
    MatmulF32,
    /// [`Kernels::quantize`] with the scheme the weight type takes ([`WType::act_quant`]).
    Quantize,
    /// [`Kernels::attention_f16_raw`] (the weight type is ignored).
    AttentionF16,
    /// [`Kernels::swiglu`] (the weight type is ignored; a tier without one leaves `g` as is).
    SwiGlu,
}

impl KernelOp {
    fn name(self) -> &'static str {
        match self {
            KernelOp::Dequantize => "dequantize",
            KernelOp::MatmulQ8a => "8-bit-activation matmul",
            KernelOp::MatmulF32 => "f32-activation matmul",
            KernelOp::Quantize => "activation quantize",
            KernelOp::AttentionF16 => "f16 attention",
            KernelOp::SwiGlu => "swiglu",
        }
    }
}

/// A kernel tier's entry points. Cheap to copy; the tables are static.
#[derive(Clone, Copy)]
pub struct Kernels {
    tier: Tier,
    table: &'static ffi::KernelTable,
}

impl std::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernels").field("tier", &self.tier).finish()
    }
}

fn check(ok: bool, msg: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(KernelError::BadLength(msg()))
    }
}

impl Kernels {
    /// The kernels of `tier`, if this CPU can run them.
    pub fn new(tier: Tier) -> Result<Kernels> {
        Ok(Kernels {
            tier,
            table: tier.table()?,
        })
    }

    /// The kernels chosen by [`Tier::from_env`].
    pub fn from_env() -> Result<Kernels> {
        Kernels::new(Tier::from_env()?)
    }

    /// The tier in use.
    pub fn tier(&self) -> Tier {
        self.tier
    }

    /// The tier name the C table reports (a consistency check between the two sides).
    pub fn table_name(&self) -> &'static str {
        // SAFETY: `name` points to a NUL-terminated string literal in the C table.
        unsafe { std::ffi::CStr::from_ptr(self.table.name) }
            .to_str()
            .unwrap_or("?")
    }

    fn row_bytes(wtype: WType, n: usize) -> Result<usize> {
        wtype.row_bytes(n).ok_or_else(|| {
            KernelError::BadLength(format!(
                "row length {n} is not a multiple of the {wtype} block size {}",
                wtype.block_elems()
            ))
        })
    }

    /// `Ok` when this tier implements `op` for `wtype`, else [`KernelError::Unsupported`]. The
    /// raw entry points do nothing for an operation a tier lacks: callers check here once.
    pub fn require(&self, op: KernelOp, wtype: WType) -> Result<()> {
        let t = self.table;
        let present = match op {
            KernelOp::Dequantize => t.dequant[wtype as usize].is_some(),
            KernelOp::MatmulQ8a => t.mm_q8a[wtype as usize].is_some() && wtype.uses_q8a(),
            KernelOp::MatmulF32 => t.mm_f32[wtype as usize].is_some(),
            KernelOp::Quantize => match wtype.act_quant() {
                ActQuant::PerBlock => t.quantize_q8a.is_some(),
                ActQuant::PerSuperBlock => t.quantize_q8a_k.is_some(),
            },
            KernelOp::AttentionF16 => t.attn_f16.is_some(),
            KernelOp::SwiGlu => t.swiglu.is_some(),
        };
        if present {
            Ok(())
        } else {
            Err(KernelError::Unsupported { op: op.name(), wtype })
        }
    }

    /// Dequantizes one row: `y.len()` elements from `w`.
    pub fn dequantize(&self, wtype: WType, w: &[u8], y: &mut [f32]) -> Result<()> {
        let need = Self::row_bytes(wtype, y.len())?;
        check(w.len() >= need, || {
            format!(
                "{wtype} row of {} elements needs {need} bytes, got {}",
                y.len(),
                w.len()
            )
        })?;
        let f = self.table.dequant[wtype as usize].ok_or(KernelError::Unsupported {
            op: "dequantize",
            wtype,
        })?;
        // SAFETY: `w` holds at least `need` bytes for `y.len()` elements (checked above), `y` is
        // writable for `y.len()` floats, and the C kernel reads/writes nothing else.
        unsafe { f(w.as_ptr(), y.as_mut_ptr(), y.len() as i64) };
        Ok(())
    }

    /// Quantizes activations with per-32 scales ([`ActQuant::PerBlock`]): `x.len()` must be a
    /// multiple of 32 and `y` hold `x.len() / 32` blocks.
    pub fn quantize_q8a(&self, x: &[f32], y: &mut [BlockQ8a]) -> Result<()> {
        self.quantize(ActQuant::PerBlock, x, y)
    }

    /// Quantizes activations the way weight type `wtype` expects them ([`WType::act_quant`]).
    pub fn quantize_for(&self, wtype: WType, x: &[f32], y: &mut [BlockQ8a]) -> Result<()> {
        self.quantize(wtype.act_quant(), x, y)
    }

    /// Quantizes activations with the given scheme (`x.len()` a multiple of 32, or of 256 for
    /// [`ActQuant::PerSuperBlock`]; `y` holds `x.len() / 32` blocks).
    pub fn quantize(&self, how: ActQuant, x: &[f32], y: &mut [BlockQ8a]) -> Result<()> {
        let unit = if how == ActQuant::PerSuperBlock {
            blocks::QK_K
        } else {
            QK_A
        };
        check(x.len().is_multiple_of(unit) && y.len() == x.len() / QK_A, || {
            format!(
                "quantize {how:?}: {} values into {} blocks of 32 (length must be a multiple of {unit})",
                x.len(),
                y.len()
            )
        })?;
        let f = match how {
            ActQuant::PerBlock => self.table.quantize_q8a,
            ActQuant::PerSuperBlock => self.table.quantize_q8a_k,
        }
        .ok_or(KernelError::Unsupported {
            op: "quantize",
            wtype: WType::F32,
        })?;
        // SAFETY: lengths checked above; the kernel reads x.len() floats and writes x.len()/32 blocks.
        unsafe { f(x.as_ptr(), y.as_mut_ptr(), x.len() as i64) };
        Ok(())
    }

    /// `y[c * nrows + r] = row_r(w) · a_c` for `nrows` weight rows of `n` elements (stored back
    /// to back in `w`) and `ncols` activation vectors of `n / 32` blocks (back to back in `a`),
    /// summed as llama.cpp sums a product of that many columns ([`MatmulForm::Batch`]).
    pub fn matmul_q8a(
        &self,
        wtype: WType,
        w: &[u8],
        nrows: usize,
        a: &[BlockQ8a],
        ncols: usize,
        y: &mut [f32],
    ) -> Result<()> {
        self.matmul_q8a_form(MatmulForm::Batch, wtype, w, nrows, a, ncols, y)
    }

    /// [`matmul_q8a`](Self::matmul_q8a) in either form: [`MatmulForm::Gemv`] gives every column
    /// the bits of a one-column product, at any number of columns.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_q8a_form(
        &self,
        form: MatmulForm,
        wtype: WType,
        w: &[u8],
        nrows: usize,
        a: &[BlockQ8a],
        ncols: usize,
        y: &mut [f32],
    ) -> Result<()> {
        let f = self
            .q8a_fn(form, wtype)
            .ok_or(KernelError::Unsupported { op: "q8a dot", wtype })?;
        check(ncols > 0 && a.len().is_multiple_of(ncols), || {
            format!("{} activation blocks do not split into {ncols} vectors", a.len())
        })?;
        let n = a.len() / ncols * QK_A;
        let rb = Self::row_bytes(wtype, n)?;
        check(w.len() >= rb * nrows, || {
            format!("{nrows} {wtype} rows of {n} need {} bytes, got {}", rb * nrows, w.len())
        })?;
        check(y.len() >= nrows * ncols, || {
            format!("output holds {} of {nrows}x{ncols}", y.len())
        })?;
        // SAFETY: every read of `w` is inside nrows*rb bytes, of `a` inside ncols*(n/32) blocks,
        // and every write to `y` below nrows*ncols (all checked above).
        unsafe {
            f(
                w.as_ptr(),
                rb,
                nrows as i64,
                a.as_ptr(),
                n / QK_A * std::mem::size_of::<BlockQ8a>(),
                ncols as i64,
                y.as_mut_ptr(),
                nrows,
                n as i64,
            )
        };
        Ok(())
    }

    /// Like [`matmul_q8a`](Self::matmul_q8a) with f32 activations (`ncols` vectors back to back in `x`).
    pub fn matmul_f32(
        &self,
        wtype: WType,
        w: &[u8],
        nrows: usize,
        x: &[f32],
        ncols: usize,
        y: &mut [f32],
    ) -> Result<()> {
        let f = self.table.mm_f32[wtype as usize].ok_or(KernelError::Unsupported { op: "f32 dot", wtype })?;
        check(ncols > 0 && x.len().is_multiple_of(ncols), || {
            format!("{} activations do not split into {ncols} vectors", x.len())
        })?;
        let n = x.len() / ncols;
        let rb = Self::row_bytes(wtype, n)?;
        check(w.len() >= rb * nrows, || {
            format!("{nrows} {wtype} rows of {n} need {} bytes, got {}", rb * nrows, w.len())
        })?;
        check(y.len() >= nrows * ncols, || {
            format!("output holds {} of {nrows}x{ncols}", y.len())
        })?;
        // SAFETY: as in matmul_q8a: all reads and writes are inside the checked lengths.
        unsafe {
            f(
                w.as_ptr(),
                rb,
                nrows as i64,
                x.as_ptr(),
                n,
                ncols as i64,
                y.as_mut_ptr(),
                nrows,
                n as i64,
            )
        };
        Ok(())
    }

    /// The 8-bit matmul of `wtype` in `form`.
    fn q8a_fn(&self, form: MatmulForm, wtype: WType) -> Option<ffi::MmQ8aFn> {
        match form {
            MatmulForm::Batch => self.table.mm_q8a[wtype as usize],
            MatmulForm::Gemv => self.table.mv_q8a[wtype as usize],
        }
    }

    /// Raw, strided form of [`matmul_q8a_form`](Self::matmul_q8a_form) for executors that split
    /// rows across threads: `y[c * y_stride + r] = row_r · a_c` for `r < nrows`, `c < ncols`, where row
    /// `r` starts at `w + r * w_stride` and activation `c` at `a + c * a_stride` bytes.
    ///
    /// # Safety
    /// `w` must be readable for `nrows` rows of `n` elements of `wtype` at stride `w_stride`;
    /// `a` readable for `ncols` vectors of `n / 32` blocks at byte stride `a_stride`; `y`
    /// writable at every `c * y_stride + r`; no other thread may write those outputs meanwhile.
    /// `n` must be a multiple of 32 and of the type's block size, and `wtype` must take 8-bit
    /// activations ([`WType::uses_q8a`]); otherwise the call does nothing.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn matmul_q8a_raw(
        &self,
        form: MatmulForm,
        wtype: WType,
        w: *const u8,
        w_stride: usize,
        nrows: usize,
        a: *const BlockQ8a,
        a_stride: usize,
        ncols: usize,
        y: *mut f32,
        y_stride: usize,
        n: usize,
    ) {
        if let (Some(f), Some(_)) = (
            self.q8a_fn(form, wtype),
            wtype.row_bytes(n).filter(|_| n.is_multiple_of(QK_A)),
        ) {
            // SAFETY: forwarded to the caller's contract above.
            unsafe {
                f(
                    w,
                    w_stride,
                    nrows as i64,
                    a,
                    a_stride,
                    ncols as i64,
                    y,
                    y_stride,
                    n as i64,
                )
            }
        }
    }

    /// One query against `npos` cached f16 key/value rows, `out[..hdv] = softmax(scale * q·K) · V`,
    /// computed as llama.cpp's CPU backend computes it without flash attention, operation for
    /// operation (`csrc/ts_attn.h`): the query and the probabilities rounded to f16, the lane
    /// orders of its f16 matmuls (`batched`: the step computes two or more tokens, as llama.cpp's
    /// tinyBLAS path; otherwise its one-token dot product), its vector `expf`, the softmax sum in
    /// double. `first` is the cache cell (position) of row 0, which fixes the lanes. Every tier
    /// gives the same bits.
    ///
    /// # Safety
    /// `q` readable for `hd` floats; `k` for `npos` rows of `hd` halves at `k_stride` elements;
    /// `v` for `npos` rows of `hdv` halves at `v_stride`; `scores` writable for `npos` floats and
    /// `out` for `hdv`, neither overlapping anything else.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn attention_f16_raw(
        &self,
        q: *const f32,
        k: *const u16,
        k_stride: usize,
        v: *const u16,
        v_stride: usize,
        first: usize,
        npos: usize,
        hd: usize,
        hdv: usize,
        scale: f32,
        batched: bool,
        scores: *mut f32,
        out: *mut f32,
    ) {
        if let Some(f) = self.table.attn_f16 {
            // SAFETY: forwarded to the caller's contract above.
            unsafe {
                f(
                    q,
                    k,
                    k_stride,
                    v,
                    v_stride,
                    first as i64,
                    npos as i64,
                    hd as i64,
                    hdv as i64,
                    scale,
                    i32::from(batched),
                    scores,
                    out,
                )
            }
        }
    }

    /// `g[i] = silu(g[i]) * u[i]` (SwiGLU), as llama.cpp's CPU backend computes it:
    /// `x / (1 + e^-x)` with ggml's vector `expf` for the first `n_vec` values (a row's whole
    /// chunks of 16) and libm's `expf` past them. `g` and `u` must be the same length.
    pub fn swiglu(&self, g: &mut [f32], u: &[f32], n_vec: usize) -> Result<()> {
        if g.len() != u.len() || n_vec > g.len() {
            return Err(KernelError::BadLength(format!(
                "swiglu: {} gate and {} up values, {n_vec} vector ones",
                g.len(),
                u.len()
            )));
        }
        if let Some(f) = self.table.swiglu {
            // SAFETY: both slices hold g.len() floats; n_vec <= g.len() checked above.
            unsafe { f(g.as_mut_ptr(), u.as_ptr(), g.len() as i64, n_vec as i64) };
        }
        Ok(())
    }

    /// Raw, strided form of [`matmul_f32`](Self::matmul_f32); `x_stride` is in elements.
    ///
    /// # Safety
    /// As for [`matmul_q8a_raw`](Self::matmul_q8a_raw), with `x` readable for `ncols` vectors of
    /// `n` floats at stride `x_stride`. `n` must be a multiple of the type's block size.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn matmul_f32_raw(
        &self,
        wtype: WType,
        w: *const u8,
        w_stride: usize,
        nrows: usize,
        x: *const f32,
        x_stride: usize,
        ncols: usize,
        y: *mut f32,
        y_stride: usize,
        n: usize,
    ) {
        if let (Some(f), Some(_)) = (self.table.mm_f32[wtype as usize], wtype.row_bytes(n)) {
            // SAFETY: forwarded to the caller's contract above.
            unsafe {
                f(
                    w,
                    w_stride,
                    nrows as i64,
                    x,
                    x_stride,
                    ncols as i64,
                    y,
                    y_stride,
                    n as i64,
                )
            }
        }
    }

    /// One weight row against one 8-bit activation vector.
    pub fn dot_q8a(&self, wtype: WType, w: &[u8], a: &[BlockQ8a]) -> Result<f32> {
        let mut y = [0.0f32];
        self.matmul_q8a(wtype, w, 1, a, 1, &mut y)?;
        Ok(y[0])
    }

    /// One weight row against one f32 activation vector.
    pub fn dot_f32(&self, wtype: WType, w: &[u8], x: &[f32]) -> Result<f32> {
        let mut y = [0.0f32];
        self.matmul_f32(wtype, w, 1, x, 1, &mut y)?;
        Ok(y[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_tier_loads_and_names_itself() {
        for t in Tier::supported() {
            let k = Kernels::new(t).unwrap();
            assert_eq!(k.table_name(), t.name());
        }
        assert!(Tier::supported().contains(&Tier::Scalar));
    }

    #[test]
    fn table_has_every_kernel_for_every_weight_type() {
        for t in Tier::supported() {
            let k = Kernels::new(t).unwrap();
            for w in WType::ALL {
                assert!(k.table.dequant[w as usize].is_some(), "{t} dequant {w}");
                assert!(k.table.mm_f32[w as usize].is_some(), "{t} mm_f32 {w}");
                assert_eq!(k.table.mm_q8a[w as usize].is_some(), w.uses_q8a(), "{t} mm_q8a {w}");
                assert_eq!(k.table.mv_q8a[w as usize].is_some(), w.uses_q8a(), "{t} mv_q8a {w}");
            }
        }
    }

    #[test]
    fn bad_lengths_are_errors_not_ub() {
        let k = Kernels::new(Tier::Scalar).unwrap();
        let mut y = vec![0.0; 33];
        assert!(matches!(
            k.dequantize(WType::Q4_0, &[0; 18], &mut y),
            Err(KernelError::BadLength(_))
        ));
        let mut y = vec![0.0; 64];
        assert!(matches!(
            k.dequantize(WType::Q4_0, &[0; 18], &mut y),
            Err(KernelError::BadLength(_))
        ));
        let a = vec![BlockQ8a::default(); 2];
        assert!(k.dot_q8a(WType::Q4_0, &[0; 35], &a).is_err());
        assert!(k.dot_q8a(WType::Q4_K, &[0; 144], &a).is_err());
        assert!(matches!(
            k.dot_q8a(WType::F16, &[0; 128], &a),
            Err(KernelError::Unsupported { .. })
        ));
        assert!(k.quantize_q8a(&[0.0; 31], &mut []).is_err());
    }

    #[test]
    fn unknown_tier_names_are_rejected() {
        assert_eq!(Tier::from_name("AVX2"), Some(Tier::Avx2));
        assert_eq!(Tier::from_name("sse9"), None);
    }
}
