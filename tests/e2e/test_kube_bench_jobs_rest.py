"""kube-bench as Kubernetes Jobs through the REST endpoint (fake Kubernetes API).

The app runs in this process (``build_app`` with its lifespan, through httpx's ASGI transport, as
tests/http_compat does): what is tested is the route's wiring to the Job executor (targets, nodes,
max_parallel_jobs, the report), which a uvicorn process (~2 CPU s to start) adds nothing to.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from fakes.kube_api import Behaviour, FakeKubeAPI, node_object

import mcp_kscan.settings
from mcp_kscan.http_compat.app import build_app

pytestmark = pytest.mark.anyio


REPORT = {
    "Controls": [
        {
            "id": "4", "version": "cis-1.10", "detected_version": "1.30", "text": "Worker Node", "node_type": "node",
            "tests": [{"section": "4.1", "desc": "Worker files", "results": [
                {"test_number": "4.1.1", "test_desc": "kubelet service file permissions", "audit": "stat",
                 "type": "", "remediation": "chmod 600", "test_info": [], "status": "FAIL", "actual_value": "644",
                 "scored": True, "expected_result": "600", "reason": ""}],
                "pass": 0, "fail": 1, "warn": 0, "info": 0}],
            "total_pass": 0, "total_fail": 1, "total_warn": 0, "total_info": 0,
        }
    ],
    "Totals": {"total_pass": 0, "total_fail": 1, "total_warn": 0, "total_info": 0},
}


async def test_rest_kube_bench_with_job_executor(tmp_path: Path, fake_bin, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    api = FakeKubeAPI(
        nodes=[node_object("worker-a"), node_object("worker-b")],
        default_behaviour=Behaviour(log=json.dumps(REPORT).encode()),
    )
    api.start()
    try:
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        for name, value in {**fake_bin.env, "KUBECONFIG": str(kubeconfig)}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("MCP_KSCAN_KUBE_BENCH_PATH")  # no local binary: the cluster is the only way
        for name in ("MCP_KSCAN_TOKEN", "KS_API_TOKEN", "MCP_KSCAN_KUBE_CONTEXT"):  # not the developer's shell's
            monkeypatch.delenv(name, raising=False)
        mcp_kscan.settings.configure(None)  # below the service layer, code still reads the global
        app = build_app(mcp_kscan.settings.get_settings())
        try:
            async with (app.router.lifespan_context(app),
                        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1",
                                          timeout=60) as http):
                r = await http.post(
                    "/api/tools/kube-bench",
                    json={"targets": "node", "executor": "job", "nodes": "worker-a,worker-b", "max_parallel_jobs": 1},
                )
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["success"] is True and body["timed_out"] is False
            assert "worker-a" in body["stdout"] and "worker-b" in body["stdout"]
            created = [j["spec"]["template"]["spec"]["nodeName"] for j in api.created_jobs]
            assert sorted(created) == ["worker-a", "worker-b"]
            assert api.peak_jobs <= 1  # max_parallel_jobs reached the executor
            command = api.created_jobs[0]["spec"]["template"]["spec"]["containers"][0]["command"]
            assert command[:4] == ["kube-bench", "run", "--targets", "node"] and "--json" in command
        finally:
            mcp_kscan.settings.configure(None)
    finally:
        api.stop()
    assert not fake_bin.starts("kube-bench"), "the local binary must not run for executor=job"
