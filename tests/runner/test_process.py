"""run_process against real child processes: group kill, caps, draining, timing fields."""

from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path

import anyio
import pytest

from servers import wait_gone

from mcp_kscan.runner.process import run_process

pytestmark = pytest.mark.anyio


def _wait_gone(pid: int, timeout: float = 5.0) -> bool:
    return wait_gone(pid, timeout)


async def test_captures_exit_code_stdout_stderr_and_times() -> None:
    result = await run_process(
        [sys.executable, "-c", "import sys; print('out'); sys.stderr.write('err'); sys.exit(3)"], timeout_s=10
    )
    assert result.return_code == 3
    assert result.stdout == b"out\n"
    assert result.stderr == b"err"
    assert not result.timed_out and not result.truncated
    assert result.duration_s >= 0
    assert result.started_at.tzinfo is not None and result.finished_at >= result.started_at
    assert result.started_at.isoformat().endswith("+00:00")


async def test_timeout_kills_child_and_grandchild(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    script = textwrap.dedent(
        f"""
        import subprocess, sys, time, os
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        open({str(pidfile)!r}, "w").write(f"{{os.getpid()}} {{child.pid}}")
        print("partial output", flush=True)
        time.sleep(120)
        """
    )
    t0 = time.monotonic()
    result = await run_process([sys.executable, "-c", script], timeout_s=1.5, kill_grace_s=0.5)
    assert result.timed_out
    assert time.monotonic() - t0 < 10
    assert b"partial output" in result.stdout  # partial output is kept
    parent, grandchild = (int(p) for p in pidfile.read_text().split())
    assert _wait_gone(parent), "the direct child survived the timeout"
    assert _wait_gone(grandchild), "the grandchild survived the timeout"


async def test_sigterm_ignoring_child_gets_sigkill(tmp_path: Path) -> None:
    script = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('x', flush=True); time.sleep(60)"
    t0 = time.monotonic()
    result = await run_process([sys.executable, "-c", script], timeout_s=1, kill_grace_s=0.5)
    assert result.timed_out
    assert result.return_code == -9
    assert time.monotonic() - t0 < 10


async def test_output_cap_drains_the_rest() -> None:
    # 20 MiB through a 1 MiB cap: the child must not block on a full pipe.
    script = "import sys\nchunk = b'a' * 65536\nfor _ in range(320): sys.stdout.buffer.write(chunk)\nsys.stderr.write('done')"
    result = await run_process([sys.executable, "-c", script], timeout_s=60, stdout_cap=1024 * 1024)
    assert result.return_code == 0
    assert not result.timed_out
    assert len(result.stdout) == 1024 * 1024
    assert result.stdout_truncated and result.truncated
    assert result.stdout_bytes == 320 * 65536
    assert result.stderr == b"done" and not result.stderr_truncated


async def test_cancellation_kills_the_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    script = f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    with anyio.move_on_after(1.5):
        await run_process([sys.executable, "-c", script], timeout_s=60, kill_grace_s=0.5)
    pid = int(pidfile.read_text())
    assert _wait_gone(pid)


async def test_env_is_replaced_and_cwd_used(tmp_path: Path) -> None:
    script = "import os, json; print(json.dumps({'cwd': os.getcwd(), 'env': dict(os.environ)}))"
    result = await run_process(
        [sys.executable, "-c", script], timeout_s=10, env={"ONLY": "this", "PATH": os.environ["PATH"]}, cwd=tmp_path
    )
    import json

    data = json.loads(result.stdout)
    assert data["cwd"] == str(tmp_path)
    assert data["env"].get("ONLY") == "this"
    assert "HOME" not in data["env"] or data["env"]["HOME"] != os.environ.get("HOME", "\0")


async def test_rejects_shell_strings() -> None:
    with pytest.raises(TypeError):
        await run_process("echo hi; touch /tmp/x", timeout_s=5)  # type: ignore[arg-type]


async def test_secrets_redacted_in_recorded_argv() -> None:
    result = await run_process(
        [sys.executable, "-c", "pass", "--access-key", "s3cr3t-value", "--token=abcd1234"],
        timeout_s=10,
        secrets=["s3cr3t-value"],
    )
    joined = " ".join(result.argv)
    assert "s3cr3t-value" not in joined and "abcd1234" not in joined
    assert "--access-key" in result.argv
