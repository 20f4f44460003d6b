#!/usr/bin/env bash
# The test command: sets up what is missing, then runs every test on the host and the aarch64
# kernel and model-file tests and the end-to-end parity test (two models) cross-compiled and run
# under qemu-aarch64 (-cpu max: NEON, dotprod).
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
# Parity with llama.cpp on every other kernel tier this CPU runs (the run above used the best).
tsharp="${CARGO_TARGET_DIR:-target}/debug/tsharp"
best="$("$tsharp" kernels | awk '/^selected:/ {print $2}')"
for tier in $("$tsharp" kernels | awk '$2 == "supported" {print $1}'); do
  [ "$tier" = "$best" ] && continue
  phase "parity on the $tier kernels"
  if [ "$tier" = scalar ]; then
    # The portable tier is slow (fmaf per lane); kernels-c/tests/orders.rs already holds it to the
    # SIMD tiers' bits on every type and shape, so one model end to end.
    TSHARP_KERNELS=scalar TSHARP_PARITY_MODELS=smollm2-135m-q4_1 cargo test --test parity
  else
    TSHARP_KERNELS="$tier" cargo test --test parity
  fi
done
phase "aarch64 tests under qemu-aarch64"
cargo test --target aarch64-unknown-linux-gnu -p tensorsharp-kernels -p tensorsharp-models
# End-to-end parity with llama.cpp on ARM: the whole forward pass on the dotprod tier (-cpu max
# picks it), two models (the other three are measured in the README; minutes each under qemu);
# then SmolLM2 on the NEON-only tier (a Cortex-A72 / Raspberry Pi 4 class core).
phase "aarch64 parity (dotprod)"
TSHARP_PARITY_MODELS=smollm2-135m-q4_1,qwen2.5-coder-0.5b-q4_k_m \
  cargo test --target aarch64-unknown-linux-gnu --test parity
phase "aarch64 parity (neon)"
TSHARP_KERNELS=neon TSHARP_PARITY_MODELS=smollm2-135m-q4_1 \
  cargo test --target aarch64-unknown-linux-gnu --test parity
