"""Run one scanner process safely: argv only, own process group, capped output, hard timeout.

Why a process group: scanners fork (kube-bench runs ``/bin/sh`` audits, Kubescape helpers), and
killing only the direct child leaves grandchildren running with our pipes open. Every child
starts its own session, so ``killpg`` reaches the whole tree. On Linux every child also dies
with the server, even a ``kill -9``-ed one (``runner.deathsig``).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
from anyio.abc import ByteReceiveStream, Process

from mcp_kscan.redact import redact_argv, redact_text
from mcp_kscan.runner.deathsig import with_parent_death_signal

if TYPE_CHECKING:
    from mcp_kscan.runner.standby import Standby

log = logging.getLogger(__name__)

DEFAULT_OUTPUT_CAP = 32 * 1024 * 1024
_READ_CHUNK = 64 * 1024
# After the direct child exits, how long its pipes may stay open (a straggling grandchild)
# before the group is killed so that reading can end.
_DRAIN_AFTER_EXIT_S = 2.0


@dataclass
class CapturedStream:
    """Bytes kept from one stream; the rest was read and thrown away so the child never blocks."""

    cap: int
    chunks: list[bytes] = field(default_factory=list)
    kept: int = 0
    total: int = 0

    @property
    def truncated(self) -> bool:
        return self.total > self.kept

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self.cap - self.kept
        if room > 0:
            piece = data[:room]
            self.chunks.append(piece)
            self.kept += len(piece)

    def value(self) -> bytes:
        return b"".join(self.chunks)


@dataclass
class ProcessResult:
    argv: list[str]
    """The argv that ran, secrets redacted."""
    return_code: int | None
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    stdout_bytes: int
    """How many bytes the child wrote to stdout, kept or not."""
    stderr_bytes: int
    timed_out: bool
    cancelled: bool
    duration_s: float
    started_at: datetime
    finished_at: datetime
    pid: int | None = None

    @property
    def truncated(self) -> bool:
        return self.stdout_truncated or self.stderr_truncated

    def stderr_tail(self, limit: int = 2000) -> str:
        """The end of stderr, decoded and redacted: what an error message quotes."""
        text = self.stderr[-limit:].decode("utf-8", "replace").strip()
        return redact_text(text)


StartHook = Callable[[int, int, int | None], Awaitable[None]]
"""Called with (pid, pgid, start_ticks) once the child is running: the store records them."""


def process_start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22).

    Together with the pid it identifies a process: after a server crash, start-up only kills a
    recorded group when both still match, so a recycled pid is never hit.
    """
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is parenthesised and may hold spaces: split after it.
    rest = raw[raw.rfind(")") + 2 :].split()
    try:
        return int(rest[19])
    except (IndexError, ValueError):
        return None


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> bool:
    """Signal a whole process group; False when it is already gone."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        log.warning("not permitted to signal process group %s", pgid)
        return False


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


async def _pump(stream: ByteReceiveStream | None, sink: CapturedStream,
                on_chunk: Callable[[bytes], None] | None = None) -> None:
    if stream is None:
        return
    try:
        async for chunk in stream:
            sink.add(chunk)
            if on_chunk is not None:
                on_chunk(chunk)
    except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
        pass


async def _terminate_group(process: Process, pgid: int, grace_s: float) -> None:
    """SIGTERM the group, give it ``grace_s`` to exit, then SIGKILL whatever is left."""
    if not kill_group(pgid, signal.SIGTERM):
        return
    with anyio.move_on_after(grace_s):
        while group_alive(pgid):
            if process.returncode is None:
                with anyio.move_on_after(0.05):
                    await process.wait()
            else:
                await anyio.sleep(0.05)
    kill_group(pgid, signal.SIGKILL)


async def run_process(
    argv: Sequence[str],
    *,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    stdout_cap: int = DEFAULT_OUTPUT_CAP,
    stderr_cap: int = DEFAULT_OUTPUT_CAP,
    kill_grace_s: float = 5.0,
    on_start: StartHook | None = None,
    secrets: Sequence[str] = (),
    on_stderr: Callable[[bytes], None] | None = None,
    arms_death_signal: bool = False,
    standby: Standby | None = None,
    order: bytes = b"",
) -> ProcessResult:
    """Run ``argv`` (a list, never a shell string) and collect its output.

    On timeout the group gets SIGTERM, then SIGKILL after ``kill_grace_s``; the output read so
    far is kept and the result says ``timed_out``. If the caller is cancelled the group is
    killed the same way before the cancellation propagates. ``env`` replaces the environment
    entirely (pass what the child needs, nothing more); stdin is /dev/null. ``on_stderr`` sees
    every stderr chunk as it arrives (a child reporting progress), whether or not it is kept.
    ``arms_death_signal``: the child asks for its parent-death signal itself, first thing
    (``deathsig.die_with_parent``: the built-in engine, this package's own code), so it is
    started directly, without the wrapper interpreter every other scanner gets.
    ``standby``: a process of this scan's kind started ahead (``runner.standby``), handed
    ``order`` on its stdin instead of starting ``argv`` (which still names the scan in the
    result); everything else, from the deadline on, is the same. Gone already: ``argv`` starts.
    """
    if isinstance(argv, str | bytes):
        raise TypeError("argv must be a sequence of strings, not a shell string")
    argv = [str(a) for a in argv]
    if not argv:
        raise ValueError("argv is empty")
    shown_argv = redact_argv(argv, secrets)
    out = CapturedStream(stdout_cap)
    err = CapturedStream(stderr_cap)
    started_at = datetime.now(UTC)
    t0 = time.monotonic()
    timed_out = False
    cancelled = False
    return_code: int | None = None
    pid: int | None = None

    process: Process | None = None
    if standby is not None:
        try:
            handed = await standby.hand(order)
        except BaseException:  # cancelled mid-order: nobody else would ever end that process
            with anyio.CancelScope(shield=True):
                await standby.discard()
            raise
        if handed:
            process = standby.process
        else:
            await standby.discard()
    if process is None:
        process = await anyio.open_process(
            argv if arms_death_signal else with_parent_death_signal(argv, env, cwd),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
    pid = process.pid
    pgid = pid  # start_new_session makes the child its own group leader
    try:
        if on_start is not None:
            await on_start(pid, pgid, process_start_ticks(pid))
        async with anyio.create_task_group() as tg:
            tg.start_soon(_pump, process.stdout, out)
            tg.start_soon(_pump, process.stderr, err, on_stderr)
            with anyio.move_on_after(max(0.0, timeout_s)) as scope:
                await process.wait()
            if scope.cancelled_caught:
                timed_out = True
                with anyio.CancelScope(shield=True):
                    await _terminate_group(process, pgid, kill_grace_s)
            else:
                # The leader is gone; let the pipes drain, then make sure no grandchild lingers.
                with anyio.move_on_after(_DRAIN_AFTER_EXIT_S):
                    while group_alive(pgid):
                        await anyio.sleep(0.02)
                kill_group(pgid, signal.SIGKILL)
            # Pipes reach EOF once every holder is dead; don't wait forever on a stuck one.
            with anyio.move_on_after(_DRAIN_AFTER_EXIT_S):
                await process.wait()
            tg.cancel_scope.deadline = anyio.current_time() + _DRAIN_AFTER_EXIT_S
        return_code = process.returncode
    except anyio.get_cancelled_exc_class():
        cancelled = True
        with anyio.CancelScope(shield=True):
            await _terminate_group(process, pgid, kill_grace_s)
            await process.aclose()
        raise
    finally:
        if not cancelled:
            with anyio.CancelScope(shield=True):
                if process.returncode is None:
                    kill_group(pgid, signal.SIGKILL)
                await process.aclose()
                return_code = process.returncode
    finished_at = datetime.now(UTC)
    return ProcessResult(
        argv=shown_argv,
        return_code=return_code,
        stdout=out.value(),
        stderr=err.value(),
        stdout_truncated=out.truncated,
        stderr_truncated=err.truncated,
        stdout_bytes=out.total,
        stderr_bytes=err.total,
        timed_out=timed_out,
        cancelled=cancelled,
        duration_s=round(time.monotonic() - t0, 3),
        started_at=started_at,
        finished_at=finished_at,
        pid=pid,
    )
