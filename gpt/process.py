"""How a command's process ends: its exit handlers run, Python's teardown of its modules does not.

Once a command that loaded torch and Lightning has done its work (files written and closed, W&B finished), Python
would still take about a second to tear down its ~3,400 modules, collecting garbage among millions of objects that
the operating system frees at once anyway: `import lightning` alone takes 0.9 s longer to exit than to reach its
last line on 2 cores (experiments/measurements-2026-11-26.md). The entry points that load torch decorate their
`main` with `ends_without_teardown`, which ends the process the way Python would, minus that teardown.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import sys
import threading
from collections.abc import Callable
from typing import NoReturn


def ends_without_teardown(main: Callable[[], None]) -> Callable[[], NoReturn]:
    """`main` as the whole process: its exit status as sys.exit would give it, every non-daemon thread joined,
    every exit handler run (W&B's teardown, logging's flush, ...), stdout and stderr flushed, then os._exit.
    An exception other than SystemExit (a bug) leaves by Python's usual path, with its traceback.
    The undecorated function stays at `main.__wrapped__`, for running the command inside another process."""

    @functools.wraps(main)
    def process() -> NoReturn:
        try:
            main()
        except SystemExit as exit:
            status = exit_status(exit.code)
        else:
            status = 0
        for thread in threading.enumerate():  # what the interpreter waits for before its exit handlers
            if thread is not threading.main_thread() and not thread.daemon:
                thread.join()
        atexit._run_exitfuncs()  # the handlers Python's own exit would run (private, but stable since Python 3.0)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # a closed stream or a broken pipe: nothing more to say
                stream.flush()
        os._exit(status)

    return process


def exit_status(code: object) -> int:
    """The status Python gives sys.exit(code): None is 0, an int itself; anything else is printed to stderr, 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1
