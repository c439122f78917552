"""The harness's Lightning callbacks: throughput, a validation at the last step, a checkpoint on SIGINT/SIGTERM,
a stop on a NaN loss, and the random state in checkpoints (for an exact resume)."""

import math
import signal
import sys
import threading
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import RichProgressBar

from gpt.errors import TrainingDivergedError


class TokensPerSecond(L.Callback):
    """Training tokens per second at a steady pace, and the wall clock since training started (validation
    included), logged with each validation.

    The clock runs from the end of one training step to the end of the next, so a step's time counts loading its
    batch and the optimiser step. It stops at each validation's start and restarts at the next step's start: neither
    validation nor the checkpoints saved after it count. The run's first step is left out too (unless it is the only
    one): it pays the one-off costs, such as Triton's autotuning, which on a GPU took longer than the next 100
    steps together (experiments/gpu/). `tokens` counts every step, the first included.

    Lightning's ThroughputMonitor synchronises CUDA on every step and reports only windowed rates; this keeps no
    per-step host work (one clock read) and also keeps the totals for the run's summary.
    """

    def __init__(self):
        self.tokens = 0  # every step's, all ranks together
        self._first_step: tuple[int, float] | None = None  # (tokens, seconds)
        self._timed_tokens, self._timed_seconds = 0, 0.0  # the steps after the first
        self._window_tokens, self._window_seconds = 0, 0.0
        self._mark: float | None = None

    @property
    def tokens_per_sec(self) -> float:
        if self._timed_seconds:
            return self._timed_tokens / self._timed_seconds
        tokens, seconds = self._first_step or (0, 0.0)
        return tokens / seconds if seconds else 0.0

    def on_train_start(self, *_):
        self._mark = self._started = time.perf_counter()

    def on_validation_start(self, *_):
        self._mark = None

    def on_train_batch_start(self, *_):
        if self._mark is None:
            self._mark = time.perf_counter()

    def on_validation_epoch_end(self, trainer, pl_module):
        if not trainer.sanity_checking:  # the report's x axis for val loss by wall time
            pl_module.log("time/wall_seconds", time.perf_counter() - self._started, rank_zero_only=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        now = time.perf_counter()
        tokens = batch[0].numel() * trainer.world_size
        elapsed = now - self._mark
        self._mark = now
        self.tokens += tokens
        if self._first_step is None:
            self._first_step = (tokens, elapsed)
            return
        self._timed_tokens += tokens
        self._timed_seconds += elapsed
        self._window_tokens += tokens
        self._window_seconds += elapsed
        if trainer.global_step % trainer.log_every_n_steps == 0:
            pl_module.log("train/tokens_per_sec", self._window_tokens / self._window_seconds, rank_zero_only=True)
            self._window_tokens, self._window_seconds = 0, 0.0


class ValidateOnLastStep(L.Callback):
    """Validate (and so checkpoint) the final weights too.

    Lightning validates every `val_check_interval` steps, but not at `max_steps` when that is not a multiple of
    the interval; a stop requested on the last step makes its loop validate before it ends.
    """

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step >= trainer.max_steps:
            trainer.should_stop = True


class TrainingInterrupted(Exception):
    """Training stopped on a signal, after checkpointing the step it had finished."""

    def __init__(self, signal_name: str, step: int, checkpoint: Path):
        super().__init__(f"stopped by {signal_name} at step {step}; checkpoint: {checkpoint}")
        self.signal_name = signal_name  # the exit status says which signal: 128 + its number


class CheckpointOnSignal(L.Callback):
    """SIGINT (Ctrl-C) or SIGTERM (a scheduler's preemption) ends training once the current step is done, with a
    checkpoint of that step, so that nothing is lost and `resume=` continues exactly there; it raises
    TrainingInterrupted to leave at once (no validation first: preemption grace periods are short). A second
    Ctrl-C stops without waiting. Under DDP the stop reaches every rank, whichever received the signal."""

    def __init__(self, checkpoint_path: Path):
        self.checkpoint_path = checkpoint_path
        self.received: str | None = None
        self._saved_step: int | None = None
        self._previous_handlers = {}

    def _on_signal(self, signum, frame):
        if self.received is not None:
            raise KeyboardInterrupt  # asked twice: stop now
        self.received = signal.Signals(signum).name
        print(
            f"\n{self.received}: finishing this step, then saving a checkpoint (again to stop at once)", file=sys.stderr
        )

    def on_train_start(self, trainer, pl_module):
        if threading.current_thread() is threading.main_thread():  # Python delivers signals to the main thread
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous_handlers[signum] = signal.signal(signum, self._on_signal)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self._saved_step is not None:
            return
        # With several processes a signal may reach one rank only (a scheduler, a kill of one pid): every rank
        # learns of it here, after the same step, so all save the same checkpoint and leave together, instead
        # of one rank waiting for the others in a collective. One process: no communication.
        if trainer.strategy.reduce_boolean_decision(self.received is not None, all=False):
            self.received = self.received or "SIGTERM"
            trainer.save_checkpoint(self.checkpoint_path)  # where Lightning's own checkpoints are taken
            self._saved_step = trainer.global_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self._saved_step is not None:  # leave once the saved step is also logged (and validated, if due)
            raise TrainingInterrupted(self.received, self._saved_step, self.checkpoint_path)

    def teardown(self, trainer, pl_module, stage):
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers = {}


class StopOnNonFiniteLoss(L.Callback):
    """Stops training when the loss is NaN or infinite, naming the step and the value.

    The training loss is checked every `log_every_n_steps` steps (when it is read for logging anyway), not on
    every step, which would make the host wait for the device each step; a NaN stays NaN, so the step named is
    at most that many steps after the first bad one. The validation loss is checked before each checkpoint is
    taken (Lightning runs checkpoint callbacks last), so a checkpoint of NaN weights is never written."""

    @staticmethod
    def _check(value, what: str, step: int, every: str) -> None:
        if not math.isfinite(value):
            raise TrainingDivergedError(
                f"the {what} loss is {value} at step {step}{every}; try a lower optim.lr, "
                "trainer.gradient_clip_val, or trainer.precision=32"
            )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step
        if step % trainer.log_every_n_steps == 0 or step >= trainer.max_steps:
            self._check(float(outputs["loss"]), "training", step, f" (checked every {trainer.log_every_n_steps} steps)")

    def on_validation_end(self, trainer, pl_module):
        val_loss = trainer.callback_metrics.get("val/loss")
        if val_loss is not None and not trainer.sanity_checking:
            self._check(float(val_loss), "validation", trainer.global_step, "")


class RandomState(L.Callback):
    """Keeps torch's random number generator state (dropout masks) in checkpoints and restores it on resume, so a
    resumed run draws what the uninterrupted run would have drawn (Lightning's checkpoints lack it). Tensors
    only, so checkpoints stay loadable with `torch.load(weights_only=True)`."""

    def state_dict(self):
        return {
            "cpu": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def load_state_dict(self, state_dict):
        torch.set_rng_state(state_dict["cpu"])
        if state_dict["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])


class StepProgressBar(RichProgressBar):
    """Lightning's rich progress bar, labelled by steps: training here is one endless epoch of random windows
    bounded by trainer.max_steps, so Lightning's "Epoch 0/-2" (max_epochs = -1 when max_steps is set) says
    nothing. The bar's total is already max_steps."""

    def on_train_epoch_start(self, trainer, pl_module):
        super().on_train_epoch_start(trainer, pl_module)
        if self.progress is not None and self.train_progress_bar_id is not None:
            self.progress.update(self.train_progress_bar_id, description="training")
