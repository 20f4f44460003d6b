//! `#[repr(C)]` mirrors of the C block structs in `csrc/ts_blocks.h`, with compile-time size
//! asserts, and the weight types that have kernels.

#![allow(missing_docs)]

/// Elements in a K-quant super-block.
pub const QK_K: usize = 256;

macro_rules! blocks {
    ($( $(#[$doc:meta])* $name:ident { $($field:ident : $ty:ty),* $(,)? } = $size:expr; )*) => {
        $(
            $(#[$doc])*
            #[repr(C)]
            #[derive(Clone, Copy, Debug)]
            pub struct $name { $(pub $field: $ty),* }
            const _: () = assert!(std::mem::size_of::<$name>() == $size);
        )*
    };
}

blocks! {
    /// Q4_0: 32 × 4-bit, value (q-8)·d.
    BlockQ4_0 { d: u16, qs: [u8; 16] } = 18;
    /// Q4_1: 32 × 4-bit, value q·d + m.
    BlockQ4_1 { d: u16, m: u16, qs: [u8; 16] } = 20;
    /// Q5_0: 32 × 5-bit, value (q-16)·d.
    BlockQ5_0 { d: u16, qh: [u8; 4], qs: [u8; 16] } = 22;
    /// Q5_1: 32 × 5-bit, value q·d + m.
    BlockQ5_1 { d: u16, m: u16, qh: [u8; 4], qs: [u8; 16] } = 24;
    /// Q8_0: 32 × int8, value q·d.
    BlockQ8_0 { d: u16, qs: [i8; 32] } = 34;
    /// IQ4_NL: 32 × 4-bit indices into a non-linear table.
    BlockIq4Nl { d: u16, qs: [u8; 16] } = 18;
    /// Q2_0: 64 × 2-bit, value (q-1)·d.
    BlockQ2_0 { d: u16, qs: [u8; 16] } = 18;
    /// Q2_K: 256 × 2-bit with 4-bit scales and mins per 16.
    BlockQ2K { scales: [u8; 16], qs: [u8; 64], d: u16, dmin: u16 } = 84;
    /// Q3_K: 256 × 3-bit with 6-bit scales per 16.
    BlockQ3K { hmask: [u8; 32], qs: [u8; 64], scales: [u8; 12], d: u16 } = 110;
    /// Q4_K: 256 × 4-bit with 6-bit scales and mins per 32.
    BlockQ4K { d: u16, dmin: u16, scales: [u8; 12], qs: [u8; 128] } = 144;
    /// Q5_K: 256 × 5-bit with 6-bit scales and mins per 32.
    BlockQ5K { d: u16, dmin: u16, scales: [u8; 12], qh: [u8; 32], qs: [u8; 128] } = 176;
    /// Q6_K: 256 × 6-bit with 8-bit scales per 16.
    BlockQ6K { ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: u16 } = 210;
    /// TQ2_0: 256 × 2-bit ternary, value (q-1)·d.
    BlockTq2_0 { qs: [u8; 64], d: u16 } = 66;
    /// Our 8-bit activation block: 32 values in [-127, 127], scale `d`, the block sum times the
    /// scale as llama.cpp's Q8_1 keeps it (`sd`, f16-rounded for per-32 quantization), and the
    /// integer sums of each half of 16 (`s`). One format for every quantized weight type.
    BlockQ8a { d: f32, sd: f32, s: [i16; 2], qs: [i8; 32] } = 44;
}

impl Default for BlockQ8a {
    fn default() -> Self {
        BlockQ8a {
            d: 0.0,
            sd: 0.0,
            s: [0; 2],
            qs: [0; 32],
        }
    }
}

/// How a vector of activations is quantized into [`BlockQ8a`] blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActQuant {
    /// One scale per 32 values, rounded to f16 (llama.cpp's Q8_0 / Q8_1).
    PerBlock,
    /// One f32 scale per 256 values (llama.cpp's Q8_K); the length must be a multiple of 256.
    PerSuperBlock,
}

/// Elements per activation block.
pub const QK_A: usize = 32;

/// A weight type that has kernels, by ggml type id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
#[allow(non_camel_case_types)]
pub enum WType {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    IQ4_NL = 20,
    BF16 = 30,
    TQ2_0 = 35,
    Q2_0 = 42,
}

impl WType {
    /// Every weight type with kernels.
    pub const ALL: [WType; 16] = [
        WType::F32,
        WType::F16,
        WType::BF16,
        WType::Q8_0,
        WType::Q4_0,
        WType::Q4_1,
        WType::Q5_0,
        WType::Q5_1,
        WType::Q2_K,
        WType::Q3_K,
        WType::Q4_K,
        WType::Q5_K,
        WType::Q6_K,
        WType::Q2_0,
        WType::IQ4_NL,
        WType::TQ2_0,
    ];

    /// The weight type for a ggml type id, if it has kernels.
    pub fn from_ggml_id(id: u32) -> Option<WType> {
        WType::ALL.iter().copied().find(|t| *t as u32 == id)
    }

    /// ggml's name for the type.
    pub fn name(self) -> &'static str {
        match self {
            WType::F32 => "F32",
            WType::F16 => "F16",
            WType::BF16 => "BF16",
            WType::Q8_0 => "Q8_0",
            WType::Q4_0 => "Q4_0",
            WType::Q4_1 => "Q4_1",
            WType::Q5_0 => "Q5_0",
            WType::Q5_1 => "Q5_1",
            WType::Q2_K => "Q2_K",
            WType::Q3_K => "Q3_K",
            WType::Q4_K => "Q4_K",
            WType::Q5_K => "Q5_K",
            WType::Q6_K => "Q6_K",
            WType::Q2_0 => "Q2_0",
            WType::IQ4_NL => "IQ4_NL",
            WType::TQ2_0 => "TQ2_0",
        }
    }

    /// Elements per block (1 for float types).
    pub fn block_elems(self) -> usize {
        match self {
            WType::F32 | WType::F16 | WType::BF16 => 1,
            WType::Q8_0 | WType::Q4_0 | WType::Q4_1 | WType::Q5_0 | WType::Q5_1 | WType::IQ4_NL => 32,
            WType::Q2_0 => 64,
            WType::Q2_K | WType::Q3_K | WType::Q4_K | WType::Q5_K | WType::Q6_K | WType::TQ2_0 => QK_K,
        }
    }

    /// Bytes per block, from the `#[repr(C)]` structs.
    pub fn block_bytes(self) -> usize {
        use std::mem::size_of;
        match self {
            WType::F32 => 4,
            WType::F16 | WType::BF16 => 2,
            WType::Q8_0 => size_of::<BlockQ8_0>(),
            WType::Q4_0 => size_of::<BlockQ4_0>(),
            WType::Q4_1 => size_of::<BlockQ4_1>(),
            WType::Q5_0 => size_of::<BlockQ5_0>(),
            WType::Q5_1 => size_of::<BlockQ5_1>(),
            WType::Q2_K => size_of::<BlockQ2K>(),
            WType::Q3_K => size_of::<BlockQ3K>(),
            WType::Q4_K => size_of::<BlockQ4K>(),
            WType::Q5_K => size_of::<BlockQ5K>(),
            WType::Q6_K => size_of::<BlockQ6K>(),
            WType::Q2_0 => size_of::<BlockQ2_0>(),
            WType::IQ4_NL => size_of::<BlockIq4Nl>(),
            WType::TQ2_0 => size_of::<BlockTq2_0>(),
        }
    }

    /// How activations are quantized for this type (as llama.cpp does, so results agree with it):
    /// per-32 scales for the legacy types, one scale per 256 for K-quants and TQ2_0.
    pub fn act_quant(self) -> ActQuant {
        match self {
            WType::Q2_K | WType::Q3_K | WType::Q4_K | WType::Q5_K | WType::Q6_K | WType::TQ2_0 => {
                ActQuant::PerSuperBlock
            }
            _ => ActQuant::PerBlock,
        }
    }

    /// The most activation columns one matrix product of this type may have while every column
    /// still gets the bits it would get alone (one column, the GEMV a decode step runs). From
    /// one more column on the kernels sum in the order llama.cpp's x86 backend uses for such a
    /// batch: the repacked Q4_K GEMM for whole groups of four columns, the tiled K-quant and
    /// Q4_0 GEMMs from eight. The lane types keep their per-column order at any width.
    /// `kernels-c/tests/batch_columns.rs` holds every tier to it. The runtime's batched decode
    /// step hands the kernels its columns in groups of at most this many, so each sequence gets
    /// what it would alone at any batch size.
    pub fn gemv_exact_cols(self) -> usize {
        match self {
            WType::Q4_K => 3,
            WType::Q4_0 | WType::Q2_K | WType::Q3_K | WType::Q5_K | WType::Q6_K => 7,
            _ => usize::MAX,
        }
    }

    /// Whether the type's dot product takes 8-bit activations ([`BlockQ8a`]); float types take
    /// f32 activations.
    pub fn uses_q8a(self) -> bool {
        !matches!(self, WType::F32 | WType::F16 | WType::BF16)
    }

    /// Bytes of a row of `n` elements, if `n` is a whole number of blocks.
    pub fn row_bytes(self, n: usize) -> Option<usize> {
        n.is_multiple_of(self.block_elems())
            .then(|| n / self.block_elems() * self.block_bytes())
    }
}

/// How a matrix product of several activation columns is summed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatmulForm {
    /// As llama.cpp's x86 backend sums a product of that many columns (a prompt's batch: its
    /// bits are those of llama.cpp's prompt processing).
    Batch,
    /// Every column as a one-column product (GEMV), whatever the number of columns: a batched
    /// decode step, whose sequences each get the bits they would get decoded alone. The kernels
    /// take the columns in groups of at most [`WType::gemv_exact_cols`], or of their own
    /// several-column GEMV where it is wider.
    Gemv,
}

impl std::fmt::Display for WType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
