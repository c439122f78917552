"""Checkpoints: finding the one to resume (`resume=PATH|auto`), reading it safely, checking it fits this run.

A resumed run goes on in the run dir its checkpoint came from (conf/config.yaml asks `resumed_run_dir` for
Hydra's run dir), so metrics.csv, the W&B run and checkpoints/ continue rather than start again.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import os
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


_CLAIMED: dict[str, str] = {}  # this process's fresh run dirs (Hydra may resolve the run dir more than once)


def claim_fresh_dir(name: str) -> str:
    """Create a run dir no other run has: `name`, or `name-2`, `name-3`, ... when runs start in the same second.
    mkdir is atomic, so of two processes claiming one name, exactly one gets it."""
    if name not in _CLAIMED:
        base, number = Path(name), 1
        while True:
            candidate = base if number == 1 else base.with_name(f"{base.name}-{number}")
            try:
                candidate.mkdir(parents=True)
                break
            except FileExistsError:
                number += 1
        _CLAIMED[name] = str(candidate)
    return _CLAIMED[name]


def resumed_run_dir(resume: str | None, phase: str, fresh_dir: str) -> str:
    """Hydra's run dir: the resumed checkpoint's run dir, or a fresh one of this run's own."""
    if resume is not None:
        checkpoint = find_checkpoint(resume, phase)
        if checkpoint.parent.name == "checkpoints":
            return str(checkpoint.parent.parent)
    return claim_fresh_dir(fresh_dir)


_HELD: dict[str, int] = {}  # run dir -> the open descriptor whose lock this process holds


def hold(run_dir: Path) -> None:
    """Lock the run dir for this process: a second process training into it (or resuming it while it runs) is
    refused. The lock is on the directory itself (nothing is written) and dies with the process. DDP's other
    ranks share rank 0's run dir and take no lock."""
    key = str(Path(run_dir).resolve())
    if key in _HELD or int(os.environ.get("LOCAL_RANK", 0)) or int(os.environ.get("NODE_RANK", 0)):
        return
    if not Path(key).is_dir():  # resolved without a run (e.g. --cfg hydra --resolve): nothing to hold
        return
    descriptor = os.open(key, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise UserError(f"{run_dir} is in use by another running process: wait for it to finish, or give this run "
                        "its own dir (leave hydra.run.dir unset)") from None
    _HELD[key] = descriptor


def release(run_dir: Path) -> None:
    descriptor = _HELD.pop(str(Path(run_dir).resolve()), None)
    if descriptor is not None:
        os.close(descriptor)


def run_subdir(resume: str | None, run_dir: str) -> str | None:
    """hydra.output_subdir, resolved just before Hydra writes into the run dir: take the run dir's lock first
    (a live run's dir is refused before anything is written), then say where the composed config goes:
    `.hydra` for a new run, nowhere for a resumed one, whose `.hydra/` keeps describing how it was started."""
    hold(Path(run_dir))
    return None if resume else ".hydra"


@contextlib.contextmanager
def exclusive(run_dir: Path):
    """Hold the run dir while a run trains in it (run_subdir already took the lock where Hydra made the dir)."""
    hold(run_dir)
    try:
        yield
    finally:
        release(run_dir)


def write_atomically(path: Path, text: str) -> None:
    """Write a results file so that a reader (or a crash) sees the old version or the new one, never half."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(text)
    partial.replace(path)


def read_checkpoint(path: Path) -> dict[str, Any]:
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # truncated, not a torch file, ...: torch's own words advise on saving, not reading
        raise UserError(f"{path}: not a readable checkpoint (damaged, truncated or not a torch file: "
                        f"{type(exc).__name__}); resume from another checkpoint or run") from None
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
