"""Character-level tokenizer: one token per distinct character of the training corpus."""

from __future__ import annotations

from gpt.errors import UnknownCharacterError


class CharTokenizer:
    """Maps each character of a fixed vocabulary to its index in sorted order.

    The vocabulary is stored in every checkpoint (as the string `chars`), so a checkpoint can be
    sampled from without the corpus it was trained on.
    """

    def __init__(self, chars: str):
        if len(set(chars)) != len(chars):
            raise ValueError("tokenizer vocabulary has repeated characters")
        self.chars = chars
        self._index = {c: i for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        return cls("".join(sorted(set(text))))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        try:
            return [self._index[c] for c in text]
        except KeyError:
            unknown = sorted(set(text) - self._index.keys())
            shown = ", ".join(repr(c) for c in unknown[:10]) + (" ..." if len(unknown) > 10 else "")
            raise UnknownCharacterError(
                f"{len(unknown)} character(s) not in the model's vocabulary: {shown}; "
                f"allowed are the {self.vocab_size} characters the model was trained on: {self.chars!r}"
            ) from None

    def decode(self, ids) -> str:
        return "".join(self.chars[i] for i in ids)
