"""compare_scans: what changed between two stored scans (a thin wrapper over ScanService.compare_scans)."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import Field

from mcp_kscan import views
from mcp_kscan.service import MAX_PAGE_LIMIT, ComparePage
from mcp_kscan.tools.common import compact_schema, service_of, structured, tool_errors
from mcp_kscan.tools.results import CURSOR_PATTERN
from mcp_kscan.tools.scans import READ_ANNOTATIONS, SCAN_ID_PATTERN

# Terse on purpose: every tool's description and schema share one tools/list budget.
COMPARE_DOC = """New, fixed and unchanged failures from a base scan to a head scan of the same scanner.
Matched by control and resource (apiVersion, kind, namespace, name, manifest file); kube-bench by
node and check. A new failing path in a still-failing finding is new (change=new_evidence).
Pages like get_results."""


def register(mcp: MCPServer) -> None:
    @mcp.tool(title="Compare two scans", description=COMPARE_DOC, annotations=READ_ANNOTATIONS)
    async def compare_scans(
        ctx: Context,
        base_scan_id: Annotated[str, Field(description="The older scan", max_length=64, pattern=SCAN_ID_PATTERN)],
        head_scan_id: Annotated[str, Field(description="The newer scan", max_length=64, pattern=SCAN_ID_PATTERN)],
        view: Annotated[Literal["summary", "new", "fixed", "unchanged"], Field(description="What to page")] = "summary",
        limit: Annotated[int, Field(description="Items per page", ge=1, le=MAX_PAGE_LIMIT)] = 20,
        cursor: Annotated[str | None, Field(description="next_cursor of the last page", max_length=512,
                                            pattern=CURSOR_PATTERN)] = None,
    ) -> Annotated[CallToolResult, ComparePage]:
        async with tool_errors():
            page = await service_of(ctx).compare_scans(base_scan_id, head_scan_id, view, limit=limit, cursor=cursor)
        return structured(page, compare_text(page))

    tool = mcp._tool_manager.get_tool("compare_scans")
    if tool is not None:
        compact = compact_schema(tool.parameters)
        tool.parameters.clear()
        tool.parameters.update(compact)
        tool.fn_metadata.output_schema = compact_schema(tool.fn_metadata.output_schema)


def compare_text(page: ComparePage) -> str:
    """The counts (first page), one line per item with what changed, then how to go on."""
    lines = []
    if page.counts is not None:
        c = page.counts
        lines.append(f"{page.base_scan_id} -> {page.head_scan_id}: {c['new']} new ({c['new_evidence']} new evidence), "
                     f"{c['fixed']} fixed, {c['unchanged']} unchanged")
    items = page.items()
    if items is not None:
        lines.append(f"{page.returned} of {page.total_matching} {page.view}" + (f" ({page.note})" if page.note else "") + ":")
        kind = "checks" if page.scanner == "kube-bench" else "findings"
        for item in items:
            extra = f" +{','.join(item['new_failed_paths'][:3])}" if item.get("new_failed_paths") else ""
            lines.append(f"[{item['change']}] {views.item_line(kind, item)}{extra}")
        lines.append(f"next_cursor={page.next_cursor}" if page.next_cursor else "(last page)")
    return "\n".join(lines)
