"""Keep web pages from driving the HTTP API: Host, Origin, Sec-Fetch-Site and Content-Type checks.

Why every route and not only ``/mcp``: a page the user opens can reach a loopback server. With
DNS rebinding its requests carry a foreign ``Host``; a cross-origin ``fetch`` carries its
``Origin`` and ``Sec-Fetch-Site: cross-site``; and a ``Content-Type: text/plain`` POST needs no
CORS preflight, so a body the server would read as JSON anyway is how a page starts a scan
without asking. The allow-list is the one ``/mcp`` uses (``app.transport_security``): loopback
names, the bind address and every ``--allowed-host``.

Answers: 421 for a Host not on the list, 403 for a foreign Origin or a cross-site fetch, 415
for a body that is not ``application/json``. Health probes (``/livez``, ``/readyz``) get the
same Host check and need no body.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
JSON_MEDIA_TYPE = "application/json"
# /mcp checks its own Content-Type (the SDK answers 400 with the protocol's wording).
OWN_CONTENT_TYPE_CHECK = ("/mcp",)


def split_host(value: str) -> str:
    """The name part of a ``Host`` header value, lower-cased (``[::1]:8080`` → ``[::1]``)."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[: end + 1] if end > 0 else value
    name, sep, port = value.rpartition(":")
    return name if sep and port.isdigit() else value


class BrowserGuardMiddleware:
    """Refuse requests a browser page could forge before any route (or the token check) runs."""

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str]) -> None:
        self.app = app
        self.hosts = frozenset(h.lower() for h in allowed_hosts)
        self.origins = frozenset(
            f"{scheme}://{h}" for h in self.hosts for scheme in ("http", "https")
        )

    def _origin_allowed(self, origin: str) -> bool:
        origin = origin.strip().lower()
        scheme, sep, rest = origin.partition("://")
        if not sep or "/" in rest:
            return False  # "null" (sandboxed frames, file://) and anything malformed
        return f"{scheme}://{split_host(rest)}" in self.origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, bytes] = {}
        for name, value in scope.get("headers", []):
            headers.setdefault(name.lower(), value)
        host = headers.get(b"host", b"").decode("latin-1")
        if not host or split_host(host) not in self.hosts:
            await _refuse(send, 421, f"Host {host[:100]!r} is not served here (add it with --allowed-host)")
            return
        origin = headers.get(b"origin")
        if origin is not None and not self._origin_allowed(origin.decode("latin-1")):
            await _refuse(send, 403, "cross-origin requests are not allowed (Origin is not one of this server's hosts)")
            return
        if headers.get(b"sec-fetch-site", b"").strip().lower() == b"cross-site":
            await _refuse(send, 403, "cross-site requests are not allowed (Sec-Fetch-Site: cross-site)")
            return
        path = scope.get("path", "")
        if scope.get("method", "GET").upper() in BODY_METHODS and _has_body(headers) and not path.startswith(
            OWN_CONTENT_TYPE_CHECK
        ):
            media = headers.get(b"content-type", b"").decode("latin-1").split(";", 1)[0].strip().lower()
            if media != JSON_MEDIA_TYPE:
                await _refuse(send, 415, "request bodies must be sent as Content-Type: application/json")
                return
        await self.app(scope, receive, send)


def _has_body(headers: dict[bytes, bytes]) -> bool:
    length = headers.get(b"content-length")
    if length is not None:
        return length.strip() not in (b"", b"0")
    return b"transfer-encoding" in headers


async def _refuse(send: Send, status: int, message: str) -> None:
    log.warning("refused an HTTP request (%d): %s", status, message)
    body = json.dumps({"error": message}).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})
