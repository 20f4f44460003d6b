//! The GGUF reader: parse and validate the header, then hand out borrowed tensor data.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::cursor::Cursor;
use super::value::{MetaArray, MetaValue, ValueType};
use super::{DEFAULT_ALIGNMENT, KEY_ALIGNMENT, MAGIC};
use crate::quant::GgmlType;
use crate::{ModelError, Result};

/// The most dimensions a tensor may have (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: usize = 4;
/// How deeply metadata arrays may nest (arrays of arrays of ...).
pub const MAX_NESTING: usize = 8;

/// The smallest tensor info in bytes: name length, n_dims, one dim, type, offset.
const MIN_TENSOR_INFO: u64 = 8 + 4 + 8 + 4 + 8;
/// The smallest key/value pair in bytes: key length, value type, one byte of value.
const MIN_KV: u64 = 8 + 4 + 1;

/// One tensor's description, validated against the file.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// The name exactly as stored in the file.
    pub name: String,
    /// Element type.
    pub ggml_type: GgmlType,
    /// Dimensions, innermost (contiguous) first, as in GGUF: `dims[0]` is the row length.
    pub dims: Vec<u64>,
    /// Offset of the data relative to the start of the data section.
    pub offset: u64,
    /// Absolute offset of the data in the file.
    pub file_offset: u64,
    /// Size of the data in bytes.
    pub n_bytes: u64,
    /// Number of elements.
    pub n_elements: u64,
}

impl TensorInfo {
    /// Elements per row (`dims[0]`).
    pub fn row_len(&self) -> u64 {
        self.dims[0]
    }

    /// Number of rows (product of the outer dimensions).
    pub fn n_rows(&self) -> u64 {
        // Validated at open time: the product of all dims fits in i64.
        self.dims[1..].iter().product()
    }

    /// Bytes per row.
    pub fn row_bytes(&self) -> u64 {
        // Validated at open time.
        self.ggml_type.row_bytes(self.dims[0]).unwrap_or(0)
    }
}

enum Backing {
    /// A shared mapping of the file itself (its pages are the page cache's).
    FileMap(memmap2::Mmap),
    /// Private memory (the resident copy, read-only after the read).
    Mmap(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::FileMap(m) | Backing::Mmap(m) => m,
            Backing::Owned(v) => v,
        }
    }
}

