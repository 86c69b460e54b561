"""Any server claims work (runner/queue.py): a queued scan runs on whichever server may run it.

Server A is a real second process on "host-a" (its store names that host), server B runs in the
test on "host-b"; both on one PostgreSQL, with the runner and the planner an HTTP server uses
(``service.open_manager(replica=True)``). A holds the global slot with a sleeper, then admits scans that may run
anywhere (a cluster scan), only on its host (a manifest scan) or only in A (a scan that carries a
Kubescape access key, which the row never stores).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest

from mcp_kscan.runner.db import database_for
from mcp_kscan.runner.manager import ScanManager
from mcp_kscan.runner.records import ScanState
from mcp_kscan.runner.store import ResultsStore
from mcp_kscan.service import open_manager
from mcp_kscan.settings import Settings

from fakes.kube_api import FakeKubeAPI
from servers import group_members, until_state

pytestmark = pytest.mark.anyio

LEASE_S = 3.0
ACCESS_KEY = "1e3a88bf-92ce-44f8-914e-cbe71830d566"
POD = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: shop\nspec:\n  containers: [{name: c, image: nginx}]\n"

SERVER_A = textwrap.dedent(
    """
    import json, sys, anyio
    sys.path.insert(0, {helpers!r})
    from taskhelpers import ScriptTask
    from mcp_kscan.runner.db import database_for
    from mcp_kscan.runner.store import ResultsStore
    from mcp_kscan.scanners.kubescape_request import KubescapeRequest
    from mcp_kscan.service import ScanService, open_manager, validate_request
    from mcp_kscan.settings import Settings

    async def main():
        settings = Settings.from_env()
        store = ResultsStore(database_for(settings.db_path, settings.database_url, settings.db_max_pages),
                             lease_s=settings.scan_lease_s, host="host-a")
        async with open_manager(settings, store, replica=True) as manager:
            service = ScanService(manager, settings)
            ids = {{}}
            if sys.argv[2] == "sleeper":  # holds the one slot, so what follows waits in the queue
                ids["sleeper"] = (await manager.submit(ScriptTask("import time; time.sleep(300)", timeout_s=600))).scan_id
                with anyio.fail_after(60):
                    while (await manager.status(ids["sleeper"])).status.value != "running":
                        await anyio.sleep(0.1)
            for name, data in json.loads(sys.argv[1]):
                req = validate_request(KubescapeRequest, data, settings)
                ids[name] = (await service.start_kubescape(req, origin="rest")).scan_id
            print(json.dumps(ids), flush=True)
            await anyio.to_thread.run_sync(sys.stdin.readline)  # stop

    anyio.run(main)
    """
)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Path]:
    """A fake API server with one privileged pod; the kubeconfig every server is given."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "naked", "namespace": "shop"},
           "spec": {"hostNetwork": True, "containers": [{"name": "c", "image": "busybox:1"}]}}
    with FakeKubeAPI(objects=[pod]) as api:
        yield api.write_kubeconfig(tmp_path / "kubeconfig", context="fake")


def _env(tmp: Path, url: str, kubeconfig: Path, fake_env: dict[str, str], limit: int) -> dict[str, str]:
    return {**os.environ, **fake_env, "MCP_KSCAN_DATA_DIR": str(tmp), "MCP_KSCAN_DATABASE_URL": url,
            "KUBECONFIG": str(kubeconfig), "MCP_KSCAN_MAX_CONCURRENT_SCANS": str(limit),
            "MCP_KSCAN_SCAN_LEASE": str(LEASE_S), "MCP_KSCAN_KILL_GRACE": "1", "MCP_KSCAN_SHUTDOWN_GRACE": "1"}


