"""Reading a ShapesWorld split (`vila2 shapes --out DIR`, then `DIR/pretrain`, `DIR/eval`, ...)
from the diagnostic scripts, and the ground-truth rules they share with
`host/src/data/shapes/spatial.rs` (the Python side has no binding to the host)."""

import json
import tarfile
from pathlib import Path

COLORS = ["red", "green", "blue", "yellow", "purple", "orange"]
SHAPES = ["circle", "square", "triangle", "diamond", "cross"]
HORIZONTAL = ["left", "center", "right"]
VERTICAL = ["top", "middle", "bottom"]


def read_scenes(split):
    """`{key: scene}` from the split's scenes.jsonl."""
    scenes = {}
    for line in open(Path(split) / "scenes.jsonl"):
        r = json.loads(line)
        scenes[r["key"]] = r["scene"]
    return scenes


def pngs(split, keys):
    """Yields `(key, png bytes)` for each image of the split's shards whose key is in `keys`,
    in shard order."""
    for shard in sorted(Path(split).glob("*.tar")):
        with tarfile.open(shard) as tar:
            for m in tar.getmembers():
                key, _, ext = m.name.partition(".")
                if ext == "png" and key in keys:
                    yield key, tar.extractfile(m).read()


def centre(o):
    """An object's box centre `(x, y)` in pixels."""
    b = o["bbox"]
    return (b["x0"] + b["x1"]) / 2, (b["y0"] + b["y1"]) / 2


def colour_is_unique(scene, o):
    """Whether no other object of the scene has `o`'s colour (so "the red object" names it)."""
    return sum(p["color"] == o["color"] for p in scene["objects"]) == 1


def third(pos, side):
    """0, 1 or 2: the third of `side` that `pos` lies in (spatial.rs's `third`)."""
    return 0 if pos < side / 3 else 2 if pos > 2 * side / 3 else 1
