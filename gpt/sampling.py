"""Sampling text from a trained model: the prompt, then one character at a time (gpt.sample, training's closing
sample, the notebook API). Options are checked by the callers (gpt.validation.SAMPLE_RANGES)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from gpt.errors import UnknownCharacterError, UserError
from gpt.tokenizer import Tokenizer

if TYPE_CHECKING:
    from gpt.models import LanguageModel


# The control characters but a text's own whitespace (newline, tab, carriage return): C0, DEL and C1. A terminal
# acts on them (ESC starts the sequences that move the cursor, clear the screen, recolour what follows), and a
# byte-level model samples them freely before it has learnt text.
CONTROL_CHARACTERS = {code: f"\\x{code:02x}" for code in (*range(32), *range(127, 160)) if chr(code) not in "\n\t\r"}


def for_terminal(text: str, terminal: bool) -> str:
    """text as printed: where it goes to a terminal, its control characters written out (ESC as \\x1b); elsewhere
    (a pipe, a file) as it is."""
    return text.translate(CONTROL_CHARACTERS) if terminal else text


def encode_prompt(prompt: str | None, tokenizer: Tokenizer, key: str = "prompt") -> list[int]:
    """The prompt's token ids (None: the tokenizer's start, a newline mostly); refused when empty or not
    encodable, naming the option it came from (`key`: training's is sample.prompt)."""
    if prompt is None:
        prompt = tokenizer.start
    if not prompt:
        raise UserError(f"{key} is empty: give at least one character, or {key}=null for the default start")
    try:
        return tokenizer.encode(prompt)
    except UnknownCharacterError as exc:
        raise UnknownCharacterError(f"{key}: {exc}") from None


def stream_text(
    model: LanguageModel,
    tokenizer: Tokenizer,
    prompt: str | None,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
    kv_cache: bool = True,
) -> Iterator[str]:
    """The prompt, then the text of each sampled token as soon as it is drawn (options checked by the caller:
    SAMPLE_RANGES): a character, or with a byte tokenizer nothing until a character's last byte. kv_cache=False
    recomputes the context for every token (gpt/models/kv_cache.py)."""
    import torch  # here, not at the top: `--help` and option errors answer without loading torch

    prompt_ids = encode_prompt(prompt, tokenizer)
    yield tokenizer.decode(prompt_ids)
    device = next(model.parameters()).device
    idx = torch.tensor([prompt_ids], dtype=torch.long, device=device)
    was_training = model.training
    model.eval()
    try:
        generator = torch.Generator(device=device).manual_seed(seed)
        new_ids = model.stream(idx, max_new_tokens, temperature, top_k, generator, kv_cache=kv_cache)
        decode = tokenizer.decoder()
        for next_id in new_ids:
            yield decode(next_id.item())
    finally:
        model.train(was_training)


def generate_text(
    model: LanguageModel,
    tokenizer: Tokenizer,
    prompt: str | None,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
    kv_cache: bool = True,
) -> str:
    """The prompt followed by max_new_tokens sampled characters."""
    return "".join(stream_text(model, tokenizer, prompt, max_new_tokens, temperature, top_k, seed, kv_cache))
