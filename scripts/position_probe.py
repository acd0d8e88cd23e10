"""Where does an object's position get lost between the vision tower and the answer?

Loads a run's LLaVA folder with transformers and, on ShapesWorld's held-out VQA questions,
fits linear probes (multinomial logistic regression) that read, from each stage of the model:

- image tokens (patches an object covers): the object's horizontal / vertical third, from the
  tower's features, the projector's output and every language-model layer;
- the last prompt token of position questions ("Is the red circle on the left, ..."): the
  answer, from every language-model layer; colour questions as a control;

and measures, per layer and head of the last token's attention: its share on the image and on
the asked object's patches, the asked object's part of the attention on all object patches
against the part a head blind to the question would give it, and probes on what the head
gathers from the image (the attention-weighted mean of the image tokens entering its layer,
with and without the background patches); plus the model's own forced-choice accuracy
(next-token logits of the answers), against the best answer blind to which object is asked
(the third most of the scene's objects are in) and on the questions where that answer is wrong.
A diagnostic for docs/RESULTS.md, not part of the pipeline.

    .venv/bin/python scripts/position_probe.py MODEL_DIR TRAIN_SHAPES TEST_SHAPES [--question-first] [--colour-names]

*_SHAPES: `vila2 shapes --out` folders; their `eval` split (images, scenes.jsonl, vqa.jsonl) is
read. Fit the probes on one seed with a large eval split (`vila2 shapes --seed 101 --eval 2000
--out probe-train`) and score them on another (the run's own, or `--seed 102 --eval 1000`).
`--question-first` asks "question\n<image>" instead of the engine's image-first prompt, for a
model whose SFT conversations put the image after the first question. `--colour-names` asks
the position questions about objects whose colour is unique in their scene as "the red object"
(the others are left out), for a model trained on `scripts/position_sft.py --colour-names`.
"""

import io
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from PIL import Image
from shapes_split import (
    COLORS, HORIZONTAL, SHAPES, VERTICAL, centre, colour_is_unique, pngs, read_scenes, third
)
from transformers import AutoProcessor, LlavaForConditionalGeneration

# the answers each kind of question is scored on, in class order
OPTIONS = {"horizontal": HORIZONTAL, "vertical": VERTICAL, "colour": COLORS}


def read_split(shapes_dir):
    split = Path(shapes_dir) / "eval"
    scenes = read_scenes(split)
    images = {k: Image.open(io.BytesIO(png)).convert("RGB") for k, png in pngs(split, scenes)}
    vqa = [json.loads(line) for line in open(split / "vqa.jsonl")]
    return scenes, images, [q for q in vqa if q["key"] in images]


def patch_objects(scene, grid):
    """Per patch (row-major): the index of the one object whose box holds its centre, or -1."""
    w, h = scene["width"], scene["height"]
    out = []
    for r in range(grid):
        for c in range(grid):
            px, py = (c + 0.5) * w / grid, (r + 0.5) * h / grid
            hits = [
                i
                for i, o in enumerate(scene["objects"])
                if o["bbox"]["x0"] <= px < o["bbox"]["x1"] and o["bbox"]["y0"] <= py < o["bbox"]["y1"]
            ]
            out.append(hits[0] if len(hits) == 1 else -1)
    return out


def blind_answer(scene, axis, y):
    """How often an answer blind to which object is asked is right: it names the third most of
    the scene's objects are in (ties split evenly), so it is right where the asked object's
    third `y` is among those."""
    i, side = (0, scene["width"]) if axis == "horizontal" else (1, scene["height"])
    ts = [third(centre(o)[i], side) for o in scene["objects"]]
    counts = np.bincount(ts, minlength=3)
    modes = np.flatnonzero(counts == counts.max())
    return float(y in modes) / len(modes)


def asked_object(scene, question):
    """The index of the object a question names ("the red circle"), or None if not unique."""
    hits = [
        i
        for i, o in enumerate(scene["objects"])
        if f"the {o['color']} {o['shape']} " in question or f"the {o['color']} {o['shape']}?" in question
    ]
    return hits[0] if len(hits) == 1 else None


