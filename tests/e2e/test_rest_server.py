"""The REST API on a real uvicorn process: what the in-process tests (tests/http_compat) cannot see.

The bind-address rules (refusing a non-loopback address without a token), DNS-rebinding protection
on 0.0.0.0, what the server process writes to its log (never the token, never an access key). The read-then-delete of
/v1/results is tested in-process (tests/http_compat/test_rest_v1.py), where nothing delays the next request.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import FakeBin, InProcessCli, make_fake_bin
from servers import LOOPBACK, HttpServer, start_http_server, stop_server

from mcp_kscan.settings import Settings

from .conftest import free_port

TOKEN = "test-token-5f2c9a"
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HttpServer, FakeBin]]:
    """One server with a token, bound to 0.0.0.0 (reached on loopback): the log test and the
    DNS-rebinding test each read only what their own requests did."""
    tmp = tmp_path_factory.mktemp("rest-token")
    fake_bin = make_fake_bin(tmp)
    env = {**fake_bin.env, "MCP_KSCAN_TOKEN": TOKEN, "MCP_KSCAN_SHUTDOWN_GRACE": "1", "MCP_KSCAN_KILL_GRACE": "1"}
    server = start_http_server(env, tmp, "--host", "0.0.0.0", drop_env=("KS_API_TOKEN",))
    try:
        yield server, fake_bin
    finally:
        stop_server(server)


def test_token_and_access_key_stay_out_of_the_log(token_server: tuple[HttpServer, FakeBin]) -> None:
    server, fake_bin = token_server
    assert LOOPBACK.get(server.base_url + "/v1/status", timeout=10).status_code == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = LOOPBACK.post(server.base_url + "/v1/scan", params={"wait": "true"}, headers=auth, timeout=30,
                      json={"accessKey": "5ec7e7a1-0b1c-4d2e-8f3a-9b8c7d6e5f40", "account": "acct-9"})
    assert r.status_code == 200 and r.json()["type"] == "v1results", r.text
    start = fake_bin.starts("kubescape")[-1]
    assert "5ec7e7a1-0b1c-4d2e-8f3a-9b8c7d6e5f40" not in " ".join(start["argv"])
    assert start["env"].get("KS_ACCESS_KEY") == "5ec7e7a1-0b1c-4d2e-8f3a-9b8c7d6e5f40"
    log = server.log()
    assert "/v1/scan" in log  # the log is the real one, access lines included
    assert TOKEN not in log and "5ec7e7a1-0b1c-4d2e-8f3a-9b8c7d6e5f40" not in log


def test_refuses_non_loopback_without_token(fake_bin) -> None:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if k not in ("MCP_KSCAN_TOKEN", "KS_API_TOKEN")}
    env.update(fake_bin.env)
    r = subprocess.run(
        [sys.executable, "-m", "mcp_kscan", "serve", "--transport", "http", "--host", "0.0.0.0", "--port", str(free_port())],
        env=env, capture_output=True, text=True, timeout=30,
    )
    assert r.returncode == 2
    assert "refusing to listen on 0.0.0.0 without a token" in r.stderr


def test_allow_unauthenticated_serves_on_0_0_0_0(cli_main: InProcessCli, fake_bin: FakeBin,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """``--allow-unauthenticated`` lifts the refusal above: ``serve`` goes on to serve 0.0.0.0 with no
    token, and logs who can use it. Through ``cli.main`` with the HTTP server stubbed: that a 0.0.0.0
    bind serves is token_server's to show, and that an app without a token answers requests without
    one is tests/http_compat's (a third real server here cost ~1.5 CPU s)."""
    import mcp_kscan.http_compat.serve

    served: list[tuple[Settings, dict[str, Any]]] = []
    monkeypatch.setattr(mcp_kscan.http_compat.serve, "run_http", lambda settings, **kw: served.append((settings, kw)))
    env = {k: v for k, v in os.environ.items() if k not in ("MCP_KSCAN_TOKEN", "KS_API_TOKEN")}
    done = cli_main("serve", "--transport", "http", "--host", "0.0.0.0", "--port", str(free_port()),
                    "--allow-unauthenticated", env={**env, **fake_bin.env})
    assert done.returncode == 0, done.stderr
    ((settings, options),) = served
    assert options["host"] == "0.0.0.0" and settings.token is None
    assert "anyone who can reach the port" in done.stderr, done.stderr


def test_non_loopback_bind_keeps_dns_rebinding_protection(token_server: tuple[HttpServer, FakeBin]) -> None:
    server, _ = token_server
    auth = {"Authorization": f"Bearer {TOKEN}"}
    evil = LOOPBACK.post(server.base_url + "/mcp", json=PING, headers={**MCP_HEADERS, **auth, "Host": "evil.example.com"}, timeout=10)
    assert evil.status_code == 421
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    ok = LOOPBACK.post(server.base_url + "/mcp", json=init, headers={**MCP_HEADERS, **auth}, timeout=10)
    assert ok.status_code == 200, ok.text
    assert LOOPBACK.post(server.base_url + "/mcp", json=init, headers=MCP_HEADERS, timeout=10).status_code == 401
