"""The queue in PostgreSQL (runner/queue.py): admission and the concurrency limit hold across replicas.

Server A is a real second process (its own pid, so its own rows), server B runs in the test;
both on one PostgreSQL with the same limits: 2 running, 10 waiting.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import psycopg
import pytest

from mcp_kscan.errors import QueueFull
from mcp_kscan.runner.manager import ScanManager
from mcp_kscan.runner.records import ScanState
from mcp_kscan.settings import Settings

from .taskhelpers import ScriptTask, waits_for

pytestmark = pytest.mark.anyio

LIMITS = {"max_concurrent_scans": 2, "queue_capacity": 10, "kill_grace_s": 0.5, "shutdown_grace_s": 1.0}
SLEEPER = "import time; time.sleep(300)"

SERVER_A = textwrap.dedent(
    """
    import json, sys, anyio
    sys.path.insert(0, {helpers!r})
    from taskhelpers import ScriptTask
    from mcp_kscan.errors import QueueFull
    from mcp_kscan.runner.manager import ScanManager
    from mcp_kscan.settings import Settings

    async def main():
        settings = Settings(data_dir={data!r}, database_url={url!r}, **{limits!r})
        async with ScanManager(settings) as manager:
            print("ready", flush=True)
            await anyio.to_thread.run_sync(sys.stdin.readline)  # "go"
            accepted, refused = [], 0

            async def submit_one():
                nonlocal refused
                try:
                    accepted.append((await manager.submit(ScriptTask({sleeper!r}, timeout_s=600))).scan_id)
                except QueueFull:
                    refused += 1

            async with anyio.create_task_group() as tg:
                for _ in range(100):
                    tg.start_soon(submit_one)
            print(json.dumps({{"accepted": accepted, "refused": refused}}), flush=True)
            await anyio.to_thread.run_sync(sys.stdin.readline)  # stop: cancels what it still holds

    anyio.run(main)
    """
)


def _rows(url: str) -> list[tuple[str, str, int]]:
    """(scan_id, status, server_pid) of every scan, oldest first."""
    with psycopg.connect(url) as conn:
        return [(r[0], r[1], r[2]) for r in conn.execute("SELECT scan_id, status, server_pid FROM scans ORDER BY n")]


async def _until_counts(url: str, queued: int, running: int, timeout: float = 60) -> list[tuple[str, str, int]]:
    with anyio.fail_after(timeout):
        while True:
            rows = await anyio.to_thread.run_sync(_rows, url)
            states = [r[1] for r in rows]
            if states.count("queued") == queued and states.count("running") == running:
                return rows
            await anyio.sleep(0.2)


async def test_one_process_on_postgres_admits_exactly_capacity_plus_limit(tmp_path: Path, postgres_url: str) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=postgres_url, **LIMITS)  # type: ignore[arg-type]
    accepted: list[str] = []
    refused: list[str] = []

    async def submit_one() -> None:
        try:
            accepted.append((await manager.submit(ScriptTask(SLEEPER, timeout_s=600))).scan_id)
        except QueueFull as exc:
            refused.append(str(exc))

    async with ScanManager(settings) as manager:
        async with anyio.create_task_group() as tg:
            for _ in range(200):
                tg.start_soon(submit_one)
        assert len(accepted) == 12 and len(refused) == 188, (len(accepted), len(refused))
        assert "queue is full (10 waiting)" in refused[0]
        rows = await _until_counts(postgres_url, queued=10, running=2)
        # First come, first served: the two running are the two oldest.
        assert [r[1] for r in rows[:2]] == ["running", "running"]
        for scan_id in accepted:
            await manager.cancel(scan_id)


async def test_two_servers_share_the_capacity_the_limit_and_the_order(tmp_path: Path, postgres_url: str) -> None:
    """200 submissions split over two servers at once: exactly 12 accepted between them, 2 running
    between them; when a running scan ends, the oldest waiting scan runs next, whichever server holds it."""
    code = SERVER_A.format(helpers=str(Path(__file__).parent), data=str(tmp_path / "a"), url=postgres_url,
                           limits=LIMITS, sleeper=SLEEPER)
    server_a = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert server_a.stdin is not None and server_a.stdout is not None
    try:
        assert (await anyio.to_thread.run_sync(server_a.stdout.readline)).strip() == "ready"
        settings_b = Settings(data_dir=tmp_path / "b", database_url=postgres_url, **LIMITS)  # type: ignore[arg-type]
        accepted_b: list[str] = []
        refused_b = 0

        async def submit_one() -> None:
            nonlocal refused_b
            try:
                accepted_b.append((await b.submit(ScriptTask(SLEEPER, timeout_s=600))).scan_id)
            except QueueFull:
                refused_b += 1

        async with ScanManager(settings_b) as b:
            server_a.stdin.write("go\n")
            server_a.stdin.flush()
            async with anyio.create_task_group() as tg:
                for _ in range(100):
                    tg.start_soon(submit_one)
            result_a = json.loads(await anyio.to_thread.run_sync(server_a.stdout.readline))
            accepted_a: list[str] = result_a["accepted"]
            assert len(accepted_a) + len(accepted_b) == 12, (len(accepted_a), len(accepted_b))
            assert result_a["refused"] + refused_b == 188

            rows = await _until_counts(postgres_url, queued=10, running=2)
            assert {r[0] for r in rows} == set(accepted_a) | set(accepted_b)
            assert [r[1] for r in rows[:2]] == ["running", "running"]

            # End one running scan (B's cancel reaches it on either server): the oldest waiting
            # scan takes the slot, whichever server admitted it, and the limit still holds.
            oldest_waiting = rows[2][0]
            done = await b.cancel(rows[0][0], "make room")
            assert done.status is ScanState.cancelled
            rows = await _until_counts(postgres_url, queued=9, running=2)
            assert {r[0]: r[1] for r in rows}[oldest_waiting] == "running"
            # Cancelling B's own scans: A's stay for A to cancel when it stops.
            for scan_id in accepted_b:
                await b.cancel(scan_id)
    finally:
        if server_a.poll() is None:
            server_a.stdin.close()  # type: ignore[union-attr]
            try:
                server_a.wait(60)
            except subprocess.TimeoutExpired:
                server_a.kill()
                server_a.wait(30)
    assert server_a.returncode == 0
    assert not [r for r in _rows(postgres_url) if r[1] in ("queued", "running")]


async def test_two_managers_in_one_process_each_run_their_own_scans(tmp_path: Path, postgres_url: str) -> None:
    """Both managers carry this process's owner columns; a claim still takes only the claimer's own
    scans. (Before, A's claim when its scan ended took B's older waiting scan, which then ran
    nowhere, stayed ``queued`` for B and ``running`` in the database, and held the only slot.)"""
    limits = {**LIMITS, "max_concurrent_scans": 1}
    settings = [Settings(data_dir=tmp_path / name, database_url=postgres_url, **limits) for name in ("a", "b")]
    async with ScanManager(settings[0]) as a, ScanManager(settings[1]) as b:
        release = tmp_path / "release"
        first = await a.submit(ScriptTask(waits_for(release), timeout_s=120))  # running until released
        await _until_counts(postgres_url, queued=0, running=1)
        bs = await b.submit(ScriptTask("print('b')", timeout_s=120))
        later = await a.submit(ScriptTask("print('a')", timeout_s=120))
        release.touch()
        for manager, record in ((a, first), (b, bs), (a, later)):
            done = await manager.wait(record.scan_id, 120)
            assert done.status is ScanState.succeeded, done
        stored = {r[0]: r[1] for r in await anyio.to_thread.run_sync(_rows, postgres_url)}
        assert stored == {first.scan_id: "succeeded", bs.scan_id: "succeeded", later.scan_id: "succeeded"}
