"""Phases 2 to 5: token + position embeddings, a body, and a linear head back to the vocabulary.

phase 2  SingleHeadAttentionLM  body = one causal self-attention head
phase 3  MultiHeadAttentionLM   body = n_head heads in parallel, concatenated and projected
phase 4  BlockLM                body = one transformer block (LayerNorm, attention, MLP, residuals)
phase 5  GPT                    body = n_layer blocks, a final LayerNorm, head tied to the token
                                embedding, GPT-2 initialisation
phase 7  GPT, its switches on   the speedrun's techniques (gpt/models/modern.py)
"""

import math

import torch
from torch import nn

from gpt.models import modern
from gpt.models.attention import CausalSelfAttention
from gpt.models.base import LanguageModel
from gpt.models.block import Block
from gpt.models.kv_cache import KVCache


class TransformerLM(LanguageModel):
    caches_keys_values = True  # logits(idx, cache) extends a KVCache

    def __init__(
        self,
        vocab_size: int,
        block_size: int,
        n_embd: int,
        dropout: float,
        body: nn.Module,
        final_norm: bool = False,
        tie_weights: bool = False,
        learned_positions: bool = True,
        logit_softcap: float = 0.0,
    ):
        super().__init__()
        self.block_size, self.logit_softcap = block_size, logit_softcap
        self.tok_emb = nn.Embedding(vocab_size, n_embd)  # what the character is
        # where it is: attention alone is order-blind (unless the attention rotates q and k by position: RoPE)
        self.pos_emb = nn.Embedding(block_size, n_embd) if learned_positions else None
        self.drop = nn.Dropout(dropout)
        self.body = body
        self.ln_f = nn.LayerNorm(n_embd) if final_norm else nn.Identity()
        self.head = nn.Linear(n_embd, vocab_size, bias=False)
        if tie_weights:  # reading a character and writing it share one embedding matrix
            self.head.weight = self.tok_emb.weight
        self.apply(_init_weights)

    def logits(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """idx: (B, T) token ids; with a cache, the T positions after those it holds (which it then also holds)."""
        start = cache.length if cache is not None else 0
        T = idx.size(1)
        if self.block_size < start + T:
            raise ValueError(f"sequence of length {start + T} is longer than the model's block_size={self.block_size}")
        x = self.tok_emb(idx)
        if self.pos_emb is not None:
            x = x + self.pos_emb(torch.arange(start, start + T, device=idx.device))
        logits = self.head(self.ln_f(self.forward_body(self.drop(x), idx, cache)))
        if cache is not None:
            cache.advance(T)
        return modern.softcap(logits, self.logit_softcap) if self.logit_softcap else logits

    def forward_body(self, x: torch.Tensor, idx: torch.Tensor, cache: KVCache | None) -> torch.Tensor:
        return self.body(x, cache=cache)


def _init_weights(module: nn.Module) -> None:
    """Small normal weights (std 0.02) and zero biases, so the initial logits are near zero and the
    initial loss near ln(vocab_size)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


class SingleHeadAttentionLM(TransformerLM):
    def __init__(self, vocab_size: int, block_size: int, n_embd: int, dropout: float, backend: str):
        super().__init__(vocab_size, block_size, n_embd, dropout, body=CausalSelfAttention(n_embd, 1, dropout, backend))


class MultiHeadAttentionLM(TransformerLM):
    def __init__(self, vocab_size: int, block_size: int, n_embd: int, n_head: int, dropout: float, backend: str):
        super().__init__(
            vocab_size, block_size, n_embd, dropout, body=CausalSelfAttention(n_embd, n_head, dropout, backend)
        )


class BlockLM(TransformerLM):
    def __init__(self, vocab_size: int, block_size: int, n_embd: int, n_head: int, dropout: float, backend: str):
        super().__init__(vocab_size, block_size, n_embd, dropout, body=Block(n_embd, n_head, dropout, backend))


class GPT(TransformerLM):
    """Phase 5, and phase 7 with its switches on: the keyword options are phase 7's techniques
    (gpt/models/modern.py), each defaulting to GPT-2's choice, so that all off is phase 5 exactly."""

    def __init__(self, vocab_size: int, block_size: int, n_layer: int, n_embd: int, n_head: int, dropout: float,
                 backend: str, pos: str = "learned", qk_norm: bool = False, mlp: str = "gelu",
                 zero_init_proj: bool = False, tie_embeddings: bool = True, logit_softcap: float = 0.0,
                 value_embeddings: bool = False):  # fmt: skip
        rotary = modern.Rotary(n_embd // n_head, block_size) if pos == "rope" else None  # one, shared by the layers
        blocks = nn.Sequential(*(
            Block(n_embd, n_head, dropout, backend, mlp, rotary=rotary, qk_norm=qk_norm, value_mix=value_embeddings)
            for _ in range(n_layer)
        ))  # fmt: skip
        super().__init__(
            vocab_size, block_size, n_embd, dropout, body=blocks, final_norm=True, tie_weights=tie_embeddings,
            learned_positions=pos == "learned", logit_softcap=logit_softcap,
        )  # fmt: skip
        self.value_embeddings = modern.ValueEmbeddings(vocab_size, n_embd, n_layer) if value_embeddings else None
        if self.value_embeddings is not None:
            self.value_embeddings.apply(_init_weights)
        for name, param in self.named_parameters():
            if name.endswith("proj.weight"):
                if zero_init_proj:
                    # each block starts as the identity (its residual branches add exactly 0), so the network
                    # starts shallow and grows into its depth; the gradient still reaches every projection
                    nn.init.zeros_(param)
                else:
                    # GPT-2 init: each block adds two residual projections to the stream, so the stream's
                    # variance grows with 2 * n_layer additions; scaling their weights by 1/sqrt(2 * n_layer)
                    # keeps it ~constant with depth.
                    nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))

    def forward_body(self, x: torch.Tensor, idx: torch.Tensor, cache: KVCache | None) -> torch.Tensor:
        values = self.value_embeddings(idx) if self.value_embeddings is not None else [None] * len(self.body)
        for block, value in zip(self.body, values, strict=True):
            x = block(x, value, cache)
        return x
