//! Declarations of the C side (`csrc/ts_blocks.h`).

use crate::blocks::BlockQ8a;

pub(crate) const NTYPES: usize = 43;

pub(crate) type DequantFn = unsafe extern "C" fn(w: *const u8, y: *mut f32, n: i64);
pub(crate) type MmQ8aFn = unsafe extern "C" fn(
    w: *const u8,
    w_stride: usize,
    nrows: i64,
    a: *const BlockQ8a,
    a_stride: usize,
    ncols: i64,
    y: *mut f32,
    y_stride: usize,
    n: i64,
);
pub(crate) type MmF32Fn = unsafe extern "C" fn(
    w: *const u8,
    w_stride: usize,
    nrows: i64,
    x: *const f32,
    x_stride: usize,
    ncols: i64,
    y: *mut f32,
    y_stride: usize,
    n: i64,
);
pub(crate) type QuantizeQ8aFn = unsafe extern "C" fn(x: *const f32, y: *mut BlockQ8a, n: i64);
pub(crate) type AttnF16Fn = unsafe extern "C" fn(
    q: *const f32,
    k: *const u16,
    k_stride: usize,
    v: *const u16,
    v_stride: usize,
    first: i64,
    npos: i64,
    hd: i64,
    hdv: i64,
    scale: f32,
    batched: i32,
    scores: *mut f32,
    out: *mut f32,
);

pub(crate) type SwigluFn = unsafe extern "C" fn(g: *mut f32, u: *const f32, n: i64, n_vec: i64);

/// Mirror of `ts_kernel_table`.
#[repr(C)]
pub(crate) struct KernelTable {
    pub name: *const std::ffi::c_char,
    pub dequant: [Option<DequantFn>; NTYPES],
    pub mm_q8a: [Option<MmQ8aFn>; NTYPES],
    pub mv_q8a: [Option<MmQ8aFn>; NTYPES],
    pub mm_f32: [Option<MmF32Fn>; NTYPES],
    pub quantize_q8a: Option<QuantizeQ8aFn>,
    pub quantize_q8a_k: Option<QuantizeQ8aFn>,
    pub attn_f16: Option<AttnF16Fn>,
    pub swiglu: Option<SwigluFn>,
}

// SAFETY: the tables are immutable statics in C (function pointers and a string literal).
unsafe impl Sync for KernelTable {}

extern "C" {
    pub(crate) fn ts_scalar_kernel_table() -> *const KernelTable;
    #[cfg(ts_tier_x86)]
    pub(crate) fn ts_avx2_kernel_table() -> *const KernelTable;
    #[cfg(ts_tier_x86)]
    pub(crate) fn ts_avx512_kernel_table() -> *const KernelTable;
    #[cfg(ts_tier_x86)]
    pub(crate) fn ts_amx_kernel_table() -> *const KernelTable;
    /// 1 when AMX-INT8 is present, enabled by the OS and granted to this process (ts_cpu.c).
    #[cfg(ts_tier_x86)]
    pub(crate) fn ts_amx_int8_usable() -> i32;
    #[cfg(ts_tier_aarch64)]
    pub(crate) fn ts_neon_kernel_table() -> *const KernelTable;
    #[cfg(ts_tier_aarch64)]
    pub(crate) fn ts_dotprod_kernel_table() -> *const KernelTable;
}
