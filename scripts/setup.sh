#!/usr/bin/env bash
# Installs everything TensorSharp's build and tests need on a fresh Debian/Ubuntu machine, then
# fetches the test models. Idempotent: a second run only checks.
#
#   scripts/setup.sh            toolchain + system packages + Python test deps + models
#   SETUP_NO_MODELS=1 ...       skip the model download
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "setup: $*" >&2; }

# 1. Rust toolchain (rustup), with the aarch64 target for the cross tests.
if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    say "installing Rust with rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi
if command -v rustup >/dev/null 2>&1; then
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy
  rustup target list --installed | grep -q '^aarch64-unknown-linux-gnu$' || rustup target add aarch64-unknown-linux-gnu
fi

# 2. System packages: C and C++ compilers (host) and the aarch64 cross C compiler, qemu-user,
# binutils, valgrind.
need=()
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
# c++: the host build of the CUDA decoders (runtime/tests/cuda_host.rs).
command -v c++ >/dev/null 2>&1 || need+=(g++)
command -v objdump >/dev/null 2>&1 || need+=(binutils)
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || need+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null 2>&1 || need+=(qemu-user)
command -v python3 >/dev/null 2>&1 || need+=(python3 python3-pip)
command -v valgrind >/dev/null 2>&1 || need+=(valgrind)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v readelf >/dev/null 2>&1 || need+=(binutils)
# systemd-socket-activate: the daemon's socket-activation test (tests/daemon.rs);
# systemd-analyze: the unit checks (tests/systemd_units.rs).
command -v systemd-socket-activate >/dev/null 2>&1 || need+=(systemd)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
# systemd-nspawn and debootstrap: the boot test under a real systemd (tests/systemd_boot.rs).
command -v systemd-nspawn >/dev/null 2>&1 || need+=(systemd-container)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
# BitBake's host tools (OE-Core's sanity check) for the Yocto layer check
# (scripts/yocto-bitbake-check.sh; ../shared/yocto/README.md lists them).
for t in gawk wget diffstat unzip makeinfo chrpath socat cpio xz zstd lz4 file locale-gen; do
  command -v "$t" >/dev/null 2>&1 || need+=(gawk wget git diffstat unzip texinfo chrpath socat cpio xz-utils
    debianutils iputils-ping python3-git python3-jinja2 python3-subunit python3-pexpect zstd liblz4-tool file
    locales libacl1 lz4 build-essential)
done
[ "${#need[@]}" = 0 ] || mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
scripts/apt-install.sh "${need[@]}"
# Its Debian root (debootstrap once, cached; booting needs root, so only then).
if [ "$(id -u)" = 0 ]; then
  scripts/nspawn-root.sh >/dev/null
fi

# 3. Python test dependency: gguf-py, llama.cpp's reference GGUF reader (tests compare against it).
if ! python3 -c 'import gguf' >/dev/null 2>&1; then
  say "installing gguf-py (PyPI gguf==0.19.0)"
  python3 -m pip install --quiet --disable-pip-version-check gguf==0.19.0 2>&1 | grep -v 'Running pip as the' >&2 || true
  python3 -c 'import gguf' || { say "gguf-py could not be installed"; exit 1; }
fi
# jsonschema validates the structured-output test's generations (runtime/tests/structured.rs).
if ! python3 -c 'import jsonschema' >/dev/null 2>&1; then
  say "installing jsonschema (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check 'jsonschema>=4.18' 2>&1 | grep -v 'Running pip as the' >&2 || true
  python3 -c 'import jsonschema' || { say "jsonschema could not be installed"; exit 1; }
fi
# oelint-adv lints the Yocto layer's recipes (tests/yocto_layer.rs).
if ! command -v oelint-adv >/dev/null 2>&1; then
  say "installing oelint-adv (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check 'oelint-adv==9.11.2' 2>&1 | grep -v 'Running pip as the' >&2 || true
  command -v oelint-adv >/dev/null 2>&1 || { say "oelint-adv could not be installed"; exit 1; }
fi
# wyoming is the real client of the daemon's Wyoming adapter in tests/daemon.rs.
if ! python3 -c 'import wyoming' >/dev/null 2>&1; then
  say "installing wyoming (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check 'wyoming>=1.5,<2' 2>&1 | grep -v 'Running pip as the' >&2 || true
  python3 -c 'import wyoming' || { say "wyoming could not be installed"; exit 1; }
fi

# NVRTC, from the nvidia-cuda-nvrtc-cu12 wheel (no GPU or CUDA toolkit needed): scripts/cuda-check.py
# compiles the CUDA backend's kernels with it for sm_53, sm_72 and sm_87.
cuda_dir="${XDG_CACHE_HOME:-$HOME/.cache}/tensorsharp/cuda"
if ! ls "$cuda_dir"/nvidia/cuda_nvrtc/lib/libnvrtc.so.* >/dev/null 2>&1; then
  say "installing NVRTC (nvidia-cuda-nvrtc-cu12 12.9.86, PyPI) into $cuda_dir"
  python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$cuda_dir" \
    'nvidia-cuda-nvrtc-cu12==12.9.86' 2>&1 | grep -v 'Running pip as the' >&2 || true
  ls "$cuda_dir"/nvidia/cuda_nvrtc/lib/libnvrtc.so.* >/dev/null 2>&1 || { say "NVRTC could not be installed"; exit 1; }
fi

# 4. Test models (shared/MODELS.md) into the cache.
if [ -z "${SETUP_NO_MODELS:-}" ]; then
  scripts/fetch-models.sh --quiet >/dev/null
fi
say "ok"
