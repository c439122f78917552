"""Attention backends against sequence length, in the style of Triton's tutorials (`triton.testing.perf_report`).

    python experiments/scripts/bench_attention.py [--write | --out DIR] [--lengths T ...] [--head-dims D ...]

For each head_dim (64, 128) and mode (forward, forward+backward): time (ms), TFLOP/s and memory against T,
for eager, sdpa, triton_naive and triton, bf16, causal. Writes one CSV and one PNG per (metric, mode,
head_dim) (--write: into experiments/attention/<machine>/, the committed record; default: the same under
outputs/) and prints the tables. A backend that runs out of
memory at some T gets an empty cell there (and a line in the output saying so).

On a GPU, memory is the peak allocated during the call (torch.cuda.max_memory_allocated) and time comes
from triton.testing.do_bench. On a CPU, the Triton columns read "needs GPU" (the interpreter would time
numpy, not the kernels); time comes from torch.utils.benchmark, and memory is the exact size of what
autograd saves for backward, which is where eager's O(T^2) score matrices live.
"""

from __future__ import annotations

import argparse
import sys
from functools import cache

import pandas as pd
import torch
import triton
import triton.testing
from torch.utils.benchmark import Timer

import kernels
from gpt.errors import one_line_errors
from gpt.machine import add_output_arguments, describe_machine, output_dir

ON_GPU = torch.cuda.is_available()
DEVICE = "cuda" if ON_GPU else "cpu"
BATCH, HEADS = (2, 16) if ON_GPU else (1, 4)
LENGTHS = [512, 1024, 2048, 4096, 8192, 16384] if ON_GPU else [256, 512, 1024, 2048, 4096]
HEAD_DIMS = [64, 128]
BACKENDS = list(kernels.BACKENDS)
RUNNABLE = BACKENDS if ON_GPU else [b for b in BACKENDS if b not in kernels.TRITON_BACKENDS]
MEMORY_LABEL = "peak allocated (MiB)" if ON_GPU else "saved for backward (MiB)"


def attention_flops(T: int, D: int, backward: bool) -> float:
    """Causal attention FLOPs: QK^T and PV are 2*T*T*D each, half of it masked; backward is 2.5x forward."""
    forward = 4 * BATCH * HEADS * T * T * D / 2
    return forward * (3.5 if backward else 1.0)


