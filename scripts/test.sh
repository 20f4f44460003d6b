#!/usr/bin/env bash
# The test command: sets up what is missing, then runs every test on the host, and the aarch64
# kernel, model-file and runtime tests with the end-to-end parity test (five models) cross-compiled
# and run under qemu-aarch64 (-cpu max: NEON, dotprod).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
last=$SECONDS
# Prints how long the previous phase took (where the time goes, on every run).
phase() {
  echo "-- ${phase_name}: $((SECONDS - last)) s" >&2
  phase_name="$1"
  last=$SECONDS
  echo "== $1"
}
trap 'echo "-- ${phase_name}: $((SECONDS - last)) s; total $((SECONDS - start)) s" >&2' EXIT
phase_name=setup
scripts/setup.sh
phase "host tests ($(uname -m))"
cargo test --workspace --all-targets
cargo test --workspace --doc
# Parity with llama.cpp on every other kernel tier this CPU runs (the run above used the best);
# --workspace keeps the feature set of the build above, so nothing is compiled again.
tsharp="${CARGO_TARGET_DIR:-target}/debug/tsharp"
best="$("$tsharp" kernels | awk '/^selected:/ {print $2}')"
for tier in $("$tsharp" kernels | awk '$2 == "supported" {print $1}'); do
  [ "$tier" = "$best" ] && continue
  phase "parity on the $tier kernels"
  if [ "$tier" = scalar ]; then
    # The portable tier is slow (fmaf per lane); kernels-c/tests/orders.rs already holds it to the
    # SIMD tiers' bits on every type and shape, so one model end to end.
    TSHARP_KERNELS=scalar TSHARP_PARITY_MODELS=smollm2-135m-q4_1 cargo test --workspace --test parity
  else
    TSHARP_KERNELS="$tier" cargo test --workspace --test parity
  fi
done
# aarch64 under qemu-aarch64 -cpu max (NEON, dotprod, i8mm): the kernel tests (every tier held to
# the x86 orders' bits on every type and shape), the model-file tests, the runtime's unit tests and
# the end-to-end parity with llama.cpp on the dotprod tier for all five models, then on the
# NEON-only tier (a Cortex-A72 / Raspberry Pi 4 class core) for SmolLM2. One cargo invocation, so
# the host proc-macro crates are built once for it. Under emulation a decode step costs about a
# second, so the parity checks the prompt logits and the first TSHARP_PARITY_STEPS greedy steps of
# each case; `TSHARP_ARM_FULL=1 scripts/test.sh` checks every reference step (about 15 minutes).
arm_steps=8
[ "${TSHARP_ARM_FULL:-0}" = 1 ] && arm_steps=1000
arm=(--target aarch64-unknown-linux-gnu -p tensorsharp-kernels -p tensorsharp-models -p tensorsharp-runtime)
# The runtime's chat, prompt-cache and structured-output tests generate hundreds of tokens; their
# code is architecture-independent over the kernels checked here, so they run on the host only.
host_only=(--skip fifty_robot_commands --skip a_gbnf_grammar --skip second_turn_prefills --skip prompt_cache_files)
phase "aarch64 tests under qemu-aarch64, parity on the dotprod kernels"
TSHARP_PARITY_STEPS=$arm_steps cargo test "${arm[@]}" -- "${host_only[@]}"
phase "aarch64 parity on the neon kernels"
TSHARP_KERNELS=neon TSHARP_PARITY_MODELS=smollm2-135m-q4_1 TSHARP_PARITY_STEPS=$arm_steps \
  cargo test "${arm[@]}" --test parity
