"""A result stored before its items (``TaskContext.publish``, ``ResultsStore.finish(items_pending=True)``).

The built-in engine announces its report as soon as it is whole and writes the scan's items
after; the runner stores the record, summary and report at once, and the items when the engine
ends. In between, every item read waits for them, never answering as if the scan had none; when
they never come (the engine died, the server stopped), item reads say why, and the report stays.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_kscan.errors import FindingsUnavailable
from mcp_kscan.runner.manager import ScanManager
from mcp_kscan.runner.records import ScanRecord, ScanState, ScanTask, TaskContext, TaskOutcome
from mcp_kscan.runner.store import ItemFilter, ResultsStore
from mcp_kscan.settings import Settings

from .storehelpers import backend, sample_index

pytestmark = pytest.mark.anyio

@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ResultsStore]:
    found = ResultsStore(backend(request.param, request, tmp_path / "scans.db"))
    found.open()
    yield found
    found.close()


def _record(n: int) -> ScanRecord:
    return ScanRecord(scan_id=f"{n}1111111-1111-4111-8111-{os.getpid():012d}", scanner="kubescape",
                      engine="builtin", status=ScanState.succeeded, created_at=datetime.now(UTC))


async def _published(store: ResultsStore, n: int) -> ScanRecord:
    record = _record(n)
    await store.delete([record.scan_id])  # PostgreSQL: a database shared by this test's earlier runs
    await store.insert(record)
    await store.finish(record, b'{"report": 1}', "application/json", None, items_pending=True)
    return record


async def test_item_reads_wait_for_the_items_of_a_published_result(store: ResultsStore, tmp_path: Path) -> None:
    record = await _published(store, 1)
    # The result itself is there at once: its state and report.
    stored = await store.get(record.scan_id)
    assert stored is not None and stored.status is ScanState.succeeded
    assert await store.raw_output(record.scan_id) == (b'{"report": 1}', "application/json")
    pages: list[Any] = []

    async def read() -> None:
        pages.append(await store.items(record.scan_id, "finding", ItemFilter(), 10, None))
        pages.append(await store.resources(record.scan_id, ItemFilter(), 10, 0))
        pages.append(await store.control_counts(record.scan_id, ItemFilter()))
        pages.append(await store.file_hash(record.scan_id, "/m/web.yaml"))  # a fix's check: with the items

    async with anyio.create_task_group() as tg:
        tg.start_soon(read)
        await anyio.sleep(0.3)
        assert pages == []  # waiting, not "no findings"
        assert await store.finish_items(record.scan_id, sample_index(tmp_path / "index.sqlite"), {"/m/web.yaml": "ab" * 32})
    page, (rows, total), counts, digest = pages
    assert digest == "ab" * 32
    assert [item["control_id"] for item in page.items] == ["C-0017", "C-0017", "C-0016"]
    assert total == 2 and len(rows) == 2
    assert [c.control_id for c in counts] == ["C-0017", "C-0016"]
    # Stored once: a second call finds nothing to do.
    assert not await store.finish_items(record.scan_id, sample_index(tmp_path / "again.sqlite"))
    assert (await store.items(record.scan_id, "finding", ItemFilter(), 10, None)).total == 3


async def test_items_that_never_come_are_an_error_naming_why(store: ResultsStore) -> None:
    record = await _published(store, 2)
    async with anyio.create_task_group() as tg:
        failures: list[str] = []

        async def read() -> None:
            with pytest.raises(FindingsUnavailable) as caught:
                await store.items(record.scan_id, "finding", ItemFilter(), 10, None)
            failures.append(str(caught.value))

        tg.start_soon(read)
        await anyio.sleep(0.2)
        await store.items_failed(record.scan_id, "built-in engine: the engine process was killed by SIGKILL")
    assert failures and "killed by SIGKILL" in failures[0] and "its report is complete" in failures[0]
    with pytest.raises(FindingsUnavailable, match="could not be indexed"):
        await store.resources(record.scan_id, ItemFilter(), 10, 0)
    with pytest.raises(FindingsUnavailable):
        await store.has_control(record.scan_id, "C-0017")
    assert await store.raw_output(record.scan_id) == (b'{"report": 1}', "application/json")


async def test_a_result_deleted_before_its_items_takes_none(store: ResultsStore, tmp_path: Path) -> None:
    record = await _published(store, 3)
    assert await store.delete([record.scan_id]) == 1
    assert not await store.finish_items(record.scan_id, sample_index(tmp_path / "index.sqlite"))
    counts = await store.write(lambda c: [c.execute(f"SELECT COUNT(*) FROM {table} WHERE scan_id=?",
                                                    (record.scan_id,)).fetchone()[0]
                                          for table in ("items", "item_runs", "item_resources", "item_indexing")])
    assert counts == [0, 0, 0, 0]


async def test_a_long_wait_ends_in_an_error_not_a_hang(store: ResultsStore, monkeypatch: pytest.MonkeyPatch) -> None:
    import mcp_kscan.runner.store as store_module

    monkeypatch.setattr(store_module, "ITEMS_WAIT_S", 0.3)
    record = await _published(store, 4)
    with anyio.fail_after(10), pytest.raises(FindingsUnavailable, match="still being indexed"):
        await store.items(record.scan_id, "finding", ItemFilter(), 10, None)


def _dead_pid() -> tuple[int, int | None]:
    """A pid that was a process and is none now, and a start time it never had."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid, 1


