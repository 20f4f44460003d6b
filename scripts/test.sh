#!/usr/bin/env bash
# The test command: sets up what is missing, then runs every test on the host, and the aarch64
# kernel, model-file and runtime tests with the end-to-end parity test (five models) cross-compiled
# and run under qemu-aarch64 (-cpu max: NEON, dotprod).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
last=$SECONDS
# The machine's busy and total CPU ticks (/proc/stat), to report how busy each phase kept it.
cpu_ticks() { awk '/^cpu / {t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t}' /proc/stat; }
read -r busy0 total0 < <(cpu_ticks)
# Prints how long the previous phase took and how busy it kept the CPUs (where the time goes,
# and where there is room to run something alongside, on every run).
phase() {
  local busy total
  read -r busy total < <(cpu_ticks)
  echo "-- ${phase_name}: $((SECONDS - last)) s, CPUs $(( (busy - busy0) * 100 / (total - total0 + 1) )) % busy" >&2
  busy0=$busy total0=$total
  phase_name="$1"
  last=$SECONDS
  echo "== $1"
}
# The tests' scratch files (compiled C clients, sockets, dumps, pip targets) go to one directory
# that goes away with the run, whatever a test leaves behind when it fails.
TMPDIR="$(mktemp -d "${TMPDIR:-/tmp}/tsharp-test.XXXXXX")"
export TMPDIR
chmod 755 "$TMPDIR"
trap 'echo "-- ${phase_name}: $((SECONDS - last)) s; total $((SECONDS - start)) s" >&2; rm -rf "$TMPDIR"' EXIT
phase_name=setup
scripts/setup.sh
phase "CUDA kernels compiled by NVRTC for sm_53, sm_72, sm_87 (no GPU needed)"
python3 scripts/cuda-check.py
phase "host tests ($(uname -m))"
# The criterion benchmarks (bench/kernels) are not tests: `.ci/run`'s clippy checks that they
# build, `cargo bench -p tensorsharp-kernel-bench` runs them; leaving them out here saves
# building criterion and its dependencies.
not_tests=(--exclude tensorsharp-kernel-bench)
# With the CUDA backend (dynamically loaded: it runs here without a GPU, NVRTC from the wheel
# compiles its kernels, and on a GPU machine the same test holds the model on the GPU to the
# CPU). Every host cargo call below keeps this feature set, so nothing is compiled twice.
not_tests+=(--features tensorsharp/cuda)
# The tests of all binaries share the CPUs through cargo-nextest where it is installed (it is on
# this project's machine image; .config/nextest.toml starts the slowest tests first and runs the
# ones that compare timings alone): about a quarter less time than `cargo test`, which runs one
# binary after the other. Without it, or with TSHARP_CARGO_TEST=1, `cargo test` runs the same
# tests (doctests always go through cargo test: nextest does not run them).
nextest=0
[ "${TSHARP_CARGO_TEST:-0}" != 1 ] && cargo nextest --version >/dev/null 2>&1 && nextest=1
if [ "$nextest" = 1 ]; then
  cargo nextest run --workspace "${not_tests[@]}" --all-targets
else
  cargo test --workspace "${not_tests[@]}" --all-targets
fi
cargo test --workspace "${not_tests[@]}" --doc
# Parity with llama.cpp on every other kernel tier this CPU runs (the run above used the best, on
# every case and step); --workspace keeps the feature set of the build above, so nothing is
# compiled again. kernels-c/tests/orders.rs and shapes.rs already hold every tier to the same bits
# on every type, shape and column count, so here each model's first two cases (those with full
# reference logits; every operation of the model runs in each) for eight steps, end to end.
tsharp="${CARGO_TARGET_DIR:-target}/debug/tsharp"
best="$("$tsharp" kernels | awk '/^selected:/ {print $2}')"
# `TSHARP_FULL=1 scripts/test.sh`: every case and step on every tier (x86 and aarch64).
tier_limits=(TSHARP_PARITY_STEPS=8 TSHARP_PARITY_CASES=2)
[ "${TSHARP_FULL:-0}" = 1 ] && tier_limits=(TSHARP_PARITY_STEPS=1000 TSHARP_PARITY_CASES=1000)
for tier in $("$tsharp" kernels | awk '$2 == "supported" {print $1}'); do
  [ "$tier" = "$best" ] && continue
  phase "parity on the $tier kernels"
  if [ "$tier" = scalar ]; then
    # The portable tier is slow (fmaf per lane): one model.
    env "${tier_limits[@]}" TSHARP_KERNELS=scalar TSHARP_PARITY_MODELS=smollm2-135m-q4_1 \
      cargo test --workspace "${not_tests[@]}" --test parity
  else
    env "${tier_limits[@]}" TSHARP_KERNELS="$tier" cargo test --workspace "${not_tests[@]}" --test parity
  fi
