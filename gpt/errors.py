"""User-facing errors, and how the entry points report them: one line (`error: ...`), exit status 2.

A wrong config value, a missing corpus, a prompt the vocabulary can't encode, a kernel asked for where it cannot
run: the message says what was wrong and what is allowed. Everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import re
import signal
import sys
import traceback

import hydra
from hydra.errors import (
    CompactHydraException,
    ConfigCompositionException,
    InstantiationException,
    MissingConfigException,
    OverrideParseException,
)
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from kernels.errors import KernelUnavailableError


class UserError(Exception):
    """Something the user can fix; the message says what was wrong and what is allowed."""


class UnknownCharacterError(UserError, ValueError):
    """Text contains characters outside a tokenizer's vocabulary."""


class TrainingDivergedError(UserError):
    """The loss became NaN or infinite: the run stops, keeping its last good checkpoint."""


USER_ERRORS = (UserError, KernelUnavailableError, CompactHydraException, OmegaConfBaseException)
HYDRA_PACKAGE = os.path.dirname(hydra.__file__) + os.sep
# The one mistake in an override that Hydra reports as a plain ValueError, from its defaults list
NULL_GROUP = "Config group override must be a string or a list"


def null_group_refusal(exc: ValueError) -> UserError:
    """A config group given null (`kernel=null`) as the user's mistake it is; any other ValueError is re-raised."""
    if NULL_GROUP not in str(exc):
        raise exc
    return UserError(
        "a config group was given null (model=null, kernel=null, ...): a group takes one of its options, which "
        "--help lists; to run a checkpoint through its own kernel, leave kernel= out"
    )


def unwritable_dir_refusal(exc: OSError) -> UserError:
    """Hydra failing to create the run or sweep dir it was given (hydra.run.dir=/read-only/x) as the user's mistake
    it is; an OSError raised anywhere else is re-raised."""
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__) if not frame.filename.endswith("pathlib.py")]
    if exc.filename is None or not frames or not frames[-1].filename.startswith(HYDRA_PACKAGE):
        raise exc
    return UserError(
        f"cannot create {os.path.abspath(exc.filename)}: {exc.strerror}; give hydra.run.dir (a sweep: "
        "hydra.sweep.dir) a folder that can be written"
    )


LESS_MEMORY = "ask for less (gpt.evaluate: a smaller batch_tokens)"  # what the checkpoint commands can ask less of


def is_out_of_memory(exc: BaseException) -> bool:
    """torch could not allocate memory: a GPU's torch.OutOfMemoryError, or the CPU allocator's RuntimeError."""
    return type(exc).__name__ == "OutOfMemoryError" or (
        isinstance(exc, RuntimeError) and "DefaultCPUAllocator" in str(exc)
    )


def out_of_memory_refusal(exc: RuntimeError, advice: str = LESS_MEMORY) -> UserError:
    """torch running out of memory (a GPU's OutOfMemoryError, the CPU allocator's refusal) as the user's mistake it
    is, sizes the machine cannot hold, with the advice of the place that asked; any other RuntimeError is
    re-raised."""
    if not is_out_of_memory(exc):
        raise exc
    asked = re.search(r"tried to allocate ([\d.]+) ?(\w+)", str(exc), re.IGNORECASE)
    if asked and asked.group(2) == "bytes":  # the CPU allocator counts bytes
        asked = f" {int(asked.group(1)) / 2**30:,.1f} GiB"
    else:
        asked = f" {asked.group(1)} {asked.group(2)}" if asked else ""
    return UserError(f"out of memory: torch could not allocate{asked} more; {advice}")


@contextlib.contextmanager
def plain_errors_refused():
    """The user's mistakes raised as plain Python errors (Hydra's, and running out of memory), as UserErrors; any
    other error passes unchanged."""
    try:
        yield
    except ValueError as exc:
        raise null_group_refusal(exc) from None
    except OSError as exc:
        raise unwritable_dir_refusal(exc) from None
    except RuntimeError as exc:
        raise out_of_memory_refusal(exc) from None


_refusals: list[str] | None = None  # while the Python API runs a command: its refusal, instead of an exit


