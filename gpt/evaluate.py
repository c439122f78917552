"""The loss over a whole split, every character predicted once: `python -m gpt.evaluate ckpt=PATH [split=val|test]`
(also `gpt-evaluate`), in nats and in bits per character (how: gpt.inspection.evaluate_ids). By default the corpus
and split the checkpoint was trained on; data=NAME picks another corpus, data.KEY=... changes one setting.
"""

from __future__ import annotations

from omegaconf import DictConfig

from gpt.checkpoints import load_checkpoint
from gpt.entry import hydra_command
from gpt.errors import UserError
from gpt.inspection import check_split, evaluate_ids, split_ids
from gpt.validation import EVALUATE_RANGES, check_allowed


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


@hydra_command("evaluate")
def main(cfg: DictConfig) -> None:
    check_allowed(cfg, EVALUATE_RANGES)
    module = load_checkpoint(cfg.ckpt, cfg.kernel, cfg.device)
    block = module.model.block_size
    if cfg.stride is not None and cfg.stride > block:
        raise UserError(f"stride={cfg.stride} is more than the model's block_size={block}; allowed: 1 .. {block}")
    data = corpus_config(cfg, module.hparams.get("corpus"))
    check_split(data, cfg.split)
    try:
        corpus, ids = split_ids(data, cfg.split, module.tokenizer)
    except UserError as exc:
        if data is cfg.data:  # the command line's corpus: the message says what to change
            raise
        raise UserError(f"the checkpoint's corpus: {exc} (data.path=FILE or data=NAME gives another)") from None
    result = evaluate_ids(module.model, ids, cfg.stride, cfg.batch_tokens)
    unit, units = module.tokenizer.unit, module.tokenizer.units
    print(
        f"{cfg.split} split of {corpus}, {result.characters:,} {units} scored (windows of {block}, stride "
        f"{result.stride}): loss {result.loss:.4f} nats/{unit} = {result.bits_per_character:.4f} bits/{unit}"
    )


if __name__ == "__main__":
    main()
