"""The kernels compile for real GPUs (sm_80, sm_90) within their limits, checked without a GPU.

`make kernels-compile` (experiments/scripts/compile_kernels.py) compiles every config (minutes); here the largest
tile of each kernel, plus proof that the checker catches what it must. Both run in a subprocess without
TRITON_INTERPRET, which the test session sets, since the interpreter's kernels cannot be compiled.
"""

import importlib.util
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

triton = pytest.importorskip("triton")


def run_python(*args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=600)


@pytest.mark.slow
def test_the_largest_tile_of_every_kernel_compiles_for_sm80_and_sm90_within_limits():
    result = run_python("experiments/scripts/compile_kernels.py", "--sample")
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith(("flash", "naive", "softmax"))]
    for kernel in (
        "flash forward",
        "flash backward dQ dK dV",
        "naive matmul",
        "softmax forward",
        "softmax backward",
    ):
        compiled_for = {
            target
            for target in ("sm_80", "sm_90")
            if any(row.startswith(kernel) and f" {target} " in row for row in rows)
        }
        assert compiled_for == {"sm_80", "sm_90"}, (kernel, rows)
    # compiled as the launcher specialises a training shape (T and head_dim multiples of 16), the flash tiles'
    # loads are pipelined: copied to shared memory asynchronously, ahead of their use
    flash_bf16 = [row.split() for row in rows if row.startswith("flash forward")]
    flash_bf16 = [row for row in flash_bf16 if row[3:5] == ["bf16", "aligned"]]  # kernel, target, dtype, sizes
    assert len(flash_bf16) == 2 and all(int(row[8]) > 0 for row in flash_bf16), rows  # ..., shared, regs, spills


@pytest.mark.slow
def test_the_checker_refuses_tiles_over_the_shared_memory_limit():
    """A 128 x 128 fp32 tile at head_dim 256 needs far more than sm_90's 227 KiB per block: it must fail."""
    script = (
        "import sys; sys.path.insert(0, 'experiments/scripts')\n"
        "from compile_kernels import Case, compile_case, flash, flash_forward_args\n"
        "args = flash_forward_args('fp32', 'aligned', 256)\n"
        "args |= {'CAUSAL': True, 'PRECISION': 'tf32', 'BLOCK_D': 256, 'BLOCK_M': 128, 'BLOCK_N': 128, 'TMA': False}\n"
        "print(compile_case(Case('flash forward', flash._flash_forward.fn, args, 8, 3, 'aligned')))\n"
    )
    result = run_python("-c", script)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "shared memory" in result.stdout and "> 232448 B" in result.stdout, result.stdout


def test_the_committed_compile_table_is_for_the_current_kernels(monkeypatch):
    """experiments/kernels_compile/ must come from the kernels as they are now: rerun make kernels-compile."""
    spec = importlib.util.spec_from_file_location("compile_kernels", REPO / "experiments/scripts/compile_kernels.py")
    compile_kernels = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "compile_kernels", compile_kernels)  # its dataclasses look themselves up there
    spec.loader.exec_module(compile_kernels)  # importing compiles nothing: fine under the interpreter
    table = (REPO / "experiments" / "kernels_compile" / "README.md").read_text()
    assert f"Kernel sources: `{compile_kernels.source_hash()}`" in table, (
        "stale: run make kernels-compile and commit it"
    )
