"""The results store: scan records, raw outputs and pageable items, in SQLite or PostgreSQL.

Why a database: it survives ``kill -9`` (every change committed as it happens), and lets
``get_results`` filter and page findings with an index instead of loading a multi-megabyte
report into memory for every page. SQLite (a file, nothing to install) is the default;
PostgreSQL (``MCP_KSCAN_DATABASE_URL``) lets several server processes share the results.
The queries here are written once, in SQL both accept (``runner.db`` holds what differs).

All calls go through one connection guarded by a lock and run in a worker thread
(``anyio.to_thread``), so the event loop never waits on the database.
"""

from __future__ import annotations

import base64
import bisect
import builtins
import heapq
import itertools
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import anyio
import anyio.to_thread

from mcp_kscan.errors import FindingsUnavailable, InvalidRequest
from mcp_kscan.reports import KubeBenchReport, KubescapeReport
from mcp_kscan.runner.process import group_alive, kill_group, process_start_ticks
from mcp_kscan.runner.db import Conn, Database, SqliteDatabase, database_for
from mcp_kscan.runner.item_index import TABLES, ItemIndex, insert_sql
from mcp_kscan.runner.items import EncodedMembers, ItemResource, Run, StoredItem, run_finding, stored_items
from mcp_kscan.runner.records import ACTIVE_STATES, ADMITTING_PROCESS_ONLY, Placement, ScanRecord, ScanState
from mcp_kscan.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

Output = tuple[bytes | BinaryIO, str]
"""A raw output and its media type; an open file (its reader closes it) when the store keeps it as one."""

_RECORD_COLUMNS = (
    "scan_id, scanner, engine, status, origin, created_at, started_at, finished_at, duration_s, phase, "
    "error, request_json, command_json, return_code, summary_json, has_report, progress_done, progress_total,"
    " stderr_tail, output_truncated, resources_done, resources_total, server_host, server_pid"
)


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None


def _dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


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
        resources_done=row[20],
        resources_total=row[21],
        server=server_name(row[22], row[23]),
    )


def server_name(host: str | None, pid: int | None) -> str | None:
    """How a record names the server that holds its scan: ``host:pid``."""
    return f"{host}:{pid}" if host and pid else None


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


