"""``mcp-kscan serve --transport http --workers 2`` on a real PostgreSQL: two real processes on one port.

Each call below opens its own connection, so the kernel hands it to either worker: a scan
started through one is seen, long-polled, paged and cancelled through the other, over MCP (2026
and legacy clients) and REST. With SQLite, ``--workers 2`` is refused in one line. Two workers
are what each of these claims needs (one that admits, another that answers or runs); a third
was one more interpreter to start (~2 CPU s) and proved nothing more.

The module's tests share one such server (three processes, ~4 s of CPU to start): each reads only
the scans it started, and the last one stops it with SIGTERM (a test that finds it stopped
starts another).
"""

from __future__ import annotations

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
import psycopg
import pytest
from conftest import FakeBin, make_fake_bin
from servers import (
    LOOPBACK,
    HttpServer,
    alive,
    free_port,
    mcp_http_client,
    start_http_server,
    stop_server,
    wait_gone,
)

from mcp_kscan.http_compat.workers import STARTUP_S

pytestmark = pytest.mark.anyio

WORKERS = 2
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def _workers(server: HttpServer) -> list[int]:
    """The supervisor's children that are workers (not multiprocessing's resource tracker)."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(server.process.pid)], capture_output=True, text=True)
    pids = [int(p) for p in out.stdout.split()]
    return [p for p in pids if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]


def _all_workers(server: HttpServer) -> list[int]:
    """The WORKERS workers, once they are all up: a killed one is started again within a poll (0.2 s)."""
    deadline = time.monotonic() + 30
    while len(pids := _workers(server)) != WORKERS and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(pids) == WORKERS, pids
    return pids


def _admitted_by(url: str) -> dict[str, int]:
    """The server process each scan names: the one that admitted it, until a claim takes it over."""
    with psycopg.connect(url) as conn:
        return {r[0]: r[1] for r in conn.execute("SELECT scan_id, server_pid FROM scans")}


@dataclass
class Workers:
    server: HttpServer
    fake_bin: FakeBin
    url: str
    """The server's PostgreSQL database (the module's own)."""
    started: float
    """time.monotonic() at the server's start: a worker killed within STARTUP_S of it stops the server."""
    manifest: Path


@pytest.fixture(scope="module")
def _module_server(tmp_path_factory: pytest.TempPathFactory, postgres_cluster: Any) -> Iterator[dict[str, Workers]]:
    """The module's ``--workers 2`` server, started by the first test that asks for it (see ``workers``)."""
    holder: dict[str, Workers] = {}
    try:
        yield holder
    finally:
        if "it" in holder:
            stop_server(holder["it"].server)


@pytest.fixture
def workers(_module_server: dict[str, Workers], tmp_path_factory: pytest.TempPathFactory,
            postgres_cluster: Any) -> Workers:
    """``serve --workers 2`` on the module's database, one scan at a time across the two (the
    queued-scan test needs its long scan to hold the only slot; the other runs one at a time)."""
    current = _module_server.get("it")
    if current is not None and current.server.process.poll() is None:
        current.fake_bin.configure(sleep=None, mode=None)
        return current
    tmp = tmp_path_factory.mktemp("workers")
    fake_bin = make_fake_bin(tmp)
    manifest = tmp / "manifests" / "deploy.yaml"
    manifest.parent.mkdir()
    manifest.write_text("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers: [{name: c, image: nginx}]\n")
    url = str(postgres_cluster.new_database())
    env = {**fake_bin.env, "MCP_KSCAN_DATABASE_URL": url, "MCP_KSCAN_SHUTDOWN_GRACE": "1",
           "MCP_KSCAN_KILL_GRACE": "1", "MCP_KSCAN_SCAN_LEASE": "3", "MCP_KSCAN_MAX_CONCURRENT_SCANS": "1"}
    started = time.monotonic()
    server = start_http_server(env, tmp, "--workers", str(WORKERS), drop_env=["MCP_KSCAN_TOKEN", "KS_API_TOKEN"])
    _module_server["it"] = Workers(server, fake_bin, url, started, manifest)
    return _module_server["it"]


