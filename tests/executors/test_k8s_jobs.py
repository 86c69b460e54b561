"""kube-bench as Kubernetes Jobs, end to end against the fake API server (real HTTP, real client)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from kube_api import Behaviour, FakeKubeAPI, node_object

from mcp_kscan.cluster import ClusterSource
from mcp_kscan.executors import job_manifest as jm
from mcp_kscan.executors.k8s_jobs import KubeBenchJobsScan
from mcp_kscan.executors.pod_log import extract_report
from mcp_kscan.runner.manager import ScanManager
from mcp_kscan.runner.records import ScanRecord, ScanState
from mcp_kscan.runner.store import ItemFilter
from mcp_kscan.scanners.kube_bench_request import KubeBenchRequest
from mcp_kscan.settings import Settings

from .conftest import SMALL_REPORT

pytestmark = pytest.mark.anyio

MOUNTS = {
    "/var/lib/etcd": "/var/lib/etcd",
    "/var/lib/kubelet": "/var/lib/kubelet",
    "/var/lib/kube-scheduler": "/var/lib/kube-scheduler",
    "/var/lib/kube-controller-manager": "/var/lib/kube-controller-manager",
    "/etc/systemd": "/etc/systemd",
    "/lib/systemd": "/lib/systemd",
    "/srv/kubernetes": "/srv/kubernetes",
    "/etc/kubernetes": "/etc/kubernetes",
    "/usr/bin": "/usr/local/mount-from-host/bin",
    "/etc/cni/net.d": "/etc/cni/net.d",
    "/opt/cni/bin": "/opt/cni/bin",
}
CP_TOLERATIONS = [
    {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node-role.kubernetes.io/master", "operator": "Exists", "effect": "NoSchedule"},
]


async def run_scan(
    settings: Settings, kubeconfig: Path, wait: float = 30, **fields: Any
) -> tuple[ScanRecord, dict[str, Any] | None, list[dict[str, Any]]]:
    """Submit a Job-executor scan to a real ScanManager; return (record, raw output, checks)."""
    req = KubeBenchRequest(executor="job", **fields)
    async with ScanManager(settings) as manager:
        record = await manager.submit(KubeBenchJobsScan(req, settings, source=ClusterSource(str(kubeconfig), None)))
        done = await manager.wait(record.scan_id, wait)
        raw = await manager.raw_output(record.scan_id)
        page = await manager.items(record.scan_id, "check", ItemFilter(), 200, None)
    return done, (json.loads(raw[0]) if raw else None), page.items


def jobs_by_node(api: FakeKubeAPI) -> dict[str, dict[str, Any]]:
    return {j["spec"]["template"]["spec"]["nodeName"]: j for j in api.created_jobs}


# --------------------------------------------------------------------------- the manifest


def test_manifest_is_pinned_read_only_and_labelled() -> None:
    cmd = ["kube-bench", "run", "--targets", "node", "--json"]
    worker = jm.build_job_manifest(name="kube-bench-abcd1234-1", namespace="kube-bench", scan_id="abcd1234-x",
                                   node="worker-1", command=cmd)
    labels = {"mcp-kscan.io/scan-id": "abcd1234-x", "app.kubernetes.io/name": "kube-bench",
              "app.kubernetes.io/managed-by": "mcp-kscan"}
    assert worker == {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "kube-bench-abcd1234-1", "namespace": "kube-bench", "labels": labels,
                     "annotations": {"mcp-kscan.io/node": "worker-1"}},
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 3600,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "hostPID": True,
                    "nodeName": "worker-1",
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": True,
                    "containers": [{
                        "name": "kube-bench",
                        "image": "docker.io/aquasec/kube-bench:v0.15.6",
                        "imagePullPolicy": "IfNotPresent",
                        "command": cmd,
                        "volumeMounts": [{"name": v, "mountPath": m, "readOnly": True} for v, _, m in jm.HOST_MOUNTS],
                    }],
                    "volumes": [{"name": v, "hostPath": {"path": h}} for v, h, _ in jm.HOST_MOUNTS],
                },
            },
        },
    }
    assert {h: m for _, h, m in jm.HOST_MOUNTS} == MOUNTS
    cp = jm.build_job_manifest(name="n", namespace="ns", scan_id="s", node="cp-1", command=cmd,
                               control_plane=True, image="registry.local/kb:1", active_deadline_seconds=90)
    assert cp["spec"]["template"]["spec"]["tolerations"] == CP_TOLERATIONS
    assert cp["spec"]["activeDeadlineSeconds"] == 90
    assert cp["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/kb:1"


def test_extract_report_skips_log_lines_around_the_json() -> None:
    log = b"I0101 00:00:00 util.go:1] detected\n" + SMALL_REPORT + b"\nW0101 trailing glog line\n"
    doc, report = extract_report(log, "worker-1")
    assert doc["Totals"]["total_fail"] == 1
    assert {c.node for c in report.checks} == {"worker-1"}


def summary_json(record: ScanRecord) -> dict[str, Any]:
    """The record's summary as callers receive it (JSON)."""
    assert record.summary is not None
    return record.summary.model_dump(mode="json")


