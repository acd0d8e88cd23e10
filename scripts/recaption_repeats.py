#!/usr/bin/env python3
# How often each round's recaptions repeat a sentence, what the filters did with them, and how
# precise the colour-shape mentions of kept and rejected recaptions are (parsed as
# host/src/data/shapes/metrics.rs does), and how many state a relation of an object to itself
# ("the red circle is left of the red circle"), in the recaption as kept and among the sentences
# the host dropped for it (`drop_self_relations`). usage: recaption_repeats.py DEMO_OUT
# (DEMO_OUT holds shapes/ and run/, as `vila2 demo --out` writes them).
import collections, json, re, sys

from demo_rounds import round_records, rounds

COLOURS = {"red", "green", "blue", "yellow", "purple", "orange"}
SHAPES = {w + s: w for w in ("circle", "square", "triangle", "diamond") for s in ("", "s")}
SHAPES.update({"cross": "cross", "crosses": "cross"})
FILLER = {"and", "or", "a", "an", "the", "small", "large", "big", "little", "tiny", "huge",
          "bright", "dark"}


def mentions(text):
    out, colours, gap = set(), [], 0
    for w in (t for t in re.split(r"[^0-9a-z]+", text.lower()) if t):
        if w in COLOURS:
            colours.append(w); gap = 0
        elif w in SHAPES:
            out |= {(c, SHAPES[w]) for c in colours}; colours = []
        elif colours and w in FILLER and gap < 3:
            gap += 1
        else:
            colours, gap = [], 0
    return out


def sentences(text):
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]


RELATION = re.compile(r"\b(?:to the left of|to the right of|left of|right of|above|below|"
                      r"next to|behind|in front of|on top of|under|beside|near)\b")


def relations(text):
    """(relation sentences, those relating a colour-shape object to that same object)."""
    n = same = 0
    for sentence in sentences(text.lower()):
        parts = RELATION.split(sentence, maxsplit=1)
        if len(parts) == 2:
            n += 1
            before, after = mentions(parts[0]), mentions(parts[1])
            same += bool(before) and before == after
    return n, same


def repeats(text):
    s = [" ".join(x.lower().split()) for x in sentences(text)]
    return len(s) - len(set(s))


out = sys.argv[1]
scenes = {}
for line in open(f"{out}/shapes/pretrain/scenes.jsonl"):
    r = json.loads(line)
    scenes[r["key"]] = {(o["color"], o["shape"]) for o in r["scene"]["objects"]}
print("| round | recaptions | with a repeated sentence | repeated sentences dropped | "
      "with a self-relation | self-relations of relation sentences | "
      "self-relations dropped | kept | rejected for repetition | mention precision kept | "
      "rejected |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for rnd in rounds(out):
    n = rep = dropped = selfrel = rel = same = self_dropped = kept = rej_rep = 0
    prec = collections.defaultdict(lambda: [0, 0])
    for key, p in round_records(out, rnd):
        r = p["rounds"][-1]
        text = r.get("recaption") or ""
        n += 1
        rep += repeats(text) > 0
        dropped += r.get("repeated_sentences", 0)
        r_n, r_same = relations(text)
        rel, same, selfrel = rel + r_n, same + r_same, selfrel + (r_same > 0)
        self_dropped += len(r.get("self_relations", []))
        kept += r["kept"]
        rej_rep += any("repetition" in v["reasons"] for v in r["verdicts"])
        ms, truth = mentions(text), scenes[key]
        acc = prec["kept" if r["kept"] else "rejected"]
        acc[0] += len(ms); acc[1] += len(ms & truth)
    pct = lambda a, b: f"{100 * a / b:.1f}" if b else "–"
    print(f"| round-{rnd} | {n} | {pct(rep, n)} | {dropped} | {pct(selfrel, n)} | "
          f"{same} of {rel} | {self_dropped} | {pct(kept, n)} | {pct(rej_rep, n)} | "
          f"{pct(prec['kept'][1], prec['kept'][0])} | "
          f"{pct(prec['rejected'][1], prec['rejected'][0])} |")
