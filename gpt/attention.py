"""Attention maps: `python -m gpt.attention ckpt=PATH text="..." [out=attention.png]` (also `gpt-attention`).

For a passage, every head of every attention layer: which earlier characters each character attends to, one
PNG, a row of heads per layer (how: gpt.inspection; from Python: gpt.api.Model.attention). Drawn at the end of
every training too.
"""

from __future__ import annotations

from omegaconf import DictConfig

from gpt.api import load_for_command
from gpt.config import AttentionRunConfig
from gpt.entry import hydra_command
from gpt.inspection import figure_path, save_figure


@hydra_command("attention")
def main(cfg: DictConfig) -> None:
    out = figure_path(cfg.out, AttentionRunConfig.out)
    figure = load_for_command(cfg).attention(cfg.text)
    print(save_figure(figure, out))


if __name__ == "__main__":
    main()
