"""Real servers for end-to-end tests: a stdio subprocess, and uvicorn on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class HttpServer:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_http_server(env: dict[str, str], tmp_path: Path, *extra: str, ready_path: str = "/readyz") -> HttpServer:
    """``python -m mcp_kscan serve --transport http`` as a real subprocess; waits for ``ready_path`` (200)."""
    port = free_port()
    log_path = tmp_path / f"server-{port}.log"
    full_env = {**os.environ, **env}
    process = subprocess.Popen(
        [sys.executable, "-m", "mcp_kscan", "serve", "--transport", "http", "--host", "127.0.0.1", "--port", str(port), *extra],
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
            if httpx.get(base + ready_path, timeout=1).status_code == 200:
                return HttpServer(base, process, log_path)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server did not become ready:\n{log_path.read_text()}")


def stop_server(server: HttpServer) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(20)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(5)


@pytest.fixture
def http_server(fake_bin, tmp_path: Path) -> Iterator[HttpServer]:  # type: ignore[no-untyped-def]
    server = start_http_server(fake_bin.env, tmp_path)
    try:
        yield server
    finally:
        stop_server(server)
