"""The one training entry point: `python -m gpt.train [overrides]` (also `gpt-train`).

    python -m gpt.train                                  # the default: full GPT on War and Peace
    python -m gpt.train model=bigram trainer.max_steps=3000
    python -m gpt.train -m model=attention,multihead,block,gpt kernel=eager,sdpa

Each run writes, in its Hydra run dir: the composed config (.hydra/), metrics.csv, W&B files (offline unless
credentials exist and W&B's server answers), checkpoints/last.ckpt, and summary.json; then it prints a sample.

Only Hydra and the config checks load before a run is known to be good: `--help`, `--cfg job` and every
config error answer in about a second; torch, Lightning and W&B load with gpt.training, for the run itself.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from gpt.entry import hydra_command
from gpt.process import ctrl_c_after
from gpt.run_dirs import exclusive, removed_if_refused
from gpt.sweep import run_sweep_job
from gpt.validation import check_config, check_single_run_launcher, check_single_run_of_a_sweep

TRAINED: list[Path] = []  # the run dirs this process was given, in order: what gpt.api returns as its runs


def train(cfg: DictConfig) -> dict:
    """Check the config, then train one run in Hydra's run dir, which this process holds until the run ends.
    Returns the run's summary (also written to summary.json). A run refused before it trains leaves no run dir."""
    hydra_config = HydraConfig.get()
    run_dir = Path(hydra_config.runtime.output_dir)
    TRAINED.append(run_dir)
    with removed_if_refused(run_dir):
        check_config(cfg)  # first: what cannot run on this machine at all (a GPU preset on a CPU) says so
        if hydra_config.mode == RunMode.RUN:
            preset = hydra_config.runtime.choices.get("experiment")
            check_single_run_of_a_sweep(preset, hydra_config.sweeper, list(hydra_config.overrides.task))
            check_single_run_launcher(hydra_config.runtime.choices.get("hydra/launcher"))
        with ctrl_c_after():  # torch, Lightning, W&B (seconds): loaded once the config is known to be good
            from gpt.training import train_in

        with exclusive(run_dir):
            return train_in(run_dir, cfg, phase=hydra_config.runtime.choices["model"])


@hydra_command("config")
def main(cfg: DictConfig) -> float | None:
    """Returns the val loss, for sweepers that optimise it."""
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        return run_sweep_job(lambda cfg: train(cfg)["val_loss"], cfg)  # a failure is recorded, the sweep goes on
    return train(cfg)["val_loss"]


if __name__ == "__main__":
    main()
