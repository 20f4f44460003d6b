#!/usr/bin/env bash
# Builds llama.cpp's llama-bench (and its static libraries) as the side-by-side reference of the
# bench scripts: the llama.cpp vendored in the llama-cpp-python 0.3.36 sdist from PyPI (commit
# 0c1e570, the commit of shared/reference). Idempotent; prints the path of the llama-bench binary.
#
#   bench/build-llama.sh aarch64 [ARCH]   cross-compiled, -DGGML_CPU_ARM_ARCH=ARCH (default
#                                         armv8.2-a+dotprod: a Jetson Orin's Cortex-A78AE;
#                                         armv8-a: NEON only)
#   bench/build-llama.sh x86 [avx512|avx2] native x86-64 build for that ISA level (not -march=native:
#                                         GGML_NATIVE=OFF with the flags of the level, so a machine
#                                         with AMX measures the AVX-512 kernels, as our avx512 tier)
#
# Cache: ${XDG_CACHE_HOME:-~/.cache}/tensorsharp/llama/<target>-<level>/.
set -euo pipefail
TARGET="${1:-aarch64}"
case "$TARGET" in
  aarch64) LEVEL="${2:-armv8.2-a+dotprod}" ;;
  x86) LEVEL="${2:-avx512}" ;;
  *) echo "usage: $0 aarch64 [ARCH] | x86 [avx512|avx2]" >&2; exit 2 ;;
esac
VERSION=0.3.36
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/tensorsharp/llama"
SRC="$CACHE/src/llama_cpp_python-$VERSION/vendor/llama.cpp"
OUT="$CACHE/$TARGET-${LEVEL//+/_}"
say() { echo "build-llama: $*" >&2; }

if [ -x "$OUT/bin/llama-bench" ]; then
  echo "$OUT/bin/llama-bench"
  exit 0
fi

# Tools: C and C++ compilers (Debian; the aarch64 cross compilers for aarch64), cmake and ninja (PyPI).
need=()
if [ "$TARGET" = aarch64 ]; then
  command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || need+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
  command -v aarch64-linux-gnu-g++ >/dev/null 2>&1 || need+=(g++-aarch64-linux-gnu)
else
  command -v g++ >/dev/null 2>&1 || need+=(g++)
fi
"$(dirname "$0")/../scripts/apt-install.sh" "${need[@]}"
if ! command -v cmake >/dev/null 2>&1 || ! command -v ninja >/dev/null 2>&1; then
  say "installing cmake and ninja (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check cmake ninja 2>&1 | grep -v 'Running pip as the' >&2 || true
  hash -r
fi

# Source: the sdist (the wheel holds a build for the host, not the sources).
if [ ! -f "$SRC/CMakeLists.txt" ]; then
  say "fetching llama-cpp-python==$VERSION (sdist) from PyPI"
  mkdir -p "$CACHE/src"
  python3 -m pip download --quiet --no-deps --no-binary llama-cpp-python "llama-cpp-python==$VERSION" -d "$CACHE/src" >&2
  tar -xzf "$CACHE/src/llama_cpp_python-$VERSION.tar.gz" -C "$CACHE/src"
fi

mkdir -p "$OUT"
flags=(-DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DGGML_OPENMP=OFF -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF)
if [ "$TARGET" = aarch64 ]; then
  cat >"$OUT/toolchain.cmake" <<'EOF'
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
EOF
  flags+=(-DCMAKE_TOOLCHAIN_FILE="$OUT/toolchain.cmake" -DGGML_CPU_ARM_ARCH="$LEVEL")
else
  case "$LEVEL" in
    avx512) flags+=(-DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON) ;;
    avx2) flags+=(-DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON) ;;
    *) echo "build-llama: unknown x86 level $LEVEL (avx512 or avx2)" >&2; exit 2 ;;
  esac
fi
say "building llama-bench ($TARGET $LEVEL) in $OUT (a few minutes)"
cmake -S "$SRC" -B "$OUT/build" -G Ninja "${flags[@]}" >"$OUT/configure.log" 2>&1 || { cat "$OUT/configure.log" >&2; exit 1; }
cmake --build "$OUT/build" --target llama-bench -j"$(nproc)" >"$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log" >&2; exit 1; }
mkdir -p "$OUT/bin"
cp "$OUT/build/bin/llama-bench" "$OUT/bin/llama-bench"
echo "$OUT/bin/llama-bench"
