"""Real HTTP servers for tests: ``python -m mcp_kscan serve --transport http`` on a free loopback port.

Importable from every test module (tests/ is on sys.path through its conftest.py).
"""

from __future__ import annotations

import os
import resource
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import httpx

if TYPE_CHECKING:
    from mcp import Client

    from mcp_kscan.runner.manager import ScanManager
    from mcp_kscan.runner.records import ScanRecord, ScanState

LOOPBACK = httpx.Client(limits=httpx.Limits(max_keepalive_connections=0))
"""For one-off requests to the servers the tests start: like ``httpx.get`` (a new connection each
time, the same default timeout), without building a TLS context for every call. Each ``httpx.get``
makes a client, and each client loads the CA bundle: about 35 ms of CPU, which a readiness poll
every 0.1 s spent while the server it waited for was starting on the same two cores."""


@cache
def _tls() -> ssl.SSLContext:
    """Loaded once a process: each httpx2 client otherwise loads the CA bundle again (~50 ms of
    CPU). The servers here speak plain http on loopback, so the context is never even used."""
    return ssl.create_default_context()


@asynccontextmanager
async def mcp_http_client(url: str, *, headers: Mapping[str, str] | None = None,
                          mode: str = "auto", **client_options: Any) -> AsyncIterator[Client]:
    """``Client(url)`` (the SDK's streamable HTTP client, on connections of its own) without the
    CA-bundle load each ``Client(url)`` makes: a test making a few dozen calls, each on a fresh
    client, spent ~3 CPU s on it."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import (
        MCP_DEFAULT_SSE_READ_TIMEOUT,
        MCP_DEFAULT_TIMEOUT,
    )

    timeout = httpx2.Timeout(MCP_DEFAULT_TIMEOUT, read=MCP_DEFAULT_SSE_READ_TIMEOUT)  # the SDK's own defaults
    async with (httpx2.AsyncClient(verify=_tls(), headers=dict(headers or {}), timeout=timeout) as http,
                Client(streamable_http_client(url, http_client=http), mode=mode, **client_options) as client):
        yield client


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class HttpServer:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_http_server(
    env: dict[str, str],
    tmp_path: Path,
    *extra: str,
    ready_path: str = "/readyz",
    drop_env: Sequence[str] = (),
    memory_limit: int | None = None,
    rlimits: Mapping[int, tuple[int, int]] | None = None,
) -> HttpServer:
    """``python -m mcp_kscan serve --transport http`` as a real subprocess; waits for ``ready_path`` (200).

    The child gets this process's environment plus ``env``, minus the names in ``drop_env``.
    ``memory_limit`` caps its address space (RLIMIT_AS, inherited by the scans it starts), so a
    test feeding it hostile input fails instead of exhausting the machine.
    ``rlimits`` (``{resource.RLIMIT_NOFILE: (256, 256)}``) are set in the child before it starts.
    """
    limits = dict(rlimits or {})
    if memory_limit:
        limits[resource.RLIMIT_AS] = (memory_limit, memory_limit)
    port = free_port()
    log_path = tmp_path / f"server-{port}.log"
    full_env = {k: v for k, v in {**os.environ, **env}.items() if k not in drop_env}
    process = subprocess.Popen(
        [sys.executable, "-m", "mcp_kscan", "serve", "--transport", "http", "--host", "127.0.0.1", "--port", str(port), *extra],
        env=full_env,
        stdout=open(log_path, "ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=(lambda: _set_rlimits(limits)) if limits else None,
    )
    base = f"http://127.0.0.1:{port}"
    # Generous: at a load of 12 on two cores, `serve --workers 3` took 30 s to be ready (four
    # interpreters importing the MCP SDK). A server that fails to start exits, which is seen at once.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log_path.read_text()}")
        try:
            if LOOPBACK.get(base + ready_path, timeout=1).status_code == 200:
                return HttpServer(base, process, log_path)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server did not become ready:\n{log_path.read_text()}")


def _set_rlimits(rlimits: Mapping[int, tuple[int, int]]) -> None:
    for which, limits in rlimits.items():
        resource.setrlimit(which, limits)


def stop_server(server: HttpServer) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(20)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(5)


def alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (exited, waiting to be reaped by its new parent) is dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def group_members(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that are not zombies (read from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                found.append(int(entry))
    return found


async def until_state(
    manager: ScanManager, scan_id: str, want: Collection[ScanState], timeout: float = 120
) -> ScanRecord:
    """The record of ``scan_id`` once it reaches one of ``want``, as ``manager`` (any server on the
    shared database) sees it; fails after ``timeout`` seconds."""
    with anyio.fail_after(timeout):
        while True:
            record = await manager.status(scan_id)
            if record.status in want:
                return record
            await anyio.sleep(0.2)
