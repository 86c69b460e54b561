"""The operations every front end calls: start scans, wait, status, result pages, list, delete, cancel.

MCP tools and REST routes translate their wire format into one call here and translate the
answer back; nothing below them knows which front end asked.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from pydantic import BaseModel, ValidationError

import anyio
import anyio.to_thread

from mcp_kscan import compare, scan_plan, views
from mcp_kscan.budget import DEFAULT_BUDGET_BYTES, fit, json_size
from mcp_kscan.cluster import ClusterSource, Contexts, list_contexts
from mcp_kscan.errors import InvalidRequest, KscanError, ScanBusy, ScanNotFound, describe_validation_error
from mcp_kscan.readers.kubescape_v2 import severity_rank
from mcp_kscan.reports import KubescapeSummary
from mcp_kscan.runner.manager import ScanManager
from mcp_kscan.runner.records import ScanTask, ScanRecord, ScanState
from mcp_kscan.runner.store import ItemFilter, Output, ResultsStore, decode_cursor, encode_cursor
from mcp_kscan.scanners.kube_bench_request import KubeBenchRequest
from mcp_kscan.scanners.kubescape_request import KubescapeRequest
from mcp_kscan.settings import Settings
from mcp_kscan.client_roots import ALLOWED_ROOTS_KEY, RootedRequest
from mcp_kscan.views import View

if TYPE_CHECKING:
    from mcp_kscan.fixes.operations import FixOperations

log = logging.getLogger(__name__)

_R = TypeVar("_R")

MAX_PAGE_LIMIT = 200

RUNNING_HINT = (
    "The scan is still {status}. It keeps running in the background: call scan_status with this scan_id "
    "(or wait again) and then get_results to read it."
)


class Gate(BaseModel):
    """The verdict of the thresholds a Kubescape scan was asked to apply (Kubescape's exit-code gates)."""

    compliance_threshold: float | None = None
    severity_threshold: str | None = None
    passed: bool | None
    """False when a threshold is crossed; None when it cannot be judged (nothing was evaluated)."""
    reason: str


class ScanResult(ScanRecord):
    """A scan record as shown to callers, with a hint on what to do next."""

    hint: str | None = None
    gate: Gate | None = None
    """Present when the scan asked for compliance_threshold or severity_threshold."""


class ResultsPage(BaseModel):
    """One page of a scan's results.

    The first page (no cursor) carries the scan's record and summary in ``scan``; pages after it
    carry only their items and the cursor, so paging does not pay for the summary again.
    """

    scan_id: str
    view: View
    scan: ScanResult | None = None
    """The record and summary: on the first page (and the summary view) only."""
    controls: list[dict[str, Any]] | None = None
    findings: list[dict[str, Any]] | None = None
    resources: list[dict[str, Any]] | None = None
    checks: list[dict[str, Any]] | None = None
    total_matching: int | None = None
    """How many items match the filters across all pages."""
    asked: int | None = None
    """The limit asked for."""
    returned: int | None = None
    """How many items this page holds: fewer than ``asked`` on the last page, or when the page budget is full."""
    next_cursor: str | None = None
    """Pass as ``cursor`` for the next page; null on the last page."""
    note: str | None = None
    """Why the page holds fewer items than asked, and other caveats."""
    cut: bool = False
    """True when long texts were shortened to fit the size budget (marked with …[truncated]); locators never are."""

    def items(self) -> list[dict[str, Any]] | None:
        return {"controls": self.controls, "findings": self.findings, "resources": self.resources,
                "checks": self.checks}.get(self.view)


CompareView = Literal["summary", "new", "fixed", "unchanged"]


class ComparePage(BaseModel):
    """A comparison page; counts on the first page."""

    base_scan_id: str
    head_scan_id: str
    scanner: str
    view: CompareView
    counts: dict[str, int] | None = None
    """new (new_evidence included), new_evidence, fixed, unchanged: on the first page only."""
    new_by_control: list[dict[str, Any]] | None = None
    """Controls (checks) with new failures, most urgent first, with how many (first 10)."""
    findings: list[dict[str, Any]] | None = None
    checks: list[dict[str, Any]] | None = None
    total_matching: int | None = None
    asked: int | None = None
    returned: int | None = None
    next_cursor: str | None = None
    note: str | None = None
    cut: bool = False

    def items(self) -> list[dict[str, Any]] | None:
        return self.checks if self.scanner == "kube-bench" else self.findings


COMPARISONS_KEPT = 4
"""Comparisons a service keeps in memory, so paging through one does not match the two scans again
(finished scans never change; a deleted one is refused before its comparison is looked up)."""


def _present_compared(scanner: str, chosen: list[compare.Compared], roots: list[str]) -> list[dict[str, Any]]:
    """Compared failures as pages show them: the finding (locator first) and what changed."""
    out: list[dict[str, Any]] = []
    for c in chosen:
        item = dict(c.item) if scanner == "kube-bench" else views.finding_item(c.item, roots)
        item["change"] = c.change
        if c.new_paths:
            item["new_failed_paths"] = c.new_paths
        out.append(item)
    return out


class ControlCatalogue(BaseModel):
    """Kubescape's frameworks and a page of its controls, with what the built-in engine evaluates."""

    frameworks: list[str]
    controls: list[dict[str, Any]]
    total: int
    """How many controls match the filters."""
    next_offset: int | None = None
    note: str | None = None
    cut: bool = False


ProgressFn = Callable[[ScanRecord], Awaitable[None]]


def validate_request(
    model: type[BaseModel], data: Mapping[str, Any], settings: Settings, context: Mapping[str, Any] | None = None
) -> Any:
    """Validate ``data`` into ``model``; a failure is one ``field: why`` line.

    The validation context carries the operator's allowed roots (from ``settings``, never a global)
    and, from ``client_roots.path_context``, where relative paths start.
    """
    full = {**(context or {}), ALLOWED_ROOTS_KEY: [str(r) for r in settings.allowed_roots]}
    try:
        validated = model.model_validate(dict(data), context=full)
    except ValidationError as exc:
        raise describe_validation_error(exc) from None
    if isinstance(validated, RootedRequest):
        validated.with_path_bases(context)
    return validated


def _hint(record: ScanRecord) -> str | None:
    if record.status in (ScanState.queued, ScanState.running):
        return RUNNING_HINT.format(status=record.status.value)
    if record.status is ScanState.succeeded:
        view = "checks" if record.scanner == "kube-bench" else "findings"
        return f"Page through the details with get_results(scan_id, view='{view}', cursor=…)."
    return None


def evaluate_gate(record: ScanRecord) -> Gate | None:
    """Apply the request's compliance/severity thresholds to a finished Kubescape scan.

    Kubescape's CLI turns them into exit code 1, which a stored scan cannot show an MCP or REST
    caller; the verdict is this field instead, the same for the binary and the built-in engine.
    A scan that evaluated nothing passes no gate: its verdict is None ("not evaluated").
    """
    req = record.request or {}
    compliance = req.get("compliance_threshold")
    severity = req.get("severity_threshold")
    if record.scanner != "kubescape" or (compliance is None and not severity) or record.status is not ScanState.succeeded:
        return None
    summary = record.summary if isinstance(record.summary, KubescapeSummary) else None
    if _scanned_nothing(record):
        return Gate(compliance_threshold=compliance, severity_threshold=severity, passed=None,
                    reason="not evaluated: the scan read no Kubernetes object")
    failures: list[str] = []
    if compliance is not None:
        score = summary.compliance_score if summary else None
        if score is None:
            return Gate(compliance_threshold=compliance, severity_threshold=severity, passed=None,
                        reason="not evaluated: the report has no compliance score")
        if score < float(compliance):
            failures.append(f"compliance {score:.1f}% is below the threshold {float(compliance):g}%")
    if severity:
        limit = severity_rank(str(severity))
        worst = [fc for fc in (summary.failed_controls if summary else []) if severity_rank(fc.severity) <= limit]
        if worst:
            failures.append(f"{worst[0].control_id} failed at severity {worst[0].severity} (threshold {severity})")
    if failures:
        return Gate(compliance_threshold=compliance, severity_threshold=severity, passed=False, reason="; ".join(failures))
    return Gate(compliance_threshold=compliance, severity_threshold=severity, passed=True, reason="within the thresholds")


def present(record: ScanRecord, budget: int = DEFAULT_BUDGET_BYTES) -> ScanResult:
    """The record as a caller sees it: with a hint, the gate verdict, the summary cut to fit the budget."""
    result = ScanResult(**record.model_dump(), hint=_hint(record), gate=evaluate_gate(record))
    if result.summary is not None:
        room = budget // 2 + budget // 4
        dumped = result.summary.model_dump(mode="json")
        if json_size(dumped) > room:
            # Only long texts and lists are cut: every field keeps its type, so the model holds it.
            result.summary = result.summary.model_validate(fit(dumped, room)[0])
    return result


NOTHING_SCANNED_NOTE = (
    "the scan read no Kubernetes object: no control was evaluated, so this is not a compliant result; "
    "check the paths (or the cluster access) and scan again"
)


def _scanned_nothing(record: ScanRecord) -> bool:
    """True when a finished Kubescape scan evaluated no resource at all.

    The hook for "an empty scan is not compliant": the views say so instead of showing a perfect
    score. (Flagging the scan itself as empty is the record's business, not the views'.)
    """
    summary = record.summary
    if not isinstance(summary, KubescapeSummary):
        return False
    counts = summary.resources
    return not (counts.passed or counts.failed or counts.skipped)


def _cluster_scope(record: ScanRecord) -> str | None:
    """What a scan by framework of the cluster a scrape scans covered, in one spelling read from its
    stored request (``frameworks=nsa include-namespaces=dev``; ``frameworks=all`` for every
    framework); None for any other scan. A scan of another kube context is another cluster's
    compliance: a scrape's own scan never names a context."""
    req = record.request or {}
    if record.origin == "metrics" or req.get("paths") or req.get("workload") or req.get("kube_context"):
        return None
    if (req.get("target_type") or "framework") != "framework":
        return None
    return _scope(req.get("target_names") or [], req.get("include_namespaces") or [],
                  req.get("exclude_namespaces") or [])


def _scope(frameworks: Sequence[str], include: Sequence[str], exclude: Sequence[str]) -> str:
    names = sorted({str(n).lower() for n in frameworks if str(n).lower() != "all"})
    parts = [f"frameworks={','.join(names) or 'all'}"]
    for option, namespaces in (("include-namespaces", include), ("exclude-namespaces", exclude)):
        if namespaces:
            parts.append(f"{option}={','.join(sorted(set(map(str, namespaces))))}")
    return " ".join(parts)


def _check_readable(record: ScanRecord) -> None:
    """Items exist only for a scan that finished with a report: say why there are none, and what to do."""
    if record.status in (ScanState.queued, ScanState.running):
        raise ScanBusy(
            f"scan {record.scan_id} is still {record.status.value}: wait with "
            f"scan_status(scan_id=\"{record.scan_id}\", wait_seconds=60), then read its results"
        )
    if record.status is not ScanState.succeeded and not record.has_report:
        reason = f": {record.error}" if record.error else ""
        raise InvalidRequest("scan_id", f"scan {record.scan_id} {record.status.value} and has no results{reason}")
    if not scan_plan.findings_indexed(record.request):
        raise InvalidRequest("scan_id", f"scan {record.scan_id} was run for one answer (POST /v1/scan?wait=true "
                                        "without keep): its report was handed out and its findings were not "
                                        "indexed; scan again with keep=true, or with the kubescape_scan tool, to page them")


def _present_items(view: str, raw: list[Any], roots: list[str]) -> list[dict[str, Any]]:
    """Items as pages show them (runs in a worker thread: locating lines reads manifest files)."""
    if view == "findings":
        return [views.finding_item(f, roots) for f in raw]
    if view == "resources":
        return [views.resource_row(r, roots) for r in raw]
    return list(raw)


def fit_items(items: list[dict[str, Any]], room: int) -> tuple[list[dict[str, Any]], bool]:
    """A page's items within ``room`` bytes: long texts cut first (never a locator), then items
    dropped from the end; at least one item stays. Returns the items and whether text was cut."""
    items, cut = fit(items, room, keep=views.LOCATOR_KEYS)
    # A list's JSON is "[" + ", ".join(its items' JSON) + "]", so each prefix's size follows from
    # the items' own, measured once: serialising every shorter prefix again was quadratic (26 of
    # 50 items dropped took ~30 ms of CPU a page).
    size, keep = 2, 0
    for item in items:
        size += json_size(item) + (2 if keep else 0)
        if keep and size > room:
            break
        keep += 1
    return items[:keep], cut


class ScanService:
    """The scan operations over one ScanManager."""

    def __init__(self, manager: ScanManager, settings: Settings) -> None:
        self.manager = manager
        self.settings = settings
        self._comparisons: OrderedDict[tuple[str, str], compare.Comparison] = OrderedDict()

    @cached_property
    def fixes(self) -> FixOperations:
        """propose_fix and apply_fix over this service's scans.

        Made on first use: its imports (the fix planner, ruamel.yaml) were ~6% of a server's
        start-up CPU, and most servers never propose a fix.
        """
        from mcp_kscan.fixes.operations import FixOperations

        return FixOperations(self)

    # ------------------------------------------------------------------ starting scans

    def cluster_for(self, kube_context: str | None) -> ClusterSource | None:
        """The cluster a scan uses (``scan_plan.cluster_for``: the one rule)."""
        return scan_plan.cluster_for(self.settings, kube_context)

    def contexts(self) -> Contexts:
        """The contexts of the server's kubeconfig a request may choose (names only, no credentials)."""
        return list_contexts(self.settings)

    def kube_bench_task(self, req: KubeBenchRequest) -> ScanTask:
        """The planner's task for ``req`` (``scan_plan.kube_bench_task``): local or Jobs, decided before queueing."""
        return scan_plan.kube_bench_task(req, self.settings)

    def kubescape_task(self, req: KubescapeRequest, *, index_findings: bool = True) -> ScanTask:
        """The planner's task for ``req`` (``scan_plan.kubescape_task``): the binary or the built-in engine."""
        return scan_plan.kubescape_task(req, self.settings, index_findings=index_findings)

    async def start_kube_bench(self, req: KubeBenchRequest, origin: str = "mcp") -> ScanRecord:
        return await self.manager.submit(self.kube_bench_task(req), origin=origin)

    async def start_kubescape(self, req: KubescapeRequest, origin: str = "mcp", *,
                              index_findings: bool = True) -> ScanRecord:
        """``index_findings`` False: the result is handed out once and deleted (REST's
        ``wait=true`` without ``keep``), so its findings are not worked out for paging."""
        return await self.manager.submit(self.kubescape_task(req, index_findings=index_findings), origin=origin)

    async def wait(self, scan_id: str, wait_seconds: float, on_progress: ProgressFn | None = None) -> ScanRecord:
        return await self.manager.wait(scan_id, wait_seconds, on_progress=on_progress)

    # ------------------------------------------------------------------ reading

    async def status(self, scan_id: str | None = None) -> ScanRecord:
        return await self.manager.status(scan_id)

    async def results_page(
        self,
        scan_id: str | None,
        view: View = "summary",
        *,
        severity: str | None = None,
        min_severity: str | None = None,
        status: str | None = None,
        control_id: str | None = None,
        namespace: str | None = None,
        kind: str | None = None,
        node: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
        budget: int = DEFAULT_BUDGET_BYTES,
    ) -> ResultsPage:
        """One page of a scan's results; with no id, the latest finished scan.

        Filters are checked first (``views.check_filters``); reading the items of a scan that
        has not finished is an error that says how to wait, never an empty page.
        """
        if not 1 <= limit <= MAX_PAGE_LIMIT:
            raise InvalidRequest("limit", f"must be between 1 and {MAX_PAGE_LIMIT}")
        record = await (self.manager.status(scan_id) if scan_id else self.manager.latest_finished())
        in_scan: list[str] = []
        if control_id and view in views.KUBESCAPE_VIEWS:
            wanted = control_id.strip().upper()
            if await self.manager.store.has_control(record.scan_id, wanted):
                in_scan.append(wanted)
        filt = views.check_filters(
            view, record.scanner, severity=severity, min_severity=min_severity, status=status,
            control_id=control_id, namespace=namespace, kind=kind, node=node, scan_controls=in_scan,
        )
        if view == "summary":
            return ResultsPage(scan_id=record.scan_id, view=view, scan=present(record, budget))
        _check_readable(record)
        if view in ("findings", "checks"):
            page = await self.manager.items(record.scan_id, "finding" if view == "findings" else "check", filt, limit, cursor)
            raw_items, total = page.items, page.total
            start = -1
        else:
            start = decode_cursor(cursor, record.scan_id, filt) if cursor else 0
            raw_items, total = await self._aggregate_view(record, view, filt, limit, start)
        roots = views.scan_roots(record)
        items = await anyio.to_thread.run_sync(_present_items, view, raw_items, roots)

        first = cursor is None
        scan = present(record, budget // 2) if first else None
        room = max(2_000, budget - (json_size(scan.model_dump(mode="json")) if scan else 0) - 600)
        items, cut = fit_items(items, room)
        keep = len(items)
        if view in ("findings", "checks"):
            next_cursor = page.truncate(keep).next_cursor if keep < len(page.items) else page.next_cursor
        else:
            after = start + keep
            next_cursor = encode_cursor(record.scan_id, after, filt) if after < total else None
        note = None
        if keep < limit and next_cursor is not None:
            note = f"{keep} of {limit} asked: page budget ({budget // 1000} KB); follow next_cursor for the rest"
        if view in views.KUBESCAPE_VIEWS and _scanned_nothing(record):
            note = ((note + "; ") if note else "") + NOTHING_SCANNED_NOTE
        result = ResultsPage(
            scan_id=record.scan_id, view=view, scan=scan, total_matching=total, asked=limit, returned=len(items),
            next_cursor=next_cursor, note=note, cut=cut,
        )
        setattr(result, view, items)
        return result

    async def _aggregate_view(
        self, record: ScanRecord, view: str, filt: ItemFilter, limit: int, start: int
    ) -> tuple[list[Any], int]:
        """Rows of the controls or resources view from ``start``, and how many match in all."""
        if view == "controls":
            counts = await self.manager.store.control_counts(record.scan_id, filt)
            rows = [views.control_row(cc) for cc in counts]
            if filt.status is not None:
                rows = [r for r in rows if r["status"] == filt.status]
            return rows[start : start + limit], len(rows)
        resources, total = await self.manager.store.resources(record.scan_id, filt, limit, start)
        return resources, total

    async def compare_scans(
        self,
        base_scan_id: str,
        head_scan_id: str,
        view: str = "summary",
        *,
        limit: int = 20,
        cursor: str | None = None,
        budget: int = DEFAULT_BUDGET_BYTES,
    ) -> ComparePage:
        """What changed from ``base`` to ``head``: counts, then pages of new, fixed or unchanged
        failures with the paging, order, locators and page budget of ``results_page``."""
        if view not in compare.VIEWS:
            raise InvalidRequest("view", f"{view[:20]!r} is not a comparison view; use one of {', '.join(compare.VIEWS)}")
        if not 1 <= limit <= MAX_PAGE_LIMIT:
            raise InvalidRequest("limit", f"must be between 1 and {MAX_PAGE_LIMIT}")
        records = []
        for field, scan_id in (("base_scan_id", base_scan_id), ("head_scan_id", head_scan_id)):
            record = await self.manager.status(scan_id)
            _check_readable(record)
            if _scanned_nothing(record):
                raise InvalidRequest(field, f"scan {scan_id} read no Kubernetes object: comparing with it would call "
                                            "every failure new or fixed; check its paths and scan again")
            records.append(record)
        base, head = records
        if base.scanner != head.scanner:
            raise InvalidRequest("head_scan_id", f"scan {head.scan_id} is a {head.scanner} scan and {base.scan_id} a "
                                                 f"{base.scanner} scan: compare two scans of the same scanner")
        comparison = await self._comparison(base, head)
        counts = comparison.counts()
        first = cursor is None
        page = ComparePage(base_scan_id=base.scan_id, head_scan_id=head.scan_id, scanner=head.scanner, view=cast(CompareView, view),
                           counts=counts if first else None,
                           new_by_control=compare.new_by_control(comparison) if first else None)
        if view == "summary":
            return page
        filt = ItemFilter(view=f"compare-{view}")
        pair = f"{base.scan_id}..{head.scan_id}"
        start = decode_cursor(cursor, pair, filt) if cursor else 0
        chosen = comparison.view(view)
        roots = views.scan_roots(base if view == "fixed" else head)
        items = await anyio.to_thread.run_sync(_present_compared, head.scanner, chosen[start : start + limit], roots)
        room = max(2_000, budget - json_size(page.model_dump(mode="json")) - 600)
        items, page.cut = fit_items(items, room)
        after = start + len(items)
        page.next_cursor = encode_cursor(pair, after, filt) if after < len(chosen) else None
        page.total_matching, page.asked, page.returned = len(chosen), limit, len(items)
        if len(items) < limit and page.next_cursor is not None:
            page.note = f"{len(items)} of {limit} asked: page budget ({budget // 1000} KB); follow next_cursor for the rest"
        setattr(page, "checks" if head.scanner == "kube-bench" else "findings", items)
        return page

    async def _comparison(self, base: ScanRecord, head: ScanRecord) -> compare.Comparison:
        key = (base.scan_id, head.scan_id)
        found = self._comparisons.get(key)
        if found is not None:
            self._comparisons.move_to_end(key)
            return found
        item_type, failing = ("check", "FAIL") if head.scanner == "kube-bench" else ("finding", "failed")
        store = self.manager.store
        base_items = await store.items_with_status(base.scan_id, item_type, failing)
        head_items = await store.items_with_status(head.scan_id, item_type, failing)
        found = await anyio.to_thread.run_sync(compare.compare, head.scanner, base_items, head_items)
        self._comparisons[key] = found
        while len(self._comparisons) > COMPARISONS_KEPT:
            self._comparisons.popitem(last=False)
        return found

    async def control_catalogue(
        self,
        framework: str | None = None,
        severity: str | None = None,
        query: str | None = None,
        limit: int = 50,
        offset: int = 0,
        budget: int = DEFAULT_BUDGET_BYTES,
    ) -> ControlCatalogue:
        """The frameworks, and one page of the controls matching the filters (most urgent first)."""
        if not 1 <= limit <= MAX_PAGE_LIMIT:
            raise InvalidRequest("limit", f"must be between 1 and {MAX_PAGE_LIMIT}")
        if offset < 0:
            raise InvalidRequest("offset", "must be 0 or more")
        names, rows = views.catalogue_rows(framework, severity, query)
        page = rows[offset : offset + limit]
        room = budget - json_size(names) - 600
        page, cut = fit(page, room, keep=views.LOCATOR_KEYS)
        keep = len(page)
        while keep > 1 and json_size(page[:keep]) > room:
            keep -= 1
        page = page[:keep]
        next_offset = offset + keep if offset + keep < len(rows) else None
        note = None
        if keep < limit and next_offset is not None:
            note = f"{keep} of {limit} asked: page budget ({budget // 1000} KB); pass offset={next_offset} for more"
        return ControlCatalogue(frameworks=names, controls=page, total=len(rows), next_offset=next_offset,
                                note=note, cut=cut)

    async def latest_scan(self, scanner: str | None = None, *, in_flight: bool = False) -> ScanRecord | None:
        """The newest scan that is not a metrics scrape (None when there is none).

        ``in_flight`` limits it to queued/running scans: Kubescape's REST API calls the server
        "busy" while any user scan is in flight, not only when the newest one is.
        """
        if not in_flight or self.manager.store.shared:  # shared: another replica may run it
            record = await self.manager.store.latest(scanner=scanner, in_flight_only=in_flight)
            return None if record is None else await self.manager.status(record.scan_id)
        found = [
            r for r in self.manager.active_records() if r.origin != "metrics" and scanner in (None, r.scanner)
        ]
        return max(found, key=lambda r: r.created_at, default=None)

    async def latest_framework_scan(
        self,
        frameworks: Sequence[str] = (),
        include_namespaces: Sequence[str] = (),
        exclude_namespaces: Sequence[str] = (),
    ) -> ScanRecord:
        """The newest stored Kubescape scan that succeeded and describes the cluster by framework:
        what ``/v1/metrics?source=latest`` serves: one that scanned exactly ``frameworks`` (none, or
        ``all``: every framework) over exactly these namespaces, as the scrape's own scan would, so
        the families match what a scan would give.

        A manifest scan (``paths``), a single workload or a control scan describes something else
        than the cluster's compliance, so none of them stands in for a scrape's scan.
        """
        wanted = _scope(frameworks, include_namespaces, exclude_namespaces)
        stored: set[str] = set()  # what the stored scans would answer instead, for the 404
        offset, page = 0, 25  # the newest few usually hold it: a scrape reads one small page
        while True:
            records, total = await self.manager.list(scanner="kubescape", status=ScanState.succeeded.value,
                                                     limit=page, offset=offset)
            for record in records:
                scope = _cluster_scope(record) if record.has_report else None
                if scope == wanted:
                    return record
                if scope is not None:
                    stored.add(scope)
            offset += page
            if offset >= total or not records:
                break
        which = f" of {wanted}" if wanted != "frameworks=all" else ""
        if stored:  # a schedule of framework=nsa scraped without frameworks: say what would match
            shown = " or ".join(sorted(stored)[:5])
            hint = f"the stored framework scans are of {shown}: scrape with that, or schedule the scan you scrape"
        else:
            hint = "run one (POST /v1/scan, kubescape_scan, or MCP_KSCAN_SCHEDULE), or scrape without source=latest to scan now"
        raise ScanNotFound(f"no stored successful framework scan{which} of the cluster: {hint}")

    async def list_scans(
        self, scanner: str | None = None, status: str | None = None, limit: int = 20, offset: int = 0
    ) -> tuple[list[ScanRecord], int]:
        if not 1 <= limit <= MAX_PAGE_LIMIT:
            raise InvalidRequest("limit", f"must be between 1 and {MAX_PAGE_LIMIT}")
        if status is not None and status not in {s.value for s in ScanState}:
            raise InvalidRequest("status", f"must be one of {', '.join(s.value for s in ScanState)}")
        if scanner is not None and scanner not in ("kube-bench", "kubescape"):
            raise InvalidRequest("scanner", "must be kube-bench or kubescape")
        return await self.manager.list(scanner=scanner, status=status, limit=limit, offset=offset)

    async def status_with_report(self, scan_id: str) -> tuple[ScanRecord, Output | None]:
        """The record and, once stored finished with a report, the raw report: one database trip.
        A report the store keeps as a file comes back open (the caller streams and closes it)."""
        return await self.manager.status_with_output(scan_id)

    async def raw_report(self, scan_id: str) -> tuple[bytes, str]:
        return await self._report(scan_id, await self.manager.raw_output(scan_id))

    async def report_source(self, scan_id: str) -> Output:
        """``raw_report``, but a report the store keeps as a file comes back open, for the caller
        to stream and close (``GET /v1/results`` of an 85 MB report never holds it)."""
        return await self._report(scan_id, await self.manager.open_output(scan_id))

    async def _report(self, scan_id: str, raw: _R | None) -> _R:
        if raw is None:
            await self.manager.status(scan_id)  # ScanNotFound for unknown ids
            raise ScanNotFound(f"scan {scan_id} has no report (it failed before producing output, or is still running)")
        return raw

    # ------------------------------------------------------------------ changing

    async def delete(self, scan_id: str | None = None, all_scans: bool = False, *, purge: bool = True) -> int:
        """``purge`` False: the scan is gone for every reader at once, and ``purge`` frees its
        output and items later, out of the caller's way (``ResultsStore.delete``)."""
        if all_scans:
            return await self.manager.delete_all()
        if not scan_id:
            raise InvalidRequest("scan_id", "give a scan_id, or all=true to delete every finished scan")
        await self.manager.delete(scan_id, purge=purge)
        return 1

    async def purge(self, scan_id: str) -> None:
        await self.manager.purge(scan_id)

    async def cancel(self, scan_id: str) -> ScanRecord:
        return await self.manager.cancel(scan_id)


def open_manager(settings: Settings, store: ResultsStore | None = None, *, replica: bool = False) -> ScanManager:
    """The runner as every front end uses it: with the executors' clean-up after a crash (the
    Kubernetes Jobs of scans a killed server left ``interrupted`` are deleted at the next start).

    ``replica``: an HTTP server (a replica, a ``serve --workers`` worker) also runs the queued scans
    other servers admitted on a shared queue (PostgreSQL), rebuilt through the planner. A stdio
    server or the CLI sharing the database runs only its own: it lives as long as its client or
    its one scan, and its machine need not have the replicas' configuration.
    """

    async def clean_up(records: list[ScanRecord]) -> None:
        if any(r.engine == "kube-bench-job" for r in records):
            from mcp_kscan.executors.orphans import delete_orphaned_jobs

            await delete_orphaned_jobs(records, settings)

    return ScanManager(settings, store, on_recovered=clean_up,
                       rebuild=(lambda plan: scan_plan.task_from_plan(plan, settings)) if replica else None)


def warm_engine(manager: ScanManager, settings: Settings) -> None:
    """Start the built-in engine's standby process now (``runner.standby``) when a scan that
    does not name its engine would run on it: the server's first scan then skips the engine's
    start-up too. Servers call this; the CLI scans in its own process. Later ones are started
    by the scans themselves. A read-only store runs no scan: none is started."""
    if manager.store.read_only:
        return
    try:
        builtin = scan_plan.choose_engine("auto", settings) == "builtin"
    except KscanError:
        return
    if builtin:
        from mcp_kscan.engine.task import standby_kind

        manager.standbys.prime(standby_kind())


async def run_scan_once(
    settings: Settings, submit: Callable[[ScanService], Awaitable[ScanRecord]]
) -> tuple[ScanRecord, bytes | None]:
    """Run one scan to its end outside a server (the CLI), stored like any other.

    ``submit`` starts the scan on the service (``lambda s: s.start_kubescape(req, origin="cli")``);
    the answer is the final record and the raw scanner output, when there is one.
    """
    async with open_manager(settings) as manager:
        service = ScanService(manager, settings)
        record = await submit(service)
        record = await service.wait(record.scan_id, settings.default_timeout_s + 3600)
        raw = await manager.raw_output(record.scan_id)
        return record, raw[0] if raw else None
