"""The SQLite store's log is checkpointed by a thread of its own, never inside a commit (runner.wal)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from mcp_kscan.runner import wal
from mcp_kscan.runner.db import Conn, SqliteDatabase


def _write(db: SqliteDatabase, megabytes: float) -> None:
    def op(c: Conn) -> None:
        c.execute("CREATE TABLE IF NOT EXISTS filler (data BLOB)")
        c.executemany("INSERT INTO filler VALUES (zeroblob(?))", [(100_000,)] * max(1, int(10 * megabytes)))

    db.call(op, write=True)


def test_a_commit_leaves_the_log_to_the_checkpoint_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wal.Checkpointer, "after_commit", lambda self: None)  # no thread: the commits alone
    db = SqliteDatabase(tmp_path / "scans.db")
    db.open()
    try:
        before = os.path.getsize(tmp_path / "scans.db")
        _write(db, 20)  # past SQLite's own checkpoint (1,000 pages of 16 KiB) in one commit
        _write(db, 1)  # and a commit after it
        assert os.path.getsize(tmp_path / "scans.db") == before, "a commit copied the log into the database"
        assert os.path.getsize(tmp_path / "scans.db-wal") > 20_000_000
    finally:
        db.close()


def test_the_thread_checkpoints_a_big_log_and_stops_with_the_store(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wal, "CHECKPOINT_PAGES", 10)
    db = SqliteDatabase(tmp_path / "scans.db")
    db.open()
    try:
        _write(db, 2)
        # Once checkpointed, the log restarts from its beginning at the next commit, and its file shrinks.
        deadline = time.monotonic() + 30
        while True:
            _write(db, 0.1)
            if os.path.getsize(tmp_path / "scans.db-wal") < 1_000_000:
                break
            assert time.monotonic() < deadline, "the log was never checkpointed"
            time.sleep(0.05)
        assert os.path.getsize(tmp_path / "scans.db") > 2_000_000
    finally:
        db.close()
    assert not (tmp_path / "scans.db-wal").exists()  # the last connection checkpointed and removed it
    assert not any(t.name == "sqlite-checkpoint" for t in threading.enumerate())
