"""MCP tools, resources and prompts: thin wrappers over ``mcp_kscan.service``."""

from __future__ import annotations

from collections.abc import Callable

from mcp.server import MCPServer
from pydantic import ConfigDict

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
    for name in TOOL_NAMES:
        forbid_unknown_arguments(mcp, name)


def forbid_unknown_arguments(mcp: MCPServer, name: str) -> None:
    """Reject arguments a tool does not have instead of dropping them silently.

    The SDK's argument models ignore extra keys, so ``kube_bench(outputfile="/etc/x")`` would
    start a default scan and the caller would believe its option was used. Here an unknown key
    is a validation error (and the schema says ``additionalProperties: false``).
    """
    tool = mcp._tool_manager.get_tool(name)
    if tool is None:
        return
    base = tool.fn_metadata.arg_model
    strict = type(base.__name__, (base,), {"model_config": ConfigDict(**base.model_config, extra="forbid")})
    tool.fn_metadata.arg_model = strict
    tool.parameters["additionalProperties"] = False