/// An open, validated GGUF file. Tensor data are borrowed slices of the mapping.
pub struct GgufFile {
    backing: Backing,
    version: u32,
    alignment: u64,
    data_offset: u64,
    metadata: Vec<(String, MetaValue)>,
    meta_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("version", &self.version)
            .field("len", &self.len())
            .field("metadata", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

/// `NotAFile` unless `meta` describes a regular file.
fn check_regular(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    let kind = if t.is_file() {
        return Ok(());
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    };
    Err(ModelError::NotAFile {
        path: path.to_owned(),
        kind,
    })
}

/// Opens `path` for [`GgufFile::open`] / [`GgufFile::open_resident`]: the file, its length (at
/// least the 4 bytes of the magic) and the constructor of its I/O errors.
fn open_file(path: &Path) -> Result<(std::fs::File, u64, impl Fn(std::io::Error) -> ModelError + Copy + '_)> {
    let io = move |source| ModelError::Io {
        path: path.to_owned(),
        source,
    };
    // Checked before opening: opening a FIFO without a writer would block forever, and a
    // device like /dev/zero reports length 0 (it would read as a truncated file).
    check_regular(path, &std::fs::metadata(path).map_err(io)?)?;
    let file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    check_regular(path, &meta)?; // what was opened, should the path have changed meanwhile
    let len = meta.len();
    if len < 4 {
        return Err(ModelError::truncated("GGUF magic", 0, 4, len));
    }
    Ok((file, len, io))
}

impl GgufFile {
    /// Maps `path` read-only and validates it (zero-copy: tensor data are views of the page
    /// cache, shared with other processes and faulted in on first use).
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile> {
        let (file, _len, io) = open_file(path.as_ref())?;
        // SAFETY: the mapping is read-only. The file could still be truncated by another process
        // while mapped, and reading a page past the new end raises SIGBUS: the runtime registers
        // file mappings with its fault guard (tensorsharp-runtime `fault`), which turns that
        // into an error for the call in flight (see `is_file_mapping`).
        let mmap = unsafe { memmap2::MmapOptions::new().map(&file) }.map_err(io)?;
        Self::parse(Backing::FileMap(mmap))
    }

    /// Reads `path` once into private anonymous memory advised for transparent huge pages, and
    /// validates it. Decode streams every weight each token; with 2 MiB pages instead of the
    /// page cache's 4 KiB ones the walk misses the TLB far less often (measured: Qwen2.5 0.5B
    /// decode 56 -> 65 tok/s on 2 threads). The footprint equals a fully touched mapping's; the
    /// pages are not shared with other processes. Where the kernel offers no huge pages the copy
    /// still works, on normal pages.
    pub fn open_resident(path: impl AsRef<Path>) -> Result<GgufFile> {
        use std::io::Read;
        let (mut file, len, io) = open_file(path.as_ref())?;
        let len = usize::try_from(len).map_err(|_| {
            io(std::io::Error::new(
                std::io::ErrorKind::OutOfMemory,
                "the file is larger than the address space",
            ))
        })?;
        let mut mem = memmap2::MmapMut::map_anon(len).map_err(io)?;
        // Advice only: without transparent huge pages the copy stays on normal pages.
        let _ = mem.advise(memmap2::Advice::HugePage);
        file.read_exact(&mut mem).map_err(io)?;
        Self::parse(Backing::Mmap(mem.make_read_only().map_err(io)?))
    }

    /// Validates a GGUF image held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GgufFile> {
        Self::parse(Backing::Owned(bytes))
    }

    fn parse(backing: Backing) -> Result<GgufFile> {
        let header = parse_header(backing.bytes())?;
        Ok(GgufFile {
            backing,
            version: header.version,
            alignment: header.alignment,
            data_offset: header.data_offset,
            meta_index: header
                .metadata
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (k.clone(), i))
                .collect(),
            metadata: header.metadata,
            tensor_index: header
                .tensors
                .iter()
                .enumerate()
                .map(|(i, t)| (t.name.clone(), i))
                .collect(),
            tensors: header.tensors,
        })
    }

    /// Whether the bytes are a mapping of the file itself ([`open`](Self::open)): reading a page
    /// that another process truncated away raises SIGBUS. Resident copies and in-memory images
    /// are private memory.
    pub fn is_file_mapping(&self) -> bool {
        matches!(self.backing, Backing::FileMap(_))
    }

    /// Drops a file mapping's pages from this process's resident set (`MADV_DONTNEED`): they
    /// stay in the page cache, and a later read faults them back in from the file. Used once the
    /// header and the small tensors have been copied out, when the weights are streamed under a
    /// RAM budget. Does nothing for private memory (whose pages would be lost).
    pub fn release_pages(&self) {
        if let Backing::FileMap(m) = &self.backing {
            // SAFETY: a shared read-only file mapping: MADV_DONTNEED only unmaps the pages from
            // this process; their content stays the file's, and no reference into the mapping
            // sees different bytes afterwards (a read faults the same bytes back in).
            let _ = unsafe { m.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
        }
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        self.backing.bytes()
    }

    /// File length in bytes.
    pub fn len(&self) -> u64 {
        self.bytes().len() as u64
    }

    /// Whether the file is empty (never true for a valid file).
    pub fn is_empty(&self) -> bool {
        self.bytes().is_empty()
    }

    /// GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Alignment of the data section and of every tensor offset.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Absolute offset of the data section.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// Heap bytes of the parsed header (metadata values, tensor infos), for memory plans.
    pub fn metadata_heap_bytes(&self) -> usize {
        let entries =
            crate::gguf::value::malloc_bytes(self.metadata.len() * std::mem::size_of::<(String, MetaValue)>());
        let tensors = crate::gguf::value::malloc_bytes(self.tensors.len() * std::mem::size_of::<TensorInfo>())
            + self
                .tensors
                .iter()
                .map(|t| crate::gguf::value::malloc_bytes(t.name.len()))
                .sum::<usize>();
        entries
            + tensors
            + self
                .metadata
                .iter()
                .map(|(k, v)| crate::gguf::value::malloc_bytes(k.len()) + v.heap_bytes())
                .sum::<usize>()
    }

    /// All metadata, in file order.
    pub fn metadata(&self) -> &[(String, MetaValue)] {
        &self.metadata
    }

    /// One metadata value.
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.meta_index.get(key).map(|&i| &self.metadata[i].1)
    }

