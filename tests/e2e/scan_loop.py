"""The loop an agent runs, shared by the stdio and HTTP end-to-end tests."""

from __future__ import annotations

import json
from typing import Any

import anyio
from mcp import Client

from mcp_kscan.tools import TOOL_NAMES


async def agent_loop(client: Client, manifests: str) -> dict[str, Any]:
    """list tools → scan with wait → scan without wait, poll → page findings to the end → progress."""
    tools = {t.name for t in (await client.list_tools()).tools}
    assert tools == set(TOOL_NAMES)

    waited = await client.call_tool("kube_bench", {"targets": ["node"], "wait_seconds": 30})
    assert not waited.is_error, waited.content
    assert waited.structured_content["status"] == "succeeded"

    started = await client.call_tool(
        "kubescape_scan", {"engine": "kubescape", "paths": [manifests], "wait_seconds": 0}
    )
    assert not started.is_error, started.content
    scan_id = started.structured_content["scan_id"]
    with anyio.fail_after(60):
        while True:
            status = await client.call_tool("scan_status", {"scan_id": scan_id})
            if status.structured_content["status"] not in ("queued", "running"):
                break
            await anyio.sleep(0.2)
    assert status.structured_content["status"] == "succeeded", status.structured_content

    pages = 0
    seen = 0
    cursor = None
    total = None
    while True:
        args: dict[str, Any] = {"scan_id": scan_id, "view": "findings", "limit": 50}
        if cursor:
            args["cursor"] = cursor
        page = await client.call_tool("get_results", args)
        assert not page.is_error, page.content
        assert len(json.dumps(page.structured_content)) < 20_000
        total = page.structured_content["total_matching"]
        seen += len(page.structured_content["findings"])
        pages += 1
        cursor = page.structured_content["next_cursor"]
        if not cursor:
            break
    assert seen == total and pages >= 2

    updates: list[float] = []

    async def on_progress(progress: float, total_: float | None, message: str | None) -> None:
        updates.append(progress)

    slow = await client.call_tool(
        "kube_bench", {"wait_seconds": 30, "timeout_seconds": 60, "targets": ["master"]}, progress_callback=on_progress
    )
    assert slow.structured_content["status"] == "succeeded"
    assert updates, "no progress notifications arrived"
    return {"scan_id": scan_id, "pages": pages, "findings": seen, "progress": len(updates)}
