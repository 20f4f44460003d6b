#!/usr/bin/env bash
# The test command: sets up what is missing, then runs every test on the host and the aarch64
# kernel and model-file tests cross-compiled and run under qemu-aarch64 (-cpu max: NEON, dotprod).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "== host tests ($(uname -m))"
cargo test --workspace --all-targets
cargo test --workspace --doc
# Parity with llama.cpp on every other kernel tier this CPU runs (the run above used the best).
best="$(target/debug/tsharp kernels | awk '/^selected:/ {print $2}')"
for tier in $(target/debug/tsharp kernels | awk '$2 == "supported" {print $1}'); do
  [ "$tier" = "$best" ] && continue
  echo "== parity on the $tier kernels"
  TSHARP_KERNELS="$tier" cargo test --test parity
done
echo "== aarch64 tests under qemu-aarch64"
cargo test --target aarch64-unknown-linux-gnu -p tensorsharp-kernels -p tensorsharp-models
