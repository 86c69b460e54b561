"""Bearer-token auth on every API path (MCP's endpoint included) and open health probes.

Bind-address rules and DNS-rebinding protection need a real socket: tests/e2e/test_rest_server.py.
"""

from __future__ import annotations

import logging

import pytest

from .rest_helpers import RestFactory

pytestmark = pytest.mark.anyio

TOKEN = "test-token-5f2c9a"

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
    ("POST", "/api/v1/fixes"),
]


@pytest.mark.parametrize("variable", ["MCP_KSCAN_TOKEN", "KS_API_TOKEN"])
async def test_token_required(  # type: ignore[no-untyped-def]
    rest_factory: RestFactory, fake_bin, variable: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    c = await rest_factory({variable: TOKEN})
    for method, path in PROTECTED:
        r = await c.request(method, path, content=b"{}")
        assert r.status_code == 401, (method, path)
        assert r.headers["www-authenticate"].startswith("Bearer")
        wrong = await c.request(method, path, content=b"{}", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
    assert fake_bin.starts() == []  # nothing ran without the token
    assert (await c.get("/livez")).status_code == 200
    assert (await c.get("/readyz")).status_code == 200
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert (await c.get("/v1/status", headers=auth)).json() == {"id": "", "type": "notBusy"}
    assert (await c.get("/openapi.json", headers=auth)).status_code == 200
    r = await c.post("/v1/scan", params={"wait": "true"}, content=b"{}", headers=auth)
    assert r.status_code == 200 and r.json()["type"] == "v1results"
    assert caplog.records and TOKEN not in caplog.text


async def test_no_token_means_open(rest_factory: RestFactory) -> None:
    c = await rest_factory()
    assert (await c.get("/v1/status")).status_code == 200
    assert (await c.get("/metrics")).status_code == 200