class Runner:
    def __init__(self, model_dir, question_first=False):
        self.question_first = question_first
        self.processor = AutoProcessor.from_pretrained(model_dir)
        self.processor.tokenizer.padding_side = "left"
        self.model = LlavaForConditionalGeneration.from_pretrained(
            model_dir, dtype=torch.float32, attn_implementation="eager"
        ).eval()
        cfg = self.model.config
        self.image_token = getattr(cfg, "image_token_id", getattr(cfg, "image_token_index", None))
        vc = cfg.vision_config
        self.grid = vc.image_size // vc.patch_size
        self.layer = cfg.vision_feature_layer

    def prompt(self, question):
        if self.question_first:
            # as in SFT conversations whose first turn is "question\n<image>"
            msg = [{"role": "user", "content": f"{question}\n<image>"}]
            return self.processor.apply_chat_template(msg, add_generation_prompt=True)
        msg = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        return self.processor.apply_chat_template(msg, add_generation_prompt=True)

    def answer_ids(self, words):
        """The first token of each answer word: the template ends the prompt with "ASSISTANT:",
        and answers start with a space."""
        tok = self.processor.tokenizer
        return [tok.encode(" " + w, add_special_tokens=False)[0] for w in words]

    @torch.no_grad()
    def last_logits(self, images, questions):
        """Next-token logits after each prompt, without the hidden states and attention of `run`."""
        texts = [self.prompt(q) for q in questions]
        inputs = self.processor(images=images, text=texts, return_tensors="pt", padding=True)
        return self.model(**inputs).logits[:, -1]

    @torch.no_grad()
    def run(self, images, questions, tower=False):
        """LM hidden states at image tokens (the first = the projector's output), LM hidden
        states and attention at the last token, next-token logits; with `tower`, the tower's
        features first (an extra tower pass)."""
        texts = [self.prompt(q) for q in questions]
        inputs = self.processor(images=images, text=texts, return_tensors="pt", padding=True)
        m = self.model
        feats = None
        if tower:
            t = m.model.vision_tower(inputs["pixel_values"], output_hidden_states=True)
            feats = t.hidden_states[self.layer][:, 1:]
        out = m(**inputs, output_hidden_states=True, output_attentions=True)
        img = inputs["input_ids"] == self.image_token
        pos = img.nonzero()[:, 1].view(len(texts), -1)
        hs = [torch.stack([h[b, pos[b]] for b in range(len(texts))]) for h in out.hidden_states]
        last = [h[:, -1] for h in out.hidden_states]
        # attention of the last token over the image tokens: [layers][B, heads, patches]
        att = [torch.stack([a[b, :, -1, pos[b]] for b in range(len(texts))]) for a in out.attentions]
        return feats, hs, last, att, out.logits[:, -1]


def fit_probe(xtr, ytr, xte, yte, classes, steps=400, wd=1e-3):
    torch.manual_seed(0)
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    lin = torch.nn.Linear(xtr.shape[1], classes)
    opt = torch.optim.Adam(lin.parameters(), lr=0.05, weight_decay=wd)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(lin(xtr), ytr).backward()
        opt.step()
    with torch.no_grad():
        return (lin(xte).argmax(1) == yte).float().mean().item()


