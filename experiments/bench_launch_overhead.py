"""Where the Triton attention's time goes at short sequences: the host's time to issue a call against the GPU's.

    python experiments/bench_launch_overhead.py      # needs a CUDA GPU; TRITON_INTERPRET=1 runs it on a CPU

make gpu-check showed the flash kernel behind sdpa at T <= 2048 while its kernels' GPU time is a fraction of
the call (profile-T1024.txt). For each shape and backend this prints, per call (mean of --calls calls after a
warm-up): the host's time to issue it (the loop's time before the final synchronize) and the wall time (after
it). Where issue >= wall, the GPU waits for Python: the call is host-bound. Then the same for the forward
kernel launched alone, through the autotuner and straight through its tuned config, and a cProfile of the
host side of triton's forward + backward (the functions with the most own time).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import kernels
from kernels.flash_attention import _flash_forward, launch_args
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
    for backend in ("eager", "sdpa", "triton") if DEVICE == "cuda" else ("sdpa", "triton"):
        attend = partial(kernels.attention, q, k, v, backend=backend)
        with torch.no_grad():
            forward = per_call_us(attend, calls)
        both = per_call_us(lambda attend=attend: attend().backward(grad), calls)
        print(f"{backend:>8}: forward {forward[0]:8.1f} / {forward[1]:8.1f}   "
              f"forward+backward {both[0]:8.1f} / {both[1]:8.1f}")  # fmt: skip

    # the forward kernel alone: through the autotuner, then straight through the config it chose
    out, lse = torch.empty_like(q), torch.empty(B * H, T, dtype=torch.float32, device=DEVICE)
    launch = (q, k, v, out, lse, *q.stride(), *k.stride(), *v.stride(), *out.stride(), H, T, D,
              triton.next_power_of_2(T), D**-0.5)  # fmt: skip
    common = launch_args(q, True)
    grid = lambda meta: (triton.cdiv(T, meta["BLOCK_M"]), B * H)
    tuned = per_call_us(lambda: _flash_forward[grid](*launch, **common), calls)
    config = getattr(_flash_forward, "best_config", _flash_forward.configs[0])
    fixed = (triton.cdiv(T, config.kwargs["BLOCK_M"]), B * H)
    direct = per_call_us(lambda: _flash_forward.fn[fixed](*launch, **common, **config.all_kwargs()), calls)
    print(f"forward kernel alone: via autotuner {tuned[0]:.1f} / {tuned[1]:.1f}, "
          f"direct ({config}) {direct[0]:.1f} / {direct[1]:.1f}")  # fmt: skip
    print(f"torch.cuda.is_available(): {per_call_us(torch.cuda.is_available, calls)[0]:.1f}")

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        kernels.attention(q, k, v, backend="triton").backward(grad)
    profiler.disable()
    print(f"cProfile, {calls} x triton forward+backward, host side, by own time:")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(22)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--shapes", nargs="+", default=["64x6x256x64", "2x16x1024x64"], help="BxHxTxD")
    args = parser.parse_args()
    device = torch.cuda.get_device_name() if DEVICE == "cuda" else "CPU (interpreted)"
    print(f"{device}; torch {torch.__version__}, triton {triton.__version__}")
    for shape in args.shapes:
        measure(*map(int, shape.split("x")), args.calls)


if __name__ == "__main__":
    main()
