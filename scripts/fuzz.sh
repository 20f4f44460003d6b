#!/usr/bin/env bash
# Runs the cargo-fuzz targets (fuzz/README.md): installs a nightly toolchain and cargo-fuzz when
# missing, seeds an empty corpus, then fuzzes each target for SECONDS (default 60) and prints
# libFuzzer's execution count per target.
#
#   scripts/fuzz.sh                   every target, 60 s each (CI)
#   scripts/fuzz.sh TARGET [SECONDS]  one target
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(gguf_reader tokenizer stream_decoder)
secs=60
if [ $# -ge 1 ]; then targets=("$1"); fi
if [ $# -ge 2 ]; then secs="$2"; fi

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
scripts/fetch-models.sh --quiet smollm2-q4_1 >/dev/null # the tokenizer target's model
[ -n "$(ls fuzz/corpus/tokenizer 2>/dev/null)" ] || python3 fuzz/make_seeds.py

# Longest input per target: GGUF headers need a few KiB; tokenizer inputs are texts.
max_len() { case "$1" in tokenizer) echo 512 ;; *) echo 4096 ;; esac; }
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  log="$(mktemp)"
  # The corpus directory collects new inputs. No sanitizer: the targets are safe Rust over the
  # readers (panics, overflow checks and the 2 GiB RSS limit catch what matters), and
  # AddressSanitizer makes the C kernels that the runtime links take ~15 minutes to build.
  if ! cargo +nightly fuzz run --sanitizer none --fuzz-dir fuzz "$t" "fuzz/corpus/$t" -- \
      -max_total_time="$secs" -max_len="$(max_len "$t")" -rss_limit_mb=2048 >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz: $t FAILED (input in fuzz/artifacts/$t/)" >&2
    exit 1
  fi
  echo "fuzz: $t: $(grep -E '^Done [0-9]+ runs' "$log" | tail -1)"
  rm -f "$log"
done