async def _call(base_url: str, tool: str, args: dict[str, Any], mode: str = "auto") -> dict[str, Any]:
    """One MCP call on a connection of its own."""
    async with mcp_http_client(base_url + "/mcp", mode=mode) as client:
        result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def test_workers_answer_for_each_other(workers: Workers) -> None:
    server, fake_bin, url = workers.server, workers.fake_bin, workers.url
    live = _all_workers(server)
    for _ in range(9):
        assert LOOPBACK.get(server.base_url + "/livez", timeout=10).status_code == 200
        assert LOOPBACK.get(server.base_url + "/readyz", timeout=10).status_code == 200

    # Scans started over fresh connections until two different workers have admitted one.
    scan = {"engine": "kubescape", "paths": [str(workers.manifest)], "wait_seconds": 0}
    ids: list[str] = []

    def admitters() -> set[int]:
        admitted = _admitted_by(url)
        return {admitted[i] for i in ids}

    with anyio.fail_after(120):
        while len(admitters()) < 2 or len(ids) < 3:
            ids.append((await _call(server.base_url, "kubescape_scan", scan))["scan_id"])
    assert admitters() <= set(live)

    for scan_id in ids:
        # Long-polled through any worker: it waits for the end, wherever the scan runs.
        done = await _call(server.base_url, "scan_status", {"scan_id": scan_id, "wait_seconds": 60})
        assert done["status"] == "succeeded", done
        for mode in ("auto", "legacy"):
            page = await _call(server.base_url, "get_results", {"scan_id": scan_id, "view": "findings",
                                                                 "limit": 1}, mode=mode)
            assert page["total_matching"] >= 1 and len(page["findings"]) == 1
            more = await _call(server.base_url, "get_results", {"scan_id": scan_id, "view": "findings",
                                                                 "limit": 1, "cursor": page["next_cursor"]})
            assert more["findings"] != page["findings"]
        rest = LOOPBACK.get(server.base_url + "/v1/status", params={"id": scan_id}, timeout=10)
        assert rest.status_code == 200 and rest.json()["type"] == "notBusy", rest.text

    # A long scan, cancelled through fresh connections: whichever worker runs it stops it.
    fake_bin.configure(sleep=300)
    long_id = (await _call(server.base_url, "kubescape_scan", scan))["scan_id"]
    with anyio.fail_after(60):
        while (await _call(server.base_url, "scan_status", {"scan_id": long_id}))["status"] != "running":
            await anyio.sleep(0.2)
    for _ in range(6):  # "is anything in flight?" is the same answer from every worker
        rest = LOOPBACK.get(server.base_url + "/v1/status", headers={"Connection": "close"}, timeout=10)
        assert (rest.json()["type"], rest.json()["id"]) == ("busy", long_id), rest.text
    cancelled = await _call(server.base_url, "cancel_scan", {"scan_id": long_id})
    assert cancelled["status"] == "cancelled", cancelled
    for _ in range(3):
        assert (await _call(server.base_url, "scan_status", {"scan_id": long_id}))["status"] == "cancelled"

    # An older client: a 2025 initialize gets no session (each request stands alone), and a
    # client that still sends a session id it holds is answered all the same.
    init = LOOPBACK.post(server.base_url + "/mcp", headers=MCP_HEADERS, timeout=10, json={
        "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "old", "version": "1"}}})
    assert init.status_code == 200 and "2025-06-18" in init.text, init.text
    for _ in range(6):
        listed = LOOPBACK.post(server.base_url + "/mcp", timeout=10,
                            headers={**MCP_HEADERS, "mcp-session-id": "a-session-from-before",
                                     "mcp-protocol-version": "2025-06-18"},
                            json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        assert listed.status_code == 200 and "kubescape_scan" in listed.text, listed.text


async def test_a_scan_queued_through_one_worker_runs_on_another(workers: Workers) -> None:
    """One scan at a time: a manifest scan waits behind a long one; the worker that admitted it is
    killed (``kill -9``), and another worker of the same host runs it (workers share a filesystem)."""
    server, fake_bin, url = workers.server, workers.fake_bin, workers.url
    _all_workers(server)
    fake_bin.configure(sleep=300)
    long_id = (await _call(server.base_url, "kubescape_scan",
                           {"engine": "kubescape", "paths": [str(workers.manifest)], "wait_seconds": 0}))["scan_id"]
    with anyio.fail_after(60):
        while (await _call(server.base_url, "scan_status", {"scan_id": long_id}))["status"] != "running":
            await anyio.sleep(0.2)
    queued = await _call(server.base_url, "kubescape_scan",
                         {"engine": "builtin", "paths": [str(workers.manifest)], "wait_seconds": 0})
    assert queued["status"] == "queued", queued
    admitted_by = _admitted_by(url)[queued["scan_id"]]
    long_runs_on = _admitted_by(url)[long_id]

    # A worker that dies within STARTUP_S of its start stops the server: kill it only after that.
    await anyio.sleep(max(0.0, STARTUP_S + 1 - (time.monotonic() - workers.started)))
    os.kill(admitted_by, signal.SIGKILL)
    # Until it is gone it may still accept the next connection (and drop it when the signal lands).
    assert await anyio.to_thread.run_sync(wait_gone, admitted_by, 30.0)
    if long_runs_on != admitted_by:  # else the long scan died with it and its slot frees by itself
        cancelled = await _call(server.base_url, "cancel_scan", {"scan_id": long_id})
        assert cancelled["status"] == "cancelled", cancelled
    done = await _call(server.base_url, "scan_status", {"scan_id": queued["scan_id"], "wait_seconds": 120})
    assert done["status"] == "succeeded", done
    ran_on = _admitted_by(url)[queued["scan_id"]]
    assert ran_on != admitted_by and alive(ran_on), (admitted_by, ran_on)


async def test_sigterm_stops_every_worker_and_the_server_exits_0(workers: Workers) -> None:
    """Last in the module: it stops the shared server (the supervisor passes SIGTERM on)."""
    server = workers.server
    live = _all_workers(server)
    assert LOOPBACK.get(server.base_url + "/readyz", timeout=10).status_code == 200
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(60) == 0
    assert not [pid for pid in live if alive(pid)]


def test_workers_with_sqlite_are_refused_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MCP_KSCAN_DATABASE_URL"}
    env["MCP_KSCAN_DATA_DIR"] = str(tmp_path)
    r = subprocess.run(
        [sys.executable, "-m", "mcp_kscan", "serve", "--transport", "http", "--port", str(free_port()), "--workers", "2"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "MCP_KSCAN_DATABASE_URL" in r.stderr, r.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_database_that_cannot_be_reached_is_one_line_without_the_password(tmp_path: Path, workers: str) -> None:
    """A wrong host or password in the deploy/ Secret: one line that says why, not a traceback per
    worker, and the password stays out of it."""
    env = {**os.environ, "MCP_KSCAN_DATA_DIR": str(tmp_path),
           "MCP_KSCAN_DATABASE_URL": f"postgresql://kscan:S3cretPW@127.0.0.1:{free_port()}/kscan"}
    r = subprocess.run(
        [sys.executable, "-m", "mcp_kscan", "serve", "--transport", "http", "--port", str(free_port()),
         "--workers", workers],
        check=False, env=env, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 2, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("mcp-kscan: cannot connect to the results database postgresql://kscan@127.0.0.1:"), r.stderr
    assert "Traceback" not in r.stderr and "S3cretPW" not in r.stderr