class ResultsStore:
    """The store's queries, run by a ``Database`` (SQLite or PostgreSQL) in a worker thread."""

    def __init__(
        self, db: Database | Path, max_pages: int | None = None, *, lease_s: float = 30.0, host: str | None = None
    ) -> None:
        """``db``: a backend, or the path of a SQLite file (capped at ``max_pages`` pages).

        ``lease_s``: how long this server vouches for its active scans without renewing
        (``renew_leases``); ``host`` names this machine to the other replicas (its hostname).
        """
        self.db = db if isinstance(db, Database) else SqliteDatabase(db, max_pages)
        self.lease_s = lease_s
        self._limiter = anyio.CapacityLimiter(1)
        self._server_pid = os.getpid()
        self._server_ticks = process_start_ticks(self._server_pid)
        self._host = host or socket.gethostname()
        self._indexing: dict[str, anyio.Event] = {}
        """Scans this server published whose findings it is still indexing: set when they are in
        (or failed), so a page waiting for them wakes at once (``_read_items``)."""

    @classmethod
    def for_settings(cls, settings: Settings) -> ResultsStore:
        return cls(
            database_for(settings.db_path, settings.database_url, settings.db_max_pages), lease_s=settings.scan_lease_s
        )

    @property
    def shared(self) -> bool:
        """True when other servers, possibly on other machines, may work on the same database."""
        return self.db.dialect == "postgresql"

    # ------------------------------------------------------------------ plumbing

    @property
    def read_only(self) -> bool:
        """True when only a read-only connection could be opened: results stay readable."""
        return self.db.read_only

    @property
    def last_error(self) -> str | None:
        return self.db.last_error

    def open(self) -> None:
        self.db.open()

    def close(self) -> None:
        self.db.close()

    def _call(self, fn: Callable[[Conn], T], write: bool) -> T:
        return self.db.call(fn, write)

    async def _run(self, fn: Callable[[Conn], T], write: bool = False) -> T:
        return await anyio.to_thread.run_sync(self._call, fn, write, limiter=self._limiter)

    async def write(self, fn: Callable[[Conn], T]) -> T:
        """Run ``fn`` as one transaction, in the database thread (``runner.queue``'s admission and claims)."""
        return await self._run(fn, write=True)

    # ------------------------------------------------------------------ health

    def check_writable_sync(self, probe_bytes: int = 65536) -> str | None:
        """None when the database can take ``probe_bytes`` of new data; else the reason.

        The probe really writes and rolls back: a full disk, a size cap or a read-only
        database shows here, not first when a scan's result is lost.
        """
        return self.db.check_writable(probe_bytes)

    async def check_writable(self, probe_bytes: int = 65536) -> str | None:
        return await anyio.to_thread.run_sync(self.check_writable_sync, probe_bytes, limiter=self._limiter)

    # ------------------------------------------------------------------ records

    async def insert(self, record: ScanRecord, placement: Placement = ADMITTING_PROCESS_ONLY) -> None:
        await self._run(lambda c: self.insert_row(c, record, placement), write=True)

    def insert_row(self, c: Conn, record: ScanRecord, placement: Placement = ADMITTING_PROCESS_ONLY) -> None:
        """Insert a new scan owned by this server, inside the caller's transaction (``runner.queue`` admits with it).

        ``placement`` says which servers may run it while it waits (``runs_on``: ``anywhere``,
        ``host:<this host>`` or ``process``) and holds what they rebuild its task from.
        """
        c.execute(
            "INSERT INTO scans (scan_id, scanner, engine, status, origin, created_at, phase, request_json,"
            " server_pid, server_ticks, server_host, lease_until, runs_on, plan_json)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
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
                self._host,
                time.time() + self.lease_s,
                self.runs_on(placement.runs_on),
                json.dumps({"why": placement.why, "plan": placement.plan}),
            ),
        )

    def runs_on(self, where: str) -> str:
        """The ``runs_on`` value of a scan this server admits: a host-bound scan names this host."""
        return f"host:{self._host}" if where == "host" else where

    def take_row(self, c: Conn, scan_id: str) -> bool:
        """Mark a queued scan ``running`` and owned by this server, inside the caller's transaction
        (``runner.queue.claim``): its lease, cancel requests and recovery now name this server."""
        return bool(c.execute(
            "UPDATE scans SET status=?, phase=?, server_host=?, server_pid=?, server_ticks=?, lease_until=?"
            " WHERE scan_id=? AND status=?",
            (ScanState.running.value, "running", self._host, self._server_pid, self._server_ticks,
             time.time() + self.lease_s, scan_id, ScanState.queued.value),
        ).rowcount)

    def records_in(self, c: Conn, scan_ids: Sequence[str]) -> dict[str, tuple[ScanRecord, dict[str, Any]]]:
        """The records of ``scan_ids`` with their placement (``why``, ``plan``), inside the caller's transaction."""
        found: dict[str, tuple[ScanRecord, dict[str, Any]]] = {}
        ids = list(scan_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for row in c.execute(
                f"SELECT {_RECORD_COLUMNS}, plan_json FROM scans WHERE scan_id IN ({','.join('?' * len(chunk))})",
                chunk,
            ):
                found[row[0]] = (_row_to_record(row), json.loads(row[-1]) if row[-1] else {})
        return found

    async def cancel_queued(self, scan_id: str, reason: str) -> ScanRecord | None:
        """Settle a scan that still waits in the queue ``cancelled``, whoever admitted it; None when
        it no longer waits (a claim took it first: then it is cancelled where it runs)."""

        def op(c: Conn) -> ScanRecord | None:
            changed = c.execute(
                "UPDATE scans SET status=?, finished_at=?, phase=NULL, error=? WHERE scan_id=? AND status=?",
                (ScanState.cancelled.value, datetime.now(UTC).isoformat(), reason, scan_id, ScanState.queued.value),
            ).rowcount
            if not changed:
                return None
            row = c.execute(f"SELECT {_RECORD_COLUMNS} FROM scans WHERE scan_id=?", (scan_id,)).fetchone()
            return _row_to_record(row)

        return await self._run(op, write=True)

    @property
    def name(self) -> str | None:
        """This server as records name it (``server_name``)."""
        return server_name(self._host, self._server_pid)

    @property
    def owner(self) -> tuple[str, int, int | None]:
        """(host, pid, process start ticks): how the rows of this server's scans name it."""
        return self._host, self._server_pid, self._server_ticks

    async def update(self, record: ScanRecord) -> None:
        await self._run(lambda c: _update_record(c, record), write=True)

    async def set_process_group(self, scan_id: str, pgid: int | None, ticks: int | None) -> None:
        await self._run(
            lambda c: c.execute("UPDATE scans SET pgid=?, pgid_ticks=? WHERE scan_id=?", (pgid, ticks, scan_id)),
            write=True,
        )

    async def finish(
        self,
        record: ScanRecord,
        raw_output: bytes | BinaryIO | None,
        media_type: str,
        report: KubeBenchReport | KubescapeReport | None,
        rows: Iterable[StoredItem] | None = None,
        file_hashes: Mapping[str, str] | None = None,
        *,
        items_pending: bool = False,
    ) -> None:
        """Write the final record, its raw output and its items in one transaction.

        ``items_pending``: the items come later (``finish_items``, or ``items_failed``): the record
        is final and its report readable now, while item reads wait for them (``_read_items``).

        ``raw_output`` may be an open file (``TaskOutcome.raw_file``): it is copied in pieces where
        the database allows (``Database.insert_output``). The items come from ``rows`` when given
        (``report_items`` rows, or the engine's rows, runs and resources, computed elsewhere and
        read lazily here), else from ``report`` (``stored_items``: runs too). ``file_hashes`` (path → SHA-256 of the bytes
        scanned) let a fix refuse a file that changed since the scan.
        """

        def op(c: Conn) -> None:
            # Built here, in the database thread: a big report has ~100,000 items, seconds of
            # work that must not run on the event loop.
            items = rows if rows is not None else (stored_items(report) if report is not None else ())
            for table in _ITEM_TABLES:
                c.execute(f"DELETE FROM {table} WHERE scan_id=?", (record.scan_id,))
            c.execute("DELETE FROM item_indexing WHERE scan_id=?", (record.scan_id,))
            self.db.delete_outputs(c, "WHERE scan_id=?", (record.scan_id,))
            if raw_output is not None and not isinstance(raw_output, bytes | bytearray):
                self.db.output_ahead(raw_output)  # a kept report's sync runs while the items go in
            if items_pending:
                c.execute("INSERT INTO item_indexing (scan_id, error) VALUES (?, NULL)", (record.scan_id,))
            else:
                _insert_item_source(self.db, c, record.scan_id, items)
            if raw_output is not None:
                self.db.insert_output(c, record.scan_id, media_type, raw_output)
            c.execute("DELETE FROM scan_files WHERE scan_id=?", (record.scan_id,))
            _insert_file_hashes(c, record.scan_id, file_hashes)
            c.execute("UPDATE scans SET pgid=NULL, pgid_ticks=NULL WHERE scan_id=?", (record.scan_id,))
            _update_record(c, record)  # the same transaction: no reader sees the items before the state

        if items_pending:
            self._indexing[record.scan_id] = anyio.Event()
        try:
            await self._run(op, write=True)
        except BaseException:
            self._indexed(record.scan_id)
            raise

    async def finish_items(self, scan_id: str, rows: Iterable[StoredItem],
                           file_hashes: Mapping[str, str] | None = None, return_code: int | None = None) -> bool:
        """Store the items (and the scanned files' hashes, which only a fix reads) of a scan
        ``finish`` stored with ``items_pending``, in one transaction that also ends the wait;
        False when there is nothing to do (the scan was deleted meanwhile, or its indexing was
        given up: ``items_failed``, recovery). ``return_code``: the exit status of the process
        that wrote them, which had not ended when the record was stored."""

        def op(c: Conn) -> bool:
            if not c.execute("DELETE FROM item_indexing WHERE scan_id=? AND error IS NULL", (scan_id,)).rowcount:
                return False
            _insert_item_source(self.db, c, scan_id, rows)
            _insert_file_hashes(c, scan_id, file_hashes)
            c.execute("UPDATE scans SET return_code=? WHERE scan_id=?", (return_code, scan_id))
            return True

        try:
            return await self._run(op, write=True)
        finally:
            self._indexed(scan_id)

    async def items_failed(self, scan_id: str, reason: str, return_code: int | None = None) -> None:
        """Record why a published scan's items will never come: item reads say so instead of
        waiting (the record, its report and summary stay as stored)."""

        def op(c: Conn) -> None:
            if c.execute("UPDATE item_indexing SET error=? WHERE scan_id=? AND error IS NULL",
                         (reason, scan_id)).rowcount:
                c.execute("UPDATE scans SET return_code=? WHERE scan_id=?", (return_code, scan_id))

        try:
            await self._run(op, write=True)
        finally:
            self._indexed(scan_id)

    def _indexed(self, scan_id: str) -> None:
        event = self._indexing.pop(scan_id, None)
        if event is not None:
            event.set()

    async def _read_items(self, scan_id: str, op: Callable[[Conn], T]) -> T:
        """``op``, run once the scan's items are stored: a scan published before them
        (``finish(items_pending=True)``) is waited for, briefly (this server's own wakes the reader
        when they are in; another replica's is looked at every ``_ITEMS_POLL_S``), never read
        as if it had none. Its state is read in the same trip to the database as ``op``."""

        def gated(c: Conn) -> T | _ItemsPending:
            row = c.execute("SELECT error FROM item_indexing WHERE scan_id=?", (scan_id,)).fetchone()
            return op(c) if row is None else _ItemsPending(row[0])

        waited = 0.0
        while True:
            found = await self._run(gated)
            if not isinstance(found, _ItemsPending):
                return found
            if found.error is not None:
                raise FindingsUnavailable(f"the findings of scan {scan_id} could not be indexed ({found.error}); "
                                          "its report is complete; run the scan again to page its findings")
            if waited >= ITEMS_WAIT_S:
                raise FindingsUnavailable(f"the findings of scan {scan_id} are still being indexed after "
                                          f"{ITEMS_WAIT_S:g} s; try again shortly")
            started = anyio.current_time()
            event = self._indexing.get(scan_id)
            with anyio.move_on_after(_ITEMS_POLL_S):
                await (event.wait() if event is not None else anyio.sleep(_ITEMS_POLL_S))
            waited += anyio.current_time() - started

    async def file_hash(self, scan_id: str, path: str) -> str | None:
        """The SHA-256 of ``path`` as the scan read it (None when the scan recorded none)."""
        def op(c: Conn) -> str | None:
            row = c.execute("SELECT sha256 FROM scan_files WHERE scan_id=? AND path=?", (scan_id, path)).fetchone()
            return str(row[0]) if row else None

        return await self._read_items(scan_id, op)  # stored with the items (``finish_items``)

    async def get(self, scan_id: str) -> ScanRecord | None:
        def op(c: Conn) -> ScanRecord | None:
            row = c.execute(f"SELECT {_RECORD_COLUMNS} FROM scans WHERE scan_id=?", (scan_id,)).fetchone()
            return _row_to_record(row) if row else None

        return await self._run(op)

    async def latest(
        self, *, finished_only: bool = False, in_flight_only: bool = False,
        exclude_origins: Sequence[str] = ("metrics",), scanner: str | None = None
    ) -> ScanRecord | None:
        def op(c: Conn) -> ScanRecord | None:
            sql = f"SELECT {_RECORD_COLUMNS} FROM scans WHERE 1=1"
            args: list[Any] = []
            if finished_only or in_flight_only:
                active = [s.value for s in ACTIVE_STATES]
                sql += f" AND status {'NOT ' if finished_only else ''}IN ({','.join('?' * len(active))})"
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
        def op(c: Conn) -> tuple[list[ScanRecord], int]:
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

    async def get_with_output(self, scan_id: str) -> tuple[ScanRecord, Output | None] | None:
        """The record and, for a finished scan, its raw output (None without one): one trip to the
        database thread, which is what ``GET /v1/results`` of a stored report costs. An output
        kept as a file comes back open (``open_output``)."""

        def op(c: Conn) -> tuple[ScanRecord, Output | None] | None:
            row = c.execute(f"SELECT {_RECORD_COLUMNS} FROM scans WHERE scan_id=?", (scan_id,)).fetchone()
            if not row:
                return None
            record = _row_to_record(row)
            if not record.finished:
                return record, None
            out = c.execute("SELECT data, media_type, file_name, file_bytes FROM outputs WHERE scan_id=?",
                            (scan_id,)).fetchone()
            data = self.db.open_output(out[0], out[2], out[3]) if out else None
            return record, ((data, out[1]) if data is not None else None)

        return await self._run(op)

    async def raw_output(self, scan_id: str) -> tuple[bytes, str] | None:
        return await self._run(lambda c: self._output(c, scan_id, self.db.output_data))

    async def open_output(self, scan_id: str) -> Output | None:
        """``raw_output``, but an output kept as a file (a big built-in report) comes back open, for
        its reader to stream and close, instead of read whole into memory."""
        return await self._run(lambda c: self._output(c, scan_id, self.db.open_output))

    @staticmethod
    def _output(c: Conn, scan_id: str, read: Callable[[Any, str | None, int | None], T | None]) -> tuple[T, str] | None:
        # Joined with the record: a result deleted but not yet purged (``delete``) is gone.
        row = c.execute(
            "SELECT o.data, o.media_type, o.file_name, o.file_bytes FROM outputs o"
            " JOIN scans s ON s.scan_id = o.scan_id WHERE o.scan_id=?",
            (scan_id,),
        ).fetchone()
        data = read(row[0], row[2], row[3]) if row else None
        return (data, row[1]) if data is not None else None

    async def items(
        self, scan_id: str, item_type: str, filt: ItemFilter, limit: int, cursor: str | None
    ) -> ItemPage:
        after = decode_cursor(cursor, scan_id, filt) if cursor else -1

        def op(c: Conn) -> ItemPage:
            where, args = filt.where(scan_id, item_type)
            total = c.execute("SELECT COUNT(*) FROM items" + where, args).fetchone()[0]
            rows = c.execute(
                "SELECT seq, data FROM items" + where + " AND seq > ? ORDER BY seq LIMIT ?",
                [*args, after, limit + 1],
            ).fetchall()
            found = [(r[0], json.loads(r[1])) for r in rows]
            runs, in_runs = _runs_page(c, scan_id, item_type, filt, after, limit + 1)
            total += in_runs
            if runs:
                members = ((seq, number, run) for run in runs for seq, number in run.kept)
                rows_first: Iterator[tuple[int, int, _RunPart | None]] = ((seq, -1, None) for seq, _ in found)
                first = list(itertools.islice(heapq.merge(rows_first, members, key=lambda m: m[0]), limit + 1))
                by_seq = dict(found)
                resources = _resources_of(c, scan_id, [number for _, number, run in first if run is not None])
                found = [(seq, by_seq[seq] if run is None else run.finding(resources[number]))
                         for seq, number, run in first]
            more = len(found) > limit
            found = found[:limit]
            next_cursor = encode_cursor(scan_id, found[-1][0], filt) if more and found else None
            return ItemPage(
                items=[item for _, item in found],
                next_cursor=next_cursor,
                total=total,
                seqs=[seq for seq, _ in found],
                scan_id=scan_id,
                filter=filt,
            )

        return await self._read_items(scan_id, op)

    async def items_with_status(self, scan_id: str, item_type: str, status: str) -> builtins.list[dict[str, Any]]:
        """Every item of one status, in the stored (risk) order: what a comparison of two scans reads."""

        def op(c: Conn) -> builtins.list[dict[str, Any]]:
            found = [(seq, json.loads(data)) for seq, data in c.execute(
                "SELECT seq, data FROM items WHERE scan_id=? AND item_type=? AND status=? ORDER BY seq",
                (scan_id, item_type, status),
            )]
            runs = _runs(c, scan_id, item_type, ItemFilter(status=status))
            if not runs:
                return [item for _, item in found]
            resources = _resources_of(c, scan_id, [number for run in runs for _, number in run.kept])
            members = ((seq, run.finding(resources[number])) for run in runs for seq, number in run.kept)
            return [item for _, item in heapq.merge(found, members, key=lambda m: m[0])]

        return await self._read_items(scan_id, op)

    async def has_control(self, scan_id: str, control_id: str) -> bool:
        """Whether any item of the scan names ``control_id`` (a control outside the catalogue)."""
        return await self._read_items(
            scan_id,
            lambda c: any(
                c.execute(f"SELECT 1 FROM {table} WHERE scan_id=? AND control_id=? LIMIT 1",
                          (scan_id, control_id)).fetchone() is not None
                for table in ("items", "item_runs")
            ),
        )

    async def control_counts(self, scan_id: str, filt: ItemFilter) -> builtins.list[ControlCount]:
        """Every control with findings under ``filt`` (status aside), in the stored risk order."""

        def op(c: Conn) -> builtins.list[ControlCount]:
            where, args = filt.where(scan_id, "finding", with_status=False)
            rows = c.execute(
                "SELECT control_id, status, excepted, COUNT(*), MIN(risk_rank), MIN(seq) FROM items"
                + where + " GROUP BY control_id, status, excepted",
                args,
            ).fetchall()
            runs = _runs(c, scan_id, "finding", filt, with_status=False)
            rows += [(run.control_id, run.status, run.excepted, len(run.kept), run.risk_rank, run.kept[0][0])
                     for run in runs]
            counts: dict[str, ControlCount] = {}
            first_seq: dict[str, int] = {}
            for cid, status, excepted, n, rank, seq in rows:
                cc = counts.setdefault(cid, ControlCount(cid, {}, rank if rank is not None else 1 << 30))
                if status == "passed" and excepted:
                    cc.excepted += n
                elif status in ("failed", "passed", "skipped"):
                    setattr(cc, status, getattr(cc, status) + n)
                first_seq[cid] = min(seq, first_seq.get(cid, seq))
            samples = _items_at(c, scan_id, first_seq.values(), runs)
            for cid, seq in first_seq.items():
                counts[cid].sample = samples[seq]
            return sorted(counts.values(), key=lambda cc: (cc.rank, cc.control_id))

        return await self._read_items(scan_id, op)

    async def resources(
        self, scan_id: str, filt: ItemFilter, limit: int, offset: int
    ) -> tuple[builtins.list[ResourceRow], int]:
        """One page of resources under ``filt``, those failing the most urgent controls first.

        ``filt.status`` applies to the resource: "failed" keeps resources that fail at least one
        of the controls the other filters keep, "passed" those that fail none.
        """

        def op(c: Conn) -> tuple[builtins.list[ResourceRow], int]:
            where, args = filt.where(scan_id, "finding", with_status=False)
            failed_n = "SUM(CASE WHEN status='failed' THEN 1 ELSE 0 END)"
            runs = _runs(c, scan_id, "finding", filt, with_status=False)
            if runs:
                page, total = _resource_page_with_runs(c, scan_id, filt, where, args, runs, limit, offset)
            else:
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
            failed: dict[str, builtins.list[tuple[int, dict[str, Any]]]] = {k: [] for k in keys}
            samples: dict[int, dict[str, Any]] = {}
            if keys:
                marks = ",".join("?" * len(keys))
                for seq, key, data in c.execute(
                    f"SELECT seq, resource_key, data FROM items{where} AND status='failed'"
                    f" AND resource_key IN ({marks}) ORDER BY seq",
                    [*args, *keys],
                ):
                    failed[key].append((seq, json.loads(data)))
                failing_runs = [run for run in runs if run.status == "failed"]
                if failing_runs:
                    _add_failed_members(c, scan_id, failing_runs, failed)
                samples = _items_at(c, scan_id, [r[3] for r in page], runs)
            rows = []
            for key, _n_failed, n_passed, seq in page:
                kind, namespace, name, file = json.loads(key)
                rows.append(ResourceRow(kind, namespace, name, file, [item for _, item in failed[key]],
                                        int(n_passed), samples.get(seq, {})))
            return rows, int(total)

        return await self._read_items(scan_id, op)

    async def delete(self, scan_ids: Sequence[str], *, purge: bool = True) -> int:
        """Delete scans; returns how many records went. No reader finds them after this commits.

        ``purge`` False deletes the records only and leaves their output and items, the bulk (a
        10,000-resource scan's report is 85 MB: a third of a second to free), to ``purge``, so a
        caller who handed the result out need not wait for it. Every reader starts from the
        record, so nothing reads them in between; a server that stops first frees them at its
        next start (``purge_orphans_sync``).
        """
        def op(c: Conn) -> int:
            count = 0
            for sid in scan_ids:
                if purge:
                    _purge(self.db, c, sid)
                c.execute("DELETE FROM scan_files WHERE scan_id=?", (sid,))
                c.execute("DELETE FROM item_indexing WHERE scan_id=?", (sid,))
                count += c.execute("DELETE FROM scans WHERE scan_id=?", (sid,)).rowcount
            return count

        return await self._run(op, write=True)

    async def purge(self, scan_ids: Sequence[str]) -> None:
        """Free the output and items of scans whose records ``delete(purge=False)`` removed."""
        def op(c: Conn) -> None:
            for sid in scan_ids:
                if c.execute("SELECT 1 FROM scans WHERE scan_id=?", (sid,)).fetchone() is None:
                    _purge(self.db, c, sid)

        await self._run(op, write=True)

    def purge_orphans_sync(self) -> int:
        """Free what ``delete(purge=False)`` left when its server stopped before the purge; returns
        the rows (and files) freed. Outputs and items are written only for a scan whose record exists (and a
        record is never re-created), so a row without one is such a leftover, whichever server
        shares the database."""
        def op(c: Conn) -> int:
            orphan = "WHERE scan_id NOT IN (SELECT scan_id FROM scans)"
            tables = (*_ITEM_TABLES, "item_indexing")
            freed = sum(c.execute(f"DELETE FROM {table} {orphan}").rowcount for table in tables)
            freed += self.db.delete_outputs(c, orphan, ())
            # Files kept beside the database that no row names: a server killed between copying
            # one in and committing its row left it (runner.report_files).
            return freed + self.db.sweep_output_files(c)

        return self._call(op, write=True)

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

    # ------------------------------------------------------------------ leases and recovery

    async def renew_leases(self) -> int:
        """Vouch for this server's active scans, and those whose items it is still storing
        (``item_indexing``), for another ``lease_s``; returns how many."""
        active = [s.value for s in ACTIVE_STATES]
        return await self._run(
            lambda c: c.execute(
                "UPDATE scans SET lease_until=? WHERE server_host=? AND server_pid=? AND server_ticks=?"
                f" AND (status IN ({','.join('?' * len(active))})"
                " OR scan_id IN (SELECT scan_id FROM item_indexing WHERE error IS NULL))",
                [time.time() + self.lease_s, self._host, self._server_pid, self._server_ticks, *active],
            ).rowcount,
            write=True,
        )

    async def request_cancel(self, scan_id: str, reason: str) -> bool:
        """Ask whichever server runs ``scan_id`` to cancel it; False when it is no longer active."""
        active = [s.value for s in ACTIVE_STATES]
        return bool(
            await self._run(
                lambda c: c.execute(
                    f"UPDATE scans SET cancel_reason=? WHERE scan_id=? AND status IN ({','.join('?' * len(active))})",
                    [reason, scan_id, *active],
                ).rowcount,
                write=True,
            )
        )

    async def cancel_requests(self) -> builtins.list[tuple[str, str]]:
        """(scan id, reason) of this server's active scans that another server asked to cancel."""
        active = [s.value for s in ACTIVE_STATES]
        return await self._run(
            lambda c: [
                (r[0], r[1])
                for r in c.execute(
                    "SELECT scan_id, cancel_reason FROM scans WHERE cancel_reason IS NOT NULL AND server_host=?"
                    f" AND server_pid=? AND server_ticks=? AND status IN ({','.join('?' * len(active))})",
                    [self._host, self._server_pid, self._server_ticks, *active],
                )
            ]
        )

    def recover_sync(self, *, adopt: bool = True) -> builtins.list[str]:
        """Mark scans left active by a dead server ``interrupted`` and kill their orphaned scanners.

        Only rows whose owning server is gone are touched: a second server sharing the database
        (a stdio server beside an HTTP one, another replica) keeps its running scans. On this
        machine a server is gone when its process is; on another machine (a replica sharing
        PostgreSQL), when it stopped renewing its lease; its scanners there cannot be killed from
        here, but on Linux they died with it (``runner.deathsig``).

        A dead server's queued scans that may run elsewhere are not settled: one that may run
        anywhere waits for any server's claim; one bound to this host is adopted by this server
        (its lease renewed from now on), so servers on other hosts do not settle it. Only the
        scans no server may take over become ``interrupted``, with the reason why they could not move.
        ``adopt`` False (a server that runs no other server's scans: stdio, the CLI) leaves this
        host's to the servers here that do; with none left, a replica elsewhere settles them
        once their lease runs out.
        """
        def op(c: Conn) -> list[str]:
            active = [s.value for s in ACTIVE_STATES]
            marks = ",".join("?" * len(active))
            rows = c.execute(
                "SELECT scan_id, status, pgid, pgid_ticks, server_pid, server_ticks, server_host, lease_until,"
                f" runs_on, plan_json FROM scans WHERE status IN ({marks})",
                active,
            ).fetchall()
            recovered: list[str] = []
            now = datetime.now(UTC).isoformat()
            clock = time.time()
            here = self.runs_on("host")
            for scan_id, status, pgid, pgid_ticks, server_pid, server_ticks, host, lease_until, runs_on, plan in rows:
                # Only a shared queue moves a dead server's queued scans: a SQLite server claims none from the file.
                queued = status == ScanState.queued.value and self.shared
                if queued and runs_on == "anywhere":
                    continue  # any server claims it: the queue moves on without its admitter
                if self._owner_vouches(host, server_pid, server_ticks, lease_until, clock):
                    continue  # this server's own (the periodic sweep), or its live server's
                guard = ""
                args: list[Any] = []
                if host is None or host == self._host:
                    if queued and runs_on == here:
                        if not adopt:
                            continue
                        c.execute(
                            "UPDATE scans SET server_pid=?, server_ticks=?, lease_until=? WHERE scan_id=? AND status=?"
                            " AND server_pid=?",
                            (self._server_pid, self._server_ticks, clock + self.lease_s, scan_id, status, server_pid),
                        )
                        continue
                    if pgid and pgid_ticks is not None and _still_the_scanners_group(pgid, pgid_ticks):
                        log.warning("killing orphaned scanner process group %s of scan %s", pgid, scan_id)
                        kill_group(pgid)
                else:
                    # A renewal committed since the read above wins: only an expired lease is settled.
                    guard = " AND lease_until < ?"
                    args = [clock]
                if queued and plan:
                    why = json.loads(plan).get("why") or "its task exists only in the server that admitted it"
                    if runs_on and runs_on.startswith("host:"):
                        why += f", and no server is left on host {runs_on[5:]}"
                    error = (f"the server that admitted this scan stopped before it started, and no other server"
                             f" could take it over: {why}; run the scan again")
                else:
                    error = (f"the server stopped while this scan was {status} (crash, kill or restart);"
                             " run the scan again")
                changed = c.execute(
                    "UPDATE scans SET status=?, finished_at=?, phase=NULL, pgid=NULL, pgid_ticks=NULL, error=?"
                    f" WHERE scan_id=? AND status IN ({marks}){guard}",
                    [ScanState.interrupted.value, now, error, scan_id, *active, *args],
                ).rowcount
                if changed:
                    recovered.append(scan_id)
            self._give_up_orphaned_items(c, clock)
            return recovered

        return self._call(op, write=True)

    def _give_up_orphaned_items(self, c: Conn, clock: float) -> None:
        """Published scans whose server is gone before their items were stored (``item_indexing``):
        their items never come, and item reads say so instead of waiting. The same test of the
        owner as for an active scan: this host's by its process, another's by its lease."""
        rows = c.execute(
            "SELECT s.scan_id, s.server_pid, s.server_ticks, s.server_host, s.lease_until FROM item_indexing i"
            " JOIN scans s ON s.scan_id = i.scan_id WHERE i.error IS NULL"
        ).fetchall()
        for scan_id, server_pid, server_ticks, host, lease_until in rows:
            if not self._owner_vouches(host, server_pid, server_ticks, lease_until, clock):
                c.execute("UPDATE item_indexing SET error=? WHERE scan_id=? AND error IS NULL",
                          ("the server stopped before they were stored", scan_id))

    def _owner_vouches(self, host: str | None, server_pid: int | None, server_ticks: int | None,
                       lease_until: float | None, clock: float) -> bool:
        """Whether the server named on a scan's row still answers for it: this server; on this
        host, a live process (its pid with the same start time); elsewhere, an unexpired lease."""
        if host is None or host == self._host:
            if server_pid == self._server_pid and server_ticks == self._server_ticks:
                return True
            return server_pid is not None and server_pid > 0 and process_start_ticks(server_pid) == server_ticks
        return lease_until is not None and lease_until >= clock


ITEMS_WAIT_S = 120.0
"""How long an item read waits for a published scan's items (``_read_items``): they follow its
report by a fraction of a second; this long means their server is stuck or gone."""
_ITEMS_POLL_S = 0.1


@dataclass(frozen=True)
class _ItemsPending:
    """A scan's items are not stored yet (``error`` None), or never will be (why)."""

    error: str | None


def _insert_file_hashes(c: Conn, scan_id: str, file_hashes: Mapping[str, str] | None) -> None:
    c.executemany("INSERT INTO scan_files (scan_id, path, sha256) VALUES (?,?,?)",
                  ((scan_id, path, digest) for path, digest in (file_hashes or {}).items()))


def _insert_item_source(db: Database, c: Conn, scan_id: str, items: Iterable[StoredItem]) -> None:
    """A scan's items into the item tables: an index file copied by the database where it can, else row by row."""
    if not (isinstance(items, ItemIndex) and db.insert_item_index(c, scan_id, items.path)):
        _insert_items(c, scan_id, items)


_ITEM_TABLES = ("items", "item_runs", "item_resources")
"""Where a scan's items are: rows, runs of rows alike but for their resource, and those resources."""


def _update_record(c: Conn, record: ScanRecord) -> None:
    """Write ``record``'s state, result and progress columns (``update``, and ``finish`` in its transaction)."""
    c.execute(
        "UPDATE scans SET engine=?, status=?, started_at=?, finished_at=?, duration_s=?, phase=?, error=?,"
        " command_json=?, return_code=?, summary_json=?, has_report=?, progress_done=?, progress_total=?,"
        " stderr_tail=?, output_truncated=?, resources_done=?, resources_total=? WHERE scan_id=?",
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
            json.dumps(record.summary.model_dump(mode="json")) if record.summary is not None else None,
            int(record.has_report),
            record.progress_done,
            record.progress_total,
            record.stderr_tail,
            int(record.output_truncated),
            record.resources_done,
            record.resources_total,
            record.scan_id,
        ),
    )


