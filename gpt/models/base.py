"""What every phase shares: next-token loss and autoregressive sampling."""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from gpt.models.kv_cache import CachedContext, RecomputedContext


class LanguageModel(nn.Module):
    """A model mapping token ids (batch, T) to next-token logits (batch, T, vocab)."""

    block_size: int  # the longest context the model can look at
    caches_keys_values = False  # sampling can keep the context's keys and values (models with attention)

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """Returns (logits, loss); loss is the mean cross-entropy in nats, or None without targets."""
        logits = self.logits(idx)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())
        return logits, loss

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def samples_with_cache(self, kv_cache: bool) -> bool:
        """Whether sampling with kv_cache= keeps a KV cache: where it is asked for and the model has attention
        (phase 1 has no keys and values, and recomputes its context)."""
        return kv_cache and self.caches_keys_values

    def sampling_context(self, idx: torch.Tensor, kv_cache: bool = True):
        """What gives the next token's logits while sampling (gpt/models/kv_cache.py): the KV cache, or the
        context recomputed each time (samples_with_cache)."""
        return CachedContext(self, idx) if self.samples_with_cache(kv_cache) else RecomputedContext(self, idx)

    @torch.inference_mode()
    def stream(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
        kv_cache: bool = True,
    ) -> Iterator[torch.Tensor]:
        """Extend idx (batch, T) by sampling one token at a time from softmax(logits / temperature), keeping only
        the top_k most likely tokens when top_k is given; yields each new (batch, 1) token as it is drawn.
        kv_cache=False recomputes the whole context for every token (the reference the cache is checked against)."""
        context = self.sampling_context(idx, kv_cache)
        for _ in range(max_new_tokens):
            logits = context.next_logits().float() / temperature
            if top_k is not None:
                kth_largest = torch.topk(logits, min(top_k, logits.size(-1))).values[:, -1:]
                logits = logits.masked_fill(logits < kth_largest, float("-inf"))
            next_id = torch.multinomial(logits.softmax(dim=-1), num_samples=1, generator=generator)
            context.append(next_id)
            yield next_id
