"""Bounded HTTP connections: uvicorn's httptools protocol with limits a hostile client cannot outgrow.

uvicorn alone keeps a connection open for as long as the client likes while it sends its headers
or body, buffers a header of any size, and accepts connections until the process runs out of file
descriptors (then nobody can connect). Each bound here answers the client and closes:

- request line and headers over ``max_header_bytes``: 431, counted while they arrive, so a
  64 MiB header costs at most one read past the limit;
- headers not complete ``header_timeout_s`` after the request's first byte (or after connecting):
  408, or a silent close when nothing was sent (slow-header and idle-connect attacks);
- a body not complete ``body_timeout_s`` after its headers: 408 (slow-body attacks);
- more than ``max_connections`` open connections: 503. The limit is lowered to the open-file
  limit minus a reserve for the database, scanner pipes and logs.

Idle keep-alive connections are closed by uvicorn's own ``timeout_keep_alive``. Header values
lose trailing whitespace here (RFC 9110 §5.5: a field value excludes surrounding whitespace);
llhttp strips only the leading part, so ``Mcp-Name: tool  `` failed the SDK's header check.

Refusals use a lingering close: write the answer, half-close, and discard what the client still
sends for a moment, so the client reads the answer instead of a connection reset.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from dataclasses import dataclass
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mcp_kscan.settings import Settings

log = logging.getLogger(__name__)

LINGER_S = 1.0
"""How long a refused connection is read and discarded before it is closed."""
LINGER_MAX_BYTES = 256 * 1024
"""A client that sends more than this after being refused is cut off at once (it is not reading)."""
REFUSAL_LOG_EVERY_S = 10.0

_REASONS = {
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}


def fd_reserve(soft_limit: int) -> int:
    """File descriptors kept free of connections: the database, scanner pipes, logs, the listener."""
    return max(64, soft_limit // 8)


@dataclass(frozen=True)
class ConnectionLimits:
    max_header_bytes: int
    header_timeout_s: float
    body_timeout_s: float
    max_connections: int
    linger_budget: int = 0
    """Refused connections that may linger at once, on top of ``max_connections``."""

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        """The configured limits, with the connection limit lowered to fit ``RLIMIT_NOFILE``."""
        max_connections = settings.http_max_connections
        linger_budget = 64
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY:
            linger_budget = fd_reserve(soft) // 2
            fitting = max(1, soft - fd_reserve(soft))
            if fitting < max_connections:
                log.warning(
                    "MCP_KSCAN_HTTP_MAX_CONNECTIONS lowered from %d to %d to fit the open-file limit (%d)",
                    max_connections, fitting, soft,
                )
                max_connections = fitting
        return cls(
            max_header_bytes=settings.http_max_header_bytes,
            header_timeout_s=settings.http_header_timeout_s,
            body_timeout_s=settings.http_body_timeout_s,
            max_connections=max_connections,
            linger_budget=linger_budget,
        )


class _HeadersTooLarge(Exception):
    """Raised from a parser callback: httptools then stops parsing the rest of the data."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus the bounds in ``limits`` (set by :func:`protocol_class`)."""

    limits: ConnectionLimits

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._awaiting_headers = True
        self._header_bytes = 0
        """Bytes received while a request's headers are incomplete: bounds what the parser buffers."""
        self._header_size = 0
        """The current request's line and headers as parsed (a body in the same read is not counted)."""
        self._received_any = False
        self._refused = False
        self._discarded = 0
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        open_now = len(self.connections)
        if open_now > self.limits.max_connections:
            self._warn_refused(open_now - 1)
            # Refused connections linger only while the descriptor reserve has room for them;
            # past that they are answered and closed at once, so they never exhaust descriptors.
            linger = open_now <= self.limits.max_connections + self.limits.linger_budget
            self._refuse(503, "too many open connections; retry shortly", linger=linger)
            return
        self._header_timer = self.loop.call_later(self.limits.header_timeout_s, self._header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            # Lingering: discard until the client closes, the linger timer fires, or too much came.
            self._discarded += len(data)
            if self._discarded > LINGER_MAX_BYTES:
                self.transport.close()
            return
        self._received_any = True
        if self._awaiting_headers:
            self._header_bytes += len(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _HeadersTooLarge):
                self._headers_too_large()
                return
            self._invalid()
            return
        except httptools.HttpParserError:
            self._invalid()
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._awaiting_headers and self._header_bytes > self.limits.max_header_bytes:
            self._headers_too_large()

    def _headers_too_large(self) -> None:
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined request behind a response still being written: no room for an answer.
            self._refused = True
            self.transport.close()
            return
        self._refuse(431, "request headers too large")

    def _invalid(self) -> None:
        msg = "Invalid HTTP request received."
        self.logger.warning(msg)
        self.send_400_response(msg)

    # ------------------------------------------------------------------ parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._awaiting_headers = True
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.limits.header_timeout_s, self._header_timeout)

    def on_url(self, url: bytes) -> None:
        self._header_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_size += len(name) + len(value) + 4
        if self._header_size > self.limits.max_header_bytes:
            raise _HeadersTooLarge
        super().on_header(name, value.rstrip(b" \t"))

    def on_headers_complete(self) -> None:
        if self._header_size > self.limits.max_header_bytes:
            raise _HeadersTooLarge
        self._awaiting_headers = False
        self._header_bytes = self._header_size = 0
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().on_headers_complete()
        if self._expects_body():
            self._body_timer = self.loop.call_later(self.limits.body_timeout_s, self._body_timeout)

    def on_message_complete(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        self._awaiting_headers = True
        self._header_bytes = self._header_size = 0
        super().on_message_complete()

    def _expects_body(self) -> bool:
        for name, value in self.headers:
            if name == b"transfer-encoding" or (name == b"content-length" and value.strip() not in (b"", b"0")):
                return True
        return False

    # ------------------------------------------------------------------ timers

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self._refused or self.transport.is_closing():
            return
        if not self._received_any:
            self.transport.close()  # connected and never spoke: nothing to answer
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # pipelined headers behind a running response: the response is not ours to break
        self._refuse(408, "request headers not received in time")

    def _body_timeout(self) -> None:
        self._body_timer = None
        if self._refused or self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None:
            # The application waiting in receive() gets http.disconnect; what it sends is dropped.
            started = cycle.response_started
            cycle.disconnected = True
            cycle.message_event.set()
            if started:
                self.transport.close()
                return
        self._refuse(408, "request body not received in time")

    def _cancel_timers(self) -> None:
        for timer in (self._header_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = None

    # ------------------------------------------------------------------ refusals

    def _warn_refused(self, open_now: int) -> None:
        """One warning per ``REFUSAL_LOG_EVERY_S`` under a flood, with the count refused since."""
        state = self.server_state
        refused = getattr(state, "kscan_refused", 0) + 1
        now = self.loop.time()
        if now - getattr(state, "kscan_refused_logged_at", float("-inf")) >= REFUSAL_LOG_EVERY_S:
            log.warning(
                "refused %d connection(s): %d open, limit %d (MCP_KSCAN_HTTP_MAX_CONNECTIONS)",
                refused, open_now, self.limits.max_connections,
            )
            state.kscan_refused_logged_at = now  # type: ignore[attr-defined]
            refused = 0
        state.kscan_refused = refused  # type: ignore[attr-defined]

    def _refuse(self, status: int, message: str, linger: bool = True) -> None:
        """Answer ``status`` and close with a lingering close (see the module docstring)."""
        self._refused = True
        self._cancel_timers()
        if self.transport.is_closing():
            return
        body = message.encode() + b"\n"
        head = b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])
        head += b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
        if status == 503:
            head += b"retry-after: 1\r\n"
        head += b"content-length: %d\r\n\r\n" % len(body)
        self.transport.write(head + body)
        if not linger:
            self.transport.close()
            return
        try:
            self.transport.write_eof()
        except (NotImplementedError, OSError, RuntimeError):
            self.transport.close()
            return
        self.loop.call_later(LINGER_S, self.transport.close)


def protocol_class(limits: ConnectionLimits) -> type[BoundedHttpToolsProtocol]:
    """A protocol class bound to ``limits``, for ``uvicorn.Config(http=...)``."""
    return type("KscanHttpProtocol", (BoundedHttpToolsProtocol,), {"limits": limits})