def _purge(db: Database, c: Conn, scan_id: str) -> None:
    for table in _ITEM_TABLES:
        c.execute(f"DELETE FROM {table} WHERE scan_id=?", (scan_id,))
    db.delete_outputs(c, "WHERE scan_id=?", (scan_id,))

_INSERT_BATCH = 2000


def _insert_items(c: Conn, scan_id: str, items: Iterable[StoredItem]) -> None:
    """Store a scan's rows, runs and resources (``runner.items.StoredItem``): each row takes the
    next ``seq``, a run the next ``len(members)``, as one row per finding would."""
    statements = {table: insert_sql(table) for table in TABLES}
    pending: dict[str, list[tuple[Any, ...]]] = {table: [] for table in statements}
    seq = 0
    for item in items:
        if isinstance(item, Run):
            table = "item_runs"
            members = item.members
            pending[table].append((scan_id, seq, len(members), item.status, item.severity, item.control_id,
                                   item.excepted, item.risk_rank, item.data,
                                   members.json if isinstance(members, EncodedMembers)
                                   else json.dumps(list(members), separators=(",", ":"))))
            seq += len(item.members)
        elif isinstance(item, ItemResource):
            table = "item_resources"
            pending[table].append((scan_id, item.number, item.kind, item.namespace, item.key, item.data))
        else:
            table = "items"
            pending[table].append((scan_id, seq, *item))
            seq += 1
        if len(pending[table]) >= _INSERT_BATCH:
            c.executemany(statements[table], pending[table])
            pending[table].clear()
    for table, rows in pending.items():
        if rows:
            c.executemany(statements[table], rows)


