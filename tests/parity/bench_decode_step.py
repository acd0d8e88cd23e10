"""One batched decode step of the CPU benchmark model's decoder, written with the same libtorch
ops the engine issues (host/src/vlm/llama.rs): what these kernels cost without any framework
around them. Random weights of the benchmark's shapes (Llama 4 layers, width 256, 4 heads,
MLP 1024, vocab 32000), a preallocated KV cache after a 216-token prompt, SDPA with a padding
mask, greedy choice.

Usage: OMP_NUM_THREADS=1 bench_decode_step.py [BATCH] [--profile]
Prints ms per step for the head as `linear` + `argmax` (the engine) and three variants.
"""

import sys
import time

import torch

F = torch.nn.functional
B = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 16
H, DH, D, I, V, L = 4, 64, 256, 1024, 32000, 4
PROMPT, NEW = 216, 64
torch.manual_seed(0)
SHAPES = dict(q=(D, D), k=(D, D), v=(D, D), o=(D, D), g=(I, D), u=(I, D), d=(D, I))
W = [{n: torch.randn(*s) * 0.02 for n, s in SHAPES.items()} for _ in range(L)]
HEAD = torch.randn(V, D) * 0.02
EMB = torch.randn(V, D) * 0.02
KC = [torch.zeros(B, H, PROMPT + NEW, DH) for _ in range(L)]
VC = [torch.zeros(B, H, PROMPT + NEW, DH) for _ in range(L)]
CHOICE = {
    "linear+argmax (engine)": lambda h: F.linear(h, HEAD).argmax(-1),
    "linear+max": lambda h: F.linear(h, HEAD).max(-1)[1],
    "W·hT+max": lambda h: (HEAD @ h.t()).max(0)[1],
}


def rms(x):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)


def step(tok, n, choose):
    x = F.embedding(tok.view(B, 1), EMB)
    mask = torch.zeros(B, 1, 1, n + 1)
    for l in range(L):
        w, h = W[l], rms(x)
        q, k, v = (F.linear(h, w[m]).view(B, 1, H, DH).transpose(1, 2) for m in "qkv")
        KC[l].narrow(2, n, 1).copy_(k)
        VC[l].narrow(2, n, 1).copy_(v)
        o = F.scaled_dot_product_attention(
            q, KC[l].narrow(2, 0, n + 1), VC[l].narrow(2, 0, n + 1), attn_mask=mask
        )
        x = x + F.linear(o.transpose(1, 2).reshape(B, 1, D), w["o"])
        h = rms(x)
        x = x + F.linear(F.silu(F.linear(h, w["g"])) * F.linear(h, w["u"]), w["d"])
    return choose(rms(x).squeeze(1))


with torch.no_grad():
    for name, choose in list(CHOICE.items()) * 2:
        tok = torch.zeros(B, dtype=torch.long)
        for n in range(PROMPT, PROMPT + 3):
            tok = step(tok, n, choose)
        t0 = time.perf_counter()
        for n in range(PROMPT, PROMPT + NEW - 1):
            tok = step(tok, n, choose)
        print(f"batch {B} {name}: {(time.perf_counter() - t0) / (NEW - 1) * 1e3:.2f} ms/step")
    if "--profile" in sys.argv:
        from torch.profiler import profile

        with profile() as p:
            for n in range(PROMPT, PROMPT + 20):
                tok = step(tok, n, CHOICE["linear+argmax (engine)"])
        print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))
