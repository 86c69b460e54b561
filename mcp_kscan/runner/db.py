"""The two database backends under the results store: SQLite (embedded, the default) and PostgreSQL.

The store writes its SQL once, with ``?`` placeholders and portable SQL; a backend supplies a
connection whose ``execute`` takes that SQL, runs each call in one lock (one connection per
process, so the event loop's worker threads never share a cursor), commits a write as one
transaction, and turns a driver error into ``StoreError``. What differs between the two lives
here and in ``migrations``, nowhere else.

Why PostgreSQL: several server replicas share one queue and one set of results only through a
database they can all reach; SQLite is a file on one machine.
"""

from __future__ import annotations

import abc
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

from mcp_kscan.errors import StoreError
from mcp_kscan.runner import migrations, wal
from mcp_kscan.runner.report_files import DIRECTORY_NAME as REPORTS_DIRECTORY
from mcp_kscan.runner.report_files import ReportFiles

if TYPE_CHECKING:
    # Imported where a PostgreSQL connection is made or used, not here: every server and CLI start
    # imports this module, and psycopg (0.13 s of CPU) is needed only when MCP_KSCAN_DATABASE_URL is set.
    import psycopg

log = logging.getLogger(__name__)

T = TypeVar("T")

_BLOB_CHUNK = 1 << 20


class Rows(Protocol):
    """What an ``execute`` hands back: a DB-API cursor, as both drivers make one."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Conn(Protocol):
    """A connection as the store's queries use it: ``?`` placeholders on either backend."""

    def execute(self, sql: str, args: Sequence[Any] = ..., /) -> Rows: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]], /) -> Any: ...


class Database(abc.ABC):
    """One connection, one lock; ``call`` runs a function on it, as a transaction when it writes."""

    dialect: str
    """``sqlite`` or ``postgresql``: which migration text applies."""

    def __init__(self) -> None:
        self.read_only = False
        """True when only a read-only connection could be opened: results stay readable."""
        self.last_error: str | None = None
        self._lock = threading.Lock()

    @abc.abstractmethod
    def open(self) -> None:
        """Connect and bring the schema up to date (``migrations``)."""

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def call(self, fn: Callable[[Conn], T], write: bool) -> T:
        """Run ``fn``; a write commits as one transaction or not at all."""

    @abc.abstractmethod
    def check_writable(self, probe_bytes: int) -> str | None:
        """None when the database takes ``probe_bytes`` of new data now; else the reason."""

    @abc.abstractmethod
    def describe(self) -> str:
        """Where the data lives, for logs and errors: never a password."""

    def insert_output(self, conn: Conn, scan_id: str, media_type: str, data: bytes | BinaryIO) -> None:
        """Store a scan's raw output, inside the caller's write; ``data`` may be an open file
        (a big report), which is read here, once."""
        conn.execute("INSERT INTO outputs (scan_id, media_type, data) VALUES (?,?,?)",
                     (scan_id, media_type, data if isinstance(data, bytes | bytearray) else data.read()))

    def output_ahead(self, data: BinaryIO) -> None:
        """Called before ``insert_output(..., data)``, with the work of the same transaction
        between the two: a database that keeps outputs as files starts syncing this one."""

    def output_data(self, data: Any, file_name: str | None, file_bytes: int | None) -> bytes | None:
        """The bytes of an ``outputs`` row (its ``data, file_name, file_bytes``); None when its
        file is gone (the result was deleted meanwhile)."""
        return bytes(data)

    def open_output(self, data: Any, file_name: str | None, file_bytes: int | None) -> bytes | BinaryIO | None:
        """``output_data``, but an output kept as a file comes back open (the caller closes it),
        not read: a big report is streamed to its reader, never held whole."""
        return self.output_data(data, file_name, file_bytes)

    def insert_item_index(self, conn: Conn, scan_id: str, path: Path) -> bool:
        """Copy the item tables of an index file (``runner.item_index``) as ``scan_id``'s, in the
        database itself, where it can; False when the caller must insert its rows itself."""
        return False

    def delete_outputs(self, conn: Conn, where: str, args: Sequence[Any]) -> int:
        """``DELETE FROM outputs`` + ``where``, inside the caller's write; returns the rows deleted."""
        return conn.execute("DELETE FROM outputs " + where, args).rowcount

    def sweep_output_files(self, conn: Conn) -> int:
        """Inside a write: remove stored output files no row names (a server killed between
        copying one and committing its row); returns how many. Only SQLite keeps such files."""
        return 0

    skip_locked = ""
    """What a ``SELECT`` appends to lock the rows it reads, passing over rows another process holds."""

    def lock_queue(self, conn: Conn) -> None:
        """Inside a write: make queue admission and claims one at a time across every process on
        this database, until the transaction ends. SQLite's write transaction already is."""

    def _failed(self, exc: Exception) -> StoreError:
        # Drivers' messages can run over several lines (PostgreSQL adds DETAIL/HINT): the first says it.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        self.last_error = first
        log.error("results database error: %s", first)
        return StoreError(f"results database error: {first}")


