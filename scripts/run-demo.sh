#!/usr/bin/env bash
# The main job on the embedded default, until the portal exists: the first-party recaption
# template picks VILA²'s prompt for each sample, and the quality filter judges a set of
# candidate captions; both run as sandboxed components through `vila2 plugin run`.
set -euo pipefail
cd "$(dirname "$0")/.."
vila2=$1
components=$2

echo "== plugins"
for c in recaption quality grounding ocr spatial; do
  "$vila2" plugin inspect "$components/vila2_$c.wasm" \
    | .venv/bin/python -c 'import json,sys; d=json.load(sys.stdin)["description"]; print(f"  {d[\"name\"]:<12} {d[\"version\"]:<8} {d[\"world\"]:<16} {d[\"description\"][:70]}")'
done

echo
echo "== recaption prompts (VILA² final recipe: one of long-v1..v3 per sample, seed 7)"
"$vila2" plugin run "$components/vila2_recaption.wasm" --input samples/prompt-demo.jsonl \
  --config '{"recipe": "vila2"}' \
  | .venv/bin/python -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    ok = r.get("ok") or {}
    print(f"  {r[\"key\"]:<10} {ok.get(\"variant\", \"error\"):<8} {ok.get(\"text\", r.get(\"error\"))!r:.90}")'

echo
echo "== quality filter verdicts on samples/filter-demo.jsonl"
"$vila2" plugin run "$components/vila2_quality.wasm" --input samples/filter-demo.jsonl \
  | .venv/bin/python -c '
import json, sys
kept = total = 0
for line in sys.stdin:
    r = json.loads(line)
    total += 1
    if "ok" in r:
        v = r["ok"]
        kept += v["keep"]
        mark = "keep" if v["keep"] else "drop"
        print(f"  {r[\"key\"]:<22} {mark}  score {v[\"score\"]:.2f}  {\",\".join(v[\"reasons\"]) or \"-\"}")
    else:
        print(f"  {r[\"key\"]:<22} error {r[\"error\"]}")
print(f"  kept {kept} of {total}")'
