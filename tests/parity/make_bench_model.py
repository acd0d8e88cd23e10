"""Builds the benchmark checkpoints (fixed seeds, nothing downloaded).

Usage: make_bench_model.py OUT_DIR SIZE
  SIZE=cpu        CLIP (224 px, patch 16, 4 layers, width 256) + Llama (4 layers, width 256,
                  vocab 32000), random weights saved as safetensors (~70 MB), plus tokenizer,
                  processor config and two PNGs.
  SIZE=interleave llava-interleave-qwen-0.5b dimensions (SigLIP-so400m 384 px + Qwen2-0.5B):
                  config, tokenizer and processor only (a few hundred kB); the engine fills in
                  seeded random weights with `vila2 bench generate --random-weights`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch  # noqa: E402
from transformers import (  # noqa: E402
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    Qwen2Config,
    SiglipVisionConfig,
)
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil  # noqa: E402
from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil  # noqa: E402

from make_llava import CHAT_TEMPLATE, make_image, make_tokenizer  # noqa: E402


def main(out, size):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    tok = make_tokenizer(out)
    image_id = tok.convert_tokens_to_ids("<image>")
    if size == "cpu":
        vision = CLIPVisionConfig(hidden_size=256, intermediate_size=1024, num_hidden_layers=4,
                                  num_attention_heads=4, image_size=224, patch_size=16)
        text = LlamaConfig(vocab_size=32000, hidden_size=256, intermediate_size=1024,
                           num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4,
                           bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                           pad_token_id=tok.pad_token_id)
        cfg = LlavaConfig(vision_config=vision, text_config=text, image_token_index=image_id,
                          vision_feature_layer=-2, vision_feature_select_strategy="default")
        improc = CLIPImageProcessorPil(size={"shortest_edge": 224},
                                       crop_size={"height": 224, "width": 224})
        patch, strategy, extra = 16, "default", 1
    elif size == "interleave":
        vision = SiglipVisionConfig(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27,
                                    num_attention_heads=16, image_size=384, patch_size=14)
        text = Qwen2Config(vocab_size=151646, hidden_size=896, intermediate_size=4864,
                           num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                           rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                           tie_word_embeddings=True, bos_token_id=tok.bos_token_id,
                           eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        cfg = LlavaConfig(vision_config=vision, text_config=text, image_token_index=image_id,
                          vision_feature_layer=-1, vision_feature_select_strategy="full",
                          tie_word_embeddings=True)
        improc = SiglipImageProcessorPil(size={"height": 384, "width": 384})
        patch, strategy, extra = 14, "full", 0
    else:
        raise SystemExit(f"unknown size {size}")
    if size == "cpu":
        LlavaForConditionalGeneration(cfg).save_pretrained(out)
    else:
        cfg.save_pretrained(out)
    processor = LlavaProcessor(image_processor=improc, tokenizer=tok, patch_size=patch,
                               vision_feature_select_strategy=strategy,
                               num_additional_image_tokens=extra, image_token="<image>",
                               chat_template=CHAT_TEMPLATE)
    processor.save_pretrained(out)
    tok.save_pretrained(out)
    make_image(os.path.join(out, "image_a.png"), 320, 240, 1)
    make_image(os.path.join(out, "image_b.png"), 200, 300, 2)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
