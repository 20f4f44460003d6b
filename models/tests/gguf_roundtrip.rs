//! Writer -> reader round trips: everything written comes back identical.

use tensorsharp_models::gguf::{GgufWriter, MetaArray, MetaValue};
use tensorsharp_models::{GgmlType, GgufFile};

fn all_values() -> Vec<(String, MetaValue)> {
    vec![
        ("a.u8".into(), MetaValue::U8(200)),
        ("a.i8".into(), MetaValue::I8(-5)),
        ("a.u16".into(), MetaValue::U16(65000)),
        ("a.i16".into(), MetaValue::I16(-30000)),
        ("a.u32".into(), MetaValue::U32(4_000_000_000)),
        ("a.i32".into(), MetaValue::I32(-2_000_000_000)),
        ("a.f32".into(), MetaValue::F32(3.25)),
        ("a.bool".into(), MetaValue::Bool(true)),
        ("a.string".into(), MetaValue::String("héllo ✓".into())),
        ("a.u64".into(), MetaValue::U64(u64::MAX)),
        ("a.i64".into(), MetaValue::I64(i64::MIN)),
        ("a.f64".into(), MetaValue::F64(-1e300)),
        (
            "a.arr.str".into(),
            MetaValue::Array(MetaArray::String(vec!["x".into(), String::new(), "zz".into()])),
        ),
        ("a.arr.f32".into(), MetaValue::Array(MetaArray::F32(vec![1.0, -2.5]))),
        ("a.arr.empty".into(), MetaValue::Array(MetaArray::I32(vec![]))),
        (
            "a.arr.bool".into(),
            MetaValue::Array(MetaArray::Bool(vec![true, false])),
        ),
        (
            "a.arr.nested".into(),
            MetaValue::Array(MetaArray::Array(vec![
                MetaArray::U8(vec![1, 2, 3]),
                MetaArray::String(vec!["in".into()]),
                MetaArray::Array(vec![MetaArray::I64(vec![-1])]),
            ])),
        ),
    ]
}

/// name, type, dims, bytes
type Tensors = Vec<(String, GgmlType, Vec<u64>, Vec<u8>)>;

fn build(version: u32, alignment: Option<u32>) -> (GgufWriter, Tensors) {
    let mut w = GgufWriter::new();
    w.set_version(version).unwrap();
    if let Some(a) = alignment {
        w.set_alignment(a).unwrap();
    }
    for (k, v) in all_values() {
        w.add_meta(k, v).unwrap();
    }
    let tensors: Tensors = vec![
        ("f32".into(), GgmlType::F32, vec![3], (0..12).collect()),
        (
            "q4_0".into(),
            GgmlType::Q4_0,
            vec![64, 3],
            (0..108).map(|i| (i * 7) as u8).collect(),
        ),
        ("q6_k".into(), GgmlType::Q6_K, vec![256, 1, 2], vec![0xAB; 420]),
        ("q2_0".into(), GgmlType::Q2_0, vec![64, 2, 1, 1], vec![9; 36]),
        ("i8".into(), GgmlType::I8, vec![5], vec![1, 2, 3, 4, 5]),
    ];
    for (n, t, d, b) in &tensors {
        w.add_tensor(n.clone(), *t, d, b.clone()).unwrap();
    }
    (w, tensors)
}

#[test]
fn round_trip_every_value_type_and_tensor_type_v2_v3_and_alignments() {
    for version in [2, 3] {
        for alignment in [None, Some(1), Some(8), Some(64), Some(4096)] {
            let (w, tensors) = build(version, alignment);
            let bytes = w.to_bytes().unwrap();
            let f = GgufFile::from_bytes(bytes).unwrap();
            assert_eq!(f.version(), version);
            assert_eq!(f.alignment(), u64::from(alignment.unwrap_or(32)));
            assert_eq!(f.data_offset() % f.alignment(), 0);
            for (k, v) in all_values() {
                assert_eq!(f.get(&k), Some(&v), "{k}");
            }
            assert_eq!(f.tensors().len(), tensors.len());
            for (n, t, d, b) in &tensors {
                let info = f.tensor(n).unwrap();
                assert_eq!((info.ggml_type, &info.dims), (*t, d));
                assert_eq!(info.offset % f.alignment(), 0);
                assert_eq!(f.tensor_data(n).unwrap(), &b[..]);
            }
            // Writing what was read gives the same bytes.
            let mut w2 = GgufWriter::new();
            w2.set_version(version).unwrap();
            for (k, v) in f.metadata() {
                if k == "general.alignment" {
                    w2.set_alignment(v.as_u64().unwrap() as u32).unwrap();
                } else {
                    w2.add_meta(k.clone(), v.clone()).unwrap();
                }
            }
            for t in f.tensors() {
                w2.add_tensor(t.name.clone(), t.ggml_type, &t.dims, f.data_of(t).unwrap().to_vec())
                    .unwrap();
            }
            assert_eq!(w2.to_bytes().unwrap(), f.bytes(), "v{version} align {alignment:?}");
        }
    }
}

#[test]
fn round_trip_through_a_file_on_disk_uses_the_mapping() {
    let (w, tensors) = build(3, None);
    let path = std::env::temp_dir().join(format!("tsharp-roundtrip-{}.gguf", std::process::id()));
    let layout = w.write_file(&path).unwrap();
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.len(), layout.len);
    assert_eq!(f.data_offset(), layout.data_offset);
    for (n, _, _, b) in &tensors {
        let data = f.tensor_data(n).unwrap();
        assert_eq!(data, &b[..]);
        // Zero-copy: the slice points into the file image.
        let base = f.bytes().as_ptr() as usize;
        let p = data.as_ptr() as usize;
        assert!(p >= base && p + data.len() <= base + f.bytes().len());
    }
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn writer_rejects_inconsistent_input() {
    let mut w = GgufWriter::new();
    assert!(w.add_tensor("t", GgmlType::Q4_0, &[33], vec![0; 18]).is_err());
    assert!(w.add_tensor("t", GgmlType::Q4_0, &[32], vec![0; 17]).is_err());
    assert!(w.add_tensor("", GgmlType::F32, &[1], vec![0; 4]).is_err());
    assert!(w.add_tensor("t", GgmlType::F32, &[0], vec![]).is_err());
    w.add_tensor("t", GgmlType::F32, &[1], vec![0; 4]).unwrap();
    assert!(w.add_tensor("t", GgmlType::F32, &[1], vec![0; 4]).is_err());
    w.add_meta("k", MetaValue::U8(1)).unwrap();
    assert!(w.add_meta("k", MetaValue::U8(1)).is_err());
    assert!(w.add_meta("general.alignment", MetaValue::U32(64)).is_err());
    assert!(w.set_alignment(48).is_err());
    assert!(w.set_version(1).is_err());
}
