#!/usr/bin/env bash
# What the recipe's build does inside BitBake (the cargo class), here: the workspace at HEAD builds
# offline and frozen for aarch64 from exactly the crates of tensorsharp-crates.inc — each taken
# from a download folder (BitBake's DL_DIR after `bitbake tensorsharp -c fetch`), its sha256
# checked against the recipe again, unpacked as a cargo directory source.
#
# Usage: scripts/yocto-vendored-build.sh DL_DIR WORK_DIR
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
dl="${1:?usage: scripts/yocto-vendored-build.sh DL_DIR WORK_DIR}"
work="${2:?usage: scripts/yocto-vendored-build.sh DL_DIR WORK_DIR}"
inc="$repo/yocto/meta-tensorsharp/recipes-ai/tensorsharp/tensorsharp-crates.inc"
rm -rf "$work/vendor" "$work/src"
mkdir -p "$work/vendor" "$work/src"
git -C "$repo" archive HEAD | tar -x -C "$work/src"
n="$(python3 "$repo/scripts/yocto-vendor.py" "$inc" "$dl" "$work/vendor")"
echo "yocto-vendored-build: $n crates checked and unpacked; building for aarch64 offline" >&2
printf '\n[source.crates-io]\nreplace-with = "recipe-crates"\n\n[source.recipe-crates]\ndirectory = "%s"\n' \
  "$work/vendor" >>"$work/src/.cargo/config.toml"
cd "$work/src"
# With the CUDA backend, as the recipe builds it for a Jetson (PACKAGECONFIG "cuda"): its crates
# come from the same list.
CARGO_TARGET_DIR="$work/target" cargo build --offline --frozen --target aarch64-unknown-linux-gnu \
  --workspace --exclude tensorsharp-kernel-bench --lib --bins --features tensorsharp/cuda
file "$work/target/aarch64-unknown-linux-gnu/debug/tsharpd" | grep -q "ARM aarch64" ||
  { echo "yocto-vendored-build: tsharpd is not an aarch64 binary" >&2; exit 1; }
echo "yocto-vendored-build: tsharpd, tsharp (with the CUDA backend) and libtensorsharp built for aarch64 from the recipe's crates" >&2
