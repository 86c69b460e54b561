"""Single-workload scans with the built-in engine: one object fetched, judged with its context."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fakes.kube_api import FakeKubeAPI  # noqa: E402

from mcp_kscan.cluster import ClusterSource  # noqa: E402
from mcp_kscan.engine.cluster import ClusterError  # noqa: E402
from mcp_kscan.engine.workload import scan_workload  # noqa: E402
from mcp_kscan.readers.kubescape_report import parse_report  # noqa: E402


def deployment(name: str, ns: str, privileged: bool, sa: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "nginx:1.25", "securityContext": {"privileged": privileged}}]}
    if sa:
        spec["serviceAccountName"] = sa
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}}


OBJECTS = [
    deployment("web", "shop", True, sa="web"),
    deployment("api", "shop", False),
    deployment("other", "ops", True),
    {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "web", "namespace": "shop"},
     "automountServiceAccountToken": False},
    {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "deny", "namespace": "shop"},
     "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}},
]


@pytest.fixture
def api(tmp_path: Path):  # type: ignore[no-untyped-def]
    with FakeKubeAPI(objects=[json.loads(json.dumps(o)) for o in OBJECTS]) as fake:
        fake.kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig", context="fake")  # type: ignore[attr-defined]
        yield fake


def test_one_deployment_costs_one_deployment(api: Any) -> None:
    report = parse_report(scan_workload("Deployment", "shop", "web", source=ClusterSource(str(api.kubeconfig), None)))
    assert {(f.resource.kind, f.resource.name) for f in report.findings} == {("Deployment", "web")}
    verdicts = {f.control_id: f.status for f in report.findings}
    assert verdicts["C-0057"] == "failed"
    # Its context was read: the service account turns automount off, the policy blocks traffic.
    assert verdicts["C-0034"] == "passed" and verdicts["C-0260"] == "passed"
    paths = [p for _, p in api.requests]
    assert not any(p.rstrip("/").endswith("/deployments") for p in paths), paths  # never a list of workloads
    assert any(p.endswith("/namespaces/shop/deployments/web") for p in paths)
    # Context is read in the workload's namespace only (plus cluster-wide RBAC).
    assert not any("/namespaces/ops/" in p for p in paths), paths
    assert not any(p.rstrip("/").endswith(("/pods", "/services", "/networkpolicies")) and "/namespaces/" not in p
                   for p in paths), paths


def test_kind_case_and_missing_objects(api: Any) -> None:
    report = parse_report(scan_workload("deployment", "shop", "api", ClusterSource(str(api.kubeconfig), None)))
    assert {f.resource.name for f in report.findings} == {"api"}
    with pytest.raises(ClusterError, match="no Deployment shop/nope"):
        scan_workload("Deployment", "shop", "nope", ClusterSource(str(api.kubeconfig), None))
    with pytest.raises(ClusterError, match="namespaced"):
        scan_workload("Deployment", "", "web", ClusterSource(str(api.kubeconfig), None))
    with pytest.raises(ClusterError, match="not ClusterRole"):
        scan_workload("ClusterRole", "shop", "admin", ClusterSource(str(api.kubeconfig), None))
    with pytest.raises(ClusterError, match="not Gizmo"):
        scan_workload("Gizmo", "shop", "web", ClusterSource(str(api.kubeconfig), None))
