"""A scan's deadline and cancellation for work that runs in the calling process.

The server runs every scan in a child process and ends it by killing the child's process group
(``runner.process``). ``mcp-kscan scan`` runs the built-in engine in its own process instead (no
second interpreter to start, no store), so the same two endings are signals it sends itself:
SIGALRM when the plan's timeout passes, SIGTERM when whoever started it cancels it, each raised as
an exception in the main thread. The engine's ``finally`` blocks then stop its forked workers
(``engine.parallel``). Ctrl-C is already ``KeyboardInterrupt``.

Interval timers are not inherited across fork, so a worker never receives the parent's alarm.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


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

    def on_alarm(_signum: int, _frame: FrameType | None) -> None:
        raise DeadlinePassed(timeout_s)

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        raise Cancelled()

    old_alarm = signal.signal(signal.SIGALRM, on_alarm)
    old_term = signal.signal(signal.SIGTERM, on_term)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_alarm)
        signal.signal(signal.SIGTERM, old_term)
