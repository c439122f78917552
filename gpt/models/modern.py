"""Phase 7: the modern GPT. Phase 5 plus the techniques of the GPT-2 speedrun (modded-nanogpt), each a switch.

    switch (model.*)      off (= phase 5)    on
    pos                   learned            rope      rotary position embeddings on q and k
    qk_norm               false              true      RMS-normalised queries and keys
    mlp                   gelu               relu2     ReLU(x)^2 in the MLP
    zero_init_proj        false              true      residual projections start at zero
    tie_embeddings        true               false     separate input embedding and output head
    logit_softcap         0                  15        logits squashed into (-cap, cap) by tanh
    value_embeddings      false              true      a per-layer token embedding mixed into the values

and, in the optimiser config, `optim.algorithm=adamw|muon` and `optim.schedule=cosine|wsd` (gpt/optim.py).
model=modern turns on those that paid at this scale in the ablation (conf/model/modern.yaml says which, with
the figures). Each technique below is one small function or module; GPT (transformer.py) wires them in where
they act, so that with every switch off this is phase 5, parameter for parameter (tested). Rotary embeddings and QK-norm
act on q and k before `kernels.attention`, so every attention backend serves phase 7 unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Rotary(nn.Module):
    """Rotary position embeddings (RoPE, Su et al. 2021): rotate each pair of a head's channels by an angle
    proportional to the position, at a frequency of its own. A query at position m and a key at n then meet through
    a rotation by m - n only: attention sees relative positions, with no position table to learn, and nothing is
    added to the residual stream. Channel i is paired with channel i + head_dim / 2 (GPT-NeoX's layout): the same
    function class as pairing neighbours (2i, 2i + 1), a fixed permutation of the channels apart, which the qkv
    projection absorbs, but computed on contiguous halves: ~1.6x faster forward + backward in bf16 on a CPU."""

    def __init__(self, head_dim: int, block_size: int, base: float = 10000.0):
        super().__init__()
        frequencies = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)  # (head_dim / 2,)
        angles = torch.outer(torch.arange(block_size, dtype=torch.float64), frequencies)  # (block_size, head_dim / 2)
        # not saved in checkpoints (a pure function of the shape); kept in float64 and cast to the activations'
        # dtype where used, so that a float64 model rotates exactly (the rotation stays orthogonal)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        """x: (..., T, head_dim) at positions start .. start + T - 1, each pair (a, b) = (x_i, x_{i + head_dim / 2})
        rotated: (a, b) -> (a cos - b sin, a sin + b cos)."""
        T = x.size(-2)
        cos, sin = self.cos[start : start + T].to(x.dtype), self.sin[start : start + T].to(x.dtype)
        a, b = x.chunk(2, dim=-1)
        return torch.cat((a * cos - b * sin, a * sin + b * cos), dim=-1)


def qk_norm(x: torch.Tensor) -> torch.Tensor:
    """QK-norm: each query and key scaled to unit RMS over its head's channels (no learned gain), so the
    attention logits stay bounded by sqrt(head_dim) however large q and k grow: no softmax saturation, which
    lets the learning rate be higher."""
    return F.rms_norm(x, (x.size(-1),))


def relu_squared(x: torch.Tensor) -> torch.Tensor:
    """ReLU(x)^2 (So et al. 2021, Primer): sparser than GELU and smooth at zero; trains faster per step."""
    return F.relu(x).square()


def softcap(logits: torch.Tensor, cap: float) -> torch.Tensor:
    """cap * tanh(logits / cap) (Gemma 2): the logits stay in (-cap, cap), so no character's probability is
    pushed to a confident extreme early in training; ~identity for |logits| << cap."""
    return cap * torch.tanh(logits / cap)


class ValueEmbeddings(nn.Module):
    """One token embedding table per layer, added into that layer's attention values (modded-nanogpt): each
    layer's values also see which character sits at a position, not only the residual stream's mixture. The
    attention learns how much of each to take (CausalSelfAttention.value_mix)."""

    def __init__(self, vocab_size: int, n_embd: int, n_layer: int):
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(vocab_size, n_embd) for _ in range(n_layer))

    def forward(self, idx: torch.Tensor) -> list[torch.Tensor]:
        return [table(idx) for table in self.tables]
