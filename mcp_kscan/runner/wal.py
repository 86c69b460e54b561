"""SQLite's write-ahead log, checkpointed beside the store's work, never inside one of its commits.

SQLite checkpoints by itself in the commit that takes the log past ``wal_autocheckpoint`` pages
(1,000 by default): that commit copies the log into the database file and syncs both before it
returns. A kept 10,000-resource built-in scan stores about 10 MB of rows (650 pages of 16 KiB),
so every second one paid a checkpoint inside the commit its answer waits for: ``store.finish`` of
the bench corpus's digest took 0.19-0.25 s instead of 0.08-0.12 (three in a row each way, a
throw-away script, 2026-12-02), the difference mostly the copy and its two syncs, not CPU.

So the store's connection never checkpoints (``wal_autocheckpoint=0``). After each commit it
looks at the log's size, and past the same 1,000 pages wakes this thread, which checkpoints on a
connection of its own: ``PASSIVE``, which never waits for the store's reads or writes (a frame
a reader still needs waits for the next one). The log's file is truncated when SQLite restarts it
(``journal_size_limit=0``), so its size is what was written since the last complete checkpoint.
SQLite still checkpoints when the store's connection, the last one, closes.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)

CHECKPOINT_PAGES = 1000
"""SQLite's own ``wal_autocheckpoint`` default: how much log a checkpoint waits for."""


def configure(conn: sqlite3.Connection) -> None:
    """The store's connection: no checkpoint in its commits, and a log file that shrinks when reset."""
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("PRAGMA journal_size_limit=0")


class Checkpointer:
    """A thread that checkpoints ``path``'s log once it holds ``CHECKPOINT_PAGES`` pages."""

    def __init__(self, path: Path, page_bytes: int) -> None:
        self.path = path
        self._log = Path(f"{path}-wal")
        self._threshold = CHECKPOINT_PAGES * page_bytes
        self._wake = threading.Event()
        self._closing = False
        self._thread: threading.Thread | None = None

    def after_commit(self) -> None:
        """Called after each of the store's commits: one ``stat``, and a wake-up when the log is big."""
        try:
            size = os.stat(self._log).st_size
        except OSError:
            return
        if size < self._threshold or self._closing:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
            self._thread.start()
        self._wake.set()

    def close(self) -> None:
        """Stop the thread (after the checkpoint it may be running); before the store's connection closes."""
        self._closing = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._closing:
                    return
                try:
                    if conn is None:
                        conn = sqlite3.connect(str(self.path), isolation_level=None, timeout=10, check_same_thread=False)
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:  # a full disk, say: the next wake-up tries again
                    log.warning("checkpointing the results database's log failed: %s", exc)
        finally:
            if conn is not None:
                conn.close()
