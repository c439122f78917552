"""Attention maps: `python -m gpt.attention ckpt=PATH text="..." [out=attention.png]` (also `gpt-attention`).

For a passage, every head of every attention layer: which earlier characters each character attends to, as the
matrix softmax(q k^T / sqrt(d) + causal mask) with the queries as rows and the keys as columns, the passage's
characters on both axes; one PNG, a row of heads per layer. The weights are recomputed from the q and k each
layer computes for the passage (CausalSelfAttention.queries_keys_values, after rotary embeddings and QK-norm when
on) by the textbook math (kernels.eager.attention_weights): every backend gives the same maps, the flash kernels
included, which never hold the weights. Drawn at the end of every training too (gpt/training.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig

from gpt.config import CONFIG_DIR, register_configs
from gpt.errors import UserError, one_line_errors
from gpt.process import ends_without_teardown
from gpt.sample import load_checkpoint
from gpt.validation import CHECKPOINT_COMMAND_RANGES, check_allowed

if TYPE_CHECKING:
    import torch

    from gpt.models import LanguageModel
    from gpt.tokenizer import CharTokenizer

register_configs()

FIRST_LINE = "Well, Prince, so Genoa and Lucca are now just family estates of the Buonapartes."  # War and Peace
SHOWN = {" ": "␣", "\n": "⏎", "\t": "⇥"}  # characters that would be invisible on an axis


def attention_layers(model: LanguageModel) -> list:
    """The model's attention layers, in the order they run (none in phase 1)."""
    from gpt.models.attention import CausalSelfAttention

    return [module for module in model.modules() if isinstance(module, CausalSelfAttention)]


def attention_maps(model: LanguageModel, idx: torch.Tensor) -> torch.Tensor:
    """The attention weights of every layer and head for the sequence idx (1, T): (layers, heads, T, T)."""
    import torch

    from kernels.eager import attention_weights

    layers = attention_layers(model)
    if not layers:
        raise UserError(f"a {type(model).__name__} has no attention to draw (phase 1 looks at one character only)")
    maps = []

    def record(layer, args):  # runs before each layer's forward, on the input that layer receives
        q, k, _ = layer.queries_keys_values(args[0])
        maps.append(attention_weights(q, k)[0])

    hooks = [layer.register_forward_pre_hook(record) for layer in layers]
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            model.logits(idx)
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return torch.stack(maps).float().cpu()


def draw_attention_maps(maps: torch.Tensor, text: str, path: Path, title: str) -> Path:
    """One panel per (layer, head), queries down and keys across, weights on a square-root colour scale (so
    that weak attention still shows), the masked future blank."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import PowerNorm

    n_layers, n_heads, T, _ = maps.shape
    future = np.triu(np.ones((T, T), dtype=bool), k=1)  # keys a query cannot see: left blank
    colours = plt.get_cmap("viridis").with_extremes(bad="white")
    labels = [SHOWN.get(c, c) for c in text]
    every = max(1, T // 48)  # at most ~48 labelled characters per axis
    ticks = list(range(0, T, every))
    panel = 1.2 + T / 16
    fig, axes = plt.subplots(
        n_layers, n_heads, figsize=(panel * n_heads, panel * n_layers + 0.6), squeeze=False, layout="constrained"
    )
    for layer in range(n_layers):
        for head in range(n_heads):
            ax = axes[layer][head]
            weights = np.ma.masked_array(maps[layer, head].numpy(), mask=future)
            image = ax.imshow(weights, cmap=colours, norm=PowerNorm(0.5, vmin=0, vmax=1))
            ax.set_title(f"layer {layer + 1}, head {head + 1}", fontsize=9)
            ax.set_xticks(ticks, [labels[i] for i in ticks], fontsize=6, fontfamily="monospace")
            ax.set_yticks(ticks, [labels[i] for i in ticks], fontsize=6, fontfamily="monospace")
            ax.tick_params(length=0, pad=1)
    axes[0][0].set_ylabel("query (attending)", fontsize=8)
    axes[0][0].set_xlabel("key (attended to)", fontsize=8)
    fig.colorbar(image, ax=axes, shrink=0.6, label="attention weight")
    fig.suptitle(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def passage_ids(text: str, tokenizer: CharTokenizer, block_size: int) -> torch.Tensor:
    import torch

    if not text:
        raise UserError("text is empty: give a passage of 1 to block_size characters")
    if len(text) > block_size:
        raise UserError(
            f"text has {len(text)} characters; the model attends over block_size={block_size} at most: give "
            f"1 to {block_size} characters"
        )
    return torch.tensor([tokenizer.encode(text)], dtype=torch.long)


def default_passage(tokenizer: CharTokenizer, block_size: int) -> str:
    """War and Peace's first line, as much of it as the block holds, where the model knows its characters."""
    from gpt.errors import UnknownCharacterError

    passage = FIRST_LINE[:block_size]
    try:
        tokenizer.encode(passage)
    except UnknownCharacterError as exc:
        default = "the default passage (War and Peace's first line)"
        raise UserError(f'no text= given, and {default} has {exc}; give text="..."') from None
    return passage


def save_attention_maps(model: LanguageModel, tokenizer: CharTokenizer, text: str, path: Path, title: str) -> Path:
    """Draw the attention maps of `model` for `text` into the PNG at path."""
    idx = passage_ids(text, tokenizer, model.block_size).to(next(model.parameters()).device)
    return draw_attention_maps(attention_maps(model, idx), text, path, title)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="attention")
def hydra_main(cfg: DictConfig) -> None:
    with one_line_errors():
        check_allowed(cfg, CHECKPOINT_COMMAND_RANGES)
        module = load_checkpoint(cfg.ckpt, cfg.kernel, cfg.device)
        text = cfg.text if cfg.text is not None else default_passage(module.tokenizer, module.model.block_size)
        title = f"{Path(cfg.ckpt).name}: {text!r}"
        print(save_attention_maps(module.model, module.tokenizer, text, Path(cfg.out), title))


@ends_without_teardown
def main() -> None:
    with one_line_errors():
        hydra_main()


if __name__ == "__main__":
    main()
