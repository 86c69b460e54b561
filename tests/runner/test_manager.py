"""ScanManager with real processes and a real SQLite file: states, limits, queue, cancel, secrets."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_kscan.errors import QueueFull, ScanBusy, ScanNotFound
from mcp_kscan.runner.manager import ScanManager
from mcp_kscan.runner.records import ScanState
from mcp_kscan.settings import Settings

from .taskhelpers import ScriptTask, waits_for

pytestmark = pytest.mark.anyio


def make_settings(tmp_path: Path, **kw: object) -> Settings:
    base = dict(data_dir=tmp_path / "data", kill_grace_s=0.5, shutdown_grace_s=1.0)
    base.update(kw)
    return Settings(**base)  # type: ignore[arg-type]


async def test_submit_returns_at_once_and_succeeds(tmp_path: Path) -> None:
    async with ScanManager(make_settings(tmp_path)) as manager:
        record = await manager.submit(ScriptTask("import time; time.sleep(0.3); print('{\"ok\": 1}')"))
        assert record.status is ScanState.queued
        assert len(record.scan_id) == 36 and record.scan_id[14] == "4"  # UUID4
        done = await manager.wait(record.scan_id, 30)
        assert done.status is ScanState.succeeded
        assert done.duration_s is not None and done.duration_s > 0.2
        assert done.finished_at and done.started_at and done.finished_at >= done.started_at
        raw = await manager.raw_output(record.scan_id)
        assert raw is not None and json.loads(raw[0]) == {"ok": 1}


async def test_wait_returns_running_record_on_timeout_and_reports_progress(tmp_path: Path) -> None:
    seen: list[str] = []

    async def progress(rec) -> None:  # type: ignore[no-untyped-def]
        seen.append(rec.status.value)

    release = tmp_path / "release"
    async with ScanManager(make_settings(tmp_path)) as manager:
        # Runs until the test releases it (a fixed sleep made the test wait it out).
        record = await manager.submit(ScriptTask(waits_for(release)))
        partial = await manager.wait(record.scan_id, 0.8, on_progress=progress, tick_s=0.2)
        assert partial.status in (ScanState.queued, ScanState.running)
        assert seen and set(seen) <= {"queued", "running"}
        release.touch()
        final = await manager.wait(record.scan_id, 30)
        assert final.status is ScanState.succeeded


async def test_crash_gives_failed_record_with_stderr_tail(tmp_path: Path) -> None:
    script = "import sys; sys.stdout.write('{\"half'); sys.stderr.write('panic: runtime error: index out of range'); sys.exit(2)"
    async with ScanManager(make_settings(tmp_path)) as manager:
        record = await manager.submit(ScriptTask(script))
        done = await manager.wait(record.scan_id, 30)
        assert done.status is ScanState.failed
        assert "index out of range" in (done.error or "")
        assert done.return_code == 2


async def test_unexpected_job_exception_is_a_failed_record_and_serving_goes_on(tmp_path: Path) -> None:
    class Broken(ScriptTask):
        async def run(self, ctx):  # type: ignore[no-untyped-def]
            raise RuntimeError("adapter bug")

    async with ScanManager(make_settings(tmp_path)) as manager:
        bad = await manager.submit(Broken("pass"))
        assert (await manager.wait(bad.scan_id, 10)).status is ScanState.failed
        good = await manager.submit(ScriptTask("print(1)"))
        assert (await manager.wait(good.scan_id, 30)).status is ScanState.succeeded


async def test_concurrency_limit_and_queue_full(tmp_path: Path) -> None:
    marker_dir = tmp_path / "markers"
    marker_dir.mkdir()
    # Each job records when it starts and ends; overlaps are computed afterwards.
    script = textwrap.dedent(
        f"""
        import os, time, uuid
        name = uuid.uuid4().hex
        open(os.path.join({str(marker_dir)!r}, name + ".start"), "w").write(repr(time.time()))
        time.sleep(0.6)
        open(os.path.join({str(marker_dir)!r}, name + ".end"), "w").write(repr(time.time()))
        """
    )
    settings = make_settings(tmp_path, max_concurrent_scans=2, queue_capacity=3)
    async with ScanManager(settings) as manager:
        ids = [(await manager.submit(ScriptTask(script))).scan_id for _ in range(5)]  # 2 running + 3 queued
        with pytest.raises(QueueFull):
            await manager.submit(ScriptTask(script))
        for scan_id in ids:
            assert (await manager.wait(scan_id, 60)).status is ScanState.succeeded
    spans = []
    for start in marker_dir.glob("*.start"):
        end = start.with_suffix(".end")
        spans.append((float(start.read_text()), float(end.read_text())))
    assert len(spans) == 5
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak == 2, f"at most 2 scans may run at once, saw {peak}"


async def test_queue_is_fifo(tmp_path: Path) -> None:
    order_file = tmp_path / "order"
    settings = make_settings(tmp_path, max_concurrent_scans=1, queue_capacity=10)
    async with ScanManager(settings) as manager:
        ids = []
        for i in range(4):
            script = f"import time; open({str(order_file)!r}, 'a').write('{i}'); time.sleep(0.1)"
            ids.append((await manager.submit(ScriptTask(script))).scan_id)
        for scan_id in ids:
            await manager.wait(scan_id, 30)
    assert order_file.read_text() == "0123"


async def test_cancel_running_and_queued(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    # Written to a temporary name and renamed: the test must never read a created but unwritten file.
    script = (
        f"import os, time; open({str(pidfile)!r} + '.tmp', 'w').write(str(os.getpid())); "
        f"os.rename({str(pidfile)!r} + '.tmp', {str(pidfile)!r}); time.sleep(60)"
    )
    settings = make_settings(tmp_path, max_concurrent_scans=1)
    async with ScanManager(settings) as manager:
        running = await manager.submit(ScriptTask(script))
        queued = await manager.submit(ScriptTask("print(1)"))
        with anyio.fail_after(10):
            while not pidfile.exists():
                await anyio.sleep(0.05)
        cancelled_q = await manager.cancel(queued.scan_id)
        assert cancelled_q.status is ScanState.cancelled
        cancelled_r = await manager.cancel(running.scan_id)
        assert cancelled_r.status is ScanState.cancelled
        assert "cancelled" in (cancelled_r.error or "")
        pid = int(pidfile.read_text())
        from servers import wait_gone

        assert wait_gone(pid)
        # The manager keeps serving.
        after = await manager.submit(ScriptTask("print(2)"))
        assert (await manager.wait(after.scan_id, 30)).status is ScanState.succeeded


async def test_job_timeout_kills_and_records_timed_out(tmp_path: Path) -> None:
    async with ScanManager(make_settings(tmp_path)) as manager:
        record = await manager.submit(ScriptTask("import time; print('partial', flush=True); time.sleep(60)", timeout_s=1))
        done = await manager.wait(record.scan_id, 30)
        assert done.status is ScanState.timed_out
        raw = await manager.raw_output(record.scan_id)
        assert raw is not None and b"partial" in raw[0]


async def test_status_list_delete(tmp_path: Path) -> None:
    async with ScanManager(make_settings(tmp_path)) as manager:
        with pytest.raises(ScanNotFound):
            await manager.status()
        a = await manager.submit(ScriptTask("print(1)"))
        await manager.wait(a.scan_id, 30)
        release = tmp_path / "release"
        b = await manager.submit(ScriptTask(waits_for(release)))
        assert (await manager.status()).scan_id == b.scan_id  # latest
        records, total = await manager.list()
        assert total == 2 and [r.scan_id for r in records] == [b.scan_id, a.scan_id]
        only_ok, _ = await manager.list(status="succeeded")
        assert [r.scan_id for r in only_ok] == [a.scan_id]
        with pytest.raises(ScanBusy):
            await manager.delete(b.scan_id)
        with pytest.raises(ScanBusy):
            await manager.delete_all()
        release.touch()
        assert (await manager.wait(b.scan_id, 30)).status is ScanState.succeeded
        await manager.delete(a.scan_id)
        with pytest.raises(ScanNotFound):
            await manager.status(a.scan_id)
        assert await manager.delete_all() == 1
        with pytest.raises(ScanNotFound):
            await manager.delete(a.scan_id)


async def test_a_result_deleted_but_not_freed_is_freed_at_the_next_start(tmp_path: Path) -> None:
    """A REST read deletes the record before answering and frees the output after; a server
    stopped in between leaves the output, which the next one frees as it opens the database."""
    settings = make_settings(tmp_path)
    async with ScanManager(settings) as manager:
        done = await manager.wait((await manager.submit(ScriptTask("print('{}')"))).scan_id, 30)
        await manager.delete(done.scan_id, purge=False)
        with pytest.raises(ScanNotFound):
            await manager.status(done.scan_id)
    db = settings.data_dir / "scans.db"

    def outputs() -> int:
        with sqlite3.connect(db) as c:
            return int(c.execute("SELECT COUNT(*) FROM outputs WHERE scan_id=?", (done.scan_id,)).fetchone()[0])

    assert outputs() == 1
    async with ScanManager(settings):
        assert outputs() == 0


async def test_retention_keeps_newest(tmp_path: Path) -> None:
    async with ScanManager(make_settings(tmp_path, max_results=3)) as manager:
        ids = []
        for i in range(5):
            r = await manager.submit(ScriptTask(f"print({i})"))
            await manager.wait(r.scan_id, 30)
            ids.append(r.scan_id)
        records, total = await manager.list(limit=10)
        assert total == 3
        assert [r.scan_id for r in records] == list(reversed(ids[2:]))


async def test_secrets_never_stored(tmp_path: Path) -> None:
    secret = "AKIA-very-secret-key-123"
    script = f"import sys; print('key is {secret}'); sys.stderr.write('bad key {secret}'); sys.exit(1)"
    async with ScanManager(make_settings(tmp_path)) as manager:
        job = ScriptTask(script, request={"accessKey": secret, "account": "acme"}, secrets=[secret])
        record = await manager.submit(job)
        done = await manager.wait(record.scan_id, 30)
        assert done.status is ScanState.failed
        assert secret not in done.model_dump_json()
        assert done.request["accessKey"] == "***"
    # Nothing in the database file mentions it, in any table.
    with sqlite3.connect(tmp_path / "data" / "scans.db") as conn:
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'"):
            for row in conn.execute(f"SELECT * FROM {table}"):
                assert secret not in repr(row), f"secret found in table {table}"


async def test_shutdown_cancels_running_after_grace(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, shutdown_grace_s=0.5)
    async with ScanManager(settings) as manager:
        record = await manager.submit(ScriptTask("import time; time.sleep(60)"))
        await manager.wait(record.scan_id, 0.5)
    async with ScanManager(settings) as manager:
        final = await manager.status(record.scan_id)
        assert final.status is ScanState.cancelled
        assert "shutdown" in (final.error or "")


async def test_queue_capacity_holds_under_200_concurrent_submissions(tmp_path: Path) -> None:
    """The capacity check and the reservation are one step: no submission slips in while another's insert runs."""
    settings = make_settings(tmp_path, max_concurrent_scans=2, queue_capacity=10)
    accepted: list[str] = []
    refused: list[str] = []

    async def submit_one() -> None:
        try:
            accepted.append((await manager.submit(ScriptTask("import time; time.sleep(60)"))).scan_id)
        except QueueFull as exc:
            refused.append(str(exc))

    async with ScanManager(settings) as manager:
        async with anyio.create_task_group() as tg:
            for _ in range(200):
                tg.start_soon(submit_one)
        # Two taken by the workers, ten waiting: exactly what the settings allow, whatever the interleaving.
        assert len(accepted) == 12 and len(refused) == 188, (len(accepted), len(refused))
        assert manager.queued_count + manager.running_count == 12
        assert "queue is full (10 waiting)" in refused[0]
        for scan_id in accepted:
            await manager.cancel(scan_id)


