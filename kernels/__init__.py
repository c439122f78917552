"""Attention backends behind one interface. The models call only `kernels.attention`.

    out = kernels.attention(q, k, v, backend="eager", causal=True)   # q, k, v: (batch, heads, T, head_dim)
    y = kernels.softmax(x)                                            # fused Triton softmax over the last dim

Backends:
    eager         hand-written softmax(QK^T/sqrt(d) + causal mask) V in PyTorch (materialises T x T)
    sdpa          torch.nn.functional.scaled_dot_product_attention, the reference
    triton_naive  the same textbook algorithm as Triton kernels: matmul, fused masked softmax, matmul
    triton        flash attention in Triton: tiled online softmax, O(T) memory, recomputing backward

The Triton backends need a CUDA GPU, or TRITON_INTERPRET=1 to run in Triton's CPU interpreter. They have no
attention dropout: with dropout_p > 0 they raise.
"""

import torch

from kernels.eager import eager_attention
from kernels.errors import KernelUnavailableError
from kernels.flash_attention import flash_attention
from kernels.naive_attention import naive_attention
from kernels.sdpa import sdpa_attention
from kernels.softmax import softmax
from kernels.triton_runtime import check_can_run

BACKENDS = {
    "eager": eager_attention,
    "sdpa": sdpa_attention,
    "triton_naive": naive_attention,
    "triton": flash_attention,
}
TRITON_BACKENDS = ("triton_naive", "triton")

__all__ = ["attention", "softmax", "BACKENDS", "TRITON_BACKENDS", "KernelUnavailableError", "check_can_run"]


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, backend: str = "eager", causal: bool = True,
              dropout_p: float = 0.0) -> torch.Tensor:
    """Scaled dot-product attention over (batch, heads, T, head_dim) tensors, differentiable for every backend."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r}; allowed: {', '.join(BACKENDS)}")
    if q.dim() != 4 or q.shape != k.shape or q.shape != v.shape:
        raise ValueError(f"q, k, v must share one (batch, heads, T, head_dim) shape; got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")
    return BACKENDS[backend](q, k, v, causal=causal, dropout_p=dropout_p)
