"""Tools that read and manage stored results: get_results, list_scans, delete_results."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from mcp_kscan.k8s_names import DNS_LABEL_MAX, DNS_LABEL_PATTERN
from mcp_kscan.runner.records import ScanState
from mcp_kscan import views
from mcp_kscan.service import MAX_PAGE_LIMIT, ResultsPage, ScanResult, present
from mcp_kscan.tools.common import describe_record, service_of, structured, tool_errors
from mcp_kscan.tools.scans import DESTRUCTIVE_ANNOTATIONS, READ_ANNOTATIONS, SCAN_ID_PATTERN

# Filters are checked against the view by the service (one-line errors naming the valid values);
# these patterns only keep what no report can hold (paths, quotes, newlines) out of a lookup.
WORD_PATTERN = r"^[A-Za-z][A-Za-z_]{0,15}$"
CONTROL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
NAMESPACE_PATTERN = f"^{DNS_LABEL_PATTERN}$"
KIND_PATTERN = r"^[A-Za-z][A-Za-z0-9]{0,63}$"
NODE_PATTERN = r"^[A-Za-z0-9]([-A-Za-z0-9._]{0,251}[A-Za-z0-9])?$"
CURSOR_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,511}$"

ScanStateName = Literal["queued", "running", "succeeded", "failed", "timed_out", "cancelled", "interrupted"]


BRIEF_LEAVES_OUT = frozenset({"failed_controls", "failed_checks", "errors", "nodes"})


class ScanListEntry(ScanResult):
    """A scan as list_scans shows it: its summary's numbers, not its top-20 lists, so 20 scans fit
    in one small answer (get_results and scan_status show the whole summary)."""

    # The typed summary (``ScanSummary``) without the lists it leaves out: the SDK checks the
    # answer against this model, so the field says what the answer holds.
    summary: dict[str, Any] | None = None  # type: ignore[assignment]

    @classmethod
    def of(cls, result: ScanResult) -> ScanListEntry:
        summary = result.summary
        brief = None if summary is None else summary.model_dump(mode="json", exclude=set(BRIEF_LEAVES_OUT))
        return cls(**{**dict(result), "summary": brief})


class ScanList(BaseModel):
    scans: list[ScanListEntry]
    total: int
    """How many scans match, across all pages."""


class DeleteResult(BaseModel):
    deleted: int


GET_RESULTS_DOC = """Read a finished scan's results, one page at a time, most urgent first.

