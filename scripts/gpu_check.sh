#!/usr/bin/env bash
# GPU check of the VLM engine, using only the stripped release binary, model folders made on
# the build machine (scripts/gpu_prepare.sh) and a python with torch (for libtorch's .so
# files and a JSON comparison; no network, no transformers needed).
#
#   1. CUDA vs CPU vs transformers parity on the tiny CLIP+Llama fixture: score log-probs
#      (fp32 and bf16 on CUDA) and greedy ids (fp32 on CUDA) against the goldens.
#   2. bf16 generation throughput at llava-interleave-qwen-0.5b dimensions (seeded random
#      weights), batch 1/16/64, 64 new tokens; plus transformers' generate() on the same
#      dimensions when transformers happens to be importable.
#
# Usage: scripts/gpu_check.sh [DIR]   (DIR defaults to .work/gpu, as gpu_prepare.sh fills it)
# Results: printed, and JSON lines in $OUT (or DIR/results) .
set -euo pipefail
DIR=${1:-.work/gpu}
BIN=$DIR/vila2
FIX=$DIR/clip_llama
BIG=$DIR/interleave
RES=${OUT:-$DIR/results}
PY=${PYTHON:-python3}
mkdir -p "$RES"

TORCH_LIB=$("$PY" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH=$TORCH_LIB:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$RES/gpu.txt"
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())' | tee -a "$RES/gpu.txt"

PROMPT=$'USER: <image>\nWhat is shown in the image? ASSISTANT:'
CONT=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['score']['text'])" "$FIX/expected.json")

echo "== parity: score (CPU f32, CUDA f32, CUDA bf16) and greedy ids (CUDA f32, CUDA bf16)"
for cfg in cpu:f32 cuda:f32 cuda:bf16; do
  dev=${cfg%%:*}; dt=${cfg##*:}
  "$BIN" score --model "$FIX" --image "$FIX/image_a.png" --prompt "$PROMPT" --text "$CONT" \
    --device "$dev" --dtype "$dt" --json > "$RES/score_${dev}_${dt}.json"
done
for dt in f32 bf16; do
  "$BIN" generate --model "$FIX" --image "$FIX/image_a.png" --prompt "$PROMPT" --greedy \
    --max-new-tokens 12 --device cuda --dtype "$dt" --json > "$RES/generate_cuda_${dt}.json"
done
"$PY" - "$FIX/expected.json" "$RES" <<'PYEOF' | tee "$RES/parity.txt"
import json, sys, os
exp = json.load(open(sys.argv[1])); res = sys.argv[2]
want = exp["score"]["token_logprobs"]
ok = True
for name, tol in [("cpu_f32", 1e-4), ("cuda_f32", 2e-3), ("cuda_bf16", 0.25)]:
    got = json.load(open(os.path.join(res, f"score_{name}.json")))["token_logprobs"]
    d = max(abs(a - b) for a, b in zip(got, want))
    print(f"score {name}: max |logprob - transformers| = {d:.2e} (tolerance {tol})")
    ok &= d < tol
gold = exp["batch"]["generated"][0]
gold = gold[: gold.index(2) + 1] if 2 in gold else gold
for dt in ["f32", "bf16"]:
    ids = json.load(open(os.path.join(res, f"generate_cuda_{dt}.json")))["results"][0]["token_ids"]
    same = ids == gold
    print(f"greedy ids cuda {dt}: {'identical to' if same else 'DIFFER from'} transformers ({ids} vs {gold})")
    if dt == "f32":
        ok &= same
print("PARITY", "OK" if ok else "FAILED")
PYEOF

echo "== throughput: llava-interleave-qwen-0.5b dimensions, random weights, bf16, greedy"
"$BIN" bench generate --model "$BIG" --image "$BIG/image_a.png" --random-weights \
  --device cuda --dtype bf16 --batch-sizes 1,16,64 --new-tokens 64 --repeats 3 --json \
  | tee "$RES/bench_vila2.jsonl"
if "$PY" -c 'import transformers' 2>/dev/null; then
  "$PY" "$DIR/bench_transformers.py" "$BIG" "$BIG/image_a.png" 1,16,64 64 3 cuda \
    | tee "$RES/bench_transformers.jsonl"
else
  echo "transformers is not importable here: no transformers baseline on this machine" \
    | tee "$RES/bench_transformers.jsonl"
fi
