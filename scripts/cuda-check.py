#!/usr/bin/env python3
"""Compiles the CUDA backend's kernels (runtime/cuda/*.cu) with NVRTC for each target GPU
architecture, to a cubin (NVRTC runs the whole device back end, SASS included), without a GPU:
libnvrtc comes from the nvidia-cuda-nvrtc-cu12 wheel (scripts/setup.sh installs it into
~/.cache/tensorsharp/cuda). Fails on a compile error or a warning (except NVRTC's notice that
old architectures are deprecated), and when a kernel is missing from a cubin.

    scripts/cuda-check.py [ARCH ...]      (default: sm_53 sm_72 sm_87: Jetson Nano, Xavier, Orin)
"""
import ctypes
import glob
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "runtime", "cuda")
KERNELS = ["ts_matvec", "ts_get_row", "ts_rms_norm", "ts_rope", "ts_attention_f16", "ts_swiglu", "ts_geglu", "ts_add",
           "ts_store_f16", "ts_scale", "ts_softcap"]


def find_nvrtc():
    env = os.environ.get("TSHARP_NVRTC")
    if env:
        return env
    home = os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))
    for base in [os.path.join(home, "tensorsharp", "cuda")] + sys.path:
        hits = glob.glob(os.path.join(base, "nvidia", "cuda_nvrtc", "lib", "libnvrtc.so.*"))
        if hits:
            return sorted(hits)[0]
    sys.exit("cuda-check: libnvrtc not found (scripts/setup.sh installs the nvidia-cuda-nvrtc-cu12 wheel)")


def main():
    archs = sys.argv[1:] or ["sm_53", "sm_72", "sm_87"]
    lib = ctypes.CDLL(find_nvrtc())
    major, minor = ctypes.c_int(), ctypes.c_int()
    lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    lib.nvrtcGetErrorString.restype = ctypes.c_char_p
    failed = False
    for path in sorted(glob.glob(os.path.join(SRC, "*.cu"))):
        src = open(path, "rb").read()
        for arch in archs:
            prog = ctypes.c_void_p()
            rc = lib.nvrtcCreateProgram(ctypes.byref(prog), src, os.path.basename(path).encode(), 0, None, None)
            assert rc == 0, lib.nvrtcGetErrorString(rc)
            opts = [o.encode() for o in (f"--gpu-architecture={arch}", f"--include-path={SRC}", "--std=c++14")]
            argv = (ctypes.c_char_p * len(opts))(*opts)
            rc = lib.nvrtcCompileProgram(prog, len(opts), argv)
            size = ctypes.c_size_t()
            lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
            log = ctypes.create_string_buffer(size.value)
            lib.nvrtcGetProgramLog(prog, log)
            text = log.value.decode(errors="replace").strip()
            warnings = [l for l in text.splitlines() if "warning" in l and not re.search(r"deprecated|will be removed", l)]
            name = f"{os.path.relpath(path, ROOT)} for {arch}"
            if rc != 0 or warnings:
                print(f"cuda-check: {name}: {lib.nvrtcGetErrorString(rc).decode()}\n{text}", file=sys.stderr)
                failed = True
                continue
            lib.nvrtcGetCUBINSize(prog, ctypes.byref(size))
            cubin = ctypes.create_string_buffer(size.value)
            lib.nvrtcGetCUBIN(prog, cubin)
            missing = [k for k in KERNELS if (k + "\0").encode() not in cubin.raw]
            if missing:
                print(f"cuda-check: {name}: kernels missing from the cubin: {missing}", file=sys.stderr)
                failed = True
                continue
            print(f"cuda-check: {name}: {size.value} bytes of cubin, {len(KERNELS)} kernels (NVRTC {major.value}.{minor.value})")
            lib.nvrtcDestroyProgram(ctypes.byref(prog))
    sys.exit(1 if failed else 0)


main()
