"""A server killed with SIGKILL mid-scan: finished results survive, the running scan becomes
``interrupted``, its scanner dies with it, and what the scanner left in its process group is
killed on the next start-up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mcp_kscan.runner.manager import ScanManager
from mcp_kscan.runner.records import ScanState
from mcp_kscan.settings import Settings

from servers import alive as _alive
from servers import wait_gone as _wait_gone

pytestmark = pytest.mark.anyio

SERVER = textwrap.dedent(
    """
    import sys, anyio
    sys.path.insert(0, {helpers!r})
    from taskhelpers import ScriptTask
    from mcp_kscan.runner.manager import ScanManager
    from mcp_kscan.settings import Settings

    async def main():
        settings = Settings(data_dir={data!r})
        async with ScanManager(settings) as manager:
            done = await manager.submit(ScriptTask("print('{{\\"finished\\": true}}')"))
            await manager.wait(done.scan_id, 30)
            running = await manager.submit(ScriptTask(
                "import os, subprocess, sys, time;"
                " child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']);"
                " open({pidfile!r} + '.tmp', 'w').write('%d %d' % (os.getpid(), child.pid));"
                " os.rename({pidfile!r} + '.tmp', {pidfile!r}); time.sleep(120)"))
            print(done.scan_id, running.scan_id, flush=True)
            await anyio.sleep(300)

    anyio.run(main)
    """
)


async def test_kill_dash_9_then_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    pidfile = tmp_path / "scanner.pid"
    code = SERVER.format(helpers=str(Path(__file__).parent), data=str(data), pidfile=str(pidfile))
    server = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()  # type: ignore[union-attr]
        done_id, running_id = line.split()
        deadline = time.monotonic() + 20
        while not pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        scanner_pid, child_pid = map(int, pidfile.read_text().split())
        assert _alive(scanner_pid) and _alive(child_pid)
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        # The scanner dies with its server (its parent-death signal, runner/deathsig.py); the child
        # it started has no such signal and stays behind in the scanner's process group.
        assert _wait_gone(scanner_pid, 30), "the scanner outlived its SIGKILLed server"
        assert _alive(child_pid)
    finally:
        if server.poll() is None:
            server.kill()

    async with ScanManager(Settings(data_dir=data)) as manager:
        assert running_id in manager.recovered
        interrupted = await manager.status(running_id)
        assert interrupted.status is ScanState.interrupted
        assert "server stopped" in (interrupted.error or "")
        finished = await manager.status(done_id)
        assert finished.status is ScanState.succeeded
        raw = await manager.raw_output(done_id)
        assert raw is not None and b"finished" in raw[0]
    assert _wait_gone(child_pid), "start-up did not kill what the scanner left in its process group"


async def test_recovery_leaves_pid_reuse_alone(tmp_path: Path) -> None:
    """A recorded group whose start time no longer matches is somebody else's process: untouched."""
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
    try:
        settings = Settings(data_dir=tmp_path / "d")
        async with ScanManager(settings) as manager:
            from .taskhelpers import ScriptTask

            rec = await manager.submit(ScriptTask("import time; time.sleep(0.1)"))
            await manager.wait(rec.scan_id, 30)
        # Forge a row that looks left running by a dead server, pointing at the bystander's pid
        # with a wrong start time.
        import sqlite3

        with sqlite3.connect(settings.db_path) as conn:
            conn.execute(
                "UPDATE scans SET status='running', pgid=?, pgid_ticks=1, server_pid=999999999, server_ticks=1"
                " WHERE scan_id=?",
                (bystander.pid, rec.scan_id),
            )
        async with ScanManager(settings) as manager:
            assert (await manager.status(rec.scan_id)).status is ScanState.interrupted
        assert bystander.poll() is None, "a process that is not our scanner was killed"
    finally:
        os.killpg(bystander.pid, signal.SIGKILL)
        bystander.wait()
