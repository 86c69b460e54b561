"""The results store: one SQLite file holding scan records, raw outputs and pageable items.

Why SQLite: nothing to install, survives ``kill -9`` (WAL, every change committed as it
happens), and lets ``get_results`` filter and page findings with an index instead of loading a
multi-megabyte report into memory for every page.

All calls go through one connection guarded by a lock and run in a worker thread
(``anyio.to_thread``), so the event loop never waits on disk.
"""

from __future__ import annotations

import base64
import builtins
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from mcp_kscan.errors import InvalidRequest, StoreError
from mcp_kscan.readers.kubescape_v2 import severity_rank
from mcp_kscan.reports import KubeBenchReport, KubescapeReport
from mcp_kscan.runner.process import kill_group, process_start_ticks
from mcp_kscan.runner.records import ACTIVE_STATES, ScanRecord, ScanState

log = logging.getLogger(__name__)

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS scans (
    n               INTEGER PRIMARY KEY AUTOINCREMENT,
    scan_id         TEXT NOT NULL UNIQUE,
    scanner         TEXT NOT NULL,
    engine          TEXT NOT NULL,
    status          TEXT NOT NULL,
    origin          TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    started_at      TEXT,
    finished_at     TEXT,
    duration_s      REAL,
    phase           TEXT,
    error           TEXT,
    request_json    TEXT NOT NULL,
    command_json    TEXT,
    return_code     INTEGER,
    stderr_tail     TEXT,
    output_truncated INTEGER NOT NULL DEFAULT 0,
    summary_json    TEXT,
    has_report      INTEGER NOT NULL DEFAULT 0,
    progress_done   INTEGER,
    progress_total  INTEGER,
    pgid            INTEGER,
    pgid_ticks      INTEGER,
    server_pid      INTEGER,
    server_ticks    INTEGER
);
CREATE INDEX IF NOT EXISTS scans_status ON scans(status);
CREATE TABLE IF NOT EXISTS outputs (
    scan_id     TEXT PRIMARY KEY,
    media_type  TEXT NOT NULL,
    data        BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    scan_id     TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    item_type   TEXT NOT NULL,
    status      TEXT,
    severity    TEXT,
    control_id  TEXT,
    namespace   TEXT,
    kind        TEXT,
    node        TEXT,
    data        TEXT NOT NULL,
    resource_key TEXT,
    excepted    INTEGER NOT NULL DEFAULT 0,
    risk_rank   INTEGER,
    PRIMARY KEY (scan_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS scan_files (
    scan_id     TEXT NOT NULL,
    path        TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    PRIMARY KEY (scan_id, path)
) WITHOUT ROWID;
"""

# Columns added to ``items`` after its first release: a database written by an older server gets
# them on open (old rows keep NULLs and page as before; only the new views need them).
_ITEM_COLUMNS_ADDED = (
    ("resource_key", "TEXT"),
    ("excepted", "INTEGER NOT NULL DEFAULT 0"),
    ("risk_rank", "INTEGER"),
)

_RECORD_COLUMNS = (
    "scan_id, scanner, engine, status, origin, created_at, started_at, finished_at, duration_s, phase, "
    "error, request_json, command_json, return_code, summary_json, has_report, progress_done, progress_total,"
    " stderr_tail, output_truncated"
)

# Items are stored worst-first, so page one of the default view is what matters most.
_FINDING_STATUS_RANK = {"failed": 0, "skipped": 1, "passed": 2}
_CHECK_STATUS_RANK = {"FAIL": 0, "WARN": 1, "INFO": 2, "PASS": 3}


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None


def _dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    present = {d[0] for d in conn.execute("SELECT * FROM items LIMIT 0").description}
    for name, decl in _ITEM_COLUMNS_ADDED:
        if name not in present:
            conn.execute(f"ALTER TABLE items ADD COLUMN {name} {decl}")


def _row_to_record(row: Sequence[Any]) -> ScanRecord:
    return ScanRecord(
        scan_id=row[0],
        scanner=row[1],
        engine=row[2],
        status=ScanState(row[3]),
        origin=row[4],
        created_at=_dt(row[5]) or datetime.now(UTC),
        started_at=_dt(row[6]),
        finished_at=_dt(row[7]),
        duration_s=row[8],
        phase=row[9],
        error=row[10],
        request=json.loads(row[11]) if row[11] else {},
        command=json.loads(row[12]) if row[12] else None,
        return_code=row[13],
        summary=json.loads(row[14]) if row[14] else None,
        has_report=bool(row[15]),
        progress_done=row[16],
        progress_total=row[17],
        stderr_tail=row[18],
        output_truncated=bool(row[19]),
    )


@dataclass
class ItemFilter:
    """Filters for a page of findings/checks; None means "any".

    Values arrive canonical (the service checks them against what a report can hold and fixes
    their case), so the SQL compares exactly and stays portable; only ``kind`` is compared
    without case, because callers write ``deployment`` as often as ``Deployment``.
    """

    status: str | None = None
    severity: str | None = None
    control_id: str | None = None
    namespace: str | None = None
    kind: str | None = None
    node: str | None = None
    severities: tuple[str, ...] | None = None
    """``min_severity`` spelled out: the severities at or above it."""
    view: str = ""

    def key(self) -> str:
        return json.dumps([self.status, self.severity, self.control_id, self.namespace, self.kind, self.node,
                           list(self.severities) if self.severities is not None else None, self.view])

    def where(self, scan_id: str, item_type: str, *, with_status: bool = True) -> tuple[str, list[Any]]:
        """`` WHERE …`` and its arguments for the rows this filter keeps."""
        where = " WHERE scan_id=? AND item_type=?"
        args: list[Any] = [scan_id, item_type]
        for column, value in (
            ("status", self.status if with_status else None),
            ("severity", self.severity),
            ("control_id", self.control_id),
            ("namespace", self.namespace),
            ("node", self.node),
        ):
            if value is not None:
                where += f" AND {column} = ?"
                args.append(value)
        if self.kind is not None:
            where += " AND LOWER(kind) = LOWER(?)"
            args.append(self.kind)
        if self.severities is not None:
            where += f" AND severity IN ({','.join('?' * len(self.severities))})"
            args += list(self.severities)
        return where, args


@dataclass
class ControlCount:
    """One control's verdicts in a scan (``get_results(view="controls")``)."""

    control_id: str
    sample: dict[str, Any]
    """One of its findings (name, severity) as stored."""
    rank: int
    failed: int = 0
    passed: int = 0
    excepted: int = 0
    skipped: int = 0


@dataclass
class ResourceRow:
    """One resource and the controls it fails (``get_results(view="resources")``)."""

    kind: str
    namespace: str
    name: str
    file: str
    failed: list[dict[str, Any]]
    """Its failed findings as stored, most urgent first."""
    passed: int
    sample: dict[str, Any]


@dataclass
class ItemPage:
    items: list[dict[str, Any]]
    next_cursor: str | None
    total: int
    """How many items match the filter across all pages."""
    seqs: list[int]
    """Each item's position, so a caller that keeps fewer items can still make a cursor."""
    scan_id: str = ""
    filter: ItemFilter | None = None

    def truncate(self, keep: int) -> ItemPage:
        """The first ``keep`` items, with a cursor that resumes right after them."""
        if keep >= len(self.items):
            return self
        assert self.filter is not None
        return ItemPage(
            items=self.items[:keep],
            next_cursor=encode_cursor(self.scan_id, self.seqs[keep - 1], self.filter) if keep else self.next_cursor,
            total=self.total,
            seqs=self.seqs[:keep],
            scan_id=self.scan_id,
            filter=self.filter,
        )


def encode_cursor(scan_id: str, seq: int, filt: ItemFilter) -> str:
    raw = json.dumps({"id": scan_id, "seq": seq, "f": filt.key()}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, scan_id: str, filt: ItemFilter) -> int:
    """The last seq of the previous page. A cursor only works with the scan and filter that made it."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        seq = int(data["seq"])
        if data["id"] != scan_id or data["f"] != filt.key():
            raise ValueError
        return seq
    except Exception:
        raise InvalidRequest(
            "cursor", "not a cursor from the previous page of this scan with these filters"
        ) from None


def report_items(report: KubeBenchReport | KubescapeReport) -> Iterable[tuple[Any, ...]]:
    """Rows for the items table, worst first:
    (item_type, status, severity, control, ns, kind, node, json, resource_key, excepted, risk_rank).

    Public because the built-in engine's process computes them itself (``engine.digest``), so the
    server never holds a big report's objects. Findings follow the report's control order
    (``KubescapeReport.control_order``, the one risk order), failed before skipped before passed,
    so page one is what to fix first.
    """
    if isinstance(report, KubescapeReport):
        ranks = {cid: i for i, cid in enumerate(report.control_order)}
        unranked = len(ranks)
        findings = sorted(
            report.findings,
            key=lambda f: (
                _FINDING_STATUS_RANK.get(f.status, 9),
                ranks.get(f.control_id, unranked),
                severity_rank(f.severity),
                f.control_id,
                f.resource.namespace or "",
                f.resource.kind or "",
                f.resource.name or "",
                f.resource.file or "",
            ),
        )
        for f in findings:
            yield (
                "finding",
                f.status,
                f.severity,
                f.control_id,
                f.resource.namespace,
                f.resource.kind,
                None,
                f.model_dump_json(),
                f.resource.key(),
                int(f.excepted),
                ranks.get(f.control_id, unranked),
            )
    else:
        checks = sorted(
            enumerate(report.checks), key=lambda ic: (_CHECK_STATUS_RANK.get(ic[1].status, 9), ic[0])
        )
        for _, c in checks:
            yield ("check", c.status, None, c.id, None, c.node_type, c.node, c.model_dump_json(), None, 0, None)


class ResultsStore:
    """Synchronous SQLite access, wrapped by async methods that run it in a worker thread."""

    def __init__(self, path: Path, max_pages: int | None = None) -> None:
        self.path = path
        self.max_pages = max_pages
        """Cap on the database size in pages (``PRAGMA max_page_count``): MCP_KSCAN_DB_MAX_PAGES."""
        self.read_only = False
        """True when only a read-only connection could be opened: results stay readable."""
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._limiter = anyio.CapacityLimiter(1)
        self.last_error: str | None = None
        self._server_pid = os.getpid()
        self._server_ticks = process_start_ticks(self._server_pid)

    # ------------------------------------------------------------------ plumbing

    def open(self) -> None:
        """Open (and create) the database; an existing one that cannot be written opens read-only.

        A read-only database (a read-only mount, a file the server may not write) still serves
        every stored result; the store then refuses writes with a clear error and ``/readyz``
        says 503, instead of the server failing to start.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=10)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.executescript(_SCHEMA)
            _add_missing_columns(conn)
            if self.max_pages:
                conn.execute(f"PRAGMA max_page_count={int(self.max_pages)}")
        except (sqlite3.Error, OSError) as exc:
            if not self.path.exists():
                raise StoreError(f"cannot open the results database {self.path.name}: {exc}") from None
            conn = self._open_read_only(exc)
        self._conn = conn
        if not self.read_only:
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
                conn.execute("SELECT COUNT(*) FROM scans").fetchone()
                break
            except sqlite3.Error as exc:
                last = exc
        else:
            raise StoreError(f"cannot open the results database {self.path.name}: {last}") from None
        self.read_only = True
        self.last_error = f"the results database is read-only ({cause}); stored results can be read, new scans cannot be stored"
        log.error("%s", self.last_error)
        return conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _call(self, fn: Callable[[sqlite3.Connection], T], write: bool) -> T:
        with self._lock:
            if self._conn is None:
                raise StoreError("the results database is not open")
            if write and self.read_only:
                raise StoreError(self.last_error or "the results database is read-only")
            try:
                if write:
                    self._conn.execute("BEGIN IMMEDIATE")
                    try:
                        result = fn(self._conn)
                        self._conn.execute("COMMIT")
                    except BaseException:
                        # SQLite rolls back by itself on some errors (SQLITE_FULL): a second
                        # ROLLBACK would fail and hide the real reason.
                        if self._conn.in_transaction:
                            self._conn.execute("ROLLBACK")
                        raise
                else:
                    result = fn(self._conn)
            except sqlite3.Error as exc:
                self.last_error = str(exc)
                log.error("results database error: %s", exc)
                raise StoreError(f"results database error: {exc}") from None
            if write:
                self.last_error = None
            return result

    async def _run(self, fn: Callable[[sqlite3.Connection], T], write: bool = False) -> T:
        return await anyio.to_thread.run_sync(self._call, fn, write, limiter=self._limiter)

    # ------------------------------------------------------------------ health

    def check_writable_sync(self, probe_bytes: int = 65536) -> str | None:
        """None when the database can take ``probe_bytes`` of new data; else the reason.

        The probe really writes (into a scratch table) and rolls back: a full disk, a size cap or
        a read-only file shows here, not first when a scan's result is lost.
        """
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

    async def check_writable(self, probe_bytes: int = 65536) -> str | None:
        return await anyio.to_thread.run_sync(self.check_writable_sync, probe_bytes, limiter=self._limiter)

    # ------------------------------------------------------------------ records

    async def insert(self, record: ScanRecord) -> None:
        def op(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT INTO scans (scan_id, scanner, engine, status, origin, created_at, phase, request_json,"
                " server_pid, server_ticks) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    record.scan_id,
                    record.scanner,
                    record.engine,
                    record.status.value,
                    record.origin,
                    _iso(record.created_at),
                    record.phase,
                    json.dumps(record.request),
                    self._server_pid,
                    self._server_ticks,
                ),
            )

        await self._run(op, write=True)

    async def update(self, record: ScanRecord) -> None:
        def op(c: sqlite3.Connection) -> None:
            c.execute(
                "UPDATE scans SET engine=?, status=?, started_at=?, finished_at=?, duration_s=?, phase=?, error=?,"
                " command_json=?, return_code=?, summary_json=?, has_report=?, progress_done=?, progress_total=?,"
                " stderr_tail=?, output_truncated=? WHERE scan_id=?",
                (
                    record.engine,
                    record.status.value,
                    _iso(record.started_at),
                    _iso(record.finished_at),
                    record.duration_s,
                    record.phase,
                    record.error,
                    json.dumps(record.command) if record.command is not None else None,
                    record.return_code,
                    json.dumps(record.summary) if record.summary is not None else None,
                    int(record.has_report),
                    record.progress_done,
                    record.progress_total,
                    record.stderr_tail,
                    int(record.output_truncated),
                    record.scan_id,
                ),
            )

        await self._run(op, write=True)

    async def set_process_group(self, scan_id: str, pgid: int | None, ticks: int | None) -> None:
        await self._run(
            lambda c: c.execute("UPDATE scans SET pgid=?, pgid_ticks=? WHERE scan_id=?", (pgid, ticks, scan_id)),
            write=True,
        )

    async def finish(
        self,
        record: ScanRecord,
        raw_output: bytes | None,
        media_type: str,
        report: KubeBenchReport | KubescapeReport | None,
        rows: Iterable[tuple[Any, ...]] | None = None,
        file_hashes: Mapping[str, str] | None = None,
    ) -> None:
        """Write the final record, its raw output and its items in one transaction.

        The items come from ``rows`` when given (``report_items`` rows computed elsewhere, read
        lazily here), else from ``report``. ``file_hashes`` (path → SHA-256 of the bytes scanned)
        let a fix refuse a file that changed since the scan.
        """

        def op(c: sqlite3.Connection) -> None:
            # Built here, in the database thread: a big report has ~100,000 items, seconds of
            # work that must not run on the event loop.
            items = rows if rows is not None else (report_items(report) if report is not None else ())
            c.execute("DELETE FROM items WHERE scan_id=?", (record.scan_id,))
            c.execute("DELETE FROM outputs WHERE scan_id=?", (record.scan_id,))
            if raw_output is not None:
                c.execute(
                    "INSERT INTO outputs (scan_id, media_type, data) VALUES (?,?,?)",
                    (record.scan_id, media_type, raw_output),
                )
            c.executemany(
                "INSERT INTO items (scan_id, seq, item_type, status, severity, control_id, namespace, kind, node,"
                " data, resource_key, excepted, risk_rank) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                ((record.scan_id, i, *row) for i, row in enumerate(items)),
            )
            c.execute("DELETE FROM scan_files WHERE scan_id=?", (record.scan_id,))
            c.executemany("INSERT INTO scan_files (scan_id, path, sha256) VALUES (?,?,?)",
                          ((record.scan_id, path, digest) for path, digest in (file_hashes or {}).items()))
            c.execute("UPDATE scans SET pgid=NULL, pgid_ticks=NULL WHERE scan_id=?", (record.scan_id,))

        await self._run(op, write=True)
        await self.update(record)

    async def file_hash(self, scan_id: str, path: str) -> str | None:
        """The SHA-256 of ``path`` as the scan read it (None when the scan recorded none)."""
        def op(c: sqlite3.Connection) -> str | None:
            row = c.execute("SELECT sha256 FROM scan_files WHERE scan_id=? AND path=?", (scan_id, path)).fetchone()
            return str(row[0]) if row else None

        return await self._run(op)

    async def get(self, scan_id: str) -> ScanRecord | None:
        def op(c: sqlite3.Connection) -> ScanRecord | None:
            row = c.execute(f"SELECT {_RECORD_COLUMNS} FROM scans WHERE scan_id=?", (scan_id,)).fetchone()
            return _row_to_record(row) if row else None

        return await self._run(op)

    async def latest(
        self, *, finished_only: bool = False, exclude_origins: Sequence[str] = ("metrics",), scanner: str | None = None
    ) -> ScanRecord | None:
        def op(c: sqlite3.Connection) -> ScanRecord | None:
            sql = f"SELECT {_RECORD_COLUMNS} FROM scans WHERE 1=1"
            args: list[Any] = []
            if finished_only:
                active = [s.value for s in ACTIVE_STATES]
                sql += f" AND status NOT IN ({','.join('?' * len(active))})"
                args += active
            if exclude_origins:
                sql += f" AND origin NOT IN ({','.join('?' * len(exclude_origins))})"
                args += list(exclude_origins)
            if scanner:
                sql += " AND scanner=?"
                args.append(scanner)
            row = c.execute(sql + " ORDER BY n DESC LIMIT 1", args).fetchone()
            return _row_to_record(row) if row else None

        return await self._run(op)

    async def list(
        self, *, scanner: str | None = None, status: str | None = None, limit: int = 20, offset: int = 0
    ) -> tuple[list[ScanRecord], int]:
        def op(c: sqlite3.Connection) -> tuple[list[ScanRecord], int]:
            where = " WHERE 1=1"
            args: list[Any] = []
            if scanner:
                where += " AND scanner=?"
                args.append(scanner)
            if status:
                where += " AND status=?"
                args.append(status)
            total = c.execute("SELECT COUNT(*) FROM scans" + where, args).fetchone()[0]
            rows = c.execute(
                f"SELECT {_RECORD_COLUMNS} FROM scans{where} ORDER BY n DESC LIMIT ? OFFSET ?",
                [*args, limit, offset],
            ).fetchall()
            return [_row_to_record(r) for r in rows], total

        return await self._run(op)

    async def raw_output(self, scan_id: str) -> tuple[bytes, str] | None:
        def op(c: sqlite3.Connection) -> tuple[bytes, str] | None:
            row = c.execute("SELECT data, media_type FROM outputs WHERE scan_id=?", (scan_id,)).fetchone()
            return (bytes(row[0]), row[1]) if row else None

        return await self._run(op)

    async def items(
        self, scan_id: str, item_type: str, filt: ItemFilter, limit: int, cursor: str | None
    ) -> ItemPage:
        after = decode_cursor(cursor, scan_id, filt) if cursor else -1

        def op(c: sqlite3.Connection) -> ItemPage:
            where, args = filt.where(scan_id, item_type)
            total = c.execute("SELECT COUNT(*) FROM items" + where, args).fetchone()[0]
            rows = c.execute(
                "SELECT seq, data FROM items" + where + " AND seq > ? ORDER BY seq LIMIT ?",
                [*args, after, limit + 1],
            ).fetchall()
            more = len(rows) > limit
            rows = rows[:limit]
            next_cursor = encode_cursor(scan_id, rows[-1][0], filt) if more and rows else None
            return ItemPage(
                items=[json.loads(r[1]) for r in rows],
                next_cursor=next_cursor,
                total=total,
                seqs=[r[0] for r in rows],
                scan_id=scan_id,
                filter=filt,
            )

        return await self._run(op)

    async def items_with_status(self, scan_id: str, item_type: str, status: str) -> builtins.list[dict[str, Any]]:
        """Every item of one status, in the stored (risk) order: what a comparison of two scans reads."""
        return await self._run(
            lambda c: [
                json.loads(r[0])
                for r in c.execute(
                    "SELECT data FROM items WHERE scan_id=? AND item_type=? AND status=? ORDER BY seq",
                    (scan_id, item_type, status),
                )
            ]
        )

    async def has_control(self, scan_id: str, control_id: str) -> bool:
        """Whether any item of the scan names ``control_id`` (a control outside the catalogue)."""
        return await self._run(
            lambda c: c.execute(
                "SELECT 1 FROM items WHERE scan_id=? AND control_id=? LIMIT 1", (scan_id, control_id)
            ).fetchone() is not None
        )

    async def control_counts(self, scan_id: str, filt: ItemFilter) -> builtins.list[ControlCount]:
        """Every control with findings under ``filt`` (status aside), in the stored risk order."""

        def op(c: sqlite3.Connection) -> builtins.list[ControlCount]:
            where, args = filt.where(scan_id, "finding", with_status=False)
            rows = c.execute(
                "SELECT control_id, status, excepted, COUNT(*), MIN(risk_rank), MIN(seq) FROM items"
                + where + " GROUP BY control_id, status, excepted",
                args,
            ).fetchall()
            counts: dict[str, ControlCount] = {}
            first_seq: dict[str, int] = {}
            for cid, status, excepted, n, rank, seq in rows:
                cc = counts.setdefault(cid, ControlCount(cid, {}, rank if rank is not None else 1 << 30))
                if status == "passed" and excepted:
                    cc.excepted += n
                elif status in ("failed", "passed", "skipped"):
                    setattr(cc, status, getattr(cc, status) + n)
                first_seq[cid] = min(seq, first_seq.get(cid, seq))
            seqs = list(first_seq.values())
            for start in range(0, len(seqs), 500):
                chunk = seqs[start : start + 500]
                for cid, data in c.execute(
                    f"SELECT control_id, data FROM items WHERE scan_id=? AND seq IN ({','.join('?' * len(chunk))})",
                    [scan_id, *chunk],
                ):
                    counts[cid].sample = json.loads(data)
            return sorted(counts.values(), key=lambda cc: (cc.rank, cc.control_id))

        return await self._run(op)

    async def resources(
        self, scan_id: str, filt: ItemFilter, limit: int, offset: int
    ) -> tuple[builtins.list[ResourceRow], int]:
        """One page of resources under ``filt``, those failing the most urgent controls first.

        ``filt.status`` applies to the resource: "failed" keeps resources that fail at least one
        of the controls the other filters keep, "passed" those that fail none.
        """

        def op(c: sqlite3.Connection) -> tuple[builtins.list[ResourceRow], int]:
            where, args = filt.where(scan_id, "finding", with_status=False)
            failed_n = "SUM(CASE WHEN status='failed' THEN 1 ELSE 0 END)"
            having = ""
            if filt.status == "failed":
                having = f" HAVING {failed_n} > 0"
            elif filt.status == "passed":
                having = f" HAVING {failed_n} = 0"
            grouped = (
                f"SELECT resource_key, {failed_n} AS n_failed,"
                " COALESCE(MIN(CASE WHEN status='failed' THEN risk_rank END), 1073741824) AS top,"
                " SUM(CASE WHEN status='passed' THEN 1 ELSE 0 END) AS n_passed, MIN(seq) AS first_seq"
                f" FROM items{where} AND resource_key IS NOT NULL GROUP BY resource_key{having}"
            )
            total = c.execute(f"SELECT COUNT(*) FROM ({grouped}) g", args).fetchone()[0]
            page = c.execute(
                f"SELECT resource_key, n_failed, n_passed, first_seq FROM ({grouped}) g"
                " ORDER BY top, n_failed DESC, resource_key LIMIT ? OFFSET ?",
                [*args, limit, offset],
            ).fetchall()
            keys = [r[0] for r in page]
            failed: dict[str, builtins.list[dict[str, Any]]] = {k: [] for k in keys}
            samples: dict[int, dict[str, Any]] = {}
            if keys:
                marks = ",".join("?" * len(keys))
                for key, data in c.execute(
                    f"SELECT resource_key, data FROM items{where} AND status='failed' AND resource_key IN ({marks})"
                    " ORDER BY seq",
                    [*args, *keys],
                ):
                    failed[key].append(json.loads(data))
                seqs = [r[3] for r in page]
                for seq, data in c.execute(
                    f"SELECT seq, data FROM items WHERE scan_id=? AND seq IN ({','.join('?' * len(seqs))})",
                    [scan_id, *seqs],
                ):
                    samples[seq] = json.loads(data)
            rows = []
            for key, _n_failed, n_passed, seq in page:
                kind, namespace, name, file = json.loads(key)
                rows.append(ResourceRow(kind, namespace, name, file, failed[key], int(n_passed), samples.get(seq, {})))
            return rows, int(total)

        return await self._run(op)

    async def delete(self, scan_ids: Sequence[str]) -> int:
        def op(c: sqlite3.Connection) -> int:
            count = 0
            for sid in scan_ids:
                c.execute("DELETE FROM items WHERE scan_id=?", (sid,))
                c.execute("DELETE FROM outputs WHERE scan_id=?", (sid,))
                c.execute("DELETE FROM scan_files WHERE scan_id=?", (sid,))
                count += c.execute("DELETE FROM scans WHERE scan_id=?", (sid,)).rowcount
            return count

        return await self._run(op, write=True)

    async def finished_ids(self) -> builtins.list[str]:  # `list` is the method above
        active = [s.value for s in ACTIVE_STATES]
        return await self._run(
            lambda c: [
                r[0]
                for r in c.execute(
                    f"SELECT scan_id FROM scans WHERE status NOT IN ({','.join('?' * len(active))}) ORDER BY n",
                    active,
                )
            ]
        )

    async def enforce_retention(self, max_results: int) -> int:
        """Delete the oldest finished scans beyond ``max_results``; returns how many went."""
        ids = await self.finished_ids()
        excess = len(ids) - max_results
        if excess <= 0:
            return 0
        return await self.delete(ids[:excess])

    # ------------------------------------------------------------------ start-up recovery

    def recover_sync(self) -> builtins.list[str]:
        """Mark scans left active by a dead server ``interrupted`` and kill their orphaned scanners.

        Only rows whose owning server process is gone are touched: a second server sharing the
        database (a stdio server beside an HTTP one) keeps its running scans.
        """
        def op(c: sqlite3.Connection) -> list[str]:
            active = [s.value for s in ACTIVE_STATES]
            rows = c.execute(
                "SELECT scan_id, status, pgid, pgid_ticks, server_pid, server_ticks FROM scans"
                f" WHERE status IN ({','.join('?' * len(active))})",
                active,
            ).fetchall()
            recovered: list[str] = []
            now = datetime.now(UTC).isoformat()
            for scan_id, status, pgid, pgid_ticks, server_pid, server_ticks in rows:
                if server_pid and server_pid != self._server_pid and process_start_ticks(server_pid) == server_ticks:
                    continue  # its server is alive: not ours to judge
                if pgid and pgid_ticks is not None and process_start_ticks(pgid) == pgid_ticks:
                    log.warning("killing orphaned scanner process group %s of scan %s", pgid, scan_id)
                    kill_group(pgid)
                c.execute(
                    "UPDATE scans SET status=?, finished_at=?, phase=NULL, pgid=NULL, pgid_ticks=NULL, error=?"
                    " WHERE scan_id=?",
                    (
                        ScanState.interrupted.value,
                        now,
                        f"the server stopped while this scan was {status} (crash, kill or restart);"
                        " run the scan again",
                        scan_id,
                    ),
                )
                recovered.append(scan_id)
            return recovered

        return self._call(op, write=True)
