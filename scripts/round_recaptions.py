#!/usr/bin/env python3
# A round's stored recaptions as caption-filter candidates, one JSON line each, to run filters
# over them again: round_recaptions.py DEMO_OUT ROUND > c.jsonl; vila2 plugin run
# vila2_quality.wasm --input c.jsonl --config '{"min_words":4}'. DEMO_OUT holds run/ as
# `vila2 demo --out` writes it; samples whose round made no recaption are left out.
import json, sys

from demo_rounds import round_records

out, rnd = sys.argv[1], int(sys.argv[2])
for key, provenance in round_records(out, rnd):
    record = provenance["rounds"][rnd - 1]
    if record.get("recaption"):
        sample = {"key": key, "width": 64, "height": 64, "original_caption": "", "metadata": []}
        print(json.dumps({"sample": sample, "text": record["recaption"]}))