    /// A string value; an error if the key exists with another type.
    pub fn get_str(&self, key: &str) -> Result<Option<&str>> {
        self.typed(key, "a string", MetaValue::as_str)
    }

    /// A non-negative integer value of any integer type.
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>> {
        self.typed(key, "a non-negative integer", MetaValue::as_u64)
    }

    /// A float (or integer) value.
    pub fn get_f64(&self, key: &str) -> Result<Option<f64>> {
        self.typed(key, "a number", MetaValue::as_f64)
    }

    /// A boolean value.
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>> {
        self.typed(key, "a bool", MetaValue::as_bool)
    }

    /// An array value.
    pub fn get_array(&self, key: &str) -> Result<Option<&MetaArray>> {
        self.typed(key, "an array", MetaValue::as_array)
    }

    fn typed<'s, T>(
        &'s self,
        key: &str,
        expected: &str,
        f: impl FnOnce(&'s MetaValue) -> Option<T>,
    ) -> Result<Option<T>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => f(v).map(Some).ok_or_else(|| ModelError::BadMetadata {
                key: key.to_owned(),
                problem: format!("expected {expected}, found {} {}", v.value_type().name(), v.display(4)),
            }),
        }
    }

    /// `general.architecture`, if present.
    pub fn architecture(&self) -> Option<&str> {
        self.get("general.architecture").and_then(MetaValue::as_str)
    }

    /// All tensor infos, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// One tensor info by name.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// The data of the tensor called `name`, borrowed from the mapping.
    pub fn tensor_data(&self, name: &str) -> Result<&[u8]> {
        let info = self
            .tensor(name)
            .ok_or_else(|| ModelError::NoSuchTensor(name.to_owned()))?;
        self.data_of(info)
    }

    /// The data described by `info` (which must come from this file).
    pub fn data_of(&self, info: &TensorInfo) -> Result<&[u8]> {
        let start = usize::try_from(info.file_offset).ok();
        let end = start.and_then(|s| s.checked_add(usize::try_from(info.n_bytes).ok()?));
        match (start, end) {
            (Some(s), Some(e)) if e <= self.bytes().len() => Ok(&self.bytes()[s..e]),
            _ => Err(ModelError::TensorOutOfBounds {
                tensor: info.name.clone(),
                start: info.file_offset,
                end: info.file_offset.saturating_add(info.n_bytes),
                file_len: self.len(),
            }),
        }
    }
}

struct Header {
    version: u32,
    alignment: u64,
    data_offset: u64,
    metadata: Vec<(String, MetaValue)>,
    tensors: Vec<TensorInfo>,
}

