"""Where the Triton kernels can run: on CUDA tensors with a GPU, or anywhere under Triton's interpreter.

`TRITON_INTERPRET=1` (set before triton is imported) runs the very same kernels on the CPU through numpy:
slow, but exact enough to test them in CI. The interpreter cannot multiply bf16 operands (numpy has no bf16),
so the kernels upcast `tl.dot` operands to fp32 when interpreting; on a GPU, bf16 operands go to the tensor
cores as they are, accumulating in fp32.
"""

from __future__ import annotations

import os

import torch

from kernels.errors import KernelUnavailableError

INTERPRETING = os.environ.get("TRITON_INTERPRET") == "1"

try:
    import triton
    import triton.language as tl
except ImportError:  # triton ships for Linux only
    triton = tl = None


def check_can_run(name: str, *tensors: torch.Tensor) -> None:
    """Raise KernelUnavailableError, saying both ways out, where the Triton kernels cannot run."""
    if triton is None:
        raise KernelUnavailableError(f"{name} needs the triton package (Linux only), which is not installed; "
                                     "use kernel=eager or kernel=sdpa")
    if INTERPRETING:
        return
    if not torch.cuda.is_available():
        raise KernelUnavailableError(f"{name} needs a CUDA GPU and none was found: run on a GPU, or set "
                                     "TRITON_INTERPRET=1 to run the same kernels in Triton's (slow) CPU interpreter")
    for tensor in tensors:
        if not tensor.is_cuda:
            raise KernelUnavailableError(f"{name} got a tensor on {tensor.device}: put the model on the GPU "
                                         "(trainer.accelerator=gpu), or set TRITON_INTERPRET=1 for the CPU interpreter")


def dot_dtype(dtype: torch.dtype):
    """The operand type for tl.dot: the input's own on a GPU, fp32 under the interpreter."""
    if INTERPRETING or dtype == torch.float32:
        return tl.float32
    return {torch.bfloat16: tl.bfloat16, torch.float16: tl.float16}[dtype]
