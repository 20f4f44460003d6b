//! A corpus of malformed GGUF files, each crafted byte by byte and each rejected with the right
//! error variant (never a panic, never an out-of-bounds read). Every case is also written to
//! disk and opened through the mmap path.

use tensorsharp_models::gguf::{GgufWriter, MetaArray, MetaValue};
use tensorsharp_models::{GgmlType, GgufFile, ModelError};
use tensorsharp_testkit::cases::Cases;

/// A raw GGUF builder that writes whatever it is told, valid or not.
#[derive(Clone)]
struct Raw {
    magic: [u8; 4],
    version: u32,
    n_tensors: Option<u64>,
    n_kv: Option<u64>,
    kvs: Vec<Vec<u8>>,
    infos: Vec<Vec<u8>>,
    align: u64,
    data: Vec<u8>,
}

fn s(x: &str) -> Vec<u8> {
    let mut v = (x.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(x.as_bytes());
    v
}

fn kv(key: &str, ty: u32, value: &[u8]) -> Vec<u8> {
    let mut v = s(key);
    v.extend_from_slice(&ty.to_le_bytes());
    v.extend_from_slice(value);
    v
}

fn info(name: &[u8], dims: &[u64], ty: u32, offset: u64) -> Vec<u8> {
    let mut v = (name.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(name);
    v.extend_from_slice(&(dims.len() as u32).to_le_bytes());
    for d in dims {
        v.extend_from_slice(&d.to_le_bytes());
    }
    v.extend_from_slice(&ty.to_le_bytes());
    v.extend_from_slice(&offset.to_le_bytes());
    v
}

impl Raw {
    /// A valid file: one string key, one f32 tensor of 8 elements and one Q4_0 row of 32.
    fn valid() -> Raw {
        Raw {
            magic: *b"GGUF",
            version: 3,
            n_tensors: None,
            n_kv: None,
            kvs: vec![kv("general.architecture", 8, &s("llama"))],
            infos: vec![info(b"a", &[8], 0, 0), info(b"b", &[32], 2, 32)],
            align: 32,
            data: vec![7u8; 32 + 18],
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut v = self.magic.to_vec();
        v.extend_from_slice(&self.version.to_le_bytes());
        v.extend_from_slice(&self.n_tensors.unwrap_or(self.infos.len() as u64).to_le_bytes());
        v.extend_from_slice(&self.n_kv.unwrap_or(self.kvs.len() as u64).to_le_bytes());
        for k in &self.kvs {
            v.extend_from_slice(k);
        }
        for i in &self.infos {
            v.extend_from_slice(i);
        }
        while !(v.len() as u64).is_multiple_of(self.align) {
            v.push(0);
        }
        v.extend_from_slice(&self.data);
        v
    }
}

/// One case: rejected, with the expected error, the same through the mmap path.
fn check(name: &str, bytes: Vec<u8>, expect: fn(&ModelError) -> bool) -> Result<(), String> {
    let err = match GgufFile::from_bytes(bytes.clone()) {
        Ok(_) => return Err("accepted".into()),
        Err(e) => e,
    };
    if !expect(&err) {
        return Err(format!("wrong error: {err:?}"));
    }
    if err.to_string().is_empty() {
        return Err("empty message".into());
    }
    // Same answer through the mmap path.
    let path = std::env::temp_dir().join(format!("tsharp-bad-{}-{name}.gguf", std::process::id()));
    std::fs::write(&path, &bytes).map_err(|e| e.to_string())?;
    let disk = GgufFile::open(&path);
    let _ = std::fs::remove_file(&path);
    match disk {
        Ok(_) => Err("accepted through the mmap path".into()),
        Err(derr) if std::mem::discriminant(&derr) != std::mem::discriminant(&err) => {
            Err(format!("{derr:?} through the mmap path vs {err:?}"))
        }
        Err(_) => Ok(()),
    }
}

/// What a case's error must match.
type Expect = fn(&ModelError) -> bool;

macro_rules! is {
    ($p:pat) => {
        |e: &ModelError| matches!(e, $p)
    };
}

#[test]
fn the_valid_base_file_opens() {
    let f = GgufFile::from_bytes(Raw::valid().bytes()).unwrap();
    assert_eq!(f.tensors().len(), 2);
    assert_eq!(f.tensor_data("b").unwrap(), &[7u8; 18]);
}

#[test]
fn malformed_corpus_is_rejected_with_the_right_error() {
    let mut cases: Vec<(&str, Vec<u8>, Expect)> = Vec::new();
    let base = Raw::valid();
    let mut r;

    cases.push(("empty", vec![], is!(ModelError::Truncated { .. })));
    cases.push(("magic-only", b"GGUF".to_vec(), is!(ModelError::Truncated { .. })));
    r = base.clone();
    r.magic = *b"GGML";
    cases.push(("bad-magic", r.bytes(), is!(ModelError::BadMagic { .. })));
    for (n, v) in [("version-1", 1u32), ("version-4", 4), ("version-0", 0)] {
        r = base.clone();
        r.version = v;
        cases.push((n, r.bytes(), is!(ModelError::UnsupportedVersion(_))));
    }
    r = base.clone();
    r.version = 3u32.swap_bytes();
    cases.push(("big-endian", r.bytes(), is!(ModelError::BigEndian(_))));
    r = base.clone();
    r.n_tensors = Some(u64::MAX);
    cases.push((
        "tensor-count-absurd",
        r.bytes(),
        is!(ModelError::ImplausibleLength { .. }),
    ));
    r = base.clone();
    r.n_kv = Some(1 << 40);
    cases.push(("kv-count-absurd", r.bytes(), is!(ModelError::ImplausibleLength { .. })));
    r = base.clone();
    r.n_kv = Some(3);
    cases.push((
        "kv-count-lies",
        r.bytes(),
        is!(ModelError::UnknownValueType { .. }
            | ModelError::Truncated { .. }
            | ModelError::ImplausibleLength { .. }
            | ModelError::InvalidUtf8 { .. }),
    ));
    r = base.clone();
    r.kvs = vec![[u64::MAX.to_le_bytes().to_vec(), b"k".to_vec()].concat()];
    cases.push((
        "key-length-absurd",
        r.bytes(),
        is!(ModelError::ImplausibleLength { .. }),
    ));
    r = base.clone();
    r.kvs = vec![kv("bad\u{1}", 4, &1u32.to_le_bytes())];
    r.kvs[0][8 + 3] = 0xFF;
    cases.push(("key-not-utf8", r.bytes(), is!(ModelError::InvalidUtf8 { .. })));
    r = base.clone();
    r.kvs.push(kv("k", 13, &[0; 8]));
    cases.push((
        "value-type-unknown",
        r.bytes(),
        is!(ModelError::UnknownValueType { type_id: 13, .. }),
    ));
    r = base.clone();
    r.kvs.push(kv("k", 8, &[s("ok"), vec![]].concat()[..4]));
    cases.push((
        "string-value-truncated",
        r.bytes(),
        is!(ModelError::ImplausibleLength { .. }),
    ));
    r = base.clone();
    r.kvs.push(kv("k", 8, &(1u64 << 60).to_le_bytes()));
    cases.push((
        "string-value-length-absurd",
        r.bytes(),
        is!(ModelError::ImplausibleLength { .. }),
    ));
    r = base.clone();
    r.kvs
        .push(kv("k", 8, &[2u64.to_le_bytes().to_vec(), vec![0xC3, 0x28]].concat()));
    cases.push(("string-value-not-utf8", r.bytes(), is!(ModelError::InvalidUtf8 { .. })));
    r = base.clone();
    r.kvs.push(kv("k", 9, &[99u32.to_le_bytes(), [0; 4]].concat()));
    cases.push((
        "array-elem-type-unknown",
        r.bytes(),
        is!(ModelError::UnknownValueType { type_id: 99, .. }),
    ));
    r = base.clone();
    r.kvs.push(kv(
        "k",
        9,
        &[4u32.to_le_bytes().to_vec(), (1u64 << 61).to_le_bytes().to_vec()].concat(),
    ));
    cases.push((
        "array-count-absurd",
        r.bytes(),
        is!(ModelError::ImplausibleLength { .. }),
    ));
    r = base.clone();
    r.kvs.push(kv(
        "k",
        9,
        &[
            8u32.to_le_bytes().to_vec(),
            2u64.to_le_bytes().to_vec(),
            s("a"),
            u64::MAX.to_le_bytes().to_vec(),
        ]
        .concat(),
    ));
    cases.push((
        "array-string-length-absurd",
        r.bytes(),
        is!(ModelError::ImplausibleLength { .. }),
    ));
    let mut nested = 4u32.to_le_bytes().to_vec();
    nested.extend_from_slice(&0u64.to_le_bytes());
    for _ in 0..12 {
        let mut outer = 9u32.to_le_bytes().to_vec();
        outer.extend_from_slice(&1u64.to_le_bytes());
        outer.extend_from_slice(&nested);
        nested = outer;
    }
    r = base.clone();
    r.kvs.push(kv("k", 9, &nested));
    cases.push((
        "arrays-nested-too-deep",
        r.bytes(),
        is!(ModelError::NestingTooDeep { .. }),
    ));
    r = base.clone();
    r.kvs.push(kv("general.architecture", 8, &s("qwen2")));
    cases.push(("duplicate-key", r.bytes(), is!(ModelError::DuplicateKey(_))));
    for (n, v) in [
        ("alignment-zero", kv("general.alignment", 4, &0u32.to_le_bytes())),
        ("alignment-not-pow2", kv("general.alignment", 4, &48u32.to_le_bytes())),
        ("alignment-wrong-type", kv("general.alignment", 8, &s("32"))),
        ("alignment-u64", kv("general.alignment", 10, &32u64.to_le_bytes())),
    ] {
        r = base.clone();
        r.kvs.push(v);
        cases.push((n, r.bytes(), is!(ModelError::BadMetadata { .. })));
    }
    r = base.clone();
    r.infos[0] = info(b"", &[8], 0, 0);
    cases.push(("tensor-name-empty", r.bytes(), is!(ModelError::EmptyTensorName { .. })));
    r = base.clone();
    r.infos[0] = info(&[0xFF, 0xFE], &[8], 0, 0);
    cases.push(("tensor-name-not-utf8", r.bytes(), is!(ModelError::InvalidUtf8 { .. })));
    r = base.clone();
    r.infos[0] = info(b"a", &[], 0, 0);
    cases.push(("tensor-zero-dims", r.bytes(), is!(ModelError::BadShape { .. })));
    r = base.clone();
    r.infos[0] = info(b"a", &[1, 1, 1, 1, 8], 0, 0);
    cases.push(("tensor-five-dims", r.bytes(), is!(ModelError::BadShape { .. })));
    r = base.clone();
    r.infos[0] = info(b"a", &[8, 0], 0, 0);
    cases.push(("tensor-dim-zero", r.bytes(), is!(ModelError::BadShape { .. })));
    // CVE-2024-21802 / CVE-2026-27940 class: dims whose product (or byte size) overflows.
    r = base.clone();
    r.infos[0] = info(b"a", &[1 << 32, 1 << 32], 0, 0);
    cases.push((
        "dims-product-overflows-u64",
        r.bytes(),
        is!(ModelError::BadShape { .. }),
    ));
    r = base.clone();
    r.infos[0] = info(b"a", &[1 << 31, 1 << 31, 4], 0, 0);
    cases.push(("dims-product-exceeds-i64", r.bytes(), is!(ModelError::BadShape { .. })));
    r = base.clone();
    r.infos[0] = info(b"a", &[1 << 62], 0, 0);
    cases.push(("byte-size-overflows", r.bytes(), is!(ModelError::BadShape { .. })));
    r = base.clone();
    r.infos[0] = info(b"a", &[1 << 40], 0, 0);
    cases.push((
        "lying-dims-huge-size",
        r.bytes(),
        is!(ModelError::TensorOutOfBounds { .. }),
    ));
    r = base.clone();
    r.infos[1] = info(b"b", &[33], 2, 32);
    cases.push(("row-not-block-multiple", r.bytes(), is!(ModelError::BadShape { .. })));
    for (n, t) in [
        ("tensor-type-removed", 4u32),
        ("tensor-type-unknown", 1000),
        ("tensor-type-43", 43),
    ] {
        r = base.clone();
        r.infos[0] = info(b"a", &[8], t, 0);
        cases.push((n, r.bytes(), is!(ModelError::UnknownTensorType { .. })));
    }
    r = base.clone();
    r.infos[1] = info(b"b", &[32], 2, 36);
    cases.push(("offset-misaligned", r.bytes(), is!(ModelError::MisalignedTensor { .. })));
    // Ollama "Bleeding Llama" class: offset + size past the end of the file.
    r = base.clone();
    r.infos[1] = info(b"b", &[32], 2, 64);
    cases.push((
        "offset-plus-size-past-eof",
        r.bytes(),
        is!(ModelError::TensorOutOfBounds { .. }),
    ));
    r = base.clone();
    r.infos[1] = info(b"b", &[32], 2, u64::MAX - 31);
    cases.push(("offset-overflows", r.bytes(), is!(ModelError::TensorOutOfBounds { .. })));
    r = base.clone();
    r.data.truncate(40);
    cases.push((
        "data-section-truncated",
        r.bytes(),
        is!(ModelError::TensorOutOfBounds { .. }),
    ));
    r = base.clone();
    r.infos[1] = info(b"a", &[32], 2, 32);
    cases.push(("duplicate-tensor", r.bytes(), is!(ModelError::DuplicateTensor(_))));
    r = base.clone();
    r.infos[1] = info(b"b", &[32], 2, 0);
    cases.push(("tensors-overlap", r.bytes(), is!(ModelError::OverlappingTensors { .. })));
    r = base.clone();
    r.kvs.push(kv("general.alignment", 4, &(1u32 << 31).to_le_bytes()));
    r.infos.truncate(1);
    cases.push((
        "alignment-pushes-data-past-eof",
        r.bytes(),
        is!(ModelError::TensorOutOfBounds { .. }),
    ));

    // A bool whose byte is neither 0 nor 1 is invalid (GGUF spec), as a value and in an array.
    r = base.clone();
    r.kvs.push(kv("general.flag", 7, &[7]));
    cases.push(("bool-byte-7", r.bytes(), is!(ModelError::InvalidBool { byte: 7, .. })));
    r = base.clone();
    let mut arr = 7u32.to_le_bytes().to_vec();
    arr.extend_from_slice(&3u64.to_le_bytes());
    arr.extend_from_slice(&[1, 0, 2]);
    r.kvs.push(kv("general.flags", 9, &arr));
    cases.push((
        "bool-array-byte-2",
        r.bytes(),
        is!(ModelError::InvalidBool { byte: 2, .. }),
    ));

    let n = cases.len();
    let mut table = Cases::new("malformed GGUF corpus");
    for (name, bytes, expect) in cases {
        table.check(name, check(name, bytes, expect));
    }
    table.finish();
    assert!(n >= 32, "only {n} crafted cases");
}

/// Every prefix of a real header (all metadata types, nested arrays, several tensors) is
/// rejected cleanly: truncation at every field boundary and inside every field.
#[test]
fn every_truncation_of_the_header_is_rejected() {
    let mut w = GgufWriter::new();
    w.add_meta("general.architecture", MetaValue::String("llama".into()))
        .unwrap();
    w.add_meta("x.u32", MetaValue::U32(7)).unwrap();
    w.add_meta("x.f64", MetaValue::F64(0.5)).unwrap();
    w.add_meta(
        "x.arr",
        MetaValue::Array(MetaArray::Array(vec![MetaArray::String(vec!["a".into(), "bc".into()])])),
    )
    .unwrap();
    w.add_tensor("t0", GgmlType::Q4_K, &[256, 2], vec![1; 288]).unwrap();
    w.add_tensor("t1", GgmlType::F16, &[4, 4], vec![2; 32]).unwrap();
    let bytes = w.to_bytes().unwrap();
    let layout = w.write_to(&mut Vec::new()).unwrap();
    GgufFile::from_bytes(bytes.clone()).unwrap();
    for cut in 0..bytes.len() {
        match GgufFile::from_bytes(bytes[..cut].to_vec()) {
            Ok(_) => panic!("prefix of {cut} bytes accepted"),
            Err(ModelError::Truncated { .. } | ModelError::ImplausibleLength { .. }) => {
                assert!((cut as u64) < layout.data_offset, "cut {cut}")
            }
            Err(ModelError::TensorOutOfBounds { .. }) => {
                assert!(cut as u64 >= layout.data_offset - 31, "cut {cut}")
            }
            Err(e) => panic!("prefix of {cut} bytes: unexpected {e:?}"),
        }
    }
}

/// A bool byte of 7 is refused with the key and the byte's offset in the message.
#[test]
fn bool_byte_7_names_the_key_and_the_offset() {
    let mut r = Raw::valid();
    r.kvs.push(kv("general.flag", 7, &[7]));
    let bytes = r.bytes();
    let err = GgufFile::from_bytes(bytes.clone()).expect_err("a bool byte of 7 is accepted");
    // The byte sits right after the key's type id.
    let key_at = bytes.windows(12).position(|w| w == b"general.flag").unwrap() as u64;
    let offset = key_at + 12 + 4;
    assert_eq!(bytes[offset as usize], 7);
    match &err {
        ModelError::InvalidBool { key, offset: at, byte } => {
            assert_eq!((key.as_str(), *at, *byte), ("general.flag", offset, 7));
        }
        e => panic!("wrong error: {e:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("general.flag") && msg.contains(&offset.to_string()),
        "{msg}"
    );
}
