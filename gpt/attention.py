"""Attention maps: `python -m gpt.attention ckpt=PATH text="..." [out=attention.png]` (also `gpt-attention`).

For a passage, every head of every attention layer: which earlier characters each character attends to, one
PNG, a row of heads per layer (how: gpt.inspection.save_attention_maps). Drawn at the end of every training too.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from gpt.checkpoints import load_checkpoint
from gpt.entry import hydra_command
from gpt.inspection import default_passage, passage_ids, save_attention_maps
from gpt.validation import CHECKPOINT_COMMAND_RANGES, check_allowed


@hydra_command("attention")
def main(cfg: DictConfig) -> None:
    check_allowed(cfg, CHECKPOINT_COMMAND_RANGES)
    module = load_checkpoint(cfg.ckpt, cfg.kernel, cfg.device)
    text = cfg.text if cfg.text is not None else default_passage(module.tokenizer, module.model.block_size)
    title = f"{Path(cfg.ckpt).name}: {text!r}"
    ids = passage_ids(text, module.tokenizer, module.model.block_size)
    print(save_attention_maps(module.model, module.tokenizer, ids, Path(cfg.out), title))


if __name__ == "__main__":
    main()
