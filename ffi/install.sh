#!/usr/bin/env bash
# Builds libtensorsharp (release) and installs it make-install style:
#   PREFIX/include/tensorsharp.h
#   PREFIX/lib/libtensorsharp.a, PREFIX/lib/libtensorsharp.so.1 (+ libtensorsharp.so link)
#   PREFIX/lib/pkgconfig/tensorsharp.pc
# The libraries are installed stripped (the shared one ~2.5 MB instead of ~21 MB with its debug
# info); --debug keeps the debug info in them, --split-debug writes it to
# PREFIX/lib/debug/libtensorsharp.so.1.debug (linked from the stripped library with
# .gnu_debuglink, where gdb and perf look for it).
#
# Usage: ffi/install.sh PREFIX [--no-build] [--debug | --split-debug] [--lib-dir DIR]
#   --no-build     install what is already built
#   --lib-dir DIR  where the built libraries are (default: ${CARGO_TARGET_DIR:-target}/release)
# DESTDIR is honoured, as in `make install`.
set -euo pipefail
cd "$(dirname "$0")/.."
usage() { echo "usage: ffi/install.sh PREFIX [--no-build] [--debug | --split-debug] [--lib-dir DIR]" >&2; exit 2; }
[ $# -ge 1 ] || usage
prefix="$1"
shift
build=1 debug=strip libdir="${CARGO_TARGET_DIR:-target}/release"
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) build=0 ;;
    --debug) debug=keep ;;
    --split-debug) debug=split ;;
    --lib-dir) libdir="${2:?--lib-dir needs a directory}"; shift ;;
    *) usage ;;
  esac
  shift
done
[ "$build" = 0 ] || cargo build --release -p tensorsharp-ffi
dest="${DESTDIR:-}$prefix"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
for f in libtensorsharp.a libtensorsharp.so; do
  [ -f "$libdir/$f" ] || { echo "ffi/install.sh: $libdir/$f is missing (build it, or pass --lib-dir)" >&2; exit 1; }
done
install -d "$dest/include" "$dest/lib/pkgconfig"
install -m 0644 ffi/include/tensorsharp.h "$dest/include/"
install -m 0644 "$libdir/libtensorsharp.a" "$dest/lib/"
install -m 0755 "$libdir/libtensorsharp.so" "$dest/lib/libtensorsharp.so.1"
case "$debug" in
  strip)
    strip --strip-unneeded "$dest/lib/libtensorsharp.so.1"
    strip --strip-debug "$dest/lib/libtensorsharp.a"
    ;;
  split)
    install -d "$dest/lib/debug"
    objcopy --only-keep-debug "$dest/lib/libtensorsharp.so.1" "$dest/lib/debug/libtensorsharp.so.1.debug"
    strip --strip-unneeded "$dest/lib/libtensorsharp.so.1"
    (cd "$dest/lib" && objcopy --add-gnu-debuglink=debug/libtensorsharp.so.1.debug libtensorsharp.so.1)
    strip --strip-debug "$dest/lib/libtensorsharp.a"
    ;;
  keep) ;;
esac
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
echo "installed libtensorsharp $version into $dest ($debug debug info)"