@dataclass
class _RunPart:
    """A stored run (``runner.items.Run``) and the members of it that a filter keeps."""

    seq: int
    status: str
    severity: str | None
    control_id: str
    excepted: int
    risk_rank: int | None
    template: str
    members: list[int]
    kept: list[tuple[int, int]]
    """(seq, resource number) of each member the filter keeps, in order."""

    def finding(self, resource_data: str) -> dict[str, Any]:
        """A member's item as its own row's JSON would decode (a fresh dict: callers may change it)."""
        return run_finding(json.loads(self.template), json.loads(resource_data))


def _run_rows(c: Conn, scan_id: str, item_type: str, filt: ItemFilter, with_status: bool) -> list[Any]:
    """The stored runs that ``filt``'s run-wide fields keep (all but namespace and kind), in order."""
    if item_type != "finding" or filt.node is not None:
        return []  # runs hold findings, which have no node
    where = " WHERE scan_id=?"
    args: list[Any] = [scan_id]
    for column, value in (("status", filt.status if with_status else None), ("severity", filt.severity),
                          ("control_id", filt.control_id)):
        if value is not None:
            where += f" AND {column} = ?"
            args.append(value)
    if filt.severities is not None:
        where += f" AND severity IN ({','.join('?' * len(filt.severities))})"
        args += list(filt.severities)
    return c.execute(
        "SELECT seq, status, severity, control_id, excepted, risk_rank, data, members, n FROM item_runs"
        + where + " ORDER BY seq", args,
    ).fetchall()


