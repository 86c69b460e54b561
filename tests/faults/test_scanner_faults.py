"""A misbehaving scanner, through the MCP tools in process: every fault ends in a recorded,
explained final state, and nothing of the scanner's process tree survives."""

from __future__ import annotations

import os
from typing import Any

import pytest
from mcp import Client

from mcp_kscan.server import build_server

from .conftest import alive, wait_gone

pytestmark = pytest.mark.anyio

KS = {"engine": "kubescape", "wait_seconds": 30}


async def _scan(client: Client, **args: Any) -> dict[str, Any]:
    result = await client.call_tool("kubescape_scan", {**KS, **args})
    assert not result.is_error, result.content
    return result.structured_content  # type: ignore[return-value]


async def test_hang_timeout_kills_whole_tree(kscan_settings, fake_bin) -> None:  # type: ignore[no-untyped-def]
    fake_bin.configure(mode="hang_with_child")
    async with Client(build_server()) as client:
        data = await _scan(client, timeout_seconds=1)
    assert data["status"] == "timed_out", data
    assert "did not finish within" in data["error"]
    start = fake_bin.starts("kubescape")[-1]
    grandchildren = [r["pid"] for r in fake_bin.records() if r.get("event") == "grandchild"]
    assert grandchildren, "the fake did not fork"
    for pid in [start["pid"], *grandchildren]:
        assert wait_gone(pid), f"pid {pid} survived the timeout"


@pytest.mark.parametrize(
    ("mode", "expect"),
    [
        ("crash", "panic: runtime error"),
        ("garbage", "not valid JSON"),
        ("empty", "wrote no report"),
        ("error", "failed (exit 1)"),
    ],
)
async def test_bad_output_is_a_failed_scan(kscan_settings, fake_bin, mode: str, expect: str) -> None:  # type: ignore[no-untyped-def]
    fake_bin.configure(mode=mode)
    async with Client(build_server()) as client:
        data = await _scan(client)
        assert data["status"] == "failed", data
        assert expect in data["error"]
        assert "Traceback" not in data["error"] and str(fake_bin.bin_dir) not in data["error"]
        # The server keeps serving: the next, healthy scan succeeds.
        fake_bin.configure(mode=None)
        assert (await _scan(client))["status"] == "succeeded"


async def test_kube_bench_crash_and_garbage(kscan_settings, fake_bin) -> None:  # type: ignore[no-untyped-def]
    async with Client(build_server()) as client:
        for mode in ("crash", "garbage", "empty"):
            fake_bin.configure(mode=mode)
            r = await client.call_tool("kube_bench", {"executor": "local", "wait_seconds": 30})
            assert not r.is_error, r.content
            assert r.structured_content["status"] == "failed", (mode, r.structured_content)
            assert r.structured_content["error"]


async def test_huge_output_is_capped_in_process(kscan_settings, fake_bin, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MCP_KSCAN_OUTPUT_CAP_BYTES", str(1024 * 1024))
    import mcp_kscan.settings

    mcp_kscan.settings.configure(None)
    fake_bin.configure(mode="huge", huge_mb=8)
    async with Client(build_server()) as client:
        data = await _scan(client)
        r = await client.call_tool("kube_bench", {"executor": "local", "wait_seconds": 30})
    assert data["status"] == "failed" and "exceeds the output cap" in data["error"]
    assert r.structured_content["status"] == "failed" and "exceeds the output cap" in r.structured_content["error"]


async def test_binary_disappears_between_scans(kscan_settings, fake_bin, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """First via the configured path, then via PATH: a clear error, then it works again."""
    hidden = fake_bin.bin_dir / "kubescape.hidden"
    async with Client(build_server()) as client:
        assert (await _scan(client))["status"] == "succeeded"
        os.rename(fake_bin.kubescape, hidden)
        try:
            r = await client.call_tool("kubescape_scan", KS)
            assert r.is_error
            text = r.content[0].text  # type: ignore[union-attr]
            assert "kubescape" in text and "MCP_KSCAN_KUBESCAPE_PATH" in text
            assert str(fake_bin.bin_dir) not in text
            kb = fake_bin.bin_dir / "kube-bench"
            os.rename(kb, fake_bin.bin_dir / "kube-bench.hidden")
            r = await client.call_tool("kube_bench", {"executor": "local", "wait_seconds": 30})
            assert r.structured_content["status"] == "failed"
            assert str(fake_bin.bin_dir) not in r.structured_content["error"]
            os.rename(fake_bin.bin_dir / "kube-bench.hidden", kb)
        finally:
            os.rename(hidden, fake_bin.kubescape)
        assert (await _scan(client))["status"] == "succeeded"
    # On PATH only (a server started without MCP_KSCAN_KUBESCAPE_PATH): found, then gone from PATH.
    monkeypatch.delenv("MCP_KSCAN_KUBESCAPE_PATH")
    monkeypatch.setenv("PATH", f"{fake_bin.bin_dir}{os.pathsep}{os.environ['PATH']}")
    import mcp_kscan.settings

    mcp_kscan.settings.configure(None)
    async with Client(build_server()) as client:
        assert (await _scan(client))["status"] == "succeeded"
        monkeypatch.setenv("PATH", "/usr/bin:/bin")
        r = await client.call_tool("kubescape_scan", KS)
        assert r.is_error and "not installed" in r.content[0].text  # type: ignore[union-attr]
        r = await client.call_tool("kubescape_scan", {**KS, "engine": "auto"})
        assert r.structured_content["engine"] == "builtin"  # auto falls back to the built-in engine
        assert all(not alive(s["pid"]) for s in fake_bin.starts())
