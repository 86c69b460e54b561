"""Every view of a scan's items answers the same whichever way the items were stored.

The reference is what the store answers for ``report_items(parse_report(report))``: one row per
finding. The same scan is then stored the way the server stores it (a built-in scan from the
engine's digest, a Kubescape report from its parsed findings), and every reader the views use
(``items`` pages and cursors, ``items_with_status`` for comparisons, ``has_control``,
``control_counts``, ``resources``) must answer exactly as for the reference, under every filter,
on SQLite and on a real PostgreSQL. The service and its renderers read the items through these
readers alone, so their pages, counts, risk order, accepted risk and diffs follow.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import shared_fixture
from mixed_corpus import mixed_corpus

from mcp_kscan.engine.digest import item_rows
from mcp_kscan.engine.exceptions import Exceptions
from mcp_kscan.engine.parallel import write_scan_json
from mcp_kscan.readers.kubescape_report import parse_report
from mcp_kscan.runner.items import report_items, spelled_out, stored_items
from mcp_kscan.runner.records import ScanRecord, ScanState
from mcp_kscan.runner.store import (
    ItemFilter,
    ItemPage,
    ResultsStore,
    decode_cursor,
    encode_cursor,
)

from .storehelpers import backend

pytestmark = pytest.mark.anyio

REFERENCE, STORED = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
def _corpus(root: Path) -> Path:
    """Passed verdicts in bulk between failures (two of three workloads hardened), accepted risk
    inside the same controls, and the rest of ``mixed_corpus``: what breaks a run of uniform verdicts."""
    return mixed_corpus(root, files=16, kinds=["Deployment", "StatefulSet", "DaemonSet", "Pod", "Deployment"],
                        secure=lambda i: i % 3 != 1, exceptions_every=7, name=lambda i: f"app-{i:02d}", replicas=2)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ResultsStore:
    """One database holding both scans: the reference and the one stored the server's way."""
    found = ResultsStore(backend(request.param, request, tmp_path / "scans.db"))
    found.open()
    return found


def _record(scan_id: str) -> ScanRecord:
    return ScanRecord(scan_id=scan_id, scanner="kubescape", engine="builtin", status=ScanState.succeeded,
                      created_at=datetime.now(UTC))


async def _store_both(store: ResultsStore, report: bytes, stored: dict[str, Any]) -> None:
    """The reference (one row per finding, ``report_items``) and the same report stored with
    ``stored`` (``finish``'s keyword arguments, as the server passes them)."""
    for scan_id, how in ((REFERENCE, {"rows": list(report_items(parse_report(report)))}), (STORED, stored)):
        record = _record(scan_id)
        await store.insert(record)
        await store.finish(record, report, "application/json", how.get("report"), rows=how.get("rows"))


def _page(page: ItemPage, scan_id: str, filt: ItemFilter) -> tuple[Any, ...]:
    cursor = decode_cursor(page.next_cursor, scan_id, filt) if page.next_cursor else None
    return page.items, page.total, page.seqs, cursor


async def _walk(store: ResultsStore, scan_id: str, filt: ItemFilter, limit: int, pages: int,
                after: int | None = None) -> list[tuple[Any, ...]]:
    """Up to ``pages`` pages, from the start or from the cursor the store gives after seq ``after``."""
    found: list[tuple[Any, ...]] = []
    cursor = None if after is None else encode_cursor(scan_id, after, filt)
    for _ in range(pages):
        page = await store.items(scan_id, "finding", filt, limit, cursor)
        found.append(_page(page, scan_id, filt))
        cursor = page.next_cursor
        if cursor is None:
            break
    return found


