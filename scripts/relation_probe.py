"""Forced choice on ShapesWorld's relation questions, per form (left/right, above/below, yes/no):
accuracy, the answers the model picks and the true answers' split. Image first, as the engine asks.
A diagnostic for docs/RESULTS.md, not part of the pipeline.

    .venv/bin/python scripts/relation_probe.py MODEL_DIR SHAPES   # SHAPES: a `vila2 shapes --out` folder
"""
import collections
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from position_probe import Runner, read_split

runner = Runner(sys.argv[1])
tok = runner.processor.tokenizer
scenes, images, vqa = read_split(sys.argv[2])
qs = [q for q in vqa if q["kind"] == "relation"]


def form(q):
    """The form of relation question `q` and its two options."""
    t = q["question"]
    if " to the left or to the right of " in t:
        return "left/right", ["left", "right"]
    if " above or below " in t:
        return "above/below", ["above", "below"]
    return "yes/no", ["yes", "no"]


res = collections.defaultdict(lambda: [0, 0, collections.Counter()])
for i in range(0, len(qs), 32):
    b = qs[i : i + 32]
    out = runner.run([images[q["key"]] for q in b], [q["question"] for q in b])
    logits = out[4]
    for j, q in enumerate(b):
        f, opts = form(q)
        ids = [tok.encode(" " + w, add_special_tokens=False)[0] for w in opts]
        pick = opts[int(logits[j, ids].argmax())]
        r = res[f]; r[0] += pick == q["answer"]; r[1] += 1; r[2][pick] += 1
for f, (c, n, dist) in sorted(res.items()):
    truth = collections.Counter(q["answer"] for q in qs if form(q)[0] == f)
    print(f"{f}: {c}/{n} = {100*c/n:.1f} %; answers {dict(dist)}; truth {dict(truth)}")
