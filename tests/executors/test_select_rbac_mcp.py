"""The auto executor decision, the new request fields, the shipped RBAC, the fake API's generic
listing, and kube_bench executor=job through the MCP tool."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube_api import Behaviour
from mcp import Client
from pydantic import ValidationError

from mcp_kscan.cluster import ClusterSource, resolve_cluster
from mcp_kscan.errors import InvalidRequest
from mcp_kscan.executors import k8s_jobs
from mcp_kscan.executors.select import NO_EXECUTOR_MESSAGE, choose_executor, host_is_node
from mcp_kscan.scanners.kube_bench_request import KubeBenchRequest
from mcp_kscan.server import build_server

from .conftest import SMALL_REPORT

REPO = Path(__file__).resolve().parents[2]


def fake_proc(tmp_path: Path, *comms: str) -> Path:
    proc = tmp_path / "proc"
    for pid, comm in enumerate(("systemd", "bash", *comms), start=1):
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "comm").write_text(comm + "\n")
    (proc / "self").mkdir()
    return proc


# --------------------------------------------------------------------------- executor choice


def test_host_is_node_looks_for_kubelet_or_apiserver(tmp_path: Path) -> None:
    assert host_is_node(fake_proc(tmp_path / "a", "kubelet")) is True
    assert host_is_node(fake_proc(tmp_path / "b", "kube-apiserver")) is True
    assert host_is_node(fake_proc(tmp_path / "c", "containerd", "python3")) is False
    assert host_is_node(tmp_path / "missing") is False


def test_auto_prefers_local_on_a_node_then_job_with_a_cluster(job_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    node = fake_proc(tmp_path / "n", "kubelet")
    laptop = fake_proc(tmp_path / "l", "firefox")
    kc = tmp_path / "kubeconfig"
    kc.write_text("apiVersion: v1\nkind: Config\n")
    assert choose_executor(KubeBenchRequest(), job_settings, node) == "local"
    assert choose_executor(KubeBenchRequest(), job_settings, laptop, cluster=ClusterSource(str(kc), None)) == "job"
    assert choose_executor(KubeBenchRequest(executor="local"), job_settings, laptop) == "local"
    assert choose_executor(KubeBenchRequest(nodes=["n1"]), job_settings, node) == "job"  # nodes only mean Jobs
    with pytest.raises(InvalidRequest) as err:
        choose_executor(KubeBenchRequest(), job_settings, laptop)
    assert str(err.value) == f"executor: {NO_EXECUTOR_MESSAGE}"
    assert "executor='job'" in str(err.value) and "executor='local'" in str(err.value)


def test_auto_finds_home_kubeconfig_and_respects_a_configured_binary(job_settings, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import mcp_kscan.settings

    laptop = fake_proc(tmp_path / "l", "firefox")
    home_kc = tmp_path / "home" / ".kube" / "config"
    home_kc.parent.mkdir(parents=True)
    home_kc.write_text("apiVersion: v1\nkind: Config\n")
    cluster = resolve_cluster(mcp_kscan.settings.get_settings())
    assert cluster is not None and cluster.kubeconfig == str(home_kc)
    assert choose_executor(KubeBenchRequest(), job_settings, laptop, cluster=cluster) == "job"
    monkeypatch.setenv("MCP_KSCAN_KUBE_BENCH_PATH", "/opt/kube-bench")
    mcp_kscan.settings.configure(None)
    assert choose_executor(KubeBenchRequest(), mcp_kscan.settings.get_settings(), laptop, cluster=cluster) == "local"


def test_job_executor_without_cluster_is_a_clear_error(job_settings) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidRequest, match="'job' needs a cluster"):
        k8s_jobs.KubeBenchJobsScan(KubeBenchRequest(executor="job"), job_settings)


# --------------------------------------------------------------------------- request fields


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"nodes": ["Node_1"]}, "not a node name"),
        ({"nodes": ["-x"]}, "not a node name"),
        ({"node_selector": "a=b; rm -rf /"}, "not a label selector"),
        ({"namespace": "Kube_Bench"}, "not a namespace name"),
        ({"namespace": "a" * 64}, "not a namespace name"),
        ({"image": "aquasec/kube-bench:v1 --privileged"}, "not an image reference"),
        ({"max_parallel_jobs": 0}, "greater than or equal to 1"),
        ({"max_parallel_jobs": 101}, "less than or equal to 100"),
        ({"nodes": ["a"], "all_nodes": True}, "give one of nodes, node_selector, all_nodes"),
        ({"executor": "local", "node_selector": "a=b"}, "use executor='job'"),
        ({"executor": "kubernetes"}, "Input should be 'auto', 'local' or 'job'"),
        ({"kube_context": "-ctx"}, "not a kubeconfig context name"),
        ({"kubeconfig": "/no/such/kubeconfig"}, "Extra inputs are not permitted"),
    ],
)
def test_request_rejects(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(")):
        KubeBenchRequest.model_validate(fields)


def test_request_accepts_cluster_fields(tmp_path: Path) -> None:
    req = KubeBenchRequest.model_validate({
        "executor": "job", "nodes": "ip-10-0-0-1.ec2.internal,worker-2", "namespace": "sec",
        "image": "registry.local:5000/aquasec/kube-bench@sha256:" + "a" * 64, "max_parallel_jobs": 100,
        "keep_jobs": True, "kube_context": "arn:aws:eks:eu-west-1:1:cluster/prod",
    })
    assert req.nodes == ["ip-10-0-0-1.ec2.internal", "worker-2"]
    assert KubeBenchRequest(node_selector="node-role.kubernetes.io/worker,topology.kubernetes.io/zone in (a, b)")
    assert KubeBenchRequest().namespace == "kube-bench" and KubeBenchRequest().max_parallel_jobs == 10


# --------------------------------------------------------------------------- RBAC


def test_shipped_rbac_parses_and_grants_what_the_code_uses() -> None:
    docs = [d for d in yaml.safe_load_all((REPO / "deploy" / "kube-bench-rbac.yaml").read_text()) if d]
    kinds = {d["kind"] for d in docs}
    assert kinds == {"Namespace", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}

    def grants(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
        return {(g, r, v) for rule in rules for g in rule.get("apiGroups", []) for r in rule.get("resources", [])
                for v in rule["verbs"]}

    cluster = grants(next(d for d in docs if d["kind"] == "ClusterRole")["rules"])
    role_doc = next(d for d in docs if d["kind"] == "Role")
    assert role_doc["metadata"]["namespace"] == "kube-bench"
    ns = grants(role_doc["rules"])
    assert set(k8s_jobs.CLUSTER_PERMISSIONS) <= cluster
    assert set(k8s_jobs.NAMESPACE_PERMISSIONS) <= ns
    assert ("", "nodes", "list") in cluster and ("", "pods/log", "get") in ns
    assert not any(v in ("*", "escalate", "bind", "impersonate") for _, _, v in cluster | ns)
    ns_obj = next(d for d in docs if d["kind"] == "Namespace")
    assert ns_obj["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"


def test_docs_carry_rbac_and_security_note() -> None:
    text = (REPO / "docs" / "kube-bench-jobs.md").read_text()
    assert "hostPID" in text and "kubectl apply -f deploy/kube-bench-rbac.yaml" in text
    assert "kind: ClusterRole" in text and "kind: Role" in text


# --------------------------------------------------------------------------- the fake, for other tests


def test_fake_api_serves_arbitrary_resources_with_namespace_filtering(fake_cluster) -> None:  # type: ignore[no-untyped-def]
    from kubernetes import client, config

    deploy = lambda ns, name: {"apiVersion": "apps/v1", "kind": "Deployment",  # noqa: E731
                               "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
                               "spec": {"selector": {"matchLabels": {"app": name}}, "template": {
                                   "metadata": {"labels": {"app": name}},
                                   "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}
    api, kc = fake_cluster(objects=[deploy("default", "web"), deploy("prod", "api"),
                                    {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                                     "metadata": {"name": "deny", "namespace": "prod"}, "spec": {"podSelector": {}}}])
    apps = client.AppsV1Api(config.new_client_from_config(config_file=str(kc)))
    assert sorted(d.metadata.name for d in apps.list_deployment_for_all_namespaces().items) == ["api", "web"]
    assert [d.metadata.name for d in apps.list_namespaced_deployment("prod").items] == ["api"]
    assert [d.metadata.name for d in apps.list_deployment_for_all_namespaces(label_selector="app=web").items] == ["web"]
    net = client.NetworkingV1Api(config.new_client_from_config(config_file=str(kc)))
    assert [p.metadata.name for p in net.list_namespaced_network_policy("prod").items] == ["deny"]
    assert net.list_namespaced_network_policy("default").items == []


# --------------------------------------------------------------------------- through MCP


@pytest.mark.anyio
async def test_kube_bench_tool_with_executor_job(job_settings, fake_cluster, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import mcp_kscan.settings

    api, kc = fake_cluster(behaviours={"worker-2": Behaviour("exit", log=b"Error: boom", exit_code=1)})
    monkeypatch.setenv("KUBECONFIG", str(kc))  # the operator's kubeconfig: a request cannot name one
    mcp_kscan.settings.configure(None)
    progress: list[str] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append(message or "")

    async with Client(build_server()) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        props = tools["kube_bench"].input_schema["properties"]
        for name in ("executor", "nodes", "node_selector", "all_nodes", "namespace", "image", "max_parallel_jobs",
                     "keep_jobs", "kube_context"):
            assert name in props, name
        assert "kubeconfig" not in props
        result = await client.call_tool(
            "kube_bench", {"executor": "job", "wait_seconds": 30},
            progress_callback=on_progress,
        )
        assert not result.is_error, result.content
        data = result.structured_content
        assert data["status"] == "succeeded" and data["engine"] == "kube-bench-job"
        assert data["request"]["executor"] == "job"
        nodes = {n["node"]: n for n in data["summary"]["nodes"]}
        assert nodes["worker-2"]["error"] == "kube-bench exited 1: Error: boom"
        assert nodes["cp-1"]["totals"]["fail"] == 1
        page = await client.call_tool("get_results", {"scan_id": data["scan_id"], "view": "checks",
                                                      "status": "FAIL", "node": "worker-1"})
        checks = page.structured_content["checks"]
        assert [c["node"] for c in checks] == ["worker-1"]
        bad = await client.call_tool("kube_bench", {"executor": "job", "namespace": "Bad_NS"})
        assert bad.is_error and "namespace" in bad.content[0].text
    assert api.jobs() == []
    assert json.loads(SMALL_REPORT)["Totals"]["total_fail"] == 1
