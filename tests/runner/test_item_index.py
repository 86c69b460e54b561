"""The built-in engine's items as a SQLite file (``runner.item_index``), and the stores taking it.

Every view of a scan stored from an index answers as the scan's report does
(tests/runner/test_item_views.py, on both backends); here: the file itself (what it holds, in
what order), and the SQLite store's copy in C leaving its connection as it found it, whatever
the file holds.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mcp_kscan.errors import StoreError
from mcp_kscan.runner.db import SqliteDatabase
from mcp_kscan.runner.item_index import IndexWriter, ItemIndex, insert_sql
from mcp_kscan.runner.items import EncodedMembers, ItemResource, Run
from mcp_kscan.runner.records import ScanRecord, ScanState
from mcp_kscan.runner.store import ItemFilter, ResultsStore

from .storehelpers import RESOURCES, RUNS, sample_index

pytestmark = pytest.mark.anyio

def test_an_index_reads_back_as_the_store_takes_items_in_order(tmp_path: Path) -> None:
    items = list(sample_index(tmp_path / "index.sqlite"))
    assert items[:2] == [ItemResource(*row) for row in RESOURCES]
    runs = items[2:]
    assert [type(run) for run in runs] == [Run, Run]
    assert [(r.status, r.severity, r.control_id, r.excepted, r.risk_rank, r.data) for r in runs] == [
        (row[2], row[3], row[4], row[5], row[6], row[7]) for row in RUNS]
    assert [list(r.members) for r in runs] == [[0, 1], [1]]
    assert all(isinstance(r.members, EncodedMembers) for r in runs)
    assert not (tmp_path / "index.sqlite.part").exists()


def test_rows_come_back_with_their_rank_in_seq_order(tmp_path: Path) -> None:
    """A cluster scan's index holds rows (one finding each), written out of order here."""
    writer = IndexWriter(tmp_path / "index.sqlite")
    writer.rows(iter([(1, "finding", "passed", "Low", "C-2", "ns", "Pod", None, "{}", "k2", 0, 3),
                      (0, "finding", "failed", "High", "C-1", "ns", "Pod", None, "{}", "k1", 0, 1)]))
    writer.close()
    assert list(ItemIndex(tmp_path / "index.sqlite")) == [
        ("finding", "failed", "High", "C-1", "ns", "Pod", None, "{}", "k1", 0, 1),
        ("finding", "passed", "Low", "C-2", "ns", "Pod", None, "{}", "k2", 0, 3)]


def test_a_discarded_writer_leaves_no_file(tmp_path: Path) -> None:
    writer = IndexWriter(tmp_path / "index.sqlite")
    writer.resources(iter(RESOURCES))
    writer.discard()
    assert list(tmp_path.iterdir()) == []


def test_the_store_statements_name_the_index_columns() -> None:
    assert insert_sql("item_resources") == ("INSERT INTO item_resources (scan_id, rno, kind, namespace,"
                                            " resource_key, data) VALUES (?,?,?,?,?,?)")


def _record(scan_id: str) -> ScanRecord:
    return ScanRecord(scan_id=scan_id, scanner="kubescape", engine="builtin", status=ScanState.succeeded,
                      created_at=datetime.now(UTC))


def _attached(db: SqliteDatabase) -> list[str]:
    return [row[1] for row in db.call(lambda c: c.execute("PRAGMA database_list").fetchall(), write=False)]


async def test_the_sqlite_store_copies_an_index_and_detaches_it_each_time(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "scans.db")
    store = ResultsStore(db)
    store.open()
    seen = []
    for n in range(2):  # the same schema name twice: the first was detached after its transaction
        scan_id = f"{n}1111111-1111-4111-8111-111111111111"
        record = _record(scan_id)
        await store.insert(record)
        await store.finish(record, b"{}", "application/json", None, rows=sample_index(tmp_path / f"index-{n}.sqlite"))
        assert _attached(db) == ["main"]
        page = await store.items(scan_id, "finding", ItemFilter(), 10, None)
        seen.append([spelled_out_item["control_id"] for spelled_out_item in page.items])
        rows, total = await store.resources(scan_id, ItemFilter(), 10, 0)
        assert total == 2 and len(rows) == 2
    assert seen == [["C-0017", "C-0017", "C-0016"]] * 2
    # The copy went through the database: the file can go.
    for n in range(2):
        (tmp_path / f"index-{n}.sqlite").unlink()
    assert (await store.items("11111111-1111-4111-8111-111111111111", "finding", ItemFilter(), 10, None)).total == 3


@pytest.mark.parametrize("damage", ["missing", "not sqlite", "wrong columns"])
async def test_a_bad_index_fails_the_store_and_leaves_it_as_it_was(tmp_path: Path, damage: str) -> None:
    db = SqliteDatabase(tmp_path / "scans.db")
    store = ResultsStore(db)
    store.open()
    path = tmp_path / "index.sqlite"
    if damage == "not sqlite":
        path.write_bytes(b"not a database\n" * 100)
    elif damage == "wrong columns":
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE item_runs (seq INTEGER PRIMARY KEY)")
    record = _record("31111111-1111-4111-8111-111111111111")
    await store.insert(record)
    with pytest.raises(StoreError):  # the manager records the scan failed, "could not be stored"
        await store.finish(record, b"{}", "application/json", None, rows=ItemIndex(path))
    assert _attached(db) == ["main"] and (path.exists() == (damage != "missing"))
    # Rolled back whole (no report, no rows), and the store goes on.
    assert (await store.items(record.scan_id, "finding", ItemFilter(), 10, None)).total == 0
    ok = _record("41111111-1111-4111-8111-111111111111")
    await store.insert(ok)
    await store.finish(ok, b"{}", "application/json", None, rows=sample_index(tmp_path / "good.sqlite"))
    assert (await store.items(ok.scan_id, "finding", ItemFilter(), 10, None)).total == 3


def test_an_index_in_a_folder_whose_name_has_uri_characters_reads_back(tmp_path: Path) -> None:
    """The file is opened read-only through a URI: its path is percent-encoded into it."""
    folder = tmp_path / "scan ?x=1 #frag %20"
    folder.mkdir()
    assert list(sample_index(folder / "index.sqlite"))[:2] == [ItemResource(*row) for row in RESOURCES]
