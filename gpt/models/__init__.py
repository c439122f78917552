"""The five phases, from the bigram table to the full GPT, built from shared components."""

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
