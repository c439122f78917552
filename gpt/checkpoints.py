"""Checkpoints: reading one safely, loading it as a model on a device (the checkpoint commands), and checking that
it fits the run that resumes it. torch loads on first use: a command's option errors answer without it, and
loading a model needs no Lightning (the checkpoint commands start seconds sooner)."""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

import kernels
from gpt.errors import UserError
from gpt.run_dirs import METRICS, checkpoint_at

if TYPE_CHECKING:
    from lightning.pytorch.loggers import CSVLogger

    from gpt.models import LanguageModel
    from gpt.tokenizer import Tokenizer


FORMER_TOKENIZER = "chars"  # what checkpoints from before byte tokenizers, which record none, were trained on


def recorded_tokenizer(hparams: dict[str, Any]) -> str:
    """The tokenizer a checkpoint's hyper-parameters name."""
    return hparams.get("tokenizer", FORMER_TOKENIZER)


def read_checkpoint(path: Path) -> dict[str, Any]:
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # truncated, not a torch file, ...: torch's own words advise on saving, not reading
        others = sorted(other.name for other in Path(path).parent.glob("*.ckpt") if other.name != Path(path).name)
        raise UserError(
            f"{path}: not a readable checkpoint (damaged, truncated or not a torch file: {type(exc).__name__}); "
            f"give another checkpoint" + (f" (beside it: {', '.join(others)})" if others else "")
        ) from None
    if not isinstance(checkpoint, dict) or "hyper_parameters" not in checkpoint or "state_dict" not in checkpoint:
        raise UserError(f"{path}: not a checkpoint of this project (no hyper_parameters / state_dict)")
    return checkpoint


@dataclass(frozen=True)
class TrainedModel:
    """A checkpoint's model and tokenizer, and the hyper-parameters they were built from (LanguageModelModule's)."""

    model: LanguageModel
    tokenizer: Tokenizer
    hparams: dict[str, Any]
    path: Path  # the checkpoint file it was read from
    backend: str | None  # the attention backend it reads through (kernel=NAME, else its own); None: no attention


def build_model(model: dict[str, Any], tokenizer: str, vocab: str) -> tuple[LanguageModel, Tokenizer]:
    """The model (freshly initialised) and tokenizer that a run's hyper-parameters describe: what
    LanguageModelModule trains and what a checkpoint's weights are loaded into."""
    from hydra.utils import instantiate

    from gpt.tokenizer import make_tokenizer

    made = make_tokenizer(tokenizer, vocab)
    return instantiate(model, vocab_size=made.vocab_size), made


def load_checkpoint(path: str, requested: str | None = None, device: str = "cpu") -> TrainedModel:
    """The trained model at path, on `device` (auto, cpu or cuda, checked by the caller: auto is the GPU where there
    is one); `requested` is the attention backend asked for (kernel=NAME; None: the checkpoint's own, see
    reading_backend). A missing file and an unknown backend are refused before torch is imported. Built as
    LanguageModelModule builds it, from the same hyper-parameters, without Lightning."""
    ckpt = checkpoint_at(
        path, "ckpt", "no such file; give a .ckpt file, or a run dir (its checkpoints/last.ckpt is read)"
    )
    if requested is not None:
        kernels.lookup(requested)
    import torch  # loaded once the options are known good

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        raise UserError("device=cuda: this machine has no CUDA GPU; allowed here: auto, cpu")
    checkpoint = read_checkpoint(ckpt)
    hparams = checkpoint["hyper_parameters"]
    model_config = hparams["model"]
    saved = model_config.get("backend")  # None for phase 1, which has no attention
    backend = reading_backend(requested, saved, device) if saved is not None else None
    if backend is not None and backend != saved:
        model_config = {**model_config, "backend": backend}
    model, tokenizer = build_model(model_config, recorded_tokenizer(hparams), hparams["vocab"])
    check_weights_fit(model, checkpoint["state_dict"], ckpt)
    # the module's state is its model's, each name under "model."
    model.load_state_dict({name.removeprefix("model."): value for name, value in checkpoint["state_dict"].items()})
    return TrainedModel(model.to(device), tokenizer, hparams, ckpt, backend)