def _allowed(c: Conn, scan_id: str, filt: ItemFilter) -> set[int] | None:
    """The resource numbers ``filt``'s namespace and kind keep; None when it names neither."""
    if filt.namespace is None and filt.kind is None:
        return None
    where, args = " WHERE scan_id=?", [scan_id]
    if filt.namespace is not None:
        where += " AND namespace = ?"
        args.append(filt.namespace)
    if filt.kind is not None:
        where += " AND LOWER(kind) = LOWER(?)"
        args.append(filt.kind)
    return {r[0] for r in c.execute("SELECT rno FROM item_resources" + where, args)}


def _part(row: Sequence[Any], allowed: set[int] | None, after: int = -1) -> _RunPart | None:
    """A stored run with the members ``allowed`` keeps past seq ``after``; None when none is."""
    seq, status, severity, cid, excepted, rank, data, members, _ = row
    numbers = json.loads(members)
    kept = [(seq + i, n) for i, n in enumerate(numbers)
            if (allowed is None or n in allowed) and seq + i > after]
    return _RunPart(seq, status, severity, cid, int(excepted), rank, data, numbers, kept) if kept else None


def _runs(c: Conn, scan_id: str, item_type: str, filt: ItemFilter, *, with_status: bool = True) -> list[_RunPart]:
    """The scan's runs with a member that ``filt`` keeps, in order: the filter as
    ``ItemFilter.where`` applies it to one row per finding (namespace and kind are the resource's)."""
    rows = _run_rows(c, scan_id, item_type, filt, with_status)
    if not rows:
        return []
    allowed = _allowed(c, scan_id, filt)
    return [part for row in rows if (part := _part(row, allowed)) is not None]


