"""``POST /api/v1/fixes``: propose fixes, or apply them with ``"apply": true`` (the MCP tools' rules).

The body is a JSON object: ``scan_id`` and, to propose, ``finding_ids``/``control_id``/``limit``/
``cursor``; to apply, ``finding_ids`` and ``"apply": true``. The answer is the page of fixes (or
the per-finding outcomes) as JSON; an error is ``{"error": "<field: why>"}`` with the status of
``envelope.status_for``. The route sits behind the same bearer token as every REST route.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mcp_kscan.errors import KscanError
from mcp_kscan.fixes.models import FixRequest
from mcp_kscan.http_compat.envelope import parse_json_object, read_body, status_for
from mcp_kscan.http_compat.v1 import app_state
from mcp_kscan.service import validate_request

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
"""200 finding ids and a cursor fit in a few kilobytes."""


async def fixes(request: Request) -> Response:
    try:
        state = app_state(request)
        req: FixRequest = validate_request(FixRequest, parse_json_object(await read_body(request, MAX_BODY_BYTES)), state.settings)
        operations = state.service.fixes
        if req.apply:
            result = await operations.apply(req.scan_id, req.finding_ids or [])
            return JSONResponse(result.model_dump(mode="json"))
        page = await operations.propose(req.scan_id, req.finding_ids, req.control_id, req.limit, req.cursor)
    except KscanError as exc:
        return JSONResponse({"error": str(exc)}, status_code=status_for(exc))
    except Exception as exc:  # noqa: BLE001 - the log has the traceback, the caller one line
        log.exception("POST /api/v1/fixes failed")
        return JSONResponse({"error": f"Server error: {type(exc).__name__} (see the server log)"}, status_code=500)
    return JSONResponse(page.model_dump(mode="json"))


__all__ = ["fixes"]
