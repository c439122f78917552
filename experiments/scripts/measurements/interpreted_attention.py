"""Seconds for one forward + backward of each Triton attention backend under Triton's interpreter, at shapes of the
kernel tests: what the interpreter's speed-ups in kernels/triton_runtime.py change.

    TRITON_INTERPRET=1 python experiments/scripts/measurements/interpreted_attention.py

Each case is run once to warm up, then timed once (fp32, causal, one thread). Another checkout's kernels: run it
from the repository root with PYTHONPATH=<that checkout>.
"""

import os
import time

os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported

import torch

import kernels

SHAPES = [(2, 3, 37, 16), (1, 2, 70, 64), (2, 1, 45, 128)]  # (batch, heads, T, head_dim)


def forward_backward(backend: str, shape: tuple[int, ...]) -> None:
    q, k, v = (torch.randn(shape, requires_grad=True) for _ in range(3))
    out = kernels.attention(q, k, v, backend=backend, causal=True)
    torch.autograd.grad(out, (q, k, v), torch.randn_like(out))


torch.set_num_threads(1)
print(f"kernels from {os.path.dirname(kernels.__file__)}")
total = 0.0
for backend in ("triton", "triton_naive"):
    for shape in SHAPES:
        forward_backward(backend, shape)
        start = time.perf_counter()
        forward_backward(backend, shape)
        seconds = time.perf_counter() - start
        total += seconds
        print(f"{backend:13s} {shape}: {seconds:.3f} s")
print(f"all six: {total:.2f} s")
