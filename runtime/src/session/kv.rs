//! The KV cache: per layer, keys and values for every position and kv head, stored as f16
//! (default), f32 or q8_0, and the token id of every cached position. Rows are (position, kv
//! head) with `head_dim` elements, so the attention scores of one head are a GEMV over positions
//! with the kernels' f32-activation path.
//!
//! [`KvCache`] is the one place that computes addresses in the cache, and it holds the sequence
//! operations (truncate, common prefix, copy a prefix from another cache or from saved state).

use std::ops::Range;

use tensorsharp_kernels::WType;
use tensorsharp_models::ModelSpec;

use crate::arena::{Arena, MemoryPlan, Slot};
use crate::error::{Result, RuntimeError};
use crate::ops::f32_to_f16;
use crate::tokenizer::Token;

/// f32 → f16 (round to nearest even, as [`f32_to_f16`] and ggml's x86 build) with F16C, eight
/// values per instruction, for the whole groups of eight; returns how many it converted.
///
/// # Safety
/// The CPU must support F16C (and AVX, which it implies).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "f16c,avx")]
unsafe fn store_f16_f16c(x: &[f32], dst: &mut [u8]) -> usize {
    use std::arch::x86_64::{__m128i, _mm256_cvtps_ph, _mm256_loadu_ps, _mm_storeu_si128, _MM_FROUND_TO_NEAREST_INT};
    let n = x.len().min(dst.len() / 2) & !7;
    for i in (0..n).step_by(8) {
        // SAFETY: x[i..i+8] and dst[2i..2i+16] are in bounds (i + 8 <= n); unaligned load/store.
        unsafe {
            let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(x.as_ptr().add(i)));
            _mm_storeu_si128(dst.as_mut_ptr().add(2 * i) as *mut __m128i, h);
        }
    }
    n
}

/// Element type of the KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum KvType {
    /// IEEE half (default).
    F16,
    /// f32.
    F32,
    /// 8-bit blocks of 32 with an f16 scale (head dimensions must be multiples of 32).
    Q8_0,
}

impl KvType {
    /// Parses `f16`, `f32` or `q8_0`.
    pub fn from_name(s: &str) -> Result<KvType> {
        match s.to_ascii_lowercase().as_str() {
            "f16" => Ok(KvType::F16),
            "f32" => Ok(KvType::F32),
            "q8_0" => Ok(KvType::Q8_0),
            _ => Err(RuntimeError::InvalidParameter {
                name: "kv type",
                problem: format!("'{s}' (expected f16, f32 or q8_0)"),
            }),
        }
    }

    /// The name `from_name` accepts.
    pub fn name(self) -> &'static str {
        match self {
            KvType::F16 => "f16",
            KvType::F32 => "f32",
            KvType::Q8_0 => "q8_0",
        }
    }

    /// The kernel weight type that reads this storage.
    pub fn wtype(self) -> WType {
        match self {
            KvType::F16 => WType::F16,
            KvType::F32 => WType::F32,
            KvType::Q8_0 => WType::Q8_0,
        }
    }

    /// Bytes of a row of `n` elements, if `n` fits the type.
    pub fn row_bytes(self, n: usize) -> Option<usize> {
        self.wtype().row_bytes(n)
    }

    /// The type with code `code` (the `repr(u32)` value; saved states record it).
    pub fn from_code(code: u32) -> Option<KvType> {
        [KvType::F16, KvType::F32, KvType::Q8_0]
            .into_iter()
            .find(|t| *t as u32 == code)
    }
}

