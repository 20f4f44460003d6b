#!/usr/bin/env bash
# Builds libtensorsharp (release) and installs it make-install style:
#   PREFIX/include/tensorsharp.h
#   PREFIX/lib/libtensorsharp.a, PREFIX/lib/libtensorsharp.so.1 (+ libtensorsharp.so link)
#   PREFIX/lib/pkgconfig/tensorsharp.pc
# Usage: ffi/install.sh PREFIX [--no-build]    (DESTDIR is honoured, as in `make install`)
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="${1:?usage: ffi/install.sh PREFIX [--no-build]}"
[ "${2:-}" = "--no-build" ] || cargo build --release -p tensorsharp-ffi
target="${CARGO_TARGET_DIR:-target}/release"
dest="${DESTDIR:-}$prefix"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
install -d "$dest/include" "$dest/lib/pkgconfig"
install -m 0644 ffi/include/tensorsharp.h "$dest/include/"
install -m 0644 "$target/libtensorsharp.a" "$dest/lib/"
install -m 0755 "$target/libtensorsharp.so" "$dest/lib/libtensorsharp.so.1"
ln -sf libtensorsharp.so.1 "$dest/lib/libtensorsharp.so"
cat > "$dest/lib/pkgconfig/tensorsharp.pc" <<PC
prefix=$prefix
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: tensorsharp
Description: TensorSharp on-device LLM runtime (C ABI)
Version: $version
Cflags: -I\${includedir}
Libs: -L\${libdir} -ltensorsharp
Libs.private: -lpthread -ldl -lm
PC
echo "installed libtensorsharp $version into $dest"
