"""Phase 1: the bigram model. The next character depends only on the current one.

The whole model is a (vocab x vocab) table: row i holds the logits of the character that follows i.
Its best possible loss is the conditional entropy H(next | current) of the corpus.
"""

import torch
from torch import nn

from gpt.models.base import LanguageModel


class BigramLM(LanguageModel):
    def __init__(self, vocab_size: int, block_size: int):
        super().__init__()
        self.block_size = block_size  # only bounds the context handed to generate(); the model looks back 1
        self.table = nn.Embedding(vocab_size, vocab_size)
        nn.init.normal_(self.table.weight, std=0.02)  # near-uniform start: initial loss ~ ln(vocab)

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        return self.table(idx)
