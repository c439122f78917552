"""Phase 4: the transformer block, attention plus a feed-forward MLP, each on a residual path."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gpt.models import modern
from gpt.models.attention import CausalSelfAttention
from gpt.models.kv_cache import KVCache

ACTIVATIONS = {"gelu": F.gelu, "relu2": modern.relu_squared}  # model.mlp: gpt.config.CHOICES names these


class MLP(nn.Module):
    """Position-wise feed-forward: expand 4x, the activation (GELU, or phase 7's ReLU²), project back. Where each
    token 'thinks' on its own."""

    def __init__(self, n_embd: int, dropout: float, activation: str = "gelu"):
        super().__init__()
        self.fc = nn.Linear(n_embd, 4 * n_embd)
        self.activation = ACTIVATIONS[activation]
        self.proj = nn.Linear(4 * n_embd, n_embd)  # a residual projection
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(self.activation(self.fc(x))))


class Block(nn.Module):
    """Phase 4: a pre-LayerNorm transformer block, communication (attention) then computation (MLP),
    each added to a residual stream: x + attn(ln(x)), then x + mlp(ln(x)). `mlp` and `attention` options are
    phase 7's switches, off by default."""

    def __init__(self, n_embd: int, n_head: int, dropout: float, backend: str, mlp: str = "gelu", **attention):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout, backend, **attention)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = MLP(n_embd, dropout, mlp)

    def forward(
        self, x: torch.Tensor, value_embedding: torch.Tensor | None = None, cache: KVCache | None = None
    ) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), value_embedding, cache)
        return x + self.mlp(self.ln_2(x))
