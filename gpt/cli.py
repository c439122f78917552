"""What the entry points share: mistakes reported as one line, and config checks Hydra can't express."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import sys

from hydra.errors import (CompactHydraException, InstantiationException, MissingConfigException,
                          OverrideParseException)
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from gpt.config import PRECISIONS
from gpt.errors import UserError
from kernels import BACKENDS, TRITON_BACKENDS, KernelUnavailableError, check_can_run

USER_ERRORS = (UserError, KernelUnavailableError, CompactHydraException, OmegaConfBaseException)


@contextlib.contextmanager
def one_line_errors():
    """Run an entry point so that a user's mistake prints as `error: ...` (exit status 2), not a traceback.

    Used around the Hydra entry point (config composition) and inside the task function (so that Hydra
    does not add its own report). Covers our own UserErrors and Hydra/OmegaConf config errors (misspelt key,
    wrong type, unknown option), which Hydra would otherwise print over several lines without saying what is
    allowed. Anything else is a bug and keeps its full traceback.
    """
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let Hydra's exceptions reach us instead of printing them itself
    try:
        yield
    except USER_ERRORS as exc:
        print(f"error: {describe_user_error(exc)}", file=sys.stderr)
        sys.exit(2)


def describe_user_error(exc: BaseException) -> str:
    """One line for a mistake in the user's input: our own errors say it themselves (also when raised inside a
    config resolver, which wraps them); config errors are rendered."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, (UserError, KernelUnavailableError)):
            return str(cause)
        cause = cause.__cause__ or cause.__context__
    return describe_config_error(exc)


def describe_config_error(exc: Exception) -> str:
    """One line for a Hydra/OmegaConf error: which key or option was wrong, and what is allowed."""
    if isinstance(exc, MissingConfigException) and exc.options:
        group, _, option = (exc.missing_cfg_file or "").rpartition("/")
        allowed = ", ".join(o for o in exc.options if not o.endswith("_schema"))
        return f"{group}={option}: no such option; allowed: {allowed}"
    cause = exc if isinstance(exc, OmegaConfBaseException) else exc.__cause__
    if isinstance(cause, OmegaConfBaseException) and getattr(cause, "full_key", None):
        message = f"{cause.full_key}: {cause.msg.splitlines()[0]}"
        schema = getattr(cause, "object_type", None)
        if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and dataclasses.is_dataclass(schema):
            keys = [f.name for f in dataclasses.fields(schema) if not f.name.startswith("_")]
            message += f"; allowed keys here: {', '.join(keys)}"
        return message
    if isinstance(exc, InstantiationException) and exc.__cause__ is not None:  # the library's own reason, kept
        target = re.search(r"target '([^']+)'", str(exc))
        reason = " ".join(str(exc.__cause__).split())
        return f"{target.group(1) if target else 'a config target'} refused the config: {reason}"
    if isinstance(exc, OverrideParseException):
        return (f"cannot parse the override {exc.override!r} ({str(exc).splitlines()[0]}); quote values holding "
                """spaces or special characters: 'prompt="Well, Prince"'""")
    return str(exc).splitlines()[0]


def check_backend(backend: str) -> None:
    """The attention backend exists and can run here."""
    if backend not in BACKENDS:
        raise UserError(f"kernel={backend}: allowed are {', '.join(BACKENDS)}")
    if backend in TRITON_BACKENDS:
        check_can_run(f"kernel={backend}")


@dataclasses.dataclass(frozen=True)
class Range:
    """An interval of allowed values; `None` ends are unbounded. Printed the way a user reads it: [0, 1)."""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def __str__(self) -> str:
        low = "-inf" if self.low is None else f"{self.low}"
        high = "inf" if self.high is None else f"{self.high}"
        opening = "(" if self.low_open or self.low is None else "["
        closing = ")" if self.high_open or self.high is None else "]"
        return f"{opening}{low}, {high}{closing}"


POSITIVE, NON_NEGATIVE, FRACTION = Range(1), Range(0), Range(0, 1, high_open=True)
SEED = Range(0, 2**32 - 1)  # numpy's seeds
SAMPLE_RANGES = {"max_new_tokens": Range(0, 100_000), "temperature": Range(0, 100, low_open=True),
                 "top_k": POSITIVE, "seed": SEED}
# Every numeric option and its allowed values (a key a phase lacks, or a null, is skipped).
RANGES = {
    "seed": SEED,
    "data.block_size": POSITIVE, "data.batch_size": POSITIVE, "data.val_windows": POSITIVE,
    "data.train_fraction": Range(0, 1, low_open=True, high_open=True),
    "model.n_layer": POSITIVE, "model.n_head": POSITIVE, "model.n_embd": POSITIVE, "model.block_size": POSITIVE,
    "model.dropout": FRACTION,
    "optim.lr": Range(0, low_open=True), "optim.min_lr_ratio": Range(0, 1), "optim.warmup_steps": NON_NEGATIVE,
    "optim.weight_decay": NON_NEGATIVE, "optim.beta1": FRACTION, "optim.beta2": FRACTION,
    "trainer.max_steps": POSITIVE, "trainer.val_check_interval": POSITIVE, "trainer.log_every_n_steps": POSITIVE,
    "trainer.limit_val_batches": POSITIVE, "trainer.num_nodes": POSITIVE, "trainer.gradient_clip_val": NON_NEGATIVE,
    **{f"sample.{key}": allowed for key, allowed in SAMPLE_RANGES.items() if key != "seed"},
}


def check_ranges(cfg: DictConfig, ranges: dict[str, Range]) -> None:
    for key, allowed in ranges.items():
        value = OmegaConf.select(cfg, key)
        if value is not None and value not in allowed:
            raise UserError(f"{key}={value}: must be in {allowed}")


def check_config(cfg: DictConfig) -> None:
    """Constraints the schema's types cannot say: allowed strings, ranges, values that must fit together."""
    check_ranges(cfg, RANGES)
    if "backend" in cfg.model:  # the bigram phase has no attention
        check_backend(cfg.kernel.backend)
    if cfg.kernel.backend in TRITON_BACKENDS and "backend" in cfg.model:
        if cfg.model.dropout > 0:
            raise UserError(f"model.dropout={cfg.model.dropout} with kernel={cfg.kernel.backend}: the Triton kernels have "
                            "no attention dropout; use model.dropout=0, or kernel=eager or kernel=sdpa")
    if cfg.trainer.precision not in PRECISIONS:
        raise UserError(f"trainer.precision={cfg.trainer.precision}: allowed are {', '.join(PRECISIONS)}")
    model = cfg.model
    if "block_size" in model and cfg.data.block_size > model.block_size:
        raise UserError(f"data.block_size={cfg.data.block_size} is beyond the model's {model.block_size} positions "
                        f"(model.block_size); use data.block_size <= {model.block_size} or a larger model.block_size")
    if "n_head" in model and model.n_embd % model.n_head:
        divisors = [h for h in range(1, model.n_embd + 1) if model.n_embd % h == 0]
        raise UserError(f"model.n_embd={model.n_embd} is not divisible by model.n_head={model.n_head}; "
                        f"n_head may be one of {divisors}")