# --------------------------------------------------------------------------- scans


async def test_three_nodes_all_succeed(job_settings, fake_cluster) -> None:  # type: ignore[no-untyped-def]
    api, kc = fake_cluster()
    record, raw, checks = await run_scan(job_settings, kc)
    assert record.status is ScanState.succeeded, record.error
    assert record.engine == "kube-bench-job"
    assert (record.progress_done, record.progress_total) == (3, 3)
    summary = summary_json(record)
    assert summary["totals"] == {"pass": 3, "fail": 3, "warn": 0, "info": 0}
    assert [(n["node"], n["totals"]["fail"], n["error"]) for n in summary["nodes"]] == [
        ("cp-1", 1, None), ("worker-1", 1, None), ("worker-2", 1, None)]
    assert {fc["node"] for fc in summary["failed_checks"]} == {"cp-1", "worker-1", "worker-2"}
    assert {c["node"] for c in checks} == {"cp-1", "worker-1", "worker-2"} and len(checks) == 6

    # The exact Jobs the API server received.
    jobs = jobs_by_node(api)
    assert set(jobs) == {"cp-1", "worker-1", "worker-2"}
    for node, job in jobs.items():
        meta, spec = job["metadata"], job["spec"]
        pod = spec["template"]["spec"]
        assert meta["labels"]["mcp-kscan.io/scan-id"] == record.scan_id
        assert spec["template"]["metadata"]["labels"]["mcp-kscan.io/scan-id"] == record.scan_id
        assert meta["annotations"] == {"mcp-kscan.io/node": node}
        assert pod["hostPID"] is True and pod["restartPolicy"] == "Never" and pod["nodeName"] == node
        assert spec["backoffLimit"] == 0 and spec["ttlSecondsAfterFinished"] > 0
        c = pod["containers"][0]
        assert c["image"] == "docker.io/aquasec/kube-bench:v0.15.6"
        assert all(m["readOnly"] is True for m in c["volumeMounts"])
        host = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"]}
        assert {host[m["name"]]: m["mountPath"] for m in c["volumeMounts"]} == MOUNTS
        assert ("tolerations" in pod) == (node == "cp-1")
    assert jobs["cp-1"]["spec"]["template"]["spec"]["tolerations"] == CP_TOLERATIONS
    cmd = lambda n: jobs[n]["spec"]["template"]["spec"]["containers"][0]["command"]  # noqa: E731
    assert cmd("cp-1") == ["kube-bench", "run", "--targets", "master,controlplane,etcd,node,policies",
                           "--json", "--version", "1.30"]
    assert cmd("worker-1") == ["kube-bench", "run", "--targets", "node", "--json", "--version", "1.30"]

    # Read → deleted, pods with them (Background propagation); namespace created for privileged pods.
    assert api.jobs() == [] and api.list("Pod") == []
    assert sorted(api.deleted_jobs) == sorted(j["metadata"]["name"] for j in api.created_jobs)
    ns = api.get("Namespace", "kube-bench")
    assert ns is not None and ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    # Watches, not polling: a handful of list calls, one watch per kind (the scan is shorter than a window).
    watches = [p for m, p in api.requests if "watch=true" in p.lower()]
    assert len(watches) == 2
    with anyio.fail_after(5):  # and closed them when the scan ended
        while api.open_watches:
            await anyio.sleep(0.05)
    assert raw is not None and raw["executor"] == "job"
    assert [n["node"] for n in raw["nodes"]] == ["cp-1", "worker-1", "worker-2"]
    assert raw["nodes"][0]["output"]["Totals"]["total_fail"] == 1


async def test_real_kube_bench_output_per_node(job_settings, fake_cluster, kube_bench_json) -> None:  # type: ignore[no-untyped-def]
    api, kc = fake_cluster(default_behaviour=Behaviour(log=kube_bench_json))
    record, _, _ = await run_scan(job_settings, kc, nodes=["worker-1", "worker-2"])
    assert record.status is ScanState.succeeded, record.error
    one = json.loads(kube_bench_json)["Totals"]
    assert summary_json(record)["totals"]["fail"] == 2 * one["total_fail"]
    assert summary_json(record)["totals"]["pass"] == 2 * one["total_pass"]
    assert [n["node"] for n in summary_json(record)["nodes"]] == ["worker-1", "worker-2"]
    assert {j["spec"]["template"]["spec"]["nodeName"] for j in api.created_jobs} == {"worker-1", "worker-2"}


