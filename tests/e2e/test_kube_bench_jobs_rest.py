"""kube-bench as Kubernetes Jobs through the REST endpoint of a real server (fake Kubernetes API)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from servers import LOOPBACK

from .conftest import start_http_server, stop_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fakes"))
from kube_api import Behaviour, FakeKubeAPI, node_object  # noqa: E402

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


def test_rest_kube_bench_with_job_executor(tmp_path: Path, fake_bin) -> None:  # type: ignore[no-untyped-def]
    api = FakeKubeAPI(
        nodes=[node_object("worker-a"), node_object("worker-b")],
        default_behaviour=Behaviour(log=json.dumps(REPORT).encode()),
    )
    api.start()
    try:
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        env = {**fake_bin.env, "KUBECONFIG": str(kubeconfig)}
        env.pop("MCP_KSCAN_KUBE_BENCH_PATH")  # no local binary: the cluster is the only way
        server = start_http_server(env, tmp_path)
        try:
            r = LOOPBACK.post(
                server.base_url + "/api/tools/kube-bench",
                json={"targets": "node", "executor": "job", "nodes": "worker-a,worker-b", "max_parallel_jobs": 1},
                timeout=60,
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
            stop_server(server)
    finally:
        api.stop()
    assert not fake_bin.starts("kube-bench"), "the local binary must not run for executor=job"
