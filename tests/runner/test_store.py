"""The SQLite store's item pages: worst first, filters, cursors that visit every item once."""

from __future__ import annotations

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
)
from mcp_kscan.runner.records import ScanRecord, ScanState
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


async def _stored(tmp_path: Path, n: int) -> tuple[ResultsStore, str]:
    store = ResultsStore(tmp_path / "scans.db")
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


async def test_paging_visits_every_item_once_worst_first(tmp_path: Path) -> None:
    store, scan_id = await _stored(tmp_path, 457)
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


async def test_filters_and_cursor_paging_together(tmp_path: Path) -> None:
    store, scan_id = await _stored(tmp_path, 300)
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


async def test_cursor_from_other_filter_or_garbage_is_rejected(tmp_path: Path) -> None:
    store, scan_id = await _stored(tmp_path, 30)
    page = await store.items(scan_id, "finding", ItemFilter(), 5, None)
    assert page.next_cursor
    with pytest.raises(InvalidRequest) as err:
        await store.items(scan_id, "finding", ItemFilter(kind="Pod"), 5, page.next_cursor)
    assert str(err.value).startswith("cursor:")
    with pytest.raises(InvalidRequest):
        await store.items(scan_id, "finding", ItemFilter(), 5, "not-a-cursor%%")
