"""The textbook attention, written out in plain PyTorch: softmax(Q K^T / sqrt(d) + causal mask) V.

It materialises the (T x T) score matrix per head, which is what the flash kernel avoids.
"""

import functools
import math

import torch
import torch.nn.functional as F


@functools.cache
def causal_mask(T: int, S: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The (T x S) additive causal mask: 0 where query t may see key s (s <= t), -inf in the future.
    Added, not masked_fill'ed: one broadcast add, several times faster than masked_fill in bf16 on a CPU."""
    future = torch.ones(T, S, dtype=torch.bool, device=device).triu(diagonal=1)
    return torch.zeros(T, S, dtype=dtype, device=device).masked_fill(future, float("-inf"))


def eager_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = True, dropout_p: float = 0.0
) -> torch.Tensor:
    """q, k, v: (batch, heads, T, head_dim) -> (batch, heads, T, head_dim)."""
    # Dividing by sqrt(head_dim) keeps the scores' variance ~1 for unit-variance q and k, so the softmax
    # does not saturate into a one-hot at initialisation.
    scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.size(-1)))
    if causal:
        # Position t may attend to positions <= t only: the future gets -inf, i.e. weight exp(-inf) = 0.
        scores = scores + causal_mask(q.size(-2), k.size(-2), scores.dtype, scores.device)
    weights = F.dropout(scores.softmax(dim=-1), p=dropout_p)
    return weights @ v