How secure, what first, exactly where: the scan's summary, then view="controls" (one row per
control: severity, status, failed/passed/excepted resources, remediation), then view="findings"
with control_id=<top control> (each with location {file, document, line} and fix_paths).
view="resources": one row per resource and the controls it fails; "checks": kube-bench; "summary":
the record. Filters are checked (a value no item can have is an error). Pages fit a size budget
(fewer items than limit come with a note); follow next_cursor with the same filters until null."""


def register(mcp: MCPServer) -> None:
    @mcp.tool(title="Read scan results (paged)", description=GET_RESULTS_DOC, annotations=READ_ANNOTATIONS)
    async def get_results(
        ctx: Context,
        scan_id: Annotated[str | None, Field(description="Scan id; omit for the latest finished scan", max_length=64, pattern=SCAN_ID_PATTERN)] = None,
        view: Annotated[Literal["summary", "controls", "findings", "resources", "checks"], Field(description="What to page through")] = "summary",
        severity: Annotated[
            str | None, Field(description="Only this severity: Critical, High, Medium or Low (any case)", max_length=16, pattern=WORD_PATTERN)
        ] = None,
        min_severity: Annotated[
            str | None, Field(description="Only this severity or worse (any case)", max_length=16, pattern=WORD_PATTERN)
        ] = None,
        status: Annotated[
            str | None,
            Field(
                description="controls/findings: failed|passed|skipped; resources: failed|passed; checks: PASS|FAIL|WARN|INFO (any case)",
                max_length=16,
                pattern=WORD_PATTERN,
            ),
        ] = None,
        control_id: Annotated[
            str | None, Field(description="Only this control (C-0057) or CIS check (1.2.3)", max_length=64, pattern=CONTROL_ID_PATTERN)
        ] = None,
        namespace: Annotated[str | None, Field(description="Only resources in this namespace", max_length=DNS_LABEL_MAX, pattern=NAMESPACE_PATTERN)] = None,
        kind: Annotated[str | None, Field(description="Only this resource kind (Deployment, Pod, …)", max_length=64, pattern=KIND_PATTERN)] = None,
        node: Annotated[str | None, Field(description="checks of kube-bench Jobs: only this node", max_length=253, pattern=NODE_PATTERN)] = None,
        limit: Annotated[int, Field(ge=1, le=MAX_PAGE_LIMIT, description="Items per page (max 200; fewer when the page budget is full)")] = 20,
        cursor: Annotated[str | None, Field(description="next_cursor of the previous page", max_length=512, pattern=CURSOR_PATTERN)] = None,
    ) -> Annotated[CallToolResult, ResultsPage]:
        async with tool_errors():
            page = await service_of(ctx).results_page(
                scan_id,
                view,
                severity=severity,
                min_severity=min_severity,
                status=status,
                control_id=control_id,
                namespace=namespace,
                kind=kind,
                node=node,
                limit=limit,
                cursor=cursor,
            )
        return structured(page, page_text(page))

    @mcp.tool(title="List scans", annotations=READ_ANNOTATIONS)
    async def list_scans(
        ctx: Context,
        scanner: Annotated[Literal["kube-bench", "kubescape"] | None, Field(description="Only this scanner")] = None,
        status: Annotated[ScanStateName | None, Field(description="Only scans in this state")] = None,
        limit: Annotated[int, Field(ge=1, le=MAX_PAGE_LIMIT, description="How many, newest first")] = 20,
    ) -> Annotated[CallToolResult, ScanList]:
        """List stored scans, newest first, with their status and summary. Use it to find a scan_id to read or delete."""
        async with tool_errors():
            records, total = await service_of(ctx).list_scans(scanner, status, limit)
        result = ScanList(scans=[ScanListEntry.of(present(r)) for r in records], total=total)
        lines = [f"{total} scan(s); newest first:"]
        for r in records:
            lines.append(f"- {r.scan_id} {r.scanner} {r.status.value} {r.created_at.isoformat(timespec='seconds')}")
        return structured(result, "\n".join(lines))

    @mcp.tool(title="Delete stored results", annotations=DESTRUCTIVE_ANNOTATIONS)
    async def delete_results(
        ctx: Context,
        scan_id: Annotated[str | None, Field(description="The scan to delete", max_length=64, pattern=SCAN_ID_PATTERN)] = None,
        all: Annotated[bool, Field(description="Delete every finished scan (refused while a scan runs)")] = False,
    ) -> Annotated[CallToolResult, DeleteResult]:
        """Delete one finished scan's stored record and report, or all of them with all=true. A queued or running scan must be cancelled first."""
        async with tool_errors():
            deleted = await service_of(ctx).delete(scan_id, all_scans=all)
        return structured(DeleteResult(deleted=deleted), f"deleted {deleted} scan(s)")


def page_text(page: ResultsPage) -> str:
    """The page as text: the record (first page), then one line per item, then how to go on."""
    lines = [describe_record(page.scan)] if page.scan is not None else []
    items = page.items()
    if items is not None:
        head = f"{page.returned} of {page.total_matching} matching {page.view}"
        if page.note:
            head += f" ({page.note})"
        lines.append(head + ":")
        lines += [views.item_line(page.view, item) for item in items]
        lines.append(f"next_cursor={page.next_cursor}" if page.next_cursor else "(last page)")
    return "\n".join(lines)


__all__ = ["register", "ScanState"]