def _runs_page(c: Conn, scan_id: str, item_type: str, filt: ItemFilter, after: int,
               want: int) -> tuple[list[_RunPart], int]:
    """(the runs holding the first ``want`` members ``filt`` keeps past seq ``after``, how many
    members it keeps in all). Without a namespace or kind the count is the runs' sizes, and only
    the runs a page reaches are decoded."""
    rows = _run_rows(c, scan_id, item_type, filt, True)
    if not rows:
        return [], 0
    allowed = _allowed(c, scan_id, filt)
    if allowed is not None:
        parts = _runs(c, scan_id, item_type, filt)
        total = sum(len(part.kept) for part in parts)
        trimmed = []
        for part in parts:
            kept = [m for m in part.kept if m[0] > after]
            if kept:
                trimmed.append(replace(part, kept=kept))
        return trimmed, total
    found: list[_RunPart] = []
    got = 0
    for row in rows:
        if got >= want:
            break
        if row[0] + row[8] - 1 <= after:
            continue
        reached = _part(row, None, after)
        if reached is not None:
            found.append(reached)
            got += len(reached.kept)
    return found, sum(row[8] for row in rows)


def _resources_of(c: Conn, scan_id: str, numbers: Iterable[int]) -> dict[int, str]:
    """Resource number → its ``ResourceRef`` JSON."""
    wanted = sorted(set(numbers))
    found: dict[int, str] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        found.update(c.execute(
            f"SELECT rno, data FROM item_resources WHERE scan_id=? AND rno IN ({','.join('?' * len(chunk))})",
            [scan_id, *chunk],
        ).fetchall())
    return found


