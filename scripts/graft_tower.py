"""Copies one LLaVA folder's vision tower weights into another's: a diagnostic for docs/RESULTS.md.

`vila2 model init --spec` builds a random model of other language-model sizes; this gives it the
pretrained tower of a run's `init-vision` (same vision spec), so that a language model of another
depth can be trained on the very image tokens the tiny one reads. Every `model.vision_tower.*`
tensor of SOURCE replaces DEST's (shapes must agree); nothing else of DEST changes.

    .venv/bin/python scripts/graft_tower.py DEST_MODEL_DIR SOURCE_MODEL_DIR
"""

import argparse
from pathlib import Path

from safetensors.torch import load_file, save_file

PREFIX = "model.vision_tower."


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dest", help="LLaVA folder whose tower is replaced (its model.safetensors is rewritten)")
    ap.add_argument("source", help="LLaVA folder whose tower is copied")
    args = ap.parse_args()
    dest_file = Path(args.dest) / "model.safetensors"
    dest, source = load_file(dest_file), load_file(Path(args.source) / "model.safetensors")
    keys = sorted(k for k in source if k.startswith(PREFIX))
    if not keys:
        raise SystemExit(f"{args.source} has no {PREFIX}* tensors")
    for k in keys:
        if k not in dest or dest[k].shape != source[k].shape:
            got = tuple(dest[k].shape) if k in dest else "missing"
            raise SystemExit(f"{k}: {args.dest} has {got}, {args.source} {tuple(source[k].shape)}")
        dest[k] = source[k]
    save_file(dest, dest_file, metadata={"format": "pt"})
    print(f"copied {len(keys)} tower tensors from {args.source} into {args.dest}")


if __name__ == "__main__":
    main()
