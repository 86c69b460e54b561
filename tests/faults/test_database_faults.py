"""The results database cannot be written: full (a size cap, as on a full disk) or read-only.

Guaranteed: a clear error, serving goes on (health, status, stored results), ``/readyz`` says 503,
and no scan is left showing ``running``. What is tested is the service's logic, so the server is
the REST app in this process (``build_app`` with its lifespan, reached through httpx's ASGI
transport), as ``serve --transport http`` builds it from the same environment; the scanner is the
fake, a real process. (Two server processes were 3.8 of this module's 5 CPU s.)
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import pytest
from servers import until_state

import mcp_kscan.settings
from mcp_kscan.http_compat.app import build_app

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def rest_server(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the REST app built from this environment (on top of the process's), lifespan run."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    mcp_kscan.settings.configure(None)  # below the service layer, code still reads the global
    try:
        app = build_app(mcp_kscan.settings.get_settings())
        async with (app.router.lifespan_context(app),
                    httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1",
                                      timeout=60) as client):
            yield client
    finally:
        mcp_kscan.settings.configure(None)


def big_kubescape_report(resources: int) -> dict:
    """A valid Kubescape v2 report (our own, generated) with one failed control per resource."""
    control = {"controlID": "C-0057", "name": "Privileged container", "scoreFactor": 8,
               "status": "failed", "ResourceCounters": {"failedResources": resources, "passedResources": 0,
                                                         "skippedResources": 0}}
    items, results = [], []
    for i in range(resources):
        rid = f"apps/v1/ns/Deployment/app-{i}"
        items.append({"resourceID": rid, "object": {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": f"app-{i}", "namespace": "ns", "annotations": {"padding": "x" * 600}}}})
        results.append({"resourceID": rid, "controls": [{
            "controlID": "C-0057", "name": "Privileged container", "status": {"status": "failed"},
            "rules": [{"name": "rule-privileged-container", "status": "failed", "paths": [
                {"failedPath": "spec.template.spec.containers[0].securityContext.privileged"}]}]}]})
    return {
        "summaryDetails": {"controls": {"C-0057": control}, "frameworks": [{"name": "NSA", "complianceScore": 0}],
                           "ResourceCounters": {"failedResources": resources, "passedResources": 0,
                                                "skippedResources": 0},
                           "complianceScore": 0, "score": 100},
        "resources": items,
        "results": results,
    }


async def _wait_done(client: httpx.AsyncClient, scan_id: str) -> None:
    with anyio.fail_after(60):
        while (await client.get("/v1/status", params={"id": scan_id})).json()["type"] != "notBusy":
            await anyio.sleep(0.05)


async def test_full_database_reports_the_error_and_keeps_serving(
    tmp_path: Path, fake_bin, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    report = tmp_path / "big-report.json"
    report.write_text(json.dumps(big_kubescape_report(2_000)))  # ~1.5 MB: more than the cap below
    # 256 pages of 4 KiB (1 MiB; the cap counts 4 KiB pages whatever the file's own page size):
    # the schema (15 pages of 16 KiB) and a small scan fit, a 1.5 MB report does not.
    async with rest_server({**fake_bin.env, "MCP_KSCAN_DB_MAX_PAGES": "256"}, monkeypatch) as client:
        small = await client.post("/v1/scan", params={"wait": "true", "keep": "true"}, json={"engine": "kubescape"})
        assert small.status_code == 200, small.text
        small_id = small.json()["id"]

        fake_bin.configure(kubescape_report=report)
        big = (await client.post("/v1/scan", json={"engine": "kubescape"})).json()["id"]
        await _wait_done(client, big)
        failed = await client.get("/v1/results", params={"id": big, "keep": "true"})
        assert failed.status_code == 500
        message = failed.json()["response"]
        assert "could not be stored" in message and "full" in message
        assert str(fake_bin.data_dir) not in message

        assert (await client.get("/readyz")).status_code == 503
        assert (await client.get("/livez")).status_code == 200
        # Stored results are still served, and the scan that could not be stored is over.
        old = await client.get("/v1/results", params={"id": small_id, "keep": "true"})
        assert old.status_code == 200 and old.json()["type"] == "v1results"
        status = (await client.get("/v1/status", params={"id": big})).json()
        assert status["type"] == "notBusy"


def _ro_mount(path: Path) -> bool:
    """Bind-mount ``path`` read-only onto itself; False where this machine does not allow it."""
    try:
        subprocess.run(["mount", "--bind", str(path), str(path)], check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        _umount(path)
        return False
    return True


async def _store_a_scan(env: dict[str, str]) -> str:
    """One finished Kubescape scan (the fake) in the data dir of ``env``, through the runner every
    front end uses, run in this process: the database is what the test needs, not a server."""
    from mcp_kscan.runner.records import ScanState
    from mcp_kscan.scanners.kubescape_request import KubescapeRequest
    from mcp_kscan.service import ScanService, open_manager, validate_request
    from mcp_kscan.settings import Settings

    settings = Settings.from_env({**os.environ, **env})
    async with open_manager(settings) as manager:
        req = validate_request(KubescapeRequest, {"engine": "kubescape"}, settings)
        record = await ScanService(manager, settings).start_kubescape(req, origin="rest")
        done = await until_state(manager, record.scan_id, {ScanState.succeeded, ScanState.failed})
    assert done.status is ScanState.succeeded, done.error
    return record.scan_id


async def test_read_only_database_serves_results_and_refuses_work(
    tmp_path: Path, fake_bin, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    kept = await _store_a_scan(fake_bin.env)

    if not await anyio.to_thread.run_sync(_ro_mount, fake_bin.data_dir):
        pytest.skip("cannot bind-mount a read-only directory here (needs root with mount rights)")
    try:
        async with rest_server(fake_bin.env, monkeypatch) as client:
            assert (await client.get("/livez")).status_code == 200
            assert (await client.get("/readyz")).status_code == 503
            old = await client.get("/v1/results", params={"id": kept, "keep": "true"})
            assert old.status_code == 200 and old.json()["type"] == "v1results"
            refused = await client.post("/v1/scan", json={"engine": "kubescape"})
            assert refused.status_code == 503
            assert "read-only" in refused.json()["response"]
            assert not fake_bin.starts("kubescape")[1:], "no scanner may start when nothing can be stored"
    finally:
        await anyio.to_thread.run_sync(_umount, fake_bin.data_dir)


def _umount(path: Path) -> None:
    subprocess.run(["umount", str(path)], capture_output=True, timeout=10)