# ---------------------------------------------------------------------------------- SQLite


SQLITE_PAGE_BYTES = 16384
"""The page size of a new ``scans.db``. A stored report is a chain of overflow pages, each read
again to delete it: a 10k-resource scan's 85 MB report is 21,000 pages of 4 KiB (SQLite's
default) and 5,200 of 16 KiB, and storing, reading back and deleting it costs about a third
less CPU (docs/benchmarks-engine.md). A database keeps the page size it was created with."""
CAP_PAGE_BYTES = 4096
"""``MCP_KSCAN_DB_MAX_PAGES`` counts pages of this size (as documented), whatever the file's own."""


class SqliteDatabase(Database):
    """A file beside the server: nothing to install, survives ``kill -9`` (WAL, every change committed)."""

    dialect = "sqlite"

    def __init__(self, path: Path, max_pages: int | None = None) -> None:
        super().__init__()
        self.path = path
        self.max_pages = max_pages
        """Cap on the database size in pages of ``CAP_PAGE_BYTES`` (MCP_KSCAN_DB_MAX_PAGES), applied as
        ``PRAGMA max_page_count`` in the file's own pages."""
        self._conn: sqlite3.Connection | None = None
        self.report_files = ReportFiles(path.parent / REPORTS_DIRECTORY)
        """Where a raw output given as a file is kept (``runner.report_files``)."""
        self._created: list[str] = []
        """Files the open write transaction stored: removed if it rolls back."""
        self._unlinked: list[str] = []
        """Files whose rows the open write transaction deleted: removed once it commits."""
        self._checkpointer: wal.Checkpointer | None = None
        """Checkpoints the log beside the store's work (``runner.wal``); None while read-only or closed."""
        self._attached = False
        """Whether the open write transaction attached an index file (``insert_item_index``)."""

    def describe(self) -> str:
        return self.path.name

    def open(self) -> None:
        """Open (and create) the database; an existing one that cannot be written opens read-only.

        A read-only database (a read-only mount, a file the server may not write) still serves
        every stored result; the store then refuses writes with a clear error and ``/readyz``
        says 503, instead of the server failing to start.
        """
        conn: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=10)
            conn.execute(f"PRAGMA page_size={SQLITE_PAGE_BYTES}")  # a new file only: before anything is written
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            wal.configure(conn)
            conn.execute("BEGIN IMMEDIATE")
            try:
                migrations.migrate(conn, self.dialect)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            if self.max_pages:
                page_bytes = int(conn.execute("PRAGMA page_size").fetchone()[0])
                pages = -(-int(self.max_pages) * CAP_PAGE_BYTES // page_bytes)  # rounded up
                conn.execute(f"PRAGMA max_page_count={pages}")
        except migrations.SchemaTooNew as exc:
            _close(conn)
            raise StoreError(str(exc)) from None
        except (sqlite3.Error, OSError) as exc:
            # Closed now, not when the garbage collector gets to it (the exception's traceback
            # holds it): its descriptor kept a read-only mount busy after the store was closed.
            _close(conn)
            if not self.path.exists():
                raise StoreError(f"cannot open the results database {self.path.name}: {exc}") from None
            conn = self._open_read_only(exc)
        self._conn = conn
        if not self.read_only:
            page_bytes = int(conn.execute("PRAGMA page_size").fetchone()[0])
            self._checkpointer = wal.Checkpointer(self.path, page_bytes)
            try:
                os.chmod(self.path, 0o600)
            except OSError:
                pass

    def _open_read_only(self, cause: BaseException) -> sqlite3.Connection:
        # mode=ro still needs the WAL index (-shm) beside the file; on a read-only mount that
        # cannot be created, and immutable=1 (nothing else writes a read-only mount) reads anyway.
        uri = self.path.resolve().as_uri()
        last: sqlite3.Error | None = None
        for query in ("mode=ro", "mode=ro&immutable=1"):
            try:
                conn = sqlite3.connect(f"{uri}?{query}", uri=True, check_same_thread=False, isolation_level=None)
            except sqlite3.Error as exc:
                last = exc
                continue
            try:
                conn.execute("SELECT COUNT(*) FROM scans").fetchone()
                break
            except sqlite3.Error as exc:
                conn.close()
                last = exc
        else:
            raise StoreError(f"cannot open the results database {self.path.name}: {last}") from None
        self.read_only = True
        self.last_error = f"the results database is read-only ({cause}); stored results can be read, new scans cannot be stored"
        log.error("%s", self.last_error)
        return conn

    def close(self) -> None:
        with self._lock:
            if self._checkpointer is not None:
                self._checkpointer.close()  # first: the store's connection closes last, and checkpoints
                self._checkpointer = None
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def call(self, fn: Callable[[Conn], T], write: bool) -> T:
        with self._lock:
            if self._conn is None:
                raise StoreError("the results database is not open")
            if write and self.read_only:
                raise StoreError(self.last_error or "the results database is read-only")
            try:
                if write:
                    self._conn.execute("BEGIN IMMEDIATE")
                    self._created, self._unlinked = [], []
                    try:
                        result = fn(self._conn)
                        self._conn.execute("COMMIT")
                    except BaseException:
                        # SQLite rolls back by itself on some errors (SQLITE_FULL): a second
                        # ROLLBACK would fail and hide the real reason.
                        if self._conn.in_transaction:
                            self._conn.execute("ROLLBACK")
                        self.report_files.remove(self._created)
                        raise
                    finally:
                        self._detach()
                    # Still under the lock: no read of this process sees a row whose file is gone.
                    self.report_files.remove(self._unlinked)
                    if self._checkpointer is not None:
                        self._checkpointer.after_commit()
                else:
                    result = fn(self._conn)
            except sqlite3.Error as exc:
                raise self._failed(exc) from None
            if write:
                self.last_error = None
            return result

    _INDEX_SCHEMA = "scan_index"

    def insert_item_index(self, conn: Conn, scan_id: str, path: Path) -> bool:
        """``ATTACH`` the file and ``INSERT ... SELECT`` its tables: SQLite copies the rows, none
        is bound from Python. Detached after the transaction (SQLite refuses within it)."""
        from mcp_kscan.runner.item_index import TABLES, copy_sql

        if not path.is_file():  # ATTACH would create it, empty
            raise StoreError(f"the scan's index file is missing: {path.name}")
        # Absolute: a name starting "file:" would be read as a URI where SQLite allows them.
        conn.execute(f"ATTACH DATABASE ? AS {self._INDEX_SCHEMA}", (os.path.abspath(path),))
        self._attached = True
        for table in TABLES:
            conn.execute(copy_sql(table, self._INDEX_SCHEMA), (scan_id,))
        return True

    def _detach(self) -> None:
        if self._attached and self._conn is not None:
            self._attached = False
            try:
                self._conn.execute(f"DETACH DATABASE {self._INDEX_SCHEMA}")
            except sqlite3.Error as exc:  # the next scan's ATTACH then fails: that scan is not stored
                log.warning("could not detach a scan's index file: %s", exc)

    def output_ahead(self, data: BinaryIO) -> None:
        if not self.max_pages:
            self.report_files.sync_ahead(data)

    def insert_output(self, conn: Conn, scan_id: str, media_type: str, data: bytes | BinaryIO) -> None:
        """A file (the built-in engine's report) is kept as a file beside the database
        (``runner.report_files``): the kernel copies it, no byte passes through the server. Under a
        size cap (``MCP_KSCAN_DB_MAX_PAGES``), which counts the database's pages, it goes in through
        SQLite's incremental blob I/O, a megabyte at a time: never held whole in the server's
        memory either (sqlite3 would also copy bytes it binds)."""
        if isinstance(data, bytes | bytearray):
            super().insert_output(conn, scan_id, media_type, data)
            return
        if not self.max_pages:
            name, size = self.report_files.store(scan_id, data)
            self._created.append(name)
            conn.execute("INSERT INTO outputs (scan_id, media_type, data, file_name, file_bytes) VALUES (?,?,?,?,?)",
                         (scan_id, media_type, b"", name, size))
            return
        size = os.fstat(data.fileno()).st_size
        assert self._conn is not None and conn is self._conn  # inside call()
        rowid = self._conn.execute("INSERT INTO outputs (scan_id, media_type, data) VALUES (?,?,zeroblob(?))",
                                   (scan_id, media_type, size)).lastrowid
        assert rowid is not None
        with self._conn.blobopen("outputs", "data", rowid) as blob:
            left = size
            while left > 0:
                chunk = data.read(min(left, _BLOB_CHUNK))
                if not chunk:
                    raise StoreError(f"the raw output of scan {scan_id} shrank while it was stored")
                blob.write(chunk)
                left -= len(chunk)

    def output_data(self, data: Any, file_name: str | None, file_bytes: int | None) -> bytes | None:
        if file_name is None:
            return bytes(data)
        return self.report_files.read(file_name, file_bytes)

    def open_output(self, data: Any, file_name: str | None, file_bytes: int | None) -> bytes | BinaryIO | None:
        if file_name is None:
            return bytes(data)
        return self.report_files.open(file_name, file_bytes)

    def delete_outputs(self, conn: Conn, where: str, args: Sequence[Any]) -> int:
        names = [row[0] for row in conn.execute("DELETE FROM outputs " + where + " RETURNING file_name", args)]
        self._unlinked.extend(name for name in names if name is not None)
        return len(names)

    def sweep_output_files(self, conn: Conn) -> int:
        referenced = {row[0] for row in conn.execute("SELECT file_name FROM outputs WHERE file_name IS NOT NULL")}
        return self.report_files.sweep(referenced)

    def check_writable(self, probe_bytes: int) -> str | None:
        # The probe really writes (into a scratch table) and rolls back: a full disk, a size cap
        # or a read-only file shows here, not first when a scan's result is lost.
        if self.read_only:
            return self.last_error or "the results database is read-only"
        with self._lock:
            if self._conn is None:
                return "the results database is not open"
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    self._conn.execute("CREATE TABLE IF NOT EXISTS health_probe (data BLOB)")
                    self._conn.execute("INSERT INTO health_probe VALUES (zeroblob(?))", (int(probe_bytes),))
                finally:
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
            except sqlite3.Error as exc:
                self.last_error = f"results database error: {exc}"
                return self.last_error
        return None


def _close(conn: sqlite3.Connection | None) -> None:
    if conn is not None:
        conn.close()


# ---------------------------------------------------------------------------------- PostgreSQL


def redacted_url(url: str) -> str:
    """``url`` without its password, and of its query only ``host`` and ``port`` (where the server
    is: a Unix socket directory, say); anything else there may carry a secret."""
    parts = urlsplit(url)
    where = [(k, v) for k, v in parse_qsl(parts.query) if k in ("host", "port")]
    host = parts.hostname or ("" if where else "localhost")
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}@" if parts.username else ""
    query = f"?{urlencode(where, safe='/')}" if where else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}{query}"


