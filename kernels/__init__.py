"""Attention backends behind one interface. The models call only `kernels.attention`.

    out = kernels.attention(q, k, v, backend="eager", causal=True)   # q, k, v: (batch, heads, T, head_dim)

BACKENDS below is the one registry of backends: the config's `kernel=` choices, the checks that a backend
exists, can run here and supports attention dropout, and the benchmarks all read it. A backend's code is
imported the first time it runs, so that choosing one (and every config error) costs no torch or triton import.
The fused Triton softmax is `kernels.softmax.softmax`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kernels.errors import KernelUnavailableError
from kernels.interpreter import INTERPRETING

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Backend:
    name: str
    function: str  # "module:function", taking (q, k, v, causal=..., [dropout_p=...])
    summary: str
    triton: bool = False  # Triton kernels: need a CUDA GPU or TRITON_INTERPRET=1, and have no attention dropout
    whole_head_tiles: bool = False  # its tiles hold a whole head: head_dim up to triton_runtime.MAX_HEAD_DIM
    keeps_scores: bool = False  # materialises the (batch, heads, T, T) scores, and keeps them for the backward

    @property
    def has_dropout(self) -> bool:
        return not self.triton

    def load(self):
        """The backend's function, imported on first use. Kept in a plain dict, which torch.compile reads as a
        constant once the function is loaded (the models load theirs when built): a trace never imports."""
        function = _LOADED.get(self.function)
        if function is None:
            module, name = self.function.split(":")
            function = _LOADED[self.function] = getattr(importlib.import_module(module), name)
        return function


_LOADED: dict = {}  # "module:function" -> the function


BACKENDS = {
    backend.name: backend
    for backend in (
        Backend(
            "eager",
            "kernels.eager:eager_attention",
            "softmax(QK^T/sqrt(d) + causal mask) V in plain PyTorch",
            keeps_scores=True,
        ),
        Backend("sdpa", "kernels.sdpa:sdpa_attention", "torch's F.scaled_dot_product_attention, the reference"),
        Backend(
            "triton_naive",
            "kernels.naive_attention:naive_attention",
            "the textbook algorithm as Triton kernels: matmul, fused masked softmax, matmul",
            triton=True,
            keeps_scores=True,
        ),
        Backend(
            "triton",
            "kernels.flash_attention:flash_attention",
            "flash attention in Triton: tiled online softmax, O(T) memory, recomputing backward",
            triton=True,
            whole_head_tiles=True,
        ),
    )
}
TRITON_BACKENDS = tuple(name for name, backend in BACKENDS.items() if backend.triton)

__all__ = [
    "BACKENDS",
    "INTERPRETING",
    "TRITON_BACKENDS",
    "Backend",
    "KernelUnavailableError",
    "attention",
    "check_backend",
    "interpreted",
]


def interpreted(name: str, device_type: str) -> bool:
    """Whether attention through backend `name` on tensors of `device_type` runs in Triton's CPU interpreter (the
    only way Triton kernels run without a GPU): orders of magnitude slower than eager attention."""
    return lookup(name).triton and device_type == "cpu"


def lookup(name: str, dropout_p: float = 0.0) -> Backend:
    """The backend called `name`, refusing an unknown name and dropout a backend does not have."""
    if name not in BACKENDS:
        raise KernelUnavailableError(f"kernel={name}: no such attention backend; allowed: {', '.join(BACKENDS)}")
    backend = BACKENDS[name]
    if dropout_p > 0 and not backend.has_dropout:
        raise KernelUnavailableError(
            f"model.dropout={dropout_p} with kernel={name}: it has no attention dropout; use model.dropout=0, "
            f"or kernel={'|'.join(n for n, b in BACKENDS.items() if b.has_dropout)}"
        )
    return backend


def check_backend(name: str, dropout_p: float = 0.0, head_dim: int | None = None) -> Backend:
    """`lookup`, and the backend can run on this machine and take this head_dim (checked before a run starts, not
    at its first step)."""
    backend = lookup(name, dropout_p)
    if backend.triton:
        from kernels.triton_runtime import check_can_run  # torch and triton: only for a Triton backend

        check_can_run(f"kernel={name}")
    if head_dim is not None:
        check_head_dim(name, head_dim)
    return backend


def check_head_dim(name: str, head_dim: int) -> None:
    """Refuse, in one line, a head_dim the backend's tiles cannot hold."""
    if lookup(name).whole_head_tiles:
        from kernels.triton_runtime import MAX_HEAD_DIM

        if head_dim > MAX_HEAD_DIM:
            raise KernelUnavailableError(
                f"kernel={name} supports head_dim up to {MAX_HEAD_DIM} (its tiles must fit in a GPU's shared memory); "
                f"got head_dim {head_dim}: use more heads (model.n_head), or kernel=sdpa / kernel=eager"
            )


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    backend: str = "eager",
    causal: bool = True,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Scaled dot-product attention over (batch, heads, T, head_dim) tensors, differentiable for every backend."""
    function = lookup(backend, dropout_p).load()
    if q.dim() != 4 or q.shape != k.shape or q.shape != v.shape:
        raise ValueError(
            f"q, k, v must share one (batch, heads, T, head_dim) shape; got {tuple(q.shape)}, "
            f"{tuple(k.shape)}, {tuple(v.shape)}"
        )
    if not q.dtype == k.dtype == v.dtype or not q.device == k.device == v.device:
        raise ValueError(
            f"q, k, v must share one dtype and device; got {q.dtype} on {q.device}, {k.dtype} on {k.device}, "
            f"{v.dtype} on {v.device}"
        )
    return function(q, k, v, causal=causal, **({"dropout_p": dropout_p} if dropout_p > 0 else {}))
