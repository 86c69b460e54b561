"""MCP over streamable HTTP at /mcp on a real uvicorn server, old and new protocols."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeBin, make_fake_bin
from mcp.types import ListRootsResult, Root
from servers import (
    LOOPBACK,
    HttpServer,
    mcp_http_client,
    start_http_server,
    stop_server,
)

from .scan_loop import agent_loop

pytestmark = pytest.mark.anyio

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


@pytest.fixture(scope="module")
def fake_bin(tmp_path_factory: pytest.TempPathFactory) -> FakeBin:
    return make_fake_bin(tmp_path_factory.mktemp("mcp-http"))


@pytest.fixture(scope="module")
def http_server(fake_bin: FakeBin) -> Iterator[HttpServer]:
    """One server for the module: each test reads only what its own calls started (scan ids),
    so they need no server of their own, and a start costs ~2 s of CPU."""
    server = start_http_server(fake_bin.env, fake_bin.data_dir.parent)
    try:
        yield server
    finally:
        stop_server(server)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_agent_loop_over_http(http_server: HttpServer, fake_bin: FakeBin, shared_dir: Path, mode: str) -> None:
    fake_bin.configure(
        kubescape_report=shared_dir / "fixtures/kubescape/defectdojo/many_findings.json", sleep=1.2
    )
    manifests = str(shared_dir / "fixtures/manifests/kubescape-examples-2022")
    async with mcp_http_client(http_server.base_url + "/mcp", mode=mode) as client:
        outcome = await agent_loop(client, manifests)
    assert outcome["findings"] > 100


def test_2025_06_18_initialize_over_http(http_server: HttpServer) -> None:
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    init = LOOPBACK.post(
        http_server.base_url + "/mcp",
        headers=headers,
        json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "old", "version": "1"}}},
        timeout=10,
    )
    assert init.status_code == 200, init.text
    assert "2025-06-18" in init.text
    session = init.headers.get("mcp-session-id")
    assert session


def test_dns_rebinding_protection(http_server: HttpServer) -> None:
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json", "Host": "evil.example.com"}
    r = LOOPBACK.post(http_server.base_url + "/mcp", headers=headers, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, timeout=10)
    assert r.status_code == 421


async def test_relative_paths_resolve_against_roots_over_http(http_server: HttpServer) -> None:
    """Client roots over streamable HTTP: roots/list travels on the tool call's own response stream."""

    async def roots(_ctx: Any) -> ListRootsResult:
        return ListRootsResult(roots=[Root(uri=CORPUS.as_uri(), name="corpus")])

    async with mcp_http_client(http_server.base_url + "/mcp", mode="legacy", list_roots_callback=roots) as client:
        result = await client.call_tool("kubescape_scan", {"engine": "builtin", "paths": ["badpods"], "wait_seconds": 120})
    assert not result.is_error, result.content
    assert result.structured_content["request"]["paths"] == [str(CORPUS / "badpods")]
    assert result.structured_content["status"] == "succeeded"
