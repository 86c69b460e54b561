"""Processes started ahead of their scans (``runner.standby``) and handed them through ``run_process``."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from mcp_kscan.runner.process import run_process
from mcp_kscan.runner.standby import Standby, StandbyKind, StandbyPool

pytestmark = pytest.mark.anyio

# Reads its order, then answers with it, its pid and its working directory; or, told "sleep",
# sleeps past any deadline. What the engine's --standby does, in a few lines.
_WAITER = """
import json, os, sys, time
line = sys.stdin.readline()
if not line:
    sys.exit(0)
if line.strip() == "sleep":
    time.sleep(600)
print(json.dumps({"order": line.strip(), "pid": os.getpid(), "cwd": os.getcwd()}))
"""


def kind() -> StandbyKind:
    return StandbyKind.of([sys.executable, "-c", _WAITER], {"PATH": os.environ.get("PATH", "")},
                          tempfile.gettempdir())


@asynccontextmanager
async def pool() -> AsyncIterator[StandbyPool]:
    async with anyio.create_task_group() as tg:
        standbys = StandbyPool()
        standbys.bind(tg)
        try:
            yield standbys
        finally:
            await standbys.close()


async def waiting(standbys: StandbyPool) -> Standby:
    with anyio.fail_after(30):
        while not standbys.waiting:
            await anyio.sleep(0.01)
    return standbys.waiting[0]


async def primed_and_taken(standbys: StandbyPool, of: StandbyKind | None = None) -> Standby:
    """A standby of ``of`` (``kind()``) started, waited for and taken: the one that waited."""
    of = of or kind()
    standbys.prime(of)
    ready = await waiting(standbys)
    taken = standbys.take(of)
    assert taken is ready
    return taken


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_a_standby_takes_the_scan_and_the_next_one_waits() -> None:
    async with pool() as standbys:
        first = taken = await primed_and_taken(standbys)
        result = await run_process([sys.executable, "-c", "print('fresh')"], timeout_s=30, standby=taken,
                                   order=b'{"spec": "s"}\n')
        answer = json.loads(result.stdout)
        # The scan ran in the standby, not in a process started from argv; the argv still names it.
        assert answer == {"order": '{"spec": "s"}', "pid": first.pid, "cwd": tempfile.gettempdir()}
        assert result.pid == first.pid and result.return_code == 0 and "fresh" in " ".join(result.argv)
        # Taking one starts none: the taker primes the next once its scan has ended, so that its
        # start-up does not run beside the scan.
        await anyio.sleep(0.2)
        assert not standbys.waiting
        standbys.prime(kind())
        second = await waiting(standbys)
        assert second.pid != first.pid and second.alive
        # Another kind finds none: a scan takes only a process started as its own would be.
        other = StandbyKind.of([sys.executable, "-c", _WAITER], {"PATH": "/nowhere"}, tempfile.gettempdir())
        assert standbys.take(other) is None
    assert gone(second.pid)


async def test_a_standby_found_dead_leaves_the_scan_to_a_fresh_process() -> None:
    async with pool() as standbys:
        dead = taken = await primed_and_taken(standbys)
        os.kill(dead.pid, 9)
        await dead.process.wait()
        result = await run_process([sys.executable, "-c", "print('fresh')"], timeout_s=30, standby=taken, order=b"x\n")
        assert result.stdout.strip() == b"fresh" and result.pid != dead.pid
        # Dead while it waited: take() drops it and says so; the next one is primed as after any scan.
        standbys.prime(kind())
        replacement = await waiting(standbys)
        os.kill(replacement.pid, 9)
        await replacement.process.wait()
        assert standbys.take(kind()) is None
        standbys.prime(kind())
        assert (await waiting(standbys)).pid not in (dead.pid, replacement.pid)


async def test_the_deadline_counts_from_the_hand_over_and_ends_the_group() -> None:
    async with pool() as standbys:
        standbys.prime(kind())
        standby = await waiting(standbys)
        await anyio.sleep(0.5)  # waiting is not running: no deadline yet
        taken = standbys.take(kind())
        assert taken is standby
        result = await run_process(["unused"], timeout_s=0.5, kill_grace_s=0.2, standby=taken, order=b"sleep\n")
        assert result.timed_out and result.duration_s < 5
        assert gone(standby.pid)


async def test_closing_the_pool_kills_the_waiting_ones_and_starts_no_more() -> None:
    async with pool() as standbys:
        standbys.prime(kind())
        standby = await waiting(standbys)
        await standbys.close()
        assert gone(standby.pid) and not standbys.waiting
        standbys.prime(kind())
        await anyio.sleep(0.2)
        assert not standbys.waiting and standbys.take(kind()) is None


@pytest.mark.parametrize("closed", [True, False])
async def test_a_standby_whose_stdin_closes_leaves_quietly(closed: bool) -> None:
    """What a standby does when its server stops wanting it; its exit code is its own."""
    async with pool() as standbys:
        standby = await primed_and_taken(standbys)
        assert standby.process.stdin is not None
        if closed:
            await standby.process.stdin.aclose()
        else:
            assert await standby.hand(b"")
        with anyio.fail_after(30):
            assert await standby.process.wait() == 0
        await standby.discard()


async def test_a_scan_cancelled_while_its_order_is_written_kills_the_standby() -> None:
    """An order the process does not read fills the pipe: cancelled then, the scan must not
    leave that process waiting forever (nobody would hand it anything again)."""
    deaf = StandbyKind.of([sys.executable, "-c", "import time; time.sleep(600)"],
                          {"PATH": os.environ.get("PATH", "")}, tempfile.gettempdir())
    async with pool() as standbys:
        standby = taken = await primed_and_taken(standbys, deaf)
        with anyio.move_on_after(0.5) as scope:
            await run_process(["unused"], timeout_s=30, standby=taken, order=b"x" * (4 << 20))
        assert scope.cancelled_caught
        assert gone(standby.pid)
