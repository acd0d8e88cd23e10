#!/usr/bin/env python3
# A round's stored recaptions as caption-filter candidates, one JSON line each, to run filters
# over them again: round_recaptions.py DEMO_OUT ROUND > c.jsonl; vila2 plugin run
# vila2_quality.wasm --input c.jsonl --config '{"min_words":4}'. DEMO_OUT holds run/ as
# `vila2 demo --out` writes it; samples whose round made no recaption are left out.
import glob, json, sys, tarfile

out, rnd = sys.argv[1], int(sys.argv[2])
shards = sorted(glob.glob(f"{out}/run/round-{rnd}/data/*.tar"))
if not shards:
    sys.exit(f"no shards in {out}/run/round-{rnd}/data")
for path in shards:
    with tarfile.open(path) as tar:
        for m in tar.getmembers():
            if not m.name.endswith(".json"):
                continue
            record = json.loads(tar.extractfile(m).read())["rounds"][rnd - 1]
            if record.get("recaption"):
                sample = {"key": m.name[:-5], "width": 64, "height": 64,
                          "original_caption": "", "metadata": []}
                print(json.dumps({"sample": sample, "text": record["recaption"]}))
