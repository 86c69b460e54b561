"""propose_fix and apply_fix: fixes for a scan's failed findings, checked by a re-scan before any write."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import BaseModel, ConfigDict, Field

from mcp_kscan.client_roots import client_roots
from mcp_kscan.fixes.models import MAX_FINDING_IDS, MAX_FIX_PAGE, ApplyResult, FixPage
from mcp_kscan.tools.common import service_of, structured, tool_errors
from mcp_kscan.tools.results import CURSOR_PATTERN
from mcp_kscan.tools.scans import DESTRUCTIVE_ANNOTATIONS, READ_ANNOTATIONS, SCAN_ID_PATTERN

# The house patterns for what reaches a lookup (the hostile-input corpus is refused naming the field);
# finding ids are checked by the operations, and tools/list has one size budget for every tool.
ScanId = Annotated[str, Field(description="Scan id", pattern=SCAN_ID_PATTERN)]
FindingIds = list[str]
KUBESCAPE_CONTROL_PATTERN = r"^[Cc]-[0-9]{4}$"
"""views.KUBESCAPE_CONTROL_RE in either case (fixes are for Kubescape controls only, not CIS checks)."""


# The published outlines of fixes.models.FixPage and ApplyResult (the README documents every field).
class FixPageOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    fixes: list[dict[str, Any]]
    next_cursor: str | None


class ApplyOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    results: list[dict[str, Any]]


def register(mcp: MCPServer) -> None:
    @mcp.tool(annotations=READ_ANNOTATIONS)
    async def propose_fix(
        ctx: Context,
        scan_id: ScanId,
        finding_ids: Annotated[FindingIds | None, Field(description="Findings", max_length=MAX_FIX_PAGE)] = None,
        control_id: Annotated[str | None, Field(description="Only this control", pattern=KUBESCAPE_CONTROL_PATTERN)] = None,
        limit: Annotated[int, Field(ge=1, le=MAX_FIX_PAGE, description="Per page")] = 10,
        cursor: Annotated[str | None, Field(description="next_cursor", pattern=CURSOR_PATTERN)] = None,
    ) -> Annotated[CallToolResult, FixPageOut]:
        """Fixes for failed findings: JSON Patch, diff, user values; verified by a re-scan. Read-only."""
        async with tool_errors():
            page = await service_of(ctx).fixes.propose(scan_id, finding_ids, control_id, limit, cursor)
        return structured(page, fix_text(page))

    @mcp.tool(annotations=DESTRUCTIVE_ANNOTATIONS)
    async def apply_fix(
        ctx: Context,
        scan_id: ScanId,
        finding_ids: Annotated[FindingIds, Field(description="Findings", min_length=1, max_length=MAX_FINDING_IDS)],
    ) -> Annotated[CallToolResult, ApplyOut]:
        """Write verified fixes to manifests in the allowed roots; per finding applied or refused."""
        roots = await client_roots(ctx)  # the client's MCP roots narrow where fixes may be written
        async with tool_errors():
            result = await service_of(ctx).fixes.apply(scan_id, finding_ids, client_roots=[str(r) for r in roots])
        return structured(result, apply_text(result))


# The tools' texts live with the tools, not in fixes.operations: importing that module (the fix
# planner, every control, ruamel.yaml) only to list the tools cost each stdio session ~60 ms of CPU.
def fix_text(page: FixPage) -> str:
    """The page as text: one line per fix, then the diffs (a client may show the model only text)."""
    lines = [f"{len(page.fixes)} fix(es), {len(page.without_fix)} finding(s) without one, "
             f"of {page.total_matching} failed finding(s)" + (f" ({page.note})" if page.note else "") + ":"]
    for fix in page.fixes:
        state = "verified" if fix.verified else "NOT verified"
        needs = f"; needs your value for {', '.join(u.field for u in fix.needs_user_value)}" if fix.needs_user_value else ""
        where = f"{fix.file}:{fix.line}" if fix.file else "(cluster)"
        lines.append(f"- {fix.finding_id} {fix.control_id} {where}: {state} ({fix.verification}){needs}")
    for nf in page.without_fix:
        lines.append(f"- {nf.finding_id} {nf.control_id}: no fix ({nf.reason})")
    for fix in page.fixes:
        if fix.diff:
            lines.append(fix.diff.rstrip("\n"))
    lines.append(f"next_cursor={page.next_cursor}" if page.next_cursor else "(last page)")
    return "\n".join(lines)


def apply_text(result: ApplyResult) -> str:
    lines = [f"{result.applied} applied, {result.refused} refused; files written: "
             + (", ".join(result.files_written) or "none")]
    lines += [f"- {r.finding_id}: {r.status}" + (f" ({r.reason})" if r.reason else "") for r in result.results]
    return "\n".join(lines)