async def test_image_pull_failure_on_one_node_keeps_the_others(job_settings, fake_cluster) -> None:  # type: ignore[no-untyped-def]
    api, kc = fake_cluster(behaviours={"worker-2": Behaviour("image_pull")})
    record, raw, _ = await run_scan(job_settings, kc, image="registry.example/kube-bench:missing")
    assert record.status is ScanState.succeeded, record.error
    nodes = {n["node"]: n for n in summary_json(record)["nodes"]}
    assert nodes["cp-1"]["totals"]["fail"] == 1 and nodes["worker-1"]["totals"]["fail"] == 1
    err = nodes["worker-2"]["error"]
    assert nodes["worker-2"]["totals"] is None
    assert "image pull failed" in err and "ImagePullBackOff" in err and "registry.example/kube-bench:missing" in err
    assert any("1 of 3 nodes have no result" in w and "worker-2" in w for w in summary_json(record)["warnings"])
    assert api.jobs() == []  # the stuck Job was deleted too
    assert raw["nodes"][2]["status"] == "failed"


async def test_nonzero_exit_notready_and_missing_nodes(job_settings, fake_cluster) -> None:  # type: ignore[no-untyped-def]
    nodes = [node_object("cp-1", control_plane=True), node_object("worker-1"),
             node_object("worker-down", ready=False)]
    api, kc = fake_cluster(nodes=nodes, behaviours={
        "worker-1": Behaviour("exit", log=b"[ERRO] failed to load config: open cfg/config.yaml: no such file\n",
                              exit_code=1)})
    record, _, _ = await run_scan(job_settings, kc, nodes=["cp-1", "worker-1", "worker-down", "ghost"])
    assert record.status is ScanState.succeeded, record.error
    errors = {n["node"]: n["error"] for n in summary_json(record)["nodes"]}
    assert errors["cp-1"] is None
    assert errors["worker-1"].startswith("kube-bench exited 1: [ERRO] failed to load config")
    assert "NotReady" in errors["worker-down"] and "KubeletNotReady" in errors["worker-down"]
    assert errors["ghost"] == "no node named 'ghost' in the cluster"
    assert set(jobs_by_node(api)) == {"cp-1", "worker-1"}  # no Job for a NotReady or unknown node


async def test_a_job_failed_before_its_pod_is_seen_reports_kube_bench_s_own_exit(job_settings, fake_cluster) -> None:  # type: ignore[no-untyped-def]
    """The Pod and Job watches have no order between them: when a Job's Failed condition
    (BackoffLimitExceeded) comes through before any event of its Pod, the node's error is still
    kube-bench's exit code and log, read from the Pod, not the Job's condition."""
    api, kc = fake_cluster(nodes=[node_object("cp-1", control_plane=True), node_object("worker-1")],
                           behaviours={"worker-1": Behaviour("exit", log=b"[ERRO] failed to load config\n", exit_code=1)},
                           pod_watch_lag_s=2.0)
    record, _, _ = await run_scan(job_settings, kc, nodes=["cp-1", "worker-1"])
    assert record.status is ScanState.succeeded, record.error
    errors = {n["node"]: n["error"] for n in summary_json(record)["nodes"]}
    assert errors["cp-1"] is None
    assert errors["worker-1"].startswith("kube-bench exited 1: [ERRO] failed to load config"), errors["worker-1"]


async def test_unschedulable_pod_is_a_node_failure(job_settings, fake_cluster) -> None:  # type: ignore[no-untyped-def]
    api, kc = fake_cluster(behaviours={"worker-1": Behaviour("unschedulable")})
    record, _, _ = await run_scan(job_settings, kc, node_selector="!node-role.kubernetes.io/control-plane")
    errors = {n["node"]: n["error"] for n in summary_json(record)["nodes"]}
    assert set(errors) == {"worker-1", "worker-2"}  # the selector reached the API server
    assert "could not be scheduled" in errors["worker-1"] and errors["worker-2"] is None
    assert api.jobs() == []


async def test_all_nodes_failing_fails_the_scan(job_settings, fake_cluster) -> None:  # type: ignore[no-untyped-def]
    api, kc = fake_cluster(default_behaviour=Behaviour("exit", log=b"boom", exit_code=2))
    record, _, _ = await run_scan(job_settings, kc)
    assert record.status is ScanState.failed
    assert record.error.startswith("kube-bench failed on every node (3): node cp-1: kube-bench exited 2: boom")


