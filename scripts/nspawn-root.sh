#!/usr/bin/env bash
# A minimal Debian bookworm root with systemd, for the tests that boot a real systemd in
# systemd-nspawn (tests/systemd_boot.rs; ../shared/notes/systemd-in-a-container.md). Built once
# with debootstrap from the package mirror of this machine's apt sources (about a minute, 240 MB)
# and cached; later runs print its path at once. Needs root (debootstrap, and nspawn later).
#
# Usage: scripts/nspawn-root.sh        prints the root's path
set -euo pipefail
cd "$(dirname "$0")/.."
root="${XDG_CACHE_HOME:-$HOME/.cache}/tensorsharp/nspawn/bookworm"
if [ -f "$root/.tensorsharp-ok" ]; then
  echo "$root"
  exit 0
fi
command -v debootstrap >/dev/null 2>&1 && command -v systemd-nspawn >/dev/null 2>&1 ||
  scripts/apt-install.sh debootstrap systemd-container
mirror="$(grep -rhoE '(URIs:|^deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null |
  grep -oE 'https?://[^ ]+' | grep -v security | head -1 || true)"
mirror="${mirror:-http://deb.debian.org/debian}"
echo "nspawn-root: debootstrap bookworm from $mirror into $root (once, about a minute)" >&2
rm -rf "$root"
mkdir -p "$(dirname "$root")"
debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus bookworm "$root.tmp" "$mirror" >"$root.log" 2>&1 ||
  { tail -20 "$root.log" >&2; exit 1; }
mv "$root.tmp" "$root"
touch "$root/.tensorsharp-ok"
echo "$root"
