"""Builds a tiny random LLaVA checkpoint (fixed seeds) in one of the key layouts the engine
must read, with a tiny BPE tokenizer containing `<image>`, a processor config and a chat
template, then writes transformers' reference outputs to `expected.json` in the folder.

Usage: make_llava.py OUT_DIR CASE   (CASE: clip_llama, siglip_qwen2, clip_llama_memory)
Nothing is downloaded: every model, tokenizer and image is made here.
"""

import json
import os
import sys

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
    Qwen2Config,
    SiglipVisionConfig,
)
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

CORPUS = [
    "USER: What is shown in the image? ASSISTANT: A red square on a blue background.",
    "Describe the image in details. The picture shows two circles and a triangle.",
    "Elaborate on the visual and narrative elements of the image in detail.",
    "A cat sits on the table next to a vase with flowers, left of a window.",
    "The text in the image reads: open daily from nine to five.",
    "system user assistant hello world the a an of in on with and to is are",
]

CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}USER: "
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<image>\n"
    "{% elif c['type'] == 'text' %}{{ c['text'].strip() }}{% endif %}{% endfor %}{% endif %}"
    " {% else %}ASSISTANT: {{ message['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def make_tokenizer(out):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<unk>", "<s>", "</s>", "<pad>", "<image>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"
    return fast


def make_image(path, w, h, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 / max(w - 1, 1), y * 255 / max(h - 1, 1), (x + y) * 127 / (w + h)], -1)
    noise = rng.integers(0, 60, size=(h, w, 3))
    arr = np.clip(base + noise, 0, 255).astype(np.uint8)
    Image.fromarray(arr, "RGB").save(path)
    return path


def write_weights(model, out, layout, dtype, shards):
    sd = {k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}
    if "lm_head.weight" in sd and model.config.text_config.tie_word_embeddings:
        del sd["lm_head.weight"]

    def rename(k):
        if layout == "memory":
            return k
        if k.startswith("lm_head."):
            return "language_model." + k
        if k.startswith("model.language_model."):
            return "language_model.model." + k[len("model.language_model."):]
        if k.startswith("model.vision_tower."):
            rest = k[len("model.vision_tower."):]
            return "vision_tower." + ("vision_model." + rest if layout == "hub" else rest)
        if k.startswith("model.multi_modal_projector."):
            return k[len("model."):]
        raise KeyError(k)

    sd = {rename(k): v for k, v in sd.items()}
    keys = sorted(sd)
    if shards == 1:
        save_file(sd, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
        return
    per = (len(keys) + shards - 1) // shards
    weight_map = {}
    for i in range(shards):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: sd[k] for k in keys[i * per:(i + 1) * per]}
        save_file(part, os.path.join(out, name), metadata={"format": "pt"})
        weight_map.update({k: name for k in part})
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f, indent=1)


