"""Trainer benchmark, PyTorch side (see scripts/bench_train.sh).

Usage:
  bench_train_torch.py prepare OUT SAMPLES CAPTION_TOKENS
      Builds the benchmark LLaVA with transformers (CLIP 224 px / patch 16, 4 layers, width 256
      + Llama 4 layers, width 256, vocab 32000: ~24M parameters; tests/parity/make_bench_model.py
      `cpu`) in OUT/model, and OUT/data/000000.tar: SAMPLES 224x224 PNGs (no resampling on
      either side) with captions of exactly CAPTION_TOKENS tokens, so every sequence has the
      same length (BOS + 196 image tokens + "\\n" + caption + EOS).
  bench_train_torch.py train OUT STEPS BATCH THREADS LR
      Trains OUT/model on the shard in archive order with the loop a PyTorch user writes:
      LlavaForConditionalGeneration(labels=...) (loss on caption tokens only, as `vila2
      train`), AdamW (betas 0.9/0.999, eps 1e-8, no weight decay), clip_grad_norm_(1.0),
      vila2's cosine schedule with 3% warmup. Batches are built once up front (no data
      loading in the timed loop). Prints one JSON line per step: step, loss, tokens, secs.
"""

import io
import json
import math
import os
import sys
import tarfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "parity"))
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

WORDS = ("red blue green small large square circle triangle left right above below near far "
         "the a one two three picture shows sits on next to with of and in image").split()


def prepare(out, samples, caption_tokens):
    from PIL import Image
    from tokenizers import Tokenizer

    import make_bench_model

    model = os.path.join(out, "model")
    if not os.path.exists(os.path.join(model, "model.safetensors")):
        make_bench_model.main(model, "cpu")
    tok = Tokenizer.from_file(os.path.join(model, "tokenizer.json"))
    rng = np.random.default_rng(0)
    os.makedirs(os.path.join(out, "data"), exist_ok=True)
    with tarfile.open(os.path.join(out, "data", "000000.tar"), "w") as tar:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        for i in range(samples):
            while True:
                words = []
                while len(tok.encode(" ".join(words), add_special_tokens=False).ids) < caption_tokens:
                    words.append(WORDS[rng.integers(len(WORDS))])
                caption = " ".join(words)
                if len(tok.encode(caption, add_special_tokens=False).ids) == caption_tokens:
                    break
            pixels = rng.integers(0, 256, size=(224, 224, 3), dtype=np.uint8)
            buf = io.BytesIO()
            Image.fromarray(pixels, "RGB").save(buf, format="PNG")
            add(f"{i:06d}.png", buf.getvalue())
            add(f"{i:06d}.txt", caption.encode())


def lr_at(step, peak, total, warmup_ratio=0.03):
    """vila2's CosineSchedule::lr (0-based optimizer step)."""
    warmup = math.ceil(warmup_ratio * total)
    if step < warmup:
        return peak * (step + 1) / warmup
    span = max(total - warmup, 1)
    progress = min((step - warmup) / span, 1.0)
    return peak * 0.5 * (1.0 + math.cos(math.pi * progress))


def batches(out, model, steps, batch):
    """The micro-batches `vila2 train --shuffle-buffer 1` builds, in the same order."""
    from PIL import Image
    from tokenizers import Tokenizer
    from transformers import CLIPImageProcessor

    cfg = json.load(open(os.path.join(model, "config.json")))
    n_img = (cfg["vision_config"]["image_size"] // cfg["vision_config"]["patch_size"]) ** 2
    tok = Tokenizer.from_file(os.path.join(model, "tokenizer.json"))
    proc = CLIPImageProcessor.from_pretrained(model)
    eos = tok.token_to_id("</s>")
    samples = []
    with tarfile.open(os.path.join(out, "data", "000000.tar")) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    keys = sorted({n.split(".")[0] for n in members})
    for k in keys:
        prompt = tok.encode("<image>" * n_img + "\n", add_special_tokens=True).ids
        caption = tok.encode(members[f"{k}.txt"].decode().strip(), add_special_tokens=False).ids + [eos]
        image = Image.open(io.BytesIO(members[f"{k}.png"])).convert("RGB")
        pixels = proc(images=image, return_tensors="pt")["pixel_values"][0]
        samples.append((prompt + caption, [-100] * len(prompt) + caption, pixels))
    out_batches, i = [], 0
    for _ in range(steps):
        chunk = [samples[(i + j) % len(samples)] for j in range(batch)]
        i += batch
        ids = torch.tensor([c[0] for c in chunk])
        labels = torch.tensor([c[1] for c in chunk])
        out_batches.append((ids, labels, torch.stack([c[2] for c in chunk])))
    return out_batches


def train(out, steps, batch, threads, peak):
    from transformers import LlavaForConditionalGeneration

    torch.set_num_threads(threads)
    torch.manual_seed(42)
    model_dir = os.path.join(out, "model")
    model = LlavaForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32)
    model.train()
    data = batches(out, model_dir, steps, batch)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=peak, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    for step, (ids, labels, pixels) in enumerate(data):
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = lr_at(step, peak, steps)
        loss = model(input_ids=ids, pixel_values=pixels, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        lv = loss.item()
        secs = time.perf_counter() - t0
        print(json.dumps({"step": step + 1, "loss": lv, "tokens": ids.numel(), "secs": secs}), flush=True)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "prepare":
        prepare(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "train":
        train(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]))
    else:
        raise SystemExit(__doc__)
