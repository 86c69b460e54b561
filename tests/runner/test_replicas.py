"""Two servers on one PostgreSQL: a scan started on A is read, cancelled and guarded from B, and
when A is killed with SIGKILL mid-scan, A's scanner dies with it (the parent-death signal), B
settles A's scan and kills what the scanner left in its process group: no process of A's survives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from mcp_kscan.errors import ScanBusy, ScanNotFound
from mcp_kscan.runner.manager import ScanManager
from mcp_kscan.runner.records import ScanState
from mcp_kscan.settings import Settings

from servers import alive, group_members, until_state, wait_gone

pytestmark = pytest.mark.anyio

LEASE_S = 3.0

SERVER_A = textwrap.dedent(
    """
    import sys, anyio
    sys.path.insert(0, {helpers!r})
    from taskhelpers import ScriptTask
    from mcp_kscan.runner.manager import ScanManager
    from mcp_kscan.settings import Settings

    def sleeper(pidfile):
        # A scanner with a child of its own, as kube-bench's shell audits are: the child is in the
        # scanner's process group but gets no parent-death signal of its own.
        return ScriptTask(
            "import os, subprocess, sys, time;"
            " subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)']);"
            " open(%r + '.tmp', 'w').write(str(os.getpid())); os.rename(%r + '.tmp', %r);"
            " time.sleep(300)" % (pidfile, pidfile, pidfile), timeout_s=600)

    async def main():
        settings = Settings(data_dir={data!r}, database_url={url!r}, scan_lease_s={lease!r})
        async with ScanManager(settings) as manager:
            done = await manager.submit(ScriptTask("print('{{\\"from\\": \\"A\\"}}')"))
            await manager.wait(done.scan_id, 60)
            to_cancel = await manager.submit(sleeper({pid1!r}))
            to_kill = await manager.submit(sleeper({pid2!r}))
            print(done.scan_id, to_cancel.scan_id, to_kill.scan_id, flush=True)
            await anyio.sleep(600)

    anyio.run(main)
    """
)


async def _pid(path: Path, timeout: float = 60) -> int:
    with anyio.fail_after(timeout):
        while not path.exists():
            await anyio.sleep(0.05)
    return int(path.read_text())


async def _group_gone(pgid: int, timeout: float = 30) -> bool:
    with anyio.move_on_after(timeout):
        while group_members(pgid):
            await anyio.sleep(0.1)
        return True
    return False


async def test_scan_on_a_read_and_cancel_on_b_then_a_killed(tmp_path: Path, postgres_url: str) -> None:
    pid1, pid2 = tmp_path / "scanner1.pid", tmp_path / "scanner2.pid"
    code = SERVER_A.format(
        helpers=str(Path(__file__).parent), data=str(tmp_path / "a"), url=postgres_url, lease=LEASE_S,
        pid1=str(pid1), pid2=str(pid2),
    )
    server_a = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    scanners: list[int] = []
    try:
        line = await anyio.to_thread.run_sync(server_a.stdout.readline)  # type: ignore[union-attr]
        done_id, cancel_id, kill_id = line.split()
        settings_b = Settings(data_dir=tmp_path / "b", database_url=postgres_url, scan_lease_s=LEASE_S)
        async with ScanManager(settings_b) as b:
            # Results, cursors and the list from the other server.
            done = await b.status(done_id)
            assert done.status is ScanState.succeeded
            raw = await b.raw_output(done_id)
            assert raw is not None and b'"from": "A"' in raw[0]
            records, total = await b.list()
            assert total == 3 and {r.scan_id for r in records} == {done_id, cancel_id, kill_id}

            scanners = [await _pid(pid1), await _pid(pid2)]
            assert (await until_state(b, cancel_id, {ScanState.running})).status is ScanState.running
            assert all(alive(p) for p in scanners)

            # A scan running on A is not B's to delete, but B's cancel reaches it.
            with pytest.raises(ScanBusy):
                await b.delete(cancel_id)
            cancelled = await b.cancel(cancel_id, "cancelled through replica B")
            assert cancelled.status is ScanState.cancelled and cancelled.error == "cancelled through replica B"
            assert wait_gone(scanners[0], 30), "the cancelled scan's scanner still runs"
            assert await _group_gone(scanners[0]), "a child of the cancelled scan's scanner still runs"
            assert (await until_state(b, kill_id, {ScanState.running})).status is ScanState.running

            assert len(group_members(scanners[1])) == 2  # the scanner and its child
            server_a.send_signal(signal.SIGKILL)
            await anyio.to_thread.run_sync(server_a.wait, 30)
            # The scanner dies with A (its parent-death signal: test_deathsig.py shows it with no B around).
            assert await anyio.to_thread.run_sync(wait_gone, scanners[1], 30.0), "a scanner of A survived"
            settled = await until_state(b, kill_id, {ScanState.interrupted}, timeout=120)
            assert "server stopped while this scan was running" in (settled.error or "")
            # Its child, orphaned in the scanner's group, is killed by B when it settles the scan.
            assert await _group_gone(scanners[1]), "a child of A's scanner survived"

            await b.delete(kill_id)  # settled, so deletable from B
            with pytest.raises(ScanNotFound):
                await b.status(kill_id)
    finally:
        if server_a.poll() is None:
            server_a.kill()
            server_a.wait(30)
        for pid in scanners:
            for member in group_members(pid):
                os.kill(member, signal.SIGKILL)
