//! Many sessions on few cores (issue 18): 8 sessions x 2 threads of one process, each on its own
//! OS thread, do the same work as 8 x 1 in at most 1.5x the wall time (it took 9.6x when the
//! pools' workers spun against each other), and produce the same tokens; 6 processes x 2 threads
//! keep within 1.5x of 6 x 1 as well.

mod common;

use std::sync::Arc;
use std::time::Instant;

use tensorsharp_runtime::{Model, Session, SessionParams};
use tensorsharp_testkit::compare::argmax;

const SESSIONS: usize = 8;

/// The tests of this file measure wall time: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
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
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let model = Arc::new(Model::load(common::default_model()).unwrap());
    let prompt = model
        .tokenizer()
        .tokenize("The robot arm moves to the left and", true, false);
    run_all(&model, &prompt, 1); // warm-up (page faults, lazy statics)
    let (mut t1, one) = run_all(&model, &prompt, 1);
    let (mut t2, two) = run_all(&model, &prompt, 2);
    if t2 > 1.5 * t1 {
        // Wall time on a shared machine: one more measurement of each before judging (the
        // regression this guards against was 9.6x).
        println!("{SESSIONS} sessions x 1 thread: {t1:.2} s; x 2 threads: {t2:.2} s; measuring again");
        t1 = t1.min(run_all(&model, &prompt, 1).0);
        t2 = t2.min(run_all(&model, &prompt, 2).0);
    }
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

/// Wall time of `n` `tsharp bench` processes of `threads` threads each, run at once.
fn processes(n: usize, threads: &str) -> f64 {
    let m = common::default_model();
    let start = Instant::now();
    let children: Vec<_> = (0..n)
        .map(|_| {
            std::process::Command::new(env!("CARGO_BIN_EXE_tsharp"))
                .args(["bench", "-m", m.to_str().unwrap(), "-p", "16", "-n", "32", "-r", "2"])
                .args(["-t", threads, "--json"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    start.elapsed().as_secs_f64()
}

/// Other processes are not counted by the in-process check: there the spinning workers and the
/// barrier wait offer the core to other runnable threads (sched_yield) every few spins. Six
/// processes x 2 threads took 33.7 s against 4.3 s for x 1 before; now within 1.5x.
#[test]
fn six_processes_of_two_threads_keep_pace_with_six_of_one() {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (mut t1, mut t2) = (processes(6, "1"), processes(6, "2"));
    if t2 > 1.5 * t1 {
        // Wall time on a shared machine: one more measurement of each before judging (the
        // regression this guards against was 7.8x).
        println!("6 processes x 1 thread: {t1:.2} s; x 2 threads: {t2:.2} s; measuring again");
        t1 = t1.min(processes(6, "1"));
        t2 = t2.min(processes(6, "2"));
    }
    println!(
        "6 processes x 1 thread: {t1:.2} s; x 2 threads: {t2:.2} s (ratio {:.2})",
        t2 / t1
    );
    assert!(
        t2 <= 1.5 * t1,
        "6 processes x 2 threads took {t2:.2} s, more than 1.5x the {t1:.2} s of x 1"
    );
}