def _start_a(
    tmp_path: Path, env: dict[str, str], scans: list[tuple[str, dict[str, Any]]], sleeper: bool = True
) -> subprocess.Popen[str]:
    code = SERVER_A.format(helpers=str(Path(__file__).parent))
    return subprocess.Popen([sys.executable, "-c", code, json.dumps(scans), "sleeper" if sleeper else "-"], env=env,
                            cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _a_with_queued_scans(
    tmp_path: Path, postgres_url: str, cluster: Path, fake_env: dict[str, str], *names: str, b_limit: int = 1
) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """Server A (host-a, limit 1) started with ``names`` queued behind its sleeper, and B's
    environment. The scans, one per placement: ``cluster`` (runs anywhere), ``files`` (reads a
    manifest of host-a), ``key`` (carries a Kubescape access key, so it is A's alone)."""
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(POD)
    every = {"cluster": {"engine": "builtin", "target_names": ["nsa"]},
             "files": {"engine": "builtin", "paths": [str(manifest)]},
             "key": {"engine": "kubescape", "paths": [str(manifest)], "submit": True, "account": "acme",
                     "access_key": ACCESS_KEY}}
    env_a = _env(tmp_path / "a", postgres_url, cluster, fake_env, limit=1)
    env_b = _env(tmp_path / "b", postgres_url, cluster, fake_env, limit=b_limit)
    return _start_a(tmp_path, env_a, [(name, every[name]) for name in names]), env_b


def _server_b(env: dict[str, str]) -> ScanManager:
    settings = Settings.from_env(env)
    store = ResultsStore(database_for(settings.db_path, settings.database_url, settings.db_max_pages),
                         lease_s=settings.scan_lease_s, host="host-b")
    return open_manager(settings, store, replica=True)


def _rows(url: str) -> dict[str, dict[str, Any]]:
    """Every scan's row as the database holds it, by id."""
    with psycopg.connect(url) as conn:
        cur = conn.execute("SELECT * FROM scans")
        names = [d.name for d in cur.description or ()]
        return {row[names.index("scan_id")]: dict(zip(names, row)) for row in cur.fetchall()}


def _stop(server: subprocess.Popen[str]) -> None:
    if server.poll() is None:
        server.kill()
        server.wait(30)


async def test_a_full_server_s_queued_scans_run_on_another(
    tmp_path: Path, postgres_url: str, cluster: Path, fake_bin: Any
) -> None:
    """A's limit is 1 and B's 2 (each applies its own limit to the global count): A is full with its
    sleeper while B has room. B rebuilds and runs A's cluster scan; A's manifest scan is bound to
    host-a, so B leaves it, and it runs on A once A's slot is free."""
    server_a, env_b = _a_with_queued_scans(tmp_path, postgres_url, cluster, fake_bin.env, "cluster", "files", b_limit=2)
    try:
        async with _server_b(env_b) as b:
            ids = json.loads(await anyio.to_thread.run_sync(server_a.stdout.readline))  # type: ignore[union-attr]
            done = await until_state(b, ids["cluster"], {ScanState.succeeded, ScanState.failed})
            assert done.status is ScanState.succeeded, done.error
            assert done.summary is not None and done.summary.resources.failed >= 1  # type: ignore[union-attr]
            rows = await anyio.to_thread.run_sync(_rows, postgres_url)
            assert rows[ids["cluster"]]["server_host"] == "host-b" and rows[ids["cluster"]]["server_pid"] == os.getpid()
            assert done.server == f"host-b:{os.getpid()}"  # the record says who ran it
            assert rows[ids["cluster"]]["runs_on"] == "anywhere"
            assert rows[ids["files"]]["runs_on"] == "host:host-a"

            # B polls every half second and has room, but the manifest scan is not its to run.
            await anyio.sleep(2.0)
            assert (await b.status(ids["files"])).status is ScanState.queued

            assert (await b.cancel(ids["sleeper"], "make room")).status is ScanState.cancelled
            files = await until_state(b, ids["files"], {ScanState.succeeded, ScanState.failed})
            assert files.status is ScanState.succeeded, files.error
            row = (await anyio.to_thread.run_sync(_rows, postgres_url))[ids["files"]]
            assert row["server_host"] == "host-a" and row["server_pid"] == server_a.pid
            assert files.server == f"host-a:{server_a.pid}"
        server_a.stdin.write("stop\n")  # type: ignore[union-attr]
        server_a.stdin.flush()  # type: ignore[union-attr]
        assert await anyio.to_thread.run_sync(server_a.wait, 60) == 0
    finally:
        _stop(server_a)


async def test_killed_server_s_portable_scans_move_and_pinned_ones_say_why(
    tmp_path: Path, postgres_url: str, cluster: Path, fake_bin: Any
) -> None:
    """kill -9 A with three scans queued behind its sleeper: B (another host) runs the cluster scan;
    the manifest scan (bound to host-a) and the scan with an access key (bound to A) end
    ``interrupted``, each saying why it could not move; the key is nowhere in the database."""
    server_a, env_b = _a_with_queued_scans(tmp_path, postgres_url, cluster, fake_bin.env, "cluster", "files", "key")
    try:
        async with _server_b(env_b) as b:
            ids = json.loads(await anyio.to_thread.run_sync(server_a.stdout.readline))  # type: ignore[union-attr]
            rows = await anyio.to_thread.run_sync(_rows, postgres_url)
            assert {name: rows[i]["status"] for name, i in ids.items()} == {
                "sleeper": "running", "cluster": "queued", "files": "queued", "key": "queued"}
            assert rows[ids["key"]]["runs_on"] == "process"
            scanner_pgid = rows[ids["sleeper"]]["pgid"]

            server_a.send_signal(signal.SIGKILL)
            await anyio.to_thread.run_sync(server_a.wait, 30)

            sleeper = await until_state(b, ids["sleeper"], {ScanState.interrupted})
            assert "server stopped while this scan was running" in (sleeper.error or "")
            files = await until_state(b, ids["files"], {ScanState.interrupted})
            assert "no other server could take it over: it reads files of the host that admitted it (paths)" \
                in (files.error or ""), files.error
            assert "no server is left on host host-a" in (files.error or "")
            key = await until_state(b, ids["key"], {ScanState.interrupted})
            assert "it carries a Kubescape access key, which is never stored" in (key.error or ""), key.error

            moved = await until_state(b, ids["cluster"], {ScanState.succeeded, ScanState.failed})
            assert moved.status is ScanState.succeeded, moved.error
            rows = await anyio.to_thread.run_sync(_rows, postgres_url)
            assert rows[ids["cluster"]]["server_host"] == "host-b"
            assert ACCESS_KEY not in json.dumps(rows, default=str)
            if scanner_pgid:
                assert not group_members(scanner_pgid), "a scanner of A survived"
    finally:
        _stop(server_a)


async def test_a_server_that_cannot_rebuild_a_scan_fails_it_with_the_reason(
    tmp_path: Path, postgres_url: str, cluster: Path, fake_bin: Any
) -> None:
    """A plans a cluster scan on the Kubescape binary; B, which has no such binary, claims it while A
    is full: B settles it ``failed`` in one line naming itself and why, never runs it on another
    engine, and the queue moves on."""
    from mcp_kscan.scanners.kubescape_request import KubescapeRequest
    from mcp_kscan.service import ScanService, validate_request

    from .taskhelpers import ScriptTask

    env_a = _env(tmp_path / "a", postgres_url, cluster, fake_bin.env, limit=1)
    env_b = {**_env(tmp_path / "b", postgres_url, cluster, fake_bin.env, limit=2),
             "MCP_KSCAN_KUBESCAPE_PATH": str(tmp_path / "no-kubescape-here")}
    settings_a = Settings.from_env(env_a)
    store_a = ResultsStore(database_for(settings_a.db_path, postgres_url), lease_s=LEASE_S, host="host-a")
    async with open_manager(settings_a, store_a, replica=True) as a:
        sleeper = await a.submit(ScriptTask("import time; time.sleep(300)", timeout_s=600))
        await until_state(a, sleeper.scan_id, {ScanState.running})
        req = validate_request(KubescapeRequest, {"engine": "kubescape", "target_names": ["nsa"]}, settings_a)
        planned = await ScanService(a, settings_a).start_kubescape(req)
        async with _server_b(env_b) as b:
            failed = await until_state(b, planned.scan_id, {ScanState.failed, ScanState.succeeded})
        assert failed.status is ScanState.failed
        assert (failed.error or "").startswith("server host-b could not start this scan: "), failed.error
        assert "\n" not in (failed.error or "") and "kubescape" in (failed.error or "")
        await a.cancel(sleeper.scan_id)


async def test_a_server_stopped_cleanly_leaves_the_scans_that_can_move(
    tmp_path: Path, postgres_url: str, cluster: Path, fake_bin: Any
) -> None:
    """SIGTERM-like stop of A (a rolling restart): its cluster scan stays queued and B runs it; the
    scan bound to A (an access key) is cancelled, as every queued scan was before."""
    server_a, env_b = _a_with_queued_scans(tmp_path, postgres_url, cluster, fake_bin.env, "cluster", "key")
    try:
        async with _server_b(env_b) as b:
            ids = json.loads(await anyio.to_thread.run_sync(server_a.stdout.readline))  # type: ignore[union-attr]
            server_a.stdin.write("stop\n")  # type: ignore[union-attr]
            server_a.stdin.flush()  # type: ignore[union-attr]
            assert await anyio.to_thread.run_sync(server_a.wait, 60) == 0
            key = await b.status(ids["key"])
            assert key.status is ScanState.cancelled and key.error == "cancelled at server shutdown before it started"
            assert (await b.status(ids["sleeper"])).status is ScanState.cancelled
            moved = await until_state(b, ids["cluster"], {ScanState.succeeded, ScanState.failed, ScanState.interrupted})
            assert moved.status is ScanState.succeeded, moved.error
            assert (await anyio.to_thread.run_sync(_rows, postgres_url))[ids["cluster"]]["server_host"] == "host-b"
    finally:
        _stop(server_a)


async def test_a_live_server_s_queued_scans_keep_their_lease(
    tmp_path: Path, postgres_url: str, cluster: Path, fake_bin: Any
) -> None:
    """A runs nothing, only waits: its queued scan's lease is renewed all the same, so B on another
    host does not take A for dead; the scan runs on A once B frees the slot."""
    from .taskhelpers import ScriptTask

    manifest = tmp_path / "pod.yaml"
    manifest.write_text(POD)
    scans = [("key", {"engine": "kubescape", "paths": [str(manifest)], "submit": True, "account": "acme",
                      "access_key": ACCESS_KEY})]
    env_a = _env(tmp_path / "a", postgres_url, cluster, fake_bin.env, limit=1)
    env_b = _env(tmp_path / "b", postgres_url, cluster, fake_bin.env, limit=1)
    async with _server_b(env_b) as b:
        sleeper = await b.submit(ScriptTask("import time; time.sleep(300)", timeout_s=600))
        await until_state(b, sleeper.scan_id, {ScanState.running})
        server_a = _start_a(tmp_path, env_a, scans, sleeper=False)
        try:
            ids = json.loads(await anyio.to_thread.run_sync(server_a.stdout.readline))  # type: ignore[union-attr]
            # Two leases: unrenewed, the lease would lapse after one and B (its sweep runs every
            # second meanwhile) would settle the scan `interrupted`.
            await anyio.sleep(2 * LEASE_S)
            assert (await b.status(ids["key"])).status is ScanState.queued
            await b.cancel(sleeper.scan_id)
            ran = await until_state(b, ids["key"], {ScanState.succeeded, ScanState.failed, ScanState.interrupted})
            assert ran.status is not ScanState.interrupted, ran.error
            assert (await anyio.to_thread.run_sync(_rows, postgres_url))[ids["key"]]["server_host"] == "host-a"
        finally:
            _stop(server_a)


async def test_a_stdio_server_or_the_cli_keeps_its_scans_to_itself(
    tmp_path: Path, postgres_url: str, cluster: Path, fake_bin: Any
) -> None:
    """A server that takes no other server's scans (``open_manager`` without ``replica``) hands none
    of its own over either: its cluster scan is bound to it, and cancelled when it stops, never
    left in a queue no server of its kind would claim from."""
    from mcp_kscan.scanners.kubescape_request import KubescapeRequest
    from mcp_kscan.service import ScanService, validate_request

    from .taskhelpers import ScriptTask

    settings = Settings.from_env(_env(tmp_path / "s", postgres_url, cluster, fake_bin.env, limit=1))
    async with open_manager(settings) as manager:
        sleeper = await manager.submit(ScriptTask("import time; time.sleep(300)", timeout_s=600))
        await until_state(manager, sleeper.scan_id, {ScanState.running})
        req = validate_request(KubescapeRequest, {"engine": "builtin", "target_names": ["nsa"]}, settings)
        queued = await ScanService(manager, settings).start_kubescape(req)
        row = (await anyio.to_thread.run_sync(_rows, postgres_url))[queued.scan_id]
        assert row["runs_on"] == "process" and "runs only its own scans" in row["plan_json"]
    stopped = (await anyio.to_thread.run_sync(_rows, postgres_url))[queued.scan_id]
    assert stopped["status"] == "cancelled" and stopped["error"] == "cancelled at server shutdown before it started"
