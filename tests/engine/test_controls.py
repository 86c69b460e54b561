"""Each control on small hand-written objects: fails where regolibrary v2.0.33 fails, with failed and fix paths.

Kubescape's own rule test cases are run by test_rule_cases.py; these pin the paths the engine reports."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mcp_kscan.engine.context import ScanContext
from mcp_kscan.engine.controls import CONTROLS
from mcp_kscan.engine.frameworks import CONTROLS_BY_ID
from mcp_kscan.engine.model import Finding, make_resource
from mcp_kscan.engine.scan import evaluate

HARDENED_DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web", "app.kubernetes.io/name": "web"}},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web", "app.kubernetes.io/name": "web"}},
            "spec": {
                "automountServiceAccountToken": False,
                "securityContext": {"runAsNonRoot": True, "runAsGroup": 1000, "fsGroup": 1000,
                                    "fsGroupChangePolicy": "OnRootMismatch", "seLinuxOptions": {"level": "s0:c1,c2"},
                                    "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{
                    "name": "web",
                    "image": "nginx:1.25",
                    "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                        "capabilities": {"drop": ["ALL"]}},
                    "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}},
                    "livenessProbe": {"httpGet": {"path": "/", "port": 80}},
                    "readinessProbe": {"httpGet": {"path": "/", "port": 80}},
                }],
            },
        },
    },
}
NETPOL = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "np", "namespace": "shop"},
          "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress", "Egress"]}}


def verdicts(*objs: dict[str, Any], controls: list[str] | None = None) -> dict[tuple[str, str], Any]:
    resources = [make_resource(o, cluster=True) for o in objs]
    chosen = [CONTROLS_BY_ID[c] for c in controls] if controls else list(CONTROLS)
    out = {}
    for res, vs in zip(resources, evaluate(resources, chosen)):
        for c, f in vs:
            out[(res.name, c.id)] = f
    return out


def test_catalogue_has_at_least_30_controls_with_metadata() -> None:
    assert len(CONTROLS) >= 100
    ids = [c.id for c in CONTROLS]
    assert len(ids) == len(set(ids))
    for c in CONTROLS:
        assert c.id.startswith("C-") and c.name and c.rule and c.kinds
        # every control is in AllControls but the two Agent Sandbox ones no framework holds yet
        assert "AllControls" in c.frameworks or (c.id in ("C-0303", "C-0304") and not c.frameworks)
        assert 0 < c.score_factor <= 10
    nsa = {c.id for c in CONTROLS if "NSA" in c.frameworks}
    mitre = {c.id for c in CONTROLS if "MITRE" in c.frameworks}
    assert {"C-0057", "C-0013", "C-0016", "C-0017", "C-0030", "C-0034", "C-0038", "C-0041", "C-0044", "C-0046", "C-0055"} <= nsa
    assert {"C-0048", "C-0045", "C-0015", "C-0035", "C-0057"} <= mitre


def test_hardened_deployment_passes_everything() -> None:
    v = verdicts(HARDENED_DEPLOYMENT, NETPOL)
    failed = sorted(cid for (name, cid), f in v.items() if name == "web" and f is not None)
    # C-0078 allows no registry until the control inputs list one; C-0306 wants a digest.
    assert failed == ["C-0078", "C-0306"]


def _mutated(path: list[Any], value: Any) -> dict[str, Any]:
    obj = copy.deepcopy(HARDENED_DEPLOYMENT)
    target = obj
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return obj


POD = ["spec", "template", "spec"]
C0 = POD + ["containers", 0]


@pytest.mark.parametrize(
    ("control", "path", "value", "failed_path"),
    [
        ("C-0057", C0 + ["securityContext", "privileged"], True, "spec.template.spec.containers[0].securityContext.privileged"),
        ("C-0038", POD + ["hostPID"], True, "spec.template.spec.hostPID"),
        ("C-0041", POD + ["hostNetwork"], True, "spec.template.spec.hostNetwork"),
        ("C-0044", C0 + ["ports"], [{"containerPort": 80, "hostPort": 80}], "spec.template.spec.containers[0].ports[0].hostPort"),
        ("C-0046", C0 + ["securityContext", "capabilities"], {"add": ["NET_ADMIN"]}, "spec.template.spec.containers[0].securityContext.capabilities.add[0]"),
        ("C-0016", C0 + ["securityContext", "allowPrivilegeEscalation"], True, "spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation"),
        ("C-0013", POD + ["securityContext"], {"seccompProfile": {"type": "RuntimeDefault"}}, "spec.template.spec.containers[0].securityContext.runAsNonRoot"),
        ("C-0017", C0 + ["securityContext", "readOnlyRootFilesystem"], False, "spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem"),
        ("C-0009", C0 + ["resources"], {}, "spec.template.spec.containers[0].resources.limits.cpu"),
        ("C-0050", C0 + ["resources", "requests"], {"memory": "1Gi"}, "spec.template.spec.containers[0].resources.requests.cpu"),
        ("C-0004", C0 + ["resources", "limits"], {"cpu": "1"}, "spec.template.spec.containers[0].resources.limits.memory"),
        ("C-0056", C0 + ["livenessProbe"], None, "spec.template.spec.containers[0].livenessProbe"),
        ("C-0018", C0 + ["readinessProbe"], None, "spec.template.spec.containers[0].readinessProbe"),
        ("C-0061", ["metadata", "namespace"], "default", "metadata.namespace"),
        ("C-0012", C0 + ["env"], [{"name": "DB_PASSWORD", "value": "hunter2"}], "spec.template.spec.containers[0].env[0].name"),
        ("C-0062", C0 + ["command"], ["sudo", "nginx"], "spec.template.spec.containers[0].command[0]"),
        ("C-0075", C0 + ["image"], "nginx", None),
        ("C-0034", POD + ["automountServiceAccountToken"], True, "spec.template.spec.automountServiceAccountToken"),
        ("C-0076", ["metadata", "labels"], {"team": "x"}, "metadata.labels[app]"),
    ],
)
def test_control_fails_with_paths(control: str, path: list[Any], value: Any, failed_path: str | None) -> None:
    obj = _mutated(path, value)
    if control == "C-0075":
        obj["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"
        failed_path = "spec.template.spec.containers[0].imagePullPolicy"
    v = verdicts(obj, NETPOL, controls=[control])
    finding = v[("web", control)]
    assert finding is not None, f"{control} should fail"
    assert failed_path in finding.failed_paths + [p for p, _ in finding.fix_paths]


def test_host_path_controls() -> None:
    obj = copy.deepcopy(HARDENED_DEPLOYMENT)
    spec = obj["spec"]["template"]["spec"]
    spec["volumes"] = [{"name": "sock", "hostPath": {"path": "/var/run/docker.sock"}},
                       {"name": "aws", "hostPath": {"path": "/.aws"}}]
    spec["containers"][0]["volumeMounts"] = [{"name": "sock", "mountPath": "/s"}, {"name": "aws", "mountPath": "/a", "readOnly": True}]
    v = verdicts(obj, controls=["C-0048", "C-0045", "C-0074", "C-0020"])
    assert v[("web", "C-0048")].failed_paths == [
        "spec.template.spec.volumes[0]", "spec.template.spec.containers[0].volumeMounts[0]",
        "spec.template.spec.volumes[1]", "spec.template.spec.containers[0].volumeMounts[1]"]
    assert v[("web", "C-0045")].fix_paths == [("spec.template.spec.containers[0].volumeMounts[0].readOnly", "true")]
    assert v[("web", "C-0074")].failed_paths == ["spec.template.spec.volumes[0]", "spec.template.spec.containers[0].volumeMounts[0]"]
    # C-0020 needs the cluster's cloud provider, which a manifest never has.
    assert v[("web", "C-0020")] is None
    resources = [make_resource(obj, cluster=True)]
    ctx = ScanContext.build(resources)
    ctx.cloud_provider = "eks"
    finding = CONTROLS_BY_ID["C-0020"].check(resources[0], ctx)
    assert isinstance(finding, Finding)
    assert finding.failed_paths == ["spec.template.spec.volumes[1]", "spec.template.spec.containers[0].volumeMounts[1]"]


@pytest.mark.parametrize("kind,spec_path", [
    ("Pod", ["spec"]), ("StatefulSet", POD), ("DaemonSet", POD), ("Job", POD), ("ReplicaSet", POD),
    ("CronJob", ["spec", "jobTemplate", "spec", "template", "spec"]),
])
def test_every_workload_kind(kind: str, spec_path: list[str]) -> None:
    pod_spec = {"containers": [{"name": "c", "image": "x:1", "securityContext": {"privileged": True}}]}
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": kind, "metadata": {"name": "w", "namespace": "n"}}
    target = obj
    for key in spec_path[:-1]:
        target = target.setdefault(key, {})
    target[spec_path[-1]] = pod_spec
    v = verdicts(obj, controls=["C-0057"])
    assert v[("w", "C-0057")].failed_paths == [".".join(spec_path) + ".containers[0].securityContext.privileged"]


def test_replication_controllers_are_not_judged() -> None:
    """No workload rule of regolibrary v2.0.33 matches ReplicationController."""
    obj = {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "w", "namespace": "n"},
           "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x:1", "securityContext": {"privileged": True}}]}}}}
    assert verdicts(obj, controls=["C-0057"]) == {}


def test_network_policies() -> None:
    ingress_only = copy.deepcopy(NETPOL)
    ingress_only["spec"]["policyTypes"] = ["Ingress"]
    v = verdicts(HARDENED_DEPLOYMENT, ingress_only, controls=["C-0030", "C-0260"])
    assert v[("web", "C-0030")] is None and v[("web", "C-0260")] is None  # ingress or egress is enough
    untyped = copy.deepcopy(NETPOL)
    del untyped["spec"]["policyTypes"]
    v = verdicts(HARDENED_DEPLOYMENT, untyped, controls=["C-0030", "C-0260"])
    assert v[("web", "C-0030")] is not None and v[("web", "C-0260")] is None  # the rule reads policyTypes only
    cilium = {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": {"name": "c", "namespace": "shop"},
              "spec": {"endpointSelector": {"matchLabels": {"app": "web"}}, "egress": [{"toEndpoints": [{}]}]}}
    v = verdicts(HARDENED_DEPLOYMENT, cilium, controls=["C-0030", "C-0260"])
    assert v[("web", "C-0030")] is None and v[("web", "C-0260")] is None
    other_ns = copy.deepcopy(NETPOL)
    other_ns["metadata"]["namespace"] = "elsewhere"
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
    v = verdicts(HARDENED_DEPLOYMENT, other_ns, ns, controls=["C-0030", "C-0260", "C-0054"])
    assert v[("web", "C-0260")] is not None and v[("shop", "C-0054")] is not None
    v = verdicts(HARDENED_DEPLOYMENT, NETPOL, ns, controls=["C-0054"])
    assert v[("shop", "C-0054")] is None


def test_service_account_automount() -> None:
    obj = copy.deepcopy(HARDENED_DEPLOYMENT)
    del obj["spec"]["template"]["spec"]["automountServiceAccountToken"]
    obj["spec"]["template"]["spec"]["serviceAccountName"] = "runner"
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "runner", "namespace": "shop"}}
    v = verdicts(obj, sa, controls=["C-0034"])
    assert v[("web", "C-0034")] is not None
    assert ("runner", "C-0034") not in v  # the rule no longer judges service accounts
    sa["automountServiceAccountToken"] = False
    v = verdicts(obj, sa, controls=["C-0034"])
    assert v[("web", "C-0034")] is None
    # The pod's explicit true wins over its service account's false.
    obj["spec"]["template"]["spec"]["automountServiceAccountToken"] = True
    assert verdicts(obj, sa, controls=["C-0034"])[("web", "C-0034")] is not None
    # A service account that is not among the scanned objects fails, as in the rule.
    del obj["spec"]["template"]["spec"]["automountServiceAccountToken"]
    assert verdicts(obj, controls=["C-0034"])[("web", "C-0034")] is not None


def _binding(role_kind: str, role: str, kind: str = "ClusterRoleBinding") -> dict[str, Any]:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": {"name": "b", "namespace": "shop"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": "shop"}]}


def test_rbac_controls() -> None:
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r", "namespace": "shop"},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]},
                      {"apiGroups": [""], "resources": ["pods/exec", "pods/portforward"], "verbs": ["create"]},
                      {"apiGroups": [""], "resources": ["events"], "verbs": ["delete"]}]}
    ids = ["C-0002", "C-0007", "C-0015", "C-0031", "C-0035", "C-0063", "C-0065", "C-0188"]
    v = verdicts(role, _binding("Role", "r", "RoleBinding"), controls=ids)
    failed = sorted(c for (n, c), f in v.items() if n == "b" and f is not None)
    assert failed == ["C-0002", "C-0015", "C-0031", "C-0063"]
    assert v[("b", "C-0015")].failed_paths == ["subjects[0]", "roleRef.name"]
    # cluster-admin is known without being in the files; an unknown role is not judged.
    v = verdicts(_binding("ClusterRole", "cluster-admin"), controls=ids)
    assert all(v[("b", c)] is not None for c in ids)
    assert verdicts(_binding("ClusterRole", "somewhere-else"), controls=ids) == {}


def test_naked_pod_and_dashboard() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "n"},
           "spec": {"serviceAccountName": "kubernetes-dashboard", "containers": [{"name": "c", "image": "x:1"}]}}
    v = verdicts(pod, controls=["C-0073", "C-0014"])
    assert v[("p", "C-0073")] is not None and v[("p", "C-0014")] is not None
    pod["metadata"]["ownerReferences"] = [{"kind": "ReplicaSet", "name": "rs"}]
    assert verdicts(pod, controls=["C-0073"])[("p", "C-0073")] is None
