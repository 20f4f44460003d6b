//! `tsharp bench` allocates nothing per generated token: its heap calls, counted by an LD_PRELOAD
//! shim (`tests/tools/malloc_count.c`, compiled here with the system C compiler) over the whole
//! process, are the same for 4 and for 48 generated tokens. A vector grown inside the timed
//! decode loop (as bench's latency list once was) makes them differ.

mod common;

use std::path::Path;
use std::process::Command;

/// Heap calls (malloc, calloc, realloc, free, aligned) of one `tsharp bench` run with `n` tokens.
fn bench_heap_calls(shim: &Path, dir: &Path, n: usize) -> [u64; 5] {
    let out_file = dir.join(format!("counts-{n}"));
    let m = common::model_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    let n = n.to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_tsharp"))
        .args(["bench", "-m", m.to_str().unwrap(), "-p", "16", "-n", &n])
        .args(["-r", "2", "-t", "2", "--json"])
        .env("LD_PRELOAD", shim)
        .env("MALLOC_COUNT_OUT", &out_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bench -n {n}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&out_file)
        .unwrap_or_else(|e| panic!("the shim wrote no counts ({e}): was it preloaded?"));
    let v: Vec<u64> = text.split_whitespace().map(|x| x.parse().unwrap()).collect();
    v.try_into().unwrap()
}

#[test]
fn bench_heap_calls_do_not_grow_with_the_generated_tokens() {
    let dir = std::env::temp_dir().join(format!("tsharp-bench-alloc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let shim = common::build_malloc_shim(&dir);
    let short = bench_heap_calls(&shim, &dir, 4);
    let long = bench_heap_calls(&shim, &dir, 48);
    println!("heap calls (malloc calloc realloc free aligned): -n 4 {short:?}, -n 48 {long:?}");
    // The shim really counts (the loader, stdio and the model load allocate).
    assert!(short[0] > 100, "implausibly few mallocs: {short:?}");
    assert_eq!(
        short, long,
        "tsharp bench's heap calls grow with -n (per-token allocation in the timed loop)"
    );
    std::fs::remove_dir_all(&dir).ok();
}
