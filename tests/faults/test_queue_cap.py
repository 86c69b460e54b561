"""The queue cap holds under concurrency, on a real server through real clients (issue 21).

Admission used to check the queue length, await the database insert, and only then append: 200
concurrent submissions all passed the check (a queue depth of 290 with capacity 10). With the
scanner hanging, the two workers take two scans and ten may wait, so exactly 12 are accepted
whatever the interleaving. Four times that many concurrent requests make a leak plain: with the
reservation undone, 34-48 of 48 were accepted over REST and over MCP. The 200-submission flood
runs in-process (tests/runner/test_manager.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from conftest import make_fake_bin
from mcp import Client
from servers import LOOPBACK, HttpServer, start_http_server, stop_server

CAPACITY = 10
WORKERS = 2
REQUESTS = 48
SESSIONS = 12


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    """One server for the module, its scanner hanging: each test starts with no scan queued or
    running, and cancels the ones it got accepted (``_cancel_all``)."""
    tmp = tmp_path_factory.mktemp("queue-cap")
    fake_bin = make_fake_bin(tmp)
    fake_bin.configure(mode="hang")
    env = {
        **fake_bin.env,
        "MCP_KSCAN_QUEUE_CAPACITY": str(CAPACITY),
        "MCP_KSCAN_MAX_CONCURRENT_SCANS": str(WORKERS),
        "MCP_KSCAN_DEFAULT_TIMEOUT": "300",
        "MCP_KSCAN_KILL_GRACE": "0.5",
        "MCP_KSCAN_SHUTDOWN_GRACE": "1",
    }
    started = start_http_server(env, tmp)
    try:
        yield started
    finally:
        stop_server(started)


def _cancel_all(server: HttpServer, scan_ids: list[str]) -> None:
    """Cancel the accepted scans and wait until none is queued or running: the next test's count
    of accepted scans starts from an idle server."""
    for scan_id in scan_ids:
        assert LOOPBACK.delete(server.base_url + "/v1/scan", params={"id": scan_id}, timeout=30).status_code == 200
    deadline = time.monotonic() + 60
    while _gauge(server, "mcp_kscan_queue_depth") + _gauge(server, "mcp_kscan_scans_running"):
        assert time.monotonic() < deadline, "the cancelled scans did not end"
        time.sleep(0.1)


def _gauge(server: HttpServer, name: str) -> int:
    text = LOOPBACK.get(server.base_url + "/metrics", timeout=30).text
    match = re.search(rf"^{name} (\S+)$", text, re.M)
    assert match, f"{name} missing from /metrics"
    return int(float(match.group(1)))


def _assert_bounded(server: HttpServer, accepted: int, refused: int) -> None:
    assert accepted + refused == REQUESTS
    assert accepted == CAPACITY + WORKERS, f"accepted {accepted} of {REQUESTS} with capacity {CAPACITY}"
    assert _gauge(server, "mcp_kscan_queue_depth") + _gauge(server, "mcp_kscan_scans_running") == CAPACITY + WORKERS
    assert _gauge(server, "mcp_kscan_queue_depth") <= CAPACITY


def test_concurrent_rest_scans_respect_the_queue_capacity(server: HttpServer) -> None:
    assert _gauge(server, "mcp_kscan_queue_depth") + _gauge(server, "mcp_kscan_scans_running") == 0
    statuses: list[int] = []
    bodies: list[Any] = []

    async def post(client: httpx.AsyncClient) -> None:
        response = await client.post("/v1/scan", json={"targetNames": ["nsa"]})
        statuses.append(response.status_code)
        bodies.append(response.json())

    async def main() -> None:
        limits = httpx.Limits(max_connections=REQUESTS)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=120, limits=limits) as client:
            async with anyio.create_task_group() as tg:
                for _ in range(REQUESTS):
                    tg.start_soon(post, client)

    try:
        anyio.run(main)
        assert set(statuses) <= {200, 429}, statuses
        refused = [b for s, b in zip(statuses, bodies) if s == 429]
        assert all("queue is full" in str(b) for b in refused), refused[:1]
        _assert_bounded(server, statuses.count(200), len(refused))
    finally:
        _cancel_all(server, [b["id"] for s, b in zip(statuses, bodies) if s == 200])


def test_concurrent_mcp_scans_respect_the_queue_capacity(server: HttpServer) -> None:
    """Twelve MCP sessions (real SDK clients over streamable HTTP) with four concurrent calls each:
    the submissions race across sessions (six sessions of eight calls did not show the leak)."""
    assert _gauge(server, "mcp_kscan_queue_depth") + _gauge(server, "mcp_kscan_scans_running") == 0
    outcomes: list[tuple[bool, str]] = []
    accepted: list[str] = []

    async def call(client: Client) -> None:
        result = await client.call_tool("kubescape_scan", {"engine": "kubescape", "wait_seconds": 0})
        text = " ".join(getattr(c, "text", "") for c in result.content)
        outcomes.append((bool(result.is_error), text))
        if not result.is_error and result.structured_content:
            accepted.append(result.structured_content["scan_id"])

    async def session() -> None:
        async with Client(server.base_url + "/mcp") as client:
            async with anyio.create_task_group() as tg:
                for _ in range(REQUESTS // SESSIONS):
                    tg.start_soon(call, client)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(SESSIONS):
                tg.start_soon(session)

    try:
        anyio.run(main)
        refused = [text for is_error, text in outcomes if is_error]
        assert all("queue is full" in text for text in refused), refused[:1]
        _assert_bounded(server, len(outcomes) - len(refused), len(refused))
    finally:
        _cancel_all(server, accepted)
