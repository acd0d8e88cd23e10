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

# each form of relation question (by the wording of host/src/data/shapes/questions.rs), its options
FORMS = {
    "left/right": ("left", "right"),
    "above/below": ("above", "below"),
    "yes/no": ("yes", "no"),
}


def form(question):
    """The form of a relation question."""
    if " to the left or to the right of " in question:
        return "left/right"
    if " above or below " in question:
        return "above/below"
    return "yes/no"


def main(model_dir, shapes_dir, batch=32):
    runner = Runner(model_dir)
    ids = {f: runner.answer_ids(opts) for f, opts in FORMS.items()}
    _, images, vqa = read_split(shapes_dir)
    qs = [q for q in vqa if q["kind"] == "relation"]
    right = collections.Counter()
    picked, truth = (collections.defaultdict(collections.Counter) for _ in range(2))
    for i in range(0, len(qs), batch):
        chunk = qs[i : i + batch]
        logits = runner.last_logits([images[q["key"]] for q in chunk], [q["question"] for q in chunk])
        for b, q in enumerate(chunk):
            f = form(q["question"])
            pick = FORMS[f][int(logits[b, ids[f]].argmax())]
            right[f] += pick == q["answer"]
            picked[f][pick] += 1
            truth[f][q["answer"]] += 1
    for f in sorted(truth):
        n = sum(truth[f].values())
        print(f"{f}: {right[f]}/{n} = {100 * right[f] / n:.1f} %; answers {dict(picked[f])}; truth {dict(truth[f])}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
