"""The textbook attention, written out in plain PyTorch: softmax(Q K^T / sqrt(d) + causal mask) V.

It materialises the (T x S) score matrix per head, which is what the flash kernel avoids. It also serves what
the training kernels do not: queries that come after cached keys (sampling with a KV cache, T < S) and the
attention weights themselves (the attention maps of gpt/inspection.py).
"""

import functools
import math

import torch
import torch.nn.functional as F


@functools.cache
def causal_mask(T: int, S: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The (T x S) additive causal mask for T queries at the last T of S positions: 0 where query t may see key s
    (s <= t + S - T), -inf in the future. Added, not masked_fill'ed: one broadcast add, several times faster than
    masked_fill in bf16 on a CPU."""
    future = torch.ones(T, S, dtype=torch.bool, device=device).triu(diagonal=S - T + 1)
    return torch.zeros(T, S, dtype=dtype, device=device).masked_fill(future, float("-inf"))


def attention_weights(q: torch.Tensor, k: torch.Tensor, causal: bool = True) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d) + causal mask): (batch, heads, T, S), each row a distribution over the keys.
    q: (batch, heads, T, head_dim) at the last T of the S positions of k: (batch, heads, S, head_dim)."""
    T, S = q.size(-2), k.size(-2)
    # Dividing by sqrt(head_dim) keeps the scores' variance ~1 for unit-variance q and k, so the softmax
    # does not saturate into a one-hot at initialisation.
    scale = 1.0 / math.sqrt(q.size(-1))
    if causal and T > 1:  # (a single query, the newest position, sees every key: nothing to mask)
        # Position t may attend to positions <= t only: the future gets -inf, i.e. weight exp(-inf) = 0.
        # mask + scale * (Q K^T) in one op (baddbmm): the T x S scores are written once, not three times (product,
        # scaled, masked); in bf16 on a CPU, 4% off the attention's forward + backward at batch 32 x T 128.
        # (torch.compile builds the mask in its graph, and folds it: its cache is for eager calls)
        mask = (causal_mask.__wrapped__ if torch.compiler.is_compiling() else causal_mask)(T, S, q.dtype, q.device)
        scores = torch.baddbmm(mask, q.flatten(0, -3), k.flatten(0, -3).transpose(-2, -1), alpha=scale)
        scores = scores.view(*q.shape[:-1], S)
    else:
        scores = (q @ k.transpose(-2, -1)) * scale
    return scores.softmax(dim=-1)


def eager_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = True, dropout_p: float = 0.0
) -> torch.Tensor:
    """q: (batch, heads, T, head_dim), k and v: (batch, heads, S, head_dim), S >= T -> (batch, heads, T, head_dim)."""
    return F.dropout(attention_weights(q, k, causal), p=dropout_p) @ v
