"""Wire-format helpers shared by the REST routes: Kubescape's response envelope, strict query
parsing (gorilla/schema rejects unknown keys), a capped body reader, and error mapping.

Kept apart from the handlers so every route answers errors the same way: a caller-safe message
from ``KscanError``, never a traceback or a server path.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from functools import wraps
from typing import Any, BinaryIO, Literal

import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from mcp_kscan import strict_json
from mcp_kscan.errors import (
    BinaryNotFound,
    ClusterForbidden,
    ClusterNotConfigured,
    ClusterUnreachable,
    FindingsUnavailable,
    InvalidRequest,
    KscanError,
    NotAccepting,
    OperatorNotInstalled,
    QueueFull,
    ScanBusy,
    ScanNotFound,
    StoreError,
)

log = logging.getLogger(__name__)

ResponseType = Literal["v1results", "busy", "notBusy", "ready", "error"]


class Envelope(BaseModel):
    """opa-utils ``Response``: ``id`` always present (may be ""), ``response`` left out when empty."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="The scan ID (a UUID4), or an empty string.")
    type: ResponseType
    response: Any = Field(
        None,
        description="The raw Kubescape JSON report (v1results), or a message (busy, notBusy, error).",
    )


def envelope(
    type_: ResponseType,
    scan_id: str = "",
    response: Any = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """One Kubescape-style answer. ``response`` is omitted when None or "" (Go's omitempty)."""
    body: dict[str, Any] = {"id": scan_id, "type": type_}
    if response is not None and response != "":
        body["response"] = response
    return JSONResponse(body, status_code=status_code, headers=headers)


def raw_envelope(type_: ResponseType, scan_id: str, response_json: bytes | BinaryIO) -> Response:
    """``envelope`` around a response that already is strict JSON bytes (a stored report), or
    an open file of them (a report the store keeps as a file), which this closes.

    The report is spliced in, never parsed: serving it costs its size in bytes, not the many
    times more its Python objects would, and cannot fail on a value JSON cannot hold. From a
    file it is streamed, never held: a 10k-resource scan's 85 MB report was read whole, then
    copied into the body (together ~0.1 CPU s and twice its size in memory).
    """
    head = b'{"id":' + json.dumps(scan_id).encode() + b',"type":' + json.dumps(type_).encode() + b',"response":'
    if isinstance(response_json, bytes | bytearray):
        # One join, one copy: ``head + report + b"}"`` made two.
        body = b"".join((head, response_json, b"}"))
        return Response(body, media_type="application/json")
    fh = response_json
    try:
        size = os.fstat(fh.fileno()).st_size - fh.tell()
    except BaseException:
        fh.close()
        raise
    return StreamingResponse(_streamed(head, fh), media_type="application/json",
                             headers={"content-length": str(len(head) + size + 1)})


_STREAM_CHUNK = 4 << 20


async def _streamed(head: bytes, fh: BinaryIO) -> AsyncIterator[bytes]:
    """``head``, the file's bytes a chunk at a time (read in a worker thread: the event loop never
    waits on the disk), then the envelope's end; the file is closed however the sending ends."""
    try:
        yield head
        while chunk := await anyio.to_thread.run_sync(fh.read, _STREAM_CHUNK):
            yield chunk
        yield b"}"
    finally:
        fh.close()


def error(message: str, status_code: int = 400, scan_id: str = "", headers: dict[str, str] | None = None) -> JSONResponse:
    return envelope("error", scan_id, message, status_code, headers)


# ---------------------------------------------------------------------------- query strings

_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def query_params(request: Request, allowed: Iterable[str]) -> dict[str, str]:
    """The query as a dict (first value wins); an unknown key is an error, as with gorilla/schema."""
    allowed_set = set(allowed)
    out: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if key not in allowed_set:
            raise InvalidRequest("query", f"unknown key {key[:40]!r}; allowed: {', '.join(sorted(allowed_set))}")
        out.setdefault(key, value)
    return out


def query_bool(params: dict[str, str], name: str) -> bool:
    """Go's strconv.ParseBool; an empty value counts as unset (false)."""
    value = params.get(name, "")
    if value == "" or value in _FALSE:
        return False
    if value in _TRUE:
        return True
    raise InvalidRequest(name, f"expected a boolean (true/false), got {value[:40]!r}")


def is_uuid(value: str) -> bool:
    """Kubescape's results API treats anything that is not a UUID as unknown."""
    try:
        uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return False
    return len(value) in (32, 36)


# ---------------------------------------------------------------------------- bodies


class BodyTooLarge(KscanError):
    """The request body is over KS_SCAN_REQUEST_MAX_BYTES."""


async def read_body(request: Request, limit: int) -> bytes:
    """Read the body, stopping as soon as it passes ``limit`` bytes.

    Content-Length is checked first to fail fast, but it is not trusted: chunked bodies and
    lying clients are cut off while reading.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"request body is larger than {limit} bytes (KS_SCAN_REQUEST_MAX_BYTES)")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise BodyTooLarge(f"request body is larger than {limit} bytes (KS_SCAN_REQUEST_MAX_BYTES)")
    return bytes(data)


def parse_json_object(data: bytes) -> dict[str, Any]:
    """The body as a JSON object; an empty body or anything else is InvalidRequest (400)."""
    if not data.strip():
        raise InvalidRequest("", "failed to parse request payload: the body is empty (send {} for the defaults)")
    try:
        doc = strict_json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise InvalidRequest("", f"failed to parse request payload: invalid JSON ({reason[:100]})") from None
    except RecursionError:  # [[[[…: json.loads recurses per level and would end in a 500
        raise InvalidRequest("", "failed to parse request payload: JSON nested too deeply") from None
    if not isinstance(doc, dict):
        raise InvalidRequest("", "failed to parse request payload: expected a JSON object")
    return doc


# ---------------------------------------------------------------------------- error mapping

Handler = Callable[[Request], Awaitable[Response]]


def status_for(exc: KscanError) -> int:
    """The HTTP status of a caller-facing error (routes override where Kubescape differs)."""
    if isinstance(exc, BodyTooLarge):
        return 413
    if isinstance(exc, InvalidRequest | BinaryNotFound | ScanBusy):
        return 400
    if isinstance(exc, QueueFull):
        return 429
    if isinstance(exc, NotAccepting | StoreError | ClusterNotConfigured):
        return 503  # the server is up but cannot take work: full disk, read-only database, shutdown
    if isinstance(exc, ScanNotFound | OperatorNotInstalled):
        return 404
    if isinstance(exc, FindingsUnavailable):
        return 409  # the scan is finished and its report there; its findings are not (yet) pageable
    if isinstance(exc, ClusterForbidden):
        return 403  # the cluster refused the server's identity (not this API's own token: that is 401)
    if isinstance(exc, ClusterUnreachable):
        return 502
    return 500


def retry_headers(exc: KscanError) -> dict[str, str] | None:
    return {"Retry-After": "1"} if isinstance(exc, QueueFull) else None


def v1_errors(handler: Handler) -> Handler:
    """Turn errors into Kubescape envelopes; unexpected ones are logged and answered 500."""

    @wraps(handler)
    async def wrapper(request: Request) -> Response:
        try:
            return await handler(request)
        except KscanError as exc:
            return error(str(exc), status_for(exc), headers=retry_headers(exc))
        except Exception:
            log.exception("REST %s %s failed", request.method, request.url.path)
            return error("internal server error (see the server log)", 500)

    return wrapper
