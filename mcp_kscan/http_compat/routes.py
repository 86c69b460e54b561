"""The REST routes, in one list for ``app.build_app`` (they go before MCP's catch-all mount)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from mcp_kscan.errors import KscanError
from mcp_kscan.http_compat import compare_api, fixes_api, operators_api, v1
from mcp_kscan.http_compat.envelope import status_for
from mcp_kscan.http_compat.kube_bench_api import kube_bench_tool
from mcp_kscan.http_compat.openapi import openapi_document
from mcp_kscan.http_compat.prometheus import CONTENT_TYPE, ServerMetrics


async def server_metrics(request: Request) -> Response:
    """``GET /metrics``: this server's own metrics, from the app's registry."""
    metrics: ServerMetrics | None = getattr(request.app.state, "server_metrics", None)
    if metrics is None:  # an app built without the metrics hook: nothing counted yet
        metrics = ServerMetrics()
    return Response(metrics.text(), media_type=CONTENT_TYPE)


_OPENAPI: dict[str, object] | None = None


async def openapi(request: Request) -> Response:
    global _OPENAPI
    if _OPENAPI is None:
        _OPENAPI = openapi_document()
    return JSONResponse(_OPENAPI)


async def contexts(request: Request) -> Response:
    """``GET /api/v1/contexts``: the contexts of the server's kubeconfig (names only, never credentials)."""
    try:
        answer = v1.app_state(request).service.contexts()
    except KscanError as exc:
        return JSONResponse({"error": str(exc)}, status_code=status_for(exc))
    return JSONResponse(answer.model_dump(mode="json"))


Endpoint = Callable[[Request], Awaitable[Response]]
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _route(path: str, endpoint: Endpoint, methods: list[str]) -> Route:
    """A route that answers 405 (with Allow) for other methods itself.

    Starlette's own 405 never happens here: a method mismatch is only a partial match, and
    MCP's catch-all mount behind these routes matches fully and would answer 404.
    """
    allowed = {m.upper() for m in methods}
    allow_header = ", ".join(sorted(allowed))

    async def guarded(request: Request) -> Response:
        if request.method not in allowed:
            return JSONResponse(
                {"id": "", "type": "error", "response": f"method {request.method} not allowed"},
                status_code=405,
                headers={"Allow": allow_header},
            )
        return await endpoint(request)

    return Route(path, guarded, methods=ALL_METHODS, name=endpoint.__name__)


def routes() -> list[BaseRoute]:
    return [
        _route("/v1/scan", v1.scan, ["POST", "DELETE"]),
        _route("/v1/status", v1.status, ["GET", "HEAD"]),
        _route("/v1/results", v1.results, ["GET", "DELETE"]),
        _route("/v1/metrics", v1.metrics, ["GET", "POST"]),
        _route("/api/tools/kube-bench", kube_bench_tool, ["POST"]),
        _route("/api/v1/contexts", contexts, ["GET", "HEAD"]),
        _route("/api/v1/vulnerabilities", operators_api.vulnerabilities, ["GET"]),
        _route("/api/v1/cves/{cve_id}", operators_api.cve, ["GET"]),
        _route("/api/v1/compare", compare_api.compare, ["GET"]),
        _route("/api/v1/fixes", fixes_api.fixes, ["POST"]),
        _route("/metrics", server_metrics, ["GET", "HEAD"]),
        _route("/openapi.json", openapi, ["GET", "HEAD"]),
    ]
