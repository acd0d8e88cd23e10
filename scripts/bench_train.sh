#!/usr/bin/env bash
# CPU trainer benchmark: `vila2 train` against the equivalent PyTorch loop
# (scripts/bench_train_torch.py) on the same transformers-built LLaVA (~24M parameters), the
# same batches in the same order (archive order, no shuffle), sequence length, AdamW settings,
# schedule, clipping and thread count, interleaved for ROUNDS rounds. Prints tokens/s of both
# (steps after the first WARMUP of each run), the ratio per round, the step-1 losses, and the
# fraction of vila2's step time spent waiting for data (from its metrics.jsonl).
# Results go to docs/BENCHMARKS.md by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
THREADS=${THREADS:-1}
STEPS=${STEPS:-12}
WARMUP=${WARMUP:-2}
BATCH=${BATCH:-4}
CAPTION_TOKENS=${CAPTION_TOKENS:-56}
ROUNDS=${ROUNDS:-2}
LR=2e-5
OUT=.work/bench/train
export OMP_NUM_THREADS=$THREADS
SAMPLES=$((STEPS * BATCH))
if [ ! -f "$OUT/data/000000.tar" ] || [ "$(cat "$OUT/samples" 2>/dev/null)" != "$SAMPLES $CAPTION_TOKENS" ]; then
  rm -rf "$OUT/data"
  .venv/bin/python scripts/bench_train_torch.py prepare "$OUT" "$SAMPLES" "$CAPTION_TOKENS"
  echo "$SAMPLES $CAPTION_TOKENS" > "$OUT/samples"
fi
[ -n "${NO_BUILD:-}" ] || nice -n 10 cargo build --release --bin vila2
VILA2="$CARGO_TARGET_DIR/release/vila2"
for r in $(seq 1 "$ROUNDS"); do
  rm -rf "$OUT/run-vila2"
  "$VILA2" --threads "$THREADS" train --stage sft --data "$OUT/data" --init "$OUT/model" \
    --out "$OUT/run-vila2" --steps "$STEPS" --batch-size "$BATCH" --lr "$LR" \
    --shuffle-buffer 1 --max-len 1024 > "$OUT/vila2-summary-$r.json"
  cp "$OUT/run-vila2/metrics.jsonl" "$OUT/vila2-$r.jsonl"
  .venv/bin/python scripts/bench_train_torch.py train "$OUT" "$STEPS" "$BATCH" "$THREADS" "$LR" \
    > "$OUT/torch-$r.jsonl"
done
OUT=$OUT ROUNDS=$ROUNDS WARMUP=$WARMUP THREADS=$THREADS python3 - <<'PYEOF'
import json, os
out, rounds, warm = os.environ["OUT"], int(os.environ["ROUNDS"]), int(os.environ["WARMUP"])
def rows(p):
    return [json.loads(l) for l in open(p)]
print(f"threads {os.environ['THREADS']}, tokens/s over steps {warm + 1}..end of each run")
print(f"{'round':>5} {'vila2 tok/s':>12} {'pytorch tok/s':>14} {'ratio':>6} {'vila2 data wait':>16} {'step-1 loss vila2/pytorch':>26}")
for r in range(1, rounds + 1):
    v, t = rows(f"{out}/vila2-{r}.jsonl"), rows(f"{out}/torch-{r}.jsonl")
    vs = v[warm:]
    v_secs = sum(x["tokens"] / x["tokens_per_s"] for x in vs)
    v_rate = sum(x["tokens"] for x in vs) / v_secs
    wait = sum(x["data_wait_s"] for x in vs) / v_secs
    ts = t[warm:]
    t_rate = sum(x["tokens"] for x in ts) / sum(x["secs"] for x in ts)
    print(f"{r:>5} {v_rate:>12.1f} {t_rate:>14.1f} {v_rate / t_rate:>6.2f} {100 * wait:>15.2f}% "
          f"{v[0]['loss']:>12.4f} / {t[0]['loss']:.4f}")
PYEOF
