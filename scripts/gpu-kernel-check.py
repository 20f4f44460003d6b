#!/usr/bin/env python3
"""Runs the CUDA backend's kernels (runtime/cuda/ts_cuda_kernels.cu) on this machine's GPU and
checks them against numpy references: NVRTC compiles them for the device's own architecture, the
CUDA driver API (libcuda, through ctypes) loads the cubin and launches each kernel on random data:
ts_matvec and ts_get_row for every weight type the backend takes (references dequantized by the
`gguf` package, ggml's Python port), ts_rms_norm, ts_rope (NeoX and interleaved), ts_attention_f16,
ts_swiglu, ts_geglu, ts_add, ts_scale, ts_softcap, ts_store_f16 (bit-exact). Prints one line per check and exits non-zero on any failure.
Needs a GPU: scripts/gpu-check.sh runs it (the `device` tool's machines, a Jetson).

    scripts/gpu-kernel-check.py
"""
import ctypes
import glob
import os
import sys

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import quants

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "runtime", "cuda")
rng = np.random.default_rng(7)


def nvrtc_lib():
    home = os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))
    hits = glob.glob(os.path.join(home, "tensorsharp", "cuda", "nvidia", "cuda_nvrtc", "lib", "libnvrtc.so.*"))
    hits += [p for base in sys.path for p in glob.glob(os.path.join(base, "nvidia", "cuda_nvrtc", "lib", "libnvrtc.so.*"))]
    if os.environ.get("TSHARP_NVRTC"):
        hits.insert(0, os.environ["TSHARP_NVRTC"])
    # A CUDA toolkit's own (a Jetson's JetPack, a workstation).
    import ctypes.util
    system = ctypes.util.find_library("nvrtc")
    if system:
        hits.append(system)
    if not hits:
        sys.exit("gpu-kernel-check: libnvrtc not found (scripts/setup.sh installs it; or set TSHARP_NVRTC)")
    return ctypes.CDLL(hits[0])


def compile_cubin(arch):
    lib = nvrtc_lib()
    src = open(os.path.join(SRC, "ts_cuda_kernels.cu"), "rb").read()
    prog = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), src, b"ts_cuda_kernels.cu", 0, None, None) == 0
    opts = [o.encode() for o in (f"--gpu-architecture={arch}", f"--include-path={SRC}", "--std=c++14")]
    rc = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
    size = ctypes.c_size_t()
    if rc != 0:
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, log)
        sys.exit(f"gpu-kernel-check: NVRTC failed for {arch}:\n{log.value.decode(errors='replace')}")
    lib.nvrtcGetCUBINSize(prog, ctypes.byref(size))
    cubin = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetCUBIN(prog, cubin)
    return cubin


class Cuda:
    def __init__(self):
        try:
            self.lib = ctypes.CDLL("libcuda.so.1")
        except OSError as e:
            sys.exit(f"gpu-kernel-check: no CUDA driver here ({e})")
        self.ck(self.lib.cuInit(0), "cuInit")
        dev = ctypes.c_int()
        self.ck(self.lib.cuDeviceGet(ctypes.byref(dev), 0), "cuDeviceGet")
        major, minor = ctypes.c_int(), ctypes.c_int()
        self.ck(self.lib.cuDeviceGetAttribute(ctypes.byref(major), 75, dev), "compute capability")
        self.ck(self.lib.cuDeviceGetAttribute(ctypes.byref(minor), 76, dev), "compute capability")
        self.arch = f"sm_{major.value}{minor.value}"
        name = ctypes.create_string_buffer(256)
        self.lib.cuDeviceGetName(name, 256, dev)
        self.name = name.value.decode()
        self.ctx = ctypes.c_void_p()
        self.ck(self.lib.cuDevicePrimaryCtxRetain(ctypes.byref(self.ctx), dev), "primary context")
        self.ck(self.lib.cuCtxSetCurrent(self.ctx), "cuCtxSetCurrent")
        self.module = ctypes.c_void_p()
        self.ck(self.lib.cuModuleLoadData(ctypes.byref(self.module), compile_cubin(self.arch)), "cuModuleLoadData")

    def ck(self, rc, what):
        if rc != 0:
            sys.exit(f"gpu-kernel-check: {what} failed: CUDA error {rc}")

    def put(self, a):
        a = np.ascontiguousarray(a)
        p = ctypes.c_uint64()
        self.ck(self.lib.cuMemAlloc_v2(ctypes.byref(p), max(a.nbytes, 4)), "cuMemAlloc")
        self.ck(self.lib.cuMemcpyHtoD_v2(p, a.ctypes.data_as(ctypes.c_void_p), a.nbytes), "cuMemcpyHtoD")
        return p

    def get(self, p, like):
        out = np.empty_like(like)
        self.ck(self.lib.cuCtxSynchronize(), "kernel")
        self.ck(self.lib.cuMemcpyDtoH_v2(out.ctypes.data_as(ctypes.c_void_p), p, out.nbytes), "cuMemcpyDtoH")
        return out

    def launch(self, name, grid, block, *args):
        f = ctypes.c_void_p()
        self.ck(self.lib.cuModuleGetFunction(ctypes.byref(f), self.module, name.encode()), name)
        params = (ctypes.c_void_p * len(args))(*[ctypes.cast(ctypes.pointer(a), ctypes.c_void_p) for a in args])
        g = list(grid) + [1] * (3 - len(grid))
        b = list(block) + [1] * (3 - len(block))
        self.ck(self.lib.cuLaunchKernel(f, *g, *b, 0, None, params, None), name)


