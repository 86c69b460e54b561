"""Real servers for end-to-end tests: a stdio subprocess, and uvicorn on a free loopback port.

Only what needs a real process stays here: bind-address rules, DNS-rebinding protection, what the
server writes to its log, MCP over real transports and a fuzzing run. REST behaviour is tested
in-process (tests/http_compat).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from servers import HttpServer, free_port, start_http_server, stop_server

__all__ = ["HttpServer", "RestServer", "RestServerFactory", "free_port", "start_http_server", "stop_server"]


@dataclass
class RestServer(HttpServer):
    """A running server plus an httpx client bound to it."""

    client: httpx.Client = field(default_factory=httpx.Client)


RestServerFactory = Callable[..., RestServer]


@pytest.fixture
def rest_server_factory(fake_bin, tmp_path: Path) -> Iterator[RestServerFactory]:  # type: ignore[no-untyped-def]
    """``rest_server_factory(env, *serve_args)``: ``mcp-kscan serve --transport http`` with the fakes."""
    started: list[RestServer] = []

    def make(env: dict[str, str] | None = None, *extra: str) -> RestServer:
        env = {"MCP_KSCAN_SHUTDOWN_GRACE": "1", "MCP_KSCAN_KILL_GRACE": "1", **fake_bin.env, **(env or {})}
        # The developer's shell must not turn auth on.
        drop = [name for name in ("MCP_KSCAN_TOKEN", "KS_API_TOKEN") if name not in env]
        server = start_http_server(env, tmp_path, *extra, drop_env=drop)
        # Bodies are JSON, as the API requires (a text/plain body is 415: browsers send those without a preflight).
        client = httpx.Client(base_url=server.base_url, timeout=30, headers={"Content-Type": "application/json"})
        rest = RestServer(server.base_url, server.process, server.log_path, client)
        started.append(rest)
        return rest

    try:
        yield make
    finally:
        for server in started:
            server.client.close()
            stop_server(server)
