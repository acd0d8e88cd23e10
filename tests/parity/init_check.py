"""Loads a model made by `vila2 model init` with transformers and prints, as JSON, what the
engine must reproduce: the chat template's rendering of one user turn with an image, its ids
(AutoTokenizer and the processor), the pixel values and the logits (fp32).

Usage: init_check.py MODEL_DIR IMAGE MESSAGE
"""

import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from PIL import Image
from transformers import AutoProcessor, AutoTokenizer, LlavaForConditionalGeneration


def main():
    model_dir, image, message = sys.argv[1:4]
    tok = AutoTokenizer.from_pretrained(model_dir)
    processor = AutoProcessor.from_pretrained(model_dir)
    model = LlavaForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).eval()
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": message}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    conv = [
        {"role": "user", "content": "<image>\n" + message},
        {"role": "assistant", "content": "A red circle."},
    ]
    conv_text = tok.apply_chat_template(conv, tokenize=False)
    with torch.no_grad():
        inputs = processor(images=Image.open(image), text=text, return_tensors="pt")
        logits = model(**inputs).logits[0]
    json.dump(
        {
            "text": text,
            "conversation_text": conv_text,
            "tokenizer_ids": tok(message)["input_ids"],
            "vocab": len(tok),
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
