"""The grounding specialist's boxes against the pretraining scenes, by the scene's object count:
boxes, those naming an object of the scene, of those the share at IoU >= 0.5 with it and the share
whose centre is within a tenth of the side of its centre on both axes; then the best any one
constant box centre would do on that last check, and the boxes the specialist writes most.
The report's specialist table has the IoU share over all scenes and over one-object scenes; this
splits it by every object count and adds the centre check against the best constant box, to tell
"cannot pick out the object" (one-object scenes right, others not) from "does not read positions".
A diagnostic for docs/RESULTS.md, not part of the pipeline.

    .venv/bin/python scripts/grounding_boxes.py DEMO_OUT   # DEMO_OUT holds run/ and shapes/
"""

import collections
import glob
import json
import re
import sys

# "a small red circle [093,093,593,593]": size, colour, shape, box in 000-999.
BOX = re.compile(r"a (small|large) (\w+) (\w+) \[(\d+),(\d+),(\d+),(\d+)\]")
TENTH = 0.1


def corners(b):
    return [b["x0"], b["y0"], b["x1"], b["y1"]]


def iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def centre(b):
    return (b[0] + b[2]) / 2, (b[1] + b[3]) / 2


def near(a, b, side):
    (ax, ay), (bx, by) = centre(a), centre(b)
    return abs(ax - bx) < TENTH * side and abs(ay - by) < TENTH * side


def main(out):
    scenes = {}
    for line in open(f"{out}/shapes/pretrain/scenes.jsonl"):
        r = json.loads(line)
        scenes[r["key"]] = r["scene"]
    rows = collections.defaultdict(lambda: [0, 0, 0, 0])  # boxes, grounded, IoU >= .5, centre near
    written = collections.Counter()
    for path in sorted(glob.glob(f"{out}/run/specialists/grounding/answers/*.jsonl")):
        for line in open(path):
            r = json.loads(line)
            scene = scenes[r["key"]]
            side = scene["width"]
            row = rows[len(scene["objects"])]
            for m in BOX.finditer(r["record"]["answer"]):
                _, colour, shape = m.group(1, 2, 3)
                written[m.group(4, 5, 6, 7)] += 1
                box = [int(m.group(i)) / 1000 * side for i in range(4, 8)]
                row[0] += 1
                named = [o for o in scene["objects"] if o["color"] == colour and o["shape"] == shape]
                if not named:
                    continue
                truth = corners(named[0]["bbox"])
                row[1] += 1
                row[2] += iou(box, truth) >= 0.5
                row[3] += near(box, truth, side)
    print("| objects in the scene | boxes | about an object of the scene | IoU ≥ 0.5 | centre within a tenth |")
    print("|---:|---:|---:|---:|---:|")
    for n in sorted(rows):
        b, g, i, c = rows[n]
        print(f"| {n} | {b} | {g} | {100 * i / max(g, 1):.1f} | {100 * c / max(g, 1):.1f} |")
    # The best constant centre over every object of the pretraining scenes.
    objects = [(corners(o["bbox"]), s["width"]) for s in scenes.values() for o in s["objects"]]
    best = max(
        sum(near([x, y, x, y], b, side) for b, side in objects)
        for x in range(0, 64, 2)
        for y in range(0, 64, 2)
    ) / len(objects)
    print(f"\nbest constant centre (64-pixel scenes): {100 * best:.1f} % of all objects within a tenth")
    print(f"distinct boxes written: {len(written)}; most written:",
          ", ".join(f"[{','.join(b)}] × {n}" for b, n in written.most_common(3)))


if __name__ == "__main__":
    main(sys.argv[1])
