"""runner.deadline: the endings of a scan that runs in the calling process (``mcp-kscan scan``)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from mcp_kscan.runner.deadline import Cancelled, DeadlinePassed, deadline


def test_the_deadline_interrupts_the_block() -> None:
    with pytest.raises(DeadlinePassed, match=r"timed out after 0.01s"), deadline(0.01):
        time.sleep(30)


def test_a_swallowed_ending_is_raised_again() -> None:
    """The alarm can land in a garbage-collector callback or a check's ``except Exception``, which
    swallow it; the scan must still end (seen in CI: a gc callback ate the only raise)."""
    swallowed = 0
    with pytest.raises(DeadlinePassed), deadline(0.01):
        try:
            time.sleep(30)
        except DeadlinePassed:
            swallowed += 1
        time.sleep(30)
    assert swallowed == 1


def test_a_block_that_finishes_after_its_ending_was_swallowed_still_ends_with_it() -> None:
    with pytest.raises(DeadlinePassed), deadline(0.01):
        try:
            time.sleep(30)
        except DeadlinePassed:
            pass


def test_clean_up_while_unwinding_is_not_interrupted() -> None:
    """A ``finally`` that outlasts the retry interval runs to its end: the engine stops its workers there."""
    finished = False
    with pytest.raises(DeadlinePassed), deadline(0.01):
        try:
            time.sleep(30)
        finally:
            time.sleep(0.3)  # several retry intervals
            finished = True
    assert finished


def test_sigterm_cancels() -> None:
    with pytest.raises(Cancelled), deadline(30):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)


def test_handlers_and_timer_come_back() -> None:
    before = signal.getsignal(signal.SIGALRM), signal.getsignal(signal.SIGTERM)
    with deadline(30):
        pass
    assert (signal.getsignal(signal.SIGALRM), signal.getsignal(signal.SIGTERM)) == before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_an_alarm_as_the_block_ends_leaves_no_handler_or_timer_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    """The alarm can land just as the block returns, in the clean-up that restores the handlers.
    Simulated: the handler runs when the clean-up stops the timer. The block's work is done, so it
    returns; the old handlers and a stopped timer must come back, or a later SIGALRM would end
    the CLI somewhere else (or kill it: SIGALRM's default action)."""
    before = signal.getsignal(signal.SIGALRM), signal.getsignal(signal.SIGTERM)
    real = signal.setitimer

    def alarm_lands_here(which: int, seconds: float, interval: float = 0.0) -> tuple[float, float]:
        if seconds == 0:
            handler = signal.getsignal(signal.SIGALRM)
            if callable(handler):
                handler(signal.SIGALRM, None)
        return real(which, seconds, interval)

    with deadline(30):
        monkeypatch.setattr(signal, "setitimer", alarm_lands_here)
    monkeypatch.setattr(signal, "setitimer", real)
    assert (signal.getsignal(signal.SIGALRM), signal.getsignal(signal.SIGTERM)) == before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