done
# aarch64 under qemu-aarch64 -cpu max (NEON, dotprod, i8mm): the kernel tests (every tier held to
# the x86 orders' bits on every type and shape), the model-file tests, the board detection
# (getauxval under emulation), the runtime's unit tests and the end-to-end parity with llama.cpp
# on the dotprod tier for all five models, then on the NEON-only tier (a Cortex-A72 / Raspberry
# Pi 4 class core) for SmolLM2. One cargo invocation, so
# the host proc-macro crates are built once for it. Under emulation a decode step costs about a
# second, so the parity checks, per model, the first two greedy cases (those with full reference
# logit vectors; every operation of the model runs in each) and their first TSHARP_PARITY_STEPS
# steps; `TSHARP_ARM_FULL=1 scripts/test.sh` checks every case and step (about 15 minutes).
arm_limits=(TSHARP_PARITY_STEPS=8 TSHARP_PARITY_CASES=2)
[ "${TSHARP_ARM_FULL:-${TSHARP_FULL:-0}}" = 1 ] && arm_limits=(TSHARP_PARITY_STEPS=1000 TSHARP_PARITY_CASES=1000)
# The runtime without its `chat` and `structured` features: chat templates, tool calls and
# constrained sampling are architecture-independent Rust over the kernels checked here (they are
# tested on the host above), and leaving minijinja and llguidance out saves their cross build.
arm=(--target aarch64-unknown-linux-gnu -p tensorsharp-kernels -p tensorsharp-models -p tensorsharp-boards
  -p tensorsharp-runtime --no-default-features)
phase "aarch64 tests under qemu-aarch64, parity on the dotprod kernels"
# Batched decode is held to one-sequence decode bit for bit on the host (runtime/tests/batch.rs);
# the kernels' column counts it relies on are held to the x86 bits here by orders.rs and shapes.rs.
if [ "$nextest" = 1 ]; then
  env "${arm_limits[@]}" cargo nextest run "${arm[@]}" -E 'not test(=batched_decode_equals_each_sequence_alone)'
  cargo test "${arm[@]}" --doc
else
  env "${arm_limits[@]}" cargo test "${arm[@]}" -- --skip batched_decode_equals_each_sequence_alone
fi
phase "aarch64 parity on the neon kernels"
env "${arm_limits[@]}" TSHARP_KERNELS=neon TSHARP_PARITY_MODELS=smollm2-135m-q4_1 \
  cargo test "${arm[@]}" --test parity
# The Yocto layer under the real BitBake (OE-Core wrynose, meta-tegra wrynose from
# ../shared/yocto): parse, fetch with every crate's sha256 checked, a corrupted sum failing,
# update_crates reproducing the committed list. BitBake refuses root and the check needs root to
# run it as its own user, so elsewhere it is skipped with a note.
# (Run alongside the aarch64 phase, it made that phase slower by more than it saved: its last
# step builds the workspace for aarch64 on both CPUs, measured 2026-12-06.)
phase "Yocto layer under BitBake"
if [ "$(id -u)" = 0 ]; then
  scripts/yocto-bitbake-check.sh
else
  echo "skipped: scripts/yocto-bitbake-check.sh needs root (it runs BitBake as its own user)" >&2
fi
