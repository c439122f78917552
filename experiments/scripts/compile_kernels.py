"""Compile every Triton kernel for real NVIDIA GPUs, without one: `make kernels-compile`.

Triton's interpreter runs the kernels on a CPU, but it never allocates shared memory or registers, so a tile
that cannot fit a GPU passes there. This compiles each kernel the way a GPU run would (Triton's own compiler
and the `ptxas` shipped in the triton wheel, for sm_80 and sm_90; the arguments specialised by Triton's own
launcher code) for every dtype and fp32 precision, head dim, causality, autotune config and size alignment
(SIZES) the wrappers can launch, and fails on

    a compile error;
    shared memory over the target's per-block limit (sm_80: 163 KiB, sm_90: 227 KiB);
    register spills over SPILL_BUDGET bytes per thread.

    python experiments/scripts/compile_kernels.py            # everything; the table to outputs/experiments/...
    python experiments/scripts/compile_kernels.py --write    # ... to experiments/kernels_compile/ (make target)
    python experiments/scripts/compile_kernels.py --sample   # the largest tile of each kernel only (make test)

Run it without TRITON_INTERPRET=1: the interpreter's kernels cannot be compiled.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import io
import itertools
import math
import os
import re
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
import triton
import triton.language as tl
from triton import knobs
from triton.backends.compiler import GPUTarget
from triton.backends.nvidia.compiler import get_ptxas
from triton.compiler import ASTSource, make_backend
from triton.runtime.jit import create_function_from_signature

import kernels
import kernels.flash_attention as flash
import kernels.naive_attention as naive
import kernels.triton_runtime as runtime
from gpt.machine import add_output_arguments, output_dir
from kernels import softmax

TARGETS = {"sm_80": (80, 166_912), "sm_90": (90, 232_448)}  # compute capability, shared bytes per block
# Spilled registers go to local memory, cached in L1: a few words spilled once per program (the epilogue) cost
# nothing measurable, a spill inside the key loop costs a round trip per tile. 64 bytes = 16 fp32 values per
# thread allows the former and not the latter at any tile the configs use.
SPILL_BUDGET = 64
# (torch dtype name, pointer type, tl.dot input_precision): fp32 in each of torch's three matmul precisions
OPERANDS = [
    ("float32", "fp32", "ieee"),
    ("float32", "fp32", "tf32x3"),
    ("float32", "fp32", "tf32"),
    ("bfloat16", "bf16", "tf32"),
    ("float16", "fp16", "tf32"),
]
HEAD_DIM_BLOCKS = [16, 32, 64, 128]  # BLOCK_D: head_dim rounded up to a power of two, at least 16
SOFTMAX_ROWS = [2**n for n in range(4, softmax.MAX_ROW.bit_length())]  # BLOCK: row length rounded up to a
# power of two, up to MAX_ROW
KERNEL_SOURCES = ["flash_attention.py", "naive_attention.py", "softmax.py", "triton_runtime.py"]


# Triton's launcher specialises a kernel on its arguments: every integer that is a multiple of 16 (sizes and
# strides) compiles as one, an integer 1 as the constant 1, each pointer on its dtype and 16-byte alignment. A
# multiple of 16 lets it prove masked loads contiguous, and so vectorise and pipeline them (cp.async): the
# same config then takes 2-3x the shared memory. Each case is compiled for both ends: every size a multiple of
# 16 (the training shapes: T = 256, head_dim 64) and none (T = 250, head_dim 4 short of its block).
SIZES = ("aligned", "ragged")


@dataclass
class Case:
    """One kernel specialisation: what Triton's launcher compiles for some launch of the wrappers."""

    kernel: str
    fn: object  # the @triton.jit function
    args: dict  # every argument by name, as the wrapper passes it (a pointer: a tiny tensor of its dtype)
    num_warps: int
    num_stages: int
    sizes: str  # one of SIZES
    target: str = "sm_90"
    result: dict = field(default_factory=dict)

    def describe(self) -> str:
        constexprs = {p.name for p in self.fn.params if p.is_constexpr}
        shown = {k: v for k, v in self.args.items() if k in constexprs and (k != "PRECISION" or self.dtype() == "fp32")}
        shown = {k: getattr(v, "name", v) for k, v in shown.items()}  # tl.bfloat16 -> bf16
        return " ".join(f"{k}={v}" for k, v in shown.items()) + f" warps={self.num_warps} stages={self.num_stages}"

    def dtype(self) -> str:
        return DTYPE_NAMES[next(v.dtype for v in self.args.values() if isinstance(v, torch.Tensor))]