def _items_at(c: Conn, scan_id: str, seqs: Iterable[int], runs: Sequence[_RunPart]) -> dict[int, dict[str, Any]]:
    """The items at ``seqs``, whether rows or members of ``runs`` (which hold every member's seq
    they keep)."""
    wanted = sorted(set(seqs))
    starts = [run.seq for run in runs]
    found: dict[int, dict[str, Any]] = {}
    in_runs: dict[int, tuple[_RunPart, int]] = {}
    in_rows = []
    for seq in wanted:
        at = bisect.bisect_right(starts, seq) - 1
        if at >= 0 and seq - runs[at].seq < len(runs[at].members):
            in_runs[seq] = (runs[at], runs[at].members[seq - runs[at].seq])
        else:
            in_rows.append(seq)
    for start in range(0, len(in_rows), 500):
        chunk = in_rows[start:start + 500]
        for seq, data in c.execute(
            f"SELECT seq, data FROM items WHERE scan_id=? AND seq IN ({','.join('?' * len(chunk))})",
            [scan_id, *chunk],
        ):
            found[seq] = json.loads(data)
    if in_runs:
        resources = _resources_of(c, scan_id, [number for _, number in in_runs.values()])
        for seq, (run, number) in in_runs.items():
            found[seq] = run.finding(resources[number])
    return found


