"""Can the tiny model's vision tower learn ShapesWorld's shapes at all?

Trains transformers' CLIPVisionModel with a run's `vision_config` from scratch, plus a
linear head on the mean of its layer -2 patch features (what LLaVA feeds the LLM), directly
on the shape of single-object images, and prints train / held-out accuracy per epoch. A
diagnostic for docs/RESULTS.md, not part of the pipeline.

    .venv/bin/python scripts/shape_probe.py MODEL_DIR TRAIN_SHAPES HELDOUT_SHAPES [EPOCHS [OUT_DIR]]

MODEL_DIR: a LLaVA folder of the run (its config.json and preprocessor_config.json: the tower's
size and the image normalisation); *_SHAPES: `vila2 shapes --out` folders (their pretrain split
is used; use two seeds so the held-out images are unseen). With OUT_DIR, MODEL_DIR is copied
there with its vision tower replaced by the trained one: a `[model] init` whose tower has
learnt shapes before round 0, as VILA²'s starts from a pretrained encoder.
"""

import io
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from shapes_split import pngs, read_scenes
from transformers import CLIPVisionConfig, CLIPVisionModel

SHAPES = ["circle", "square", "triangle", "diamond", "cross"]


def load(shapes_dir, mean, std):
    split = Path(shapes_dir) / "pretrain"
    scenes = {
        k: SHAPES.index(s["objects"][0]["shape"])
        for k, s in read_scenes(split).items()
        if len(s["objects"]) == 1
    }
    xs, ys = [], []
    for key, png in pngs(split, scenes):
        im = Image.open(io.BytesIO(png)).convert("RGB")
        xs.append(np.asarray(im, dtype=np.float32) / 255.0)
        ys.append(scenes[key])
    x = torch.tensor(np.stack(xs)).permute(0, 3, 1, 2)
    return (x - mean) / std, torch.tensor(ys)


def main():
    model_dir, train_dir, test_dir = sys.argv[1:4]
    epochs = int(sys.argv[4]) if len(sys.argv) > 4 else 30
    torch.manual_seed(0)
    pp = json.load(open(Path(model_dir) / "preprocessor_config.json"))
    mean = torch.tensor(pp["image_mean"]).view(1, 3, 1, 1)
    std = torch.tensor(pp["image_std"]).view(1, 3, 1, 1)
    xtr, ytr = load(train_dir, mean, std)
    xte, yte = load(test_dir, mean, std)
    majority = np.bincount(yte.numpy()).max() / len(yte)
    print(f"train {len(ytr)} held-out {len(yte)} single-object images; majority {majority:.3f}")
    cfg = json.load(open(Path(model_dir) / "config.json"))["vision_config"]
    known = CLIPVisionConfig().to_dict()
    vc = CLIPVisionConfig(**{k: v for k, v in cfg.items() if k in known})
    tower, head = CLIPVisionModel(vc), torch.nn.Linear(vc.hidden_size, len(SHAPES))
    opt = torch.optim.AdamW([*tower.parameters(), *head.parameters()], lr=1e-3)

    def logits(x):
        h = tower(pixel_values=x, output_hidden_states=True).hidden_states[-2][:, 1:]
        return head(h.mean(1))

    steps = 0
    for epoch in range(epochs):
        for idx in torch.randperm(len(ytr)).split(16):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(logits(xtr[idx]), ytr[idx]).backward()
            opt.step()
            steps += 1
        with torch.no_grad():
            tr = (logits(xtr).argmax(1) == ytr).float().mean().item()
            te = (logits(xte).argmax(1) == yte).float().mean().item()
        print(f"epoch {epoch + 1} steps {steps} train {tr:.3f} held-out {te:.3f}", flush=True)
    if len(sys.argv) > 5:
        out = Path(sys.argv[5])
        shutil.copytree(model_dir, out)
        weights = load_file(out / "model.safetensors")
        for k, v in tower.state_dict().items():
            key = "model.vision_tower." + k.removeprefix("vision_model.")
            assert key in weights and weights[key].shape == v.shape, key
            weights[key] = v.contiguous()
        save_file(weights, out / "model.safetensors", metadata={"format": "pt"})
        print(f"{out}: the model of {model_dir} with the trained vision tower")


if __name__ == "__main__":
    main()
