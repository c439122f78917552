"""Sampling without recomputing the context: a KV cache, and how the context moves on past the block size.

A causal model's keys and values at a position depend only on the positions up to it, so once computed they stay
valid while the context grows: each new token then costs one position's forward pass (its query against the
cached keys) instead of a forward pass over the whole context.

Past the block size the context must drop its oldest tokens, and there the cache cannot simply roll: a position's
keys and values were computed under the context and the position numbers it had then (a learned position
embedding is added at the bottom of the stream and reaches every layer), so a recomputed window's would differ.
The policy here (CachedContext): when the window is full, the newest half block is prefilled afresh, as the
start of a new window, and decoding goes on from there. Every token is then sampled from a context of between
half a block and a whole block, computed exactly as a forward pass over that window would compute it; the
recomputing sampler (RecomputedContext) always sees a whole block, at block_size positions' work per token.
"""

from __future__ import annotations

import torch
from torch import nn


class KVCache:
    """The keys and values of every attention layer for the first `length` positions of one batch of sequences,
    in buffers of block_size positions allocated at first use."""

    def __init__(self, block_size: int):
        self.block_size = block_size
        self.length = 0  # positions cached, in every layer
        self._layers: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}

    def extend(self, layer: nn.Module, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store `layer`'s keys and values (batch, heads, T, head_dim) of the T positions after those cached;
        returns its keys and values of all length + T positions."""
        end = self.length + k.size(-2)
        if end > self.block_size:
            raise ValueError(f"{end} positions are more than the cache's block_size={self.block_size}")
        if layer not in self._layers:
            shape = (*k.shape[:-2], self.block_size, k.size(-1))
            self._layers[layer] = (k.new_empty(shape), v.new_empty(shape))
        keys, values = self._layers[layer]
        keys[..., self.length : end, :] = k
        values[..., self.length : end, :] = v
        return keys[..., :end, :], values[..., :end, :]

    def advance(self, positions: int) -> None:
        """Every layer has stored these positions (the model calls this after its forward pass)."""
        self.length += positions


class RecomputedContext:
    """Next-token logits from a forward pass over the whole context (its last block_size tokens), every time."""

    def __init__(self, model, idx: torch.Tensor):
        self.model, self.tokens = model, idx[:, -model.block_size :]

    def append(self, next_id: torch.Tensor) -> None:
        self.tokens = torch.cat([self.tokens, next_id], dim=1)[:, -self.model.block_size :]

    def next_logits(self) -> torch.Tensor:
        return self.model.logits(self.tokens)[:, -1]


class CachedContext:
    """Next-token logits from the cached keys and values plus the tokens not cached yet (the prompt at first, then
    one token at a time); past the block size, a fresh window on the newest half block (the module's docstring)."""

    def __init__(self, model, idx: torch.Tensor):
        self.model = model
        self.keep = max(1, model.block_size // 2)  # the tokens a full window hands on to the next one
        self.window = idx[:, -model.block_size :]  # the tokens the model sees; the first cache.length are cached
        self.cache = KVCache(model.block_size)

    def append(self, next_id: torch.Tensor) -> None:
        self.window = torch.cat([self.window, next_id], dim=1)

    def next_logits(self) -> torch.Tensor:
        if self.window.size(1) > self.model.block_size:  # full: a new window on the newest half block
            self.window = self.window[:, -self.keep :]
            self.cache = KVCache(self.model.block_size)
        return self.model.logits(self.window[:, self.cache.length :], self.cache)[:, -1]
