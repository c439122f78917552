"""A measurement recorded in experiments/measurements-2026-11-26.md, which links to this file.

Run from the repository root: python experiments/scripts/measurements/causal_scores_baddbmm.py
"""

import math
import statistics
import sys
import time

import torch

sys.path.insert(0, ".")
from kernels import eager

new = eager.attention_weights


def old(q, k, causal=True):
    scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.size(-1)))
    if causal and q.size(-2) > 1:
        scores = scores + eager.causal_mask(q.size(-2), k.size(-2), scores.dtype, scores.device)
    return scores.softmax(dim=-1)


for B, H, T, D in ((12, 4, 64, 32), (32, 4, 128, 32)):
    x = [torch.randn(B, H, T, D, requires_grad=True) for _ in range(3)]

    def run(f):
        eager.attention_weights = f
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = eager.eager_attention(*x)
        y.sum().backward()

    times = {"old": [], "new": []}
    for rep in range(20):
        for name, f in (("old", old), ("new", new)) if rep % 2 == 0 else (("new", new), ("old", old)):
            run(f)
            t = time.perf_counter()
            for _ in range(10):
                run(f)
            times[name].append((time.perf_counter() - t) / 10 * 1e3)
    o, n = statistics.median(times["old"]), statistics.median(times["new"])
    print(f"{B} x {H} heads x T {T} x {D}: old {o:.2f} ms, new {n:.2f} ms, new/old {n / o:.3f}")
