"""Bearer-token auth on every API path, open health probes, the non-loopback start rules and
MCP's DNS-rebinding protection on a non-loopback bind."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest
from rest_helpers import ServerFactory, free_port, server_factory  # noqa: F401 (fixtures)

TOKEN = "test-token-5f2c9a"
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}

PROTECTED = [
    ("GET", "/v1/status"),
    ("GET", "/v1/results"),
    ("DELETE", "/v1/results"),
    ("POST", "/v1/scan"),
    ("DELETE", "/v1/scan"),
    ("GET", "/v1/metrics"),
    ("POST", "/api/tools/kube-bench"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("POST", "/mcp"),
]


@pytest.mark.parametrize("variable", ["MCP_KSCAN_TOKEN", "KS_API_TOKEN"])
def test_token_required(server_factory: ServerFactory, fake_bin, variable: str) -> None:  # type: ignore[no-untyped-def]
    server = server_factory({variable: TOKEN})
    c = server.client
    for method, path in PROTECTED:
        r = c.request(method, path, content=b"{}")
        assert r.status_code == 401, (method, path)
        assert r.headers["www-authenticate"].startswith("Bearer")
        wrong = c.request(method, path, content=b"{}", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
    assert fake_bin.starts() == []  # nothing ran without the token
    assert c.get("/livez").status_code == 200
    assert c.get("/readyz").status_code == 200
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert c.get("/v1/status", headers=auth).json() == {"id": "", "type": "notBusy"}
    assert c.get("/openapi.json", headers=auth).status_code == 200
    r = c.post("/v1/scan", params={"wait": "true"}, content=b"{}", headers=auth)
    assert r.status_code == 200 and r.json()["type"] == "v1results"
    assert TOKEN not in server.log()


def test_no_token_means_open(server_factory: ServerFactory) -> None:
    server = server_factory()
    assert server.client.get("/v1/status").status_code == 200
    assert server.client.get("/metrics").status_code == 200


def test_refuses_non_loopback_without_token(fake_bin, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if k not in ("MCP_KSCAN_TOKEN", "KS_API_TOKEN")}
    env.update(fake_bin.env)
    r = subprocess.run(
        [sys.executable, "-m", "mcp_kscan", "serve", "--transport", "http", "--host", "0.0.0.0", "--port", str(free_port())],
        env=env, capture_output=True, text=True, timeout=30,
    )
    assert r.returncode == 2
    assert "refusing to listen on 0.0.0.0 without a token" in r.stderr


def test_allow_unauthenticated_starts(server_factory: ServerFactory) -> None:
    server = server_factory(None, "--host", "0.0.0.0", "--allow-unauthenticated")
    assert server.client.get("/v1/status").status_code == 200


def test_non_loopback_bind_keeps_dns_rebinding_protection(server_factory: ServerFactory) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    server = server_factory({"MCP_KSCAN_TOKEN": TOKEN}, "--host", "0.0.0.0")
    evil = httpx.post(server.base_url + "/mcp", json=PING, headers={**MCP_HEADERS, **auth, "Host": "evil.example.com"}, timeout=10)
    assert evil.status_code == 421
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    ok = httpx.post(server.base_url + "/mcp", json=init, headers={**MCP_HEADERS, **auth}, timeout=10)
    assert ok.status_code == 200, ok.text
    assert httpx.post(server.base_url + "/mcp", json=init, headers=MCP_HEADERS, timeout=10).status_code == 401
