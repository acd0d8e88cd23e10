"""Trainer benchmark, PyTorch side (see scripts/bench_train.sh).

Usage:
  bench_train_torch.py prepare OUT SAMPLES CAPTION_TOKENS [SIZE]
      Builds the benchmark LLaVA with transformers in OUT/model (SIZE `cpu`, the default:
      CLIP 224 px / patch 16, 4 layers, width 256 + Llama 4 layers, width 256, vocab 32000,
      ~24M parameters; SIZE `interleave`: llava-interleave-qwen-0.5b dimensions, SigLIP 384 px
      + Qwen2-0.5B, ~0.9B parameters, seeded random weights made on the GPU when there is one;
      tests/parity/make_bench_model.py), and OUT/data/000000.tar: SAMPLES PNGs at the tower's
      resolution (no resampling on either side) with captions of exactly CAPTION_TOKENS
      tokens, so every sequence has the same length (BOS + image tokens + "\\n" + caption + EOS).
  bench_train_torch.py train OUT STEPS BATCH THREADS LR [DEVICE [PRECISION]]
      Trains OUT/model on the shard in archive order with the loop a PyTorch user writes:
      LlavaForConditionalGeneration(labels=...) (loss on caption tokens only, as `vila2
      train`), AdamW (betas 0.9/0.999, eps 1e-8, no weight decay; torch's default
      implementation, foreach on CUDA), clip_grad_norm_(1.0), vila2's cosine schedule with 3%
      warmup. DEVICE cpu (default) or cuda; PRECISION fp32 (default) or bf16 (fp32 weights,
      forward under torch.autocast(dtype=torch.bfloat16)). Batches are built once up front on
      the CPU and moved to the device in the step. Prints one JSON line per step: step, loss,
      tokens, secs; then one line with the peak allocated GPU memory on CUDA.
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


def random_interleave(model):
    """Seeded random weights for the config-only `interleave` folder, made on the GPU when
    there is one (0.9B parameters initialise slowly on a CPU), saved as safetensors."""
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    torch.manual_seed(0)
    cfg = LlavaConfig.from_pretrained(model)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(dev):
        m = LlavaForConditionalGeneration(cfg)
    m.save_pretrained(model)


def image_side(model):
    return json.load(open(os.path.join(model, "config.json")))["vision_config"]["image_size"]


def prepare(out, samples, caption_tokens, size="cpu"):
    from PIL import Image
    from tokenizers import Tokenizer

    import make_bench_model

    model = os.path.join(out, "model")
    weights = [f for f in os.listdir(model) if f.endswith(".safetensors")] if os.path.isdir(model) else []
    if not weights:
        make_bench_model.main(model, size)
        if size == "interleave":
            random_interleave(model)
    side = image_side(model)
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
            pixels = rng.integers(0, 256, size=(side, side, 3), dtype=np.uint8)
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
    cfg = json.load(open(os.path.join(model, "config.json")))
    # CLIP's class token is dropped ("default"), SigLIP has none ("full"): a square of patches.
    n_img = (cfg["vision_config"]["image_size"] // cfg["vision_config"]["patch_size"]) ** 2
    tok = Tokenizer.from_file(os.path.join(model, "tokenizer.json"))
    if cfg["vision_config"].get("model_type") == "siglip_vision_model":
        from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

        proc = SiglipImageProcessorPil.from_pretrained(model)
    else:
        from transformers import CLIPImageProcessor

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


def train(out, steps, batch, threads, peak, device="cpu", precision="fp32"):
    from transformers import LlavaForConditionalGeneration

    torch.set_num_threads(threads)
    torch.manual_seed(42)
    dev = torch.device(device)
    model_dir = os.path.join(out, "model")
    model = LlavaForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).to(dev)
    model.train()
    bf16 = precision == "bf16"
    data = batches(out, model_dir, steps, batch)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=peak, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    for step, (ids, labels, pixels) in enumerate(data):
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = lr_at(step, peak, steps)
        ids, labels, pixels = ids.to(dev), labels.to(dev), pixels.to(dev)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, pixel_values=pixels, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        lv = loss.item()
        secs = time.perf_counter() - t0
        print(json.dumps({"step": step + 1, "loss": lv, "tokens": ids.numel(), "secs": secs}), flush=True)
    if dev.type == "cuda":
        print(json.dumps({"peak_allocated_gib": torch.cuda.max_memory_allocated() / 2**30}), flush=True)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "prepare":
        prepare(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), *sys.argv[5:6])
    elif cmd == "train":
        train(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]),
              *sys.argv[7:9])
    else:
        raise SystemExit(__doc__)
