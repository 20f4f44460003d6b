//! GGUF metadata values.

/// A GGUF metadata value type id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ValueType {
    /// `u8`
    U8 = 0,
    /// `i8`
    I8 = 1,
    /// `u16`
    U16 = 2,
    /// `i16`
    I16 = 3,
    /// `u32`
    U32 = 4,
    /// `i32`
    I32 = 5,
    /// `f32`
    F32 = 6,
    /// `bool` (one byte)
    Bool = 7,
    /// UTF-8 string (`u64` length + bytes)
    String = 8,
    /// Array (`u32` element type, `u64` count, elements)
    Array = 9,
    /// `u64`
    U64 = 10,
    /// `i64`
    I64 = 11,
    /// `f64`
    F64 = 12,
}

impl ValueType {
    /// The type for an id, or `None`.
    pub fn from_id(id: u32) -> Option<ValueType> {
        use ValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// The smallest number of bytes one value of this type occupies in a file.
    pub fn min_size(self) -> u64 {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => 1,
            U16 | I16 => 2,
            U32 | I32 | F32 => 4,
            U64 | I64 | F64 | String => 8,
            Array => 12,
        }
    }

    /// GGUF's name of the type.
    pub fn name(self) -> &'static str {
        use ValueType::*;
        match self {
            U8 => "u8",
            I8 => "i8",
            U16 => "u16",
            I16 => "i16",
            U32 => "u32",
            I32 => "i32",
            F32 => "f32",
            Bool => "bool",
            String => "string",
            Array => "array",
            U64 => "u64",
            I64 => "i64",
            F64 => "f64",
        }
    }
}

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(MetaArray),
    U64(u64),
    I64(i64),
    F64(f64),
}

/// An array value, stored compactly by element type (a million-entry `u8` array costs a
/// megabyte, not a million enum values).
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum MetaArray {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    Bool(Vec<bool>),
    String(Vec<String>),
    /// An array of arrays; each inner array has its own element type.
    Array(Vec<MetaArray>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
}

/// Heap bytes glibc's malloc uses for a `len`-byte allocation (16-byte chunks with an 8-byte
/// header, 32 bytes at least).
pub fn malloc_bytes(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        (len + 8).div_ceil(16).max(2) * 16
    }
}

impl MetaArray {
    /// Heap bytes this array holds (elements plus, for strings, each string's allocation).
    pub fn heap_bytes(&self) -> usize {
        fn v<T>(x: &[T]) -> usize {
            malloc_bytes(std::mem::size_of_val(x))
        }
        match self {
            MetaArray::U8(x) => v(x),
            MetaArray::I8(x) => v(x),
            MetaArray::U16(x) => v(x),
            MetaArray::I16(x) => v(x),
            MetaArray::U32(x) => v(x),
            MetaArray::I32(x) => v(x),
            MetaArray::F32(x) => v(x),
            MetaArray::Bool(x) => v(x),
            MetaArray::U64(x) => v(x),
            MetaArray::I64(x) => v(x),
            MetaArray::F64(x) => v(x),
            MetaArray::String(x) => v(x) + x.iter().map(|s| malloc_bytes(s.len())).sum::<usize>(),
            MetaArray::Array(x) => v(x) + x.iter().map(MetaArray::heap_bytes).sum::<usize>(),
        }
    }
}

impl MetaValue {
    /// Heap bytes this value holds.
    pub fn heap_bytes(&self) -> usize {
        match self {
            MetaValue::String(s) => malloc_bytes(s.len()),
            MetaValue::Array(a) => a.heap_bytes(),
            _ => 0,
        }
    }

    /// The value's type.
    pub fn value_type(&self) -> ValueType {
        match self {
            MetaValue::U8(_) => ValueType::U8,
            MetaValue::I8(_) => ValueType::I8,
            MetaValue::U16(_) => ValueType::U16,
            MetaValue::I16(_) => ValueType::I16,
            MetaValue::U32(_) => ValueType::U32,
            MetaValue::I32(_) => ValueType::I32,
            MetaValue::F32(_) => ValueType::F32,
            MetaValue::Bool(_) => ValueType::Bool,
            MetaValue::String(_) => ValueType::String,
            MetaValue::Array(_) => ValueType::Array,
            MetaValue::U64(_) => ValueType::U64,
            MetaValue::I64(_) => ValueType::I64,
            MetaValue::F64(_) => ValueType::F64,
        }
    }

