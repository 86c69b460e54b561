"""MCP tools, resources and prompts: thin wrappers over ``mcp_kscan.service``."""

from __future__ import annotations

from collections.abc import Callable

from mcp.server import MCPServer

from mcp_kscan.service import ScanService

TOOL_NAMES = (
    "kube_bench",
    "kubescape_scan",
    "scan_status",
    "get_results",
    "list_scans",
    "delete_results",
    "cancel_scan",
)


def register_all(mcp: MCPServer, current_service: Callable[[], ScanService]) -> None:
    from mcp_kscan.tools import prompts, resources, results, scans

    scans.register(mcp)
    results.register(mcp)
    resources.register(mcp, current_service)
    prompts.register(mcp)
