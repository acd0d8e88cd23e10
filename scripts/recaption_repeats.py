#!/usr/bin/env python3
# How often each round's recaptions repeat a sentence, what the filters did with them, and how
# precise the colour-shape mentions of kept and rejected recaptions are (parsed as
# host/src/data/shapes/metrics.rs does). usage: recaption_repeats.py DEMO_OUT
# (DEMO_OUT holds shapes/ and run/, as `vila2 demo --out` writes them).
import collections, glob, json, re, sys, tarfile

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


def repeats(text):
    s = [" ".join(x.lower().split()) for x in sentences(text)]
    return len(s) - len(set(s))


out = sys.argv[1]
scenes = {}
for line in open(f"{out}/shapes/pretrain/scenes.jsonl"):
    r = json.loads(line)
    scenes[r["key"]] = {(o["color"], o["shape"]) for o in r["scene"]["objects"]}
print("| round | recaptions | with a repeated sentence | repeated sentences dropped | kept | "
      "rejected for repetition | mention precision kept | rejected |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for data in sorted(glob.glob(f"{out}/run/round-*/data")):
    n = rep = dropped = kept = rej_rep = 0
    prec = collections.defaultdict(lambda: [0, 0])
    for shard in sorted(glob.glob(f"{data}/*.tar")):
        with tarfile.open(shard) as t:
            for m in t.getmembers():
                if not m.name.endswith(".json"):
                    continue
                p = json.load(t.extractfile(m))
                r = p["rounds"][-1]
                text = r.get("recaption") or ""
                n += 1
                rep += repeats(text) > 0
                dropped += r.get("repeated_sentences", 0)
                kept += r["kept"]
                rej_rep += any("repetition" in v["reasons"] for v in r["verdicts"])
                ms, truth = mentions(text), scenes[p["key"]]
                acc = prec["kept" if r["kept"] else "rejected"]
                acc[0] += len(ms); acc[1] += len(ms & truth)
    pct = lambda a, b: f"{100 * a / b:.1f}" if b else "–"
    print(f"| {data.split('/')[-2]} | {n} | {pct(rep, n)} | {dropped} | {pct(kept, n)} | "
          f"{pct(rej_rep, n)} | {pct(prec['kept'][1], prec['kept'][0])} | "
          f"{pct(prec['rejected'][1], prec['rejected'][0])} |")
