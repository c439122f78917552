"""What every command shares: `python -m gpt.<command> key=value ...` as a Hydra app that reports a user's mistake
in one line (gpt.errors) and ends without Python's teardown (gpt.process).

    @hydra_command("sample")              # conf/sample.yaml
    def main(cfg: DictConfig) -> None:    # the command's work on its composed config
        ...

The decorated function becomes the console script's `main()`, taking its overrides from sys.argv.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from collections.abc import Callable
from typing import Any

import hydra
from omegaconf import DictConfig

from gpt.config import CONFIG_DIR, register_configs
from gpt.errors import UserError, one_line_errors
from gpt.process import ends_without_teardown
from gpt.run_dirs import claims_of_one_command

# optuna's database layer, which +experiment=search's sweeper loads before any job, notes each of its plugins
logging.getLogger("alembic").setLevel(logging.WARNING)


def overrides_last(argv: list[str]) -> list[str]:
    """argv with Hydra's flags first and the overrides after them, wherever each was typed: Hydra's parser takes its
    flags only before or after all the overrides, and refuses `model=bigram,gpt -m seed=1,2` or `model=gpt --cfg
    job seed=1`. A word that is neither is refused in one line where argparse would print its usage: `--max_steps=10`,
    as nanoGPT's command line spells an option, or `--model gpt`."""
    from hydra._internal.utils import get_args_parser  # Hydra's own parser, so that the two agree on every flag

    parser = get_args_parser()
    parser.exit_on_error = False
    try:
        parsed, unknown = parser.parse_known_intermixed_args(argv[1:])
    except argparse.ArgumentError as exc:  # a flag without its value, or with one it does not take
        raise UserError(f"{exc}; --help lists the flags") from None
    if unknown:
        raise UserError(
            f"{unknown[0]}: not an option of this command; it takes overrides, key=value without dashes (model=gpt "
            "trainer.max_steps=100), and Hydra's flags (-m, --cfg job, ...): --help lists both"
        )
    flags = list(argv[1:])
    for override in parsed.overrides:
        flags.remove(override)
    return [argv[0], *flags, *parsed.overrides]


def hydra_command(config_name: str) -> Callable[[Callable[[DictConfig], Any]], Callable[[], None]]:
    """Make `task(cfg)` a command composed from conf/<config_name>.yaml (module docstring). Errors are caught
    around composition (Hydra's) and inside the task (ours), so that Hydra adds no report of its own."""
    register_configs()

    def decorate(task: Callable[[DictConfig], Any]) -> Callable[[], None]:
        @hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name=config_name)
        @functools.wraps(task)
        def hydra_main(cfg: DictConfig) -> Any:
            with one_line_errors():
                return task(cfg)

        @ends_without_teardown
        def main() -> None:
            with one_line_errors(), claims_of_one_command():
                sys.argv = overrides_last(sys.argv)
                hydra_main()

        return main

    return decorate