async def test_a_dead_servers_items_are_given_up_and_a_live_ones_renewed(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "scans.db", lease_s=60)
    store.open()
    try:
        mine, theirs = await _published(store, 5), await _published(store, 6)
        pid, ticks = _dead_pid()
        await store.write(lambda c: c.execute("UPDATE scans SET server_pid=?, server_ticks=? WHERE scan_id=?",
                                              (pid, ticks, theirs.scan_id)))
        assert await store.renew_leases() == 1  # this server's, whose items it is still storing
        store.recover_sync()
        with pytest.raises(FindingsUnavailable, match="the server stopped before they were stored"):
            await store.items(theirs.scan_id, "finding", ItemFilter(), 10, None)
        assert await store.finish_items(mine.scan_id, sample_index(tmp_path / "index.sqlite"))
        assert (await store.items(mine.scan_id, "finding", ItemFilter(), 10, None)).total == 3
        assert await store.renew_leases() == 0
    finally:
        store.close()


class _PublishingTask(ScanTask):
    """Publishes its result, then holds its items until ``release`` (or ends without them)."""

    scanner = "kubescape"
    engine = "builtin"

    def __init__(self, index: Path, *, fail: bool = False, secrets: tuple[str, ...] = ()) -> None:
        self.index = index
        self.fail = fail
        self.secrets = secrets
        self.timeout_s = 30.0
        self.request = {"paths": ["/m"]}
        self.release = anyio.Event()
        self.published: bool | None = None

    async def run(self, ctx: TaskContext) -> TaskOutcome:
        assert ctx.publish is not None
        self.published = await ctx.publish(TaskOutcome(status=ScanState.succeeded, raw_output=b'{"report": 2}'))
        await self.release.wait()
        if self.fail:
            return TaskOutcome(status=ScanState.failed, error="built-in engine: exit status 1", return_code=1)
        rows = sample_index(self.index)
        if self.published:
            return TaskOutcome(status=ScanState.succeeded, item_rows=rows, return_code=0)
        return TaskOutcome(status=ScanState.succeeded, raw_output=b'{"report": 2}', item_rows=rows)


def _settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", kill_grace_s=0.5, shutdown_grace_s=1.0)  # type: ignore[call-arg]


async def test_the_manager_shows_a_published_scan_done_and_its_items_when_they_come(tmp_path: Path) -> None:
    async with ScanManager(_settings(tmp_path)) as manager:
        task = _PublishingTask(tmp_path / "index.sqlite")
        scan_id = (await manager.submit(task)).scan_id
        done = await manager.wait(scan_id, 30)
        assert task.published is True and done.status is ScanState.succeeded and done.finished_at is not None
        assert done.return_code is None  # its process is still at work
        assert await manager.raw_output(scan_id) == (b'{"report": 2}', "application/json")
        pages: list[Any] = []

        async def read() -> None:
            pages.append(await manager.items(scan_id, "finding", ItemFilter(), 10, None))

        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            await anyio.sleep(0.2)
            assert pages == []
            task.release.set()
        assert pages[0].total == 3
        record = await manager.status(scan_id)
        assert record.status is ScanState.succeeded and record.return_code == 0


async def test_a_published_scan_whose_items_fail_keeps_its_result_and_says_why(tmp_path: Path) -> None:
    async with ScanManager(_settings(tmp_path)) as manager:
        task = _PublishingTask(tmp_path / "index.sqlite", fail=True)
        scan_id = (await manager.submit(task)).scan_id
        assert (await manager.wait(scan_id, 30)).status is ScanState.succeeded
        task.release.set()
        with anyio.fail_after(10), pytest.raises(FindingsUnavailable, match="exit status 1"):
            await manager.items(scan_id, "finding", ItemFilter(), 10, None)
        record = await manager.status(scan_id)
        assert record.status is ScanState.succeeded and record.has_report and record.return_code == 1


async def test_a_task_with_secrets_keeps_its_result_for_the_end(tmp_path: Path) -> None:
    """Its report is scrubbed whole at the end: publishing is refused, nothing stored early."""
    async with ScanManager(_settings(tmp_path)) as manager:
        task = _PublishingTask(tmp_path / "index.sqlite", secrets=("hunter2-token",))
        scan_id = (await manager.submit(task)).scan_id
        with anyio.fail_after(10):
            while task.published is None:
                await anyio.sleep(0.02)
        assert task.published is False
        assert (await manager.status(scan_id)).status is ScanState.running
        task.release.set()
        assert (await manager.wait(scan_id, 30)).status is ScanState.succeeded
        assert (await manager.items(scan_id, "finding", ItemFilter(), 10, None)).total == 3
