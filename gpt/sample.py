"""Generate text from a checkpoint alone: `python -m gpt.sample ckpt=PATH prompt="..."` (also `gpt-sample`).

The checkpoint carries the model config and the vocabulary, so no corpus is needed.
"""

from __future__ import annotations

from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from gpt.checkpoints import read_checkpoint
from gpt.cli import check_backend, one_line_errors
from gpt.config import register_configs
from gpt.errors import UserError
from gpt.module import LanguageModelModule

register_configs()


def generate_text(module: LanguageModelModule, prompt: str | None, max_new_tokens: int, temperature: float = 1.0,
                  top_k: int | None = None, seed: int = 0) -> str:
    """The prompt followed by max_new_tokens sampled characters."""
    if temperature <= 0:
        raise UserError(f"temperature={temperature}: must be > 0 (lower is more conservative)")
    if top_k is not None and top_k < 1:
        raise UserError(f"top_k={top_k}: must be a positive integer or null (no cut-off)")
    tokenizer = module.tokenizer
    if prompt is None:
        prompt = tokenizer.chars[0]
    if not prompt:
        raise UserError("prompt is empty: give at least one character, or prompt=null for the default start")
    idx = torch.tensor([tokenizer.encode(prompt)], dtype=torch.long, device=module.device)
    model = module.model
    was_training = model.training
    model.eval()
    out = model.generate(idx, max_new_tokens, temperature=temperature, top_k=top_k,
                         generator=torch.Generator(device=module.device).manual_seed(seed))
    model.train(was_training)
    return tokenizer.decode(out[0].tolist())


def load_checkpoint(path: str, backend: str | None = None) -> LanguageModelModule:
    ckpt = Path(path).expanduser()
    if not ckpt.is_file():
        raise UserError(f"ckpt={path}: no such file (a run keeps its checkpoints in <run dir>/checkpoints/last.ckpt)")
    overrides = {}
    hparams = read_checkpoint(ckpt)["hyper_parameters"]
    if backend is not None:
        check_backend(backend)
        if "backend" in hparams["model"]:
            overrides["model"] = {**hparams["model"], "backend": backend}
    return LanguageModelModule.load_from_checkpoint(ckpt, map_location="cpu", **overrides)


@hydra.main(version_base="1.3", config_path="../conf", config_name="sample")
def hydra_main(cfg: DictConfig) -> None:
    with one_line_errors():
        module = load_checkpoint(cfg.ckpt, cfg.kernel)
        print(generate_text(module, cfg.prompt, cfg.max_new_tokens, cfg.temperature, cfg.top_k, cfg.seed))


def main() -> None:
    with one_line_errors():
        hydra_main()


if __name__ == "__main__":
    main()
