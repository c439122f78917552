"""One training run, once its config has been checked: data, model, Lightning Trainer, loggers, summary.

`gpt.train` (the entry point) imports this module only after the config composed and passed its checks, so
that `--help` and every config error answer before torch and Lightning are loaded.
"""

from __future__ import annotations

import json
import logging
import shlex
import signal
import sys
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, RichModelSummary
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

import kernels
from gpt.callbacks import (
    CheckpointOnSignal,
    RandomState,
    StepProgressBar,
    StopOnNonFiniteLoss,
    TokensPerSecond,
    TrainingInterrupted,
    ValidateOnLastStep,
)
from gpt.checkpoints import check_resumable, continue_metrics, read_checkpoint
from gpt.config import PHASES
from gpt.data import CharDataModule
from gpt.errors import UserError, is_out_of_memory, out_of_memory_refusal
from gpt.inspection import attention_layers, evaluate_ids, save_attention_maps
from gpt.machine import memory_bytes, run_precision
from gpt.module import LanguageModelModule
from gpt.run_dirs import LAST_CHECKPOINT, SUMMARY, find_checkpoint, write_atomically
from gpt.sampling import encode_prompt, for_terminal, generate_text
from gpt.validation import check_attention_fits, kept_scores_bytes, wandb_mode

# Lightning's start-up notes (accelerators found, AMP chosen, tips; under DDP each rank's "Initializing distributed",
# printed twice) would bury the run's own output and errors.
logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
logging.getLogger("lightning.fabric").setLevel(logging.WARNING)

# Known-harmless library notices that would otherwise bury the run's own output (silenced for each run: a
# process that runs several, like a test session, may reset its warning filters in between)
HARMLESS_NOTICES = (
    ".*does not have many workers.*",  # batches come from an in-memory tensor: workers would only add overhead
    ".*Experiment logs directory .* exists and is not empty.*",  # the CSV log shares the run dir with .hydra/
    ".*Checkpoint directory .* exists and is not empty.*",  # a resumed run's checkpoints go on where they were
    ".*is not supported by the model summary.*",  # only its size estimate in MB is affected
    ".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*",  # inside Lightning, fixed upstream
    ".*self.log\\('time/wall_seconds'.*sync_dist=True.*",  # DDP: the run's clock is rank 0's, logged by rank 0 alone
)


def build_loggers(cfg: DictConfig, run_dir: Path, phase: str, precision: str) -> list:
    """CSV in the run dir; W&B as one run per job: a sweep's jobs share a group (the sweep dir's name) and keep
    their files in the sweep dir, tagged with phase, kernel and precision, the resolved config as run config.
    A resumed run continues its W&B run (same id), as its metrics.csv continues. Only the first process of a
    multi-process run starts the W&B run (the others' Lightning loggers would log nothing)."""
    loggers = []
    if cfg.logger.csv:
        loggers.append(CSVLogger(save_dir=run_dir, name="", version=""))
    if cfg.logger.wandb and rank_zero_only.rank == 0:
        hydra = HydraConfig.get()
        sweeping = hydra.mode == RunMode.MULTIRUN
        save_dir = Path(hydra.sweep.dir) if sweeping else run_dir
        save_dir.mkdir(parents=True, exist_ok=True)
        previous = sorted((save_dir / "wandb").glob("*run-*-*"), key=lambda p: p.stat().st_mtime) if cfg.resume else []
        import wandb  # only for runs that log to W&B

        mode = wandb_mode(cfg.logger.wandb_mode)
        try:
            run = wandb.init(
                project=cfg.logger.wandb_project,
                entity=cfg.logger.wandb_entity,
                mode=mode,
                name=run_dir.name,
                group=save_dir.name if sweeping else None,
                job_type=phase,
                tags=[phase, cfg.kernel.backend, precision],
                dir=str(save_dir),
                config={
                    **OmegaConf.to_container(cfg, resolve=True),
                    "overrides": list(hydra.overrides.task),
                    "precision_run": precision,
                },
                **({"id": previous[-1].name.rsplit("-", 1)[-1], "resume": "allow"} if previous else {}),
            )
        except wandb.errors.CommError as exc:  # online, and W&B's server out of reach (its retries timed out)
            reason = str(exc).splitlines()[0]
            raise UserError(
                f"W&B could not reach its server in mode {mode} ({reason}): train with logger.wandb_mode=offline and "
                "upload later (make sync), or check the network"
            ) from None
        loggers.append(WandbLogger(experiment=run))  # the run started here, so W&B sees only its own arguments
    return loggers


