"""Bearer-token check in front of the whole HTTP app (REST routes and /mcp alike).

The SDK's own auth is OAuth-shaped and covers only /mcp; one static token, checked here, covers
every route. Health probes stay open so orchestrators can use them without the secret.
"""

from __future__ import annotations

import hmac
import json

from starlette.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS = frozenset({"/livez", "/readyz"})
PROTECTED_PREFIXES = ("/v1/", "/api/", "/metrics", "/mcp", "/openapi.json")


def _protected(path: str) -> bool:
    if path in OPEN_PATHS:
        return False
    return path.startswith(PROTECTED_PREFIXES) or path in ("/v1", "/api")


class BearerTokenMiddleware:
    """Answer 401 with ``WWW-Authenticate: Bearer`` unless the request carries the token."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.token is None or scope["type"] != "http" or not _protected(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        supplied = b""
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, credentials = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    supplied = credentials.strip()
                break
        if supplied and hmac.compare_digest(supplied, self.token):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": "missing or invalid Authorization header"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="mcp-kscan"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
