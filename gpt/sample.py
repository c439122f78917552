"""Generate text from a checkpoint alone: `python -m gpt.sample ckpt=PATH prompt="..."` (also `gpt-sample`).

The checkpoint carries the model config and the vocabulary, so no corpus is needed. It runs on the GPU where
there is one (device=auto|cpu|cuda), as gpt.evaluate and gpt.attention do (all three load it here: load_checkpoint).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig

import kernels
from gpt.config import CONFIG_DIR, register_configs
from gpt.errors import UserError, one_line_errors
from gpt.process import ends_without_teardown
from gpt.tokenizer import CharTokenizer
from gpt.validation import CHECKPOINT_COMMAND_RANGES, SAMPLE_RANGES, check_allowed

if TYPE_CHECKING:
    from gpt.module import LanguageModelModule

register_configs()


def encode_prompt(prompt: str | None, tokenizer: CharTokenizer) -> list[int]:
    """The prompt's token ids (None: the first vocabulary character); refused when empty or not encodable."""
    if prompt is None:
        prompt = tokenizer.chars[0]
    if not prompt:
        raise UserError("prompt is empty: give at least one character, or prompt=null for the default start")
    return tokenizer.encode(prompt)


def stream_text(
    module: LanguageModelModule,
    prompt: str | None,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
    kv_cache: bool = True,
) -> Iterator[str]:
    """The prompt, then each sampled character as soon as it is drawn (options checked by the caller:
    SAMPLE_RANGES). kv_cache=False recomputes the context for every character (gpt/models/kv_cache.py)."""
    import torch  # here, not at the top: `--help` and option errors answer without loading torch

    tokenizer = module.tokenizer
    prompt_ids = encode_prompt(prompt, tokenizer)
    yield tokenizer.decode(prompt_ids)
    idx = torch.tensor([prompt_ids], dtype=torch.long, device=module.device)
    model = module.model
    was_training = model.training
    model.eval()
    try:
        generator = torch.Generator(device=module.device).manual_seed(seed)
        new_ids = model.stream(idx, max_new_tokens, temperature, top_k, generator, kv_cache=kv_cache)
        for next_id in new_ids:
            yield tokenizer.decode([next_id.item()])
    finally:
        model.train(was_training)


def generate_text(
    module: LanguageModelModule,
    prompt: str | None,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
    kv_cache: bool = True,
) -> str:
    """The prompt followed by max_new_tokens sampled characters."""
    return "".join(stream_text(module, prompt, max_new_tokens, temperature, top_k, seed, kv_cache))


def load_checkpoint(path: str, kernel: DictConfig | None = None, device: str = "cpu") -> LanguageModelModule:
    """The trained module at path, on `device` (auto, cpu or cuda, checked by the caller: auto is the GPU where there
    is one); `kernel` is the command line's kernel= choice (None: the checkpoint's own attention backend, see
    reading_backend). A missing file and an unknown backend are refused before torch is imported."""
    requested = kernel.backend if kernel else None
    ckpt = Path(path).expanduser()
    if not ckpt.is_file():
        raise UserError(f"ckpt={path}: no such file (a run keeps its checkpoints in <run dir>/checkpoints/last.ckpt)")
    if requested is not None:
        kernels.lookup(requested)
    import torch  # torch and Lightning: loaded once the options are known good

    from gpt.checkpoints import read_checkpoint
    from gpt.module import LanguageModelModule

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        raise UserError("device=cuda: this machine has no CUDA GPU; allowed here: auto, cpu")
    overrides = {}
    hparams = read_checkpoint(ckpt)["hyper_parameters"]
    saved = hparams["model"].get("backend")  # None for phase 1, which has no attention
    backend = reading_backend(requested, saved, device) if saved is not None else None
    if backend is not None and backend != saved:
        overrides["model"] = {**hparams["model"], "backend": backend}
    return LanguageModelModule.load_from_checkpoint(ckpt, map_location=device, **overrides)


def reading_backend(requested: str | None, saved: str, device: str) -> str:
    """The attention backend a checkpoint command reads the model through on `device`. On the CPU, Triton kernels
    run only in Triton's interpreter: there kernel=NAME for one of them is refused, and a checkpoint trained through
    one is read through eager attention (the same weights), said on stderr."""
    triton_runs = device == "cuda" or kernels.INTERPRETING
    on_cpu = "on the CPU (device=cpu, or no GPU here) Triton kernels run only under TRITON_INTERPRET=1"
    if requested is not None:
        if kernels.lookup(requested).triton and not triton_runs:
            allowed = ", ".join(name for name, backend in kernels.BACKENDS.items() if not backend.triton)
            raise UserError(f"kernel={requested}: {on_cpu}; allowed here: {allowed}")
        kernels.check_backend(requested)  # e.g. the interpreter needs the triton package
        return requested
    if kernels.lookup(saved).triton and not triton_runs:
        print(f"[trained with kernel={saved}; {on_cpu}: read with kernel=eager, the same weights]", file=sys.stderr)
        return "eager"
    return saved


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="sample")
def hydra_main(cfg: DictConfig) -> None:
    with one_line_errors():
        check_allowed(cfg, {**SAMPLE_RANGES, **CHECKPOINT_COMMAND_RANGES})
        module = load_checkpoint(cfg.ckpt, cfg.kernel, cfg.device)
        texts = stream_text(module, cfg.prompt, cfg.max_new_tokens, cfg.temperature, cfg.top_k, cfg.seed, cfg.kv_cache)
        try:  # each character as it comes: Ctrl-C keeps what was written so far on the screen
            print(next(texts), end="", flush=True)  # the prompt
            start, sampled = time.perf_counter(), 0
            for text in texts:
                print(text, end="", flush=True)
                sampled += 1
        except KeyboardInterrupt:
            print("\n[stopped by Ctrl-C; the text above is what was sampled]", file=sys.stderr)
            sys.exit(130)
        seconds = time.perf_counter() - start
        how = "with a KV cache" if module.model.samples_with_cache(cfg.kv_cache) else "recomputing the context"
        rate = f"{sampled / seconds:,.0f} characters/s"
        print(f"\n[{sampled} characters in {seconds:.2f} s: {rate}, {how}]", file=sys.stderr)


@ends_without_teardown
def main() -> None:
    with one_line_errors():
        hydra_main()


if __name__ == "__main__":
    main()
