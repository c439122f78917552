"""Where the Triton kernels run, and what their matrix products compute there.

Where: on CUDA tensors with a GPU, or anywhere under Triton's interpreter (`TRITON_INTERPRET=1`, set before
triton is imported), which runs the very same kernels on the CPU through numpy: slow, but fine for tests.

What `tl.dot` computes (`mma` below), the way PyTorch users expect it of a matmul:
    bf16 / fp16 operands   tensor cores, exact products, fp32 accumulation (as torch.matmul on a GPU)
    fp32 operands          by torch.get_float32_matmul_precision():
                             "highest" -> "ieee"    plain fp32 FMAs (torch's default)
                             "high"    -> "tf32x3"  three TF32 products (a_hi b_hi + a_hi b_lo + a_lo b_hi),
                                                    ~fp32 accuracy on the tensor cores
                             "medium"  -> "tf32"    one TF32 product: operands keep 10 of 23 mantissa bits
The interpreter multiplies exactly in fp32 (and cannot multiply bf16 at all: numpy has none), so under it
`mma` rounds the operands the way the tensor cores read them first; the interpreter then computes what the
GPU would, and the tests hold both to the same tolerances. TF32 is emulated by truncation (the low 13
mantissa bits dropped), the larger of the two errors a TF32 unit may make.
"""

from __future__ import annotations

import dataclasses
import types

import torch

from kernels.errors import KernelUnavailableError
from kernels.interpreter import INTERPRETING, interpreter_problem

MAX_HEAD_DIM = 128  # the largest head_dim whose attention tiles fit a GPU's shared memory (make kernels-compile)
FP32_PRECISION = {"highest": "ieee", "high": "tf32x3", "medium": "tf32"}

try:
    import triton
    import triton.language as tl
except ImportError:  # triton ships for Linux only
    triton = tl = None


def _interpret_as_a_gpu_runs() -> None:
    """Spare Triton's interpreter two costs a GPU does not pay, which took over half of its time here.

    - It swaps its numpy versions into triton.language when a kernel is launched and back when it returns, and
      again on every call of a @triton.jit helper from inside a kernel (without swapping back): each time a scan
      of every member of triton.language, its core, math and tensor classes. The kernels call helpers (`mma`,
      tile loads) in their inner loops. Here a launch swaps in everything any helper could ask for, once, and the
      helpers' calls find it done.
    - It checks every integer + and * of the index arithmetic for int32 overflow, a check a GPU makes only in
      debug mode: here too only with TRITON_DEBUG=1.

    Nothing computed changes. A Triton without these hooks is left as it is."""
    from triton.runtime import interpreter

    patch, builder = getattr(interpreter, "_patch_lang", None), getattr(interpreter, "interpreter_builder", None)
    if patch is None or builder is None:
        return
    every_language = types.SimpleNamespace(__globals__={"tl": tl, "core": tl.core})  # what _patch_lang looks for
    launch: list = []  # the patch scope of the launch now running, if any

    class Launch:
        def __init__(self, scope):
            self.scope = scope
            launch.append(scope)

        def restore(self):
            launch.remove(self.scope)
            self.scope.restore()

    class AlreadyPatched:
        def restore(self):
            pass

    interpreter._patch_lang = lambda fn: AlreadyPatched() if launch else Launch(patch(every_language))
    builder.options = dataclasses.replace(builder.options, sanitize_overflow=triton.knobs.runtime.debug)


INTERPRETER_PROBLEM = None  # why this triton's interpreter cannot run the kernels here, if it cannot
if triton is not None and INTERPRETING:
    INTERPRETER_PROBLEM = interpreter_problem(triton.__version__)
    _interpret_as_a_gpu_runs()


def check_can_run(name: str, *tensors: torch.Tensor) -> None:
    """Raise KernelUnavailableError, saying both ways out, where the Triton kernels cannot run."""
    if triton is None:
        raise KernelUnavailableError(
            f"{name} needs the triton package (Linux only), which is not installed; use kernel=eager or kernel=sdpa"
        )
    if INTERPRETING:
        if INTERPRETER_PROBLEM:
            raise KernelUnavailableError(f"{name}: {INTERPRETER_PROBLEM}")
        return
    if not torch.cuda.is_available():
        raise KernelUnavailableError(
            f"{name} needs a CUDA GPU and none was found: run on a GPU, or set "
            "TRITON_INTERPRET=1 to run the same kernels in Triton's (slow) CPU interpreter"
        )
    for tensor in tensors:
        if not tensor.is_cuda:
            raise KernelUnavailableError(
                f"{name} got a tensor on {tensor.device}: put the model on the GPU "
                "(trainer.accelerator=gpu), or set TRITON_INTERPRET=1 for the CPU interpreter"
            )


