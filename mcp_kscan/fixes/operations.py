"""propose_fix and apply_fix as operations on a stored scan (every front end calls these).

Findings are read as ``get_results`` reads them (``views.finding_item``: the stable
``finding_id`` and the exact file and document), so an id from a results page names the same
finding here. The planning itself is CPU work and file reads: it runs in a worker thread.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from mcp_kscan import views
from mcp_kscan.engine.loader import LoadError
from mcp_kscan.engine.model import Resource
from mcp_kscan.engine.reading import ReadLimits, within_roots
from mcp_kscan.errors import InvalidRequest
from mcp_kscan.fixes.models import MAX_FIX_PAGE, ApplyResult, FixPage, FixResult, NoFix
from mcp_kscan.fixes.planner import Plan, Planner
from mcp_kscan.fixes.writer import WriteRefused, real_roots, replace_file
from mcp_kscan.fixes.yamltext import unified_diff
from mcp_kscan.runner.records import ScanRecord, ScanState
from mcp_kscan.runner.store import ItemFilter

if TYPE_CHECKING:
    from mcp_kscan.service import ScanService

_SCAN_PAGE = 200


def _load_context(paths: Sequence[str], limits: ReadLimits) -> list[Resource]:
    """The scan's objects again, for the checks that look across objects (selectors, bindings)."""
    from mcp_kscan.engine.scan import load_resources

    errors: list[LoadError] = []
    return load_resources([p for p in paths if p != "-"], errors, limits)


_FINDING_ID = re.compile(r"^f-[0-9a-f]{16}$")


def check_finding_ids(ids: Sequence[str]) -> None:
    """Finding ids are ``locations.finding_id``'s: anything else is the caller's mistake, said at once."""
    for fid in ids:
        if not _FINDING_ID.fullmatch(fid):
            raise InvalidRequest("finding_ids", f"{fid[:24]!r} is not a finding id (f- and 16 hex digits, "
                                                "as get_results shows them)")


