"""A scan's pageable items as a SQLite file of their own: how the built-in engine hands them over.

The store keeps a scan's findings in three tables (``items``, ``item_runs``, ``item_resources``;
``runner.items``). The engine's process works them out (``engine.digest``) and writes them here,
in the store's own columns but for ``scan_id``, in the tables' order. Why a SQLite file and not
lines of JSON: the server read a kept 10,000-resource scan's 14,000 lines, parsed them and bound
every value of every row from Python, 0.13-0.2 s after the engine had ended (a slow 2 vCPU
machine); a SQLite store now copies the three tables in C (``ATTACH``, ``INSERT ... SELECT``:
0.035 s), and the engine writes them while its workers still copy the report into place. A
PostgreSQL store reads them back as ``StoredItem``s (``ItemIndex``), as it would any other scan's.

The columns are named once, here: the store's ``INSERT`` statements are made from them too.
"""

from __future__ import annotations

import heapq
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp_kscan.runner.items import EncodedMembers, ItemResource, Run, StoredItem

ROW_COLUMNS = ("seq", "item_type", "status", "severity", "control_id", "namespace", "kind", "node", "data",
               "resource_key", "excepted", "risk_rank")
"""``items``: one finding (or kube-bench check, node total) a row."""
RUN_COLUMNS = ("seq", "n", "status", "severity", "control_id", "excepted", "risk_rank", "data", "members")
"""``item_runs``: ``n`` findings alike but for their resource (``runner.items.Run``), from ``seq`` on."""
RESOURCE_COLUMNS = ("rno", "kind", "namespace", "resource_key", "data")
"""``item_resources``: the resources runs name, by number."""
TABLES = {"items": ROW_COLUMNS, "item_runs": RUN_COLUMNS, "item_resources": RESOURCE_COLUMNS}


def insert_sql(table: str) -> str:
    """The store's ``INSERT`` of one row of ``table``, ``scan_id`` first (``?`` placeholders)."""
    columns = ("scan_id", *TABLES[table])
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({','.join('?' * len(columns))})"


def copy_sql(table: str, schema: str) -> str:
    """The store's ``INSERT ... SELECT`` of every row of ``table`` in the attached ``schema``,
    under the scan id bound to its one ``?``."""
    columns = ", ".join(TABLES[table])
    return f"INSERT INTO {table} (scan_id, {columns}) SELECT ?, {columns} FROM {schema}.{table}"


class IndexWriter:
    """Writes an index file: ``resources``, then ``runs`` or ``rows``, then ``close`` (which puts
    it in place under its name; a file half written never bears it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._partial = path.with_name(path.name + ".part")
        self._partial.unlink(missing_ok=True)
        # No journal, no sync: a scratch file of one writer, read once right after, then deleted.
        # Big pages: a 10k scan's 8 MB went in 0.031 s against 0.04-0.06 in 4 KiB pages.
        self._conn = sqlite3.connect(self._partial, isolation_level=None)
        self._conn.execute("PRAGMA page_size=65536")
        self._conn.execute("PRAGMA journal_mode=OFF")
        self._conn.execute("PRAGMA synchronous=OFF")
        self._conn.execute("BEGIN")
        for table, columns in TABLES.items():
            key, *rest = columns
            self._conn.execute(f"CREATE TABLE {table} ({key} INTEGER PRIMARY KEY, {', '.join(rest)})")

    def resources(self, rows: Iterable[tuple[int, str | None, str | None, str, str]]) -> None:
        self._insert("item_resources", rows)

    def runs(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """``RUN_COLUMNS``' values, ``seq`` first."""
        self._insert("item_runs", rows)

    def rows(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """``ROW_COLUMNS``' values, ``seq`` first."""
        self._insert("items", rows)

    def _insert(self, table: str, rows: Iterable[tuple[Any, ...]]) -> None:
        width = len(TABLES[table])
        self._conn.executemany(f"INSERT INTO {table} VALUES ({','.join('?' * width)})", rows)

    def close(self) -> None:
        self._conn.execute("COMMIT")
        self._conn.close()
        os.replace(self._partial, self.path)

    def discard(self) -> None:
        self._conn.close()
        self._partial.unlink(missing_ok=True)


@dataclass(frozen=True)
class ItemIndex(Iterable[StoredItem]):
    """An index file as the store takes a scan's items (``ResultsStore.finish``'s ``rows``): a
    SQLite store copies its tables (``path``), any other reads it as ``StoredItem``s, in order.

    The file must stay until the store has it: the manager removes a scan's directory only
    after the outcome is stored."""

    path: Path

    def __iter__(self) -> Iterator[StoredItem]:
        # A URI (read-only) of the path percent-encoded: a "?" or "#" in a name stays the name's.
        conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            for number, kind, namespace, key, data in conn.execute(
                    f"SELECT {', '.join(RESOURCE_COLUMNS)} FROM item_resources ORDER BY rno"):
                yield ItemResource(number, kind, namespace, key, data)
            rows = conn.execute(f"SELECT {', '.join(ROW_COLUMNS)} FROM items ORDER BY seq")
            runs = conn.execute(f"SELECT {', '.join(RUN_COLUMNS)} FROM item_runs ORDER BY seq")
            # A digest holds rows or runs (a cluster's or a file scan's); in seq order either way.
            for entry in heapq.merge(((row[0], 0, row) for row in rows), ((run[0], 1, run) for run in runs)):
                values = entry[2]
                if entry[1] == 0:
                    yield tuple(values[1:])
                else:
                    _, n, status, severity, control_id, excepted, rank, data, members = values
                    yield Run(status, severity, control_id, excepted, rank, data, EncodedMembers(members, n))
        finally:
            conn.close()