    /// Any non-negative integer value as `u64`.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::U8(v) => Some(v.into()),
            MetaValue::U16(v) => Some(v.into()),
            MetaValue::U32(v) => Some(v.into()),
            MetaValue::U64(v) => Some(v),
            MetaValue::I8(v) => u64::try_from(v).ok(),
            MetaValue::I16(v) => u64::try_from(v).ok(),
            MetaValue::I32(v) => u64::try_from(v).ok(),
            MetaValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any integer value as `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            MetaValue::I8(v) => Some(v.into()),
            MetaValue::I16(v) => Some(v.into()),
            MetaValue::I32(v) => Some(v.into()),
            MetaValue::I64(v) => Some(v),
            MetaValue::U8(v) => Some(v.into()),
            MetaValue::U16(v) => Some(v.into()),
            MetaValue::U32(v) => Some(v.into()),
            MetaValue::U64(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any float or integer value as `f64`.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetaValue::F32(v) => Some(v.into()),
            MetaValue::F64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }

    /// The string, if this is a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean, if this is a bool value.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetaValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The array, if this is an array value.
    pub fn as_array(&self) -> Option<&MetaArray> {
        match self {
            MetaValue::Array(a) => Some(a),
            _ => None,
        }
    }

    /// A short human-readable rendering (arrays are summarised past `max_items`).
    pub fn display(&self, max_items: usize) -> String {
        match self {
            MetaValue::String(s) => format!("{s:?}"),
            MetaValue::Array(a) => a.display(max_items),
            MetaValue::U8(v) => v.to_string(),
            MetaValue::I8(v) => v.to_string(),
            MetaValue::U16(v) => v.to_string(),
            MetaValue::I16(v) => v.to_string(),
            MetaValue::U32(v) => v.to_string(),
            MetaValue::I32(v) => v.to_string(),
            MetaValue::F32(v) => v.to_string(),
            MetaValue::Bool(v) => v.to_string(),
            MetaValue::U64(v) => v.to_string(),
            MetaValue::I64(v) => v.to_string(),
            MetaValue::F64(v) => v.to_string(),
        }
    }
}

macro_rules! for_each_array {
    ($a:expr, $v:ident => $body:expr) => {
        match $a {
            MetaArray::U8($v) => $body,
            MetaArray::I8($v) => $body,
            MetaArray::U16($v) => $body,
            MetaArray::I16($v) => $body,
            MetaArray::U32($v) => $body,
            MetaArray::I32($v) => $body,
            MetaArray::F32($v) => $body,
            MetaArray::Bool($v) => $body,
            MetaArray::String($v) => $body,
            MetaArray::Array($v) => $body,
            MetaArray::U64($v) => $body,
            MetaArray::I64($v) => $body,
            MetaArray::F64($v) => $body,
        }
    };
}

impl MetaArray {
    /// Number of elements.
    pub fn len(&self) -> usize {
        for_each_array!(self, v => v.len())
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type.
    pub fn elem_type(&self) -> ValueType {
        match self {
            MetaArray::U8(_) => ValueType::U8,
            MetaArray::I8(_) => ValueType::I8,
            MetaArray::U16(_) => ValueType::U16,
            MetaArray::I16(_) => ValueType::I16,
            MetaArray::U32(_) => ValueType::U32,
            MetaArray::I32(_) => ValueType::I32,
            MetaArray::F32(_) => ValueType::F32,
            MetaArray::Bool(_) => ValueType::Bool,
            MetaArray::String(_) => ValueType::String,
            MetaArray::Array(_) => ValueType::Array,
            MetaArray::U64(_) => ValueType::U64,
            MetaArray::I64(_) => ValueType::I64,
            MetaArray::F64(_) => ValueType::F64,
        }
    }

    /// A short rendering: `[a, b, c, ... (N items)]`.
    pub fn display(&self, max_items: usize) -> String {
        fn join<T: std::fmt::Debug>(v: &[T], max: usize) -> String {
            let shown: Vec<String> = v.iter().take(max).map(|x| format!("{x:?}")).collect();
            if v.len() > max {
                format!("[{}, ... ({} items)]", shown.join(", "), v.len())
            } else {
                format!("[{}]", shown.join(", "))
            }
        }
        match self {
            MetaArray::Array(v) => {
                let shown: Vec<String> = v.iter().take(max_items).map(|a| a.display(max_items)).collect();
                if v.len() > max_items {
                    format!("[{}, ... ({} items)]", shown.join(", "), v.len())
                } else {
                    format!("[{}]", shown.join(", "))
                }
            }
            MetaArray::U8(v) => join(v, max_items),
            MetaArray::I8(v) => join(v, max_items),
            MetaArray::U16(v) => join(v, max_items),
            MetaArray::I16(v) => join(v, max_items),
            MetaArray::U32(v) => join(v, max_items),
            MetaArray::I32(v) => join(v, max_items),
            MetaArray::F32(v) => join(v, max_items),
            MetaArray::Bool(v) => join(v, max_items),
            MetaArray::String(v) => join(v, max_items),
            MetaArray::U64(v) => join(v, max_items),
            MetaArray::I64(v) => join(v, max_items),
            MetaArray::F64(v) => join(v, max_items),
        }
    }
}
