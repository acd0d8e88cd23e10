#!/usr/bin/env bash
# Two `vila2` binaries on the demo's pretrain stage, interleaved: the tiny ShapesWorld model
# (568k parameters, `vila2 model init --tiny`), 2000 alt-text captions, batch 16, every group
# trained, max_len 512, 150 steps, one libtorch thread. Prints tokens/s over steps 11..150 and
# the last loss of each run (the same loss means the same numerics).
#   scripts/bench_train_tiny.sh OLD_BINARY NEW_BINARY [ROUNDS]
set -euo pipefail
OLD=$1 NEW=$2 ROUNDS=${3:-2}
W=${WORK:-/tmp/vila2-bench-tiny}
mkdir -p "$W"
[ -d "$W/shapes" ] || "$NEW" --threads 1 shapes --out "$W/shapes" --seed 1 > /dev/null
[ -d "$W/init" ] || "$NEW" --threads 1 model init --tiny --corpus "$W/shapes/corpus.txt" --out "$W/init" > /dev/null
for r in $(seq 1 "$ROUNDS"); do
  for b in old new; do
    bin=$OLD; [ "$b" = new ] && bin=$NEW
    rm -rf "$W/run-$b"
    OMP_NUM_THREADS=1 "$bin" --threads 1 train --stage pretrain --data "$W/shapes/pretrain" \
      --init "$W/init" --out "$W/run-$b" --steps 150 --batch-size 16 --lr 1e-3 \
      --train-groups vision,projector,llm --max-len 512 --seed 1 > /dev/null
    python3 - "$W/run-$b/metrics.jsonl" "$r" "$b" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])][10:]
secs = sum(x["tokens"] / x["tokens_per_s"] for x in rows)
print(f"round {sys.argv[2]} {sys.argv[3]}: {sum(x['tokens'] for x in rows) / secs:.0f} tok/s, last loss {rows[-1]['loss']:.4f}")
PY
  done
done
