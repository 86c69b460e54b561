"""The live-cluster path against the project's fake Kubernetes API server (real HTTP, API JSON)."""

from __future__ import annotations

import json
from dataclasses import asdict
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fakes.kube_api import FakeKubeAPI  # noqa: E402

from mcp_kscan.cluster import ClusterSource  # noqa: E402
from mcp_kscan.engine.cluster import ClusterError, list_cluster_objects, scan_cluster  # noqa: E402


def deployment(name: str, ns: str, privileged: bool) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}",
                         "managedFields": [{"manager": "kubectl"}]},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx:1.25",
                                                           "securityContext": {"privileged": privileged}}]}}}}


def owned_pod(name: str, ns: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns,
                         "ownerReferences": [{"kind": "ReplicaSet", "name": "rs", "uid": "x"}]},
            "spec": {"containers": [{"name": "c", "image": "nginx", "securityContext": {"privileged": True}}]}}


OBJECTS = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ops"}},
    deployment("web", "shop", True),
    deployment("tool", "ops", False),
    owned_pod("web-abc", "shop"),
    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "naked", "namespace": "shop"},
     "spec": {"hostNetwork": True, "containers": [{"name": "c", "image": "busybox:1"}]}},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "admins"},
     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
     "subjects": [{"kind": "ServiceAccount", "name": "ci", "namespace": "ops"}]},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "cluster-admin"},
     "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]},
]


@pytest.fixture
def api(tmp_path: Path):  # type: ignore[no-untyped-def]
    with FakeKubeAPI(objects=[json.loads(json.dumps(o)) for o in OBJECTS]) as fake:
        fake.kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig", context="fake")  # type: ignore[attr-defined]
        yield fake


def test_lists_every_kind_and_skips_owned_objects(api: Any) -> None:
    objs = list_cluster_objects(ClusterSource(str(api.kubeconfig), None))
    names = {(o["kind"], o["metadata"]["name"]) for o in objs}
    assert ("Deployment", "web") in names and ("Pod", "naked") in names
    assert ("Pod", "web-abc") not in names, "a ReplicaSet's pod is judged through its owner"
    assert ("ClusterRoleBinding", "admins") in names
    assert all("managedFields" not in o["metadata"] for o in objs)
    paths = {p.split("?")[0] for _, p in api.requests}
    assert "/apis/apps/v1/deployments" in paths and "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings" in paths


def test_scan_cluster_report(api: Any) -> None:
    report = scan_cluster(ClusterSource(str(api.kubeconfig), None), frameworks=["all"])
    ids = {r["resourceID"] for r in report["resources"]}
    assert "apps/v1/shop/Deployment/web" in ids
    assert "rbac.authorization.k8s.io/v1//ClusterRoleBinding/admins" in ids
    verdicts = {(r["resourceID"], c["controlID"]): c["status"]["status"] for r in report["results"] for c in r["controls"]}
    assert verdicts[("apps/v1/shop/Deployment/web", "C-0057")] == "failed"
    assert verdicts[("apps/v1/ops/Deployment/tool", "C-0057")] == "passed"
    assert verdicts[("/v1/shop/Pod/naked", "C-0041")] == "failed"
    assert verdicts[("/v1/shop/Pod/naked", "C-0073")] == "failed"
    assert verdicts[("rbac.authorization.k8s.io/v1//ClusterRoleBinding/admins", "C-0035")] == "failed"
    md = report["metadata"]
    assert md["scanMetadata"]["scanningTarget"] == 0 and md["clusterMetadata"]["contextName"] == "fake"
    assert md["engine"]["name"] == "mcp-kscan-builtin"


def test_namespace_filters(api: Any) -> None:
    objs = list_cluster_objects(ClusterSource(str(api.kubeconfig), None), include_namespaces=["shop"])
    assert {o["metadata"].get("namespace") for o in objs if o["kind"] != "Namespace"} == {"shop"}
    assert {o["metadata"]["name"] for o in objs if o["kind"] == "Namespace"} == {"shop"}
    assert not any(o["kind"] == "ClusterRoleBinding" for o in objs)
    assert any("/namespaces/shop/" in p for _, p in api.requests)
    objs = list_cluster_objects(ClusterSource(str(api.kubeconfig), None), exclude_namespaces=["shop", "kube-system"])
    assert not any(o["metadata"].get("namespace") == "shop" for o in objs)
    assert any(o["kind"] == "Deployment" and o["metadata"]["name"] == "tool" for o in objs)


def test_bad_kubeconfig_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "k"
    bad.write_text("not: a kubeconfig\n")
    with pytest.raises(ClusterError, match="cannot use the kubeconfig") as info:
        scan_cluster(ClusterSource(str(bad), None))
    assert "\n" not in str(info.value) and str(bad) not in str(info.value)


def test_cli_cluster_scan(api: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """``--kubeconfig`` on the command line is the terminal user's setting (like KUBECONFIG=FILE)."""
    from mcp_kscan import cli, settings

    try:
        code = cli.main(["scan", "--cluster", "--kubeconfig", str(api.kubeconfig), "--engine", "builtin",
                         "--format", "json", "--control", "C-0057"])
    finally:
        settings.configure(None)
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["summaryDetails"]["controls"]["C-0057"]["ResourceCounters"]["failedResources"] == 1


async def test_job_scans_the_cluster_without_paths(api: Any, tmp_path: Path) -> None:
    import anyio

    from mcp_kscan.engine.entry import EngineSpec
    from mcp_kscan.engine.task import BuiltinScanTask
    from mcp_kscan.runner.process import run_process
    from mcp_kscan.runner.records import TaskContext, ScanState

    async def noop(*a: Any, **k: Any) -> None:
        return None

    async def run(argv: list[str], **kwargs: Any) -> Any:  # the engine runs in its own process
        return await run_process(argv, timeout_s=120, **kwargs)

    ctx = TaskContext("s", tmp_path, anyio.current_time() + 120, run, noop, noop)
    outcome = await BuiltinScanTask(EngineSpec(cluster=asdict(ClusterSource(str(api.kubeconfig), None)), controls=["C-0057"])).run(ctx)
    assert outcome.status == ScanState.succeeded
    assert outcome.raw_file is not None
    with outcome.raw_file as fh:
        assert json.loads(fh.read())["summaryDetails"]["controls"]["C-0057"]["status"] == "failed"


pytestmark = pytest.mark.anyio
