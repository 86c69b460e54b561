"""The list_controls tool: Kubescape's frameworks and controls, so nobody learns them from errors."""

from __future__ import annotations

from typing import Annotated

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import Field

from mcp_kscan import views
from mcp_kscan.service import MAX_PAGE_LIMIT, ControlCatalogue
from mcp_kscan.tools.common import service_of, structured, tool_errors
from mcp_kscan.tools.results import WORD_PATTERN
from mcp_kscan.tools.scans import READ_ANNOTATIONS

FRAMEWORK_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
QUERY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,99}$"
"""Words to look for: letters, digits, spaces, '_', '.', '-' (what control names and ids are made of)."""


def register(mcp: MCPServer) -> None:
    @mcp.tool(title="List controls and frameworks", annotations=READ_ANNOTATIONS)
    async def list_controls(
        ctx: Context,
        framework: Annotated[str | None, Field(description="Only this framework's controls (nsa, mitre, cis-v1.10.0, …; any case)", max_length=64, pattern=FRAMEWORK_PATTERN)] = None,
        severity: Annotated[str | None, Field(description="Only this severity: Critical, High, Medium or Low (any case)", max_length=16, pattern=WORD_PATTERN)] = None,
        query: Annotated[str | None, Field(description="Words in the id, name or description (e.g. privileged)", max_length=100, pattern=QUERY_PATTERN)] = None,
        limit: Annotated[int, Field(ge=1, le=MAX_PAGE_LIMIT, description="Controls per page")] = 50,
        offset: Annotated[int, Field(ge=0, le=10_000, description="next_offset of the previous page")] = 0,
    ) -> Annotated[CallToolResult, ControlCatalogue]:
        """Kubescape's frameworks, and its controls (most urgent first): id, name, severity, description, remediation, builtin (the built-in engine evaluates it).

        Use it to pick target_names for kubescape_scan or a control_id for get_results."""
        async with tool_errors():
            page = await service_of(ctx).control_catalogue(framework, severity, query, limit, offset)
        lines = [f"{page.total} control(s) match; frameworks: {', '.join(page.frameworks)}"]
        if page.note:
            lines.append(page.note)
        lines += [views.catalogue_line(row) for row in page.controls]
        return structured(page, "\n".join(lines))
