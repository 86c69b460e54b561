"""The MCP server object and its lifespan.

One ScanManager per process. In stdio mode the MCP server's own lifespan starts it; in HTTP
mode the outer Starlette lifespan starts it (the MCP lifespan only runs inside the session
manager, which REST routes never enter) and hands it in through ``shared``.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import anyio
from mcp.server import MCPServer

from mcp_kscan import __version__
from mcp_kscan.runner.manager import ScanManager
from mcp_kscan.service import ScanService, open_manager, warm_engine
from mcp_kscan.settings import Settings, get_settings

if TYPE_CHECKING:
    from mcp_kscan.operators.service import OperatorService

log = logging.getLogger(__name__)

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

    @cached_property
    def operators(self) -> OperatorService:
        """Reads what the cluster's security operators found (no scan involved).

        Made on first use: its readers' imports were ~2% of a server's start-up CPU.
        """
        from mcp_kscan.operators.service import OperatorService

        return OperatorService(self.settings)


def build_server(
    shared: Callable[[], AppState] | None = None, on_start: Callable[[AppState], None] | None = None
) -> MCPServer:
    """The MCP server with every tool, resource and prompt registered.

    ``shared`` returns the state another lifespan owns (HTTP mode: the app is built before its
    lifespan starts the ScanManager). ``on_start`` is called with the state once this server's
    own lifespan's ScanManager runs (stdio mode).
    """

    current: list[AppState] = []

    @asynccontextmanager
    async def lifespan(server: MCPServer) -> AsyncIterator[AppState]:
        if shared is not None:
            yield shared()
            return
        settings = get_settings()
        async with open_manager(settings) as manager:
            warm_engine(manager, settings)
            state = AppState(manager=manager, settings=settings)
            current[:] = [state]
            if on_start is not None:
                on_start(state)
            yield state

    def current_service() -> ScanService:
        if shared is not None:
            return shared().service
        if not current:
            raise RuntimeError("the scan service is not running")
        return current[-1].service

    from mcp_kscan.tools import register_all

    mcp = MCPServer("mcp-kscan", version=__version__, instructions=INSTRUCTIONS, lifespan=lifespan)
    register_all(mcp, current_service)
    return mcp


def run_stdio(settings: Settings) -> None:
    """Serve MCP over stdin/stdout until the client closes the pipe, or SIGTERM/SIGINT.

    A signal ends the session the same way a closed pipe does: the lifespan's ScanManager then
    stops taking work, lets running scans finish for MCP_KSCAN_SHUTDOWN_GRACE, cancels the rest
    (recorded ``cancelled``, their process groups killed) and the process exits 0. Without the
    handler SIGTERM killed the interpreter on the spot and left the scanners orphaned.
    """
    from mcp_kscan.heap import freeze_startup_heap

    freeze_startup_heap()  # its modules are imported: see ``heap``
    anyio.run(_serve_stdio, settings)


async def _serve_stdio(settings: Settings) -> None:
    if settings.schedule:
        # A stdio server lives as long as its client: scheduled scans belong to `serve --transport http`.
        log.warning("MCP_KSCAN_SCHEDULE is ignored over stdio; run `mcp-kscan serve --transport http` to schedule scans")
    states: list[AppState] = []
    server = build_server(on_start=states.append)
    async with anyio.create_task_group() as tg:

        async def stop_on_signal() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for signum in signals:
                    log.info("received %s: shutting down", signal.Signals(signum).name)
                    break
            # Drain here rather than by cancelling the session: its stdin reader is a thread
            # blocked in read() that only returns when the client writes or closes the pipe.
            with anyio.CancelScope(shield=True):
                for state in states:
                    await state.manager.shutdown()
                    await anyio.to_thread.run_sync(state.manager.store.close)
                logging.shutdown()
                sys.stdout.flush()
                os._exit(0)

        tg.start_soon(stop_on_signal)
        await server.run_stdio_async()
        tg.cancel_scope.cancel()
