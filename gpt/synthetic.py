"""Synthetic stand-ins for the benchmark corpora no machine here can fetch: files of the same shape, for tests and
benchmarks (`data=enwik8 data.path=FILE data.sha256=null`).

    write_synthetic("enwik8", path, 100_000_000)   # bytes: mostly ASCII text and markup, multi-byte UTF-8
                                                   # characters, and bytes that are not UTF-8 at all
    write_synthetic("text8", path, 100_000_000)    # lowercase letters and spaces (27 characters), no newline

The text is random (letters drawn independently), so a model learns only the letters' frequencies from it: these
files prove splits, tokenizers and speed, never a loss.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CHUNK = 1 << 24
LETTERS = b" abcdefghijklmnopqrstuvwxyz"


def _enwik8_distribution() -> np.ndarray:
    weights = np.full(256, 0.5)  # every byte value occurs, most rarely (stray, non-UTF-8 bytes included)
    weights[list(b"\n<>/=\"'[]|")] = 5.0  # markup
    weights[list(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:()-")] = 10.0
    weights[list(LETTERS)] = 40.0
    weights[ord(" ")] = 300.0
    weights[[0xC3, 0xA9]] = 3.0  # the two bytes of "é" (paired below)
    return weights / weights.sum()


def _text8_distribution() -> np.ndarray:
    weights = np.full(len(LETTERS), 1.0)
    weights[0] = 5.0  # spaces: words of ~5 letters
    return weights / weights.sum()


SHAPES = {
    "enwik8": (np.arange(256, dtype=np.uint8), _enwik8_distribution()),
    "text8": (np.frombuffer(LETTERS, dtype=np.uint8), _text8_distribution()),
}


def write_synthetic(shape: str, path: Path, size: int, seed: int = 0) -> Path:
    """A file of `size` bytes shaped like the corpus `shape` (SHAPES), written in chunks (bounded memory)."""
    symbols, probabilities = SHAPES[shape]
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:
        for start in range(0, size, CHUNK):
            chunk = rng.choice(symbols, size=min(CHUNK, size - start), p=probabilities)
            if shape == "enwik8":
                accents = np.flatnonzero(chunk[:-1] == 0xC3)
                chunk[accents + 1] = 0xA9  # a 0xC3 begins an "é" (but at a chunk's end); 0xA9 also comes alone
            file.write(chunk.tobytes())
    return path
