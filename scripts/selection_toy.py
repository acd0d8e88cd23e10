"""Can the tiny language model learn to pick out the asked object when its image tokens are perfect?

A diagnostic for docs/RESULTS.md, not part of the pipeline. The round-0 models answer position
questions blind to which object is asked (`position_probe.py`). This trains the language model
alone — transformers' Llama with the tiny spec's sizes (2 layers, 128 wide, 4 heads, 2 KV heads,
MLP 256) and a fresh linear "projector" — on image tokens made from ground truth instead of a
vision tower: per 8×8 patch (row-major, as the tower's 64 tokens), whether an object covers its
centre, that object's colour, shape and horizontal and vertical third one-hot, and for
background patches their own thirds (what the tower reads at 96–99 %). After the 64 image
tokens come three word tokens, the asked colour, shape and axis, and the last one predicts
the third (3 classes); with `--question-first` the three words come first and the axis word
again after the image tokens, so that each image token can attend to the words. Training questions come from `position_sft.py`'s rule (all of them, or
`--distinct-thirds`); the score is accuracy on a held-out split's position questions, overall
and where the answer blind to the asked object (`position_probe.py`'s) is wrong.

    .venv/bin/python scripts/selection_toy.py TRAIN_SHAPES TEST_SHAPES [--steps N] [--batch N]
        [--lr X] [--distinct-thirds] [--question-first] [--layers N] [--seed N]
"""

import argparse
import math
import random
import time

import numpy as np
import torch
from position_probe import blind_answer, patch_objects
from position_sft import one_per_third, position_questions
from shapes_split import COLORS, HORIZONTAL, SHAPES, VERTICAL, centre, read_scenes, third
from transformers import LlamaConfig, LlamaModel

GRID = 8
AXES = ["horizontal", "vertical"]
# word tokens: colours, shapes, the two axes
WORDS = COLORS + SHAPES + AXES


def patch_features(scene):
    """[64, 18]: is-object, colour (6), shape (5), horizontal third (3), vertical third (3)."""
    w, h = scene["width"], scene["height"]
    f = np.zeros((GRID * GRID, 18), dtype=np.float32)
    for p, i in enumerate(patch_objects(scene, GRID)):
        if i >= 0:
            o = scene["objects"][i]
            cx, cy = centre(o)
            f[p, 0] = 1
            f[p, 1 + COLORS.index(o["color"])] = 1
            f[p, 7 + SHAPES.index(o["shape"])] = 1
        else:
            r, c = divmod(p, GRID)
            cx, cy = (c + 0.5) * w / GRID, (r + 0.5) * h / GRID
        f[p, 12 + third(cx, w)] = 1
        f[p, 15 + third(cy, h)] = 1
    return f


def questions(scenes, distinct_thirds=False, seed=0):
    """`(key, colour, shape, axis, answer)` per position question, by `position_sft.py`'s rule."""
    rng = random.Random(seed)
    out = []
    for key, scene in scenes.items():
        qs = position_questions(scene)
        if distinct_thirds:
            qs = one_per_third(qs, rng)
        for _, a, axis, o in qs:
            out.append((key, o["color"], o["shape"], axis, (HORIZONTAL, VERTICAL)[axis].index(a)))
    return out


class Toy(torch.nn.Module):
    def __init__(self, layers, question_first=False):
        super().__init__()
        self.question_first = question_first
        cfg = LlamaConfig(
            vocab_size=len(WORDS),
            hidden_size=128,
            intermediate_size=256,
            num_hidden_layers=layers,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=128,
            rms_norm_eps=1e-6,
        )
        self.lm = LlamaModel(cfg)
        self.projector = torch.nn.Sequential(
            torch.nn.Linear(18, 128), torch.nn.GELU(), torch.nn.Linear(128, 128)
        )
        self.head = torch.nn.Linear(128, 3)

    def forward(self, feats, words):
        image, text = self.projector(feats), self.lm.embed_tokens(words)
        if self.question_first:
            x = torch.cat([text, image, text[:, -1:]], dim=1)
        else:
            x = torch.cat([image, text], dim=1)
        return self.head(self.lm(inputs_embeds=x).last_hidden_state[:, -1])


def batch_of(qs, feats):
    f = torch.from_numpy(np.stack([feats[k] for k, *_ in qs]))
    w = torch.tensor([[WORDS.index(c), WORDS.index(s), 11 + a] for _, c, s, a, _ in qs])
    y = torch.tensor([q[4] for q in qs])
    return f, w, y


@torch.no_grad()
def evaluate(model, qs, feats, blind_wrong):
    """Accuracy overall and on the questions flagged in `blind_wrong`."""
    model.eval()
    right, right_bw = 0, 0
    for i in range(0, len(qs), 256):
        f, w, y = batch_of(qs[i : i + 256], feats)
        hits = (model(f, w).argmax(-1) == y).tolist()
        right += sum(hits)
        right_bw += sum(h for h, b in zip(hits, blind_wrong[i : i + 256]) if b)
    model.train()
    n_bw = sum(blind_wrong)
    return 100 * right / len(qs), 100 * right_bw / max(n_bw, 1), n_bw


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("train_shapes", help="a `vila2 shapes --out` folder; its eval split's scenes")
    ap.add_argument("test_shapes", help="another seed's folder, scored on")
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=64, help="questions per step")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--distinct-thirds", action="store_true")
    ap.add_argument("--question-first", action="store_true", help="the words before the image tokens")
    ap.add_argument("--eval-every", type=int, default=500)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    train_scenes = read_scenes(f"{args.train_shapes}/eval")
    test_scenes = read_scenes(f"{args.test_shapes}/eval")
    train_q = questions(train_scenes, args.distinct_thirds, args.seed)
    test_q = questions(test_scenes)
    feats = {k: patch_features(s) for k, s in {**train_scenes, **test_scenes}.items()}
    blind_wrong = [blind_answer(test_scenes[q[0]], AXES[q[3]], q[4]) == 0 for q in test_q]
    print(f"train questions {len(train_q)}, test {len(test_q)}")

    model = Toy(args.layers, args.question_first)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    warmup = max(1, args.steps * 3 // 100)

    def lr_at(step):
        if step < warmup:
            return args.lr * (step + 1) / warmup
        return args.lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (args.steps - warmup)))

    start, losses = time.time(), []
    print("| step | train loss (last 500) | test accuracy | where the blind answer is wrong |")
    print("|---:|---:|---:|---:|")
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        f, w, y = batch_of(rng.sample(train_q, args.batch), feats)
        loss = torch.nn.functional.cross_entropy(model(f, w), y)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            acc, acc_bw, n_bw = evaluate(model, test_q, feats, blind_wrong)
            tail = losses[-500:]
            print(f"| {step + 1} | {sum(tail) / len(tail):.3f} | {acc:.1f} | {acc_bw:.1f} ({n_bw}) |", flush=True)
    print(f"{time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
