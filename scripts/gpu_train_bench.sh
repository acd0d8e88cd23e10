#!/usr/bin/env bash
# GPU trainer benchmark: `vila2 train` against the PyTorch loop a user writes
# (scripts/bench_train_torch.py) at llava-interleave-qwen-0.5b dimensions (SigLIP-so400m 384 px
# + Qwen2-0.5B, ~0.9B parameters, seeded random weights made by transformers on the GPU), all
# parameters trained (`--stage sft`), bf16 autocast with fp32 weights and AdamW state on both
# sides, same batches in the same order, interleaved for ROUNDS rounds. Prints tokens/s,
# the ratio, vila2's data-wait fraction, MFU (model FLOPs, see below) and peak GPU memory.
#
# Usage (on the GPU machine, after scripts/gpu_prepare.sh + gpu_device_pack.sh here):
#   scripts/gpu_train_bench.sh DIR     (DIR holds the stripped `vila2`; default .work/dev)
# Needs a python with torch and transformers (PYTHON, PYTHONPATH); results in $OUT.
set -euo pipefail
DIR=${1:-.work/dev}
BIN=$DIR/vila2
PY=${PYTHON:-python3}
RES=${OUT:-$DIR/results}
W=${WORK:-/tmp/vila2-trainbench}
STEPS=${STEPS:-20}
BATCH=${BATCH:-8}
WARMUP=${WARMUP:-3}
ROUNDS=${ROUNDS:-2}
CAPTION_TOKENS=${CAPTION_TOKENS:-56}
LR=2e-5
mkdir -p "$RES" "$W"
TORCH_LIB=$("$PY" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH=$TORCH_LIB:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$RES/train_gpu.txt"

t0=$(date +%s)
"$PY" scripts/bench_train_torch.py prepare "$W" $((STEPS * BATCH)) "$CAPTION_TOKENS" interleave
echo "prepared model and data in $(($(date +%s) - t0)) s"

# GPU memory in use, sampled every 200 ms, per run.
sample_mem() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$1" & echo $!; }
for r in $(seq 1 "$ROUNDS"); do
  rm -rf "$W/run-vila2"
  m=$(sample_mem "$RES/mem-vila2-$r.txt")
  t0=$(date +%s)
  "$BIN" train --stage sft --data "$W/data" --init "$W/model" --out "$W/run-vila2" \
    --steps "$STEPS" --batch-size "$BATCH" --lr "$LR" --shuffle-buffer 1 --max-len 1024 \
    --device cuda --precision bf16 > "$RES/vila2-summary-$r.json"
  kill "$m"
  echo "vila2 round $r: $(($(date +%s) - t0)) s wall (load + steps + save)"
  cp "$W/run-vila2/metrics.jsonl" "$RES/vila2-$r.jsonl"
  m=$(sample_mem "$RES/mem-torch-$r.txt")
  t0=$(date +%s)
  "$PY" scripts/bench_train_torch.py train "$W" "$STEPS" "$BATCH" 8 "$LR" cuda bf16 > "$RES/torch-$r.jsonl"
  kill "$m"
  echo "pytorch round $r: $(($(date +%s) - t0)) s wall (load + batches + steps)"
done

# The obvious alternative for the data path: one decoding thread (the loader before workers).
if [ "${COMPARE_WORKERS:-1}" = 1 ]; then
rm -rf "$W/run-vila2"
m=$(sample_mem "$RES/mem-vila2-w1.txt")
"$BIN" train --stage sft --data "$W/data" --init "$W/model" --out "$W/run-vila2" \
  --steps "$STEPS" --batch-size "$BATCH" --lr "$LR" --shuffle-buffer 1 --max-len 1024 \
  --device cuda --precision bf16 --loader-workers 1 > "$RES/vila2-summary-w1.json"
kill "$m"
cp "$W/run-vila2/metrics.jsonl" "$RES/vila2-w1.jsonl"
fi

W=$W RES=$RES ROUNDS=$ROUNDS WARMUP=$WARMUP BATCH=$BATCH "$PY" - <<'PYEOF' | tee "$RES/train_summary.txt"
import json, os
w, res = os.environ["W"], os.environ["RES"]
rounds, warm, batch = int(os.environ["ROUNDS"]), int(os.environ["WARMUP"]), int(os.environ["BATCH"])
cfg = json.load(open(os.path.join(w, "model", "config.json")))
v, t = cfg["vision_config"], cfg["text_config"]

def rows(p):
    return [json.loads(l) for l in open(p) if '"step"' in l]

# Model FLOPs of one sample, forward + backward = 3 x forward, every parameter trained.
# Matmuls 2·tokens·params; attention 4·T²·d per layer (QKᵀ and AV), half of it for the causal
# LLM; the output head only on the label positions (what the loss needs).
patches = (v["image_size"] // v["patch_size"]) ** 2
seq = rows(os.path.join(res, "torch-1.jsonl"))[0]["tokens"] // batch
labels = seq - patches - 2  # BOS, "\n" carry no label; caption + EOS do
dv, dt = v["hidden_size"], t["hidden_size"]
hd = dt // t["num_attention_heads"]
vision = v["num_hidden_layers"] * (2 * patches * (4 * dv * dv + 2 * dv * v["intermediate_size"])
                                  + 4 * patches * patches * dv) + 2 * patches * 3 * v["patch_size"] ** 2 * dv
projector = 2 * patches * (dv * dt + dt * dt)
per_layer = 2 * dt * dt + 2 * dt * t["num_key_value_heads"] * hd + 3 * dt * t["intermediate_size"]
llm = t["num_hidden_layers"] * (2 * seq * per_layer + 2 * seq * seq * dt)
head = 2 * labels * dt * t["vocab_size"]
flops_sample = 3 * (vision + projector + llm + head)
name = open(os.path.join(res, "train_gpu.txt")).read()
peak = 989.4e12 if ("H100" in name or "H200" in name) and "PCIe" not in name else 756e12 if "H100" in name else None

def mem(p):
    vals = [int(x) for x in open(p).read().split() if x.strip().isdigit()]
    return max(vals) / 1024 if vals else float("nan")

print(f"sequence {seq} tokens ({patches} image, {labels} with a label), batch {batch}, "
      f"{flops_sample / 1e12:.2f} TFLOP per sample; steps {warm + 1}..end of each run")
print(f"{'round':>5} {'vila2 tok/s':>12} {'pytorch tok/s':>14} {'ratio':>6} {'vila2 MFU':>10} "
      f"{'pytorch MFU':>12} {'vila2 data wait':>16} {'GPU mem GiB vila2/pytorch':>26} {'step-1 loss vila2/pytorch':>26}")
for r in range(1, rounds + 1):
    vr, tr = rows(os.path.join(res, f"vila2-{r}.jsonl")), rows(os.path.join(res, f"torch-{r}.jsonl"))
    vs, ts = vr[warm:], tr[warm:]
    v_secs = sum(x["tokens"] / x["tokens_per_s"] for x in vs)
    v_rate = sum(x["tokens"] for x in vs) / v_secs
    wait = sum(x["data_wait_s"] for x in vs) / v_secs
    t_secs = sum(x["secs"] for x in ts)
    t_rate = sum(x["tokens"] for x in ts) / t_secs
    mfu = lambda n, secs: n * batch * flops_sample / secs / peak if peak else float("nan")
    print(f"{r:>5} {v_rate:>12.0f} {t_rate:>14.0f} {v_rate / t_rate:>6.2f} {100 * mfu(len(vs), v_secs):>9.1f}% "
          f"{100 * mfu(len(ts), t_secs):>11.1f}% {100 * wait:>15.2f}% "
          f"{mem(os.path.join(res, f'mem-vila2-{r}.txt')):>12.1f} / {mem(os.path.join(res, f'mem-torch-{r}.txt')):<11.1f} "
          f"{vr[0]['loss']:>12.4f} / {tr[0]['loss']:.4f}")
if os.path.exists(os.path.join(res, "vila2-w1.jsonl")):
    w1 = rows(os.path.join(res, "vila2-w1.jsonl"))[warm:]
    secs = sum(x["tokens"] / x["tokens_per_s"] for x in w1)
    print(f"vila2 with one loader thread: {sum(x['tokens'] for x in w1) / secs:.0f} tok/s, "
          f"data wait {100 * sum(x['data_wait_s'] for x in w1) / secs:.2f}% of step time")
print(f"peak bf16 dense FLOP/s taken as {peak:.4g} for {name.strip()}" if peak else "unknown GPU: no MFU")
PYEOF
