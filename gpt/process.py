"""How a command's process ends: its exit handlers run, Python's teardown of its modules does not.

Once a command that loaded torch and Lightning has done its work (files written and closed, W&B finished), Python
would still take about a second to tear down its ~3,400 modules, collecting garbage among millions of objects that
the operating system frees at once anyway: `import lightning` alone takes 0.9 s longer to exit than to reach its
last line on 2 cores (experiments/measurements-2026-11-26.md).

The entry points that load torch mark their `main` with `ends_without_teardown`. Once it has returned or called
sys.exit, the process goes on as Python's own exit would, up to the end of its exit handlers: whatever wraps the
command finishes first (`python -m cProfile` writes its profile), the interpreter waits for the running threads,
then the exit handlers run (W&B's teardown, `coverage`'s data, ...). The last of them, registered here before
torch, Lightning or W&B could register theirs, then ends the process with os._exit and the status Python would
have given it. A bug (an exception other than SystemExit) ends the usual way, traceback and teardown included.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable

_ended: list[int] = []  # the exit status of each marked main that has ended (one, in a command)


def ends_without_teardown(main: Callable[[], None]) -> Callable[[], None]:
    """Mark `main` as a command's whole work (see the module's docstring). The unmarked function stays at
    `main.__wrapped__`, for running the command inside another process."""

    @functools.wraps(main)
    def command() -> None:
        try:
            main()
        except SystemExit as exit:
            _ended.append(exit_status(exit.code))
            raise
        _ended.append(0)

    return command


def exit_status(code: object) -> int:
    """The status Python gives sys.exit(code): None is 0, an int itself, anything else (printed) 1."""
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


@atexit.register  # first registered, so the last to run
def _end_without_teardown() -> None:
    if not _ended:  # no marked main has ended: a test session, a script, a bug's traceback
        return
    logging.shutdown()  # logging's own exit handler, registered before this one (when logging was imported)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed stream or a broken pipe: nothing more to say
            stream.flush()
    os._exit(_ended[-1])


@contextlib.contextmanager
def ctrl_c_after():
    """Hold a Ctrl-C back until the block is done, then raise it: for imports, which an interrupt can leave half
    done (an extension module's initialisation turns it into an ImportError, a traceback instead of a stop). Only
    the main thread receives signals; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt
