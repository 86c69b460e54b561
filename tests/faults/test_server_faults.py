"""Faults of the server itself, on real server processes: 96 MiB of scanner output, kill -9
mid-scan and restart, clients that hang up, SIGTERM (HTTP and stdio)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from conftest import FakeBin, make_fake_bin
from e2e.conftest import HttpServer, start_http_server, stop_server
from mcp import Client
from servers import LOOPBACK

from .conftest import (
    ServerSlot,
    alive,
    kill_leftovers,
    rss_kib,
    scan_rows,
    wait_for,
    wait_gone,
)

FAST = {"MCP_KSCAN_KILL_GRACE": "0.5", "MCP_KSCAN_SHUTDOWN_GRACE": "1"}


def _env(fake_bin, **extra: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {**fake_bin.env, **FAST, **extra}


async def _call(url: str, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    async with Client(url + "/mcp") as client:
        result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    return result.structured_content  # type: ignore[return-value]


def call(server: HttpServer, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    return anyio.run(_call, server.base_url, tool, args)


SHARED_ENV = {"MCP_KSCAN_OUTPUT_CAP_BYTES": str(4 * 1024 * 1024), "MCP_KSCAN_SHUTDOWN_GRACE": "3",
              "MCP_KSCAN_MAX_CONCURRENT_SCANS": "2"}
"""The module's server: output cap 4 MiB (the huge-output test), shutdown grace 3 s and two scans at
once (the SIGTERM test: one scan finishes within the grace, one does not)."""


@dataclass
class Shared:
    slot: ServerSlot
    fake_bin: FakeBin

    @property
    def server(self) -> HttpServer:
        return self.slot.get()


@pytest.fixture(scope="module")
def _shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    tmp = tmp_path_factory.mktemp("server-faults")
    fake_bin = make_fake_bin(tmp)
    slot = ServerSlot(lambda: start_http_server(_env(fake_bin, **SHARED_ENV), tmp))
    try:
        yield Shared(slot, fake_bin)
    finally:
        slot.stop()


@pytest.fixture
def shared(_shared_server: Shared) -> Shared:
    """The module's server and its fakes, the fakes reset. Each test reads only the scans it
    started. The HTTP tests share one server (4 starts -> 2): the kill -9 test kills it and its
    restart is the module's from then on; the SIGTERM test ends it (a later test gets a new one)."""
    _shared_server.fake_bin.configure(mode=None, sleep=None, huge_mb=None)
    return _shared_server


def test_huge_output_is_capped_and_rss_stays_bounded(shared: Shared) -> None:
    server, fake_bin = shared.server, shared.fake_bin
    call(server, "list_scans", {})  # warm up the MCP path before measuring
    before = rss_kib(server.process.pid)
    fake_bin.configure(mode="huge", huge_mb=96)
    data = call(server, "kube_bench", {"executor": "local", "wait_seconds": 120})
    after = rss_kib(server.process.pid)
    assert data["status"] == "failed" and "exceeds the output cap" in data["error"], data
    assert data["output_truncated"] is True
    # 96 MiB went through the pipe; at most the 4 MiB cap (plus noise: it grew by under 1 MiB)
    # may stay resident. Kept whole, the output alone would be three times the bound.
    assert after - before < 32 * 1024, f"RSS grew from {before} KiB to {after} KiB"
    fake_bin.configure(mode=None)
    assert call(server, "kubescape_scan", {"engine": "kubescape", "wait_seconds": 30})["status"] == "succeeded"


def test_kill_9_mid_scan_then_restart(shared: Shared) -> None:
    server, fake_bin = shared.slot.take(), shared.fake_bin
    pids: list[int] = []
    try:
        done = LOOPBACK.post(server.base_url + "/v1/scan?wait=true&keep=true", json={"targetNames": ["nsa"]}, timeout=30)
        assert done.status_code == 200, done.text
        done_id = done.json()["id"]
        grandchildren_before = len(_grandchildren(fake_bin))
        fake_bin.configure(mode="hang_with_child")
        busy = LOOPBACK.post(server.base_url + "/v1/scan", json={"targetNames": ["mitre"]}, timeout=30).json()
        assert busy["type"] == "busy"
        hung_id = busy["id"]
        grandchild = wait_for(lambda: _grandchildren(fake_bin)[grandchildren_before:], what="the grandchild")[0]
        scanner = fake_bin.starts("kubescape")[-1]["pid"]
        pids = [scanner, grandchild]
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(10)
        # The scanner dies with its server (its parent-death signal); its own child has none and
        # is left in the scanner's process group for the restarted server to kill.
        assert wait_gone(scanner, 30), "the scanner outlived its SIGKILLed server"
        assert alive(grandchild), "the grandchild should outlive a SIGKILLed server"
    finally:
        stop_server(server)
    fake_bin.configure(mode=None)
    restarted = shared.slot.start()
    shared.slot.put(restarted)  # on the same database: the module's server from now on
    try:
        assert wait_gone(grandchild), "start-up left the orphaned scanner's child running"
        hung = call(restarted, "scan_status", {"scan_id": hung_id})
        assert hung["status"] == "interrupted" and "server stopped" in hung["error"]
        kept = call(restarted, "scan_status", {"scan_id": done_id})
        assert kept["status"] == "succeeded" and kept["summary"]
        report = LOOPBACK.get(restarted.base_url + f"/v1/results?id={done_id}&keep=true", timeout=30)
        assert report.status_code == 200 and report.json()["type"] == "v1results"
        assert LOOPBACK.get(restarted.base_url + "/readyz", timeout=5).status_code == 200
    finally:
        kill_leftovers(pids)