def _add_failed_members(c: Conn, scan_id: str, runs: Sequence[_RunPart],
                        failed: dict[str, builtins.list[tuple[int, dict[str, Any]]]]) -> None:
    """Add the failed findings of ``runs`` whose resource is one of ``failed``'s keys, in seq order."""
    keys = dict(c.execute("SELECT rno, resource_key FROM item_resources WHERE scan_id=?", (scan_id,)).fetchall())
    hits = [(seq, keys[number], run, number) for run in runs for seq, number in run.kept if keys[number] in failed]
    resources = _resources_of(c, scan_id, [hit[3] for hit in hits])
    for seq, key, run, number in hits:
        failed[key].append((seq, run.finding(resources[number])))
    for found in failed.values():
        found.sort(key=lambda entry: entry[0])


def _resource_page_with_runs(c: Conn, scan_id: str, filt: ItemFilter, where: str, args: builtins.list[Any],
                             runs: Sequence[_RunPart], limit: int,
                             offset: int) -> tuple[builtins.list[tuple[str, int, int, int]], int]:
    """``resources``' page of (resource_key, n_failed, n_passed, first_seq) and how many match,
    for a scan with runs: the rows' tallies by resource from SQL, the runs' members added here,
    in the order the SQL of a scan without runs gives (its keys ordered by the database itself,
    whose collation may not be Python's)."""
    tally: dict[str, list[int]] = {}
    for key, n_failed, top, n_passed, first in c.execute(
        "SELECT resource_key, SUM(CASE WHEN status='failed' THEN 1 ELSE 0 END),"
        " COALESCE(MIN(CASE WHEN status='failed' THEN risk_rank END), 1073741824),"
        " SUM(CASE WHEN status='passed' THEN 1 ELSE 0 END), MIN(seq)"
        f" FROM items{where} AND resource_key IS NOT NULL GROUP BY resource_key", args,
    ):
        tally[key] = [int(n_failed), int(top), int(n_passed), int(first)]
    keys = dict(c.execute("SELECT rno, resource_key FROM item_resources WHERE scan_id=?", (scan_id,)).fetchall())
    for run in runs:
        for seq, number in run.kept:
            key = keys[number]
            counts = tally.get(key)
            if counts is None:
                counts = tally[key] = [0, 1 << 30, 0, seq]
            if run.status == "failed":
                counts[0] += 1
                if run.risk_rank is not None:
                    counts[1] = min(counts[1], run.risk_rank)
            elif run.status == "passed":
                counts[2] += 1
            counts[3] = min(counts[3], seq)
    if filt.status == "failed":
        tally = {k: v for k, v in tally.items() if v[0] > 0}
    elif filt.status == "passed":
        tally = {k: v for k, v in tally.items() if v[0] == 0}
    place = {key: i for i, (key,) in enumerate(c.execute(
        "SELECT resource_key FROM items WHERE scan_id=? AND resource_key IS NOT NULL"
        " UNION SELECT resource_key FROM item_resources WHERE scan_id=? ORDER BY 1", (scan_id, scan_id),
    ))}
    ordered = sorted(tally, key=lambda k: (tally[k][1], -tally[k][0], place[k]))
    return [(k, tally[k][0], tally[k][2], tally[k][3]) for k in ordered[offset:offset + limit]], len(ordered)


def _still_the_scanners_group(pgid: int, leader_ticks: int) -> bool:
    """Whether process group ``pgid`` is still the one a scan's scanner led.

    Its leader alive with the recorded start time; or its leader gone while the group lives on:
    the leader died with its server (the parent-death signal, ``runner.deathsig``) and left its
    own children, and Linux hands out no pid that is still a live group's id, so no later
    process can have taken the number.
    """
    ticks = process_start_ticks(pgid)
    if ticks is not None:
        return ticks == leader_ticks
    return group_alive(pgid)
