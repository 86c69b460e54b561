"""Scanner processes started ahead of their scans, each handed its scan on stdin.

Why: the built-in engine is this package's own Python. A fresh interpreter starts and imports it
in about 0.09 s before it reads a file: most of a small scan's time (a 1,000-resource scan took
0.21-0.24 s started fresh, 0.14-0.16 s handed to a waiting process) and a tenth of a
10,000-resource one's. The CLI scans in its own process and has nothing to keep warm; a server
does.

How it stays what ``run_process`` promises: a standby is started like every scanner, from the
event loop's thread (the parent-death signal belongs to that thread, ``runner.deathsig``), in a
session and process group of its own, with the environment and pipes its scan would get, and it
arms its parent-death signal itself (the engine's ``--standby``). It does nothing until its
order comes. The scan's deadline, output caps, cancellation and the recording of its process group
for clean-up after a crash all start at the hand-over (``run_process(standby=...)``). One waits
per kind (argv, environment, working directory). The scan that took it primes the next one when
its own process has ended, not at the hand-over: a standby's imports (0.22 s of CPU on a slow
2 vCPU machine) would otherwise run beside the scan's workers, on the CPUs they use. A standby found
dead is dropped and the scan starts a fresh process, as it would without one. Closing the pool
(the manager's end) kills those still waiting.
"""

from __future__ import annotations

import logging
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import anyio
from anyio.abc import Process, TaskGroup

from mcp_kscan.runner.process import kill_group

log = logging.getLogger(__name__)

_CLOSE_WAIT_S = 5.0


@dataclass(frozen=True)
class StandbyKind:
    """What a standby is started with; a scan takes one only if its own would be the same."""

    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    cwd: str

    @classmethod
    def of(cls, argv: Sequence[str], env: Mapping[str, str], cwd: str) -> StandbyKind:
        return cls(tuple(argv), tuple(sorted(env.items())), cwd)


class Standby:
    """One waiting process of a kind."""

    def __init__(self, kind: StandbyKind, process: Process) -> None:
        self.kind = kind
        self.process = process

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    async def hand(self, order: bytes) -> bool:
        """Send the order and close stdin; False when the process is gone (start a fresh one)."""
        stdin = self.process.stdin
        if not self.alive or stdin is None:
            return False
        try:
            await stdin.send(order)
            await stdin.aclose()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            return False
        return True

    async def discard(self) -> None:
        """Kill it (its whole group) and wait for it."""
        kill_group(self.process.pid, signal.SIGKILL)
        with anyio.move_on_after(_CLOSE_WAIT_S, shield=True):
            await self.process.aclose()


class StandbyPool:
    """At most one waiting process per kind: ``bind`` it to a task group (which starts them),
    ``prime`` a kind, ``take`` it; ``close`` it before the task group ends."""

    def __init__(self) -> None:
        self._waiting: dict[StandbyKind, Standby] = {}
        self._starting: set[StandbyKind] = set()
        self._tg: TaskGroup | None = None
        self._closed = False

    def bind(self, tg: TaskGroup) -> None:
        """Start processes in ``tg``'s tasks (the manager's: they run on the event loop's thread)."""
        self._tg = tg

    @property
    def waiting(self) -> list[Standby]:
        return list(self._waiting.values())

    def prime(self, kind: StandbyKind) -> None:
        """Start a process of ``kind`` in the background, unless one waits or is starting."""
        if self._closed or self._tg is None or kind in self._waiting or kind in self._starting:
            return
        self._starting.add(kind)
        self._tg.start_soon(self._start, kind)

    def take(self, kind: StandbyKind) -> Standby | None:
        """The waiting process of ``kind`` (None if there is none alive); the taker primes the
        next one when its scan's process has ended (see the module's doc)."""
        standby = self._waiting.pop(kind, None)
        if standby is not None and not standby.alive:
            log.debug("a standby process (pid %s) had ended; the scan starts its own", standby.pid)
            if self._tg is not None:
                self._tg.start_soon(standby.discard)
            return None
        return standby

    async def close(self) -> None:
        """Kill the processes still waiting; none is started after this."""
        self._closed = True
        waiting, self._waiting = list(self._waiting.values()), {}
        for standby in waiting:
            await standby.discard()

    async def _start(self, kind: StandbyKind) -> None:
        # Shielded: a start cut short by the task group's end could leave its process behind;
        # once started, a closed pool kills it here.
        with anyio.CancelScope(shield=True):
            try:
                process = await anyio.open_process(
                    list(kind.argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    cwd=kind.cwd, env=dict(kind.env), start_new_session=True,
                )
            except OSError as exc:
                log.warning("could not start a standby process (%s); scans start their own", exc.strerror or exc)
                return
            finally:
                self._starting.discard(kind)
            standby = Standby(kind, process)
            if self._closed or kind in self._waiting:
                await standby.discard()
                return
            self._waiting[kind] = standby
