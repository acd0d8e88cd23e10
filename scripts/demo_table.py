"""Formats `vila2 plugin inspect|run` JSON for the `make run` demo: `demo_table.py MODE`."""
import json
import sys


def describe():
    d = json.load(sys.stdin)["description"]
    print(f"  {d['name']:<16} {d['version']:<8} {d['world']:<16} {d['description'][:70]}")


def prompts():
    for line in sys.stdin:
        r = json.loads(line)
        ok = r.get("ok") or {}
        text = ok.get("text", r.get("error"))
        print(f"  {r['key']:<12} {ok.get('variant', 'error'):<8} {text!r:.100}")


def verdicts():
    kept = total = 0
    for line in sys.stdin:
        r = json.loads(line)
        total += 1
        if "ok" in r:
            v = r["ok"]
            kept += v["keep"]
            mark = "keep" if v["keep"] else "drop"
            reasons = ",".join(v["reasons"]) or "-"
            print(f"  {r['key']:<24} {mark}  score {v['score']:.2f}  {reasons}")
        else:
            print(f"  {r['key']:<24} error {r['error']}")
    print(f"  kept {kept} of {total}")


{"describe": describe, "prompts": prompts, "verdicts": verdicts}[sys.argv[1]]()