fn parse_header(bytes: &[u8]) -> Result<Header> {
    let mut c = Cursor::new(bytes);
    let magic: [u8; 4] = c.array(&|| "GGUF magic".into())?;
    if magic != MAGIC {
        return Err(ModelError::BadMagic { found: magic });
    }
    let version = c.u32(&|| "GGUF version".into())?;
    match version {
        2 | 3 => {}
        v if matches!(v.swap_bytes(), 2 | 3) => return Err(ModelError::BigEndian(v)),
        v => return Err(ModelError::UnsupportedVersion(v)),
    }
    let n_tensors = c.count(MIN_TENSOR_INFO, &|| "tensor count".into())?;
    let n_kv = c.count(MIN_KV, &|| "metadata count".into())?;

    let mut metadata = Vec::with_capacity(n_kv as usize);
    let mut keys = HashSet::with_capacity(n_kv as usize);
    for i in 0..n_kv {
        let key = c.string(&|| format!("metadata key #{i}"))?;
        let type_id = c.u32(&|| format!("value type of metadata key '{key}'"))?;
        let value = read_value(&mut c, &key, type_id, 0)?;
        if !keys.insert(key.clone()) {
            return Err(ModelError::DuplicateKey(key));
        }
        metadata.push((key, value));
    }

    let alignment = match metadata.iter().find(|(k, _)| k == KEY_ALIGNMENT) {
        None => DEFAULT_ALIGNMENT,
        Some((_, MetaValue::U32(a))) if *a > 0 && a.is_power_of_two() => u64::from(*a),
        Some((_, v)) => {
            return Err(ModelError::BadMetadata {
                key: KEY_ALIGNMENT.into(),
                problem: format!(
                    "must be a u32 power of two, found {} {}",
                    v.value_type().name(),
                    v.display(4)
                ),
            })
        }
    };

    let mut tensors = Vec::with_capacity(n_tensors as usize);
    let mut names = HashSet::with_capacity(n_tensors as usize);
    for i in 0..n_tensors {
        let name_offset = c.pos();
        let name = c.string(&|| format!("name of tensor info #{i}"))?;
        if name.is_empty() {
            return Err(ModelError::EmptyTensorName {
                index: i,
                offset: name_offset,
            });
        }
        let n_dims = c.u32(&|| format!("dimension count of tensor '{name}'"))?;
        if n_dims == 0 || n_dims as usize > MAX_DIMS {
            return Err(ModelError::BadShape {
                tensor: name,
                dims: vec![],
                problem: format!("{n_dims} dimensions (must be 1..={MAX_DIMS})"),
            });
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for d in 0..n_dims {
            dims.push(c.u64(&|| format!("dimension {d} of tensor '{name}'"))?);
        }
        let type_id = c.u32(&|| format!("type of tensor '{name}'"))?;
        let offset = c.u64(&|| format!("data offset of tensor '{name}'"))?;
        let Some(ggml_type) = GgmlType::from_id(type_id) else {
            return Err(ModelError::UnknownTensorType { tensor: name, type_id });
        };
        let (n_elements, n_bytes) = tensor_size(&name, ggml_type, &dims)?;
        if offset % alignment != 0 {
            return Err(ModelError::MisalignedTensor {
                tensor: name,
                offset,
                alignment,
            });
        }
        if !names.insert(name.clone()) {
            return Err(ModelError::DuplicateTensor(name));
        }
        tensors.push(TensorInfo {
            name,
            ggml_type,
            dims,
            offset,
            file_offset: 0,
            n_bytes,
            n_elements,
        });
    }

    let file_len = bytes.len() as u64;
    let data_offset = align_up(c.pos(), alignment).ok_or_else(|| ModelError::BadMetadata {
        key: KEY_ALIGNMENT.into(),
        problem: "data section offset overflows".into(),
    })?;
    for t in &mut tensors {
        let start = data_offset.checked_add(t.offset);
        let end = start.and_then(|s| s.checked_add(t.n_bytes));
        match (start, end) {
            (Some(s), Some(e)) if e <= file_len => t.file_offset = s,
            _ => {
                return Err(ModelError::TensorOutOfBounds {
                    tensor: t.name.clone(),
                    start: start.unwrap_or(u64::MAX),
                    end: end.unwrap_or(u64::MAX),
                    file_len,
                })
            }
        }
    }
    check_overlaps(&tensors)?;
    Ok(Header {
        version,
        alignment,
        data_offset,
        metadata,
        tensors,
    })
}

/// Element count and byte size of a tensor, with every product checked.
fn tensor_size(name: &str, ty: GgmlType, dims: &[u64]) -> Result<(u64, u64)> {
    let bad = |problem: String| ModelError::BadShape {
        tensor: name.to_owned(),
        dims: dims.to_vec(),
        problem,
    };
    if let Some(i) = dims.iter().position(|&d| d == 0) {
        return Err(bad(format!("dimension {i} is zero")));
    }
    let mut n: u64 = 1;
    for &d in dims {
        n = n.checked_mul(d).filter(|&n| n <= i64::MAX as u64).ok_or_else(|| {
            bad("element count overflows (the product of the dimensions does not fit in 63 bits)".into())
        })?;
    }
    if !dims[0].is_multiple_of(ty.block_elems() as u64) {
        return Err(bad(format!(
            "row length {} is not a multiple of the {} block size {}",
            dims[0],
            ty.name(),
            ty.block_elems()
        )));
    }
    let row = ty.row_bytes(dims[0]).ok_or_else(|| bad("row size overflows".into()))?;
    let rows = n / dims[0];
    let bytes = row.checked_mul(rows).ok_or_else(|| bad("byte size overflows".into()))?;
    Ok((n, bytes))
}

fn check_overlaps(tensors: &[TensorInfo]) -> Result<()> {
    let mut order: Vec<&TensorInfo> = tensors.iter().collect();
    order.sort_by_key(|t| t.file_offset);
    for pair in order.windows(2) {
        // Both ends were checked against the file length, so this cannot overflow.
        if pair[0].file_offset + pair[0].n_bytes > pair[1].file_offset {
            return Err(ModelError::OverlappingTensors {
                first: pair[0].name.clone(),
                second: pair[1].name.clone(),
            });
        }
    }
    Ok(())
}

fn align_up(x: u64, a: u64) -> Option<u64> {
    Some(x.checked_add(a - 1)? / a * a)
}

fn read_value(c: &mut Cursor<'_>, key: &str, type_id: u32, depth: usize) -> Result<MetaValue> {
    let Some(ty) = ValueType::from_id(type_id) else {
        return Err(ModelError::UnknownValueType {
            key: key.to_owned(),
            type_id,
        });
    };
    let what = || format!("value of metadata key '{key}'");
    Ok(match ty {
        ValueType::U8 => MetaValue::U8(c.u8(&what)?),
        ValueType::I8 => MetaValue::I8(c.u8(&what)? as i8),
        ValueType::U16 => MetaValue::U16(c.u16(&what)?),
        ValueType::I16 => MetaValue::I16(c.u16(&what)? as i16),
        ValueType::U32 => MetaValue::U32(c.u32(&what)?),
        ValueType::I32 => MetaValue::I32(c.u32(&what)? as i32),
        ValueType::F32 => MetaValue::F32(f32::from_bits(c.u32(&what)?)),
        ValueType::Bool => MetaValue::Bool(c.bool(key, &what)?),
        ValueType::String => MetaValue::String(c.string(&what)?),
        ValueType::U64 => MetaValue::U64(c.u64(&what)?),
        ValueType::I64 => MetaValue::I64(c.u64(&what)? as i64),
        ValueType::F64 => MetaValue::F64(f64::from_bits(c.u64(&what)?)),
        ValueType::Array => MetaValue::Array(read_array(c, key, depth + 1)?),
    })
}

fn read_array(c: &mut Cursor<'_>, key: &str, depth: usize) -> Result<MetaArray> {
    if depth > MAX_NESTING {
        return Err(ModelError::NestingTooDeep {
            key: key.to_owned(),
            max_depth: MAX_NESTING,
        });
    }
    let what = || format!("array of metadata key '{key}'");
    let type_id = c.u32(&what)?;
    let Some(elem) = ValueType::from_id(type_id) else {
        return Err(ModelError::UnknownValueType {
            key: key.to_owned(),
            type_id,
        });
    };
    let n = c.count(elem.min_size(), &what)?;
    // `count` guarantees n * min_size <= remaining bytes, so these capacities are bounded by
    // the file size.
    macro_rules! prim {
        ($variant:ident, $read:ident, $conv:expr) => {{
            let mut v = Vec::with_capacity(n as usize);
            for _ in 0..n {
                v.push($conv(c.$read(&what)?));
            }
            MetaArray::$variant(v)
        }};
    }
    Ok(match elem {
        ValueType::U8 => prim!(U8, u8, |x| x),
        ValueType::I8 => prim!(I8, u8, |x: u8| x as i8),
        ValueType::U16 => prim!(U16, u16, |x| x),
        ValueType::I16 => prim!(I16, u16, |x: u16| x as i16),
        ValueType::U32 => prim!(U32, u32, |x| x),
        ValueType::I32 => prim!(I32, u32, |x: u32| x as i32),
        ValueType::F32 => prim!(F32, u32, f32::from_bits),
        ValueType::Bool => {
            let mut v = Vec::with_capacity(n as usize);
            for _ in 0..n {
                v.push(c.bool(key, &what)?);
            }
            MetaArray::Bool(v)
        }
        ValueType::U64 => prim!(U64, u64, |x| x),
        ValueType::I64 => prim!(I64, u64, |x: u64| x as i64),
        ValueType::F64 => prim!(F64, u64, f64::from_bits),
        ValueType::String => {
            let mut v = Vec::with_capacity(n as usize);
            for _ in 0..n {
                v.push(c.string(&what)?);
            }
            MetaArray::String(v)
        }
        ValueType::Array => {
            let mut v = Vec::with_capacity(n as usize);
            for _ in 0..n {
                v.push(read_array(c, key, depth + 1)?);
            }
            MetaArray::Array(v)
        }
    })
}