async def _resources(store: ResultsStore, scan_id: str, filt: ItemFilter, limit: int,
                     pages: int = 10_000) -> list[Any]:
    """Pages from offset 0 on (up to ``pages``), and the last page: the order of the whole list
    is the full walk's with a larger page; short pages check the offsets and the end."""
    found: list[Any] = []
    offset = 0
    while True:
        rows, total = await store.resources(scan_id, filt, limit, offset)
        found.append((rows, total))
        offset += limit
        if offset >= total:
            return found
        if len(found) == pages:
            found.append(await store.resources(scan_id, filt, limit, (total - 1) // limit * limit))
            return found


def _filters(findings: list[dict[str, Any]]) -> list[ItemFilter]:
    """Every filter a view takes, with values the scan holds (and a few it does not)."""
    by_control: dict[str, list[dict[str, Any]]] = {}
    for f in findings:
        by_control.setdefault(f["control_id"], []).append(f)
    namespaces = sorted({f["resource"]["namespace"] for f in findings if f["resource"]["namespace"]})
    kinds = sorted({f["resource"]["kind"] for f in findings if f["resource"]["kind"]})
    severities = sorted({f["severity"] for f in findings})
    # The controls that pass most, fail most, and those with accepted risk or skips.
    controls = sorted(by_control, key=lambda c: -sum(f["status"] == "passed" for f in by_control[c]))[:2]
    controls += sorted(by_control, key=lambda c: -sum(f["status"] == "failed" for f in by_control[c]))[:2]
    controls += [c for c, fs in sorted(by_control.items()) if any(f["excepted"] or f["status"] == "skipped" for f in fs)]
    filters = [ItemFilter(), ItemFilter(node="node-1"), ItemFilter(namespace="nowhere"), ItemFilter(kind="Nothing"),
               ItemFilter(severities=("Critical", "High")), ItemFilter(severity=severities[0])]
    filters += [ItemFilter(status=s) for s in ("failed", "passed", "skipped")]
    filters += [ItemFilter(control_id=c) for c in list(dict.fromkeys(controls))[:6]]
    # The first and last namespaces and kinds (the non-ASCII namespace sorts last).
    filters += [ItemFilter(namespace=ns) for ns in dict.fromkeys(namespaces[:1] + namespaces[-1:])]
    filters += [ItemFilter(kind=k.lower()) for k in dict.fromkeys(kinds[:1] + kinds[-1:])]
    if namespaces and kinds:
        filters += [
            ItemFilter(status="passed", namespace=namespaces[0]),
            ItemFilter(status="failed", kind=kinds[0].upper(), severities=("Critical", "High", "Medium")),
            ItemFilter(control_id=controls[0], namespace=namespaces[-1]),
            ItemFilter(control_id=controls[0], status="passed", kind=kinds[-1]),
            ItemFilter(namespace=namespaces[0], kind=kinds[0], view="x"),
        ]
    return filters


async def _answers(store: ResultsStore, scan_id: str, filters: list[ItemFilter], controls: list[str]) -> dict[str, Any]:
    """Every reader's answer for the scan, by view and filter: whole walks of the pages, and
    short pages (a cursor or an offset that falls inside a run of alike verdicts)."""
    out: dict[str, Any] = {}
    for filt in filters:
        key = filt.key()
        out[f"items {key}"] = await _walk(store, scan_id, filt, 60, 10_000)
        out[f"items 1 {key}"] = await _walk(store, scan_id, filt, 1, 3)
        out[f"controls {key}"] = await store.control_counts(scan_id, filt)
        out[f"resources {key}"] = await _resources(store, scan_id, filt, 40)
        out[f"resources 1 {key}"] = (await store.resources(scan_id, filt, 1, 2))
    # 7-item pages from the start, the middle and the last 60-item page's cursors: pages that
    # begin and end inside one run (the 60-item walks above hold every cursor position in all).
    cursors = [page[3] for page in out[f"items {ItemFilter().key()}"] if page[3] is not None]
    for i, at in enumerate(dict.fromkeys([None, *cursors[len(cursors) // 2:][:1], *cursors[-1:]])):
        out[f"items 7 from {i}"] = await _walk(store, scan_id, ItemFilter(), 7, 12, at)
    out["resources 3"] = await _resources(store, scan_id, ItemFilter(), 3, pages=4)
    for status in ("failed", "passed", "skipped"):
        out[f"with status {status}"] = await store.items_with_status(scan_id, "finding", status)
    for cid in [*controls, "C-9999"]:
        out[f"has {cid}"] = await store.has_control(scan_id, cid)
    return out


async def _assert_same_views(store: ResultsStore, *, few: bool = False) -> int:
    """The stored scan answers every view as the reference does; returns how many findings.
    ``few``: under a few filters only (what another test already held under all of them)."""
    reference = await store.items_with_status(REFERENCE, "finding", "failed")
    reference += await store.items_with_status(REFERENCE, "finding", "passed")
    reference += await store.items_with_status(REFERENCE, "finding", "skipped")
    controls = sorted({f["control_id"] for f in reference})
    filters = _filters(reference)
    if few:
        filters = [filters[0], *filters[-5:]]
    expected = await _answers(store, REFERENCE, filters, controls)
    got = await _answers(store, STORED, filters, controls)
    assert got.keys() == expected.keys()
    for view, answer in expected.items():
        assert got[view] == answer, view
        # The same JSON text too: key order is part of a page's output.
        assert json.dumps(got[view], default=repr) == json.dumps(answer, default=repr), view
    return len(reference)


def _engine_scan(folder: Path, digest: Path, workers: int) -> bytes:
    digest.mkdir()
    out = io.BytesIO()
    write_scan_json(out, [folder], ["all"], workers=workers, exceptions=Exceptions.build(), digest_dir=digest)
    return out.getvalue()


EngineScan = Callable[[str, int], tuple[bytes, Path]]


@pytest.fixture(scope="module")
def engine_scan(tmp_path_factory: pytest.TempPathFactory) -> EngineScan:
    """``engine_scan(folder, workers)`` → (report, digest directory), each scanned once for the
    module: the SQLite and the PostgreSQL test store the same scan (the digest is only read)."""
    done: dict[tuple[str, int], tuple[bytes, Path]] = {}

    def scan(folder: str, workers: int) -> tuple[bytes, Path]:
        if (folder, workers) not in done:
            root = tmp_path_factory.mktemp("scan")
            path = _corpus(root) if folder == "corpus" else shared_fixture(folder)
            done[folder, workers] = (_engine_scan(path, root / "digest", workers), root / "digest")
        return done[folder, workers]

    return scan


async def test_a_builtin_scan_stored_from_its_digest_answers_every_view_as_its_findings(
        store: ResultsStore, engine_scan: EngineScan) -> None:
    """Two workers: each slice's resource numbers and runs merged (one worker's digest equals
    the report's rows too: tests/engine/test_digest.py)."""
    report, digest = engine_scan("corpus", 2)
    await _store_both(store, report, {"rows": item_rows(digest)})
    findings = await _assert_same_views(store)
    parsed = parse_report(report)
    assert findings == len(parsed.findings) > 300
    assert {f.status for f in parsed.findings} >= {"failed", "passed"}
    assert any(f.excepted for f in parsed.findings) and any(f.exception_expired for f in parsed.findings)


async def test_the_shared_manifests_scanned_by_the_engine_answer_every_view_alike(
        store: ResultsStore, engine_scan: EngineScan) -> None:
    report, digest = engine_scan("manifests", 2)
    await _store_both(store, report, {"rows": item_rows(digest)})
    assert await _assert_same_views(store) > 100


@pytest.mark.parametrize("name", ["defectdojo/many_findings.json", "defectdojo/results.json",
                                  "defectdojo/with_a_failure.json"])
async def test_kubescape_reports_answer_every_view_alike(store: ResultsStore, name: str) -> None:
    """Kubescape's own reports are stored with runs too (``stored_items``)."""
    report = shared_fixture("kubescape", name).read_bytes()
    parsed = parse_report(report)
    assert list(spelled_out(stored_items(parsed))) == list(report_items(parsed))
    await _store_both(store, report, {"report": parsed})
    assert await _assert_same_views(store) > 0
    runs = await store._run(lambda c: c.execute("SELECT COUNT(*) FROM item_runs WHERE scan_id=?", (STORED,)).fetchone())
    assert runs[0] > (30 if "many" in name else -1)


def test_filters_cover_every_column() -> None:
    """A filter field added later must be exercised here too."""
    assert {f for f in ItemFilter.__dataclass_fields__} == {
        "status", "severity", "control_id", "namespace", "kind", "node", "severities", "view"}
    assert replace(ItemFilter(), kind="pod").key() != ItemFilter().key()


async def test_a_database_from_before_runs_keeps_its_scans_readable(store: ResultsStore,
                                                                   engine_scan: EngineScan) -> None:
    """A database at schema 6 (no runs) holding a built-in scan as one row per finding: the
    migration adds the runs' tables, the old scan answers as before, and a new scan stored with
    runs beside it answers alike."""
    from mcp_kscan.runner import migrations

    report, digest = engine_scan("corpus", 1)
    old = _record(REFERENCE)
    await store.insert(old)
    await store.finish(old, report, "application/json", None, rows=list(report_items(parse_report(report))))

    def back_to_6(c: Any) -> None:
        c.execute("DROP TABLE item_runs")
        c.execute("DROP TABLE item_resources")
        c.execute("ALTER TABLE outputs DROP COLUMN file_name")  # migration 8's
        c.execute("ALTER TABLE outputs DROP COLUMN file_bytes")
        c.execute("DELETE FROM schema_migrations WHERE version >= 7")

    await store._run(back_to_6, write=True)
    store.close()
    store.open()
    versions = await store._run(lambda c: [r[0] for r in c.execute("SELECT version FROM schema_migrations")])
    assert sorted(versions) == [m.version for m in migrations.MIGRATIONS] and migrations.LATEST == 9
    new = _record(STORED)
    await store.insert(new)
    await store.finish(new, report, "application/json", None, rows=item_rows(digest))
    runs = await store._run(lambda c: c.execute("SELECT COUNT(*) FROM item_runs WHERE scan_id=?", (STORED,)).fetchone())
    assert runs[0] > 0
    assert await _assert_same_views(store, few=True) > 300
    assert await store.delete([STORED]) == 1
    left = await store._run(lambda c: [c.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                                       for t in ("item_runs", "item_resources")])
    assert left == [0, 0]
