#!/usr/bin/env bash
# CPU generation benchmark: the engine (`vila2 bench generate`) against transformers'
# generate() on the same random checkpoint (CLIP 224/16 + Llama, 4 layers, width 256,
# vocab 32000), batch 1 and 16, 64 new tokens, greedy, in the same run on this machine.
# Prints both and the ratio; results go to docs/BENCHMARKS.md by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
MODEL=.work/bench/cpu
[ -f "$MODEL/model.safetensors" ] || .venv/bin/python tests/parity/make_bench_model.py "$MODEL" cpu
cargo build -p vila2 --release --bin vila2
BATCHES=${BATCHES:-1,16}
"$CARGO_TARGET_DIR/release/vila2" bench generate --model "$MODEL" --image "$MODEL/image_a.png" \
  --device cpu --batch-sizes "$BATCHES" --new-tokens 64 --repeats 3 --json > .work/bench/vila2.jsonl
.venv/bin/python tests/parity/bench_transformers.py "$MODEL" "$MODEL/image_a.png" "$BATCHES" 64 3 cpu \
  > .work/bench/transformers.jsonl
python3 - <<'PYEOF'
import json
v = [json.loads(l) for l in open(".work/bench/vila2.jsonl")]
t = [json.loads(l) for l in open(".work/bench/transformers.jsonl")]
print(f"{'batch':>6} {'vila2 tok/s':>12} {'transformers tok/s':>19} {'ratio':>7}")
for a, b in zip(v, t):
    print(f"{a['batch']:>6} {a['tokens_per_s']:>12.1f} {b['tokens_per_s']:>19.1f} {a['tokens_per_s'] / b['tokens_per_s']:>7.2f}")
PYEOF
