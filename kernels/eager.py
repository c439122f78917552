"""The textbook attention, written out in plain PyTorch: softmax(Q K^T / sqrt(d) + causal mask) V.

It materialises the (T x T) score matrix per head, which is what the flash kernel avoids.
"""

import math

import torch
import torch.nn.functional as F


def eager_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = True, dropout_p: float = 0.0
) -> torch.Tensor:
    """q, k, v: (batch, heads, T, head_dim) -> (batch, heads, T, head_dim)."""
    T, S = q.size(-2), k.size(-2)
    # Dividing by sqrt(head_dim) keeps the scores' variance ~1 for unit-variance q and k, so the softmax
    # does not saturate into a one-hot at initialisation.
    scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.size(-1)))
    if causal:
        # Position t may attend to positions <= t only: the future gets -inf, i.e. weight exp(-inf) = 0.
        future = torch.ones(T, S, dtype=torch.bool, device=q.device).triu(diagonal=1)
        scores = scores.masked_fill(future, float("-inf"))
    weights = F.dropout(scores.softmax(dim=-1), p=dropout_p)
    return weights @ v