class FixOperations:
    """Fix proposals and writes over one scan service (its store, settings and cluster resolver)."""

    def __init__(self, service: ScanService) -> None:
        self.service = service
        self.settings = service.settings

    def _limits(self) -> ReadLimits:
        return ReadLimits.create(self.settings.max_file_bytes, self.settings.allowed_roots)

    async def _record(self, scan_id: str) -> ScanRecord:
        record = await self.service.manager.status(scan_id)
        if record.scanner != "kubescape":
            raise InvalidRequest("scan_id", f"scan {scan_id} is a {record.scanner} scan; fixes are for Kubescape scans")
        if record.status in (ScanState.queued, ScanState.running):
            raise InvalidRequest("scan_id", f"scan {scan_id} is still {record.status.value}: wait for it, then propose fixes")
        if record.status is not ScanState.succeeded:
            raise InvalidRequest("scan_id", f"scan {scan_id} {record.status.value} and has no findings to fix")
        return record

    async def _filter(self, record: ScanRecord, control_id: str | None) -> ItemFilter:
        in_scan: list[str] = []
        if control_id:
            wanted = control_id.strip().upper()
            if await self.service.manager.store.has_control(record.scan_id, wanted):
                in_scan.append(wanted)
        return views.check_filters("findings", record.scanner, status="failed", control_id=control_id,
                                   scan_controls=in_scan)

    async def _planner(self, record: ScanRecord) -> Planner:
        roots = views.scan_roots(record)
        limits = self._limits()
        context = await anyio.to_thread.run_sync(_load_context, roots, limits) if roots else []
        live = None
        if not roots:
            from mcp_kscan.fixes.live import LiveFixer

            try:
                cluster = self.service.cluster_for((record.request or {}).get("kube_context"))
            except InvalidRequest:
                cluster = None  # the scan's context is gone from the kubeconfig: its findings get no fix
            live = LiveFixer(cluster).plan if cluster is not None else None
        return Planner(roots, limits, context, live=live)

    async def _failed_items(self, record: ScanRecord, filt: ItemFilter) -> AsyncGenerator[dict[str, Any], None]:
        """Every failed, not excepted finding matching ``filt``, as get_results shows it, most urgent first."""
        roots = views.scan_roots(record)
        cursor: str | None = None
        while True:
            page = await self.service.manager.items(record.scan_id, "finding", filt, _SCAN_PAGE, cursor)
            shown = await anyio.to_thread.run_sync(lambda: [views.finding_item(f, roots) for f in page.items])
            for item in shown:
                if not item.get("excepted"):
                    yield item
            cursor = page.next_cursor
            if cursor is None:
                return

    async def failed_ids(self, scan_id: str) -> list[str]:
        """Every failed finding of a scan (the CLI fixes them all)."""
        record = await self._record(scan_id)
        filt = await self._filter(record, None)
        return list(dict.fromkeys([item["finding_id"] async for item in self._failed_items(record, filt)]))

    async def _items_by_id(self, record: ScanRecord, filt: ItemFilter, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The failed findings whose id is in ``ids``."""
        wanted = set(ids)
        found: dict[str, dict[str, Any]] = {}
        async with aclosing(self._failed_items(record, filt)) as items:
            async for item in items:
                if item["finding_id"] in wanted:
                    found[item["finding_id"]] = item
                    if len(found) == len(wanted):
                        break
        return found

    # ------------------------------------------------------------------ propose

    async def propose(self, scan_id: str, finding_ids: Sequence[str] | None = None, control_id: str | None = None,
                      limit: int = 10, cursor: str | None = None) -> FixPage:
        if not 1 <= limit <= MAX_FIX_PAGE:
            raise InvalidRequest("limit", f"must be between 1 and {MAX_FIX_PAGE}")
        check_finding_ids(finding_ids or ())
        record = await self._record(scan_id)
        filt = await self._filter(record, control_id)
        if finding_ids:
            if cursor is not None:
                raise InvalidRequest("cursor", "not with finding_ids: the named findings come in one page")
            if len(finding_ids) > limit:
                raise InvalidRequest("finding_ids", f"{len(finding_ids)} ids, more than limit={limit}; raise limit (max {MAX_FIX_PAGE})")
            found = await self._items_by_id(record, filt, finding_ids)
            missing = [f for f in finding_ids if f not in found]
            if missing:
                raise InvalidRequest("finding_ids", f"{missing[0][:40]} is not a failed finding of scan {scan_id}"
                                     + (f" with control {filt.control_id}" if filt.control_id else "")
                                     + "; get_results(view='findings', status='failed') lists them")
            items = [found[f] for f in dict.fromkeys(finding_ids)]
            total, next_cursor = len(items), None
        else:
            page = await self.service.manager.items(record.scan_id, "finding", filt, limit, cursor)
            roots = views.scan_roots(record)
            items = await anyio.to_thread.run_sync(
                lambda: [views.finding_item(f, roots) for f in page.items if not f.get("excepted")])
            total, next_cursor = page.total, page.next_cursor
        planner = await self._planner(record)
        outcomes = await anyio.to_thread.run_sync(lambda: [planner.plan(item) for item in items])
        fixes = [o.fix for o in outcomes if isinstance(o, Plan)]
        without = [o for o in outcomes if isinstance(o, NoFix)]
        note = None
        if total == 0:
            note = "the scan has no failed finding" + (f" for {filt.control_id}" if filt.control_id else "")
        return FixPage(scan_id=record.scan_id, fixes=fixes, without_fix=without, total_matching=total,
                       returned=len(fixes) + len(without), next_cursor=next_cursor, note=note)

    # ------------------------------------------------------------------ apply

    def write_roots(self, client_roots: Sequence[str] | None) -> list[str]:
        """Where fixes may be written: MCP_KSCAN_ALLOWED_ROOTS, narrowed to the client's MCP roots
        when it declared any (a client never widens what the operator allowed)."""
        allowed = real_roots([str(r) for r in self.settings.allowed_roots])
        if not client_roots:
            return allowed
        client = real_roots(client_roots)
        if not allowed:
            return client
        return sorted({c if within_roots(c, [a]) else a for c in client for a in allowed
                       if within_roots(c, [a]) or within_roots(a, [c])})

    async def apply(self, scan_id: str, finding_ids: Sequence[str], client_roots: Sequence[str] | None = None,
                    write: bool = True) -> ApplyResult:
        """Write the verified fixes of ``finding_ids`` (with ``write=False``: only say what would be written)."""
        if not finding_ids:
            raise InvalidRequest("finding_ids", "name the findings to fix (propose_fix lists them)")
        check_finding_ids(finding_ids)
        record = await self._record(scan_id)
        filt = await self._filter(record, None)
        found = await self._items_by_id(record, filt, finding_ids)
        results: dict[str, FixResult] = {}
        for fid in finding_ids:
            if fid not in found:
                results[fid] = FixResult(finding_id=fid, status="refused",
                                         reason=f"not a failed finding of scan {scan_id}")
        planner = await self._planner(record)
        items = [found[f] for f in dict.fromkeys(finding_ids) if f in found]
        outcomes = await anyio.to_thread.run_sync(lambda: [planner.plan(item) for item in items])
        by_file: dict[str, list[Plan]] = defaultdict(list)
        for item, outcome in zip(items, outcomes):
            fid = item["finding_id"]
            if isinstance(outcome, NoFix):
                results[fid] = FixResult(finding_id=fid, status="refused", reason=outcome.reason,
                                         file=(item.get("location") or {}).get("file"))
            elif outcome.path is None:
                reason = ("a cluster finding: nothing is applied to a cluster (the dry run only checks the patch)"
                          if outcome.fix.file is None else
                          "a Helm chart template is never edited: set the values.yaml keys in helm_values")
                results[fid] = FixResult(finding_id=fid, status="refused", reason=reason, file=outcome.fix.file)
            else:
                by_file[outcome.path].append(outcome)
        roots = self.write_roots(client_roots)
        written: list[str] = []
        diffs: dict[str, str] = {}
        for path, plans in by_file.items():
            expected = await self.service.manager.store.file_hash(record.scan_id, os.path.abspath(path))
            new_text, file_results = await anyio.to_thread.run_sync(planner.combine, path, plans, expected)
            if new_text is not None and expected is not None:
                shown = plans[0].fix.file or path
                old_text = planner.read(path)
                try:
                    if write:
                        await anyio.to_thread.run_sync(replace_file, path, new_text.encode("utf-8"), roots, expected)
                        written.append(shown)
                    if not isinstance(old_text, str):
                        diffs[shown] = unified_diff(shown, old_text.text, new_text)
                except WriteRefused as exc:
                    file_results = [r if r.status == "refused" else r.model_copy(update={"status": "refused", "reason": str(exc)})
                                    for r in file_results]
            for r in file_results:
                results[r.finding_id] = r
        ordered = [results[f] for f in dict.fromkeys(finding_ids)]
        applied = sum(1 for r in ordered if r.status == "applied")
        return ApplyResult(scan_id=record.scan_id, results=ordered, files_written=written, applied=applied,
                           refused=len(ordered) - applied, diffs=diffs)