# Byte offsets of the f16 fields in a block, so random blocks have finite scales.
HALVES = {Q.F16: None, Q.Q4_0: [0], Q.Q5_0: [0], Q.Q8_0: [0], Q.Q4_1: [0, 2], Q.Q4_K: [0, 2], Q.Q5_K: [0, 2], Q.Q6_K: [208]}
BLOCK = {Q.F32: (1, 4), Q.F16: (1, 2), Q.Q4_0: (32, 18), Q.Q4_1: (32, 20), Q.Q5_0: (32, 22), Q.Q8_0: (32, 34),
         Q.Q4_K: (256, 144), Q.Q5_K: (256, 176), Q.Q6_K: (256, 210)}


def random_rows(t, rows, n):
    be, bb = BLOCK[t]
    if t == Q.F32:
        return rng.standard_normal((rows, n)).astype(np.float32).view(np.uint8)
    if t == Q.F16:
        return rng.standard_normal((rows, n)).astype(np.float16).view(np.uint8)
    data = rng.integers(0, 256, size=(rows, n // be, bb), dtype=np.uint8)
    for at in HALVES[t]:
        h = (rng.standard_normal((rows, n // be)) * 0.05).astype(np.float16).view(np.uint8).reshape(rows, n // be, 2)
        data[:, :, at:at + 2] = h
    return data.reshape(rows, -1)


def close(got, want, tol=2e-4):
    scale = max(float(np.max(np.abs(want))), 1e-6)
    err = float(np.max(np.abs(got.astype(np.float64) - want))) / scale
    return err <= tol, err


def main():
    cu = Cuda()
    print(f"gpu-kernel-check: {cu.name} ({cu.arch})")
    results = []
    i32, i64, f32 = ctypes.c_int, ctypes.c_long, ctypes.c_float
    rows, n = 512, 2048
    x = rng.standard_normal(n).astype(np.float32)
    for t in BLOCK:
        w = random_rows(t, rows, n)
        ref = quants.dequantize(w, t).reshape(rows, n).astype(np.float64)
        dw, dx, dy = cu.put(w), cu.put(x), cu.put(np.zeros(rows, np.float32))
        cu.launch("ts_matvec", ((rows + 3) // 4,), (32, 4), i32(int(t)), dw, i64(w.shape[1]), i32(rows), dx, i32(n), dy)
        results.append((f"ts_matvec {t.name}", *close(cu.get(dy, np.zeros(rows, np.float32)), ref @ x.astype(np.float64))))
        dr = cu.put(np.zeros(n, np.float32))
        cu.launch("ts_get_row", (1,), (32,), i32(int(t)), dw, i64(w.shape[1]), i32(77), i32(n), dr)
        results.append((f"ts_get_row {t.name}", *close(cu.get(dr, np.zeros(n, np.float32)), ref[77])))
    e, nr = 896, 3
    xs = rng.standard_normal((nr, e)).astype(np.float32)
    wn = rng.standard_normal(e).astype(np.float32)
    dy = cu.put(np.zeros_like(xs))
    cu.launch("ts_rms_norm", (nr,), (32,), cu.put(xs), cu.put(wn), dy, i32(e), f32(1e-6))
    x64 = xs.astype(np.float64)
    want = x64 / np.sqrt((x64 ** 2).mean(axis=1, keepdims=True) + 1e-6) * wn
    results.append(("ts_rms_norm", *close(cu.get(dy, xs), want)))
    for neox in (1, 0):
        nh, hd, pos, base = 4, 64, 37, 10000.0
        q = rng.standard_normal((nh, hd)).astype(np.float32)
        dq = cu.put(q)
        cu.launch("ts_rope", (nh,), (32,), dq, i32(nh), i32(hd), i32(hd), i32(pos), f32(base), f32(1.0), i32(neox))
        want = q.astype(np.float64).copy()
        for i in range(hd // 2):
            th = pos * base ** (-2.0 * i / hd)
            a, b = (i, i + hd // 2) if neox else (2 * i, 2 * i + 1)
            x0, x1 = q[:, a].astype(np.float64), q[:, b].astype(np.float64)
            want[:, a], want[:, b] = x0 * np.cos(th) - x1 * np.sin(th), x0 * np.sin(th) + x1 * np.cos(th)
        results.append((f"ts_rope {'neox' if neox else 'interleaved'}", *close(cu.get(dq, q), want)))
    nh, nkv, hd, npos = 8, 2, 64, 100
    q = rng.standard_normal((nh, hd)).astype(np.float32)
    k = rng.standard_normal((npos, nkv * hd)).astype(np.float16)
    v = rng.standard_normal((npos, nkv * hd)).astype(np.float16)
    do = cu.put(np.zeros((nh, hd), np.float32))
    cu.launch("ts_attention_f16", (nh,), (32,), cu.put(q), cu.put(k.view(np.uint16)), i64(nkv * hd),
              cu.put(v.view(np.uint16)), i64(nkv * hd), i32(nh), i32(nkv), i32(hd), i32(hd), i32(npos),
              f32(hd ** -0.5), cu.put(np.zeros((nh, npos), np.float32)), do)
    want = np.zeros((nh, hd))
    for h in range(nh):
        g = h // (nh // nkv)
        s = (k[:, g * hd:(g + 1) * hd].astype(np.float64) @ q[h].astype(np.float64)) * hd ** -0.5
        p = np.exp(s - s.max())
        want[h] = (p / p.sum()) @ v[:, g * hd:(g + 1) * hd].astype(np.float64)
    results.append(("ts_attention_f16", *close(cu.get(do, np.zeros((nh, hd), np.float32)), want)))
    m = 4864
    g0 = rng.standard_normal(m).astype(np.float32)
    u = rng.standard_normal(m).astype(np.float32)
    for name, fn in (("ts_swiglu", lambda a: a / (1 + np.exp(-a))),
                     ("ts_geglu", lambda a: 0.5 * a * (1 + np.tanh(0.7978845608 * (a + 0.044715 * a ** 3))))):
        dg = cu.put(g0)
        cu.launch(name, ((m + 255) // 256,), (256,), dg, cu.put(u), i64(m))
        results.append((name, *close(cu.get(dg, g0), fn(g0.astype(np.float64)) * u)))
    da = cu.put(g0)
    cu.launch("ts_add", ((m + 255) // 256,), (256,), da, cu.put(u), i64(m))
    results.append(("ts_add", *close(cu.get(da, g0), g0.astype(np.float64) + u)))
    ds = cu.put(g0)
    cu.launch("ts_scale", ((m + 255) // 256,), (256,), ds, f32(29.9), i64(m))
    results.append(("ts_scale", *close(cu.get(ds, g0), g0.astype(np.float64) * 29.9)))
    dc = cu.put(g0 * 40)
    cu.launch("ts_softcap", ((m + 255) // 256,), (256,), dc, f32(30.0), i64(m))
    results.append(("ts_softcap", *close(cu.get(dc, g0), 30.0 * np.tanh(g0.astype(np.float64) * 40 / 30.0))))
    # f32 -> f16 bits, round to nearest even: equal to numpy's conversion, bit for bit.
    big = np.concatenate([g0 * 1000, g0 * 1e-6, [65520.0, -65519.0, 6e-8, 0.0, -0.0]]).astype(np.float32)
    dh = cu.put(np.zeros(len(big), np.uint16))
    cu.launch("ts_store_f16", ((len(big) + 255) // 256,), (256,), cu.put(big), dh, i64(len(big)))
    got = cu.get(dh, np.zeros(len(big), np.uint16))
    want = big.astype(np.float16).view(np.uint16)
    results.append(("ts_store_f16", bool((got == want).all()), float((got != want).sum())))
    failed = [r for r in results if not r[1]]
    for name, ok, err in results:
        print(f"  {name:<24} {'ok  ' if ok else 'FAIL'} max error {err:.2e} of the largest value")
    print(f"gpu-kernel-check: {len(results) - len(failed)} of {len(results)} passed")
    sys.exit(1 if failed else 0)


main()