@contextlib.contextmanager
def refusals_raised():
    """Run a command from Python (gpt.api): a refusal raises one UserError whose message is the command line's
    line, instead of printing it and exiting. Inside, one_line_errors keeps the message and lets the command end
    quietly, so that Hydra, which runs the task, adds no report of its own."""
    global _refusals
    outer, _refusals = _refusals, []
    try:
        with plain_errors_refused():
            yield
    except USER_ERRORS as exc:  # raised outside a command (composing a config, loading a checkpoint)
        raise UserError(describe_user_error(exc)) from None
    finally:
        refusals, _refusals = _refusals, outer
    if refusals:
        raise UserError(refusals[0])


@contextlib.contextmanager
def one_line_errors():
    """Run an entry point so that a user's mistake prints as `error: ...` (exit status 2), not a traceback.

    Used around the Hydra entry point (config composition) and inside the task function (so that Hydra
    does not add its own report). Covers our own UserErrors and Hydra/OmegaConf config errors (misspelt key,
    wrong type, unknown option), which Hydra would otherwise print over several lines without saying what is
    allowed; output whose reader has gone (a closed pipe), which is no error at all; and Ctrl-C, which ends the
    command with status 130. Anything else is a bug and keeps its full traceback.
    """
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let Hydra's exceptions reach us instead of printing them itself
    try:
        with plain_errors_refused():
            yield
    except USER_ERRORS as exc:
        if _refusals is not None:  # refusals_raised: the caller raises it
            _refusals.append(describe_user_error(exc))
            return
        print(f"error: {describe_user_error(exc)}", file=sys.stderr)
        sys.exit(2)
    except BrokenPipeError:  # the reader of the output left (`gpt-sample ... | head`): stop quietly, as SIGPIPE would
        sys.exit(128 + signal.SIGPIPE)
    except KeyboardInterrupt:  # Ctrl-C outside training's own handling (loading, composing): no traceback
        if _refusals is not None:  # from Python: an interrupted notebook cell, as any other
            raise
        print("\nstopped by Ctrl-C", file=sys.stderr)
        sys.exit(128 + signal.SIGINT)


def describe_user_error(exc: BaseException) -> str:
    """One line for a mistake in the user's input: our own errors say it themselves (also when raised inside a
    config resolver, which wraps them); config errors are rendered."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, (UserError, KernelUnavailableError)):
            return str(cause)
        cause = cause.__cause__ or cause.__context__
    return describe_config_error(exc)


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse for the commands that are not Hydra's (gpt.report, gpt.workspace): a mistake on their command line is
    one line too, `error: <what argparse found>; usage: <their usage>`, where argparse prints the usage, then the
    error."""

    def error(self, message: str) -> None:
        self.exit(2, f"error: {message}; {' '.join(self.format_usage().split())}\n")


def counted(number: int, noun: str) -> str:
    """A count with its noun, as a sentence says it: 1 character, 3 characters, 322,751 characters."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def quoted_override(override: str) -> str:
    """key=value as one shell word holding a Hydra quoted string, key="value", which takes any character: each `"`
    escaped for Hydra, each `'` for the shell (tests/test_config.py parses it back). An override without a value
    gets an example instead."""
    key, equals, value = override.partition("=")
    if not equals:
        return """'prompt="Well, Prince"'"""
    # Hydra reads a backslash as an escape only before a quote: those (and one before the closing quote) doubled
    escaped = re.sub(r'(\\*)("|$)', lambda m: m.group(1) * 2 + ('\\"' if m.group(2) else ""), value)
    return "'" + f'{key}="{escaped}"'.replace("'", "'\\''") + "'"


def describe_config_error(exc: Exception) -> str:
    """One line for a Hydra/OmegaConf error: which key or option was wrong, and what is allowed."""
    if isinstance(exc, MissingConfigException) and exc.options:
        group, _, option = (exc.missing_cfg_file or "").rpartition("/")
        return f"{group}={option}: no such option; allowed: {', '.join(exc.options)}"
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
        return (
            f"cannot parse the override {exc.override!r} ({str(exc).splitlines()[0]}); quote a value holding spaces "
            f"or special characters: {quoted_override(exc.override)}"
        )
    if isinstance(exc, ConfigCompositionException):  # e.g. a comma in a value: Hydra's lines list the fixes
        return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return str(exc).splitlines()[0]
