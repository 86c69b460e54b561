"""The results database cannot be written: full (a size cap, as on a full disk) or read-only.

Guaranteed: a clear error, serving goes on (health, status, stored results), ``/readyz`` says 503,
and no scan is left showing ``running``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import anyio
import pytest
from servers import LOOPBACK, until_state

from e2e.conftest import start_http_server, stop_server

from .conftest import wait_for


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


def _wait_done(base: str, scan_id: str) -> dict:
    def done() -> dict | None:
        body = LOOPBACK.get(base + "/v1/status", params={"id": scan_id}, timeout=10).json()
        return body if body["type"] == "notBusy" else None

    return wait_for(done, 60, "the scan to finish")


def test_full_database_reports_the_error_and_keeps_serving(tmp_path: Path, fake_bin) -> None:  # type: ignore[no-untyped-def]
    report = tmp_path / "big-report.json"
    report.write_text(json.dumps(big_kubescape_report(2_000)))  # ~1.5 MB: more than the cap below
    # 64 pages of 4 KiB: the schema and a small scan fit, a 1.5 MB report does not.
    server = start_http_server({**fake_bin.env, "MCP_KSCAN_DB_MAX_PAGES": "64"}, tmp_path)
    try:
        base = server.base_url
        small = LOOPBACK.post(base + "/v1/scan", params={"wait": "true", "keep": "true"},
                           json={"engine": "kubescape"}, timeout=60)
        assert small.status_code == 200, small.text
        small_id = small.json()["id"]

        fake_bin.configure(kubescape_report=report)
        big = LOOPBACK.post(base + "/v1/scan", json={"engine": "kubescape"}, timeout=30).json()["id"]
        _wait_done(base, big)
        failed = LOOPBACK.get(base + "/v1/results", params={"id": big, "keep": "true"}, timeout=10)
        assert failed.status_code == 500
        message = failed.json()["response"]
        assert "could not be stored" in message and "full" in message
        assert str(fake_bin.data_dir) not in message

        assert LOOPBACK.get(base + "/readyz", timeout=10).status_code == 503
        assert LOOPBACK.get(base + "/livez", timeout=10).status_code == 200
        # Stored results are still served, and MCP still answers.
        old = LOOPBACK.get(base + "/v1/results", params={"id": small_id, "keep": "true"}, timeout=10)
        assert old.status_code == 200 and old.json()["type"] == "v1results"
        status = LOOPBACK.get(base + "/v1/status", params={"id": big}, timeout=10).json()
        assert status["type"] == "notBusy"
    finally:
        stop_server(server)


def _ro_mount(path: Path) -> bool:
    """Bind-mount ``path`` read-only onto itself; False where this machine does not allow it."""
    try:
        subprocess.run(["mount", "--bind", str(path), str(path)], check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        subprocess.run(["umount", str(path)], capture_output=True, timeout=10)
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


def test_read_only_database_serves_results_and_refuses_work(tmp_path: Path, fake_bin) -> None:  # type: ignore[no-untyped-def]
    kept = anyio.run(_store_a_scan, fake_bin.env)

    if not _ro_mount(fake_bin.data_dir):
        pytest.skip("cannot bind-mount a read-only directory here (needs root with mount rights)")
    try:
        server = start_http_server(fake_bin.env, tmp_path, ready_path="/livez")
        try:
            base = server.base_url
            assert LOOPBACK.get(base + "/readyz", timeout=10).status_code == 503
            old = LOOPBACK.get(base + "/v1/results", params={"id": kept, "keep": "true"}, timeout=10)
            assert old.status_code == 200 and old.json()["type"] == "v1results"
            refused = LOOPBACK.post(base + "/v1/scan", json={"engine": "kubescape"}, timeout=10)
            assert refused.status_code == 503
            assert "read-only" in refused.json()["response"]
            assert not fake_bin.starts("kubescape")[1:], "no scanner may start when nothing can be stored"
        finally:
            stop_server(server)
    finally:
        subprocess.run(["umount", str(fake_bin.data_dir)], capture_output=True, timeout=10)
