"""The model phases, from the bigram table (1) to the full GPT (5) and its modern form (7: GPT with phase 7's
switches on), built from shared components; phase 6 is the attention kernels under every phase (kernels/)."""

from gpt.models.base import LanguageModel
from gpt.models.bigram import BigramLM
from gpt.models.transformer import GPT, BlockLM, MultiHeadAttentionLM, SingleHeadAttentionLM, TransformerLM

__all__ = [
    "GPT",
    "BigramLM",
    "BlockLM",
    "LanguageModel",
    "MultiHeadAttentionLM",
    "SingleHeadAttentionLM",
    "TransformerLM",
]