def build(case, out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(1234)
    tok = make_tokenizer(out)
    vocab = len(tok)
    image_id = tok.convert_tokens_to_ids("<image>")
    if case.startswith("clip_llama"):
        vision = CLIPVisionConfig(
            hidden_size=48, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
            image_size=32, patch_size=8, initializer_range=0.1, initializer_factor=3.0,
        )
        text = LlamaConfig(
            vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, initializer_range=0.1,
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id, tie_word_embeddings=False,
        )
        cfg = LlavaConfig(
            vision_config=vision, text_config=text, image_token_index=image_id,
            vision_feature_layer=-2, vision_feature_select_strategy="default",
        )
        improc = CLIPImageProcessorPil(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        )
        extra = 1
        layout, dtype, shards = ("memory", torch.float32, 1) if case.endswith("memory") else ("hub", torch.float32, 1)
        strategy = "default"
        emb_std, w_std = 0.3, 0.12
    elif case == "siglip_qwen2":
        vision = SiglipVisionConfig(
            hidden_size=48, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
            image_size=32, patch_size=8,
        )
        text = Qwen2Config(
            vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, initializer_range=0.1,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id, tie_word_embeddings=True,
        )
        cfg = LlavaConfig(
            vision_config=vision, text_config=text, image_token_index=image_id,
            vision_feature_layer=[-3, -1], vision_feature_select_strategy="full",
            multimodal_projector_bias=False, tie_word_embeddings=True,
        )
        improc = SiglipImageProcessorPil(size={"height": 32, "width": 32})
        extra = 0
        layout, dtype, shards = "v5", torch.bfloat16, 3
        strategy = "full"
        # Larger weights: with the CLIP case's scale this model repeats one token.
        emb_std, w_std = 0.5, 0.2
    else:
        raise SystemExit(f"unknown case {case}")

    model = LlavaForConditionalGeneration(cfg).eval()
    with torch.no_grad():
        # Random weights of a useful scale (the default init gives near-uniform logits).
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif p.dim() >= 1:
                p.copy_(torch.randn_like(p) * (emb_std if "embed" in name else w_std))
        # Round to the on-disk dtype so the reference sees the stored values.
        for p in model.parameters():
            p.copy_(p.to(dtype).to(torch.float32))
    model.save_pretrained(out)  # writes config.json + generation_config.json
    for f in os.listdir(out):
        if f.endswith(".safetensors") or f.endswith(".index.json"):
            os.remove(os.path.join(out, f))
    write_weights(model, out, layout, dtype, shards)

    processor = LlavaProcessor(
        image_processor=improc, tokenizer=tok, patch_size=8,
        vision_feature_select_strategy=strategy, num_additional_image_tokens=extra,
        image_token="<image>", chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(out)
    tok.save_pretrained(out)

    # Reload from disk: proves transformers reads the layout, and gives the reference.
    ref = LlavaForConditionalGeneration.from_pretrained(out, dtype=torch.float32).eval()
    got, want = ref.state_dict(), model.state_dict()
    for k, v in want.items():
        if not torch.equal(got[k], v):
            raise SystemExit(f"transformers did not read {k} back from the {layout} layout")

    img_a = make_image(os.path.join(out, "image_a.png"), 45, 37, 1)
    img_b = make_image(os.path.join(out, "image_b.png"), 30, 52, 2)
    prompt = "USER: <image>\nWhat is shown in the image? ASSISTANT:"
    expected = {"case": case, "prompt": prompt, "image": "image_a.png"}
    with torch.no_grad():
        inputs = processor(images=Image.open(img_a), text=prompt, return_tensors="pt")
        expected["input_ids"] = inputs["input_ids"][0].tolist()
        expected["pixel_values"] = inputs["pixel_values"][0].flatten().tolist()
        expected["pixel_shape"] = list(inputs["pixel_values"].shape[1:])
        logits = ref(**inputs).logits[0]
        expected["logits"] = logits.flatten().tolist()
        expected["logits_shape"] = list(logits.shape)

        # Batched greedy generation with left padding and different prompt lengths.
        prompts = [prompt, "USER: <image>\nDescribe the image. ASSISTANT:"]
        images = [Image.open(img_a), Image.open(img_b)]
        batch = processor(images=images, text=prompts, return_tensors="pt", padding=True)
        gen = ref.generate(**batch, max_new_tokens=12, do_sample=False,
                           eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        n = batch["input_ids"].shape[1]
        expected["batch"] = {
            "prompts": prompts,
            "images": ["image_a.png", "image_b.png"],
            "max_new_tokens": 12,
            "generated": [row[n:].tolist() for row in gen],
        }

        # Scoring: log-probs of a continuation (no special tokens) after the prompt.
        cont = " A red square on a blue background."
        cont_ids = tok(cont, add_special_tokens=False)["input_ids"]
        ids = torch.cat([inputs["input_ids"], torch.tensor([cont_ids])], 1)
        mask = torch.ones_like(ids)
        lg = ref(input_ids=ids, attention_mask=mask, pixel_values=inputs["pixel_values"]).logits[0]
        lp = torch.log_softmax(lg.float(), -1)
        start = inputs["input_ids"].shape[1]
        tlp = [lp[start - 1 + i, t].item() for i, t in enumerate(cont_ids)]
        expected["score"] = {"text": cont, "token_ids": cont_ids, "token_logprobs": tlp,
                             "mean_logprob": sum(tlp) / len(tlp)}
        # Chat template: one user turn with the image, as the processor renders and tokenizes it.
        message = "What is shown in the image?"
        messages = [{"role": "user", "content": [{"type": "image", "path": img_a},
                                                  {"type": "text", "text": message}]}]
        chat_text = processor.apply_chat_template(messages, add_generation_prompt=True)
        chat = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                             return_dict=True, return_tensors="pt")
        expected["chat"] = {"message": message, "text": chat_text,
                            "input_ids": chat["input_ids"][0].tolist()}
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f)


if __name__ == "__main__":
    build(sys.argv[2], sys.argv[1])
