"""``GET /api/v1/compare?base=&head=&view=``: what changed between two stored scans over REST.

The same service call, paging, order, locators and size budget as the ``compare_scans`` tool; the
answer is the page as JSON, an error is ``{"error": "<field: why>"}`` (400 bad input, 404 no such
scan).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mcp_kscan.errors import InvalidRequest
from mcp_kscan.http_compat.envelope import query_params
from mcp_kscan.http_compat.operators_api import _error, _limit
from mcp_kscan.http_compat.v1 import app_state

KEYS = ("base", "head", "view", "limit", "cursor")


async def compare(request: Request) -> Response:
    try:
        params = query_params(request, KEYS)
        for name in ("base", "head"):
            if not params.get(name):
                raise InvalidRequest(name, "required: the scan id of the " + ("baseline" if name == "base" else "newer") + " scan")
        page = await app_state(request).service.compare_scans(
            params["base"], params["head"], params.get("view") or "summary", limit=_limit(params),
            cursor=params.get("cursor") or None,
        )
    except Exception as exc:
        return _error(exc)
    return JSONResponse(page.model_dump(mode="json", exclude_none=True))


__all__ = ["compare"]
