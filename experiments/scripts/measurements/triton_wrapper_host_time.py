"""The host time the flash attention's own Python adds to a forward + backward, launches left out, on any machine.

    TRITON_INTERPRET=1 python experiments/scripts/measurements/triton_wrapper_host_time.py [--calls 1000]

On a GPU a training step's attention is host-bound at the training shape (bench_launch_overhead.py): what the
host spends issuing it is the figure to cut. This times `kernels.attention(q, k, v, backend="triton")` forward +
backward with the kernel launches themselves replaced by no-ops (TunedKernel's call and the delta kernel's), so
that what is left is the wrapper: checks, allocations, strides and keys, autograd. Against it, the same through a
bare torch.autograd.Function that only allocates the same outputs: the floor any autograd-wrapped kernel pays.
Rounds alternate between the two, so that a drifting machine moves both, and the best round of each counts.
First, what one host call of triton.cdiv / triton.next_power_of_2 (constexpr functions) costs against the plain
Python the wrappers call (kernels/triton_runtime.py).
"""

from __future__ import annotations

import argparse
import time
import timeit

import torch
import triton

import kernels
import kernels.flash_attention as flash
from kernels.triton_runtime import TunedKernel, cdiv, next_power_of_2


class Floor(torch.autograd.Function):
    """What any autograd-wrapped attention allocates: out and lse forward, dq, dk, dv and delta backward."""

    @staticmethod
    def forward(ctx, q, k, v):
        out, lse = torch.empty_like(q), q.new_empty(q.shape[0] * q.shape[1], q.shape[2], dtype=torch.float32)
        ctx.save_for_backward(q, k, v, out, lse)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, _, _, _, lse = ctx.saved_tensors
        torch.empty_like(lse)
        return tuple(torch.empty_like(q) for _ in range(3))


def per_call_us(call, calls: int) -> float:
    for _ in range(200):
        call()
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--shape", default="64x6x256x64", help="BxHxTxD (only its strides and sizes matter)")
    args = parser.parse_args()
    print(f"triton {triton.__version__}, torch {torch.__version__}; host nanoseconds per call, best of 5 x 100,000:")
    for name, call in (("triton.cdiv(256, 64)", lambda: triton.cdiv(256, 64)), ("cdiv(256, 64)", lambda: cdiv(256, 64)),
                       ("triton.next_power_of_2(250)", lambda: triton.next_power_of_2(250)),
                       ("next_power_of_2(250)", lambda: next_power_of_2(250))):  # fmt: skip
        print(f"  {name:28} {min(timeit.repeat(call, number=100_000, repeat=5)) / 100_000 * 1e9:6.0f}")
    TunedKernel.__call__ = lambda self, grid, key, *launch, **constexprs: None
    flash._flash_backward_delta = type("NoLaunch", (), {"__getitem__": lambda self, grid: lambda *a, **k: None})()
    B, H, T, D = map(int, args.shape.split("x"))
    # a fused (B, T, 3, H, D) projection split into q, k, v views, as the models pass them; one batch row is enough
    qkv = torch.randn(1, T, 3, H, D, dtype=torch.bfloat16).expand(B, -1, -1, -1, -1).requires_grad_()
    q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))
    grad = torch.randn(B, H, T, D, dtype=torch.bfloat16)

    def wrapper():
        torch.autograd.grad(kernels.attention(q, k, v, backend="triton"), (q, k, v), grad)

    def floor():
        torch.autograd.grad(Floor.apply(q, k, v), (q, k, v), grad)

    print(f"{args.shape} bf16 causal, {args.calls} calls a round; host microseconds per forward + backward")
    results = {"wrapper": [], "floor": []}
    for _ in range(args.rounds):
        results["wrapper"].append(per_call_us(wrapper, args.calls))
        results["floor"].append(per_call_us(floor, args.calls))
    wrapper_us, floor_us = (min(results[name]) for name in ("wrapper", "floor"))
    print(f"  flash attention's wrapper, launches left out: {wrapper_us:6.1f} (best of {args.rounds})")
    print(f"  a bare autograd.Function, same allocations:   {floor_us:6.1f}")
    print(f"  the wrapper's own cost:                       {wrapper_us - floor_us:6.1f}")


if __name__ == "__main__":
    main()
