"""MCP over streamable HTTP at /mcp on a real uvicorn server, old and new protocols."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client
from servers import LOOPBACK

from .scan_loop import agent_loop

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_agent_loop_over_http(http_server, fake_bin, shared_dir: Path, mode: str) -> None:  # type: ignore[no-untyped-def]
    fake_bin.configure(
        kubescape_report=shared_dir / "fixtures/kubescape/defectdojo/many_findings.json", sleep=1.2
    )
    manifests = str(shared_dir / "fixtures/manifests/kubescape-examples-2022")
    async with Client(http_server.base_url + "/mcp", mode=mode) as client:  # type: ignore[arg-type]
        outcome = await agent_loop(client, manifests)
    assert outcome["findings"] > 100


def test_2025_06_18_initialize_over_http(http_server) -> None:  # type: ignore[no-untyped-def]
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


def test_dns_rebinding_protection(http_server) -> None:  # type: ignore[no-untyped-def]
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json", "Host": "evil.example.com"}
    r = LOOPBACK.post(http_server.base_url + "/mcp", headers=headers, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, timeout=10)
    assert r.status_code == 421