def check_weights_fit(model: LanguageModel, state_dict: dict[str, Any], path: Path) -> None:
    """Refuse, in one line, a checkpoint whose weights (a module's state: each name under "model.") are not, by name
    and shape, those of the model its own hyper-parameters describe: written by another version of this harness, or
    altered since."""
    own = {name: tuple(value.shape) for name, value in model.state_dict().items()}
    saved = {name.removeprefix("model."): tuple(value.shape) for name, value in state_dict.items()}
    if own == saved:
        return
    differences = [
        *(f"{name}: {shape} there, {own[name]} here" for name, shape in saved.items() if own.get(name, shape) != shape),
        *(f"{name} missing" for name in own.keys() - saved.keys()),
        *(f"{name} unexpected" for name in saved.keys() - own.keys()),
    ]
    raise UserError(
        f"{path}: its weights do not fit the model its hyper-parameters describe ({'; '.join(sorted(differences)[:3])}"
        f"{f'; {len(differences) - 3} more' if len(differences) > 3 else ''}): written by another version of this "
        "harness, or altered; use another checkpoint"
    )


def reading_backend(requested: str | None, saved: str, device: str) -> str:
    """The attention backend a checkpoint command reads the model through on `device`. On the CPU, Triton kernels
    run only in Triton's interpreter: there kernel=NAME for one of them is refused, and a checkpoint trained through
    one is read through eager attention (the same weights), said on stderr."""
    triton_runs = device == "cuda" or kernels.INTERPRETING
    on_cpu = "on the CPU (device=cpu, or no GPU here) Triton kernels run only under TRITON_INTERPRET=1"
    if requested is not None:
        if kernels.lookup(requested).triton and not triton_runs:
            allowed = ", ".join(name for name, backend in kernels.BACKENDS.items() if not backend.triton)
            raise UserError(f"kernel={requested}: {on_cpu}; allowed here: {allowed}")
        kernels.check_backend(requested)  # e.g. the interpreter needs the triton package
        return requested
    if kernels.lookup(saved).triton and not triton_runs:
        print(f"[trained with kernel={saved}; {on_cpu}: read with kernel=eager, the same weights]", file=sys.stderr)
        return "eager"
    return saved


def check_resumable(checkpoint: dict[str, Any], path: Path, cfg: DictConfig, tokenizer, model: LanguageModel) -> None:
    """The checkpoint was trained with this model (`model`, built from cfg), on this tokenizer and vocabulary, towards
    this many steps, and holds that model's weights."""
    saved = checkpoint["hyper_parameters"]
    config = OmegaConf.to_container(cfg.model, resolve=True)
    differences = [
        f"model.{key}={saved['model'].get(key)} there, {value} here"
        for key, value in config.items()
        if key != "backend" and saved["model"].get(key) != value
    ]  # the kernel may change: same weights
    if saved["model"].get("_target_") != config["_target_"]:
        differences = [f"it holds a {saved['model'].get('_target_')}, this run builds a {config['_target_']}"]
    if (recorded := recorded_tokenizer(saved)) != tokenizer.name:
        differences.append(f"data.tokenizer={recorded} there, {tokenizer.name} here")
    elif saved["vocab"] != tokenizer.vocab:
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
    check_weights_fit(model, checkpoint["state_dict"], path)


def continue_metrics(csv_logger: CSVLogger, step: int) -> None:
    """Keep the resumed run's metrics.csv up to its checkpoint's step (later rows, from a run that then crashed,
    are about to be logged again). Lightning's CSV logger starts metrics.csv afresh, so the kept rows are read
    first and logged again through it."""
    metrics_csv = Path(csv_logger.log_dir) / METRICS
    if not metrics_csv.exists():
        return
    with metrics_csv.open(newline="") as file:
        rows = [{key: float(value) for key, value in row.items() if value != ""} for row in csv.DictReader(file)]
    for row in rows:
        if row["step"] < step:
            csv_logger.log_metrics({key: value for key, value in row.items() if key != "step"}, step=int(row["step"]))
    csv_logger.save()
