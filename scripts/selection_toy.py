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
import io
import math
import random
import time

import numpy as np
import torch
from position_probe import blind_answer, fit_probe, patch_objects
from position_sft import one_per_third, position_questions
from shapes_split import COLORS, HORIZONTAL, SHAPES, VERTICAL, centre, read_scenes, third
from transformers import LlamaConfig, LlamaModel

GRID = 8
AXES = ["horizontal", "vertical"]
TEST = "test/"
# word tokens: colours, shapes, the two axes
WORDS = COLORS + SHAPES + AXES
# `--long-question`: the words of the real prompt (vicuna's system line, the question as
# `questions.rs` asks it, "ASSISTANT:" after the image), one token per word
SYSTEM = (
    "a chat between a curious user and an artificial intelligence assistant . the assistant gives "
    "helpful , detailed , and polite answers to the user's questions . USER :"
).split()
ASK = {
    0: "is the {} {} on the left , in the center or on the right of the image ?",
    1: "is the {} {} at the top , in the middle or at the bottom of the image ?",
}
TAIL = "answer the question using a single word or phrase .".split()
REPLY = "ASSISTANT :".split()
WORDS += sorted({w for s in [SYSTEM, TAIL, REPLY, *(a.split() for a in ASK.values())] for w in s} - {"{}"})


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


@torch.no_grad()
def model_features(model_dir, splits):
    """`{key: [64, D]}`: a LLaVA folder's projector output (what its language model reads) for
    every image of the given splits, as float16."""
    from PIL import Image
    from shapes_split import pngs
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    processor = AutoProcessor.from_pretrained(model_dir)
    model = LlavaForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).eval()
    layer = model.config.vision_feature_layer
    out = {}
    for split, scenes, prefix in splits:
        keys, images = [], []
        raw = {k.removeprefix(prefix) for k in scenes}
        for key, png in list(pngs(split, raw)) + [(None, None)]:
            if key is not None:
                keys.append(prefix + key)
                images.append(Image.open(io.BytesIO(png)).convert("RGB"))
            if len(keys) == 512 or (key is None and keys):
                pixels = processor.image_processor(images, return_tensors="pt")["pixel_values"]
                hs = model.model.vision_tower(pixels, output_hidden_states=True).hidden_states
                f = model.model.multi_modal_projector(hs[layer][:, 1:])
                out.update(zip(keys, f.to(torch.float16).numpy()))
                keys, images = [], []
    return out


def questions(scenes, distinct_thirds=False, seed=0):
    """`(key, colour, shape, axis, answer, object index)` per position question, by
    `position_sft.py`'s rule."""
    rng = random.Random(seed)
    out = []
    for key, scene in scenes.items():
        qs = position_questions(scene)
        if distinct_thirds:
            qs = one_per_third(qs, rng)
        for _, a, axis, o in qs:
            i = next(j for j, x in enumerate(scene["objects"]) if x is o)
            out.append((key, o["color"], o["shape"], axis, (HORIZONTAL, VERTICAL)[axis].index(a), i))
    return out


def text_of(colour, shape, axis, question_first, long_question):
    """Word ids before and after the image tokens."""
    if long_question:
        q = [*ASK[axis].format(colour, shape).split(), *TAIL]
        pre, post = (SYSTEM + q, REPLY) if question_first else (SYSTEM, q + REPLY)
    else:
        q = [colour, shape, AXES[axis]]
        pre, post = (q, q[-1:]) if question_first else ([], q)
    return [WORDS.index(w) for w in pre], [WORDS.index(w) for w in post]


class Toy(torch.nn.Module):
    def __init__(self, layers, vocab, feature_dim=18):
        super().__init__()
        cfg = LlamaConfig(
            vocab_size=vocab,
            hidden_size=128,
            intermediate_size=256,
            num_hidden_layers=layers,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=256,
            rms_norm_eps=1e-6,
        )
        self.lm = LlamaModel(cfg)
        self.projector = torch.nn.Sequential(
            torch.nn.Linear(feature_dim, 128), torch.nn.GELU(), torch.nn.Linear(128, 128)
        )
        self.head = torch.nn.Linear(128, 3)

    def states(self, feats, pre, post):
        """The LM's output for words before, image tokens, words after (all hidden states)."""
        embed = self.lm.embed_tokens
        x = torch.cat([embed(pre), self.projector(feats), embed(post)], dim=1)
        return self.lm(inputs_embeds=x, output_hidden_states=True)

    def forward(self, feats, pre, post):
        return self.head(self.states(feats, pre, post).last_hidden_state[:, -1])


