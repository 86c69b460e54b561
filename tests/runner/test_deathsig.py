"""Scanners die with their server (runner/deathsig.py): a real server process killed with SIGKILL
takes its scanner with it, with no other server around to clean up; the wrapper is invisible to
the scanner (argv, PATH lookup, errors as Popen raises them)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from servers import alive, wait_gone

from mcp_kscan.runner import deathsig
from mcp_kscan.runner.process import run_process

pytestmark = pytest.mark.anyio

linux_only = pytest.mark.skipif(not deathsig.SUPPORTED, reason="the parent-death signal is Linux's")

SERVER = textwrap.dedent(
    """
    import sys, anyio
    from mcp_kscan.runner.process import run_process

    async def main():
        script = "import os, time; print(os.getpid(), flush=True); time.sleep(300)"

        async def started(pid, pgid, ticks):
            print(pid, flush=True)

        await run_process([sys.executable, "-c", script], timeout_s=600, on_start=started)

    anyio.run(main)
    """
)


@linux_only
def test_a_scanner_dies_with_its_killed_server() -> None:
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    scanner = 0
    try:
        scanner = int(server.stdout.readline())
        assert alive(scanner)
        # The scanner itself runs under the pid the server recorded: the wrapper exec's into it.
        # Wait for the scanner's own command line: during the exec /proc/PID/cmdline can read empty.
        deadline = time.monotonic() + 30
        while (cmdline := Path(f"/proc/{scanner}/cmdline").read_bytes().split(b"\0"))[1:3] != [
                b"-c", b"import os, time; print(os.getpid(), flush=True); time.sleep(300)"]:
            assert time.monotonic() < deadline, f"the wrapper never exec'd the scanner: {cmdline!r}"
            time.sleep(0.05)
        server.send_signal(signal.SIGKILL)
        server.wait(30)
        assert wait_gone(scanner, 30), "the scanner outlived its server"
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(30)
        if scanner and alive(scanner):
            os.kill(scanner, signal.SIGKILL)


async def test_the_scanner_sees_its_own_argv_zero_and_the_childs_path(tmp_path: Path) -> None:
    tool = tmp_path / "bin" / "fake-scanner"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\necho \"$0 $1\"\n")
    tool.chmod(0o755)
    result = await run_process(["fake-scanner", "arg"], timeout_s=30, env={"PATH": str(tool.parent)})
    assert result.return_code == 0 and result.stdout == f"{tool} arg\n".encode()


async def test_a_missing_or_unrunnable_scanner_raises_as_popen_does(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await run_process(["no-such-scanner-here"], timeout_s=30, env={"PATH": str(tmp_path)})
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\n")
    script.chmod(stat.S_IRUSR | stat.S_IWUSR)
    with pytest.raises(PermissionError):  # root too: no execute bit at all
        await run_process([str(script)], timeout_s=30)


@linux_only
def test_an_engine_whose_server_is_already_gone_stops_before_it_scans(tmp_path: Path) -> None:
    """The built-in engine arms its own signal (no wrapper, ``run_process(arms_death_signal=True)``):
    started by a server that died before the engine armed it, it finds another parent and kills
    itself, as the wrapper does, instead of scanning for nobody."""
    from mcp_kscan.engine.entry import EngineSpec
    from mcp_kscan.engine.task import engine_env

    (tmp_path / "pod.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n")
    spec_path, report_path = tmp_path / "spec.json", tmp_path / "report.json"
    gone = 1  # the engine's parent is this test, never init: as if its server had died
    spec_path.write_bytes(EngineSpec(paths=[str(tmp_path / "pod.yaml")], server_pid=gone).to_json())
    proc = subprocess.run([sys.executable, "-m", "mcp_kscan.engine.entry", str(spec_path), str(report_path)],
                          capture_output=True, env=engine_env(), timeout=120, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not report_path.exists()
    spec_path.write_bytes(EngineSpec(paths=[str(tmp_path / "pod.yaml")], server_pid=os.getpid()).to_json())
    proc = subprocess.run([sys.executable, "-m", "mcp_kscan.engine.entry", str(spec_path), str(report_path)],
                          capture_output=True, env=engine_env(), timeout=120, check=False)
    assert proc.returncode == 0 and report_path.exists(), proc.stderr
