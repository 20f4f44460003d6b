#!/usr/bin/env bash
# Installs tsharpd as a systemd service on a Debian/Ubuntu system (JetPack included), the way a
# distribution package would:
#   /usr/bin/tsharpd, /usr/bin/tsharp               (release binaries, stripped)
#   /usr/lib/systemd/system/tsharpd.{socket,service} (+ tsharpd.service.d/jetson.conf on a Jetson)
#   /usr/lib/sysusers.d/tensorsharp.conf             (the `tensorsharp` group of the socket)
#   /etc/tensorsharp/tsharpd.toml                    (kept if it exists)
#   /usr/share/tensorsharp/models/MODEL.gguf         (with --model FILE)
#   /etc/systemd/system/tsharpd.service.d/memory.conf (MemoryMax= from tsharpd --check-config)
# then creates the group, reloads systemd and enables the socket (the daemon starts on the first
# connection). DESTDIR installs into a staging tree and skips the memory limit and systemctl.
#
# Usage: sudo packaging/install-service.sh [--model FILE.gguf] [--jetson | --no-jetson]
#          [--bin-dir DIR] [--no-build]
#   --jetson / --no-jetson  install the GPU drop-in or not (default: when /etc/nv_tegra_release exists)
#   --bin-dir DIR           where the built binaries are (default: ${CARGO_TARGET_DIR:-target}/release)
#   --no-build              install what is already built
set -euo pipefail
cd "$(dirname "$0")/.."
usage() { echo "usage: packaging/install-service.sh [--model FILE] [--jetson|--no-jetson] [--bin-dir DIR] [--no-build]" >&2; exit 2; }
model="" build=1 bindir="${CARGO_TARGET_DIR:-target}/release" jetson=auto
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model="${2:?--model needs a file}"; shift ;;
    --jetson) jetson=yes ;;
    --no-jetson) jetson=no ;;
    --bin-dir) bindir="${2:?--bin-dir needs a directory}"; shift ;;
    --no-build) build=0 ;;
    *) usage ;;
  esac
  shift
done
[ "$jetson" != auto ] || { [ -e /etc/nv_tegra_release ] && jetson=yes || jetson=no; }
dest="${DESTDIR:-}"
[ "$build" = 0 ] || cargo build --release --bin tsharpd --bin tsharp
for b in tsharpd tsharp; do
  [ -x "$bindir/$b" ] || { echo "install-service: $bindir/$b is missing (build it, or pass --bin-dir)" >&2; exit 1; }
done
install -d "$dest/usr/bin" "$dest/usr/lib/systemd/system" "$dest/usr/lib/sysusers.d" "$dest/etc/tensorsharp" \
  "$dest/usr/share/tensorsharp/models"
# Stripped where binutils is installed (a minimal image may lack strip).
strip_flag=()
command -v strip >/dev/null 2>&1 && strip_flag=(-s)
install -m 0755 "${strip_flag[@]}" "$bindir/tsharpd" "$bindir/tsharp" "$dest/usr/bin/"
install -m 0644 packaging/systemd/tsharpd.socket packaging/systemd/tsharpd.service "$dest/usr/lib/systemd/system/"
if [ "$jetson" = yes ]; then
  install -d "$dest/usr/lib/systemd/system/tsharpd.service.d"
  install -m 0644 packaging/systemd/tsharpd.service.d/jetson.conf "$dest/usr/lib/systemd/system/tsharpd.service.d/"
fi
install -m 0644 packaging/systemd/tensorsharp.sysusers.conf "$dest/usr/lib/sysusers.d/tensorsharp.conf"
if [ -n "$model" ]; then
  install -m 0644 "$model" "$dest/usr/share/tensorsharp/models/"
  model_path="/usr/share/tensorsharp/models/$(basename "$model")"
else
  model_path="/usr/share/tensorsharp/models/model.gguf"
fi
if [ ! -e "$dest/etc/tensorsharp/tsharpd.toml" ]; then
  sed "s|@MODEL@|$model_path|" packaging/tsharpd.toml >"$dest/etc/tensorsharp/tsharpd.toml"
  chmod 0644 "$dest/etc/tensorsharp/tsharpd.toml"
fi
if [ -z "$dest" ]; then
  # MemoryMax= from the configured plans (tsharpd --check-config: plans + 25 % + 64 MiB); a
  # configuration that does not fit its budget stops the install here, with the reason.
  max="$(/usr/bin/tsharpd --check-config --config /etc/tensorsharp/tsharpd.toml | sed -n 's/^memory_max: //p')"
  install -d /etc/systemd/system/tsharpd.service.d
  printf '# Written by packaging/install-service.sh from tsharpd --check-config; rerun it after\n# changing the models or slots.\n[Service]\nMemoryMax=%s\n' "$max" \
    >/etc/systemd/system/tsharpd.service.d/memory.conf
  systemd-sysusers tensorsharp.conf 2>/dev/null || systemd-sysusers
  systemctl daemon-reload
  systemctl enable --now tsharpd.socket
  echo "tsharpd.socket is listening on /run/tensorsharp/tsharpd.sock; members of the 'tensorsharp'"
  echo "group may connect (usermod -aG tensorsharp USER). Try: tsharp ask --socket /run/tensorsharp/tsharpd.sock \"Hello\""
fi
