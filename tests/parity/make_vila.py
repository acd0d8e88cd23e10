"""Builds a tiny random checkpoint in VILA1.5's native layout (root config.json + llm/ +
vision_tower/ + mm_projector/) and writes reference outputs computed in plain torch the way
NVlabs/VILA computes them (SigLIP hidden_states[-2], all tokens, the projector below,
`tokenizer_image_token` splicing), to `expected.json`.

Usage: make_vila.py OUT_DIR PROJECTOR
  PROJECTOR: mlp_downsample (VILA1.5 token order), mlp_downsample_2x2_fix (NVILA order),
             mlp_downsample_nvila (type mlp_downsample in an NVILA root config: NVILA order),
             mlp2x_gelu, linear
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from torch import nn  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast  # noqa: E402
from transformers import SiglipVisionConfig, SiglipVisionModel  # noqa: E402
from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil  # noqa: E402

from make_llava import CORPUS, make_image  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402

IMAGE_TOKEN_INDEX = -200


def flat_square(x, fixed):
    """VILA's DownSampleBlock.flat_square; NVILA's 2x2 fix adds the final transpose."""
    n, w, h, c = x.size()
    if w % 2 == 1:
        x = torch.concat([x, torch.zeros((n, 1, h, c), dtype=x.dtype)], dim=1).contiguous()
        n, w, h, c = x.size()
    if h % 2 == 1:
        x = torch.concat([x, torch.zeros((n, w, 1, c), dtype=x.dtype)], dim=2).contiguous()
        n, w, h, c = x.size()
    x = x.view(n, w, int(h / 2), int(c * 2))
    x = x.permute(0, 2, 1, 3).contiguous()
    x = x.view(n, int(h / 2), int(w / 2), int(c * 4))
    if fixed:
        x = x.permute(0, 2, 1, 3).contiguous()
    return x


class Projector(nn.Module):
    def __init__(self, kind, c, d):
        super().__init__()
        self.kind = kind
        if kind.startswith("mlp_downsample"):
            self.layers = nn.Sequential(nn.Identity(), nn.LayerNorm(4 * c), nn.Linear(4 * c, d),
                                        nn.GELU(), nn.Linear(d, d))
        elif kind == "mlp2x_gelu":
            self.layers = nn.Sequential(nn.Linear(c, d), nn.GELU(), nn.Linear(d, d))
        elif kind == "linear":
            self.layers = nn.Linear(c, d)
        else:
            raise SystemExit(f"unknown projector {kind}")

    def forward(self, x):
        if self.kind.startswith("mlp_downsample"):
            n = x.shape[1]
            s = int(n ** 0.5)
            x = x.reshape(x.shape[0], s, s, -1)
            x = flat_square(x, self.kind.endswith("fix"))
            x = x.reshape(x.shape[0], -1, x.shape[-1])
        return self.layers(x)


def make_plain_tokenizer():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", pad_token="<pad>")


def tokenizer_image_token(prompt, tokenizer):
    """NVlabs/VILA llava/mm_utils.py tokenizer_image_token."""
    chunks = [tokenizer(c).input_ids for c in prompt.split("<image>")]
    ids, offset = [], 0
    if chunks and chunks[0] and chunks[0][0] == tokenizer.bos_token_id:
        offset = 1
        ids.append(chunks[0][0])
    sep = [IMAGE_TOKEN_INDEX] * (offset + 1)
    seq = [e for sub in zip(chunks, [sep] * len(chunks)) for e in sub][:-1]
    for x in seq:
        ids.extend(x[offset:])
    return ids


def main(out, kind):
    nvila = kind == "mlp_downsample_nvila"
    if nvila:
        kind = "mlp_downsample"
    torch.manual_seed(99)
    for sub in ["llm", "vision_tower", "mm_projector"]:
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    tok = make_plain_tokenizer()
    vcfg = SiglipVisionConfig(hidden_size=48, intermediate_size=96, num_hidden_layers=3,
                              num_attention_heads=4, image_size=40, patch_size=8)
    tcfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                       bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                       pad_token_id=tok.pad_token_id)
    vt = SiglipVisionModel(vcfg).eval()
    llm = LlamaForCausalLM(tcfg).eval()
    proj = Projector("mlp_downsample_2x2_fix" if nvila else kind, vcfg.hidden_size,
                     tcfg.hidden_size).eval()
    with torch.no_grad():
        for m in (vt, llm, proj):
            for name, p in m.named_parameters():
                if ("norm" in name) and name.endswith("weight"):
                    p.copy_(1.0 + 0.1 * torch.randn_like(p))
                else:
                    p.copy_(torch.randn_like(p) * (0.3 if "embed" in name else 0.12))
    llm.save_pretrained(os.path.join(out, "llm"))
    tok.save_pretrained(os.path.join(out, "llm"))
    vt.save_pretrained(os.path.join(out, "vision_tower"))
    # VILA1.5 checkpoints carry SiglipVisionModel keys with the `vision_model.` prefix.
    vt_file = os.path.join(out, "vision_tower", "model.safetensors")
    sd = {("vision_model." + k if not k.startswith("vision_model.") else k): v.contiguous()
          for k, v in vt.state_dict().items()}
    os.remove(vt_file)
    save_file(sd, vt_file, metadata={"format": "pt"})
    improc = SiglipImageProcessorPil(size={"height": 40, "width": 40})
    improc.save_pretrained(os.path.join(out, "vision_tower"))
    save_file({k: v.contiguous() for k, v in proj.state_dict().items()},
              os.path.join(out, "mm_projector", "model.safetensors"), metadata={"format": "pt"})
    pcfg = {"mm_projector_type": kind, "model_type": "v2l_projector"}
    json.dump(pcfg, open(os.path.join(out, "mm_projector", "config.json"), "w"))
    root = {
        "architectures": ["VILAForCausalLM" if nvila else "LlavaLlamaModel"],
        "model_type": "vila" if nvila else "llava_llama",
        "llm_cfg": json.load(open(os.path.join(out, "llm", "config.json"))),
        "vision_tower_cfg": json.load(open(os.path.join(out, "vision_tower", "config.json"))),
        "mm_projector_cfg": pcfg, "mm_vision_select_layer": -2,
        "mm_vision_select_feature": "cls_patch", "image_aspect_ratio": "resize",
        "hidden_size": tcfg.hidden_size, "mm_hidden_size": vcfg.hidden_size,
    }
    json.dump(root, open(os.path.join(out, "config.json"), "w"), indent=1)

    img = make_image(os.path.join(out, "image_a.png"), 45, 37, 1)
    prompt = "USER: <image>\nWhat is shown in the image? ASSISTANT:"
    with torch.no_grad():
        px = improc(images=Image.open(img), return_tensors="pt")["pixel_values"]
        hs = vt(px, output_hidden_states=True).hidden_states[-2]
        feats = proj(hs)[0]
        ids = tokenizer_image_token(prompt, tok)
        emb = []
        for t in ids:
            if t == IMAGE_TOKEN_INDEX:
                emb.append(feats)
            else:
                emb.append(llm.get_input_embeddings()(torch.tensor([t])))
        emb = torch.cat(emb, 0)[None]
        logits = llm(inputs_embeds=emb).logits[0]
        gen = llm.generate(inputs_embeds=emb, attention_mask=torch.ones(emb.shape[:2], dtype=torch.long),
                           max_new_tokens=10, do_sample=False, eos_token_id=tok.eos_token_id,
                           pad_token_id=tok.pad_token_id)
    expected = {"prompt": prompt, "image": "image_a.png", "vila_ids": ids,
                "n_features": feats.shape[0], "logits": logits.flatten().tolist(),
                "logits_shape": list(logits.shape), "generated": gen[0].tolist()}
    json.dump(expected, open(os.path.join(out, "expected.json"), "w"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
