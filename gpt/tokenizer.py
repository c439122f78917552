"""Tokenizers: one token per distinct character of the corpus (`chars`, the default), or one per byte (`bytes`,
enwik8's convention: the 256 byte values, whatever the text's encoding).

A checkpoint records its tokenizer as (`tokenizer`, `vocab`): the kind, and for `chars` the vocabulary as a string,
so a checkpoint can be sampled from without the corpus it was trained on (make_tokenizer rebuilds it).
"""

from __future__ import annotations

import codecs
from collections.abc import Callable

from gpt.errors import UnknownCharacterError, counted

TOKENIZERS = ("chars", "bytes")
SHOWN = {" ": "␣", "\n": "⏎", "\t": "⇥"}  # characters that would be invisible as a label


class CharTokenizer:
    """Maps each character of a fixed vocabulary to its index in sorted order."""

    name = "chars"
    unit, noun = "char", "character"  # what a token is: in the figures (bits/char), in counts (errors.counted)

    def __init__(self, chars: str):
        if len(set(chars)) != len(chars):
            raise ValueError("tokenizer vocabulary has repeated characters")
        self.chars = chars
        self._index = {c: i for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        return cls("".join(sorted(set(text))))

    @property
    def vocab(self) -> str:
        """What a checkpoint records to rebuild this tokenizer."""
        return self.chars

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    @property
    def start(self) -> str:
        """The default prompt: the first character of the vocabulary (a newline in most texts)."""
        return self.chars[0]

    def encode(self, text: str) -> list[int]:
        try:
            return [self._index[c] for c in text]
        except KeyError:
            unknown = sorted(set(text) - self._index.keys())
            shown = ", ".join(repr(c) for c in unknown[:10]) + (" ..." if len(unknown) > 10 else "")
            raise UnknownCharacterError(
                f"{counted(len(unknown), 'character')} not in the model's vocabulary: {shown}; "
                f"allowed are the {self.vocab_size} characters the model was trained on: {self.chars!r}"
            ) from None

    def decode(self, ids) -> str:
        return "".join(self.chars[i] for i in ids)

    def decoder(self) -> Callable[[int], str]:
        """A function from each next token id to the text it completes (sampling's stream)."""
        return self.chars.__getitem__

    def labels(self, ids) -> list[str]:
        """One printable label per token (attention maps' axes)."""
        return [SHOWN.get(c, c) for c in self.decode(ids)]


class ByteTokenizer:
    """Maps each byte of the text's UTF-8 encoding to its value: 256 tokens, every text encodable. A character
    outside ASCII is several tokens; decoding replaces a sequence that is not UTF-8 (a model's slip) with U+FFFD."""

    name = "bytes"
    unit, noun = "byte", "byte"  # enwik8's "bits per character" are bits per byte
    vocab = ""  # nothing to record: the vocabulary is every byte
    vocab_size = 256
    start = "\n"

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids) -> str:
        return bytes(ids).decode("utf-8", errors="replace")

    def decoder(self) -> Callable[[int], str]:
        """Each next byte's text: empty while a multi-byte character is incomplete, the character once it is."""
        decode = codecs.getincrementaldecoder("utf-8")(errors="replace").decode
        return lambda token: decode(bytes((token,)))

    def labels(self, ids) -> list[str]:
        return [SHOWN.get(chr(b), chr(b)) if 32 <= b < 127 or chr(b) in SHOWN else f"\\x{b:02x}" for b in ids]


Tokenizer = CharTokenizer | ByteTokenizer


def make_tokenizer(name: str, vocab: str) -> Tokenizer:
    """The tokenizer a checkpoint recorded (its `tokenizer` and `vocab`)."""
    return ByteTokenizer() if name == "bytes" else CharTokenizer(vocab)
