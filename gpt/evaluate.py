"""The loss over a whole split, every character predicted once: `python -m gpt.evaluate ckpt=PATH [split=val|test]`
(also `gpt-evaluate`), in nats and in bits per character (how: gpt.inspection.evaluate_ids). By default the corpus
and split the checkpoint was trained on; data=NAME picks another corpus, data.KEY=... changes one setting
(gpt.api.Model.evaluate).
"""

from __future__ import annotations

from omegaconf import DictConfig

from gpt.api import load_for_command
from gpt.entry import hydra_command


@hydra_command("evaluate")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from gpt.validation import overridden

    model = load_for_command(cfg)
    print(model.evaluate_config(cfg, given=overridden(HydraConfig.get().overrides.task)))


if __name__ == "__main__":
    main()
