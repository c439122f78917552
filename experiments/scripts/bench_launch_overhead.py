"""Where the Triton attention's time goes at short sequences: the host's time to issue a call against the GPU's.

    python experiments/scripts/bench_launch_overhead.py      # needs a CUDA GPU; TRITON_INTERPRET=1 runs it on a CPU

make gpu-check showed the flash kernel behind sdpa at T <= 2048 while its kernels' GPU time is a fraction of
the call (profile-T1024.txt). For each shape and backend this prints, per call (mean of --calls calls after a
warm-up): the host's time to issue it (the loop's time before the final synchronize) and the wall time (after
it). Where issue >= wall, the GPU waits for Python: the call is host-bound. Then triton's forward+backward
through its custom operator (torch.compile's path, kernels/custom_op.py), the forward
kernel launched alone, through the autotuner and through TunedKernel (the tuned config, launched directly), and
a cProfile of the host side of triton's forward + backward (the functions with the most own time). The line
"host time to issue a forward+backward, triton / sdpa" is the figure `make gpu-check` holds to its goal.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from functools import partial

import torch

import kernels
from gpt.errors import one_line_errors
from kernels.flash_attention import FORWARD, _flash_forward, forward_launch
from kernels.triton_runtime import triton

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def per_call_us(call, calls: int) -> tuple[float, float]:
    """(issue, wall) microseconds per call."""
    for _ in range(5):
        call()
    synchronize = torch.cuda.synchronize if DEVICE == "cuda" else lambda: None
    synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        call()
    issued = time.perf_counter()
    synchronize()
    end = time.perf_counter()
    return (issued - start) / calls * 1e6, (end - start) / calls * 1e6


def measure(B: int, H: int, T: int, D: int, calls: int) -> None:
    q, k, v = (torch.randn(B, H, T, D, device=DEVICE, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    grad = torch.randn_like(q)
    print(f"\n== B={B} H={H} T={T} D={D}, bf16, causal: microseconds per call (issue / wall)")
    issue = {}  # backend -> host microseconds to issue one forward+backward
    for backend in ("eager", "sdpa", "triton") if DEVICE == "cuda" else ("sdpa", "triton"):
        attend = partial(kernels.attention, q, k, v, backend=backend)
        with torch.no_grad():
            forward = per_call_us(attend, calls)
        both = per_call_us(lambda attend=attend: attend().backward(grad), calls)
        issue[backend] = both[0]
        print(f"{backend:>8}: forward {forward[0]:8.1f} / {forward[1]:8.1f}   "
              f"forward+backward {both[0]:8.1f} / {both[1]:8.1f}")  # fmt: skip

    # the forward kernel alone, launched through Triton's autotuner on every call, and through TunedKernel (which
    # asks the autotuner once per key, then launches the chosen config straight through the JIT), as the backend does
    grid, key, launch, common = forward_launch(q, k, v, causal=True)
    autotuner = per_call_us(lambda: _flash_forward[grid](*launch, **common), calls)
    tuned = per_call_us(lambda: FORWARD(grid, key, *launch, **common), calls)
    print(f"forward kernel alone: through the autotuner {autotuner[0]:.1f} / {autotuner[1]:.1f}, "
          f"through TunedKernel {tuned[0]:.1f} / {tuned[1]:.1f}")  # fmt: skip
    print(f"host time to issue a forward+backward, triton / sdpa: {issue['triton'] / issue['sdpa']:.2f}x")
    # the same kernels through their custom operator: the path torch.compile's graphs call
    operator = per_call_us(lambda: torch.ops.kernels.flash_attention(q, k, v, True)[0].backward(grad), calls)
    print(f"triton forward+backward through torch.ops.kernels.flash_attention: {operator[0]:.1f} / {operator[1]:.1f}")

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        kernels.attention(q, k, v, backend="triton").backward(grad)
    profiler.disable()
    print(f"cProfile, {calls} x triton forward+backward, host side, by own time:")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(22)


def dispatch_overhead(calls: int) -> None:
    """What a call costs the host before any kernel: an empty forward + backward through a torch.autograd.Function
    (the Triton backends' eager path) and through a torch.library custom operator with registered autograd (their
    path under torch.compile; kernels/custom_op.py)."""

    class Empty(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return torch.empty_like(x)

        @staticmethod
        def backward(ctx, grad):
            return torch.empty_like(grad)

    @torch.library.custom_op("bench::empty", mutates_args=())
    def empty(x: torch.Tensor) -> torch.Tensor:
        return torch.empty_like(x)

    empty.register_fake(torch.empty_like)
    empty.register_autograd(lambda ctx, grad: torch.empty_like(grad))
    x, grad = torch.randn(4, device=DEVICE, requires_grad=True), torch.randn(4, device=DEVICE)
    function = per_call_us(lambda: Empty.apply(x).backward(grad), calls)[0]
    operator = per_call_us(lambda: empty(x).backward(grad), calls)[0]
    print(
        f"empty forward+backward, host microseconds: autograd.Function {function:.1f}, custom operator "
        f"{operator:.1f} (+{operator - function:.1f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--shapes", nargs="+", default=["64x6x256x64", "2x16x1024x64"], help="BxHxTxD")
    args = parser.parse_args()
    kernels.check_backend("triton")  # where it cannot run, say so before measuring anything
    device = torch.cuda.get_device_name() if DEVICE == "cuda" else "CPU (interpreted)"
    print(f"{device}; torch {torch.__version__}, triton {triton.__version__}")
    dispatch_overhead(max(args.calls, 1000))
    for shape in args.shapes:
        measure(*map(int, shape.split("x")), args.calls)


if __name__ == "__main__":
    with one_line_errors():  # a bad argument, checkpoint or config: one line, exit 2
        main()
