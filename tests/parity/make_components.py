"""Writes a tiny random LlamaForCausalLM (tied embeddings, tokenizer without `<image>`) and a
tiny random CLIPVisionModel, for the trainer's compose test. Nothing is downloaded.

Usage: make_components.py OUT  ->  OUT/llm, OUT/vision, OUT/image.png
"""

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from PIL import Image
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    CLIPVisionConfig,
    CLIPVisionModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

CORPUS = [
    "USER: What is shown in the image? ASSISTANT: a red circle and a blue square",
    "a photo of a small green triangle on the left of a yellow star",
    "hello world the a an of in on with and to is are",
]


def main():
    out = sys.argv[1]
    torch.manual_seed(0)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )
    llm_cfg = LlamaConfig(
        vocab_size=len(fast), hidden_size=48, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=3,
    )
    llm = LlamaForCausalLM(llm_cfg).eval()
    llm.save_pretrained(os.path.join(out, "llm"))
    fast.save_pretrained(os.path.join(out, "llm"))

    vis_cfg = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
        image_size=32, patch_size=8, projection_dim=32,
    )
    CLIPVisionModel(vis_cfg).eval().save_pretrained(os.path.join(out, "vision"))

    rng = np.random.default_rng(0)
    arr = rng.integers(0, 255, size=(40, 48, 3)).astype(np.uint8)
    Image.fromarray(arr, "RGB").save(os.path.join(out, "image.png"))


if __name__ == "__main__":
    main()
