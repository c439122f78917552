"""A measurement recorded in experiments/measurements-2026-11-26.md, which links to this file.

Run from the repository root: python experiments/scripts/measurements/tanh_gelu.py
"""

import time

import torch
import torch.nn.functional as F


def ms(f, n=50):
    for _ in range(5):
        f()
    start = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - start) / n * 1e3


x = torch.randn(4096, 512, dtype=torch.bfloat16, requires_grad=True)
g = torch.randn(4096, 512, dtype=torch.bfloat16)
for approximate in ("none", "tanh", "none", "tanh"):
    print(approximate, f"{ms(lambda: F.gelu(x, approximate=approximate).backward(g)):.2f} ms")
xf = x.detach().float().requires_grad_()
print(f"fp32 none {ms(lambda: F.gelu(xf).backward(g.float())):.2f} ms")