async def test_a_final_state_is_visible_only_once_stored(tmp_path: Path) -> None:
    """Seeing ``failed`` means the result can be read and deleted: the delete after a read is never refused.

    The store's write of the outcome is held open here; before, status already said ``failed``
    while the manager still counted the scan active, so ``GET /v1/results``'s delete was refused
    and the next read answered 500 again instead of 204 (issue 12).
    """
    from mcp_kscan.runner.store import ResultsStore

    class HeldStore(ResultsStore):
        def __init__(self, path: Path) -> None:
            super().__init__(path)
            self.entered = anyio.Event()
            self.release = anyio.Event()

        async def finish(self, *args: Any, **kwargs: Any) -> Any:
            self.entered.set()
            await self.release.wait()
            return await super().finish(*args, **kwargs)

    settings = make_settings(tmp_path)
    store = HeldStore(settings.db_path)
    async with ScanManager(settings, store=store) as manager:
        record = await manager.submit(ScriptTask("import sys; sys.exit(2)"))
        with anyio.fail_after(30):
            await store.entered.wait()
        try:
            assert (await manager.status(record.scan_id)).status is ScanState.running
            with pytest.raises(ScanBusy):
                await manager.delete(record.scan_id)
        finally:
            store.release.set()
        assert (await manager.wait(record.scan_id, 30)).status is ScanState.failed
        await manager.delete(record.scan_id)  # never refused once the final state is visible
        with pytest.raises(ScanNotFound):
            await manager.status(record.scan_id)
