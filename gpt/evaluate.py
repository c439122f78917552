"""The loss over a whole split, every character predicted once: `python -m gpt.evaluate ckpt=PATH [split=val]`
(also `gpt-evaluate`), in nats and in bits per character.

Training's val loss is an estimate over 256 fixed windows, where a character's context is wherever it falls in
its window. Here windows of block_size characters slide over the whole split by `stride`: the first window
scores all its positions, each next one only its last `stride` (those no earlier window scored), so every
character of the split but the first is predicted exactly once, from at least block_size - stride characters of
left context (or all the split before it, where that is shorter). The stride trades work for context:
stride = block_size scores disjoint windows (the cheapest; a character then sees on average half a block),
stride = 1 gives every character a whole block (block_size times the work). The default, half a block, gives every
character at least half a block. Bits per character = nats / ln 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig

from gpt.config import CONFIG_DIR, register_configs
from gpt.errors import UserError, one_line_errors
from gpt.process import ends_without_teardown
from gpt.sample import load_checkpoint
from gpt.validation import EVALUATE_RANGES, check_allowed

if TYPE_CHECKING:
    from pathlib import Path

    import torch

    from gpt.models import LanguageModel

register_configs()


@dataclass(frozen=True)
class Evaluation:
    loss: float  # mean cross-entropy, nats per character
    characters: int  # characters scored: the split's length - 1
    stride: int

    @property
    def bits_per_character(self) -> float:
        return self.loss / math.log(2)


def window_ends(n_targets: int, block_size: int, stride: int) -> list[int]:
    """Where each window ends: window [end - block_size, end) predicts characters end - block_size + 1 .. end,
    of which it scores those after the previous window's end. The last window ends at the last character."""
    return [*range(block_size, n_targets, stride), n_targets]


def evaluate_ids(
    model: LanguageModel, ids: torch.Tensor, stride: int | None = None, batch_tokens: int = 2048
) -> Evaluation:
    """The mean loss of predicting ids[1:] from strided windows of ids (1-D token ids), in the model's dtype, with
    the sum kept in float64; about batch_tokens positions per forward pass (larger is slower on a CPU)."""
    import torch
    import torch.nn.functional as F

    if len(ids) < 2:
        raise UserError(f"the split has {len(ids)} character(s): nothing to predict; give a longer text")
    block = min(model.block_size, len(ids) - 1)
    stride = min(stride or max(1, model.block_size // 2), block)
    batch_size = max(1, batch_tokens // block)  # windows per forward pass
    ends = torch.tensor(window_ends(len(ids) - 1, block, stride))
    scored = ends - torch.cat([torch.zeros(1, dtype=torch.long), ends[:-1]])  # new characters per window
    device = next(model.parameters()).device
    ids, positions = ids.to(device), torch.arange(block + 1, device=device)
    total = torch.zeros((), dtype=torch.float64, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for first in range(0, len(ends), batch_size):
                end, new = ends[first : first + batch_size].to(device), scored[first : first + batch_size].to(device)
                windows = ids[(end - block)[:, None] + positions]  # (windows, block + 1)
                logits = model.logits(windows[:, :-1])
                losses = F.cross_entropy(logits.flatten(0, 1).float(), windows[:, 1:].flatten(), reduction="none")
                keep = positions[None, :block] >= block - new[:, None]  # each window's last `new` positions
                total += losses.view(len(end), block)[keep].sum(dtype=torch.float64)
    finally:
        model.train(was_training)
    return Evaluation(loss=total.item() / (len(ids) - 1), characters=len(ids) - 1, stride=stride)


def corpus_config(cfg: DictConfig, recorded: dict | None) -> DictConfig:
    """The corpus to evaluate on: the one the checkpoint was trained on (`recorded`, CharDataModule.corpus_record),
    with the command line's `data.KEY=...` on top; `data=NAME` on the command line picks another corpus. A
    checkpoint without the record (from before it was kept) gets data= as composed: War and Peace by default."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    given = {o.key_or_group for o in OverridesParser.create().parse_overrides(HydraConfig.get().overrides.task)}
    if recorded is None or "data" in given:
        return cfg.data
    return OmegaConf.create(
        {key: cfg.data[key] if f"data.{key}" in given else value for key, value in recorded.items()}
    )


def split_ids(data: DictConfig, split_name: str, tokenizer) -> tuple[Path, torch.Tensor]:
    """The corpus file, and the token ids of its split `split_name` in the checkpoint's vocabulary."""
    import torch

    from gpt.data import load_text, resolve_corpus, split

    corpus = resolve_corpus(data.name, data.path, data.url, data.sha256)
    text = dict(zip(("train", "val"), split(load_text(corpus), data.train_fraction), strict=True))[split_name]
    try:
        return corpus, torch.tensor(tokenizer.encode(text), dtype=torch.long)
    except UserError as exc:
        raise UserError(f"the {split_name} split of {corpus}: {exc}") from None


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="evaluate")
def hydra_main(cfg: DictConfig) -> None:
    with one_line_errors():
        check_allowed(cfg, EVALUATE_RANGES)
        module = load_checkpoint(cfg.ckpt, cfg.kernel, cfg.device)
        block = module.model.block_size
        if cfg.stride is not None and cfg.stride > block:
            raise UserError(f"stride={cfg.stride} is more than the model's block_size={block}; allowed: 1 .. {block}")
        data = corpus_config(cfg, module.hparams.get("corpus"))
        try:
            corpus, ids = split_ids(data, cfg.split, module.tokenizer)
        except UserError as exc:
            if data is cfg.data:  # the command line's corpus: the message says what to change
                raise
            raise UserError(f"the checkpoint's corpus: {exc} (data.path=FILE or data=NAME gives another)") from None
        result = evaluate_ids(module.model, ids, cfg.stride, cfg.batch_tokens)
        print(
            f"{cfg.split} split of {corpus}, {result.characters:,} characters scored (windows of {block}, stride "
            f"{result.stride}): loss {result.loss:.4f} nats/char = {result.bits_per_character:.4f} bits/char"
        )


@ends_without_teardown
def main() -> None:
    with one_line_errors():
        hydra_main()


if __name__ == "__main__":
    main()