async def test_timeout_deletes_the_job_and_keeps_other_nodes(job_settings, fake_cluster) -> None:  # type: ignore[no-untyped-def]
    api, kc = fake_cluster(behaviours={"worker-1": Behaviour("hang")})
    started = time.monotonic()
    # 8 s: a node whose Job would start with under 1 s left is not started at all, and the first
    # scan in a process spends about 1 s importing the Kubernetes client before it lists nodes: with
    # 4 s, a CI run with 8 xdist workers on 2 cores once ran out before any Job started.
    record, _, _ = await run_scan(job_settings, kc, timeout_seconds=8)
    assert time.monotonic() - started < 30
    assert record.status is ScanState.succeeded, record.error
    errors = {n["node"]: n["error"] for n in summary_json(record)["nodes"]}
    assert "did not finish within the scan's 8 s" in errors["worker-1"] and "Job was deleted" in errors["worker-1"]
    assert errors["cp-1"] is None and errors["worker-2"] is None
    hung = jobs_by_node(api)["worker-1"]["metadata"]["name"]
    assert hung in api.deleted_jobs and api.jobs() == [] and api.list("Pod") == []


async def test_every_node_timing_out_is_a_timed_out_scan(job_settings, fake_cluster) -> None:  # type: ignore[no-untyped-def]
    api, kc = fake_cluster(default_behaviour=Behaviour("hang"))
    record, _, _ = await run_scan(job_settings, kc, timeout_seconds=1.0, keep_jobs=True)
    assert record.status is ScanState.timed_out
    assert api.jobs() == []  # hung Jobs are deleted even with keep_jobs


async def test_cancel_deletes_the_scans_jobs(job_settings, fake_cluster) -> None:  # type: ignore[no-untyped-def]
    api, kc = fake_cluster(default_behaviour=Behaviour("hang"))
    req = KubeBenchRequest(executor="job", keep_jobs=True)
    async with ScanManager(job_settings) as manager:
        record = await manager.submit(KubeBenchJobsScan(req, job_settings, source=ClusterSource(str(kc), None)))
        with anyio.fail_after(10):
            while len(api.jobs()) < 3:
                await anyio.sleep(0.02)
        started = time.monotonic()
        final = await manager.cancel(record.scan_id, "cancelled by request")
        assert time.monotonic() - started < 5  # the watch threads did not hold the cancel up
    assert final.status is ScanState.cancelled
    assert api.jobs() == [] and api.list("Pod") == []
    with anyio.fail_after(5):  # cancellation closed both watch streams
        while api.open_watches:
            await anyio.sleep(0.05)
    delete_calls = [p for m, p in api.requests if m == "DELETE"]
    assert any("labelSelector=mcp-kscan.io%2Fscan-id%3D" + record.scan_id in p or record.scan_id in p
               for p in delete_calls)


async def test_keep_jobs_leaves_finished_jobs(job_settings, fake_cluster) -> None:  # type: ignore[no-untyped-def]
    api, kc = fake_cluster()
    record, _, _ = await run_scan(job_settings, kc, keep_jobs=True)
    assert record.status is ScanState.succeeded
    kept = api.jobs("kube-bench")
    assert len(kept) == 3 and api.deleted_jobs == []
    assert all(j["metadata"]["labels"]["mcp-kscan.io/scan-id"] == record.scan_id for j in kept)
    assert all(j["status"].get("succeeded") == 1 for j in kept)


@pytest.mark.slow
async def test_60_nodes_never_more_than_max_parallel_jobs(job_settings, fake_cluster) -> None:  # type: ignore[no-untyped-def]
    """Six times the cap, and more nodes than anyio's 40 worker threads the API calls share:
    every slot is taken and given back several times over (200 nodes proved no more, at 3× the CPU)."""
    nodes = [node_object(f"node-{i:03d}") for i in range(60)]
    api, kc = fake_cluster(nodes=nodes, delay_s=0.005)
    record, _, _ = await run_scan(job_settings, kc, wait=60, all_nodes=True, max_parallel_jobs=10)
    assert record.status is ScanState.succeeded, record.error
    assert len(summary_json(record)["nodes"]) == 60 and all(n["error"] is None for n in summary_json(record)["nodes"])
    assert summary_json(record)["totals"]["fail"] == 60
    assert (record.progress_done, record.progress_total) == (60, 60)
    assert len(api.created_jobs) == 60
    assert api.peak_active_jobs <= 10 and api.peak_jobs <= 10
    assert api.peak_jobs >= 5  # and it did run them in parallel


