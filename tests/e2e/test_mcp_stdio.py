"""The real stdio server (``python -m mcp_kscan``) driven by the SDK's client, old and new protocols."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from .scan_loop import agent_loop

pytestmark = pytest.mark.anyio


def _params(fake_bin) -> StdioServerParameters:  # type: ignore[no-untyped-def]
    return StdioServerParameters(command=sys.executable, args=["-m", "mcp_kscan"], env={**fake_bin.env, "PATH": os.environ["PATH"]})


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_agent_loop_over_stdio(fake_bin, shared_dir: Path, mode: str) -> None:  # type: ignore[no-untyped-def]
    fake_bin.configure(
        kubescape_report=shared_dir / "fixtures/kubescape/defectdojo/many_findings.json", sleep=1.2
    )
    manifests = str(shared_dir / "fixtures/manifests/kubescape-examples-2022")
    async with Client(_params(fake_bin), mode=mode) as client:  # type: ignore[arg-type]
        outcome = await agent_loop(client, manifests)
    assert outcome["findings"] > 100


def test_2025_06_18_handshake_and_clean_stdout(fake_bin) -> None:  # type: ignore[no-untyped-def]
    """An older client speaking 2025-06-18 by hand; every stdout line must be JSON-RPC."""
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "old-client", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "kube_bench", "arguments": {"wait_seconds": 20}}},
    ]
    stdin = "".join(json.dumps(m) + "\n" for m in messages)
    env = {**os.environ, **fake_bin.env}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcp_kscan", "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=env,
    )
    # Keep stdin open until the call has answered, then close it to end the session.
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(stdin.encode())
    proc.stdin.flush()
    lines: list[dict] = []
    while True:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(json.loads(line))  # any non-JSON line fails here
        if any(m.get("id") == 3 for m in lines):
            break
    proc.stdin.close()
    proc.wait(20)
    rest = proc.stdout.read()
    for extra in rest.splitlines():
        json.loads(extra)
    by_id = {m["id"]: m for m in lines if "id" in m}
    assert by_id[1]["result"]["protocolVersion"] == "2025-06-18"
    assert {t["name"] for t in by_id[2]["result"]["tools"]} >= {"kube_bench", "kubescape_scan", "get_results"}
    call = by_id[3]["result"]
    assert call["structuredContent"]["status"] == "succeeded"
    assert not call.get("isError")
    for m in lines:
        assert m.get("jsonrpc") == "2.0"
