"""Run the HTTP app with uvicorn (``mcp-kscan serve --transport http``)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from mcp_kscan.heap import freeze_startup_heap
from mcp_kscan.http_compat.app import build_app
from mcp_kscan.http_compat.connections import ConnectionLimits, protocol_class
from mcp_kscan.settings import Settings


class _Server(uvicorn.Server):
    """uvicorn, except that a SIGTERM/SIGINT it handled gracefully ends with exit status 0, and
    that once started it freezes its start-up heap (``heap``).

    uvicorn re-raises the captured signal after shutdown, so the process died of SIGTERM
    (status -15) even though our lifespan had drained the scans and recorded the cancelled ones;
    supervisors read that as a crash.
    """

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        freeze_startup_heap()  # after the lifespan: the store, the manager and the MCP session manager run

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()


def run_http(settings: Settings, host: str, port: int, allowed_hosts: list[str]) -> None:
    """One server process on ``host:port`` (``--workers`` above 1: ``http_compat.workers``)."""
    _Server(_config(settings, host, allowed_hosts, port=port)).run()


def serve_on(settings: Settings, host: str, allowed_hosts: list[str], sock: socket.socket) -> None:
    """One worker of ``--workers N``: the same server, on a socket its parent bound."""
    _Server(_config(settings, host, allowed_hosts, port=sock.getsockname()[1])).run(sockets=[sock])


def _config(settings: Settings, host: str, allowed_hosts: list[str], port: int) -> uvicorn.Config:
    app = build_app(settings, host=host, allowed_hosts=allowed_hosts)
    # log_config=None keeps our stderr handler (with secret scrubbing) in charge of uvicorn's logs.
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        timeout_graceful_shutdown=int(settings.shutdown_grace_s) + 5,
        http=protocol_class(ConnectionLimits.from_settings(settings)),
        timeout_keep_alive=settings.http_keepalive_timeout_s,  # type: ignore[arg-type]  # any number works
    )
