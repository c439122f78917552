"""Compile every Triton kernel for real NVIDIA GPUs, without one: `make kernels-compile`.

Triton's interpreter runs the kernels on a CPU, but it never allocates shared memory or registers, so a tile
that cannot fit a GPU passes there. This compiles each kernel the way a GPU run would (Triton's own compiler
and the `ptxas` shipped in the triton wheel, for sm_80 and sm_90) for every dtype and fp32 precision, head
dim, causality and autotune config the wrappers can launch, and fails on

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

import triton
import triton.language as tl
from triton import knobs
from triton.backends.compiler import GPUTarget
from triton.backends.nvidia.compiler import get_ptxas
from triton.compiler import ASTSource

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


@dataclass
class Case:
    """One kernel specialisation: what the wrapper would launch for some input."""

    kernel: str
    fn: object  # the @triton.jit function
    pointers: dict  # pointer argument -> element type ("bf16", "fp32", ...)
    constexprs: dict
    num_warps: int
    num_stages: int
    floats: tuple = ()
    unit_strides: tuple = ()  # stride arguments that are 1 at run time (Triton makes those compile-time 1)
    target: str = "sm_90"
    result: dict = field(default_factory=dict)

    def describe(self) -> str:
        shown = {k: v for k, v in self.constexprs.items() if k != "PRECISION" or self.pointers.get("Q") == "fp32"}
        return " ".join(f"{k}={v}" for k, v in shown.items()) + f" warps={self.num_warps} stages={self.num_stages}"

    def dtype(self) -> str:
        return next(iter(self.pointers.values()))


def _signature(case: Case) -> tuple[dict, dict, dict]:
    signature, constexprs = {}, dict(case.constexprs)
    for name in case.fn.arg_names:
        if name in case.pointers:
            signature[name] = f"*{case.pointers[name]}"
        elif name in case.constexprs:
            signature[name] = "constexpr"
        elif name in case.unit_strides:
            signature[name], constexprs[name] = "constexpr", 1
        else:
            signature[name] = "fp32" if name in case.floats else "i32"
    # pointers from torch's allocator are 16-byte aligned, and the row strides multiples of 16 elements
    divisible = {
        (i,): [["tt.divisibility", 16]]
        for i, name in enumerate(case.fn.arg_names)
        if name in case.pointers
        or (name.startswith("stride") and name not in case.unit_strides and name not in case.constexprs)
    }
    return signature, constexprs, divisible


def compile_case(case: Case) -> dict:
    """Compile one case for its target; shared bytes from Triton, registers and spills from `ptxas -v`."""
    signature, constexprs, attrs = _signature(case)
    capability, shared_limit = TARGETS[case.target]
    log = io.StringIO()
    knobs.nvidia.dump_ptxas_log = True  # Triton prints ptxas's -v report to stdout
    try:
        with contextlib.redirect_stdout(log):
            compiled = triton.compile(
                ASTSource(case.fn, signature, constexprs, attrs),
                target=GPUTarget("cuda", capability, 32),
                options={"num_warps": case.num_warps, "num_stages": case.num_stages},
            )
    except Exception as error:
        return {"error": " ".join(str(error).split())[:200]}
    report = log.getvalue()

    def number(pattern: str) -> int:
        match = re.search(pattern, report)
        return int(match.group(1)) if match else -1

    result = {
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


def attention_cases(target: str) -> list[Case]:
    """What the attention wrappers can launch on this target: flash's usable autotune configs, naive's tile."""
    capability = (TARGETS[target][0] // 10, 0)
    cases = []
    kernels = [
        ("flash forward", flash._flash_forward, flash.FORWARD_TUNING, ["Q", "K", "V", "O"], ["LSE"], ("scale",)),
        (
            "flash backward dQ dK dV",
            flash._flash_backward,
            flash.BACKWARD_TUNING,
            ["Q", "K", "V", "DO", "DQ", "DK", "DV"],
            ["LSE", "DELTA"],
            ("scale",),
        ),
    ]
    for (name, tuner, configs, tensors, fp32_buffers, floats), (
        _,
        pointer,
        precision,
    ), block_d, causal in itertools.product(kernels, OPERANDS, HEAD_DIM_BLOCKS, (True, False)):
        unit = tuple(a for a in tuner.fn.arg_names if a.startswith("stride") and a.endswith("d"))
        pointers = {**dict.fromkeys(tensors, pointer), **dict.fromkeys(fp32_buffers, "fp32")}
        for config in flash.usable(configs, 4 if pointer == "fp32" else 2, block_d, capability):
            cases.append(
                Case(
                    name,
                    tuner.fn,
                    pointers,
                    {"CAUSAL": causal, "PRECISION": precision, "BLOCK_D": block_d, **config.kwargs},
                    config.num_warps,
                    config.num_stages,
                    floats,
                    unit,
                    target,
                )
            )
    for pointer, block_d in itertools.product(("fp32", "bf16", "fp16"), HEAD_DIM_BLOCKS):
        cases.append(
            Case(
                "flash backward delta",
                flash._flash_backward_delta,
                {"O": pointer, "DO": pointer, "DELTA": "fp32"},
                {"BLOCK_M": 64, "BLOCK_D": block_d},
                4,
                3,
                unit_strides=("stride_od", "stride_dod"),
                target=target,
            )
        )
    for (_, pointer, precision), a_unit, b_unit in itertools.product(
        OPERANDS, ("stride_ak", "stride_am"), ("stride_bn", "stride_bk")
    ):  # each operand plain or transposed
        tile = naive.TILES[4 if pointer == "fp32" else 2]
        cases.append(
            Case(
                "naive matmul",
                naive._batched_matmul,
                {"a_ptr": pointer, "b_ptr": pointer, "c_ptr": "fp32"},
                {
                    "DOT": {"fp32": tl.float32, "bf16": tl.bfloat16, "fp16": tl.float16}[pointer],
                    "PRECISION": precision,
                    **{k: v for k, v in tile.items() if k.startswith("BLOCK")},
                },
                tile["num_warps"],
                tile["num_stages"],
                ("alpha",),
                (a_unit, b_unit, "stride_cn"),
                target,
            )
        )
    return cases


def softmax_cases(target: str) -> list[Case]:
    cases = []
    for pointer, n_cols in itertools.product(("fp32", "bf16", "fp16"), SOFTMAX_ROWS):
        config = softmax.launch_config(n_cols)
        warps, stages = config.pop("num_warps"), config["NUM_STAGES"]
        for causal in (True, False):
            cases.append(
                Case(
                    "softmax forward",
                    softmax._softmax_forward,
                    {"x_ptr": "fp32", "y_ptr": pointer},
                    {"CAUSAL": causal, **config},
                    warps,
                    stages,
                    target=target,
                )
            )
        cases.append(
            Case(
                "softmax backward",
                softmax._softmax_backward,
                {"y_ptr": pointer, "dy_ptr": "fp32", "dx_ptr": "fp32"},
                config,
                warps,
                stages,
                target=target,
            )
        )
    return cases


def _compile_nth(sample: bool, index: int) -> dict:
    """Compile case `index` in a worker process (jit functions don't pickle, so each worker lists the cases)."""
    return compile_case(all_cases(sample)[index])


def all_cases(sample: bool) -> list[Case]:
    cases = [case for target in TARGETS for case in attention_cases(target) + softmax_cases(target)]
    if sample:  # the largest tiles of each kernel, in fp32 FMAs (the most registers) and bf16 (tensor cores)
        largest = {}
        for case in cases:
            if case.dtype() == "fp16" or case.constexprs.get("PRECISION") in ("tf32x3", "tf32"):
                continue
            size = (math.prod(v for k, v in case.constexprs.items() if k.startswith("BLOCK")), case.num_warps)
            key = (case.kernel, case.target, case.dtype(), case.constexprs.get("PRECISION"))
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
    columns = ["kernel", "target", "dtype", "config", "shared_bytes", "registers", "spill_bytes", "error"]
    rows = [
        [
            c.kernel,
            c.target,
            c.dtype(),
            c.describe(),
            c.result.get("shared", ""),
            c.result.get("registers", ""),
            c.result.get("spills", ""),
            c.result["error"],
        ]
        for c in cases
    ]
    with open(out / "kernels_compile.csv", "w", newline="") as f:
        csv.writer(f).writerows([columns, *rows])
    ptxas = ", ".join(f"{target} {get_ptxas(capability).version}" for target, (capability, _) in TARGETS.items())
    failed = [c for c in cases if c.result["error"]]
    summary = out / "README.md"
    worst = {}
    for c in cases:
        key = (c.kernel, c.target)
        shared, regs, spills = worst.get(key, (0, 0, 0))
        worst[key] = (
            max(shared, c.result.get("shared", 0)),
            max(regs, c.result.get("registers", 0)),
            max(spills, c.result.get("spills", 0)),
        )
    lines = [
        "# Every Triton kernel compiled for sm_80 and sm_90, without a GPU",
        "",
        f"Command: `make kernels-compile` (`python experiments/scripts/compile_kernels.py --write`), {len(cases)} "
        f"compilations; triton {triton.__version__}, ptxas ({ptxas}). Kernel sources: `{source_hash()}`.",
        f"Limits: shared memory per block {TARGETS['sm_80'][1]} B (sm_80) / {TARGETS['sm_90'][1]} B (sm_90), "
        f"spills <= {SPILL_BUDGET} B per thread (experiments/scripts/compile_kernels.py says why). "
        f"Failures: {len(failed)}.",
        "",
        "Every case (kernel, target, dtype, config, shared bytes, registers, spills): `kernels_compile.csv`.",
        "The largest figures per kernel and target:",
        "",
        "| kernel | target | max shared bytes | max registers | max spill bytes |",
        "| --- | --- | ---: | ---: | ---: |",
        *[f"| {k} | {t} | {s} | {r} | {p} |" for (k, t), (s, r, p) in worst.items()],
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
    print(f"{'kernel':22} {'target':6} {'dtype':5} {'shared':>7} {'regs':>4} {'spill':>5}  config")
    for c in cases:
        r = c.result
        print(
            f"{c.kernel:22} {c.target:6} {c.dtype():5} {r.get('shared', ''):>7} {r.get('registers', ''):>4} "
            f"{r.get('spills', ''):>5}  {c.describe()}" + (f"  FAILED: {r['error']}" if r["error"] else "")
        )
    if not args.sample:
        print(f"wrote {write_table(cases, output_dir(args))}")
    print(f"{len(cases)} compilations in {seconds:.0f} s, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
