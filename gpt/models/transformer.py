"""Phases 2 to 5: token + position embeddings, a body, and a linear head back to the vocabulary.

phase 2  SingleHeadAttentionLM  body = one causal self-attention head
phase 3  MultiHeadAttentionLM   body = n_head heads in parallel, concatenated and projected
phase 4  BlockLM                body = one transformer block (LayerNorm, attention, MLP, residuals)
phase 5  GPT                    body = n_layer blocks, a final LayerNorm, head tied to the token
                                embedding, GPT-2 initialisation
"""

import math

import torch
from torch import nn

from gpt.models.attention import CausalSelfAttention
from gpt.models.base import LanguageModel
from gpt.models.block import Block


class TransformerLM(LanguageModel):
    def __init__(
        self,
        vocab_size: int,
        block_size: int,
        n_embd: int,
        dropout: float,
        body: nn.Module,
        final_norm: bool = False,
        tie_weights: bool = False,
    ):
        super().__init__()
        self.block_size = block_size
        self.tok_emb = nn.Embedding(vocab_size, n_embd)  # what the character is
        self.pos_emb = nn.Embedding(block_size, n_embd)  # where it is: attention alone is order-blind
        self.drop = nn.Dropout(dropout)
        self.body = body
        self.ln_f = nn.LayerNorm(n_embd) if final_norm else nn.Identity()
        self.head = nn.Linear(n_embd, vocab_size, bias=False)
        if tie_weights:  # reading a character and writing it share one embedding matrix
            self.head.weight = self.tok_emb.weight
        self.apply(_init_weights)

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        T = idx.size(1)
        if self.block_size < T:
            raise ValueError(f"sequence of length {T} is longer than the model's block_size={self.block_size}")
        x = self.tok_emb(idx) + self.pos_emb(torch.arange(T, device=idx.device))
        return self.head(self.ln_f(self.body(self.drop(x))))


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
    def __init__(
        self, vocab_size: int, block_size: int, n_layer: int, n_embd: int, n_head: int, dropout: float, backend: str
    ):
        blocks = nn.Sequential(*(Block(n_embd, n_head, dropout, backend) for _ in range(n_layer)))
        super().__init__(vocab_size, block_size, n_embd, dropout, body=blocks, final_norm=True, tie_weights=True)
        # GPT-2 init: each block adds two residual projections to the stream, so the stream's variance grows
        # with 2 * n_layer additions; scaling their weights by 1/sqrt(2 * n_layer) keeps it ~constant with depth.
        for name, param in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))
