"""Counts the questions of a ShapesWorld SFT set by kind: in all, before the conversation's
caption turn (answered from the image alone) and as its first turn.

    python3 scripts/sft_question_mix.py SHAPES/sft

A diagnostic for docs/RESULTS.md; kinds are told by the question's wording in
host/src/data/shapes/questions.rs (and the caption prompts of the SFT set).
"""

import collections
import glob
import json
import sys
import tarfile

CAPTION_PROMPTS = ("Elaborate", "Instead of describing")


def kind(q):
    """The kind of question `q` (its first line, `<image>` removed)."""
    if q.startswith(CAPTION_PROMPTS) or "detail" in q:
        return "caption"
    if " on the left, in the center" in q or "at the top, in the middle" in q:
        return "position"
    if q.startswith("What colour"):
        return "colour"
    if q.startswith("What shape"):
        return "shape"
    if q.startswith("How many"):
        return "count"
    if "text" in q or "word" in q or "written" in q:
        return "text"
    if q.startswith("Is the"):
        return "relation"
    return "other: " + q[:40]


def main(folder):
    total, before, first = (collections.Counter() for _ in range(3))
    n = 0
    for shard in sorted(glob.glob(folder + "/*.tar")):
        with tarfile.open(shard) as t:
            for m in t.getmembers():
                if not m.name.endswith(".json"):
                    continue
                turns = json.load(t.extractfile(m))["conversations"]
                n += 1
                seen_caption = False
                for i, turn in enumerate(turns):
                    if turn["from"] != "human":
                        continue
                    k = kind(turn["value"].replace("<image>\n", "").split("\n")[0])
                    total[k] += 1
                    first[k] += i == 0
                    if k == "caption":
                        seen_caption = True
                    elif not seen_caption:
                        before[k] += 1
    print(n, "conversations")
    for k in sorted(total):
        print(k, total[k], "before caption", before[k], "first turn", first[k])


if __name__ == "__main__":
    main(sys.argv[1])
