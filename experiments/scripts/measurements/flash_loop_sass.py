"""What an H100 / H200 issues per key tile: the SASS instructions in the flash kernels' loops, without a GPU.

    python experiments/scripts/measurements/flash_loop_sass.py [--head-dims 64 128] [--target sm_90]

Compiles each bf16 causal autotune config as Triton's launcher specialises it at the training shapes
(compile_kernels.py's "aligned" sizes), disassembles the cubin with the triton wheel's `cuobjdump`, and prints,
for every loop (a conditional branch backwards over more than 16 instructions: the key / query tile loops, not
the barrier waits), its instruction count and the most frequent opcodes. At these tiles a warp's loop is bound
by issuing instructions as much as by its matrix work, so fewer instructions per tile is a proxy for speed that
needs no GPU; only a GPU says how much of it turns into time (make gpu-check).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import triton

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import compile_kernels  # experiments/scripts/compile_kernels.py

CUOBJDUMP = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
INSTRUCTION = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_]*)[^;]*?(?:0x([0-9a-f]+))?\s*;")


def sass(case: compile_kernels.Case) -> str:
    with tempfile.NamedTemporaryFile(suffix=".cubin") as cubin:
        cubin.write(compile_kernels.build(case).asm["cubin"])
        cubin.flush()
        return subprocess.run([CUOBJDUMP, "-sass", cubin.name], capture_output=True, text=True, check=True).stdout


def loops(text: str) -> list[tuple[int, collections.Counter]]:
    """(instructions, opcode counts) of each loop, in program order."""
    code = [(int(m[1], 16), bool(m[2]), m[3], m[4]) for m in INSTRUCTION.finditer(text)]
    found = []
    for address, predicated, opcode, target in code:
        if opcode == "BRA" and predicated and target and int(target, 16) < address:
            body = [op for at, _, op, _ in code if int(target, 16) <= at <= address]
            if len(body) > 16:
                found.append((len(body), collections.Counter(body)))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--head-dims", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--target", default="sm_90", choices=compile_kernels.TARGETS)
    args = parser.parse_args()
    os.environ["TRITON_CACHE_DIR"] = tempfile.mkdtemp(prefix="flash-loop-sass-")
    print(f"triton {triton.__version__}, {args.target}, bf16, causal, T = 256; per loop: instructions, top opcodes")
    for case in compile_kernels.attention_cases(args.target):
        if not case.kernel.startswith("flash") or "delta" in case.kernel or case.dtype() != "bf16":
            continue
        if case.sizes != "aligned" or not case.args["CAUSAL"] or case.args["BLOCK_D"] not in args.head_dims:
            continue
        config = " ".join(part for part in case.describe().split() if not part.startswith(("CAUSAL", "PRECISION")))
        print(f"{case.kernel:24} {config}")
        for count, opcodes in loops(sass(case)):
            print(f"    {count:4}  " + " ".join(f"{op}={n}" for op, n in opcodes.most_common(8)))


if __name__ == "__main__":
    main()
