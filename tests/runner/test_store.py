"""The store's item pages on both backends: worst first, filters, cursors that visit every item once."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mcp_kscan.errors import InvalidRequest
from mcp_kscan.reports import (
    ControlCounts,
    KubescapeFinding,
    KubescapeReport,
    ResourceCounts,
    ResourceRef,
    summarize_kubescape,
)
from mcp_kscan.runner.records import ScanRecord, ScanState
from mcp_kscan.runner.db import Database, PostgresDatabase, SqliteDatabase
from mcp_kscan.runner.store import ItemFilter, ResultsStore

pytestmark = pytest.mark.anyio

SEVERITIES = ["Low", "Critical", "Medium", "High"]


def _report(n: int) -> KubescapeReport:
    findings = [
        KubescapeFinding(
            control_id=f"C-00{10 + i % 7:02d}",
            control_name=f"control {i % 7}",
            severity=SEVERITIES[i % 4],  # type: ignore[arg-type]
            status="failed" if i % 3 else "passed",
            resource=ResourceRef(api_version="v1", kind="Pod" if i % 2 else "Deployment", namespace=f"ns{i % 5}", name=f"r{i}"),
        )
        for i in range(n)
    ]
    return KubescapeReport(
        frameworks=[], controls=ControlCounts(), resources=ResourceCounts(), failed_controls=[], findings=findings
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    """Each test runs on SQLite and on a real PostgreSQL (tests/pgcluster.py)."""
    if request.param == "sqlite":
        return SqliteDatabase(tmp_path / "scans.db")
    return PostgresDatabase(request.getfixturevalue("postgres_url"))


async def _stored(backend: Database, n: int) -> tuple[ResultsStore, str]:
    store = ResultsStore(backend)
    store.open()
    rec = ScanRecord(
        scan_id="11111111-1111-4111-8111-111111111111",
        scanner="kubescape",
        engine="kubescape",
        status=ScanState.succeeded,
        created_at=datetime.now(UTC),
    )
    await store.insert(rec)
    await store.finish(rec, b"{}", "application/json", _report(n))
    return store, rec.scan_id


async def test_paging_visits_every_item_once_worst_first(backend: Database) -> None:
    store, scan_id = await _stored(backend, 457)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await store.items(scan_id, "finding", ItemFilter(), 50, cursor)
        assert page.total == 457
        seen += [f["resource"]["name"] for f in page.items]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 10
    assert len(seen) == 457 and len(set(seen)) == 457
    first = (await store.items(scan_id, "finding", ItemFilter(), 5, None)).items
    assert all(f["status"] == "failed" and f["severity"] == "Critical" for f in first)


async def test_filters_and_cursor_paging_together(backend: Database) -> None:
    store, scan_id = await _stored(backend, 300)
    filt = ItemFilter(status="failed", severity="High", namespace="ns1")  # canonical: the service fixes case
    names: list[str] = []
    cursor = None
    while True:
        page = await store.items(scan_id, "finding", filt, 7, cursor)
        names += [f["resource"]["name"] for f in page.items]
        for f in page.items:
            assert f["status"] == "failed" and f["severity"] == "High" and f["resource"]["namespace"] == "ns1"
        cursor = page.next_cursor
        if not cursor:
            break
    expected = {f"r{i}" for i in range(300) if i % 3 and i % 4 == 3 and i % 5 == 1}
    assert set(names) == expected and len(names) == len(expected)


async def test_cursor_from_other_filter_or_garbage_is_rejected(backend: Database) -> None:
    store, scan_id = await _stored(backend, 30)
    page = await store.items(scan_id, "finding", ItemFilter(), 5, None)
    assert page.next_cursor
    with pytest.raises(InvalidRequest) as err:
        await store.items(scan_id, "finding", ItemFilter(kind="Pod"), 5, page.next_cursor)
    assert str(err.value).startswith("cursor:")
    with pytest.raises(InvalidRequest):
        await store.items(scan_id, "finding", ItemFilter(), 5, "not-a-cursor%%")


def _record(i: int, status: ScanState = ScanState.succeeded, scanner: str = "kubescape") -> ScanRecord:
    return ScanRecord(
        scan_id=f"{i:08d}-2222-4222-8222-222222222222",
        scanner=scanner,  # type: ignore[arg-type]
        engine=scanner,
        status=status,
        origin="rest",
        created_at=datetime.now(UTC),
        request={"framework": "nsa", "n": i},
    )


async def test_records_round_trip_list_latest_and_delete(backend: Database) -> None:
    store = ResultsStore(backend)
    store.open()
    try:
        for i in range(5):
            await store.insert(_record(i, ScanState.queued, "kube-bench" if i == 3 else "kubescape"))
        rec = _record(1, ScanState.succeeded)
        rec.started_at = rec.finished_at = datetime.now(UTC)
        rec.duration_s = 1.25
        rec.summary = summarize_kubescape(_report(40))
        rec.command = ["kubescape", "scan"]
        raw = b'{"x": "\x00\xff"}'  # stored bytes come back exactly as written
        await store.finish(rec, raw, "application/json", _report(40))
        got = await store.get(rec.scan_id)
        assert got is not None and got.status is ScanState.succeeded and got.duration_s == 1.25
        assert got.summary == rec.summary and got.command == ["kubescape", "scan"] and got.request["n"] == 1
        assert await store.raw_output(rec.scan_id) == (raw, "application/json")
        assert await store.get("nope") is None and await store.raw_output("nope") is None
        # /v1/results reads both in one trip: the output only for a finished scan with a report.
        with_output = await store.get_with_output(rec.scan_id)
        assert with_output is not None and with_output[1] == (raw, "application/json")
        assert with_output[0].model_dump() == got.model_dump()
        assert await store.get_with_output(_record(2).scan_id) == (await store.get(_record(2).scan_id), None)
        assert await store.get_with_output("nope") is None
        latest = await store.latest(finished_only=True)
        assert latest is not None and latest.scan_id == rec.scan_id
        newest = await store.latest()
        assert newest is not None and newest.scan_id == _record(4).scan_id  # insertion order, not ids
        kb = await store.latest(scanner="kube-bench")
        assert kb is not None and kb.scan_id == _record(3).scan_id
        records, total = await store.list(status="queued", limit=2, offset=1)
        assert total == 4 and [r.scan_id for r in records] == [_record(3).scan_id, _record(2).scan_id]
        assert await store.finished_ids() == [rec.scan_id]
        assert await store.has_control(rec.scan_id, "C-0010") and not await store.has_control(rec.scan_id, "C-9999")
        counts = await store.control_counts(rec.scan_id, ItemFilter())
        assert sum(c.failed + c.passed for c in counts) == 40
        rows, n_resources = await store.resources(rec.scan_id, ItemFilter(status="failed"), 5, 0)
        assert n_resources > 5 and len(rows) == 5 and all(r.failed for r in rows)
        assert await store.delete([rec.scan_id, "nope"]) == 1
        assert await store.get(rec.scan_id) is None and await store.raw_output(rec.scan_id) is None
        assert (await store.items(rec.scan_id, "finding", ItemFilter(), 10, None)).total == 0
        assert await store.check_writable(1 << 20) is None
    finally:
        store.close()


async def test_a_deleted_scan_is_gone_at_once_and_its_bulk_freed_later_or_at_the_next_start(backend: Database) -> None:
    """``delete(purge=False)`` (a REST read that deletes the result it answers with) removes the
    record, so no reader finds the scan, and leaves its output and items for ``purge``; what a
    server that stopped in between left is freed when a server opens the database."""
    def bulk(store: ResultsStore, scan_id: str) -> int:
        return store._call(lambda c: sum(
            c.execute(f"SELECT COUNT(*) FROM {table} WHERE scan_id=?", (scan_id,)).fetchone()[0]
            for table in ("outputs", "items", "item_runs", "item_resources")), write=False)

    store, scan_id = await _stored(backend, 40)
    try:
        kept = _record(7, ScanState.succeeded)
        await store.insert(kept)
        await store.finish(kept, b"{}", "application/json", _report(10))
        assert bulk(store, scan_id) > 1 and bulk(store, kept.scan_id) > 1
        assert await store.delete([scan_id], purge=False) == 1
        assert await store.get(scan_id) is None and await store.get_with_output(scan_id) is None
        assert await store.raw_output(scan_id) is None
        assert bulk(store, scan_id) > 1  # not freed yet
        await store.purge([scan_id])
        assert bulk(store, scan_id) == 0

        # Stopped between the two: the next start frees it, and nothing of the scans that remain.
        again = _record(8, ScanState.succeeded)
        await store.insert(again)
        await store.finish(again, b"{}", "application/json", _report(40))
        assert await store.delete([again.scan_id], purge=False) == 1
        store.close()
        store = ResultsStore(backend)
        store.open()
        assert store.purge_orphans_sync() > 0
        assert bulk(store, again.scan_id) == 0 and bulk(store, kept.scan_id) > 1
        assert await store.raw_output(kept.scan_id) == (b"{}", "application/json")
        assert store.purge_orphans_sync() == 0
    finally:
        store.close()


async def test_retention_keeps_the_newest_finished(backend: Database) -> None:
    store = ResultsStore(backend)
    store.open()
    try:
        for i in range(6):
            rec = _record(i, ScanState.failed if i % 2 else ScanState.succeeded)
            await store.insert(rec)
        await store.insert(_record(9, ScanState.running))
        assert await store.enforce_retention(2) == 4
        assert await store.finished_ids() == [_record(4).scan_id, _record(5).scan_id]
        assert await store.get(_record(9).scan_id) is not None  # active scans are never retired
    finally:
        store.close()


async def test_migrations_are_recorded_once_and_a_newer_schema_is_refused(backend: Database) -> None:
    from mcp_kscan.errors import StoreError
    from mcp_kscan.runner import migrations

    store = ResultsStore(backend)
    store.open()
    await store.insert(_record(1))
    store.close()
    store.open()  # a second start (or a second replica) applies nothing again and keeps the data
    versions = await store._run(lambda c: [r[0] for r in c.execute("SELECT version FROM schema_migrations")])
    assert versions == [m.version for m in migrations.MIGRATIONS]
    assert await store.get(_record(1).scan_id) is not None
    await store._run(
        lambda c: c.execute("INSERT INTO schema_migrations (version, applied_at, why) VALUES (?,?,?)",
                            [migrations.LATEST + 1, "2099-01-01", "from the future"]),
        write=True,
    )
    store.close()
    with pytest.raises(StoreError, match=f"schema version {migrations.LATEST + 1}, newer"):
        store.open()


async def test_a_sqlite_file_from_before_versioning_is_adopted(tmp_path: Path) -> None:
    """A scans.db written before migrations were versioned (no resource_key etc.) opens and gains them."""
    import sqlite3

    path = tmp_path / "scans.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE scans (n INTEGER PRIMARY KEY AUTOINCREMENT, scan_id TEXT NOT NULL UNIQUE, scanner TEXT NOT NULL,"
        " engine TEXT NOT NULL, status TEXT NOT NULL, origin TEXT NOT NULL, created_at TEXT NOT NULL, started_at TEXT,"
        " finished_at TEXT, duration_s REAL, phase TEXT, error TEXT, request_json TEXT NOT NULL, command_json TEXT,"
        " return_code INTEGER, stderr_tail TEXT, output_truncated INTEGER NOT NULL DEFAULT 0, summary_json TEXT,"
        " has_report INTEGER NOT NULL DEFAULT 0, progress_done INTEGER, progress_total INTEGER, pgid INTEGER,"
        " pgid_ticks INTEGER, server_pid INTEGER, server_ticks INTEGER);"
        "CREATE TABLE outputs (scan_id TEXT PRIMARY KEY, media_type TEXT NOT NULL, data BLOB NOT NULL);"
        "CREATE TABLE items (scan_id TEXT NOT NULL, seq INTEGER NOT NULL, item_type TEXT NOT NULL, status TEXT,"
        " severity TEXT, control_id TEXT, namespace TEXT, kind TEXT, node TEXT, data TEXT NOT NULL,"
        " PRIMARY KEY (scan_id, seq)) WITHOUT ROWID;"
        "INSERT INTO scans (scan_id, scanner, engine, status, origin, created_at, request_json)"
        " VALUES ('old', 'kubescape', 'kubescape', 'succeeded', 'mcp', '2026-01-01T00:00:00+00:00', '{}');"
    )
    conn.close()
    store = ResultsStore(path)
    store.open()
    try:
        old = await store.get("old")
        assert old is not None and old.status is ScanState.succeeded
        await store.insert(_record(1))
        await store.finish(_record(1), b"{}", "application/json", _report(10))  # the new columns are there
        assert (await store.resources(_record(1).scan_id, ItemFilter(), 50, 0))[1] == 10
    finally:
        store.close()


def test_database_url_is_checked_and_its_password_is_a_secret() -> None:
    from mcp_kscan.redact import redact_text
    from mcp_kscan.runner.db import redacted_url
    from mcp_kscan.settings import Settings

    with pytest.raises(ValueError, match=r"^MCP_KSCAN_DATABASE_URL: expected a postgresql:// URL, got scheme 'mysql'"):
        Settings.from_env({"MCP_KSCAN_DATABASE_URL": "mysql://u:pw@h/db"})
    url = "postgresql://kscan:s3cr3t-pw@db.example:5433/kscan?sslmode=require"
    settings = Settings.from_env({"MCP_KSCAN_DATABASE_URL": url})
    assert settings.database_url == url
    assert "s3cr3t-pw" not in redact_text(f"connect {url} failed")
    assert redacted_url(url) == "postgresql://kscan@db.example:5433/kscan"


async def test_an_unreachable_postgresql_is_one_line_without_the_password(tmp_path: Path) -> None:
    from mcp_kscan.errors import StoreError

    url = f"postgresql://kscan:hunter22@/kscan?host={tmp_path}&port=1"
    with pytest.raises(StoreError) as err:
        PostgresDatabase(url).open()
    text = str(err.value)
    assert "\n" not in text and "hunter22" not in text
    # Where it tried: the socket directory and port from the query, not a made-up localhost.
    assert text.startswith(f"cannot connect to the results database postgresql://kscan@/kscan?host={tmp_path}&port=1:")


async def _running(store: ResultsStore, i: int) -> str:
    rec = _record(i, ScanState.running)
    await store.insert(rec)
    return rec.scan_id


async def test_a_replica_settles_another_machines_scans_only_once_its_lease_expires(postgres_url: str) -> None:
    """Replicas on two machines share PostgreSQL: B leaves A's scans alone while A renews its
    lease, and marks them interrupted once A stops (A's process is not B's to look up)."""
    a = ResultsStore(PostgresDatabase(postgres_url), lease_s=3600, host="replica-a")
    b = ResultsStore(PostgresDatabase(postgres_url), lease_s=3600, host="replica-b")
    a.open()
    b.open()
    try:
        alive = await _running(a, 1)
        assert b.recover_sync() == []
        assert await a.renew_leases() == 1
        assert b.recover_sync() == []  # B's own active scans are never its to settle either
        mine = await _running(b, 2)
        assert b.recover_sync() == [] and a.recover_sync() == []
        # A dies: its lease is no longer renewed. A lease in the past is what that looks like.
        await a._run(lambda c: c.execute("UPDATE scans SET lease_until=? WHERE scan_id=?", [0.0, alive]), write=True)
        assert b.recover_sync() == [alive]
        settled = await b.get(alive)
        assert settled is not None and settled.status is ScanState.interrupted and "server stopped" in (settled.error or "")
        still = await b.get(mine)
        assert still is not None and still.status is ScanState.running
        assert b.recover_sync() == []  # settled once
        assert await a.renew_leases() == 0  # a finished scan's lease is not renewed
    finally:
        a.close()
        b.close()


async def test_the_same_machine_still_judges_by_process(backend: Database) -> None:
    """On one machine a dead server is a dead process, lease or not (SQLite's behaviour, unchanged)."""
    store = ResultsStore(backend, lease_s=3600)
    store.open()
    try:
        mine = await _running(store, 1)
        assert store.recover_sync() == []  # its own, with a live lease and a live process
        # A server process that has gone (pid 1's start time never matches a made-up one):
        await store._run(
            lambda c: c.execute("UPDATE scans SET server_pid=?, server_ticks=? WHERE scan_id=?", [1, -5, mine]),
            write=True,
        )
        assert store.recover_sync() == [mine]
    finally:
        store.close()


async def test_a_dead_server_s_queued_scans_move_only_on_a_shared_queue(backend: Database) -> None:
    """A dead server's queued scans: on PostgreSQL one that may run anywhere stays queued, one bound
    to this host is adopted (its lease now this server's), one bound to its process is settled with
    why; on SQLite, where no server claims from the file, every one is settled as before."""
    from mcp_kscan.runner.records import Placement

    store = ResultsStore(backend, lease_s=3600)
    store.open()
    try:
        placements = {"anywhere": Placement("anywhere", "", {"scanner": "kubescape"}),
                      "host": Placement("host", "it reads files of the host that admitted it (paths)", {}),
                      "process": Placement("process", "it carries a Kubescape access key, which is never stored")}
        ids = {}
        for i, (name, placement) in enumerate(placements.items()):
            rec = ScanRecord(scan_id=f"{i}0000000-0000-4000-8000-000000000000", scanner="kubescape",
                             engine="builtin", status=ScanState.queued, created_at=datetime.now(UTC))
            await store.insert(rec, placement)
            ids[name] = rec.scan_id
        await store._run(lambda c: c.execute("UPDATE scans SET server_pid=?, server_ticks=?", [1, -5]), write=True)
        settled = store.recover_sync(adopt=backend.dialect == "sqlite")
        if backend.dialect == "sqlite":
            assert sorted(settled) == sorted(ids.values())
            record = await store.get(ids["process"])
            assert record is not None and "server stopped while this scan was queued" in (record.error or "")
            return
        assert settled == [ids["process"]]
        record = await store.get(ids["process"])
        assert record is not None and record.status is ScanState.interrupted
        assert "no other server could take it over: it carries a Kubescape access key" in (record.error or "")
        for name in ("anywhere", "host"):
            waiting = await store.get(ids[name])
            assert waiting is not None and waiting.status is ScanState.queued
        owners = dict(await store._run(lambda c: c.execute("SELECT scan_id, server_pid FROM scans").fetchall()))
        assert owners[ids["host"]] == 1  # a server that runs no one else's scans (stdio, CLI) adopts none
        assert store.recover_sync() == []
        owners = dict(await store._run(lambda c: c.execute("SELECT scan_id, server_pid FROM scans").fetchall()))
        assert owners[ids["host"]] == os.getpid() and owners[ids["anywhere"]] == 1  # adopted / left for any claim
        assert await store.renew_leases() == 1
    finally:
        store.close()


def test_sqlite_pages_and_the_size_cap(tmp_path: Path) -> None:
    """A new scans.db has 16 KiB pages (a big report is a quarter as many overflow pages to
    write, read and free); an existing file keeps its own. MCP_KSCAN_DB_MAX_PAGES counts 4 KiB
    pages either way, as documented, so the cap means the same number of bytes."""
    import sqlite3

    from mcp_kscan.runner.db import CAP_PAGE_BYTES, SQLITE_PAGE_BYTES

    def pragma(db: SqliteDatabase, name: str) -> int:
        return int(db.call(lambda c: c.execute(f"PRAGMA {name}").fetchone()[0], write=False))

    new = SqliteDatabase(tmp_path / "new.db", max_pages=256)
    new.open()
    assert pragma(new, "page_size") == SQLITE_PAGE_BYTES == 16384
    assert pragma(new, "max_page_count") * SQLITE_PAGE_BYTES == 256 * CAP_PAGE_BYTES
    new.close()

    old_path = tmp_path / "old.db"
    made = sqlite3.connect(old_path)
    made.execute("CREATE TABLE kept (x)")  # a file written before: its page size is set
    made.close()
    old = SqliteDatabase(old_path, max_pages=256)
    old.open()
    assert pragma(old, "page_size") == 4096
    assert pragma(old, "max_page_count") == 256
    old.close()