def check_dtype(name: str, tensor: torch.Tensor) -> None:
    if tensor.dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise KernelUnavailableError(
            f"{name} takes float32, bfloat16 or float16 tensors, not {tensor.dtype}; use kernel=eager or kernel=sdpa"
        )


def dot_precision(dtype: torch.dtype) -> str:
    """tl.dot's input_precision for operands of this dtype (it only matters for fp32)."""
    return FP32_PRECISION[torch.get_float32_matmul_precision()] if dtype == torch.float32 else "tf32"


def cdiv(a: int, b: int) -> int:
    """ceil(a / b), for the wrappers' grids and keys on the host: plain Python. triton.cdiv and
    triton.next_power_of_2 are constexpr functions, each host call a few microseconds of argument unwrapping
    (triton 3.9), a cost paid on every training step's attention (measurements/triton_wrapper_host_time.py)."""
    return -(-a // b)


def next_power_of_2(n: int) -> int:
    """The least power of two >= n, for n >= 1 (triton.next_power_of_2 in plain Python: see cdiv)."""
    return 1 << (n - 1).bit_length()


def launch_configs(configs: list, interpreted) -> list:
    """The autotune candidates: all of them on a GPU, the one given for Triton's interpreter (where timing
    numpy would tune nothing and every extra config costs test time)."""
    return [interpreted] if INTERPRETING else configs


class TunedKernel:
    """An autotuned kernel that tunes once per key and is then launched straight through Triton's JIT with the
    config it chose: the autotuner's own per-call Python (a key built over every argument, its config lookup
    and bookkeeping; ~25 us a launch on an H100's host) runs only on a key's first call.

        forward = TunedKernel(_flash_forward)
        forward(grid, key, *args, **constexprs)     # key: what the autotuner's key and the tensors' dtypes say
    """

    def __init__(self, autotuner):
        self.autotuner = autotuner
        self.tuned: dict = {}  # key -> the triton.Config the autotuner chose for it

    def __call__(self, grid, key: tuple, *args, **constexprs):
        config = self.tuned.get(key)
        if config is None:  # first call for this key: the autotuner benchmarks its configs and runs the best
            self.autotuner[grid](*args, **constexprs)
            self.tuned[key] = self.autotuner.best_config
        else:
            self.autotuner.fn[grid](*args, **constexprs, **config.all_kwargs())


if triton is None:
    TL_DTYPE, mma = {}, None
else:
    TL_DTYPE = {torch.float32: tl.float32, torch.bfloat16: tl.bfloat16, torch.float16: tl.float16}
    EMULATE_GPU_NUMERICS = tl.constexpr(INTERPRETING)

    @triton.jit
    def _tf32(x):
        """x with the 13 low mantissa bits cleared: the value a TF32 tensor core reads."""
        return (x.to(tl.uint32, bitcast=True) & 0xFFFFE000).to(tl.float32, bitcast=True)

    @triton.jit
    def mma(a, b, acc, PRECISION: tl.constexpr):
        """acc + a @ b with fp32 accumulation, operands as the GPU's matrix units read them (module docstring)."""
        if EMULATE_GPU_NUMERICS:
            fp32_operands: tl.constexpr = a.dtype == tl.float32
            a, b = a.to(tl.float32), b.to(tl.float32)  # exact for bf16 / fp16, whose products fp32 holds exactly
            if fp32_operands and PRECISION == "tf32":
                a, b = _tf32(a), _tf32(b)
            if fp32_operands and PRECISION == "tf32x3":
                a_hi, b_hi = _tf32(a), _tf32(b)
                acc = tl.dot(_tf32(a - a_hi), b_hi, acc)
                acc = tl.dot(a_hi, _tf32(b - b_hi), acc)
                a, b = a_hi, b_hi
            result = tl.dot(a, b, acc)
        else:
            result = tl.dot(a, b, acc, input_precision=PRECISION)
        return result