async def test_managed_eks_picks_benchmark_and_targets(job_settings, fake_cluster) -> None:  # type: ignore[no-untyped-def]
    api, kc = fake_cluster(nodes=[node_object("ip-10-0-1-1"), node_object("ip-10-0-1-2")],
                           git_version="v1.30.2-eks-2f008fe")
    record, raw, _ = await run_scan(job_settings, kc)
    assert record.status is ScanState.succeeded, record.error
    cmds = {n: j["spec"]["template"]["spec"]["containers"][0]["command"] for n, j in jobs_by_node(api).items()}
    assert cmds["ip-10-0-1-1"] == ["kube-bench", "run", "--targets", "node,policies,managedservices", "--json",
                                   "--benchmark", "eks-1.7.0"]
    assert cmds["ip-10-0-1-2"] == ["kube-bench", "run", "--targets", "node", "--json", "--benchmark", "eks-1.7.0"]
    assert any("eks-1.7.0" in w and "v1.30.2-eks-2f008fe" in w for w in summary_json(record)["warnings"])
    assert raw["platform"] == "eks"


async def test_managed_aks_from_labels_and_control_plane_targets_dropped(job_settings, fake_cluster) -> None:  # type: ignore[no-untyped-def]
    nodes = [node_object("aks-pool-1", labels={"kubernetes.azure.com/cluster": "mc_rg"},
                         provider_id="azure:///subscriptions/x")]
    api, kc = fake_cluster(nodes=nodes, git_version="v1.28.9")
    record, _, _ = await run_scan(job_settings, kc, targets=["master", "node"])
    cmd = api.created_jobs[0]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert cmd == ["kube-bench", "run", "--targets", "node", "--json", "--benchmark", "aks-1.8"]
    warnings = " ".join(summary_json(record)["warnings"])
    assert "Skipped target(s) master" in warnings and "aks-1.8" in warnings


async def test_managed_gke_with_only_control_plane_targets_fails_plainly(job_settings, fake_cluster) -> None:  # type: ignore[no-untyped-def]
    api, kc = fake_cluster(git_version="v1.31.1-gke.1678000")
    record, _, _ = await run_scan(job_settings, kc, targets=["master", "etcd"])
    assert record.status is ScanState.failed
    assert "managed GKE cluster" in record.error and "master, etcd" in record.error
    assert api.created_jobs == []


async def test_user_benchmark_wins_on_managed_cluster(job_settings, fake_cluster) -> None:  # type: ignore[no-untyped-def]
    api, kc = fake_cluster(nodes=[node_object("n1")], git_version="v1.33.0-eks-1")
    await run_scan(job_settings, kc, benchmark="eks-1.5.0", check=["3.1.1"])
    cmd = api.created_jobs[0]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert cmd == ["kube-bench", "run", "--targets", "node,policies,managedservices", "--json", "--benchmark",
                   "eks-1.5.0", "--check", "3.1.1"]


async def test_image_setting_and_namespace(job_settings, fake_cluster, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import mcp_kscan.settings

    monkeypatch.setenv("MCP_KSCAN_KUBE_BENCH_IMAGE", "mirror.local/aquasec/kube-bench:v0.15.6")
    mcp_kscan.settings.configure(None)
    api, kc = fake_cluster(nodes=[node_object("n1")])
    record, _, _ = await run_scan(mcp_kscan.settings.get_settings(), kc, namespace="security-scans")
    assert record.status is ScanState.succeeded, record.error
    job = api.created_jobs[0]
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "mirror.local/aquasec/kube-bench:v0.15.6"
    assert ("POST", "/apis/batch/v1/namespaces/security-scans/jobs") in api.requests
    assert api.get("Namespace", "security-scans") is not None


async def test_forbidden_and_unreachable_api_are_plain_errors(job_settings, fake_cluster, tmp_path) -> None:  # type: ignore[no-untyped-def]
    api, kc = fake_cluster(token="right")
    bad = json.loads(kc.read_text())
    bad["users"][0]["user"]["token"] = "wrong"
    kc.write_text(json.dumps(bad))
    record, _, _ = await run_scan(job_settings, kc)
    assert record.status is ScanState.failed
    assert "401" in record.error and "docs/kube-bench-jobs.md" in record.error
    api.stop()
    api2, kc2 = fake_cluster()
    api2.stop()  # nothing listens there any more
    record, _, _ = await run_scan(job_settings, kc2)
    assert record.status is ScanState.failed and "cannot reach the API server" in record.error