def batch_of(qs, feats, question_first, long_question):
    """Image features, word ids before and after the image, answers. Every question of a
    layout has the same length, so no padding."""
    f = torch.from_numpy(np.stack([feats[k] for k, *_ in qs])).float()
    texts = [text_of(c, s, a, question_first, long_question) for _, c, s, a, *_ in qs]
    pre = torch.tensor([p for p, _ in texts], dtype=torch.long).view(len(qs), -1)
    post = torch.tensor([p for _, p in texts], dtype=torch.long).view(len(qs), -1)
    y = torch.tensor([q[4] for q in qs])
    return f, pre, post, y


@torch.no_grad()
def evaluate(model, qs, feats, blind_wrong, layout):
    """Accuracy overall and on the questions flagged in `blind_wrong`."""
    model.eval()
    right, right_bw = 0, 0
    for i in range(0, len(qs), 256):
        f, pre, post, y = batch_of(qs[i : i + 256], feats, *layout)
        hits = (model(f, pre, post).argmax(-1) == y).tolist()
        right += sum(hits)
        right_bw += sum(h for h, b in zip(hits, blind_wrong[i : i + 256]) if b)
    model.train()
    n_bw = sum(blind_wrong)
    return 100 * right / len(qs), 100 * right_bw / max(n_bw, 1), n_bw


@torch.no_grad()
def marks(model, qs, scenes, feats, layout):
    """Per object patch of each question's image (where another object is there too): the
    image token's states at the input and after each layer, and whether it is the asked object's."""
    model.eval()
    xs, ys = [], []
    for i in range(0, len(qs), 256):
        chunk = qs[i : i + 256]
        f, pre, post, _ = batch_of(chunk, feats, *layout)
        hs = torch.stack(model.states(f, pre, post).hidden_states, 1)
        image = hs[:, :, pre.shape[1] : pre.shape[1] + GRID * GRID]  # [B, layers + 1, 64, D]
        for b, (key, *_, asked) in enumerate(chunk):
            owners = patch_objects(scenes[key], GRID)
            if not any(o >= 0 and o != asked for o in owners):
                continue
            for p, o in enumerate(owners):
                if o >= 0:
                    xs.append(image[b, :, p])
                    ys.append(int(o == asked))
    model.train()
    return torch.stack(xs), torch.tensor(ys)


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
    ap.add_argument(
        "--long-question",
        action="store_true",
        help="the real prompt's words (system line, the question's wording) instead of three",
    )
    ap.add_argument(
        "--features",
        metavar="MODEL_DIR",
        help="image tokens from this LLaVA folder's projector instead of the ground truth",
    )
    ap.add_argument("--eval-every", type=int, default=500)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    train_scenes = read_scenes(f"{args.train_shapes}/eval")
    # both splits name their images eval_000000, ...: the test ones get a prefix, so that
    # features are looked up per split
    test_scenes = {TEST + k: s for k, s in read_scenes(f"{args.test_shapes}/eval").items()}
    train_q = questions(train_scenes, args.distinct_thirds, args.seed)
    test_q = questions(test_scenes)
    if args.features:
        splits = [
            (f"{args.train_shapes}/eval", train_scenes, ""),
            (f"{args.test_shapes}/eval", test_scenes, TEST),
        ]
        feats = model_features(args.features, splits)
    else:
        feats = {k: patch_features(s) for k, s in {**train_scenes, **test_scenes}.items()}
    blind_wrong = [blind_answer(test_scenes[q[0]], AXES[q[3]], q[4]) == 0 for q in test_q]
    print(f"train questions {len(train_q)}, test {len(test_q)}")

    layout = (args.question_first, args.long_question)
    # the short layout's vocabulary as before the long one was added (the same initial weights)
    vocab = len(WORDS) if args.long_question else len(COLORS + SHAPES + AXES)
    model = Toy(args.layers, vocab, next(iter(feats.values())).shape[-1])
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
        f, pre, post, y = batch_of(rng.sample(train_q, args.batch), feats, *layout)
        loss = torch.nn.functional.cross_entropy(model(f, pre, post), y)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            acc, acc_bw, n_bw = evaluate(model, test_q, feats, blind_wrong, layout)
            tail = losses[-500:]
            print(f"| {step + 1} | {sum(tail) / len(tail):.3f} | {acc:.1f} | {acc_bw:.1f} ({n_bw}) |", flush=True)
    print(f"{time.time() - start:.0f} s")
    # does each image token know whether it is the asked object's? (only the words before the
    # image can tell it; image first, its states cannot depend on the question)
    xtr, ytr = marks(model, train_q[:3000], train_scenes, feats, layout)
    xte, yte = marks(model, test_q, test_scenes, feats, layout)
    acc = [fit_probe(xtr[:, i], ytr, xte[:, i], yte, 2) for i in range(xtr.shape[1])]
    print(
        f"image tokens of objects: is it the asked object ({len(yte)} test patches, "
        f"{100 * yte.float().mean():.1f} % are), probe at the input / after each layer: "
        + " / ".join(f"{100 * a:.1f}" for a in acc)
    )


if __name__ == "__main__":
    main()
