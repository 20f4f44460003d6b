//! `tsharp bench`: llama-bench-like throughput. After a warm-up, each repetition times a prompt
//! of `-p` tokens processed from an empty context (pp) and `-n` tokens decoded one at a time
//! from an empty context (tg), as llama-bench does; prints medians and spread, first-token
//! latency, per-token decode latency percentiles, peak RSS and the weight bytes read per token.
//! `--parallel N` decodes N sequences together (batched decode, as the daemon's slots) and
//! reports their aggregate rate.

use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use serde_json::json;
use tensorsharp_runtime::sampler::argmax;
use tensorsharp_runtime::ProfileOp;
use tensorsharp_runtime::{BatchRow, Model, Session};

use crate::run::{latency_summary, ModelArg, SessionArgs};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Options of `tsharp bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    model: ModelArg,
    /// Prompt tokens for the prompt-processing test (0: skip).
    #[arg(short = 'p', long = "n-prompt", default_value_t = 128)]
    n_prompt: usize,
    /// Tokens for the generation test (0: skip).
    #[arg(short = 'n', long = "n-gen", default_value_t = 64)]
    n_gen: usize,
    /// Repetitions.
    #[arg(short = 'r', long = "repetitions", default_value_t = 5)]
    reps: usize,
    #[command(flatten)]
    session: SessionArgs,
    /// Sequences decoded together in the generation test (one pass over the weights per step
    /// for all, as the daemon's slots); tg reports their aggregate tokens per second.
    #[arg(long = "parallel", default_value_t = 1)]
    parallel: usize,
    /// Time each operation kind (adds a clock read between operations) and print the profile.
    #[arg(long)]
    profile: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Also measure how fast this machine reads memory with the same threads (a 512 MiB buffer,
    /// best of five passes) and report decode's weight traffic as a share of it: the decode
    /// roofline.
    #[arg(long)]
    roofline: bool,
    #[command(flatten)]
    gpu: crate::gpu::GpuArgs,
}

/// Bytes per second that `threads` threads read from a buffer far larger than the caches (the
/// best of five passes): the most decode can stream its weights at.
fn read_bandwidth(threads: usize) -> f64 {
    const BYTES: usize = 512 << 20;
    let buf = vec![1u64; BYTES / 8]; // written once, so every page is resident
    let per = buf.len().div_ceil(threads.max(1));
    let mut best = 0f64;
    for _ in 0..5 {
        let t0 = Instant::now();
        let sum = std::thread::scope(|s| {
            let parts: Vec<_> = buf
                .chunks(per)
                .map(|part| {
                    s.spawn(move || {
                        let mut acc = [0u64; 8];
                        for x in part.chunks_exact(8) {
                            for (a, v) in acc.iter_mut().zip(x) {
                                *a = a.wrapping_add(*v);
                            }
                        }
                        acc.iter().fold(0u64, |a, v| a.wrapping_add(*v))
                    })
                })
                .collect();
            parts
                .into_iter()
                .map(|h| h.join().unwrap_or(0))
                .fold(0u64, u64::wrapping_add)
        });
        std::hint::black_box(sum);
        best = best.max(BYTES as f64 / t0.elapsed().as_secs_f64());
    }
    best
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        0.0
    } else if s.len() % 2 == 1 {
        s[s.len() / 2]
    } else {
        (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0
    }
}

fn stddev(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let m = v.iter().sum::<f64>() / v.len() as f64;
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
}

/// Deterministic pseudo-random tokens (llama-bench also uses random tokens).
fn tokens(n: usize, n_vocab: usize, seed: u64) -> Vec<u32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % n_vocab.min(32000) as u64) as u32
        })
        .collect()
}

pub fn bench(a: BenchArgs) -> Result<()> {
    if a.reps == 0 {
        return Err("-r must be at least 1".into());
    }
    if a.parallel == 0 {
        return Err("--parallel must be at least 1".into());
    }
    let path = a.model.resolve()?;
    let mut params = a.session.params()?;
    if params.n_ctx == 0 {
        params.n_ctx = (a.n_prompt.max(a.n_gen + 1) + 16).next_multiple_of(256);
    }
    if a.n_prompt > 0 {
        params.n_batch = params.n_batch.max(a.n_prompt.min(512));
    }
    params.n_seq = a.parallel;
    let model = Arc::new(Model::load_for(&path, a.model.weights_mode(), None, &params)?);
    let mut session = Session::new(Arc::clone(&model), params)?;
    for w in session.warnings() {
        eprintln!("tsharp: warning: {w}");
    }
    if a.gpu.wanted() && a.parallel > 1 {
        return Err("--gpu decodes one sequence: leave out --parallel".into());
    }
    a.gpu.attach(&model, &mut session)?;
    let n_vocab = model.tokenizer().n_vocab();
    let bos = model.tokenizer().bos().unwrap_or(1);

    // Warm-up: touch every weight and buffer once.
    session.prefill(&tokens(16.min(session.n_ctx() - 4), n_vocab, 7))?;
    session.decode(bos)?;
    session.reset();
    session.set_profiling(a.profile);

    // Every result vector is sized before the timed loops: a push inside them never allocates.
    let (mut pp, mut first_token, mut tg) = (
        Vec::with_capacity(a.reps),
        Vec::with_capacity(a.reps),
        Vec::with_capacity(a.reps),
    );
    let mut lat = Vec::with_capacity(a.reps * a.n_gen);
    let mut rows: Vec<BatchRow> = Vec::with_capacity(a.parallel);
    for r in 0..a.reps {
        if a.n_prompt > 0 {
            let toks = tokens(a.n_prompt, n_vocab, 1000 + r as u64);
            session.reset();
            let t0 = Instant::now();
            let next = argmax(session.prefill(&toks)?);
            let dt = t0.elapsed().as_secs_f64();
            std::hint::black_box(next);
            pp.push(a.n_prompt as f64 / dt);
            first_token.push(dt * 1e3);
        }
        if a.n_gen > 0 && a.parallel == 1 {
            session.reset();
            let mut tok = bos;
            let t0 = Instant::now();
            for _ in 0..a.n_gen {
                let t = Instant::now();
                tok = argmax(session.decode(tok)?);
                lat.push(t.elapsed().as_secs_f32());
            }
            tg.push(a.n_gen as f64 / t0.elapsed().as_secs_f64());
        } else if a.n_gen > 0 {
            // Every sequence from an empty context, one row each per step.
            session.reset();
            rows.clear();
            rows.extend((0..a.parallel as u32).map(|seq| BatchRow {
                seq,
                token: bos,
                logits: true,
            }));
            let t0 = Instant::now();
            for _ in 0..a.n_gen {
                let t = Instant::now();
                session.forward_batch(&rows)?;
                for r in rows.iter_mut() {
                    r.token = argmax(session.seq_logits(r.seq as usize).ok_or("no logits")?);
                }
                lat.push(t.elapsed().as_secs_f32());
            }
            tg.push((a.n_gen * a.parallel) as f64 / t0.elapsed().as_secs_f64());
        }
    }
    let prof = session.profile();
    let (peak_rss, _) = crate::run::rusage();
    let bytes = model.weight_bytes_per_token();
    let (pp_med, tg_med) = (median(&pp), median(&tg));
    let gbps = bytes as f64 * tg_med / 1e9;
    let threads = session.params().n_threads;
    let read_gbps = if a.roofline { read_bandwidth(threads) / 1e9 } else { 0.0 };
    let l = latency_summary(&lat);
    let name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tier = model.kernels().tier().name();
    let total_ns: u64 = prof.iter().sum();
    // A figure says which machine it was measured on: the CPU and the board profile.
    let board = tensorsharp_runtime::board::host();
    let machine = format!(
        "{}, {} CPUs online",
        board
            .detection
            .board_name()
            .or(board.detection.cpu.model_name.as_deref())
            .unwrap_or("unknown CPU"),
        board.detection.cpu.cores.len()
    );
    if a.json {
        let profile: Vec<_> = ProfileOp::ALL
            .iter()
            .zip(prof)
            .map(
                |(op, ns)| json!({"op": op.name(), "ms": ns as f64 / 1e6, "share": ns as f64 / total_ns.max(1) as f64}),
            )
            .collect();
        let j = json!({
            "model": name,
            "machine": machine,
            "board_profile": board.defaults.profile.id,
            "threads": threads,
            "kernels": tier,
            "n_prompt": a.n_prompt,
            "n_gen": a.n_gen,
            "parallel": a.parallel,
            "repetitions": a.reps,
            "pp_tokens_per_s": {"median": pp_med, "stddev": stddev(&pp), "all": pp},
            "tg_tokens_per_s": {"median": tg_med, "stddev": stddev(&tg), "all": tg},
            "first_token_ms": median(&first_token),
            "decode_latency_ms": {"p50": l[0], "p90": l[1], "p99": l[2], "max": l[3]},
            "weight_bytes_per_token": bytes,
            "implied_gb_per_s": gbps,
            "read_bandwidth_gb_per_s": if a.roofline { json!(read_gbps) } else { json!(null) },
            "roofline_fraction": if a.roofline && read_gbps > 0.0 { json!(gbps / read_gbps) } else { json!(null) },
            "peak_rss_bytes": peak_rss,
            "streamed_reads": crate::run::streamed_reads(&session),
            "profile": if a.profile { json!(profile) } else { json!(null) },
        });
        outln!("{j}")?;
        return Ok(());
    }
    outln!("machine: {machine} (board profile {})", board.defaults.profile.id)?;
    outln!("| model | threads | kernels | test | t/s (median ± sd) |")?;
    outln!("| --- | ---: | --- | --- | ---: |")?;
    if a.n_prompt > 0 {
        outln!(
            "| {name} | {threads} | {tier} | pp{} | {pp_med:.2} ± {:.2} |",
            a.n_prompt,
            stddev(&pp)
        )?;
    }
    if a.n_gen > 0 {
        let par = if a.parallel > 1 {
            format!(" x{}", a.parallel)
        } else {
            String::new()
        };
        outln!(
            "| {name} | {threads} | {tier} | tg{}{par} | {tg_med:.2} ± {:.2} |",
            a.n_gen,
            stddev(&tg)
        )?;
    }
    outln!()?;
    if a.n_prompt > 0 {
        outln!(
            "first token (pp{} + argmax): {:.1} ms median",
            a.n_prompt,
            median(&first_token)
        )?;
    }
    if a.n_gen > 0 {
        outln!(
            "decode latency: p50 {:.2} ms | p90 {:.2} | p99 {:.2} | max {:.2} (p99/p50 {:.3})",
            l[0],
            l[1],
            l[2],
            l[3],
            l[2] / l[0].max(1e-9)
        )?;
        outln!(
            "weights read per token: {:.1} MiB -> {gbps:.1} GB/s at the median tg rate",
            bytes as f64 / 1048576.0
        )?;
        if a.roofline {
            outln!(
                "memory read bandwidth with {threads} threads: {read_gbps:.1} GB/s -> decode at {:.0}% of the roofline",
                100.0 * gbps / read_gbps.max(1e-9)
            )?;
        }
    }
    outln!("peak RSS: {:.1} MiB", peak_rss as f64 / 1048576.0)?;
    if a.profile {
        outln!("\nprofile (all repetitions, pp and tg together):")?;
        for (op, ns) in ProfileOp::ALL.iter().zip(prof) {
            outln!(
                "  {:<32} {:>10.1} ms {:>6.1}%",
                op.name(),
                ns as f64 / 1e6,
                100.0 * ns as f64 / total_ns.max(1) as f64
            )?;
        }
    }
    Ok(())
}