def _grandchildren(fake_bin: FakeBin) -> list[int]:
    """The pids of the children the fake scanners forked, oldest first."""
    return [r["pid"] for r in fake_bin.records() if r.get("event") == "grandchild"]


def test_client_disconnects_mid_wait(shared: Shared) -> None:
    server, fake_bin = shared.server, shared.fake_bin
    earlier = {s["scan_id"] for s in call(server, "list_scans", {})["scans"]}
    started_before = len(fake_bin.starts())
    fake_bin.configure(sleep=3)
    with pytest.raises(httpx.ReadTimeout):
        LOOPBACK.post(server.base_url + "/v1/scan?wait=true&keep=true", json={"targetNames": ["nsa"]}, timeout=0.5)

    async def mcp_hangup() -> None:
        async def call() -> None:
            async with Client(server.base_url + "/mcp") as client:
                await client.call_tool("kube_bench", {"executor": "local", "wait_seconds": 30})

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            # Hang up mid-wait: once the call's scan is running, however long a loaded machine
            # took to get there (a fixed 0.7 s hung up before the call was sent at load 13).
            with anyio.fail_after(60):
                while len(fake_bin.starts()) < started_before + 2:
                    await anyio.sleep(0.05)
            tg.cancel_scope.cancel()

    anyio.run(mcp_hangup)

    def finished() -> bool:
        # Read from the database file: an MCP session per poll cost this test a CPU second.
        rows = [row for scan_id, row in scan_rows(fake_bin.data_dir).items() if scan_id not in earlier]
        return len(rows) == 2 and all(status == "succeeded" for status, _ in rows)

    wait_for(finished, timeout=30, what="both scans to finish")
    scans = [s for s in call(server, "list_scans", {})["scans"] if s["scan_id"] not in earlier]
    assert len(scans) == 2 and all(s["status"] == "succeeded" for s in scans), scans
    by_scanner = {s["scanner"]: s["scan_id"] for s in scans}
    report = LOOPBACK.get(server.base_url + f"/v1/results?id={by_scanner['kubescape']}", timeout=30)
    assert report.status_code == 200 and report.json()["type"] == "v1results"
    page = call(server, "get_results", {"scan_id": by_scanner["kube-bench"], "view": "checks"})
    assert page["checks"]


def test_sigterm_http_grace_then_cancel(shared: Shared) -> None:
    """A scan that finishes within the grace period (3 s) succeeds; one that does not is cancelled."""
    server, fake_bin = shared.slot.take(), shared.fake_bin
    started = len(fake_bin.starts())
    try:
        # The fake reads its knobs again after sleeping: change only the sleep between the two.
        fake_bin.configure(sleep=1)
        quick = LOOPBACK.post(server.base_url + "/v1/scan?keep=true", json={"targetNames": ["nsa"]}, timeout=10).json()["id"]
        wait_for(lambda: len(fake_bin.starts()) >= started + 1, what="the quick scan")
        fake_bin.configure(sleep=60)
        hung = LOOPBACK.post(server.base_url + "/v1/scan?keep=true", json={"targetNames": ["mitre"]}, timeout=10).json()["id"]
        wait_for(lambda: len(fake_bin.starts()) >= started + 2, what="the long scan")
        scanner = fake_bin.starts()[-1]["pid"]
        server.process.send_signal(signal.SIGTERM)
        # New work is refused while the server drains.
        time.sleep(0.3)
        try:
            late = LOOPBACK.post(server.base_url + "/v1/scan", json={}, timeout=5)
            assert late.status_code >= 500 or late.status_code == 503
        except httpx.HTTPError:
            pass  # or the listener is already closed
        assert server.process.wait(30) == 0, server.log()[-2000:]
    finally:
        stop_server(server)
    rows = scan_rows(fake_bin.data_dir)
    assert rows[quick][0] == "succeeded", rows
    assert rows[hung][0] == "cancelled" and "shutdown" in (rows[hung][1] or ""), rows
    assert wait_gone(scanner)


def test_sigterm_stdio_grace_then_cancel(fake_bin, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fake_bin.configure(mode="hang_with_child")
    env = {**os.environ, **_env(fake_bin)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcp_kscan", "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=open(tmp_path / "stdio.log", "wb"), env=env,
    )
    assert proc.stdin is not None and proc.stdout is not None
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
         "params": {"name": "kubescape_scan", "arguments": {"engine": "kubescape", "wait_seconds": 0}}},
    ]
    proc.stdin.write("".join(json.dumps(m) + "\n" for m in messages).encode())
    proc.stdin.flush()
    scan_id = None
    try:
        while scan_id is None:
            line = proc.stdout.readline()
            assert line, (tmp_path / "stdio.log").read_text()
            msg = json.loads(line)
            if msg.get("id") == 2:
                scan_id = msg["result"]["structuredContent"]["scan_id"]
        grandchild = wait_for(
            lambda: [r["pid"] for r in fake_bin.records() if r.get("event") == "grandchild"], what="the grandchild"
        )[0]
        scanner = fake_bin.starts()[-1]["pid"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, (tmp_path / "stdio.log").read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    rows = scan_rows(fake_bin.data_dir)
    assert rows[scan_id][0] == "cancelled" and "shutdown" in (rows[scan_id][1] or ""), rows
    assert wait_gone(scanner) and wait_gone(grandchild)
