"""Training throughput in tokens per second, counting data loading and the optimiser step but not validation,
and the wall clock since training started (validation included), logged with each validation.

Lightning's ThroughputMonitor synchronises CUDA on every step and reports only windowed rates; this keeps no
per-step host work (one clock read) and also keeps the totals for the run's summary.
"""

import time

import lightning as L


class TokensPerSecond(L.Callback):
    def __init__(self):
        self.tokens = 0  # all ranks together
        self.seconds = 0.0
        self._window_tokens, self._window_seconds = 0, 0.0

    @property
    def tokens_per_sec(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    def _restart_clock(self, *_):
        self._mark = time.perf_counter()

    def on_train_start(self, *_):
        self._restart_clock()
        self._started = self._mark

    on_validation_end = _restart_clock  # validation time does not count in tokens/s (it does in wall seconds)

    def on_validation_epoch_end(self, trainer, pl_module):
        if not trainer.sanity_checking:  # the report's x axis for val loss by wall time
            pl_module.log("time/wall_seconds", time.perf_counter() - self._started, rank_zero_only=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        now = time.perf_counter()
        tokens = batch[0].numel() * trainer.world_size
        elapsed = now - self._mark
        self._mark = now
        self.tokens += tokens
        self.seconds += elapsed
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
