"""The built-in engine runs outside the server: killing it, cancelling it or a big scan never
stalls or breaks the server (real HTTP servers, real engine processes, a generated corpus)."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp.client import Client
from servers import HttpServer, group_members, start_http_server, stop_server

from mcp_kscan.settings import Settings

from .conftest import ServerSlot, wait_for, wait_gone

REPO_ROOT = Path(__file__).resolve().parents[2]

DEPLOYMENT = """---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web-{i}-{j}, namespace: ns-{i}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web-{j}}}}}
  template:
    metadata: {{labels: {{app: web-{j}}}}}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports: [{{containerPort: 80}}]
        securityContext: {{privileged: true, runAsUser: 0}}
        env: [{{name: A, value: "1"}}, {{name: B, value: "2"}}]
"""


def make_corpus(folder: Path, files: int = 300, per_file: int = 20) -> int:
    folder.mkdir(parents=True)
    for i in range(files):
        (folder / f"app-{i:04d}.yaml").write_text("".join(DEPLOYMENT.format(i=i, j=j) for j in range(per_file)))
    return files * per_file


def engine_pids(server_pid: int, name: bytes = b"kscan-engine") -> list[int]:
    """The server's children that are engine processes (found through /proc, as an operator
    would): scanning (``kscan-engine``, the default) or waiting for a scan (``kscan-standby``)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        comm = stat[stat.index(b"(") + 1:stat.rindex(b")")]
        ppid = int(stat.rsplit(b")", 1)[1].split()[1])
        # argv[1:3], not anywhere: the engine's own command line once it has exec'd (it arms its
        # parent-death signal itself: no wrapper runs before it, runner/deathsig.py).
        if ppid == server_pid and cmdline.split(b"\0")[1:3] == [b"-m", b"mcp_kscan.engine.entry"] and comm == name:
            found.append(int(entry))
    return found


def _start(tmp_path: Path, **extra: str) -> HttpServer:
    env = {"MCP_KSCAN_DATA_DIR": str(tmp_path / "data"), "MCP_KSCAN_ALLOWED_ROOTS": str(tmp_path),
           "MCP_KSCAN_KUBESCAPE_PATH": str(tmp_path / "no-kubescape"), **extra}
    return start_http_server(env, tmp_path, memory_limit=3 * 1024 * 1024 * 1024)


@dataclass
class Shared:
    slot: ServerSlot
    root: Path
    """The server's allowed root: each test writes its corpora in a folder of its own under it."""
    corpus: Path
    """6,000 resources (``make_corpus``), read by the tests that stop a scan mid-way; none writes it."""


SHARED_OUTPUT_CAP = 256 * 1024
"""The shared server's scanner output cap (MCP_KSCAN_OUTPUT_CAP_BYTES), lowered so that a small
built-in report is over it; the engine's report cap stays at its default."""


@pytest.fixture(scope="module")
def _shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    root = tmp_path_factory.mktemp("engine-process")
    corpus = root / "corpus"
    make_corpus(corpus)
    # Set here: a module fixture runs before the autouse fixtures that set the graces.
    slot = ServerSlot(lambda: _start(root, MCP_KSCAN_OUTPUT_CAP_BYTES=str(SHARED_OUTPUT_CAP),
                                     MCP_KSCAN_KILL_GRACE="0.5", MCP_KSCAN_SHUTDOWN_GRACE="1"))
    try:
        yield Shared(slot, root, corpus)
    finally:
        slot.stop()


@pytest.fixture
def shared(_shared_server: Shared, tmp_path: Path) -> tuple[HttpServer, Path]:
    """The module's server, for tests that leave it serving with nothing running (they kill an
    engine, cancel a scan or scan a corpus; each reads only its own scans), and a fresh folder."""
    return _shared_server.slot.get(), Path(tempfile.mkdtemp(dir=_shared_server.root, prefix=tmp_path.name[:30]))


def _scan(client: httpx.Client, folder: Path) -> str:
    r = client.post("/v1/scan", json={"paths": [str(folder)], "engine": "builtin"})
    assert r.status_code == 200 and r.json()["type"] == "busy", r.text
    return str(r.json()["id"])


