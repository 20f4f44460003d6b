//! Batched decode: several sequences of one session decoded in one pass
//! (`Session::forward_batch`) compute the same logits, bit for bit, as each sequence alone in a
//! one-sequence session, on every test model, for batches of 2 to 9 sequences (wider than
//! `WType::gemv_exact_cols` of every type: 3 for Q4_K, 7 for the other K-quants and Q4_0, so the
//! kernels get the columns in groups); and the batch's bad input is refused.

use std::sync::Arc;

use tensorsharp_runtime::sampler::argmax;
use tensorsharp_runtime::{BatchRow, Model, RuntimeError, Session, SessionParams};
use tensorsharp_testkit::cases::Cases;
use tensorsharp_testkit::models as common;

const PROMPTS: [&str; 9] = [
    "Once upon a time",
    "The capital of France is",
    "def add(a, b):",
    "Robots are",
    "Water boils at",
    "The quick brown fox",
    "In 1969, the",
    "My favourite food is",
    "Hello",
];
const STEPS: usize = 4;
/// Sequences decoded together.
const BATCHES: [usize; 5] = [2, 3, 4, 7, 9];

fn params(n_seq: usize) -> SessionParams {
    SessionParams {
        n_ctx: 128,
        n_seq,
        n_threads: 2,
        ..Default::default()
    }
}

#[test]
fn batched_decode_equals_each_sequence_alone() {
    let mut cases = Cases::new("batched decode against one sequence at a time");
    for m in common::test_models() {
        let model = Arc::new(Model::load(&m.path).unwrap());
        let tok = model.tokenizer();
        let prompts: Vec<Vec<u32>> = PROMPTS.iter().map(|p| tok.tokenize(p, true, true)).collect();
        // Alone: greedy steps and the logits of each.
        let mut alone = Vec::new();
        for p in &prompts {
            let mut s = Session::new(Arc::clone(&model), params(1)).unwrap();
            let mut logits = vec![s.prefill(p).unwrap().to_vec()];
            for _ in 0..STEPS {
                let t = argmax(logits.last().unwrap());
                logits.push(s.decode(t).unwrap().to_vec());
            }
            alone.push(logits);
        }
        // Together: prefill each sequence, then decode all in one pass per step.
        for n_seq in BATCHES {
            let mut s = Session::new(Arc::clone(&model), params(n_seq)).unwrap();
            for (i, p) in prompts[..n_seq].iter().enumerate() {
                s.prefill_seq(i, p).unwrap();
                let same = s.seq_logits(i).unwrap() == &alone[i][0][..];
                cases.expect(format!("{} x{n_seq} seq {i} prefill", m.reference), same, || {
                    "logits differ".into()
                });
            }
            for step in 0..STEPS {
                let rows: Vec<BatchRow> = (0..n_seq)
                    .map(|i| BatchRow {
                        seq: i as u32,
                        token: argmax(&alone[i][step]),
                        logits: true,
                    })
                    .collect();
                s.forward_batch(&rows).unwrap();
                for (i, a) in alone[..n_seq].iter().enumerate() {
                    let got = s.seq_logits(i).unwrap();
                    let diff = got
                        .iter()
                        .zip(&a[step + 1])
                        .filter(|(x, y)| x.to_bits() != y.to_bits())
                        .count();
                    cases.expect(
                        format!("{} x{n_seq} seq {i} step {step}", m.reference),
                        diff == 0,
                        || format!("{diff} of {} logits differ", got.len()),
                    );
                }
            }
        }
    }
    cases.finish();
}

#[test]
fn bad_batches_are_refused_and_change_nothing() {
    let m = &common::test_models()[0];
    let model = Arc::new(Model::load(&m.path).unwrap());
    let mut s = Session::new(Arc::clone(&model), params(2)).unwrap();
    s.prefill_seq(0, &[1, 2, 3]).unwrap();
    let row = |seq, token, logits| BatchRow { seq, token, logits };
    let bad: [(&str, Vec<BatchRow>); 4] = [
        ("no rows", vec![]),
        ("sequence 5 of 2", vec![row(5, 1, true)]),
        ("token outside the vocabulary", vec![row(0, u32::MAX, true)]),
        (
            "two logits rows of one sequence",
            vec![row(0, 1, true), row(0, 2, true)],
        ),
    ];
    for (what, rows) in bad {
        let e = s.forward_batch(&rows).unwrap_err();
        assert!(
            matches!(e, RuntimeError::InvalidParameter { .. } | RuntimeError::BadToken { .. }),
            "{what}: {e}"
        );
        assert_eq!((s.seq_len(0), s.seq_len(1)), (3, 0), "{what}");
    }
    // A sequence whose rows overflow its context.
    let rows: Vec<BatchRow> = (0..126).map(|_| row(0, 1, false)).collect();
    let mut big = Session::new(
        model,
        SessionParams {
            n_batch: 128,
            ..params(2)
        },
    )
    .unwrap();
    big.prefill_seq(0, &[1, 2, 3]).unwrap();
    assert!(matches!(
        big.forward_batch(&rows),
        Err(RuntimeError::ContextFull { .. })
    ));
    assert_eq!(big.seq_len(0), 3);
    // Sequences are independent: emptying one leaves the other.
    s.prefill_seq(1, &[4, 5]).unwrap();
    s.truncate_seq(0, 1);
    assert_eq!((s.seq_tokens(0), s.seq_tokens(1)), (&[1u32][..], &[4u32, 5][..]));
}
