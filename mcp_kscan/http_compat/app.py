"""The Starlette app: REST routes beside MCP's streamable HTTP endpoint, one lifespan for both.

The outer lifespan owns the ScanManager (so REST routes and MCP tools share it) and enters the
MCP session manager exactly once; a mounted app's own lifespan would never run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
import logging
from dataclasses import dataclass, field

import anyio
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE, TransportSecuritySettings
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from mcp_kscan.http_compat.auth import BearerTokenMiddleware
from mcp_kscan.http_compat.browser_guard import BrowserGuardMiddleware
from mcp_kscan.http_compat.jsonrpc_guard import JsonRpcIdGuard
from mcp_kscan.http_compat.prometheus import ServerMetrics, StoredMetrics
from mcp_kscan.http_compat.routes import routes
from mcp_kscan.scheduled_scans import scheduler_for, unrunnable
from mcp_kscan.service import open_manager, warm_engine
from mcp_kscan.server import AppState, build_server
from mcp_kscan.settings import Settings

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def served_host_names(host: str, allowed_hosts: list[str]) -> list[str]:
    """The Host names every route answers: loopback, the bind address, and each --allowed-host."""
    names: list[str] = list(LOOPBACK_HOSTS)
    bound = f"[{host}]" if ":" in host and not host.startswith("[") else host
    if bound not in ("0.0.0.0", "[::]") and bound not in names:
        names.append(bound)
    names += [h for h in allowed_hosts if h not in names]
    return names


def transport_security(host: str, allowed_hosts: list[str]) -> TransportSecuritySettings:
    """DNS-rebinding protection stays on whatever the bind address (the SDK turns it off for 0.0.0.0)."""
    names = served_host_names(host, allowed_hosts)
    hosts: list[str] = []
    origins: list[str] = []
    for name in names:
        hosts += [name, f"{name}:*"]
        origins += [f"http://{name}", f"http://{name}:*", f"https://{name}", f"https://{name}:*"]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


@dataclass
class StateRef:
    """Filled by the lifespan: routes read ``request.app.state.kscan`` through it."""

    state: AppState | None = None
    shutting_down: bool = field(default=False)


def rest_routes() -> list[BaseRoute]:
    """The REST routes (Kubescape's /v1 API, /api/tools/kube-bench, metrics, OpenAPI)."""
    return routes()


async def livez(request: Request) -> Response:
    return Response(status_code=200)


async def readyz(request: Request) -> Response:
    ref: StateRef = request.app.state.kscan_ref
    state = ref.state
    if state is None or ref.shutting_down or not state.manager.accepting:
        return Response(status_code=503)
    problem = await state.manager.readiness_problem()
    if problem:
        return JSONResponse({"ready": False, "reason": problem}, status_code=503)
    return Response(status_code=200)


def build_app(settings: Settings, host: str = "127.0.0.1", allowed_hosts: list[str] | None = None) -> Starlette:
    """A fresh app (and MCP session manager): build one per server, or per test."""
    ref = StateRef()
    server_metrics = ServerMetrics()  # per app: tests build several apps in one process

    def shared_state() -> AppState:
        if ref.state is None:
            raise RuntimeError("the HTTP app's lifespan has not started")
        return ref.state

    mcp_server = build_server(shared=shared_state)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_manager(settings, replica=True) as manager:
            warm_engine(manager, settings)
            server_metrics.attach(manager)
            state = AppState(manager=manager, settings=settings)
            ref.state = state
            scheduler = scheduler_for(settings.schedule, state.service)
            app.state.scheduler = scheduler
            async with mcp_server.session_manager.run(), anyio.create_task_group() as background:
                if scheduler is not None:
                    log.info("scheduled scans: %s", "; ".join(e.key for e in scheduler.entries))
                    await unrunnable(settings.schedule, state.service)
                    background.start_soon(scheduler.run)
                try:
                    yield
                finally:
                    ref.shutting_down = True
                    background.cancel_scope.cancel()  # no scheduled scan starts once shutdown began

    mcp_app = mcp_server.streamable_http_app(
        streamable_http_path="/mcp",
        # On a shared database several processes (--workers, replicas behind one Service) answer
        # /mcp, and a legacy (2025) session kept in one process's memory would be unknown to the
        # next: so each request stands alone, as 2026-07-28 requests always do. Legacy clients
        # still work (initialize, then calls; no server-to-client requests such as roots/list).
        stateless_http=settings.database_url is not None,
        transport_security=transport_security(host, allowed_hosts or []),
        host=host,
        # Abandoned sessions expire, and their number is capped: each one holds streams and a task.
        session_idle_timeout=settings.mcp_session_idle_timeout_s,
        max_sessions=settings.mcp_max_sessions,
    )
    routes: list[BaseRoute] = [
        Route("/livez", livez, methods=["GET", "HEAD", "POST"]),
        Route("/readyz", readyz, methods=["GET", "HEAD", "POST"]),
        *rest_routes(),
        Mount("/", app=JsonRpcIdGuard(mcp_app, DEFAULT_MAX_REQUEST_BODY_SIZE)),  # last: it matches everything; MCP itself answers only /mcp
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        # The browser guard is outermost: a page's forged request is refused before anything reads it.
        middleware=[
            Middleware(BrowserGuardMiddleware, allowed_hosts=served_host_names(host, allowed_hosts or [])),
            Middleware(BearerTokenMiddleware, token=settings.token),
        ],
    )
    app.state.kscan_ref = ref
    app.state.server_metrics = server_metrics
    app.state.stored_metrics = StoredMetrics()
    app.state.settings = settings
    return app
