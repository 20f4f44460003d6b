#!/usr/bin/env bash
# The GPU check (issue 23), for a machine with an NVIDIA GPU and its driver. In order:
#   1. the kernels compile with NVRTC for sm_53/72/87 (scripts/cuda-check.py);
#   2. each kernel on this GPU against numpy references (scripts/gpu-kernel-check.py);
#   3. the Rust CUDA backend (`--features cuda`): runtime/tests/cuda_backend.rs runs every test
#      model on the GPU against the CPU (greedy equal up to near-ties, logits cosine >= 0.999),
#      with every weight on the device and with half of them copied per token through the two
#      device slots; plus the program against the CPU reference (runtime/tests/gpu_program.rs);
#   4. `tsharp bench --gpu` on Qwen2.5 0.5B at full GPU residency and at a GPU budget of half
#      the model, next to the CPU, in one run.
# Prints one summary and exits non-zero on a failure.
#
# Needs: libcuda (the driver), NVRTC (scripts/setup.sh installs the nvidia-cuda-nvrtc-cu12 wheel;
# a CUDA toolkit's libnvrtc or TSHARP_NVRTC=/path/libnvrtc.so also do), python3 with numpy and
# gguf (setup.sh installs gguf), the test models (scripts/fetch-models.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader || true
fi
status=0
summary=()
step() { if "$@"; then summary+=("ok   $*"); else summary+=("FAIL $*"); status=1; fi; }
step python3 scripts/cuda-check.py
step python3 scripts/gpu-kernel-check.py
step cargo test --release --features cuda -p tensorsharp-runtime --test cuda_backend --test gpu_program -- --nocapture
cargo build --release --features cuda --bin tsharp
qwen="${XDG_CACHE_HOME:-$HOME/.cache}/tensorsharp/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
if [ -f "$qwen" ]; then
  half=$(( $(stat -c %s "$qwen") / 2 ))
  step target/release/tsharp bench -m "$qwen" -p 128 -n 64 -r 3
  step target/release/tsharp bench -m "$qwen" -p 128 -n 64 -r 3 --gpu
  step target/release/tsharp bench -m "$qwen" -p 128 -n 64 -r 3 --gpu-budget "$half"
else
  summary+=("skip tsharp bench: $qwen missing (scripts/fetch-models.sh)")
fi
echo "gpu-check summary:"
printf '  %s\n' "${summary[@]}"
exit "$status"
