"""``GET /api/v1/vulnerabilities`` and ``GET /api/v1/cves/{id}``: the operator readers over REST.

The same filters, validation, paging and size budget as the MCP tools (one service call each);
the answer is the page itself as JSON, and an error is ``{"error": "<field: why>"}`` with the
status of ``envelope.status_for`` (400 bad input, 403 RBAC, 404 no operator, 502 API unreachable,
503 no cluster configuration).
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mcp_kscan.errors import InvalidRequest, KscanError
from mcp_kscan.http_compat.envelope import query_bool, query_params, status_for
from mcp_kscan.http_compat.v1 import app_state

log = logging.getLogger(__name__)

FILTERS = ("namespace", "workload", "image", "min_severity", "fixable", "cve", "limit", "cursor")
PAGING = ("limit", "cursor")


def _limit(params: dict[str, str]) -> int:
    text = params.get("limit", "20")
    if not text.isdigit():
        raise InvalidRequest("limit", f"must be a whole number between 1 and 200; got {text[:20]!r}")
    return int(text)


def _error(exc: Exception) -> JSONResponse:
    if isinstance(exc, KscanError):
        return JSONResponse({"error": str(exc)}, status_code=status_for(exc))
    log.exception("operator REST route failed")
    return JSONResponse({"error": f"Server error: {type(exc).__name__} (see the server log)"}, status_code=500)


async def vulnerabilities(request: Request) -> Response:
    # Imported on the first request: the operator readers are not part of a server's start-up.
    from mcp_kscan.operators.service import vulnerability_query

    try:
        state = app_state(request)
        params = query_params(request, FILTERS)
        data: dict[str, object] = {k: v for k, v in params.items() if k not in ("fixable", "limit") and v != ""}
        if params.get("fixable", "") != "":
            data["fixable"] = query_bool(params, "fixable")
        data["limit"] = _limit(params)
        page = await state.operators.list_vulnerabilities(vulnerability_query(data))
    except Exception as exc:
        return _error(exc)
    return JSONResponse(page.model_dump(mode="json"))


async def cve(request: Request) -> Response:
    try:
        state = app_state(request)
        params = query_params(request, PAGING)
        found = await state.operators.find_cve(
            request.path_params["cve_id"], limit=_limit(params), cursor=params.get("cursor") or None
        )
    except Exception as exc:
        return _error(exc)
    return JSONResponse(found.model_dump(mode="json"))


__all__ = ["cve", "vulnerabilities"]
