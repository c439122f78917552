"""PyTorch's fused `F.scaled_dot_product_attention`: the reference the hand-written backends are checked against."""

import torch
import torch.nn.functional as F


def sdpa_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = True, dropout_p: float = 0.0
) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, dropout_p=dropout_p)
