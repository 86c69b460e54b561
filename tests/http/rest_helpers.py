"""Helpers and fixtures for the REST tests: a real ``mcp-kscan serve --transport http`` per test.

Each test gets its own server, data directory and fakes, so queue and result state never leak
between tests; ``server_factory`` takes extra environment and CLI arguments.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    base_url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    client: httpx.Client

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def launch(env: dict[str, str], tmp_path: Path, *extra: str, ready_headers: dict[str, str] | None = None) -> Server:
    port = free_port()
    log_path = tmp_path / f"server-{port}.log"
    full_env = {**os.environ, "MCP_KSCAN_SHUTDOWN_GRACE": "1", "MCP_KSCAN_KILL_GRACE": "1", **env}
    for name in ("MCP_KSCAN_TOKEN", "KS_API_TOKEN"):  # the developer's shell must not turn auth on
        if name not in env:
            full_env.pop(name, None)
    process = subprocess.Popen(
        [sys.executable, "-m", "mcp_kscan", "serve", "--transport", "http", "--host", "127.0.0.1",
         "--port", str(port), *extra],
        env=full_env,
        stdout=open(log_path, "ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log_path.read_text()}")
        try:
            if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                client = httpx.Client(base_url=base, timeout=30, headers=ready_headers or {})
                return Server(base, port, process, log_path, client)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server did not become ready:\n{log_path.read_text()}")


def stop(server: Server) -> None:
    server.client.close()
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(20)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(5)


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
