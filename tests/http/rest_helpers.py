"""Helpers and fixtures for the REST tests: a real ``mcp-kscan serve --transport http`` per test.

Each test gets its own server, data directory and fakes, so queue and result state never leak
between tests; ``server_factory`` takes extra environment and CLI arguments.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from servers import HttpServer, free_port, start_http_server, stop_server

__all__ = ["Server", "ServerFactory", "free_port", "launch", "stop", "server", "server_factory"]


@dataclass
class Server(HttpServer):
    """A running server plus an httpx client bound to it."""

    client: httpx.Client = field(default_factory=httpx.Client)


def launch(env: dict[str, str], tmp_path: Path, *extra: str, ready_headers: dict[str, str] | None = None) -> Server:
    # Short graces keep shutdowns quick; the developer's shell must not turn auth on.
    drop = [name for name in ("MCP_KSCAN_TOKEN", "KS_API_TOKEN") if name not in env]
    started = start_http_server(
        {"MCP_KSCAN_SHUTDOWN_GRACE": "1", "MCP_KSCAN_KILL_GRACE": "1", **env}, tmp_path, *extra, drop_env=drop
    )
    # Bodies are JSON, as the API requires (a text/plain body is 415: browsers send those without a preflight).
    client = httpx.Client(base_url=started.base_url, timeout=30,
                          headers={"Content-Type": "application/json", **(ready_headers or {})})
    return Server(started.base_url, started.process, started.log_path, client)


def stop(server: Server) -> None:
    server.client.close()
    stop_server(server)


ServerFactory = Callable[..., Server]


@pytest.fixture
def server_factory(fake_bin, tmp_path: Path) -> Iterator[ServerFactory]:  # type: ignore[no-untyped-def]
    started: list[Server] = []

    def make(env: dict[str, str] | None = None, *extra: str, headers: dict[str, str] | None = None) -> Server:
        server = launch({**fake_bin.env, **(env or {})}, tmp_path, *extra, ready_headers=headers)
        started.append(server)
        return server

    try:
        yield make
    finally:
        for server in started:
            stop(server)


@pytest.fixture
def server(server_factory: ServerFactory) -> Server:
    return server_factory()


def wait_not_busy(client: httpx.Client, scan_id: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get("/v1/status", params={"id": scan_id}).json()
        if body["type"] == "notBusy":
            return
        time.sleep(0.05)
    raise AssertionError(f"scan {scan_id} still busy after {timeout} s")


def wait_for(predicate: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")
