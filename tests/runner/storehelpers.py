"""What several store tests share: a small index file of the engine's kind, and either backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_kscan.runner.db import Database, PostgresDatabase, SqliteDatabase
from mcp_kscan.runner.item_index import IndexWriter, ItemIndex

RESOURCES = [(0, "Deployment", "team-a", '["Deployment","team-a","web","/m/web.yaml"]', '{"kind":"Deployment"}'),
             (1, "Namespace", None, '["Namespace","","team-a","/m/ns.yaml"]', '{"kind":"Namespace"}')]
RUNS = [(0, 2, "failed", "High", "C-0017", 0, 0, '{"control_id":"C-0017","resource":null}', "[0,1]"),
        (2, 1, "passed", "Low", "C-0016", 1, 1, '{"control_id":"C-0016","resource":null}', "[1]")]
"""Three findings: C-0017 failing both resources (one run), C-0016 passed with accepted risk."""


def sample_index(path: Path) -> ItemIndex:
    """An index file holding ``RESOURCES`` and ``RUNS``, as the engine writes one."""
    writer = IndexWriter(path)
    writer.resources(iter(RESOURCES))
    writer.runs(iter(RUNS))
    writer.close()
    return ItemIndex(path)


def backend(kind: str, request: pytest.FixtureRequest, path: Path) -> Database:
    """A SQLite file at ``path``, or an empty PostgreSQL database of the test's own (``postgres_url``)."""
    if kind == "sqlite":
        return SqliteDatabase(path)
    return PostgresDatabase(request.getfixturevalue("postgres_url"))
