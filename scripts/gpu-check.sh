#!/usr/bin/env bash
# The GPU check (issue 23), for a machine with an NVIDIA GPU and its driver: the CUDA kernels
# compiled by NVRTC for this device's architecture and run on it against numpy references
# (scripts/gpu-kernel-check.py: matvec and row lookup for F32, F16, Q4_0, Q4_1, Q5_0, Q8_0, Q4_K,
# Q5_K, Q6_K; RMS norm, RoPE, f16 attention, SwiGLU, GeGLU, add), after the architecture-list
# compile check (scripts/cuda-check.py). Prints one summary and exits non-zero on a failure.
#
# Needs: libcuda (the driver), NVRTC (scripts/setup.sh installs the nvidia-cuda-nvrtc-cu12 wheel;
# a CUDA toolkit's libnvrtc or TSHARP_NVRTC=/path/libnvrtc.so also do), python3 with numpy and
# gguf (setup.sh installs gguf). Not yet checked here: the Rust CUDA backend (`--features cuda`,
# model parity and `tsharp bench` on the GPU), which is not built yet.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader || true
fi
status=0
python3 scripts/cuda-check.py || status=1
python3 scripts/gpu-kernel-check.py || status=1
if [ "$status" = 0 ]; then
  echo "gpu-check: the CUDA kernels compile for sm_53/72/87 and for this device, and match the references on it"
else
  echo "gpu-check: FAILED (see above)"
fi
exit "$status"
