"""Causal multi-head self-attention (phases 2 and 3; one head is the single-head case).

Each position emits a query ("what am I looking for"), a key ("what do I contain") and a value ("what I
pass on"). Head h computes softmax(Q_h K_h^T / sqrt(d_head) + causal mask) V_h; the heads run in parallel
on n_embd / n_head channels each, are concatenated, and mixed back by an output projection.
The inner computation is delegated to `kernels.attention`, so every backend serves every phase.
"""

from __future__ import annotations

import torch
from torch import nn

import kernels
from gpt.models import modern
from gpt.models.kv_cache import KVCache
from kernels.eager import eager_attention


class CausalSelfAttention(nn.Module):
    """Phase 7's switches (gpt/models/modern.py), off by default: `rotary` (a Rotary module) and `qk_norm` act on
    q and k before the attention backend; `value_mix` learns how much of a value embedding joins the values."""

    def __init__(self, n_embd: int, n_head: int, dropout: float, backend: str, rotary: nn.Module | None = None,
                 qk_norm: bool = False, value_mix: bool = False):  # fmt: skip
        super().__init__()
        assert n_embd % n_head == 0, "n_embd must be divisible by n_head"  # validated earlier for users
        self.n_head, self.dropout, self.backend = n_head, dropout, backend
        kernels.lookup(backend).load()  # imported now rather than inside a torch.compile trace
        self.qkv = nn.Linear(n_embd, 3 * n_embd)  # queries, keys and values of all heads in one matmul
        self.proj = nn.Linear(n_embd, n_embd)  # mixes the concatenated heads; a residual projection
        self.resid_dropout = nn.Dropout(dropout)
        self.rotary, self.qk_norm = rotary, qk_norm
        self.value_mix = nn.Parameter(torch.tensor([0.5, 0.5])) if value_mix else None  # v <- a v + b ve

    def queries_keys_values(
        self, x: torch.Tensor, value_embedding: torch.Tensor | None = None, start: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x: (B, T, C) at positions start .. start + T - 1 -> q, k, v, each (B, n_head, T, head_dim), as the
        attention sees them (after QK-norm and rotary embeddings, when on)."""
        B, T, C = x.shape
        # (B, T, 3C) -> (3, B, n_head, T, head_dim): queries, keys, values
        qkv = self.qkv(x).view(B, T, 3, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4)
        # split, not indexing: its backward writes both gradients into one new tensor, where qkv[:2] and qkv[2]
        # would each zero a qkv-sized one and then add them (~1% of a bf16 training step on a CPU)
        qk, v = qkv.split((2, 1))
        v = v.squeeze(0)
        if self.qk_norm:  # queries and keys are normalised and rotated alike: both at once
            qk = modern.qk_norm(qk)
        if self.rotary is not None:
            qk = self.rotary(qk, start)
        q, k = qk.unbind(0)
        if value_embedding is not None:
            per_head = value_embedding.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
            v = self.value_mix[0] * v + self.value_mix[1] * per_head.to(v.dtype)
        return q, k, v

    def forward(
        self, x: torch.Tensor, value_embedding: torch.Tensor | None = None, cache: KVCache | None = None
    ) -> torch.Tensor:
        """x: (B, T, C). With a cache, x holds the positions after those cached, which the queries also see."""
        B, T, C = x.shape
        q, k, v = self.queries_keys_values(x, value_embedding, start=cache.length if cache is not None else 0)
        if cache is not None:
            k, v = cache.extend(self, k, v)  # the keys and values of every position so far
        if k.size(-2) == T:  # the whole sequence at once: the configured backend
            dropout_p = self.dropout if self.training else 0.0
            y = kernels.attention(q, k, v, backend=self.backend, causal=True, dropout_p=dropout_p)
        else:  # new queries after cached keys (sampling): the textbook math, whose mask allows T < S
            y = eager_attention(q, k, v, causal=True)
        y = y.transpose(1, 2).reshape(B, T, C)  # concatenate the heads
        return self.resid_dropout(self.proj(y))
