"""What the entry points share: mistakes reported as one line, and config checks Hydra can't express."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys

from hydra.errors import CompactHydraException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig
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


def check_config(cfg: DictConfig) -> None:
    """Constraints the schema's types cannot say: allowed strings, ranges, values that must fit together."""
    if "backend" in cfg.model:  # the bigram phase has no attention
        check_backend(cfg.kernel.backend)
    if cfg.kernel.backend in TRITON_BACKENDS and "backend" in cfg.model:
        if cfg.model.dropout > 0:
            raise UserError(f"model.dropout={cfg.model.dropout} with kernel={cfg.kernel.backend}: the Triton kernels have "
                            "no attention dropout; use model.dropout=0, or kernel=eager or kernel=sdpa")
    if cfg.trainer.precision not in PRECISIONS:
        raise UserError(f"trainer.precision={cfg.trainer.precision}: allowed are {', '.join(PRECISIONS)}")
    for key in ("block_size", "batch_size", "val_windows"):
        if cfg.data[key] < 1:
            raise UserError(f"data.{key}={cfg.data[key]}: must be a positive integer")
    if not 0.0 < cfg.data.train_fraction < 1.0:
        raise UserError(f"data.train_fraction={cfg.data.train_fraction}: must be between 0 and 1")
    if cfg.trainer.max_steps < 1:
        raise UserError(f"trainer.max_steps={cfg.trainer.max_steps}: must be a positive integer")
    model = cfg.model
    if "block_size" in model and cfg.data.block_size > model.block_size:
        raise UserError(f"data.block_size={cfg.data.block_size} is beyond the model's {model.block_size} positions "
                        f"(model.block_size); use data.block_size <= {model.block_size} or a larger model.block_size")
    for key in ("n_layer", "n_head", "n_embd"):
        if key in model and model[key] < 1:
            raise UserError(f"model.{key}={model[key]}: must be a positive integer")
    if "dropout" in model and not 0.0 <= model.dropout < 1.0:
        raise UserError(f"model.dropout={model.dropout}: must be in [0, 1)")
    if "n_head" in model and model.n_embd % model.n_head:
        divisors = [h for h in range(1, model.n_embd + 1) if model.n_embd % h == 0]
        raise UserError(f"model.n_embd={model.n_embd} is not divisible by model.n_head={model.n_head}; "
                        f"n_head may be one of {divisors}")
