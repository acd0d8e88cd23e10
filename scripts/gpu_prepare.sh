#!/usr/bin/env bash
# Fills .work/gpu with what scripts/gpu_check.sh needs on a GPU machine (run it here, then
# carry .work/gpu): the stripped release binary, the tiny parity fixture with its goldens,
# the llava-interleave-qwen-0.5b config folder (no weights) and the transformers bench script.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
OUT=.work/gpu
rm -rf "$OUT" && mkdir -p "$OUT"
cargo build -p vila2 --release --bin vila2
cp "$CARGO_TARGET_DIR/release/vila2" "$OUT/vila2"
strip "$OUT/vila2"
.venv/bin/python tests/parity/make_llava.py "$OUT/clip_llama" clip_llama
.venv/bin/python tests/parity/make_bench_model.py "$OUT/interleave" interleave
cp tests/parity/bench_transformers.py "$OUT/"
du -sh "$OUT"
