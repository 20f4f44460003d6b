//! Many sessions of one process on few cores (issue 18): 8 sessions x 2 threads, each on its own
//! OS thread, do the same work as 8 x 1 in at most 1.5x the wall time (it took 12x when the
//! pools' workers spun against each other), and produce the same tokens.

mod common;

use std::sync::Arc;
use std::time::Instant;

use tensorsharp_runtime::{Model, Session, SessionParams};
use tensorsharp_testkit::compare::argmax;

const SESSIONS: usize = 8;
const DECODE: usize = 24;

/// Greedy continuation of `prompt` by `SESSIONS` sessions of `threads` threads at once; returns
/// the wall time and each session's tokens.
fn run_all(model: &Arc<Model>, prompt: &[u32], threads: usize) -> (f64, Vec<Vec<usize>>) {
    let start = Instant::now();
    let outs = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..SESSIONS)
            .map(|_| {
                scope.spawn(|| {
                    let mut s = Session::new(
                        Arc::clone(model),
                        SessionParams {
                            n_ctx: 128,
                            n_threads: threads,
                            ..Default::default()
                        },
                    )
                    .unwrap();
                    let mut next = argmax(s.prefill(prompt).unwrap());
                    let mut out = vec![next];
                    for _ in 0..DECODE {
                        next = argmax(s.decode(next as u32).unwrap());
                        out.push(next);
                    }
                    out
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
    });
    (start.elapsed().as_secs_f64(), outs)
}

#[test]
fn eight_sessions_of_two_threads_keep_pace_with_eight_of_one() {
    let model = Arc::new(Model::load(common::default_model()).unwrap());
    let prompt = model
        .tokenizer()
        .tokenize("The robot arm moves to the left and", true, false);
    run_all(&model, &prompt, 1); // warm-up (page faults, lazy statics)
    let (t1, one) = run_all(&model, &prompt, 1);
    let (t2, two) = run_all(&model, &prompt, 2);
    println!(
        "{SESSIONS} sessions x 1 thread: {t1:.2} s; x 2 threads: {t2:.2} s (ratio {:.2}) on {} CPUs",
        t2 / t1,
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    assert_eq!(one, two, "the tokens depend on the thread count");
    assert!(
        t2 <= 1.5 * t1,
        "{SESSIONS} x 2 threads took {t2:.2} s, more than 1.5x the {t1:.2} s of {SESSIONS} x 1"
    );
}