DTYPE_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
TORCH_DTYPES = {name: dtype for dtype, name in DTYPE_NAMES.items()}


def pointer(dtype: str) -> torch.Tensor:
    """A pointer argument as the launcher sees it: a tensor of this dtype, 16-byte aligned like torch's allocations
    (its size and strides do not matter: the kernels take strides as arguments of their own)."""
    return torch.empty(16, dtype=TORCH_DTYPES[dtype])


def strides(name: str, layout: tuple, axes: str = "bhtd") -> dict:
    """stride_<name>b, stride_<name>h, ... for a layout's strides, in the kernels' naming."""
    return {f"stride_{name}{axis}": stride for axis, stride in zip(axes, layout, strict=True)}


def specialise(case: Case) -> tuple[dict, dict, dict, dict]:
    """(signature, constexprs, attrs, options) as Triton's launcher derives them from the case's arguments: its own
    binder (the code a kernel[grid](...) call runs) with a backend for the case's target."""
    backend = make_backend(GPUTarget("cuda", TARGETS[case.target][0], 32))
    binder = create_function_from_signature(case.fn.signature, case.fn.params, backend)
    launch = {"num_warps": case.num_warps, "num_stages": case.num_stages}
    bound, specialisation, parsed = binder(**case.args, **launch)
    _, signature, constexprs, attrs = case.fn._pack_args(backend, launch, bound, specialisation, parsed)
    return signature, constexprs, attrs, launch


def build(case: Case):
    """The case compiled for its target, as a launch on that GPU would compile it (PTX, cubin, metadata)."""
    signature, constexprs, attrs, options = specialise(case)
    return triton.compile(
        ASTSource(case.fn, signature, constexprs, attrs),
        target=GPUTarget("cuda", TARGETS[case.target][0], 32),
        options=options,
    )


def compile_case(case: Case) -> dict:
    """Compile one case for its target; shared bytes from Triton, registers and spills from `ptxas -v`."""
    shared_limit = TARGETS[case.target][1]
    log = io.StringIO()
    knobs.nvidia.dump_ptxas_log = True  # Triton prints ptxas's -v report to stdout
    try:
        with contextlib.redirect_stdout(log):
            compiled = build(case)
    except Exception as error:
        return {"error": " ".join(str(error).split())[:200]}
    report = log.getvalue()

    def number(pattern: str) -> int:
        match = re.search(pattern, report)
        return int(match.group(1)) if match else -1

    result = {
        # loads copied global -> shared asynchronously (cp.async, or TMA's cp.async.bulk): the pipelined ones
        "async_copies": len(re.findall(r"\bcp\.async(?:\.bulk)?\.[\w.]*shared", compiled.asm["ptx"])),
        "shared": compiled.metadata.shared,
        "registers": number(r"Used (\d+) registers"),
        "spills": number(r"(\d+) bytes spill stores"),
        "error": "",
    }
    if result["shared"] > shared_limit:
        result["error"] = f"shared memory {result['shared']} B > {shared_limit} B"
    elif result["spills"] > SPILL_BUDGET:
        result["error"] = f"spills {result['spills']} B > {SPILL_BUDGET} B"
    elif result["registers"] < 0:
        result["error"] = "no ptxas report"
    return result


def attention_shape(sizes: str, block_d: int) -> tuple[int, int, int]:
    """(heads, T, head_dim) of an example launch: head_dim is block_d itself, or 4 short of it (still block_d)."""
    return (2, 256, block_d) if sizes == "aligned" else (2, 250, block_d - 4)


