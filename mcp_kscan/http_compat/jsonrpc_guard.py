"""A JSON-RPC request with a malformed id gets a JSON-RPC error, not a silent 202.

MCP requires a request id that is a string or an integer (never null). The SDK's message model
reads ``{"id": null, "method": ...}`` (or an object or array id) as a notification, answers 202
Accepted and never replies, so the caller waits forever. This ASGI wrapper in front of the MCP
app answers such a POST with HTTP 400 and a JSON-RPC "Invalid Request" error (id null, as
JSON-RPC 2.0 prescribes when the id cannot be read). Everything else passes through unchanged.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

INVALID_REQUEST = -32600


def bad_id(message: Any) -> str | None:
    """Why the id of this request is unusable (its JSON type), or None when it is fine or absent."""
    if not isinstance(message, dict) or "method" not in message or "id" not in message:
        return None
    value = message["id"]
    if type(value) in (str, int):
        return None
    return {type(None): "null", dict: "an object", list: "an array", bool: "a boolean", float: "a fractional number"}.get(
        type(value), type(value).__name__
    )


def invalid_request_body(why: str) -> bytes:
    error = {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": INVALID_REQUEST, "message": f"Invalid Request: id must be a string or an integer, not {why}"},
    }
    return json.dumps(error).encode()


class JsonRpcIdGuard:
    """Reads a POST body (up to ``max_body_bytes``), refuses bad ids, and replays the body to ``app``."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        # Read the body, but never more than the MCP app itself accepts (it answers 413 past that).
        read: list[Message] = []
        size = 0
        complete = False
        while size <= self.max_body_bytes:
            message = await receive()
            read.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                complete = True
                break
        if complete:
            why = self._why(b"".join(m.get("body", b"") for m in read))
            if why is not None:
                await self._refuse(send, why)
                return

        async def replay() -> Message:
            return read.pop(0) if read else await receive()

        await self.app(scope, replay, send)

    @staticmethod
    def _why(body: bytes) -> str | None:
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):
            return None  # the MCP app answers a parse error (or its own limit) itself
        messages = parsed if isinstance(parsed, list) else [parsed]
        for message in messages:
            why = bad_id(message)
            if why is not None:
                return why
        return None

    @staticmethod
    async def _refuse(send: Send, why: str) -> None:
        body = invalid_request_body(why)
        await send(
            {
                "type": "http.response.start",
                "status": 400,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
