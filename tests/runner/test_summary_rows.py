"""A record's summary is a typed model, stored as JSON: rows written while it was a plain dict read
into the model, and what callers receive is the JSON that was stored."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mcp_kscan.reports import (
    ControlCounts,
    FailedCheck,
    FailedControl,
    FrameworkScore,
    KubeBenchSummary,
    KubeBenchTotals,
    KubescapeSummary,
    ResourceCounts,
)
from mcp_kscan.runner.db import SqliteDatabase
from mcp_kscan.runner.records import ScanRecord, ScanState
from mcp_kscan.runner.store import ResultsStore

pytestmark = pytest.mark.anyio

KUBESCAPE = KubescapeSummary(
    compliance_score=71.5, frameworks=[FrameworkScore(name="NSA", compliance_score=70.25)],
    controls=ControlCounts(passed=3, failed=2), resources=ResourceCounts(passed=4, failed=1),
    failed_controls=[FailedControl(control_id="C-0057", name="Privileged container", severity="High", failed_resources=1)],
    failed_controls_total=2, warnings=["chart/ not rendered: helm not found"],
)
KUBE_BENCH = KubeBenchSummary(
    benchmark="cis-1.10", totals=KubeBenchTotals(pass_=30, fail=2, warn=1),
    failed_checks=[FailedCheck(id="1.1.1", description="perms", status="FAIL", scored=True, node="cp-1")],
    failed_checks_total=3,
)


async def _store_with(tmp_path: Path, scanner: str, summary_json: str) -> ResultsStore:
    """A finished scan whose summary_json column holds exactly ``summary_json``."""
    store = ResultsStore(SqliteDatabase(tmp_path / "scans.db"))
    store.open()
    record = ScanRecord(scan_id="22222222-2222-4222-8222-222222222222", scanner=scanner,  # type: ignore[arg-type]
                        engine=scanner, status=ScanState.succeeded, created_at=datetime.now(UTC))
    await store.insert(record)
    with sqlite3.connect(tmp_path / "scans.db") as db:
        db.execute("UPDATE scans SET summary_json = ? WHERE scan_id = ?", (summary_json, record.scan_id))
    return store


@pytest.mark.parametrize("summary", [KUBESCAPE, KUBE_BENCH], ids=["kubescape", "kube-bench"])
async def test_a_row_written_as_a_dict_reads_into_the_model(tmp_path: Path, summary: Any) -> None:
    # What the store wrote before summaries were typed: json.dumps of the by-alias dump.
    old: dict[str, Any] = summary.model_dump(mode="json", by_alias=True)
    store = await _store_with(tmp_path, old["kind"], json.dumps(old))
    record = await store.get("22222222-2222-4222-8222-222222222222")
    assert record is not None and type(record.summary) is type(summary)
    assert record.summary == summary
    shown = record.model_dump(mode="json")["summary"]
    assert json.dumps(shown) == json.dumps(old)  # same keys, same order, "pass" not "pass_"
    store.close()


async def test_a_row_from_before_warnings_and_nothing_scanned(tmp_path: Path) -> None:
    """The first summaries had neither field: they read with the defaults (no warnings, something scanned)."""
    old = KUBESCAPE.model_dump(mode="json")
    del old["warnings"], old["nothing_scanned"]
    store = await _store_with(tmp_path, "kubescape", json.dumps(old))
    record = await store.get("22222222-2222-4222-8222-222222222222")
    assert isinstance(record, ScanRecord) and isinstance(record.summary, KubescapeSummary)
    assert record.summary.warnings == [] and record.summary.nothing_scanned is False
    assert record.summary.failed_controls[0].control_id == "C-0057"
    store.close()
