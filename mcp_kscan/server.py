"""The MCP server object and its lifespan.

One ScanManager per process. In stdio mode the MCP server's own lifespan starts it; in HTTP
mode the outer Starlette lifespan starts it (the MCP lifespan only runs inside the session
manager, which REST routes never enter) and hands it in through ``shared``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from mcp.server import MCPServer

from mcp_kscan import __version__
from mcp_kscan.runner.jobs import ScanManager
from mcp_kscan.service import ScanService
from mcp_kscan.settings import Settings, get_settings

INSTRUCTIONS = (
    "Kubernetes security scans. Start a scan with kubescape_scan (manifests or a cluster; works with no "
    "scanner installed through the built-in engine) or kube_bench (CIS benchmark of a node). Scans return a "
    "scan_id and a summary; long scans keep running in the background: poll scan_status, then page through "
    "details with get_results (cursor paging, filters by severity/status/control/namespace/kind)."
)


@dataclass
class AppState:
    """What every tool, resource and REST route reaches: the one scan manager of this process."""

    manager: ScanManager
    settings: Settings
    service: ScanService = field(init=False)

    def __post_init__(self) -> None:
        self.service = ScanService(self.manager, self.settings)


def build_server(shared: AppState | None = None) -> MCPServer:
    """The MCP server with every tool, resource and prompt registered."""

    current: list[AppState] = [shared] if shared is not None else []

    @asynccontextmanager
    async def lifespan(server: MCPServer) -> AsyncIterator[AppState]:
        if shared is not None:
            yield shared
            return
        settings = get_settings()
        async with ScanManager(settings) as manager:
            state = AppState(manager=manager, settings=settings)
            current[:] = [state]
            yield state

    def current_service() -> ScanService:
        if not current:
            raise RuntimeError("the scan service is not running")
        return current[-1].service

    mcp = MCPServer("mcp-kscan", version=__version__, instructions=INSTRUCTIONS, lifespan=lifespan)
    from mcp_kscan.tools import register_all

    register_all(mcp, current_service)
    return mcp


def run_stdio(settings: Settings) -> None:
    """Serve MCP over stdin/stdout until the client closes the pipe."""
    build_server().run("stdio")
