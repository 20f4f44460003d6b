//! The ggml tensor type table: every type id up to 42 that a GGUF file may carry.
//!
//! Sizes come from ggml's `ggml-common.h` (block structs) and, for type 42 (`Q2_0`), from
//! `shared/MODELS.md`. Ids 4, 5, 31–33 and 36–38 were removed from ggml and are rejected.
//! The `#[repr(C)]` block structs with compile-time size asserts live next to the kernels
//! (`tensorsharp-kernels::blocks`); a test in the workspace checks that the two tables agree.

/// Elements in a K-quant super-block.
pub const QK_K: usize = 256;

macro_rules! ggml_types {
    ($( $(#[$doc:meta])* $variant:ident = $id:literal, $name:literal, $blck:expr, $bytes:expr; )*) => {
        /// A ggml tensor element type, as stored in a GGUF tensor info (variants spelled as ggml spells them).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u32)]
        #[allow(non_camel_case_types)]
        pub enum GgmlType {
            $( $(#[$doc])* $variant = $id, )*
        }

        impl GgmlType {
            /// Every known type, in id order.
            pub const ALL: &'static [GgmlType] = &[ $( GgmlType::$variant, )* ];

            /// The type for a GGUF type id, or `None` for an unknown or removed id.
            pub fn from_id(id: u32) -> Option<GgmlType> {
                match id {
                    $( $id => Some(GgmlType::$variant), )*
                    _ => None,
                }
            }

            /// ggml's name for the type (`"Q4_K"`, `"F16"`, ...).
            pub fn name(self) -> &'static str {
                match self { $( GgmlType::$variant => $name, )* }
            }

            /// Elements per block.
            pub fn block_elems(self) -> usize {
                match self { $( GgmlType::$variant => $blck, )* }
            }

            /// Bytes per block.
            pub fn block_bytes(self) -> usize {
                match self { $( GgmlType::$variant => $bytes, )* }
            }
        }
    };
}

ggml_types! {
    /// 32-bit IEEE float.
    F32 = 0, "F32", 1, 4;
    /// 16-bit IEEE float.
    F16 = 1, "F16", 1, 2;
    /// 4-bit, blocks of 32, f16 scale, offset 8.
    Q4_0 = 2, "Q4_0", 32, 18;
    /// 4-bit, blocks of 32, f16 scale and min.
    Q4_1 = 3, "Q4_1", 32, 20;
    /// 5-bit, blocks of 32, f16 scale, offset 16.
    Q5_0 = 6, "Q5_0", 32, 22;
    /// 5-bit, blocks of 32, f16 scale and min.
    Q5_1 = 7, "Q5_1", 32, 24;
    /// 8-bit, blocks of 32, f16 scale.
    Q8_0 = 8, "Q8_0", 32, 34;
    /// 8-bit, blocks of 32, f16 scale and f16 sum.
    Q8_1 = 9, "Q8_1", 32, 36;
    /// 2-bit K-quant, super-blocks of 256.
    Q2_K = 10, "Q2_K", QK_K, 84;
    /// 3-bit K-quant.
    Q3_K = 11, "Q3_K", QK_K, 110;
    /// 4-bit K-quant.
    Q4_K = 12, "Q4_K", QK_K, 144;
    /// 5-bit K-quant.
    Q5_K = 13, "Q5_K", QK_K, 176;
    /// 6-bit K-quant.
    Q6_K = 14, "Q6_K", QK_K, 210;
    /// 8-bit K-quant (activations).
    Q8_K = 15, "Q8_K", QK_K, 292;
    /// i-quant, 2.06 bpw.
    IQ2_XXS = 16, "IQ2_XXS", QK_K, 66;
    /// i-quant, 2.31 bpw.
    IQ2_XS = 17, "IQ2_XS", QK_K, 74;
    /// i-quant, 3.06 bpw.
    IQ3_XXS = 18, "IQ3_XXS", QK_K, 98;
    /// i-quant, 1.56 bpw.
    IQ1_S = 19, "IQ1_S", QK_K, 50;
    /// 4-bit non-linear, blocks of 32.
    IQ4_NL = 20, "IQ4_NL", 32, 18;
    /// i-quant, 3.44 bpw.
    IQ3_S = 21, "IQ3_S", QK_K, 110;
    /// i-quant, 2.5 bpw.
    IQ2_S = 22, "IQ2_S", QK_K, 82;
    /// 4-bit non-linear, super-blocks of 256.
    IQ4_XS = 23, "IQ4_XS", QK_K, 136;
    /// 8-bit integer.
    I8 = 24, "I8", 1, 1;
    /// 16-bit integer.
    I16 = 25, "I16", 1, 2;
    /// 32-bit integer.
    I32 = 26, "I32", 1, 4;
    /// 64-bit integer.
    I64 = 27, "I64", 1, 8;
    /// 64-bit float.
    F64 = 28, "F64", 1, 8;
    /// i-quant, 1.75 bpw.
    IQ1_M = 29, "IQ1_M", QK_K, 56;
    /// bfloat16.
    BF16 = 30, "BF16", 1, 2;
    /// Ternary, 1.69 bpw.
    TQ1_0 = 34, "TQ1_0", QK_K, 54;
    /// Ternary, 2.06 bpw (2-bit codes, value (q-1)·d).
    TQ2_0 = 35, "TQ2_0", QK_K, 66;
    /// Microscaling FP4, blocks of 32 with an E8M0 scale.
    MXFP4 = 39, "MXFP4", 32, 17;
    /// NVIDIA FP4, blocks of 64 with four UE4M3 scales.
    NVFP4 = 40, "NVFP4", 64, 36;
    /// 1-bit, blocks of 128, f16 scale.
    Q1_0 = 41, "Q1_0", 128, 18;
    /// True 2-bit, blocks of 64: f16 scale `d`, 2-bit codes, value (q-1)·d.
    Q2_0 = 42, "Q2_0", 64, 18;
}

impl GgmlType {
    /// The GGUF type id.
    pub fn id(self) -> u32 {
        self as u32
    }

    /// The type named `name` (case-insensitive), as ggml spells it.
    pub fn from_name(name: &str) -> Option<GgmlType> {
        GgmlType::ALL
            .iter()
            .copied()
            .find(|t| t.name().eq_ignore_ascii_case(name))
    }

    /// Bytes of a row of `n` elements, or `None` if `n` is not a multiple of the block size or
    /// the size overflows.
    pub fn row_bytes(self, n: u64) -> Option<u64> {
        let be = self.block_elems() as u64;
        if !n.is_multiple_of(be) {
            return None;
        }
        (n / be).checked_mul(self.block_bytes() as u64)
    }

    /// Bits per weight (block bytes × 8 / block elements).
    pub fn bits_per_weight(self) -> f64 {
        self.block_bytes() as f64 * 8.0 / self.block_elems() as f64
    }

    /// Whether the type is a block-quantized type (not a plain float or integer type).
    pub fn is_quantized(self) -> bool {
        self.block_elems() > 1
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_removed_ids_are_unknown() {
        for t in GgmlType::ALL {
            assert_eq!(GgmlType::from_id(t.id()), Some(*t));
            assert_eq!(GgmlType::from_name(t.name()), Some(*t));
        }
        for removed in [4, 5, 31, 32, 33, 36, 37, 38, 43, 1000, u32::MAX] {
            assert_eq!(GgmlType::from_id(removed), None, "id {removed}");
        }
        assert_eq!(GgmlType::ALL.len(), 43 - 8);
    }

    #[test]
    fn row_bytes_checks_block_multiple_and_overflow() {
        assert_eq!(GgmlType::Q4_0.row_bytes(64), Some(36));
        assert_eq!(GgmlType::Q4_0.row_bytes(65), None);
        assert_eq!(GgmlType::Q6_K.row_bytes(512), Some(420));
        assert_eq!(GgmlType::F32.row_bytes(u64::MAX), None);
        assert_eq!(GgmlType::Q2_0.row_bytes(576), Some(162));
    }
}
