#!/usr/bin/env bash
# Length-grouped batching against batches in drawn order, interleaved in the same run: by
# default the demo's SFT stage (ShapesWorld seed 1, 1200 conversations, batch 16, max_len 512,
# one libtorch thread) from a tiny init, STEPS steps each; DATA=shards STAGE=pretrain times
# another set (e.g. a demo run's specialists/data, the specialist-augmented captions).
# Prints seconds per step (steps 3..), the mean padding fraction and the last loss of each
# run, then the ratio.
#   [DATA=dir STAGE=stage] scripts/bench_length_group.sh BINARY [ROUNDS] [STEPS] [GROUP]
set -euo pipefail
BIN=$1 ROUNDS=${2:-2} STEPS=${3:-48} GROUP=${4:-16}
W=${WORK:-/tmp/vila2-bench-length-group}
mkdir -p "$W"
[ -d "$W/shapes" ] || "$BIN" --threads 1 shapes --out "$W/shapes" --seed 1 --sft 1200 --sft-questions 6 > /dev/null
[ -d "$W/init" ] || "$BIN" --threads 1 model init --tiny --corpus "$W/shapes/corpus.txt" --out "$W/init" > /dev/null
DATA=${DATA:-$W/shapes/sft} STAGE=${STAGE:-sft}
for r in $(seq 1 "$ROUNDS"); do
  for g in 1 "$GROUP"; do
    rm -rf "$W/run-$g"
    OMP_NUM_THREADS=1 "$BIN" --threads 1 train --stage "$STAGE" --data "$DATA" \
      --init "$W/init" --out "$W/run-$g" --steps "$STEPS" --batch-size 16 --lr 1e-3 \
      --max-len 512 --seed 1 --length-group "$g" > /dev/null
  done
  python3 - "$W/run-1/metrics.jsonl" "$W/run-$GROUP/metrics.jsonl" "$r" "$GROUP" <<'PY'
import json, sys
def stats(path):
    rows = [json.loads(l) for l in open(path)][2:]
    secs = sum(x["tokens"] / x["tokens_per_s"] for x in rows) / len(rows)
    pad = sum(x["pad_fraction"] for x in rows) / len(rows)
    return secs, pad, rows[-1]["loss"]
(s1, p1, l1), (sg, pg, lg) = stats(sys.argv[1]), stats(sys.argv[2])
r, g = sys.argv[3], sys.argv[4]
print(f"round {r} drawn order: {s1:.3f} s/step, padding {p1:.1%}, last loss {l1:.4f}")
print(f"round {r} group {g}:    {sg:.3f} s/step, padding {pg:.1%}, last loss {lg:.4f}")
print(f"round {r} ratio: grouped step time {sg / s1:.2f}x drawn order's")
PY
done
