"""A scan's secrets are scrubbed from that scan, and nowhere else (issue 20, holes 5 and 6).

Before: any caller's ``accessKey`` became a server-wide redaction string forever, even when the
request was refused with 429: ``127.0.0.1`` blanked client addresses out of the access log and
``json`` turned other callers' commands into ``--***``. And a key the scanner wrote into its
report stayed in the stored report, summary and findings. Against a real server (REST and MCP
over HTTP), the fake Kubescape writing a report that contains the key.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from servers import LOOPBACK, HttpServer, start_http_server, stop_server

from conftest import FakeBin

from .conftest import make_fake_bin

JSON = {"Content-Type": "application/json"}


@dataclass
class Env:
    server: HttpServer
    fake: FakeBin
    tmp: Path

    def post(self, body: dict[str, Any], **params: str) -> httpx.Response:
        return LOOPBACK.post(self.server.base_url + "/v1/scan", params=params, json=body, timeout=60)

    def record(self, scan_id: str) -> dict[str, Any]:
        import sqlite3

        with sqlite3.connect(self.fake.data_dir / "scans.db") as conn:
            row = conn.execute("SELECT command_json, request_json, summary_json FROM scans WHERE scan_id=?",
                               (scan_id,)).fetchone()
        return {"command": json.loads(row[0] or "null"), "request": json.loads(row[1] or "{}"),
                "summary": json.loads(row[2] or "null")}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("redact")
    fake = make_fake_bin(tmp)
    srv = start_http_server(
        {**fake.env, "HOME": str(tmp / "home"), "MCP_KSCAN_MAX_CONCURRENT_SCANS": "1", "MCP_KSCAN_QUEUE_CAPACITY": "0"},
        tmp, drop_env=("MCP_KSCAN_TOKEN", "KS_API_TOKEN", "KS_ACCESS_KEY", "KUBECONFIG"),
    )
    try:
        yield Env(srv, fake, tmp)
    finally:
        stop_server(srv)


@pytest.fixture(scope="module")
async def mcp(env: Env) -> AsyncIterator[Client]:
    async with httpx2.AsyncClient(timeout=60) as hc:
        async with Client(streamable_http_client(env.server.base_url + "/mcp", http_client=hc)) as c:
            yield c


@pytest.mark.anyio
async def test_poison_values_are_refused_and_change_nothing(env: Env, mcp: Client) -> None:
    starts = len(env.fake.starts())
    for key in ("127.0.0.1", "json", "scan", "a", "framework", "--format", "0" * 36, str(uuid.uuid4()) + "x"):
        r = env.post({"accessKey": key}, wait="true")
        assert r.status_code == 400 and "accessKey" in r.text, (key, r.status_code, r.text[:200])
        result = await mcp.call_tool("kubescape_scan", {"access_key": key, "engine": "kubescape", "wait_seconds": 0})
        assert result.is_error
    assert len(env.fake.starts()) == starts
    r = env.post({"targetNames": ["nsa"]}, wait="true", keep="true")
    assert r.status_code == 200, r.text[:300]
    command = env.record(r.json()["id"])["command"]
    assert command[command.index("--format") + 1] == "json", command  # not '--***'
    # The access log still names the client: 127.0.0.1 was never made a secret.
    assert '127.0.0.1' in env.server.log() and "***:" not in env.server.log()


def _report_with(env: Env, secret: str) -> Path:
    """The fake's own report, with ``secret`` in a resource name and a top-level field."""
    r = env.post({"targetNames": ["nsa"]}, wait="true")
    assert r.status_code == 200, r.text[:300]
    text = json.dumps(r.json()["response"]).replace("Deployment/web", f"Deployment/web-{secret}")
    doc = json.loads(text)
    doc["customerGUID"] = secret
    for resource in doc.get("resources") or []:
        resource["object"]["metadata"]["name"] = f"web-{secret}"
    path = env.tmp / f"report-{secret[:8]}.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.anyio
async def test_a_scans_key_is_scrubbed_from_its_report_summary_findings_and_nowhere_else(env: Env, mcp: Client) -> None:
    key = str(uuid.uuid4())
    env.fake.configure(kubescape_report=_report_with(env, key))
    try:
        r = env.post({"accessKey": key, "account": "acct-1"}, wait="true", keep="true")
        assert r.status_code == 200, r.text[:300]
        assert key not in r.text and "web-***" in r.text
        scan_id = r.json()["id"]
        stored = LOOPBACK.get(env.server.base_url + "/v1/results", params={"id": scan_id, "keep": "true"}, timeout=30)
        assert stored.status_code == 200 and key not in stored.text and "web-***" in stored.text
        page = await mcp.call_tool("get_results", {"scan_id": scan_id, "view": "findings"})
        text = json.dumps(page.structured_content)
        assert key not in text and "web-***" in text
        status = await mcp.call_tool("scan_status", {"scan_id": scan_id})
        assert key not in json.dumps(status.structured_content)
        assert key not in json.dumps(env.record(scan_id))
        (start,) = [s for s in env.fake.starts() if s["env"].get("KS_ACCESS_KEY") == key]
        assert key not in " ".join(start["argv"])

        # Another caller's scan of the same report, without that key: nothing of it is hidden.
        r = env.post({"account": key}, wait="true", keep="true")
        assert r.status_code == 200, r.text[:300]
        assert f"web-{key}" in r.text
        other = env.record(r.json()["id"])
        assert key in other["command"], "the key became a server-wide secret"
        page = await mcp.call_tool("get_results", {"scan_id": r.json()["id"], "view": "findings"})
        assert key in json.dumps(page.structured_content)
    finally:
        env.fake.configure(kubescape_report=None)
    db = b"".join(p.read_bytes() for p in env.fake.data_dir.glob("scans.db*"))
    assert key.encode() in db  # the second scan's own data, which is not secret there
    assert key not in env.server.log().replace(f"account {key}", "")


def test_a_refused_request_registers_nothing(env: Env) -> None:
    """429 (queue full): the key of a request that never ran hides nothing afterwards."""
    key = str(uuid.uuid4())
    env.fake.configure(sleep=3)
    try:
        busy = env.post({"targetNames": ["nsa"]})
        assert busy.status_code == 200, busy.text[:200]
        refused = env.post({"accessKey": key})
        assert refused.status_code == 429, refused.text[:200]
        assert key not in refused.text
    finally:
        env.fake.configure(sleep=None)
    deadline = time.monotonic() + 60
    while LOOPBACK.get(env.server.base_url + "/v1/status", timeout=10).json().get("type") == "busy":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    r = env.post({"account": key}, wait="true", keep="true")
    assert r.status_code == 200, r.text[:300]
    assert key in env.record(r.json()["id"])["command"]
