"""A measurement recorded in experiments/measurements-2026-11-26.md, which links to this file.

Run from the repository root: python experiments/scripts/measurements/muon_newton_schulz_batched.py
"""

import time

import torch
from torch.optim._muon import _zeropower_via_newtonschulz

a, b, c = coefficients = (3.4445, -4.7750, 2.0315)
grads = [torch.randn(shape) for shape in [(384, 128), (128, 128), (512, 128), (128, 512)] * 4]


def one_at_a_time():
    for grad in grads:
        _zeropower_via_newtonschulz(grad, coefficients, 5, 1e-7)


def batched_by_shape():
    for shape in {g.shape for g in grads}:
        x = torch.stack([g for g in grads if g.shape == shape]).bfloat16()
        x = x.mT if shape[0] > shape[1] else x
        x = x / x.norm(dim=(-2, -1), keepdim=True).clamp(min=1e-7)
        for _ in range(5):
            gram = x @ x.mT
            x = a * x + (b * gram + c * (gram @ gram)) @ x


for f in (one_at_a_time, batched_by_shape) * 2:
    for _ in range(3):
        f()
    start = time.perf_counter()
    for _ in range(20):
        f()
    print(f.__name__, f"{(time.perf_counter() - start) / 20 * 1e3:.2f} ms")
