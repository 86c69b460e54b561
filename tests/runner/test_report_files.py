"""A raw output given as a file (the built-in engine's report): kept as a file beside scans.db on
SQLite, in the database on PostgreSQL; read back, freed with its record, kept across a restart,
never left behind by a rolled-back or interrupted store."""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from mcp_kscan.errors import StoreError
from mcp_kscan.runner import report_files
from mcp_kscan.runner.db import Database, PostgresDatabase, SqliteDatabase
from mcp_kscan.runner.items import StoredItem
from mcp_kscan.runner.records import ScanRecord, ScanState
from mcp_kscan.runner.store import ResultsStore

pytestmark = pytest.mark.anyio

SCAN = "33333333-3333-4333-8333-333333333333"


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if request.param == "sqlite":
        return SqliteDatabase(tmp_path / "data" / "scans.db")
    return PostgresDatabase(request.getfixturevalue("postgres_url"))


def _record(scan_id: str = SCAN) -> ScanRecord:
    return ScanRecord(scan_id=scan_id, scanner="kubescape", engine="builtin", status=ScanState.succeeded,
                      created_at=datetime.now(UTC), has_report=True)


def _report(tmp_path: Path, size: int = 3 << 20) -> Path:
    """A report file as the engine leaves it: JSON, several megabytes, not a multiple of a chunk."""
    body = b'{"resources":[' + b",".join(b'{"n":%d,"pad":"%s"}' % (i, b"x" * (i % 97)) for i in range(size // 60)) + b"]}"
    path = tmp_path / "report.json"
    path.write_bytes(body)
    return path


def _read(source: bytes | BinaryIO) -> bytes:
    if isinstance(source, bytes):
        return source
    with source:
        return source.read()


def _files(db: Database) -> list[str]:
    directory = db.path.parent / report_files.DIRECTORY_NAME if isinstance(db, SqliteDatabase) else None
    return sorted(os.listdir(directory)) if directory is not None and directory.exists() else []


async def _finish(store: ResultsStore, record: ScanRecord, report: Path,
                  rows: Iterator[StoredItem] | None = None, *, unnamed: bool = False) -> None:
    """Store ``report`` from its open file, as the manager does; ``unnamed``: its name gone
    first (a directory removed before the store), so it can only be copied."""
    await store.insert(record)
    with report.open("rb") as fh:
        if unnamed:
            report.unlink()
        await store.finish(record, fh, "application/json", None, rows=rows if rows is not None else iter(()))


async def test_a_report_file_is_stored_read_kept_across_a_restart_and_freed_with_its_record(
        backend: Database, tmp_path: Path) -> None:
    report = _report(tmp_path)
    expected = report.read_bytes()
    store = ResultsStore(backend)
    store.open()
    try:
        await _finish(store, _record(), report)
        assert await store.raw_output(SCAN) == (expected, "application/json")
        # For a reader that streams it (GET /v1/results), a file kept as one comes back open.
        record, stored = await store.get_with_output(SCAN) or (None, None)
        opened = await store.open_output(SCAN)
        assert record is not None and stored is not None and opened is not None
        for source, media_type in (stored, opened):
            assert media_type == "application/json"
            assert isinstance(source, bytes) != isinstance(backend, SqliteDatabase)
            assert _read(source) == expected
        files = _files(backend)
        if isinstance(backend, SqliteDatabase):
            # Beside the database, private, named for the scan; the row holds no bytes.
            assert len(files) == 1 and files[0].startswith(SCAN) and files[0].endswith(".json")
            path = backend.path.parent / report_files.DIRECTORY_NAME / files[0]
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert path.read_bytes() == expected
            assert path.stat().st_ino == report.stat().st_ino  # linked, not copied
            row = store._call(lambda c: c.execute("SELECT length(data), file_name, file_bytes FROM outputs"
                                                  " WHERE scan_id=?", (SCAN,)).fetchone(), write=False)
            assert tuple(row) == (0, files[0], len(expected))
        else:
            assert files == []

        store.close()  # a restart
        store = ResultsStore(backend)
        store.open()
        assert store.purge_orphans_sync() == 0
        assert await store.raw_output(SCAN) == (expected, "application/json")
        assert _files(backend) == files

        # A REST read deletes the record first and frees the bulk after it answered.
        assert await store.delete([SCAN], purge=False) == 1
        assert await store.raw_output(SCAN) is None and await store.get_with_output(SCAN) is None
        assert _files(backend) == files
        await store.purge([SCAN])
        assert _files(backend) == []
    finally:
        store.close()


async def test_a_kept_reports_sync_starts_before_its_findings_go_in(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store starts syncing the report file (on a thread, a duplicate descriptor) before it
    inserts the findings of the same transaction, so the two overlap; the file is stored whole
    and the duplicate is closed again, whoever closes the original first."""
    report = _report(tmp_path)
    expected = report.read_bytes()
    events: list[str] = []
    real_sync_ahead = report_files.ReportFiles.sync_ahead
    threads: list[threading.Thread] = []

    class Recorded(threading.Thread):
        """Each sync thread, recorded when it starts: one that ends at once (a small file syncs
        fast) would be missing from a listing of the threads alive after the call."""

        def start(self) -> None:
            if self.name == "mcp-kscan-report-sync":
                threads.append(self)
            super().start()

    def sync_ahead(self: report_files.ReportFiles, source: BinaryIO) -> None:
        events.append("sync started")
        real_sync_ahead(self, source)

    monkeypatch.setattr(report_files.threading, "Thread", Recorded)

    def rows() -> Iterator[StoredItem]:
        events.append("findings inserted")
        yield from ()

    monkeypatch.setattr(report_files.ReportFiles, "sync_ahead", sync_ahead)
    store = ResultsStore(SqliteDatabase(tmp_path / "data" / "scans.db"))
    store.open()
    try:
        open_fds = len(os.listdir("/proc/self/fd"))
        await _finish(store, _record(), report, rows())
        for thread in threads:
            thread.join(10)
        assert events == ["sync started", "findings inserted"]
        assert len(threads) == 1 and not threads[0].is_alive()
        assert len(os.listdir("/proc/self/fd")) == open_fds  # the duplicate is closed too
        assert await store.raw_output(SCAN) == (expected, "application/json")
    finally:
        store.close()


def test_a_report_on_another_file_system_is_not_synced_ahead(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``store`` copies such a file and syncs the copy: syncing the original too would be
    writing to disk for nothing. On the same file system it is synced (through a duplicate)."""
    report = _report(tmp_path)
    files = report_files.ReportFiles(tmp_path / "data" / report_files.DIRECTORY_NAME)
    duplicated: list[int] = []
    real_dup = os.dup

    def dup(fd: int) -> int:
        duplicated.append(fd)
        return real_dup(fd)

    monkeypatch.setattr(os, "dup", dup)
    with report.open("rb") as fh:
        files.sync_ahead(fh)  # the same file system: tmp_path
        assert duplicated == [fh.fileno()]
        monkeypatch.setattr(report_files, "_device", lambda directory: -1)
        files.sync_ahead(fh)
        assert duplicated == [fh.fileno()]


async def test_storing_the_same_scan_again_replaces_its_file(backend: Database, tmp_path: Path) -> None:
    """``finish`` of a scan already stored (the manager's retry without the report after a refused
    store) leaves one file, the new one."""
    store = ResultsStore(backend)
    store.open()
    try:
        report = _report(tmp_path, 1 << 20)
        await _finish(store, _record(), report)
        first = _files(backend)
        report.write_bytes(b'{"second":true}')
        with report.open("rb") as fh:
            await store.finish(_record(), fh, "application/json", None, rows=iter(()))
        assert await store.raw_output(SCAN) == (b'{"second":true}', "application/json")
        assert len(_files(backend)) == len(first) and (not first or _files(backend) != first)
        assert await store.delete([SCAN]) == 1
        assert _files(backend) == []
    finally:
        store.close()


async def test_a_store_that_rolls_back_leaves_no_file(tmp_path: Path) -> None:
    """The items fail after the report was copied in: the transaction rolls back, and its file goes with it."""
    db = SqliteDatabase(tmp_path / "scans.db")
    store = ResultsStore(db)
    store.open()

    def failing_rows() -> Iterator[StoredItem]:
        raise ValueError("a bad digest line")
        yield  # pragma: no cover

    try:
        with pytest.raises(ValueError, match="bad digest"):
            await _finish(store, _record(), _report(tmp_path), failing_rows())
        assert _files(db) == []
        row = store._call(lambda c: c.execute("SELECT COUNT(*) FROM outputs").fetchone()[0], write=False)
        assert row == 0
    finally:
        store.close()


async def test_files_left_by_a_killed_server_are_swept_at_the_next_start(tmp_path: Path) -> None:
    """A server killed between copying a report in and committing its row leaves a file (or a
    partial copy) that no row names: the next start removes those, and nothing else."""
    db = SqliteDatabase(tmp_path / "scans.db")
    store = ResultsStore(db)
    store.open()
    try:
        await _finish(store, _record(), _report(tmp_path, 1 << 20))
        kept = _files(db)
        folder = tmp_path / report_files.DIRECTORY_NAME
        (folder / f"{SCAN[:-1]}4-0123456789ab.json").write_bytes(b"{}")
        (folder / f"{SCAN[:-1]}5-0123456789ab.json.part").write_bytes(b"{")
        (folder / "notes.txt").write_bytes(b"not ours")
        store.close()
        store = ResultsStore(db)
        store.open()
        assert store.purge_orphans_sync() == 2
        assert _files(db) == sorted([*kept, "notes.txt"])
        assert (await store.raw_output(SCAN) or (b"",))[0].startswith(b'{"resources":[')
    finally:
        store.close()


async def test_a_damaged_or_foreign_stored_file_is_refused(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "scans.db")
    store = ResultsStore(db)
    store.open()
    try:
        await _finish(store, _record(), _report(tmp_path, 1 << 20))
        (name,) = _files(db)
        path = tmp_path / report_files.DIRECTORY_NAME / name
        with path.open("r+b") as fh:
            fh.truncate(1000)
        with pytest.raises(StoreError, match="1000 bytes, not the .* stored: it was damaged"):
            await store.raw_output(SCAN)
        store._call(lambda c: c.execute("UPDATE outputs SET file_name='../scans.db'"), write=True)
        with pytest.raises(StoreError, match="not one of its files"):
            await store.raw_output(SCAN)
    finally:
        store.close()


async def test_under_a_size_cap_the_report_stays_in_the_database(tmp_path: Path) -> None:
    """``MCP_KSCAN_DB_MAX_PAGES`` caps the database file: a report kept beside it would escape the cap."""
    db = SqliteDatabase(tmp_path / "scans.db", max_pages=4096)
    store = ResultsStore(db)
    store.open()
    try:
        report = _report(tmp_path, 1 << 20)
        await _finish(store, _record(), report)
        assert _files(db) == []
        assert await store.raw_output(SCAN) == (report.read_bytes(), "application/json")
    finally:
        store.close()


async def test_a_report_without_a_name_is_copied_by_the_kernel(tmp_path: Path) -> None:
    """A file that cannot be linked (its name gone, or on another file system) is copied."""
    db = SqliteDatabase(tmp_path / "data" / "scans.db")
    store = ResultsStore(db)
    store.open()
    try:
        report = _report(tmp_path, 2 << 20)
        expected = report.read_bytes()
        await _finish(store, _record(), report, unnamed=True)
        assert await store.raw_output(SCAN) == (expected, "application/json")
        (name,) = _files(db)
        assert stat.S_IMODE((db.path.parent / report_files.DIRECTORY_NAME / name).stat().st_mode) == 0o600
    finally:
        store.close()


async def test_a_file_system_that_cannot_copy_in_the_kernel_gets_the_same_bytes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """copy_file_range refused after a first piece (EXDEV: another file system on an old kernel):
    the rest goes through user space."""
    calls: list[Any] = []
    real = os.copy_file_range

    def partial_then_refused(src: int, dst: int, count: int, offset_src: int | None = None) -> int:
        calls.append(offset_src)
        if len(calls) == 1:
            return real(src, dst, 4096, offset_src)
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "copy_file_range", partial_then_refused)
    db = SqliteDatabase(tmp_path / "scans.db")
    store = ResultsStore(db)
    store.open()
    try:
        report = _report(tmp_path, 1 << 20)
        expected = report.read_bytes()
        await _finish(store, _record(), report, unnamed=True)
        assert calls == [0, 4096]
        assert await store.raw_output(SCAN) == (expected, "application/json")
        (name,) = _files(db)
        assert stat.S_IMODE((tmp_path / report_files.DIRECTORY_NAME / name).stat().st_mode) == 0o600
    finally:
        store.close()
