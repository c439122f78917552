"""Checkpoints: reading one safely, and checking that it fits the run that resumes it."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig, OmegaConf

from gpt.errors import UserError


def read_checkpoint(path: Path) -> dict[str, Any]:
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # truncated, not a torch file, ...: torch's own words advise on saving, not reading
        raise UserError(
            f"{path}: not a readable checkpoint (damaged, truncated or not a torch file: "
            f"{type(exc).__name__}); resume from another checkpoint or run"
        ) from None
    if not isinstance(checkpoint, dict) or "hyper_parameters" not in checkpoint or "state_dict" not in checkpoint:
        raise UserError(f"{path}: not a checkpoint of this project (no hyper_parameters / state_dict)")
    return checkpoint


def check_resumable(checkpoint: dict[str, Any], path: Path, cfg: DictConfig, vocab: str) -> None:
    """The checkpoint was trained with this model, on this vocabulary, towards this many steps."""
    saved = checkpoint["hyper_parameters"]
    model = OmegaConf.to_container(cfg.model, resolve=True)
    differences = [
        f"model.{key}={saved['model'].get(key)} there, {value} here"
        for key, value in model.items()
        if key != "backend" and saved["model"].get(key) != value
    ]  # the kernel may change: same weights
    if saved["model"].get("_target_") != model["_target_"]:
        differences = [f"it holds a {saved['model'].get('_target_')}, this run builds a {model['_target_']}"]
    if saved["vocab"] != vocab:
        differences.append("its vocabulary differs from this corpus's (another data= or data.path)")
    if saved["max_steps"] != cfg.trainer.max_steps:
        differences.append(
            f"trainer.max_steps={saved['max_steps']} there (its LR schedule), {cfg.trainer.max_steps} here"
        )
    if differences:
        raise UserError(
            f"resume: {path} does not fit this run: {'; '.join(differences)}; "
            "resume with the overrides it was trained with"
        )


def continue_metrics(csv_logger: CSVLogger, step: int) -> None:
    """Keep the resumed run's metrics.csv up to its checkpoint's step (later rows, from a run that then crashed,
    are about to be logged again). Lightning's CSV logger starts metrics.csv afresh, so the kept rows are read
    first and logged again through it."""
    metrics_csv = Path(csv_logger.log_dir) / "metrics.csv"
    if not metrics_csv.exists():
        return
    with metrics_csv.open(newline="") as file:
        rows = [{key: float(value) for key, value in row.items() if value != ""} for row in csv.DictReader(file)]
    for row in rows:
        if row["step"] < step:
            csv_logger.log_metrics({key: value for key, value in row.items() if key != "step"}, step=int(row["step"]))
    csv_logger.save()
