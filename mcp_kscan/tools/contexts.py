"""``list_contexts``: which clusters a scan may choose with ``kube_context``."""

from __future__ import annotations

from typing import Annotated

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult

from mcp_kscan.cluster import Contexts
from mcp_kscan.tools.common import service_of, structured, tool_errors
from mcp_kscan.tools.scans import READ_ANNOTATIONS


def describe(answer: Contexts) -> str:
    if answer.in_cluster:
        return "No kubeconfig: cluster scans use the server's in-cluster service account (kube_context cannot be set)."
    if not answer.contexts:
        return "The server has no kubeconfig: only manifest scans (paths) work."
    lines = [f"{len(answer.contexts)} context(s) in the server's kubeconfig; default: {answer.default_context or 'none'}"]
    for c in answer.contexts:
        mark = "*" if c.current else " "
        lines.append(f"{mark} {c.name}  cluster={c.cluster or '-'}  namespace={c.namespace}")
    return "\n".join(lines)


def register(mcp: MCPServer) -> None:
    @mcp.tool(title="List kubeconfig contexts", annotations=READ_ANNOTATIONS)
    async def list_contexts(ctx: Context) -> Annotated[CallToolResult, Contexts]:
        """List the contexts of the server's kubeconfig (KUBECONFIG: names, clusters, namespaces; never credentials). Pass one as kube_context to scan that cluster."""
        async with tool_errors():
            answer = service_of(ctx).contexts()
        return structured(answer, describe(answer))