def flash_forward_args(dtype: str, sizes: str, block_d: int) -> dict:
    """q, k, v as the model passes them, split off one fused (B, T, 3, H, D) projection; out and lse fresh."""
    H, T, D = attention_shape(sizes, block_d)
    split, fresh = (3 * H * D * T, D, 3 * H * D, 1), (H * T * D, T * D, D, 1)
    return {
        **dict.fromkeys("QKVO", pointer(dtype)),
        "LSE": pointer("fp32"),
        **strides("q", split),
        **strides("k", split),
        **strides("v", split),
        **strides("o", fresh),
        **{"H": H, "T": T, "D": D, "T_BUCKET": runtime.next_power_of_2(T), "TMA_OK": 1, "scale": D**-0.5},
    }


def fresh_layout(forward: dict) -> tuple:
    """The strides of a fresh contiguous (B, H, T, D) tensor, as the forward's output has them."""
    return tuple(forward[f"stride_o{axis}"] for axis in "bhtd")


def flash_backward_args(dtype: str, sizes: str, block_d: int) -> dict:
    """The forward's q, k, v; dO and the gradients fresh and contiguous."""
    forward = flash_forward_args(dtype, sizes, block_d)
    fresh = fresh_layout(forward)
    return {
        **{name: forward[name] for name in "QKV"},
        **{name: pointer(dtype) for name in ("DO", "DQ", "DK", "DV")},
        **{name: pointer("fp32") for name in ("LSE", "DELTA")},
        **{name: value for name, value in forward.items() if name.startswith(("stride_q", "stride_k", "stride_v"))},
        **strides("do", fresh),
        **strides("g", fresh),
        **{name: forward[name] for name in ("H", "T", "D", "T_BUCKET", "TMA_OK", "scale")},
    }


