//! The GGUF writer: metadata and tensors of any type (raw blocks), correctly aligned.

use std::io::Write;
use std::path::Path;

use super::value::{MetaArray, MetaValue};
use super::{DEFAULT_ALIGNMENT, KEY_ALIGNMENT, MAGIC};
use crate::quant::GgmlType;
use crate::{ModelError, Result};

struct PendingTensor {
    name: String,
    ggml_type: GgmlType,
    dims: Vec<u64>,
    data: Vec<u8>,
}

/// Builds a GGUF file in memory and writes it out.
///
/// ```
/// use tensorsharp_models::gguf::{GgufWriter, MetaValue};
/// use tensorsharp_models::{GgmlType, GgufFile};
/// let mut w = GgufWriter::new();
/// w.add_meta("general.architecture", MetaValue::String("llama".into())).unwrap();
/// w.add_tensor("t", GgmlType::F32, &[2], 1.5f32.to_le_bytes().repeat(2)).unwrap();
/// let f = GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap();
/// assert_eq!(f.tensor_data("t").unwrap().len(), 8);
/// ```
pub struct GgufWriter {
    version: u32,
    alignment: u64,
    metadata: Vec<(String, MetaValue)>,
    tensors: Vec<PendingTensor>,
}

/// Where the writer put each field, for tools and tests that patch bytes.
#[derive(Debug, Clone, Default)]
pub struct WrittenLayout {
    /// Offset of each metadata key's length field, in order.
    pub kv_offsets: Vec<u64>,
    /// Offset of each tensor info's name length field, in order.
    pub tensor_info_offsets: Vec<u64>,
    /// Absolute offset of the data section.
    pub data_offset: u64,
    /// Total bytes written.
    pub len: u64,
}

impl Default for GgufWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl GgufWriter {
    /// A GGUF v3 writer with the default alignment (32).
    pub fn new() -> Self {
        GgufWriter {
            version: 3,
            alignment: DEFAULT_ALIGNMENT,
            metadata: Vec::new(),
            tensors: Vec::new(),
        }
    }

    /// Writes GGUF version `v` (2 or 3; the on-disk layout is the same for little-endian files).
    pub fn set_version(&mut self, v: u32) -> Result<()> {
        if !matches!(v, 2 | 3) {
            return Err(ModelError::Write(format!(
                "GGUF version {v} cannot be written (2 or 3)"
            )));
        }
        self.version = v;
        Ok(())
    }

    /// Sets the alignment (a power of two) and records it as `general.alignment`.
    pub fn set_alignment(&mut self, a: u32) -> Result<()> {
        if a == 0 || !a.is_power_of_two() {
            return Err(ModelError::Write(format!("alignment {a} is not a power of two")));
        }
        self.alignment = u64::from(a);
        self.metadata.retain(|(k, _)| k != KEY_ALIGNMENT);
        self.metadata.push((KEY_ALIGNMENT.to_owned(), MetaValue::U32(a)));
        Ok(())
    }

    /// Adds a metadata pair. Keys must be unique; use [`set_alignment`](Self::set_alignment) for
    /// `general.alignment`.
    pub fn add_meta(&mut self, key: impl Into<String>, value: MetaValue) -> Result<()> {
        let key = key.into();
        if key == KEY_ALIGNMENT {
            return Err(ModelError::Write("use set_alignment for general.alignment".into()));
        }
        if self.metadata.iter().any(|(k, _)| *k == key) {
            return Err(ModelError::Write(format!("metadata key '{key}' added twice")));
        }
        self.metadata.push((key, value));
        Ok(())
    }

    /// Adds a tensor of type `ty` with GGUF dims (innermost first) and its raw bytes.
    pub fn add_tensor(&mut self, name: impl Into<String>, ty: GgmlType, dims: &[u64], data: Vec<u8>) -> Result<()> {
        let name = name.into();
        if name.is_empty() || self.tensors.iter().any(|t| t.name == name) {
            return Err(ModelError::Write(format!(
                "tensor name '{name}' is empty or added twice"
            )));
        }
        if dims.is_empty() || dims.len() > super::MAX_DIMS || dims.contains(&0) {
            return Err(ModelError::Write(format!("tensor '{name}': bad dims {dims:?}")));
        }
        let rows = dims[1..].iter().try_fold(1u64, |a, &d| a.checked_mul(d));
        let want = ty.row_bytes(dims[0]).zip(rows).and_then(|(r, n)| r.checked_mul(n));
        if want != Some(data.len() as u64) {
            return Err(ModelError::Write(format!(
                "tensor '{name}': {} bytes given, {ty} {dims:?} needs {want:?}",
                data.len()
            )));
        }
        self.tensors.push(PendingTensor {
            name,
            ggml_type: ty,
            dims: dims.to_vec(),
            data,
        });
        Ok(())
    }

