//! Property test: random mutations of a valid small file never panic, and whatever is accepted
//! is internally consistent (every tensor's data lies inside the file).

use proptest::prelude::*;
use tensorsharp_models::gguf::{GgufWriter, MetaArray, MetaValue};
use tensorsharp_models::{GgmlType, GgufFile};

fn valid() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.add_meta("general.architecture", MetaValue::String("llama".into()))
        .unwrap();
    w.add_meta("llama.block_count", MetaValue::U32(2)).unwrap();
    w.add_meta(
        "tok",
        MetaValue::Array(MetaArray::String(vec!["a".into(), "b".into(), "<s>".into()])),
    )
    .unwrap();
    w.add_meta(
        "nest",
        MetaValue::Array(MetaArray::Array(vec![MetaArray::I16(vec![1, -1])])),
    )
    .unwrap();
    w.add_tensor("w", GgmlType::Q4_0, &[64, 2], vec![3; 72]).unwrap();
    w.add_tensor("n", GgmlType::F32, &[4], vec![0; 16]).unwrap();
    w.to_bytes().unwrap()
}

#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, u8),
    SetU64(usize, u64),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let big = prop_oneof![
        Just(0u64),
        Just(1),
        Just(u64::MAX),
        Just(1 << 32),
        Just(1 << 62),
        any::<u64>(),
        0u64..512
    ];
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<usize>(), big).prop_map(|(i, v)| Mutation::SetU64(i, v)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..16)).prop_map(|(i, v)| Mutation::Insert(i, v)),
        (any::<usize>(), 1usize..16).prop_map(|(i, n)| Mutation::Remove(i, n)),
    ]
}

fn apply(mut b: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        if b.is_empty() {
            break;
        }
        match m {
            Mutation::Set(i, v) => {
                let i = i % b.len();
                b[i] = *v;
            }
            Mutation::SetU64(i, v) => {
                let i = i % b.len();
                let end = (i + 8).min(b.len());
                b[i..end].copy_from_slice(&v.to_le_bytes()[..end - i]);
            }
            Mutation::Truncate(n) => b.truncate(n % b.len()),
            Mutation::Insert(i, v) => {
                let i = i % b.len();
                b.splice(i..i, v.iter().copied());
            }
            Mutation::Remove(i, n) => {
                let i = i % b.len();
                let end = (i + n).min(b.len());
                b.drain(i..end);
            }
        }
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]
    #[test]
    fn random_mutations_never_panic(muts in proptest::collection::vec(mutation(), 1..4)) {
        let bytes = apply(valid(), &muts);
        if let Ok(f) = GgufFile::from_bytes(bytes) {
            for t in f.tensors() {
                let d = f.data_of(t).unwrap();
                prop_assert_eq!(d.len() as u64, t.n_bytes);
                prop_assert!(t.file_offset + t.n_bytes <= f.len());
            }
            for (k, _) in f.metadata() {
                prop_assert!(f.get(k).is_some());
            }
        }
    }
}

/// Found by the cargo-fuzz `gguf_reader` target: a 3 KiB file claiming 16 million blocks made
/// the architecture spec size its per-layer tables by that count (18 GB, then the OOM killer).
/// It is refused at once, naming the key.
#[test]
fn a_block_count_the_tensor_table_cannot_hold_is_refused_without_allocating() {
    let mut w = GgufWriter::new();
    w.add_meta("general.architecture", MetaValue::String("llama".into()))
        .unwrap();
    for (k, v) in [
        ("llama.block_count", 16_121_857u32),
        ("llama.embedding_length", 8),
        ("llama.feed_forward_length", 16),
        ("llama.attention.head_count", 2),
        ("llama.context_length", 64),
    ] {
        w.add_meta(k, MetaValue::U32(v)).unwrap();
    }
    w.add_tensor("token_embd.weight", GgmlType::F32, &[8, 7], vec![0; 224])
        .unwrap();
    let f = GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap();
    let start = std::time::Instant::now();
    let e = tensorsharp_models::ModelSpec::from_gguf(&f).unwrap_err().to_string();
    assert!(e.contains("llama.block_count") && e.contains("16121857"), "{e}");
    assert!(start.elapsed().as_secs_f64() < 1.0);
}
