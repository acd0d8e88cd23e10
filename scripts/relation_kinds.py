#!/usr/bin/env python3
# The spatial specialist's relation statements split by kind (left of, right of, above, below, closest),
# scored as host/src/data/shapes/facts.rs does: usage: relation_kinds.py DEMO_OUT kept|raw
import json, re, sys, glob, collections
C="red|green|blue|yellow|purple|orange"; S="circle|square|triangle|diamond|cross"
M=re.compile(rf"\b({C}) ({S})\b")
REL=[("left of","L"),("right of","R"),("above","A"),("below","B")]
def ctr(o): b=o["bbox"]; return ((b["x0"]+b["x1"])/2,(b["y0"]+b["y1"])/2)
def rel(a,b):
    (ax,ay),(bx,by)=ctr(a),ctr(b); dx,dy=bx-ax,by-ay
    if abs(dx)>=abs(dy): return "L" if dx>0 else "R"
    return "A" if dy>0 else "B"
def find(sc,m):
    for i,o in enumerate(sc["objects"]):
        if o["color"]==m[0] and o["shape"]==m[1]: return i
def closest(objs,i):
    ax,ay=ctr(objs[i]); best=None
    for j,o in enumerate(objs):
        if j==i: continue
        bx,by=ctr(o); d=(bx-ax)**2+(by-ay)**2
        if best is None or d<best[1]: best=(j,d)
    return best and best[0]
run=sys.argv[1]
scenes={}
for l in open(f"{run}/shapes/pretrain/scenes.jsonl"):
    r=json.loads(l); scenes[r["key"]]=r["scene"]
tally=collections.defaultdict(lambda:[0,0,0,0])  # stated, grounded, correct, same-axis
for f in glob.glob(f"{run}/run/specialists/spatial/answers/*.jsonl"):
    for l in open(f):
        r=json.loads(l); sc=scenes[r["key"]]
        text=" ".join(t.get("answer","") for t in r["record"].get("turns",[])) if sys.argv[2]=="kept" else r["record"]["answer"]
        for sent in re.split(r"[.!?;\n]",text.lower()):
            ms=[(m.start(),m.group(1),m.group(2)) for m in M.finditer(sent)]
            if "closest" in sent or "nearest" in sent:
                if len(ms)<2: continue
                k="closest"; t=tally[k]; t[0]+=1
                ia,ib=find(sc,ms[0][1:]),find(sc,ms[1][1:])
                if ia is None or ib is None or ia==ib: continue
                t[1]+=1; t[2]+= closest(sc["objects"],ia)==ib
                t[3]+= len(sc["objects"])  # objects in scene, for chance
                continue
            hit=None
            for w,code in REL:
                p=sent.find(w)
                if p>=0: hit=(p,code,w); break
            if not hit: continue
            before=[m for m in ms if m[0]<hit[0]]; after=[m for m in ms if m[0]>=hit[0]+len(hit[2])]
            if not before or not after: continue
            t=tally[hit[1]]; t[0]+=1
            ia,ib=find(sc,before[-1][1:]),find(sc,after[0][1:])
            if ia is None or ib is None or ia==ib: continue
            t[1]+=1; truth=rel(sc["objects"][ia],sc["objects"][ib]); t[2]+= truth==hit[1]
            t[3]+= {"L":"LR","R":"LR","A":"AB","B":"AB"}[truth]=={"L":"LR","R":"LR","A":"AB","B":"AB"}[hit[1]]
for k,(s,g,c,ax) in sorted(tally.items()):
    extra = f"axis right {100*ax/max(g,1):.1f} %" if k!="closest" else f"mean objects {ax/max(g,1):.2f}"
    print(f"{k:8} stated {s:5} about real pairs {g:5} correct {100*c/max(g,1):5.1f} % {extra}")