class RawMcp:
    """MCP over streamable HTTP as plain JSON-RPC posts: a light client, so the time measured is
    the server's, not an SDK's in the same busy test process."""

    HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json",
               "MCP-Protocol-Version": "2025-06-18"}

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.headers = dict(self.HEADERS)
        self.next_id = 1

    async def _post(self, body: dict[str, Any]) -> httpx.Response:
        r = await self.client.post("/mcp", json=body, headers=self.headers)
        assert r.status_code in (200, 202), r.text[:300]
        return r

    async def start(self) -> None:
        r = await self._post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
        self.headers["Mcp-Session-Id"] = r.headers["mcp-session-id"]
        await self._post({"jsonrpc": "2.0", "method": "notifications/initialized"})

    async def call(self, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        r = await self._post({"jsonrpc": "2.0", "id": self.next_id, "method": "tools/call",
                              "params": {"name": tool, "arguments": args}})
        text = r.text
        if "text/event-stream" in r.headers.get("content-type", ""):
            text = next(line[5:] for line in text.splitlines() if line.startswith("data:"))
        result = json.loads(text)["result"]
        assert not result.get("isError"), result
        content: dict[str, Any] = result["structuredContent"]
        return content


def _settled(client: httpx.Client, scan_id: str, timeout: float = 60) -> None:
    """Until the scan is no longer queued or running, polled over REST: an MCP session per poll
    cost the test process a CPU second a test (the record is then read once, over MCP)."""
    wait_for(lambda: client.get("/v1/status", params={"id": scan_id}).json()["type"] == "notBusy", timeout=timeout,
             what=f"scan {scan_id} to end")


def _record(server: HttpServer, scan_id: str) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        async with Client(server.base_url + "/mcp") as mcp:  # type: ignore[arg-type]
            result = await mcp.call_tool("scan_status", {"scan_id": scan_id})
            assert result.structured_content is not None
            return result.structured_content
    return anyio.run(read)


def test_killing_the_engine_mid_scan_fails_the_scan_and_the_server_carries_on(
    shared: tuple[HttpServer, Path], _shared_server: Shared
) -> None:
    server, tmp_path = shared
    folder = _shared_server.corpus
    small = tmp_path / "small"
    make_corpus(small, files=2, per_file=2)
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        scan_id = _scan(client, folder)
        engine = wait_for(lambda: engine_pids(server.process.pid), timeout=60, what="the engine process")[0]
        os.killpg(engine, signal.SIGKILL)  # the engine and its forked workers
        _settled(client, scan_id)
        record = _record(server, scan_id)
        assert record["status"] in ("failed", "timed_out"), record
        assert "killed" in (record["error"] or ""), record
        assert wait_gone(engine)
        assert client.get("/livez").status_code == 200
        after = client.post("/v1/scan", params={"wait": "true"}, json={"paths": [str(small)], "engine": "builtin"})
        assert after.status_code == 200 and "summaryDetails" in after.json()["response"], after.text[:300]


def _recorded_group(data_dir: Path, scan_id: str) -> int | None:
    """The process group the server recorded for a scan (what start-up clean-up reads), from the file."""
    with sqlite3.connect(data_dir / "scans.db") as conn:
        row = conn.execute("SELECT pgid FROM scans WHERE scan_id=?", (scan_id,)).fetchone()
    return int(row[0]) if row and row[0] else None


def _batch_work(engine: int) -> bool:
    """Whether the engine has marked itself batch work (``engine.entry.as_batch_work``)."""
    try:
        return os.sched_getscheduler(engine) == os.SCHED_BATCH
    except OSError:  # gone: the scan ended already
        return False


def test_killing_the_server_mid_scan_leaves_no_engine_behind(_shared_server: Shared, tmp_path: Path) -> None:
    """kill -9 of the SERVER during a built-in scan: on restart the scan is recorded interrupted
    and what is left of the engine's process group (the workers its entry process forked) is killed.
    The server killed is the module's; its restart (the same database) is the module's from then on."""
    slot, data_dir = _shared_server.slot, _shared_server.root / "data"
    small = Path(tempfile.mkdtemp(dir=_shared_server.root, prefix=tmp_path.name[:30])) / "small"
    make_corpus(small, files=2, per_file=2)
    server = slot.take()
    engine = 0
    try:
        with httpx.Client(base_url=server.base_url, timeout=60) as client:
            scan_id = _scan(client, _shared_server.corpus)
            engine = wait_for(lambda: engine_pids(server.process.pid), timeout=60, what="the engine process")[0]
            # The engine arms its parent-death signal itself, then marks itself batch work
            # (entry.main): stopped before that, it would be killed only by the restart's clean-up.
            wait_for(lambda: _batch_work(engine), timeout=30,
                     what="the engine to arm its parent-death signal")
            # Hold the scan mid-way whatever the machine's speed: a stopped process still counts.
            os.killpg(engine, signal.SIGSTOP)
            wait_for(lambda: _recorded_group(data_dir, scan_id) == engine, timeout=30,
                     what="the engine's process group in the record")
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(10)
        # The engine's entry process dies with the server (its parent-death signal, even stopped);
        # workers it forked have no such signal and stay in its group until the restart.
        assert wait_gone(engine, 30), "the engine outlived its SIGKILLed server"
    finally:
        stop_server(server)
    try:
        restarted = slot.start()
        slot.put(restarted)
        wait_for(lambda: not group_members(engine), timeout=30, what="start-up to kill the orphaned engine group")
        record = _record(restarted, scan_id)
        assert record["status"] == "interrupted" and "server stopped" in (record["error"] or ""), record
        with httpx.Client(base_url=restarted.base_url, timeout=60) as client:
            after = client.post("/v1/scan", params={"wait": "true"}, json={"paths": [str(small)], "engine": "builtin"})
            assert after.status_code == 200 and "summaryDetails" in after.json()["response"], after.text[:300]
    finally:
        if engine and group_members(engine):
            os.killpg(engine, signal.SIGKILL)


def test_a_waiting_standby_engine_dies_with_a_killed_server(tmp_path: Path) -> None:
    """kill -9 of a server whose next scan's engine waits (``runner.standby``): the standby arms
    its own parent-death signal, so nothing is left to wait for a server that is gone."""
    server = _start(tmp_path)
    try:
        waiting = wait_for(lambda: engine_pids(server.process.pid, b"kscan-standby"), timeout=60,
                           what="a standby engine at start")[0]
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(10)
        assert wait_gone(waiting, 30), "a standby engine outlived its SIGKILLed server"
    finally:
        stop_server(server)


def test_a_standby_engine_waits_takes_the_next_scan_and_ends_with_the_server(tmp_path: Path) -> None:
    """A server whose scans run on the built-in engine starts one ahead (``runner.standby``): it
    waits as ``kscan-standby``, takes the next scan (no other engine process starts), another
    waits after it (started once the scan's process has ended), and a server that stops kills
    the one waiting."""
    small = tmp_path / "small"
    make_corpus(small, files=2, per_file=2)
    server = _start(tmp_path)
    try:
        first = wait_for(lambda: engine_pids(server.process.pid, b"kscan-standby"), timeout=60,
                         what="a standby engine at start")
        assert len(first) == 1
        with httpx.Client(base_url=server.base_url, timeout=60) as client:
            done = client.post("/v1/scan", params={"wait": "true"}, json={"paths": [str(small)], "engine": "builtin"})
            assert done.status_code == 200 and done.json()["response"]["summaryDetails"], done.text[:300]
        assert wait_gone(first[0], 30), "the standby that took the scan ended with it"
        second = wait_for(lambda: engine_pids(server.process.pid, b"kscan-standby"), timeout=60,
                          what="the next standby engine")
        assert second != first and len(second) == 1
    finally:
        stop_server(server)
    assert wait_gone(second[0], 30), "a standby engine outlived its server's shutdown"


def _bench_engine() -> Any:
    spec = importlib.util.spec_from_file_location("bench_engine", REPO_ROOT / "benchmarks" / "bench_engine.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


BENCH_10K_REPORT_BYTES = 85 * 1000 * 1000
"""The report of the benchmark's 10,000-resource corpus (benchmarks/bench_engine.py, which scans
it through a real server and fails when that scan does not succeed)."""


def test_the_engine_report_cap_defaults_leave_room_for_the_10000_resource_benchmark() -> None:
    """The default engine cap takes the 10k corpus's report twice over; the scanner cap would not."""
    for settings in (Settings.from_env({}), Settings(data_dir=Path("unused"))):
        assert settings.engine_report_cap_bytes >= 2 * BENCH_10K_REPORT_BYTES
        assert settings.output_cap_bytes < BENCH_10K_REPORT_BYTES


def test_a_builtin_report_over_the_scanner_output_cap_is_stored_and_served_whole(shared: tuple[HttpServer, Path]) -> None:
    """The engine's report has its own cap (MCP_KSCAN_ENGINE_REPORT_CAP_BYTES), not the scanner
    output cap (MCP_KSCAN_OUTPUT_CAP_BYTES, meant for binaries' stdout): with the scanner cap set
    below this 250-resource report (about 2 MB) and the engine cap at its default, the scan
    succeeds and the whole report is served. The 10,000-resource corpus at the real defaults is
    the benchmark's (benchmarks/bench_engine.py), and the defaults' room is checked above."""
    server, tmp_path = shared
    folder = tmp_path / "corpus"
    resources, _, _ = _bench_engine().generate(folder, 250)
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        scan_id = _scan(client, folder)
        _settled(client, scan_id, timeout=300)
        record = _record(server, scan_id)
        assert record["status"] == "succeeded", record["error"]
        report = client.get("/v1/results", params={"id": scan_id}, timeout=120)
        assert report.status_code == 200
        assert len(report.content) > 4 * SHARED_OUTPUT_CAP  # well over the scanner output cap, and served whole
        assert len(report.json()["response"]["resources"]) == resources


def test_cancel_stops_the_engine_processes(shared: tuple[HttpServer, Path], _shared_server: Shared) -> None:
    server, _ = shared
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        scan_id = _scan(client, _shared_server.corpus)
        engine = wait_for(lambda: engine_pids(server.process.pid), timeout=60, what="the engine process")[0]
        r = client.delete("/v1/scan", params={"id": scan_id})
        assert r.status_code == 200, r.text
        assert wait_gone(engine, timeout=10)
        assert _record(server, scan_id)["status"] == "cancelled"
        assert not engine_pids(server.process.pid)


@pytest.mark.solo
def test_reads_stay_fast_during_a_big_builtin_scan(tmp_path: Path) -> None:
    """No /livez, /v1/status or MCP scan_status read takes over 1 s while a big scan runs, and the
    scan runs in an engine process of the server's.

    The exact latency is a benchmark figure (benchmarks/); this is the guarantee that the
    engine, in its own process, never stalls the server.
    """
    folder = tmp_path / "corpus"
    files = 100
    resources = make_corpus(folder, files=files, per_file=20)
    # 2,000 resources make a ~40 MB report (objects and per-control results): within the engine's
    # own report cap (MCP_KSCAN_ENGINE_REPORT_CAP_BYTES), over the scanner output cap (32 MiB).
    # The scan still takes seconds (2.7-4.8 s on the two cores at a load of 3; 44-62 polls land
    # in it), and with the engine run in the server's event loop instead a /v1/status read took 3 s.
    server = _start(tmp_path)
    slowest: dict[str, float] = {"livez": 0.0, "status": 0.0, "scan_status": 0.0}
    seen_progress: list[Any] = []
    engines: list[int] = []

    async def scan_and_poll() -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            mcp = RawMcp(client)
            await mcp.start()
            # Warm both paths first (imports, schemas): what is measured is the scan's effect.
            await client.get("/livez")
            await mcp.call("list_scans", {})
            r = await client.post("/v1/scan", json={"paths": [str(folder)], "engine": "builtin"})
            assert r.status_code == 200 and r.json()["type"] == "busy", r.text
            scan_id = r.json()["id"]
            while True:
                t0 = time.monotonic()
                assert (await client.get("/livez")).status_code == 200
                t1 = time.monotonic()
                assert (await client.get("/v1/status", params={"id": scan_id})).status_code == 200
                t2 = time.monotonic()
                record = await mcp.call("scan_status", {"scan_id": scan_id})
                t3 = time.monotonic()
                for name, took in (("livez", t1 - t0), ("status", t2 - t1), ("scan_status", t3 - t2)):
                    slowest[name] = max(slowest[name], took)
                if record.get("progress_done"):
                    seen_progress.append((record["progress_done"], record["progress_total"]))
                if not engines:
                    engines.extend(engine_pids(server.process.pid))
                if record["status"] != "running" and record["status"] != "queued":
                    return record
                await anyio.sleep(0.05)

    try:
        record = anyio.run(scan_and_poll)
        assert record["status"] == "succeeded", record["error"]
        counts = record["summary"]["resources"]
        assert counts["passed"] + counts["failed"] == resources, counts
        assert seen_progress and seen_progress[-1][1] == files  # files done of total reached the record
        assert max(slowest.values()) < 1.0, slowest
        # Run in a thread of the server instead (its forked workers doing the checks), the engine
        # kept every read under 1 s (0.74-0.77 s at a load of 3), so the latency alone does not
        # prove the scan ran outside the server: the engine process is looked for too.
        assert engines, "the scan ran in no engine process of its own"
    finally:
        stop_server(server)
