"""Attention backends behind one interface. The models call only `kernels.attention`.

    out = kernels.attention(q, k, v, backend="eager", causal=True)   # q, k, v: (batch, heads, T, head_dim)

Backends:
    eager  hand-written softmax(QK^T/sqrt(d) + causal mask) V in PyTorch (materialises T x T)
    sdpa   torch.nn.functional.scaled_dot_product_attention, the reference
"""

import torch

from kernels.eager import eager_attention
from kernels.sdpa import sdpa_attention



class KernelUnavailableError(RuntimeError):
    """A backend was asked for where it cannot run (e.g. a Triton kernel with no GPU and no interpreter)."""


BACKENDS = {
    "eager": eager_attention,
    "sdpa": sdpa_attention,
}


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, backend: str = "eager", causal: bool = True,
              dropout_p: float = 0.0) -> torch.Tensor:
    """Scaled dot-product attention over (batch, heads, T, head_dim) tensors, differentiable for every backend."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r}; allowed: {', '.join(BACKENDS)}")
    if q.dim() != 4 or q.shape != k.shape or q.shape != v.shape:
        raise ValueError(f"q, k, v must share one (batch, heads, T, head_dim) shape; got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")
    return BACKENDS[backend](q, k, v, causal=causal, dropout_p=dropout_p)
