"""Prints transformers' logits of a LLaVA folder as JSON, for the trainer's interop test.

Usage: llava_logits.py MODEL_DIR IMAGE PROMPT
Output: {"input_ids": [...], "pixel_values": [...], "pixel_shape": [...],
         "logits": [...], "logits_shape": [...]} for one prompt with one image (fp32).
"""

import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from PIL import Image
from transformers import AutoProcessor, LlavaForConditionalGeneration


def main():
    model_dir, image, prompt = sys.argv[1:4]
    processor = AutoProcessor.from_pretrained(model_dir)
    model = LlavaForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        inputs = processor(images=Image.open(image), text=prompt, return_tensors="pt")
        logits = model(**inputs).logits[0]
    json.dump(
        {
            "input_ids": inputs["input_ids"][0].tolist(),
            "pixel_values": inputs["pixel_values"][0].flatten().tolist(),
            "pixel_shape": list(inputs["pixel_values"].shape[1:]),
            "logits": logits.flatten().tolist(),
            "logits_shape": list(logits.shape),
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