def saved_bytes(fn) -> int:
    """Bytes of the tensors autograd keeps for backward while running fn (each storage counted once)."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(storages.values())


@cache
def measure(backend: str, T: int, D: int, backward: bool) -> tuple[float, float]:
    """(milliseconds, MiB) for one call of the backend, forward only or forward + backward."""
    q, k, v = (
        torch.randn(BATCH, HEADS, T, D, device=DEVICE, dtype=torch.bfloat16, requires_grad=backward) for _ in range(3)
    )
    grad = torch.randn_like(q)

    def step():
        out = kernels.attention(q, k, v, backend=backend)
        if backward:
            out.backward(grad)

    if ON_GPU:
        try:
            step()
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            step()
            memory = torch.cuda.max_memory_allocated() - base
            ms = triton.testing.do_bench(step, grad_to_none=[q, k, v], return_mode="median")
        except Exception as error:
            reason = "out of memory" if isinstance(error, torch.cuda.OutOfMemoryError) else repr(error)[:300]
            print(f"{backend}: {reason} at T={T}, head_dim {D}{', with backward' if backward else ''}")
            return float("nan"), float("nan")
        finally:
            del q, k, v, grad
            torch.cuda.empty_cache()
    else:
        memory = saved_bytes(lambda: kernels.attention(q, k, v, backend=backend)) if backward else 0
        timer = Timer("step()", globals={"step": step}, num_threads=torch.get_num_threads())  # its default is 1
        ms = timer.blocked_autorange(min_run_time=1.0).median * 1e3
    return ms, memory / 2**20


def autotune_choices() -> str:
    """The config flash attention's autotuner chose for each (kernel, T bucket, head_dim block, ...) it met: which
    tiles won, and whether those copied by TMA descriptors did where they were candidates."""
    from kernels import flash_attention as flash

    lines = []
    for name, kernel in (("forward", flash.FORWARD), ("backward", flash.BACKWARD)):
        for (t_bucket, descriptors, causal, precision, block_d, dtype, _), config in kernel.tuned.items():
            operands = str(dtype).removeprefix("torch.") + (f" ({precision})" if dtype == torch.float32 else "")
            lines.append(
                f"{name}: T <= {t_bucket}, BLOCK_D {block_d}, {operands}, causal {causal}, "
                f"descriptors {'allowed' if descriptors else 'not allowed'}: {config}"
            )
    return "\n".join(lines) + "\n"


def benchmark(metric: str, backward: bool, D: int):
    mode = "fwd+bwd" if backward else "fwd"
    ylabel = {"ms": "time (ms)", "tflops": "TFLOP/s", "memory": MEMORY_LABEL}[metric]

    @triton.testing.perf_report(
        triton.testing.Benchmark(
            x_names=["T"],
            x_vals=LENGTHS,
            line_arg="backend",
            line_vals=BACKENDS,
            line_names=[b if b in RUNNABLE else f"{b} (needs GPU)" for b in BACKENDS],
            ylabel=ylabel,
            plot_name=f"attention-{metric}-{mode}-d{D}",
            args={"D": D, "backward": backward},
            x_log=True,
            y_log=metric != "tflops",
        )
    )
    def bench(T: int, backend: str, D: int, backward: bool) -> float:
        if backend not in RUNNABLE:
            return float("nan")  # "needs GPU": left blank in the CSV and the plot
        ms, mib = measure(backend, T, D, backward)
        return {"ms": ms, "tflops": attention_flops(T, D, backward) / ms * 1e-9, "memory": mib}[metric]

    return bench


def main() -> None:
    parser = argparse.ArgumentParser(description="attention backends against sequence length")
    add_output_arguments(parser, "attention")
    parser.add_argument("--no-memory", action="store_true", help="time and TFLOP/s only")
    parser.add_argument("--lengths", type=int, nargs="+", default=LENGTHS, help="sequence lengths T")
    parser.add_argument("--head-dims", type=int, nargs="+", default=HEAD_DIMS)
    args = parser.parse_args()
    LENGTHS[:], HEAD_DIMS[:] = args.lengths, args.head_dims
    out_dir = output_dir(args)
    out_dir.mkdir(parents=True, exist_ok=True)
    print(
        f"device: {describe_machine()}; batch {BATCH}, heads {HEADS}, bf16, causal; torch {torch.__version__}, "
        f"triton {triton.__version__}" + ("" if ON_GPU else "; triton columns: needs GPU")
    )
    metrics = ["ms", "tflops"] if args.no_memory else ["ms", "tflops", "memory"]
    for D in HEAD_DIMS:
        for backward in (False, True):
            for metric in metrics:
                if metric == "memory" and not backward and not ON_GPU:
                    continue  # nothing is saved for backward in a forward-only call
                benchmark(metric, backward, D).run(print_data=True, save_path=str(out_dir))
    if not ON_GPU:  # say why the Triton columns are empty, in the CSVs themselves
        for csv in out_dir.glob("*.csv"):
            table = pd.read_csv(csv)
            for column in (c for c in table.columns if "(needs GPU)" in c):
                table[column] = "needs GPU"
            table.to_csv(csv, index=False)
    if ON_GPU:
        (out_dir / "autotune.txt").write_text(autotune_choices())
    command = " ".join(["python experiments/scripts/bench_attention.py", *sys.argv[1:]])
    (out_dir / "DEVICE.txt").write_text(
        f"{describe_machine()}; torch {torch.__version__}, triton {triton.__version__}\ncommand: {command}\n"
    )


if __name__ == "__main__":
    with one_line_errors():  # a bad argument, checkpoint or config: one line, exit 2
        main()
