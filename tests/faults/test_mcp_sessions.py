"""MCP streamable-HTTP sessions are bounded (issue 21): idle ones expire, and abandoned ones
cannot grow the server's memory without limit (before: 20,000 abandoned sessions added 372 MB)."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from servers import HttpServer, start_http_server, stop_server

from .conftest import rss_kib, wait_for

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "abandon", "version": "1"}},
}
INITIALIZE_BODY = json.dumps(INITIALIZE).encode()


def open_session(client: httpx.Client) -> str:
    response = client.post("/mcp", headers=ACCEPT, json=INITIALIZE)
    assert response.status_code == 200, response.text
    return response.headers["mcp-session-id"]


def ping_status(client: httpx.Client, session_id: str) -> int:
    headers = {**ACCEPT, "mcp-session-id": session_id, "mcp-protocol-version": "2025-11-25"}
    return client.post("/mcp", headers=headers, json={"jsonrpc": "2.0", "id": 2, "method": "ping"}).status_code


@pytest.fixture(scope="module")
def _shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    tmp = tmp_path_factory.mktemp("sessions")
    env = {"MCP_KSCAN_DATA_DIR": str(tmp / "data"), "MCP_KSCAN_MCP_SESSION_IDLE_TIMEOUT": "3",
           "MCP_KSCAN_MCP_MAX_SESSIONS": "20", "MCP_KSCAN_SHUTDOWN_GRACE": "1", "MCP_KSCAN_KILL_GRACE": "1",
           # Longer than the flood's pauses and the tests' runs: the server never closes a client's
           # idle connection as that client sends on it (an httpx.ReadError mid-flood, seen in CI).
           "MCP_KSCAN_HTTP_KEEPALIVE_TIMEOUT": "60"}
    server = start_http_server(env, tmp)
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture
def shared(_shared_server: HttpServer) -> Iterator[tuple[HttpServer, list[str]]]:
    """The module's server (idle timeout 3 s, at most 20 sessions) with no session open; the test
    puts the ids of the sessions it opens in the list, and they are ended after it."""
    opened: list[str] = []
    yield _shared_server, opened
    with httpx.Client(base_url=_shared_server.base_url, timeout=60) as client:
        for session_id in opened:
            client.delete("/mcp", headers={**ACCEPT, "mcp-session-id": session_id, "mcp-protocol-version": "2025-11-25"})


def test_an_idle_session_expires_and_a_busy_one_does_not(shared: tuple[HttpServer, list[str]]) -> None:
    server, opened = shared
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        idle = open_session(client)
        busy = open_session(client)
        opened.append(busy)
        # The busy session is used every half second; the idle one is left alone until it is gone.
        deadline = time.monotonic() + 60
        while not _expired(server, idle):
            assert ping_status(client, busy) == 200, "a session in use must not expire"
            assert time.monotonic() < deadline, "the idle session never expired"
            time.sleep(0.5)
        assert ping_status(client, idle) == 404, "an expired session answers 404 (the client starts a new one)"
        assert ping_status(client, busy) == 200
        assert "idle timeout" in server.log()


def _expired(server: HttpServer, session_id: str) -> bool:
    """Read from the server's log, so the check itself does not touch the idle session."""
    return f"Session {session_id} idle timeout" in server.log()


@pytest.mark.slow
def test_abandoned_sessions_keep_memory_bounded(shared: tuple[HttpServer, list[str]]) -> None:
    """640 sessions opened and never closed, against a cap of 20 and a 3 s idle timeout.

    Abandoned sessions expire, and past the cap a new one is refused (503) until some do, so
    memory is bounded by the cap, not by how many a client opens. The bound does not depend on
    the count, so the count is only what makes a leak plain: the SDK keeps ~38 KiB per open
    session, and the same flood with no cap and no expiry (MCP_KSCAN_MCP_MAX_SESSIONS=1000000,
    MCP_KSCAN_MCP_SESSION_IDLE_TIMEOUT=3600) grows the server by ~24 MiB. The flood is paced over
    about two idle timeouts, so the cap is filled, expired and filled again (expired sessions must
    give their memory back, not only live ones stay few), and no session is expected to outlive it.
    The openers are stdlib HTTP clients in threads: httpx's async client spent 3 CPU s on the
    800 requests, as much as the server did.
    """
    server, opened = shared
    statuses: dict[int, int] = {}
    created: list[str] = []
    lock = threading.Lock()
    total, warm_up, openers = 640, 160, 16  # multiples of the openers

    def opener(count: int, pause: float) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        try:
            for _ in range(count):
                conn.request("POST", "/mcp", body=INITIALIZE_BODY, headers=ACCEPT)
                response = conn.getresponse()
                response.read()
                with lock:
                    statuses[response.status] = statuses.get(response.status, 0) + 1
                    if response.status == 200:
                        created.append(response.headers["mcp-session-id"])
                time.sleep(pause)
        finally:
            conn.close()

    def flood(n: int, seconds: float) -> None:
        threads = [threading.Thread(target=opener, args=(n // openers, seconds * openers / n)) for _ in range(openers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not any(thread.is_alive() for thread in threads), "an opener hung"

    try:
        flood(warm_up, 1.5)  # allocator arenas, SDK caches
        before = rss_kib(server.process.pid)
        flood(total, 6.0)
        after = rss_kib(server.process.pid)
        assert sum(statuses.values()) == total + warm_up
        assert set(statuses) <= {200, 503}, statuses
        assert statuses.get(503), f"the cap of 20 was never reached ({statuses})"
        grown = after - before
        # 20 live sessions at most (~1 MiB); unbounded, the 640 would hold ~24 MiB.
        assert grown < 8 * 1024, f"RSS grew by {grown} KiB over {total} abandoned sessions ({statuses})"
        with httpx.Client(base_url=server.base_url, timeout=60) as client:

            def new_session() -> str | None:
                response = client.post("/mcp", headers=ACCEPT, json=INITIALIZE)
                return response.headers["mcp-session-id"] if response.status_code == 200 else None

            opened.append(wait_for(new_session, timeout=60, what="a new session once abandoned ones expired"))
    finally:
        opened.extend(created)  # ended after the test (404 for the expired ones): the next test finds none open


def test_past_the_session_cap_a_new_session_is_503_until_one_ends(shared: tuple[HttpServer, list[str]]) -> None:
    server, opened = shared
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        sessions = [open_session(client) for _ in range(20)]
        opened.extend(sessions[1:])
        refused = client.post("/mcp", headers=ACCEPT, json=INITIALIZE)
        assert refused.status_code == 503 and "Too many open sessions" in refused.text
        assert ping_status(client, sessions[0]) == 200, "open sessions are unaffected"
        ended = client.delete("/mcp", headers={**ACCEPT, "mcp-session-id": sessions[0],
                                               "mcp-protocol-version": "2025-11-25"})
        assert ended.status_code == 200
        opened.append(open_session(client))
