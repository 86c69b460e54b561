"""A scan's deadline and cancellation for work that runs in the calling process.

The server runs every scan in a child process and ends it by killing the child's process group
(``runner.process``). ``mcp-kscan scan`` runs the built-in engine in its own process instead (no
second interpreter to start, no store), so the same two endings are signals it sends itself:
SIGALRM when the plan's timeout passes, SIGTERM when whoever started it cancels it, each raised as
an exception in the main thread. The engine's ``finally`` blocks then stop its forked workers
(``engine.parallel``). Ctrl-C is already ``KeyboardInterrupt``.

An exception raised by a signal handler lands wherever the main thread is. When that is a garbage
collector callback or a ``__del__``, Python swallows it as "unraisable" and the scan would run on
past its deadline. So an ending is a state, not a single raise: once it is due, the handler raises
again every ``_RETRY_S`` until the block is unwinding with it (seen through ``sys.exc_info()``, so
the engine's clean-up is never interrupted), and a block that completes after the ending was due
still ends with it.

Interval timers are not inherited across fork, so a worker never receives the parent's alarm.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_RETRY_S = 0.05
"""How soon a swallowed ending is raised again."""


class DeadlinePassed(Exception):
    """The scan ran longer than its timeout."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"timed out after {timeout_s:g}s; the engine's processes were stopped")
        self.timeout_s = timeout_s


class Cancelled(Exception):
    """The scan was cancelled (SIGTERM)."""

    def __init__(self) -> None:
        super().__init__("cancelled (SIGTERM); the engine's processes were stopped")


@contextmanager
def deadline(timeout_s: float) -> Iterator[None]:
    """Raise ``DeadlinePassed`` in this (main) thread after ``timeout_s`` seconds, and ``Cancelled``
    on SIGTERM, while the block runs; the previous handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("a deadline needs the main thread (signals are delivered there)")

    due: list[BaseException] = []
    returned: list[bool] = []
    """Set once the block is over: an alarm that lands while the handlers are being put back is late."""

    def end(exc: BaseException) -> None:
        if returned or isinstance(sys.exc_info()[1], (DeadlinePassed, Cancelled)):
            return  # the block is over, or already unwinding with an ending: let the clean-up run
        if not due:
            due.append(exc)
        signal.setitimer(signal.ITIMER_REAL, _RETRY_S)  # in case this raise is swallowed
        raise exc

    def on_alarm(_signum: int, _frame: FrameType | None) -> None:
        end(due[0] if due else DeadlinePassed(timeout_s))

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        end(Cancelled())

    old_alarm = signal.signal(signal.SIGALRM, on_alarm)
    old_term = signal.signal(signal.SIGTERM, on_term)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        yield
    finally:
        # Nested, so that an ending raised before ``returned`` is set still restores the handlers
        # and stops the timer: left behind, a retry alarm would end the process somewhere else.
        try:
            returned.append(True)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old_alarm)
            signal.signal(signal.SIGTERM, old_term)
    if due:
        raise due[0]