class _PgConn:
    """The store's ``?`` SQL on a psycopg connection (which spells placeholders ``%s``)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    @staticmethod
    def _sql(sql: str) -> str:
        # The store's SQL has no literal '?' or '%': placeholders are the only ones.
        return sql.replace("%", "%%").replace("?", "%s")

    def execute(self, sql: str, args: Sequence[Any] = (), /) -> Rows:
        # Results in binary format: a stored report (BYTEA) otherwise travels as hex text, twice its
        # size, encoded by the server and decoded here: 1.8 ms instead of 0.3 ms for 77 KB. Every
        # column type the store reads (text, integers, double, bytea) comes back as the same value.
        return self._conn.execute(self._sql(sql), list(args), binary=True)  # type: ignore[call-overload]

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]], /) -> Any:
        with self._conn.cursor() as cur:
            cur.executemany(self._sql(sql), rows)  # type: ignore[arg-type]
            return cur


class PostgresDatabase(Database):
    """A PostgreSQL database that several server processes (replicas, workers) share.

    One autocommit connection per process: reads see every replica's latest commit, a write
    runs in its own transaction. A connection the server lost (PostgreSQL restarted, a network
    cut) is reopened on the next call; the call that saw it break fails with ``StoreError``.
    """

    dialect = "postgresql"
    _MIGRATION_LOCK = 0x6B7363616E  # pg_advisory_xact_lock key: replicas starting together migrate once
    _QUEUE_LOCK = 0x6B73637175  # pg_advisory_xact_lock key: one admission or claim at a time (runner.queue)
    skip_locked = " FOR UPDATE SKIP LOCKED"

    def lock_queue(self, conn: Conn) -> None:
        # Row locks alone cannot hold a global count (running scans, queued scans) steady: two
        # replicas could each see one free slot and both take it. The transaction's advisory lock can.
        conn.execute("SELECT pg_advisory_xact_lock(?)", (self._QUEUE_LOCK,))

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self._conn: psycopg.Connection[Any] | None = None

    def describe(self) -> str:
        return redacted_url(self.url)

    def _connect(self) -> psycopg.Connection[Any]:
        import psycopg

        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=10, application_name="mcp-kscan")
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot connect to the results database {self.describe()}: {_first_line(exc)}"
            ) from None

    def open(self) -> None:
        import psycopg

        conn = self._connect()
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._MIGRATION_LOCK,))
                migrations.migrate(_PgConn(conn), self.dialect)
        except migrations.SchemaTooNew as exc:
            conn.close()
            raise StoreError(str(exc)) from None
        except psycopg.Error as exc:
            conn.close()
            raise StoreError(f"cannot prepare the results database {self.describe()}: {_first_line(exc)}") from None
        with self._lock:
            self._conn = conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _live(self) -> psycopg.Connection[Any]:
        if self._conn is None:
            raise StoreError("the results database is not open")
        if self._conn.closed or self._conn.broken:
            log.warning("reconnecting to the results database %s", self.describe())
            self._conn = self._connect()
        return self._conn

    def call(self, fn: Callable[[Conn], T], write: bool) -> T:
        import psycopg

        with self._lock:
            conn = self._live()
            try:
                if write:
                    with conn.transaction():
                        result = fn(_PgConn(conn))
                else:
                    result = fn(_PgConn(conn))
            except psycopg.Error as exc:
                raise self._failed(exc) from None
            if write:
                self.last_error = None
            return result

    def check_writable(self, probe_bytes: int) -> str | None:
        import psycopg

        with self._lock:
            try:
                conn = self._live()
                with conn.transaction(force_rollback=True):
                    conn.execute("CREATE TEMPORARY TABLE IF NOT EXISTS health_probe (data BYTEA) ON COMMIT DROP")
                    conn.execute("INSERT INTO health_probe VALUES (%s)", (bytes(int(probe_bytes)),))
            except (psycopg.Error, StoreError) as exc:
                self.last_error = f"results database error: {_first_line(exc)}"
                return self.last_error
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def database_for(path: Path, url: str | None, max_pages: int | None = None) -> Database:
    """PostgreSQL when a URL is set (MCP_KSCAN_DATABASE_URL), else the SQLite file at ``path``."""
    return PostgresDatabase(url) if url else SqliteDatabase(path, max_pages)
