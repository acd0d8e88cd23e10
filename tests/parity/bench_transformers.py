"""transformers' generate() throughput on a checkpoint folder, in the same shape as
`vila2 bench generate --json`: greedy, a fixed number of new tokens (EOS suppressed with
min_new_tokens), best of N timed runs after one warm-up.

Usage: bench_transformers.py MODEL_DIR IMAGE BATCH_SIZES NEW_TOKENS REPEATS DEVICE
"""

import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from transformers import AutoProcessor, LlavaConfig, LlavaForConditionalGeneration  # noqa: E402

PROMPT = "USER: <image>\nDescribe the image in details. ASSISTANT:"


def main(model_dir, image, batch_sizes, new_tokens, repeats, device):
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    if any(f.endswith(".safetensors") for f in os.listdir(model_dir)):
        model = LlavaForConditionalGeneration.from_pretrained(model_dir, dtype=dtype)
    else:  # a config-only folder (benchmark dimensions): random weights
        torch.manual_seed(0)
        model = LlavaForConditionalGeneration(LlavaConfig.from_pretrained(model_dir)).to(dtype)
    model = model.to(device).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    img = Image.open(image)
    for b in [int(x) for x in batch_sizes.split(",")]:
        inputs = processor(images=[img] * b, text=[PROMPT] * b, return_tensors="pt", padding=True)
        inputs = {k: v.to(device) for k, v in inputs.items()}
        inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
        kw = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                  pad_token_id=processor.tokenizer.pad_token_id)
        with torch.no_grad():
            model.generate(**inputs, **kw)
            best = float("inf")
            for _ in range(repeats):
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                out = model.generate(**inputs, **kw)
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                best = min(best, time.perf_counter() - t0)
        tokens = (out.shape[1] - inputs["input_ids"].shape[1]) * b
        print(json.dumps({"impl": "transformers", "device": device, "dtype": str(dtype), "batch": b,
                          "new_tokens": new_tokens, "seconds": best, "tokens_per_s": tokens / best,
                          "images_per_s": b / best}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
