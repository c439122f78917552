"""Checkpoints: finding the one to resume (`resume=PATH|auto`), reading it safely, checking it fits this run.

A resumed run goes on in the run dir its checkpoint came from (conf/config.yaml asks `resumed_run_dir` for
Hydra's run dir), so metrics.csv, the W&B run and checkpoints/ continue rather than start again.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig, OmegaConf

from gpt.errors import UserError

RUNS_ROOT = Path("outputs")  # where single runs go (hydra.run.dir), searched by resume=auto


def run_phase(run_dir: Path) -> str | None:
    hydra_yaml = run_dir / ".hydra" / "hydra.yaml"
    return OmegaConf.load(hydra_yaml).hydra.runtime.choices.get("model") if hydra_yaml.exists() else None


def find_checkpoint(resume: str, phase: str) -> Path:
    """resume=auto: the newest last.ckpt of a run of this phase under outputs/; else a run dir or a .ckpt file."""
    if resume == "auto":
        candidates = [p for p in RUNS_ROOT.glob("*/*/checkpoints/last.ckpt") if run_phase(p.parent.parent) == phase]
        if not candidates:
            raise UserError(f"resume=auto: no model={phase} run with checkpoints/last.ckpt under {RUNS_ROOT}/; "
                            "give resume=PATH (a run dir or a .ckpt file)")
        return max(candidates, key=lambda p: p.stat().st_mtime)
    path = Path(resume).expanduser()
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise UserError(f"resume={resume}: no checkpoint there; give a run dir (holding checkpoints/last.ckpt), "
                        "a .ckpt file, or resume=auto")
    return path


def resumed_run_dir(resume: str | None, phase: str, fresh_dir: str) -> str:
    """Hydra's run dir: the resumed checkpoint's run dir, or a fresh one."""
    if resume is None:
        return fresh_dir
    checkpoint = find_checkpoint(resume, phase)
    return str(checkpoint.parent.parent) if checkpoint.parent.name == "checkpoints" else fresh_dir


def read_checkpoint(path: Path) -> dict[str, Any]:
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # truncated, not a torch file, ...: torch's reasons vary
        raise UserError(f"{path}: not a readable checkpoint ({str(exc).splitlines()[0]})") from None
    if not isinstance(checkpoint, dict) or "hyper_parameters" not in checkpoint or "state_dict" not in checkpoint:
        raise UserError(f"{path}: not a checkpoint of this project (no hyper_parameters / state_dict)")
    return checkpoint


def check_resumable(checkpoint: dict[str, Any], path: Path, cfg: DictConfig, vocab: str) -> None:
    """The checkpoint was trained with this model, on this vocabulary, towards this many steps."""
    saved = checkpoint["hyper_parameters"]
    model = OmegaConf.to_container(cfg.model, resolve=True)
    differences = [f"model.{key}={saved['model'].get(key)} there, {value} here" for key, value in model.items()
                   if key != "backend" and saved["model"].get(key) != value]  # the kernel may change: same weights
    if saved["model"].get("_target_") != model["_target_"]:
        differences = [f"it holds a {saved['model'].get('_target_')}, this run builds a {model['_target_']}"]
    if saved["vocab"] != vocab:
        differences.append("its vocabulary differs from this corpus's (another data= or data.path)")
    if saved["max_steps"] != cfg.trainer.max_steps:
        differences.append(f"trainer.max_steps={saved['max_steps']} there (its LR schedule), "
                           f"{cfg.trainer.max_steps} here")
    if differences:
        raise UserError(f"resume: {path} does not fit this run: {'; '.join(differences)}; "
                        "resume with the overrides it was trained with")


def continue_metrics(csv_logger: CSVLogger, step: int) -> None:
    """Keep the resumed run's metrics.csv up to its checkpoint's step (later rows, from a run that then crashed,
    are about to be logged again). Lightning's CSV logger deletes an existing metrics.csv when it starts, so the
    kept rows are read first and written back through it."""
    metrics_csv = Path(csv_logger.log_dir) / "metrics.csv"
    if not metrics_csv.exists():
        return
    with metrics_csv.open(newline="") as file:
        rows = [{key: float(value) for key, value in row.items() if value != ""} for row in csv.DictReader(file)]
    writer = csv_logger.experiment  # starting it deletes the file
    writer.metrics = [{**row, "step": int(row["step"])} for row in rows if row["step"] < step]
    writer.save()
