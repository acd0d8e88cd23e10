"""Writes an SFT split that asks nothing but position questions: a diagnostic for docs/RESULTS.md.

For every image of a ShapesWorld split that carries scenes (the `eval` split of `vila2 shapes`),
one LLaVA conversation of every position question ShapesWorld would ask about it (per object,
"left / center / right" and "top / middle / bottom" unless its centre lies near a third's
border: the rule of `host/src/data/shapes/questions.rs`), in shuffled order, the image first.
The demo's SFT asks one question of each kind per conversation (1 191 position questions in its
1 200); this asks 2 per object, so a training run sees enough of them to show whether the model
can learn to pick out the asked object at all. With `--question-first`, each question is its own
conversation and is asked before the image, so that the image tokens can attend to the object it names;
`--one-per-conversation` makes each question its own conversation with the image first (the same
questions per step as `--question-first`, only the order differs). With
`--colour-names` the questions name an object by its colour alone ("the red object"), asked only
where no other object of the scene has that colour: a one-word query instead of colour × shape.
With `--distinct-thirds` each conversation asks, per axis, about one object of each third the
scene's objects occupy, and only where they occupy two or more: every answer of an image differs
from its others, so an answer blind to which object is asked cannot bring the loss down.

    .venv/bin/python scripts/position_sft.py SHAPES_DIR OUT_DIR [--seed N] [--shard-size N]
        [--question-first | --one-per-conversation] [--colour-names] [--distinct-thirds]

OUT_DIR gets `shard-NNNNN.tar` files of `KEY.png` + `KEY.json` ({"conversations": [...]}), the
layout `[data] sft` reads.
"""

import argparse
import io
import json
import random
import tarfile
from pathlib import Path

from shapes_split import HORIZONTAL, VERTICAL, centre, colour_is_unique, pngs, read_scenes, third

SHORT_ANSWER = "\nAnswer the question using a single word or phrase."


def near_third(c, side, margin):
    return abs(c - side / 3) < margin or abs(c - 2 * side / 3) < margin


def position_questions(scene, colour_names=False):
    """`(question, answer, axis, object)`: axis 0 horizontal and 1 vertical, the asked object's scene entry."""
    w, h = scene["width"], scene["height"]
    margin = min(w, h) / 32
    out = []
    for o in scene["objects"]:
        cx, cy = centre(o)
        name = f"{o['color']} {o['shape']}"
        if colour_names:
            # "the red object", asked only where no other object is red
            if not colour_is_unique(scene, o):
                continue
            name = f"{o['color']} object"
        if not near_third(cx, w, margin):
            q = f"Is the {name} on the left, in the center or on the right of the image?"
            out.append((q + SHORT_ANSWER, HORIZONTAL[third(cx, w)], 0, o))
        if not near_third(cy, h, margin):
            q = f"Is the {name} at the top, in the middle or at the bottom of the image?"
            out.append((q + SHORT_ANSWER, VERTICAL[third(cy, h)], 1, o))
    return out


def one_per_third(questions, rng):
    """Per axis, one question of each answer (a random one where several objects share a third),
    kept only where the axis has two answers or more."""
    out = []
    for axis in (0, 1):
        by_answer = {}
        for q in questions:
            if q[2] == axis:
                by_answer.setdefault(q[1], []).append(q)
        if len(by_answer) >= 2:
            out.extend(rng.choice(qs) for _, qs in sorted(by_answer.items()))
    return out


def conversation(pairs, question_first=False):
    turns = []
    for i, (q, a, *_) in enumerate(pairs):
        if i == 0:
            q = f"{q}\n<image>" if question_first else f"<image>\n{q}"
        turns.append({"from": "human", "value": q})
        turns.append({"from": "gpt", "value": a})
    return {"conversations": turns}


def add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("shapes_dir", help="a `vila2 shapes --out` folder; its eval split is read")
    ap.add_argument("out_dir", help="new folder for the SFT shards")
    ap.add_argument("--seed", type=int, default=0, help="seed of the question order")
    ap.add_argument("--shard-size", type=int, default=500)
    ap.add_argument(
        "--colour-names",
        action="store_true",
        help='name each object by its colour alone ("the red object"), where no other object has it',
    )
    layout = ap.add_mutually_exclusive_group()
    layout.add_argument(
        "--question-first",
        action="store_true",
        help='one conversation per question, asked before the image ("question\\n<image>")',
    )
    layout.add_argument(
        "--one-per-conversation",
        action="store_true",
        help="one conversation per question, the image first (as --question-first, the other order)",
    )
    ap.add_argument(
        "--distinct-thirds",
        action="store_true",
        help="per axis, one object of each occupied third, where two or more are occupied",
    )
    args = ap.parse_args()

    split = Path(args.shapes_dir) / "eval"
    scenes = read_scenes(split)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=False)
    rng = random.Random(args.seed)
    written, questions, shard = 0, 0, None
    for key, png in pngs(split, scenes):
        pairs = position_questions(scenes[key], args.colour_names)
        if args.distinct_thirds:
            pairs = one_per_third(pairs, rng)
        if not pairs:
            continue
        rng.shuffle(pairs)
        single = args.question_first or args.one_per_conversation
        convs = [(f"{key}_q{i}", [p]) for i, p in enumerate(pairs)] if single else [(key, pairs)]
        for name, conv in convs:
            if written % args.shard_size == 0:
                if shard:
                    shard.close()
                shard = tarfile.open(out / f"shard-{written // args.shard_size:05}.tar", "w")
            add(shard, f"{name}.png", png)
            add(shard, f"{name}.json", json.dumps(conversation(conv, args.question_first)).encode())
            written += 1
        questions += len(pairs)
    if shard:
        shard.close()
    print(json.dumps({"conversations": written, "questions": questions}))


if __name__ == "__main__":
    main()