def collect(runner, shapes_dir, colour_names=False, batch=32):
    scenes, images, vqa = read_split(shapes_dir)
    grid = runner.grid
    rows = {"patch": [], "pos": [], "col": [], "bg": [], "bg_col": [], "bg_row": []}
    keys = sorted(images)
    owners = {k: patch_objects(scenes[k], grid) for k in keys}
    # image tokens: one pass per image with a fixed question (causal: image states don't see it)
    for i in range(0, len(keys), batch):
        ks = keys[i : i + batch]
        feats, hs, _, _, _ = runner.run(
            [images[k] for k in ks], ["What is in the image?"] * len(ks), tower=True
        )
        for b, k in enumerate(ks):
            s = scenes[k]
            for p, o in enumerate(owners[k]):
                if o < 0:
                    # background: the third the patch itself is in
                    rows["bg"].append([feats[b, p]] + [h[b, p] for h in hs])
                    rows["bg_col"].append(third(p % grid + 0.5, grid))
                    rows["bg_row"].append(third(p // grid + 0.5, grid))
                    continue
                cx, cy = centre(s["objects"][o])
                rows["patch"].append([feats[b, p]] + [h[b, p] for h in hs])
                rows["col"].append(third(cx, s["width"]))
                rows["pos"].append(third(cy, s["height"]))
    qs = {"horizontal": [], "vertical": [], "colour": []}
    for q in vqa:
        s = scenes[q["key"]]
        o = asked_object(s, q["question"])
        if q["kind"] == "position" and o is not None and colour_names:
            # "the red object" instead of "the red circle", where no other object is red
            ob = s["objects"][o]
            if not colour_is_unique(s, ob):
                continue
            named = f"the {ob['color']} {ob['shape']}"
            q = dict(q, question=q["question"].replace(named, f"the {ob['color']} object"))
        if q["kind"] == "position" and o is not None:
            axis = "horizontal" if "left" in q["question"] else "vertical"
            qs[axis].append((q, o, OPTIONS[axis].index(q["answer"])))
        elif q["kind"] == "colour" and q["answer"] in COLORS:
            qs["colour"].append((q, None, COLORS.index(q["answer"])))
    asked = {}
    for name, items in qs.items():
        # per question: "last", "y", "forced"; per question about an object with patches
        # ("kept" holds its index in "last"): the attention figures and pooled states
        res = {
            k: []
            for k in "last y forced blind kept lift share image rival mix fg own name mark mark_y".split()
        }
        opt_ids = runner.answer_ids(OPTIONS[name])
        for i in range(0, len(items), batch):
            chunk = items[i : i + batch]
            _, hs, last, att, logits = runner.run(
                [images[q["key"]] for q, _, _ in chunk], [q["question"] for q, _, _ in chunk]
            )
            for b, (q, o, y) in enumerate(chunk):
                res["last"].append(torch.stack([h[b] for h in last]))
                res["y"].append(y)
                res["forced"].append(int(logits[b, opt_ids].argmax().item() == y))
                if o is not None:
                    res["blind"].append(blind_answer(scenes[q["key"]], name, y))
                    owner = torch.tensor(owners[q["key"]])
                    mine = owner == o
                    others = (owner >= 0) & (owner != o)
                    if mine.any():
                        # [layers, heads]: mean attention per asked patch / per image patch
                        res["kept"].append(len(res["last"]) - 1)
                        a = torch.stack([x[b] for x in att])
                        res["lift"].append(a[:, :, mine].mean(-1) / a.mean(-1).clamp_min(1e-12))
                        res["share"].append(a[:, :, mine].sum(-1))
                        res["image"].append(a.sum(-1))
                        if others.any():
                            # of the attention on object patches, the asked object's part,
                            # and the part its patches would get with no preference
                            on = a[:, :, mine].sum(-1) / a[:, :, mine | others].sum(-1).clamp_min(1e-12)
                            fair = mine.sum() / (mine | others).sum()
                            res["rival"].append(torch.stack([on, fair.expand_as(on)]))
                        # what each head gathers from the image: the attention-weighted mean of
                        # the image tokens' states entering its layer [layers, heads, D]
                        w = a / a.sum(-1, keepdim=True).clamp_min(1e-12)
                        res["mix"].append(
                            torch.stack([w[layer] @ hs[layer][b] for layer in range(len(att))])
                        )
                        # the same with the background patches left out (weights over objects)
                        fg = a * (owner >= 0)
                        fg = fg / fg.sum(-1, keepdim=True).clamp_min(1e-12)
                        res["fg"].append(
                            torch.stack([fg[layer] @ hs[layer][b] for layer in range(len(att))])
                        )
                        # and the asked object's own patches, pooled, at the LM input
                        res["own"].append(hs[0][b, mine].mean(0))
                        # which object the question names, as colour × shape
                        ob = scenes[q["key"]]["objects"][o]
                        named = COLORS.index(ob["color"]) * len(SHAPES) + SHAPES.index(ob["shape"])
                        res["name"].append(named)
                    if runner.question_first and others.any():
                        # question first, each image token has seen the question: per object
                        # patch, its states [layers + 1, D] and whether it is the asked object's
                        for p in (mine | others).nonzero()[:, 0].tolist():
                            res["mark"].append(torch.stack([h[b, p] for h in hs]))
                            res["mark_y"].append(int(mine[p]))
        asked[name] = res
    return rows, asked


def stack_stage(rows, i, which="patch"):
    return torch.stack([r[i] for r in rows[which]])


def main():
    model_dir, train_dir, test_dir = sys.argv[1:4]
    question_first = "--question-first" in sys.argv[4:]
    colour_names = "--colour-names" in sys.argv[4:]
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    runner = Runner(model_dir, question_first)
    tr_rows, tr_q = collect(runner, train_dir, colour_names)
    te_rows, te_q = collect(runner, test_dir, colour_names)
    n_layers = len(tr_q["horizontal"]["last"][0]) - 1
    stages = [f"tower (layer {runner.layer})", "projector = LM input"] + [
        f"LM layer {i}" for i in range(1, n_layers + 1)
    ]
    print(f"probe train: {len(tr_rows['col'])} object patches; test: {len(te_rows['col'])}")
    print(
        "\n| image tokens | object patches: their object's horizontal third | vertical third "
        "| background patches: their own horizontal third | vertical third |\n|---|---:|---:|---:|---:|"
    )
    for i, st in enumerate(stages):
        xtr, xte = stack_stage(tr_rows, i), stack_stage(te_rows, i)
        h = fit_probe(xtr, torch.tensor(tr_rows["col"]), xte, torch.tensor(te_rows["col"]), 3)
        v = fit_probe(xtr, torch.tensor(tr_rows["pos"]), xte, torch.tensor(te_rows["pos"]), 3)
        btr, bte = stack_stage(tr_rows, i, "bg"), stack_stage(te_rows, i, "bg")
        bh = fit_probe(btr, torch.tensor(tr_rows["bg_col"]), bte, torch.tensor(te_rows["bg_col"]), 3)
        bv = fit_probe(btr, torch.tensor(tr_rows["bg_row"]), bte, torch.tensor(te_rows["bg_row"]), 3)
        print(f"| {st} | {100 * h:.1f} | {100 * v:.1f} | {100 * bh:.1f} | {100 * bv:.1f} |")
    for name in ["horizontal", "vertical", "colour"]:
        tr, te = tr_q[name], te_q[name]
        classes = len(OPTIONS[name])
        ytr, yte = torch.tensor(tr["y"]), torch.tensor(te["y"])
        maj = np.bincount(yte.numpy(), minlength=classes).max() / len(yte)
        print(
            f"\n{name} questions: train {len(ytr)}, test {len(yte)}; majority {100 * maj:.1f} %, "
            f"model's forced choice {100 * np.mean(te['forced']):.1f} %"
        )
        if te["blind"]:
            # only position questions name an object whose third a blind answer can miss
            blind, forced = np.array(te["blind"]), np.array(te["forced"])
            hard = blind == 0
            print(
                f"best answer blind to the asked object (the third most objects are in): "
                f"{100 * blind.mean():.1f} %; where it is wrong ({hard.sum()} questions) the model "
                f"chooses right {100 * forced[hard].mean():.1f} %"
            )
        print("| last prompt token | probe accuracy |\n|---|---:|")
        ltr, lte = torch.stack(tr["last"]), torch.stack(te["last"])  # [questions, layers + 1, D]
        for layer in range(n_layers + 1):
            acc = fit_probe(ltr[:, layer], ytr, lte[:, layer], yte, classes)
            print(f"| LM {'input' if layer == 0 else f'layer {layer}'} | {100 * acc:.1f} |")
        if te["lift"]:
            lift = torch.stack(te["lift"]).mean(0)
            share = torch.stack(te["share"]).mean(0)
            image = torch.stack(te["image"]).mean(0)
            rival, fair = torch.stack(te["rival"]).mean(0)
            ymtr, ymte = ytr[tr["kept"]], yte[te["kept"]]
            own = fit_probe(torch.stack(tr["own"]), ymtr, torch.stack(te["own"]), ymte, classes)
            print(f"asked object's patches pooled at the LM input, probe: {100 * own:.1f} %")
            ntr, nte = torch.tensor(tr["name"]), torch.tensor(te["name"])
            named = [
                fit_probe(
                    ltr[tr["kept"], layer], ntr, lte[te["kept"], layer], nte, len(COLORS) * len(SHAPES)
                )
                for layer in range(n_layers + 1)
            ]
            print(
                "which object the question names (colour × shape, 30 classes), probe on the last "
                "token at LM input / layers: " + " / ".join(f"{100 * a:.1f}" for a in named)
            )
            if te["mark"]:
                xtr, xte = torch.stack(tr["mark"]), torch.stack(te["mark"])
                mytr, myte = torch.tensor(tr["mark_y"]), torch.tensor(te["mark_y"])
                marked = [
                    fit_probe(xtr[:, layer], mytr, xte[:, layer], myte, 2) for layer in range(n_layers + 1)
                ]
                print(
                    f"image tokens of objects: is it the asked object ({len(myte)} test patches, "
                    f"{100 * myte.float().mean():.1f} % are), probe at LM input / layers: "
                    + " / ".join(f"{100 * a:.1f}" for a in marked)
                )
            print(
                "| layer, head | share of the attention on the image | on the asked object | lift "
                "of its patches over the image's | its part of the attention on objects (fair part) | "
                "probe on what the head gathers from the image | the same, background patches "
                "left out |\n|---|---:|---:|---:|---:|---:|---:|"
            )
            mtr, mte = torch.stack(tr["mix"]), torch.stack(te["mix"])
            ftr, fte = torch.stack(tr["fg"]), torch.stack(te["fg"])
            for layer in range(lift.shape[0]):
                for head in range(lift.shape[1]):
                    acc = fit_probe(mtr[:, layer, head], ymtr, mte[:, layer, head], ymte, classes)
                    fga = fit_probe(ftr[:, layer, head], ymtr, fte[:, layer, head], ymte, classes)
                    print(
                        f"| {layer + 1}, {head + 1} | {100 * image[layer, head]:.1f} % | "
                        f"{100 * share[layer, head]:.1f} % | {lift[layer, head]:.2f} | "
                        f"{100 * rival[layer, head]:.1f} % ({100 * fair[layer, head]:.1f} %) | "
                        f"{100 * acc:.1f} | {100 * fga:.1f} |"
                    )


if __name__ == "__main__":
    main()