def attention_cases(target: str) -> list[Case]:
    """What the attention wrappers can launch on this target: flash's usable autotune configs (those with TMA
    descriptors too, where the target has them), naive's tile."""
    capability = (TARGETS[target][0] // 10, 0)
    cases = []
    flash_kernels = [
        ("flash forward", flash._flash_forward.fn, flash.FORWARD_TUNING, flash_forward_args),
        ("flash backward dQ dK dV", flash._flash_backward.fn, flash.BACKWARD_TUNING, flash_backward_args),
    ]
    for (name, fn, configs, make_args), (_, dtype, precision), block_d, causal, sizes in itertools.product(
        flash_kernels, OPERANDS, HEAD_DIM_BLOCKS, (True, False), SIZES
    ):
        for config in flash.usable(configs, 4 if dtype == "fp32" else 2, block_d, capability, descriptors=True):
            constexprs = {"CAUSAL": causal, "PRECISION": precision, "BLOCK_D": block_d, **config.kwargs}
            args = {**make_args(dtype, sizes, block_d), **constexprs}
            cases.append(Case(name, fn, args, config.num_warps, config.num_stages, sizes, target))
    for dtype, block_d, sizes in itertools.product(("fp32", "bf16", "fp16"), HEAD_DIM_BLOCKS, SIZES):
        forward = flash_forward_args(dtype, sizes, block_d)
        args = {
            **{name: forward[name] for name in ("O", "H", "T", "D")},
            "DO": pointer(dtype),
            "DELTA": pointer("fp32"),
            **{name: value for name, value in forward.items() if name.startswith("stride_o")},
            **strides("do", fresh_layout(forward)),
            "BLOCK_M": flash.DELTA_ROWS,
            "BLOCK_D": block_d,
        }
        cases.append(Case("flash backward delta", flash._flash_backward_delta, args, 4, 3, sizes, target))
    for (_, dtype, precision), a_transposed, b_transposed, sizes in itertools.product(
        OPERANDS, (False, True), (False, True), SIZES
    ):  # each operand plain or transposed (the backward's P^T dO, dO V^T, dS^T Q)
        M, N, K = (256, 256, 64) if sizes == "aligned" else (250, 250, 60)
        tile = naive.TILES[4 if dtype == "fp32" else 2]
        args = {
            "a_ptr": pointer(dtype),
            "b_ptr": pointer(dtype),
            "c_ptr": pointer("fp32"),
            **{"M": M, "N": N, "K": K, "alpha": K**-0.5},
            **strides("a", (M * K, 1, M) if a_transposed else (M * K, K, 1), "bmk"),
            **strides("b", (K * N, 1, K) if b_transposed else (K * N, N, 1), "bkn"),
            **strides("c", (M * N, N, 1), "bmn"),
            "DOT": {"fp32": tl.float32, "bf16": tl.bfloat16, "fp16": tl.float16}[dtype],
            "PRECISION": precision,
            **{k: v for k, v in tile.items() if k.startswith("BLOCK")},
        }
        cases.append(
            Case("naive matmul", naive._batched_matmul, args, tile["num_warps"], tile["num_stages"], sizes, target)
        )
    return cases


def softmax_cases(target: str) -> list[Case]:
    """Rows of n_cols scores (fp32, as the naive attention keeps them) for every block the wrapper picks."""
    cases = []
    for dtype, block, sizes in itertools.product(("fp32", "bf16", "fp16"), SOFTMAX_ROWS, SIZES):
        n_cols = block if sizes == "aligned" else block - 3  # the same block: more than half of it
        config = softmax.launch_config(n_cols)
        warps = config.pop("num_warps")
        rows = {"n_rows": 4 * n_cols, "n_cols": n_cols, **config}
        for causal in (True, False):
            args = {
                "x_ptr": pointer("fp32"),
                "y_ptr": pointer(dtype),
                "x_row_stride": n_cols,
                "y_row_stride": n_cols,
                "rows_per_matrix": n_cols if causal else 1,
                "CAUSAL": causal,
                **rows,
            }
            cases.append(
                Case("softmax forward", softmax._softmax_forward, args, warps, config["NUM_STAGES"], sizes, target)
            )
        args = {
            "y_ptr": pointer(dtype),
            "dy_ptr": pointer("fp32"),
            "dx_ptr": pointer("fp32"),
            **dict.fromkeys(("y_row_stride", "dy_row_stride", "dx_row_stride"), n_cols),
            **rows,
        }
        cases.append(
            Case("softmax backward", softmax._softmax_backward, args, warps, config["NUM_STAGES"], sizes, target)
        )
    return cases


def _compile_nth(sample: bool, index: int) -> dict:
    """Compile case `index` in a worker process (jit functions don't pickle, so each worker lists the cases)."""
    return compile_case(all_cases(sample)[index])


def all_cases(sample: bool) -> list[Case]:
    cases = [case for target in TARGETS for case in attention_cases(target) + softmax_cases(target)]
    if sample:  # the largest tiles of each kernel, in fp32 FMAs (the most registers) and bf16 (tensor cores),
        # at aligned sizes (pipelined loads: the most shared memory)
        largest = {}
        for case in cases:
            fp32_on_tensor_cores = case.dtype() == "fp32" and case.args.get("PRECISION", "ieee") != "ieee"
            if case.dtype() == "fp16" or fp32_on_tensor_cores or case.sizes != "aligned":
                continue
            blocks = [v for k, v in case.args.items() if k.startswith("BLOCK") and isinstance(v, int)]
            size = (math.prod(blocks), case.num_warps)
            key = (case.kernel, case.target, case.dtype(), case.args.get("PRECISION"))
            if key not in largest or size > largest[key][0]:
                largest[key] = (size, case)
        cases = [case for _, case in largest.values()]
    return cases


def source_hash() -> str:
    """A fingerprint of the kernels' sources: the committed table is stale once it changes."""
    digest = hashlib.sha256()
    for name in KERNEL_SOURCES:
        digest.update((Path(kernels.__file__).parent / name).read_bytes())
    return digest.hexdigest()[:16]


def write_table(cases: list[Case], out: Path) -> Path:
    """The table of every case, and its summary: a function of the kernels' sources and the compiler's versions
    alone (no timings), so that writing it again over an unchanged tree changes nothing."""
    out.mkdir(parents=True, exist_ok=True)
    columns = [
        "kernel",
        "target",
        "dtype",
        "sizes",
        "config",
        "shared_bytes",
        "registers",
        "spill_bytes",
        "async_copies",
        "error",
    ]
    rows = [
        [
            c.kernel,
            c.target,
            c.dtype(),
            c.sizes,
            c.describe(),
            c.result.get("shared", ""),
            c.result.get("registers", ""),
            c.result.get("spills", ""),
            c.result.get("async_copies", ""),
            c.result["error"],
        ]
        for c in cases
    ]
    with open(out / "kernels_compile.csv", "w", newline="") as f:
        csv.writer(f).writerows([columns, *rows])
    ptxas = ", ".join(f"{target} {get_ptxas(capability).version}" for target, (capability, _) in TARGETS.items())
    failed = [c for c in cases if c.result["error"]]
    summary = out / "README.md"
    worst, pipelined = {}, {}
    for c in cases:
        key = (c.kernel, c.target)
        shared, regs, spills = worst.get(key, (0, 0, 0))
        worst[key] = (
            max(shared, c.result.get("shared", 0)),
            max(regs, c.result.get("registers", 0)),
            max(spills, c.result.get("spills", 0)),
        )
        count = pipelined.setdefault((*key, c.sizes), [0, 0])
        count[0] += c.result.get("async_copies", 0) > 0
        count[1] += 1

    def share(key, sizes):
        done, of = pipelined.get((*key, sizes), (0, 0))
        return f"{done}/{of}"

    lines = [
        "# Every Triton kernel compiled for sm_80 and sm_90, without a GPU",
        "",
        f"Command: `make kernels-compile` (`python experiments/scripts/compile_kernels.py --write`), {len(cases)} "
        f"compilations; triton {triton.__version__}, ptxas ({ptxas}). Kernel sources: `{source_hash()}`.",
        f"Limits: shared memory per block {TARGETS['sm_80'][1]} B (sm_80) / {TARGETS['sm_90'][1]} B (sm_90), "
        f"spills <= {SPILL_BUDGET} B per thread (experiments/scripts/compile_kernels.py says why). "
        f"Failures: {len(failed)}.",
        "",
        "Each case is compiled as Triton's launcher specialises it, at sizes that are multiples of 16 (aligned: "
        "T = 256, head_dim 64) and at sizes that are not (ragged). Every case (kernel, target, dtype, sizes, config, "
        "shared bytes, registers, spills, async copies): `kernels_compile.csv`. The largest figures per kernel and "
        "target, and how many cases pipeline their loads (asynchronous copies to shared memory):",
        "",
        "| kernel | target | max shared bytes | max registers | max spill bytes | pipelined: aligned | ragged |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
        *[
            f"| {k} | {t} | {s} | {r} | {p} | {share((k, t), 'aligned')} | {share((k, t), 'ragged')} |"
            for (k, t), (s, r, p) in worst.items()
        ],
    ]
    summary.write_text("\n".join(lines) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", action="store_true", help="only the largest tile of each kernel")
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    add_output_arguments(parser, "kernels_compile", per_machine=False)
    args = parser.parse_args(argv)
    if runtime.INTERPRETING:
        print("error: unset TRITON_INTERPRET: the interpreter's kernels cannot be compiled for a GPU", file=sys.stderr)
        return 2
    # a fresh compile cache: a cached kernel skips ptxas, whose report gives the registers and spills
    os.environ["TRITON_CACHE_DIR"] = tempfile.mkdtemp(prefix="kernels-compile-")
    cases = all_cases(args.sample)
    start = time.time()
    with ProcessPoolExecutor(args.jobs) as pool:
        results = pool.map(_compile_nth, itertools.repeat(args.sample), range(len(cases)), chunksize=4)
        for case, result in zip(cases, results, strict=True):
            case.result = result
    seconds = time.time() - start
    failed = [c for c in cases if c.result["error"]]
    print(
        f"{'kernel':23} {'target':6} {'dtype':5} {'sizes':7} {'shared':>7} {'regs':>4} {'spill':>5} {'async':>5}"
        "  config"
    )
    for c in cases:
        r = c.result
        print(
            f"{c.kernel:23} {c.target:6} {c.dtype():5} {c.sizes:7} {r.get('shared', ''):>7} "
            f"{r.get('registers', ''):>4} {r.get('spills', ''):>5} {r.get('async_copies', ''):>5}  {c.describe()}"
            + (f"  FAILED: {r['error']}" if r["error"] else "")
        )
    if not args.sample:
        print(f"wrote {write_table(cases, output_dir(args))}")
    print(f"{len(cases)} compilations in {seconds:.0f} s, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
