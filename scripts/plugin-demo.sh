#!/usr/bin/env bash
# `make plugin-demo`: the first-party recaption
# template picks VILA²'s prompt for each sample, and the quality filter judges a set of
# candidate captions; both run as sandboxed components through `vila2 plugin run`.
set -euo pipefail
cd "$(dirname "$0")/.."
vila2=$1
components=$2

py=.venv/bin/python

echo "== plugins"
for c in recaption quality grounding ocr spatial; do
  "$vila2" plugin inspect "$components/vila2_$c.wasm" | $py scripts/demo_table.py describe
done

echo
echo "== recaption prompts (VILA² final recipe: one of long-v1..v3 per sample, seed 7)"
"$vila2" plugin run "$components/vila2_recaption.wasm" --input samples/prompt-demo.jsonl \
  --config '{"recipe": "vila2"}' | $py scripts/demo_table.py prompts

echo
echo "== quality filter verdicts on samples/filter-demo.jsonl"
"$vila2" plugin run "$components/vila2_quality.wasm" --input samples/filter-demo.jsonl \
  | $py scripts/demo_table.py verdicts