def finish_wandb(loggers: list, sample: str | None, step: int, prompt: str | None) -> None:
    """The sample as a text table, then close the run so the next job of a multirun starts a fresh one."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            if sample is not None:
                logger.log_text(key="sample", columns=["step", "prompt", "text"], data=[[step, prompt, sample]])
            logger.experiment.finish(exit_code=0 if sample is not None else 1)


ATTENTION_PASSAGE = 64  # characters of the validation split drawn in the run's attention maps (at most a block)


def look_inside(
    module: LanguageModelModule, datamodule: CharDataModule, cfg: DictConfig, run_dir: Path, phase: str, step: int
) -> tuple[dict, Path | None]:
    """After training (cfg.inspect): the loss over the whole validation split, for the summary, and the attention
    maps of the validation split's first characters, drawn to run_dir/attention.png. Neither after a fast_dev_run
    (the whole split alone takes seconds even for a tiny model)."""
    figures = {}
    if cfg.trainer.fast_dev_run:  # a smoke test of the loop, in which Lightning also skips checkpoints and loggers
        if cfg.inspect.full_val or cfg.inspect.attention_maps:
            print("[trainer.fast_dev_run: no whole-split evaluation and no attention maps]", file=sys.stderr)
        return figures, None
    if cfg.inspect.full_val and kernels.interpreted(cfg.kernel.backend, module.device.type):
        print(
            f"the whole validation split is not evaluated through kernel={cfg.kernel.backend} interpreted on the "
            "CPU (hours); its backends agree: python -m gpt.evaluate ckpt=<the checkpoint> kernel=eager",
            file=sys.stderr,
        )
    elif cfg.inspect.full_val:
        result = evaluate_ids(module.model, datamodule.val_data, cfg.inspect.stride)
        figures = {
            "val_loss_full": round(result.loss, 4),
            "val_bpc": round(result.bits_per_character, 4),
            "val_chars_scored": result.characters,
            "val_stride": result.stride,
        }
    picture = None
    if cfg.inspect.attention_maps and attention_layers(module.model):
        passage = datamodule.val_data[: min(ATTENTION_PASSAGE, module.model.block_size)].tolist()
        title = f"phase {PHASES[phase].number} ({PHASES[phase].title}), step {step}: the validation split's start"
        picture = save_attention_maps(module.model, datamodule.tokenizer, passage, run_dir / "attention.png", title)
    return figures, picture


def log_inside(loggers: list, figures: dict, picture: Path | None, step: int) -> None:
    """The whole-split figures as metrics (val/loss_full, val/bpc) and the attention maps as a W&B image."""
    for logger in loggers:
        if figures:
            logger.log_metrics({"val/loss_full": figures["val_loss_full"], "val/bpc": figures["val_bpc"]}, step=step)
            logger.save()
        if picture is not None and isinstance(logger, WandbLogger):
            logger.log_image(key="attention_maps", images=[str(picture)], step=step)


def finished(run_dir: Path, step: int, max_steps: int) -> dict:
    """A resumed run that had already finished: say so and change nothing; its summary stands."""
    print(
        f"resume: {run_dir} already finished (step {step} of trainer.max_steps={max_steps}); nothing to do, "
        "nothing changed"
    )
    summary = run_dir / SUMMARY
    return json.loads(summary.read_text()) if summary.exists() else {"val_loss": None, "run_dir": str(run_dir)}


def train_in(run_dir: Path, cfg: DictConfig, phase: str) -> dict:
    """Train (or resume) one run in run_dir, which the caller holds."""
    for notice in HARMLESS_NOTICES:
        warnings.filterwarnings("ignore", message=notice)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    # auto resolved once, before anything reads it: W&B's config and tags, the memory bound and the summary say what ran
    cfg.trainer.precision = run_precision(cfg.trainer.precision, cfg.trainer.accelerator)

    datamodule: CharDataModule = instantiate(cfg.data)
    datamodule.setup("fit")  # the vocabulary must be known to build the model
    encode_prompt(cfg.sample.prompt, datamodule.tokenizer, "sample.prompt")  # refused now, not after training
    module = LanguageModelModule(
        model=OmegaConf.to_container(cfg.model, resolve=True),
        optim=OmegaConf.to_container(cfg.optim, resolve=True),
        tokenizer=datamodule.tokenizer.name,
        vocab=datamodule.tokenizer.vocab,
        max_steps=cfg.trainer.max_steps,
        corpus=datamodule.corpus_record(),
    )
    if cfg.compile:
        module.compile_steps(mode=None if cfg.compile is True else cfg.compile)

    checkpoint_path = None
    if cfg.resume:
        checkpoint_path = find_checkpoint(cfg.resume, phase, cfg.runs_dir)
        checkpoint = read_checkpoint(checkpoint_path)
        check_resumable(checkpoint, checkpoint_path, cfg, datamodule.tokenizer, module.model)
        if checkpoint["global_step"] >= cfg.trainer.max_steps:
            return finished(run_dir, checkpoint["global_step"], cfg.trainer.max_steps)
        print(f"resuming {checkpoint_path} at step {checkpoint['global_step']}")

    throughput = TokensPerSecond()
    # checkpoints/last.ckpt after every validation (what resume= continues), best.ckpt at the lowest val loss.
    last_checkpoint = run_dir / LAST_CHECKPOINT
    checkpoints = [
        ModelCheckpoint(
            dirpath=last_checkpoint.parent,
            filename=last_checkpoint.stem,
            monitor=None,
            save_top_k=1,
            enable_version_counter=False,
        ),
        ModelCheckpoint(
            dirpath=last_checkpoint.parent,
            filename="best",
            monitor="val/loss",
            save_top_k=1,
            enable_version_counter=False,
        ),
    ]
    callbacks = [
        throughput,
        ValidateOnLastStep(),
        *checkpoints,
        CheckpointOnSignal(last_checkpoint),
        StopOnNonFiniteLoss(),
        RandomState(),
        RichModelSummary(),
    ]
    if cfg.logger.csv or cfg.logger.wandb:
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    if cfg.trainer.enable_progress_bar:
        callbacks.append(StepProgressBar(refresh_rate=10))
    # The trainer first: a value Lightning refuses stops the run before any log or metrics file is touched.
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=False, default_root_dir=run_dir)
    device = trainer.strategy.root_device
    check_attention_fits(cfg, device.type, memory_bytes(device))
    loggers = build_loggers(cfg, run_dir, phase, precision=trainer.precision)
    if checkpoint_path is not None:
        for logger in loggers:
            if isinstance(logger, CSVLogger):
                continue_metrics(logger, checkpoint["global_step"])
    trainer.loggers = loggers

    sample, figures, closing_stopped = None, {}, False
    try:
        if torch.cuda.is_available():  # a sweep's jobs share the process: each measures its own peak
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        trainer.fit(module, datamodule=datamodule, ckpt_path=checkpoint_path)
        wall_seconds = time.perf_counter() - start
        peak_memory = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
        if trainer.is_global_zero:
            module.to(device)  # Lightning hands the model back on the CPU after fit
            try:
                sample = generate_text(
                    module.model,
                    module.tokenizer,
                    prompt=cfg.sample.prompt,
                    max_new_tokens=cfg.sample.max_new_tokens,
                    temperature=cfg.sample.temperature,
                    top_k=cfg.sample.top_k,
                    kv_cache=cfg.sample.kv_cache,
                    seed=cfg.seed,
                )
                figures, picture = look_inside(module, datamodule, cfg, run_dir, phase, trainer.global_step)
                log_inside(loggers, figures, picture, trainer.global_step)
            except KeyboardInterrupt:  # Ctrl-C after training: its summary is still written, below
                closing_stopped = True
    except TrainingInterrupted as stop:
        overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith("resume=")]
        print(
            f"{stop}\nresume with: python -m gpt.train {shlex.join([*overrides, f'resume={run_dir}'])}", file=sys.stderr
        )
        sys.exit(128 + signal.Signals[stop.signal_name].value)
    except Exception as exc:  # say what is kept before the error is reported
        kept = describe_last_checkpoint(last_checkpoint)
        if is_out_of_memory(exc):
            exc = out_of_memory_refusal(exc, memory_advice(cfg))
        if isinstance(exc, UserError):
            raise type(exc)(f"{exc}. {kept}") from None
        print(f"training stopped by an error. {kept}", file=sys.stderr)
        raise
    finally:
        finish_wandb(loggers, sample, trainer.global_step, cfg.sample.prompt)

    val_loss = trainer.callback_metrics.get("val/loss")
    train_loss = trainer.callback_metrics.get("train/loss")
    summary = {
        "phase": phase,
        "kernel": cfg.kernel.backend,
        "params": module.model.num_params(),
        "steps": trainer.global_step,
        "tokens_seen": throughput.tokens,
        "train_loss": None if train_loss is None else round(float(train_loss), 4),
        "val_loss": None if val_loss is None else round(float(val_loss), 4),  # the data.val_windows estimate
        **figures,
        "tokens_per_sec": round(throughput.tokens_per_sec, 1),
        "wall_seconds": round(wall_seconds, 1),
        "peak_gpu_memory_mib": None if peak_memory is None else round(peak_memory),  # torch's allocations; no GPU: null
        "precision": trainer.precision,  # what ran, in Lightning's spelling (32 is 32-true), auto resolved
        "checkpoint": str(last_checkpoint) if last_checkpoint.exists() else None,
        "run_dir": str(run_dir),
    }
    if trainer.is_global_zero:
        write_atomically(run_dir / SUMMARY, json.dumps(summary, indent=2) + "\n")
        whole = (
            f"; whole validation split {figures['val_loss_full']} = {figures['val_bpc']} bits/{module.tokenizer.unit}"
            if figures
            else ""
        )
        print(
            f"\nval loss {summary['val_loss']} after {summary['steps']} steps{whole} "
            f"({summary['tokens_per_sec']:.0f} tokens/s, {summary['wall_seconds']:.0f} s)."
            + ("" if sample is None else f" Sample:\n\n{for_terminal(sample, sys.stdout.isatty())}")
        )
        print(f"\nrun dir: {run_dir}")
    if closing_stopped:
        print(
            "stopped by Ctrl-C after training, in its closing sample or look inside: the checkpoint and summary.json "
            "are kept, without what was still to come",
            file=sys.stderr,
        )
        sys.exit(128 + signal.SIGINT)
    return summary


def memory_advice(cfg: DictConfig) -> str:
    """What a run out of memory can ask for less of."""
    return "use a smaller data.batch_size, data.block_size or model" + (
        ", or kernel=sdpa or kernel=triton, which keep no T x T attention scores" if kept_scores_bytes(cfg) else ""
    )


def describe_last_checkpoint(path: Path) -> str:
    if not path.exists():
        return "No checkpoint had been saved yet"
    return f"The last good checkpoint is kept: {path} (step {read_checkpoint(path)['global_step']})"