    /// Writes the file to `out`; returns where everything went.
    pub fn write_to(&self, out: &mut impl Write) -> Result<WrittenLayout> {
        let mut w = Counting { inner: out, n: 0 };
        let mut layout = WrittenLayout::default();
        let io = |e: std::io::Error| ModelError::Write(e.to_string());
        w.put(&MAGIC).map_err(io)?;
        w.put(&self.version.to_le_bytes()).map_err(io)?;
        w.put(&(self.tensors.len() as u64).to_le_bytes()).map_err(io)?;
        w.put(&(self.metadata.len() as u64).to_le_bytes()).map_err(io)?;
        for (k, v) in &self.metadata {
            layout.kv_offsets.push(w.n);
            put_str(&mut w, k).map_err(io)?;
            w.put(&(v.value_type() as u32).to_le_bytes()).map_err(io)?;
            put_value(&mut w, v).map_err(io)?;
        }
        let mut offset = 0u64;
        let mut offsets = Vec::with_capacity(self.tensors.len());
        for t in &self.tensors {
            layout.tensor_info_offsets.push(w.n);
            put_str(&mut w, &t.name).map_err(io)?;
            w.put(&(t.dims.len() as u32).to_le_bytes()).map_err(io)?;
            for d in &t.dims {
                w.put(&d.to_le_bytes()).map_err(io)?;
            }
            w.put(&t.ggml_type.id().to_le_bytes()).map_err(io)?;
            w.put(&offset.to_le_bytes()).map_err(io)?;
            offsets.push(offset);
            offset = align(offset + t.data.len() as u64, self.alignment);
        }
        let pad = align(w.n, self.alignment) - w.n;
        w.put(&vec![0u8; pad as usize]).map_err(io)?;
        layout.data_offset = w.n;
        for (t, &o) in self.tensors.iter().zip(&offsets) {
            let pad = layout.data_offset + o - w.n;
            w.put(&vec![0u8; pad as usize]).map_err(io)?;
            w.put(&t.data).map_err(io)?;
        }
        layout.len = w.n;
        Ok(layout)
    }

    /// The file as bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.write_to(&mut v)?;
        Ok(v)
    }

    /// Writes the file to `path` (through a buffered writer).
    pub fn write_file(&self, path: impl AsRef<Path>) -> Result<WrittenLayout> {
        let path = path.as_ref();
        let io = |source| ModelError::Io {
            path: path.to_owned(),
            source,
        };
        let f = std::fs::File::create(path).map_err(io)?;
        let mut bw = std::io::BufWriter::new(f);
        let layout = self.write_to(&mut bw)?;
        bw.flush().map_err(io)?;
        Ok(layout)
    }
}

fn align(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

struct Counting<'a, W: Write> {
    inner: &'a mut W,
    n: u64,
}

impl<W: Write> Counting<'_, W> {
    fn put(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.inner.write_all(b)?;
        self.n += b.len() as u64;
        Ok(())
    }
}

fn put_str<W: Write>(w: &mut Counting<'_, W>, s: &str) -> std::io::Result<()> {
    w.put(&(s.len() as u64).to_le_bytes())?;
    w.put(s.as_bytes())
}

fn put_value<W: Write>(w: &mut Counting<'_, W>, v: &MetaValue) -> std::io::Result<()> {
    match v {
        MetaValue::U8(x) => w.put(&x.to_le_bytes()),
        MetaValue::I8(x) => w.put(&x.to_le_bytes()),
        MetaValue::U16(x) => w.put(&x.to_le_bytes()),
        MetaValue::I16(x) => w.put(&x.to_le_bytes()),
        MetaValue::U32(x) => w.put(&x.to_le_bytes()),
        MetaValue::I32(x) => w.put(&x.to_le_bytes()),
        MetaValue::F32(x) => w.put(&x.to_le_bytes()),
        MetaValue::Bool(x) => w.put(&[u8::from(*x)]),
        MetaValue::String(s) => put_str(w, s),
        MetaValue::U64(x) => w.put(&x.to_le_bytes()),
        MetaValue::I64(x) => w.put(&x.to_le_bytes()),
        MetaValue::F64(x) => w.put(&x.to_le_bytes()),
        MetaValue::Array(a) => put_array(w, a),
    }
}

fn put_array<W: Write>(w: &mut Counting<'_, W>, a: &MetaArray) -> std::io::Result<()> {
    w.put(&(a.elem_type() as u32).to_le_bytes())?;
    w.put(&(a.len() as u64).to_le_bytes())?;
    macro_rules! each {
        ($v:expr) => {{
            for x in $v {
                w.put(&x.to_le_bytes())?;
            }
            Ok(())
        }};
    }
    match a {
        MetaArray::U8(v) => w.put(v),
        MetaArray::I8(v) => each!(v),
        MetaArray::U16(v) => each!(v),
        MetaArray::I16(v) => each!(v),
        MetaArray::U32(v) => each!(v),
        MetaArray::I32(v) => each!(v),
        MetaArray::F32(v) => each!(v),
        MetaArray::U64(v) => each!(v),
        MetaArray::I64(v) => each!(v),
        MetaArray::F64(v) => each!(v),
        MetaArray::Bool(v) => {
            for x in v {
                w.put(&[u8::from(*x)])?;
            }
            Ok(())
        }
        MetaArray::String(v) => {
            for s in v {
                put_str(w, s)?;
            }
            Ok(())
        }
        MetaArray::Array(v) => {
            for inner in v {
                put_array(w, inner)?;
            }
            Ok(())
        }
    }
}
