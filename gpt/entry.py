"""What every command shares: `python -m gpt.<command> key=value ...` as a Hydra app that reports a user's mistake
in one line (gpt.errors) and ends without Python's teardown (gpt.process).

    @hydra_command("sample")              # conf/sample.yaml
    def main(cfg: DictConfig) -> None:    # the command's work on its composed config
        ...

The decorated function becomes the console script's `main()`, taking its overrides from sys.argv.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import hydra
from omegaconf import DictConfig

from gpt.config import CONFIG_DIR, register_configs
from gpt.errors import one_line_errors
from gpt.process import ends_without_teardown
from gpt.run_dirs import claims_of_one_command

MULTIRUN_FLAGS = ("-m", "--multirun")


def multirun_flag_first(argv: list[str]) -> list[str]:
    """argv with -m (--multirun) before the overrides, wherever it was typed: Hydra's parser takes it before or after
    them all, and refuses `model=bigram,gpt -m seed=1,2` as unrecognized arguments. (-m takes no value, and no
    override or other flag's value is spelt -m.)"""
    flags = [arg for arg in argv[1:] if arg in MULTIRUN_FLAGS]
    return [argv[0], *flags, *(arg for arg in argv[1:] if arg not in MULTIRUN_FLAGS)]


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
            sys.argv = multirun_flag_first(sys.argv)
            with one_line_errors(), claims_of_one_command():
                hydra_main()

        return main

    return decorate