/// Writes one row of `x` into `dst` in the cache format.
pub fn store_row(ty: KvType, x: &[f32], dst: &mut [u8]) {
    match ty {
        KvType::F32 => {
            for (d, v) in dst.chunks_exact_mut(4).zip(x) {
                d.copy_from_slice(&v.to_le_bytes());
            }
        }
        KvType::F16 => {
            #[cfg(target_arch = "x86_64")]
            let done = if std::arch::is_x86_feature_detected!("f16c") {
                // SAFETY: the CPU has F16C, checked just above.
                unsafe { store_f16_f16c(x, dst) }
            } else {
                0
            };
            #[cfg(not(target_arch = "x86_64"))]
            let done = 0;
            for (d, v) in dst[2 * done..].chunks_exact_mut(2).zip(&x[done..]) {
                d.copy_from_slice(&f32_to_f16(*v).to_le_bytes());
            }
        }
        KvType::Q8_0 => {
            for (blk, xb) in dst.chunks_exact_mut(34).zip(x.chunks_exact(32)) {
                let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
                let d = amax / 127.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                blk[..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
                for (q, v) in blk[2..].iter_mut().zip(xb) {
                    *q = ((v * id).round() as i8) as u8;
                }
            }
        }
    }
}

/// Where the cache lives in a session's arena and how it is laid out. The cache holds `n_seq`
/// sequences of `n_ctx` positions each; position `pos` of sequence `seq` is cell
/// `seq * n_ctx + pos` ([`cell`](Self::cell)). Per layer: the K region (every cell's `n_head_kv`
/// rows of `row_k` bytes), then the V region (the same with `row_v`). A sequence's positions
/// `[0, len)` of every layer are valid; the token slot records the token id of each cell.
#[derive(Debug, Clone, Copy)]
pub struct KvCache {
    rows: Slot<u8>,
    tokens: Slot<Token>,
    kv_type: KvType,
    n_layers: usize,
    n_ctx: usize,
    n_seq: usize,
    n_head_kv: usize,
    row_k: usize,
    row_v: usize,
}

impl KvCache {
    /// Adds the cache's slots to `plan` for `n_seq` sequences of `n_ctx` positions of a model of
    /// shape `spec` (the KV type already checked against the head dimensions).
    pub(crate) fn plan(
        plan: &mut MemoryPlan,
        spec: &ModelSpec,
        kv_type: KvType,
        n_ctx: usize,
        n_seq: usize,
    ) -> Result<KvCache> {
        let row = |dim: usize| {
            kv_type.row_bytes(dim).ok_or_else(|| RuntimeError::InvalidParameter {
                name: "kv type",
                problem: format!("{kv_type:?} needs head dimensions divisible by 32, this model has {dim}"),
            })
        };
        let (row_k, row_v) = (row(spec.head_dim)?, row(spec.head_dim_v)?);
        let cells = n_ctx.checked_mul(n_seq).ok_or_else(|| RuntimeError::InvalidParameter {
            name: "n_seq",
            problem: "KV cache size overflows".into(),
        })?;
        let bytes = cells
            .checked_mul(spec.n_head_kv * (row_k + row_v))
            .and_then(|layer| layer.checked_mul(spec.n_layers))
            .ok_or_else(|| RuntimeError::InvalidParameter {
                name: "n_ctx",
                problem: "KV cache size overflows".into(),
            })?;
        Ok(KvCache {
            rows: plan.add("kv cache", bytes)?,
            tokens: plan.add("kv cache: token ids", cells)?,
            kv_type,
            n_layers: spec.n_layers,
            n_ctx,
            n_seq,
            n_head_kv: spec.n_head_kv,
            row_k,
            row_v,
        })
    }

    /// Element type.
    pub fn kv_type(&self) -> KvType {
        self.kv_type
    }

    /// Positions the cache holds per sequence.
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    /// Sequences the cache holds.
    pub fn n_seq(&self) -> usize {
        self.n_seq
    }

    /// The cell of position `pos` of sequence `seq`.
    pub(crate) fn cell(&self, seq: usize, pos: usize) -> usize {
        seq * self.n_ctx + pos
    }

    /// Bytes of one K row (one position of one kv head).
    pub fn row_k(&self) -> usize {
        self.row_k
    }

    /// Bytes of one V row.
    pub fn row_v(&self) -> usize {
        self.row_v
    }

    /// Bytes of one position over every layer and kv head (keys and values).
    pub fn bytes_per_position(&self) -> usize {
        self.n_layers * self.n_head_kv * (self.row_k + self.row_v)
    }

    /// Bytes between the K rows (and between the V rows) of consecutive positions of one kv head.
    pub(crate) fn k_stride(&self) -> usize {
        self.n_head_kv * self.row_k
    }

    /// See [`k_stride`](Self::k_stride).
    pub(crate) fn v_stride(&self) -> usize {
        self.n_head_kv * self.row_v
    }

    fn cells(&self) -> usize {
        self.n_ctx * self.n_seq
    }

    fn layer_bytes(&self) -> usize {
        self.cells() * (self.k_stride() + self.v_stride())
    }

    /// Offset of the K row of (`cell`, kv head `head`) of layer `layer` in the cache.
    pub(crate) fn k_row(&self, layer: usize, cell: usize, head: usize) -> usize {
        layer * self.layer_bytes() + cell * self.k_stride() + head * self.row_k
    }

    /// Offset of the V row of (`cell`, kv head `head`) of layer `layer` in the cache.
    pub(crate) fn v_row(&self, layer: usize, cell: usize, head: usize) -> usize {
        layer * self.layer_bytes() + self.cells() * self.k_stride() + cell * self.v_stride() + head * self.row_v
    }

    /// The K rows of positions `[0, n)` of sequence `seq` in a layer (contiguous).
    fn k_prefix(&self, layer: usize, seq: usize, n: usize) -> Range<usize> {
        let at = self.k_row(layer, self.cell(seq, 0), 0);
        at..at + n * self.k_stride()
    }

    /// The V rows of positions `[0, n)` of sequence `seq` in a layer (contiguous).
    fn v_prefix(&self, layer: usize, seq: usize, n: usize) -> Range<usize> {
        let at = self.v_row(layer, self.cell(seq, 0), 0);
        at..at + n * self.v_stride()
    }

    /// The first byte of the cache in `arena` (the session's).
    pub(crate) fn base(&self, arena: &Arena) -> *mut u8 {
        arena.ptr(self.rows)
    }

    /// The token ids of sequence `seq` (`n_ctx` cells from the returned pointer while
    /// `seq < n_seq`) in `arena`.
    pub(crate) fn tokens_ptr(&self, arena: &Arena, seq: usize) -> *mut Token {
        arena.ptr(self.tokens).wrapping_add(self.cell(seq, 0))
    }

    /// Whether rows written by `other` can be read by this cache (same model shape and element
    /// type; the context lengths may differ).
    pub(crate) fn same_rows(&self, other: &KvCache) -> bool {
        (self.kv_type, self.n_layers, self.n_head_kv, self.row_k, self.row_v)
            == (other.kv_type, other.n_layers, other.n_head_kv, other.row_k, other.row_v)
    }

    /// Bytes [`save_prefix`](Self::save_prefix) writes for `n` positions.
    pub(crate) fn saved_bytes(&self, n: usize) -> usize {
        n * (4 + self.bytes_per_position())
    }

    /// Writes positions `[0, n)` of sequence `seq` to `out` (`saved_bytes(n)` long): their token
    /// ids (u32 LE), then per layer the K rows and the V rows.
    ///
    /// # Safety
    /// `arena` is this cache's; no forward pass writes it meanwhile; `n <= n_ctx`, `seq < n_seq`.
    pub(crate) unsafe fn save_prefix(&self, arena: &Arena, seq: usize, n: usize, out: &mut [u8]) {
        // SAFETY: the caller's contract: no writer; the slots lie in the arena.
        let (rows, tokens) = unsafe { (&*arena.slice(self.rows), &*arena.slice(self.tokens)) };
        let mut at = 0;
        for t in &tokens[self.cell(seq, 0)..self.cell(seq, n)] {
            out[at..at + 4].copy_from_slice(&t.to_le_bytes());
            at += 4;
        }
        for layer in 0..self.n_layers {
            for r in [self.k_prefix(layer, seq, n), self.v_prefix(layer, seq, n)] {
                out[at..at + r.len()].copy_from_slice(&rows[r.clone()]);
                at += r.len();
            }
        }
    }

    /// Reads positions `[0, keep)` of a `saved`-position record written by
    /// [`save_prefix`](Self::save_prefix) (`saved_bytes(saved)` long) into sequence `seq`.
    ///
    /// # Safety
    /// `arena` is this cache's and no one else uses it meanwhile; `keep <= saved`, `keep <= n_ctx`,
    /// `seq < n_seq`.
    pub(crate) unsafe fn restore_prefix(&self, arena: &Arena, seq: usize, saved: usize, keep: usize, src: &[u8]) {
        // SAFETY: the caller's contract: exclusive use of the slots, which lie in the arena.
        let (rows, tokens) = unsafe { (arena.slice(self.rows), arena.slice(self.tokens)) };
        for (i, t) in tokens[self.cell(seq, 0)..self.cell(seq, keep)].iter_mut().enumerate() {
            *t = u32::from_le_bytes([src[4 * i], src[4 * i + 1], src[4 * i + 2], src[4 * i + 3]]);
        }
        let mut at = 4 * saved;
        for layer in 0..self.n_layers {
            for (r, stride) in [
                (self.k_prefix(layer, seq, keep), self.k_stride()),
                (self.v_prefix(layer, seq, keep), self.v_stride()),
            ] {
                rows[r.clone()].copy_from_slice(&src[at..at + r.len()]);
                at += saved * stride;
            }
        }
    }

    /// Copies positions `[0, n)` of sequence `src_seq` of `src` (in `src_arena`) into sequence
    /// `seq` of this cache.
    ///
    /// # Safety
    /// `self.same_rows(src)`; `n` is at most both contexts; the sequences exist; this cache's
    /// arena is used by no one else meanwhile and `src_arena` is not written; the two arenas are
    /// different.
    pub(crate) unsafe fn copy_prefix_from(
        &self,
        arena: &Arena,
        seq: usize,
        src: &KvCache,
        src_arena: &Arena,
        src_seq: usize,
        n: usize,
    ) {
        // SAFETY: the caller's contract: exclusive use of ours, no writer of theirs, distinct arenas.
        let (rows, tokens, src_rows, src_tokens) = unsafe {
            (
                arena.slice(self.rows),
                arena.slice(self.tokens),
                &*src_arena.slice(src.rows),
                &*src_arena.slice(src.tokens),
            )
        };
        tokens[self.cell(seq, 0)..self.cell(seq, n)]
            .copy_from_slice(&src_tokens[src.cell(src_seq, 0)..src.cell(src_seq, n)]);
        for layer in 0..self.n_layers {
            rows[self.k_prefix(layer, seq, n)].copy_from_slice(&src_rows[src.k_prefix(layer, src_seq, n)]);
            rows[self.v_prefix(layer, seq, n)].copy_from_slice(&src_rows[src.v_prefix(layer, src_seq, n)]);
        }
    }
}
