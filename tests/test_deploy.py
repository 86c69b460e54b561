"""deploy/: every manifest parses, the references between them hold (Secrets and their keys, the
ServiceAccount, the labels the Service, the PodDisruptionBudget and the Deployment select, RBAC
role references), the container's args and environment are ones this mcp-kscan accepts, the probes
reach real routes with a Host the server serves, and the built-in engine's own scan of deploy/
finds no high or critical failure."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from starlette.routing import Route

from mcp_kscan.cli import build_parser
from mcp_kscan.doctor import SETTING_ENV
from mcp_kscan.engine.cluster import LISTED_KINDS
from mcp_kscan.http_compat.app import build_app, served_host_names
from mcp_kscan.readers import kubescape_v2 as v2
from mcp_kscan.scanners.kube_bench_request import KubeBenchRequest
from mcp_kscan.settings import Settings

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
NOT_SETTINGS = {"HOME"}
"""Environment a container needs that is not an mcp-kscan setting (the scanners' cache lives under HOME)."""
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection", "escalate", "bind", "impersonate"}


def _docs() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(DEPLOY.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                yield path.name, doc


DOCS = list(_docs())


def objects(kind: str) -> list[dict[str, Any]]:
    return [d for _, d in DOCS if d["kind"] == kind]


def one(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in objects(kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found in deploy/"
    return found[0]


DEPLOYMENT = one("Deployment", "mcp-kscan")
NAMESPACE = DEPLOYMENT["metadata"]["namespace"]
POD = DEPLOYMENT["spec"]["template"]
CONTAINER = POD["spec"]["containers"][0]


def test_every_manifest_parses_and_names_itself() -> None:
    assert {name for name, _ in DOCS} >= {
        "mcp-kscan.yaml", "secrets.example.yaml", "kube-bench-rbac.yaml", "operator-reader-rbac.yaml"}
    for name, doc in DOCS:
        assert doc.get("apiVersion") and doc.get("kind") and doc["metadata"].get("name"), name
    namespaces = {d["metadata"]["name"] for d in objects("Namespace")}
    for name, doc in DOCS:
        if "namespace" in doc["metadata"]:
            assert doc["metadata"]["namespace"] in namespaces, f"{name}: {doc['kind']} in an undeclared namespace"


def test_deployment_replicas_selector_and_pod_security() -> None:
    spec = DEPLOYMENT["spec"]
    assert spec["replicas"] >= 2
    labels = POD["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert one("ServiceAccount", POD["spec"]["serviceAccountName"])["metadata"]["namespace"] == NAMESPACE
    pod_sc, sc = POD["spec"]["securityContext"], CONTAINER["securityContext"]
    assert pod_sc["runAsNonRoot"] is True and pod_sc["runAsUser"] > 0
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"] and not sc.get("privileged")
    for bound in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(CONTAINER["resources"][bound])
    # A read-only root needs a writable /tmp (scan work directories) and the data directory under it.
    mounts = {m["mountPath"]: m["name"] for m in CONTAINER["volumeMounts"]}
    assert "emptyDir" in {v["name"]: v for v in POD["spec"]["volumes"]}[mounts["/tmp"]]
    env = {e["name"]: e.get("value") for e in CONTAINER["env"]}
    assert env["MCP_KSCAN_DATA_DIR"].startswith("/tmp/") and env["HOME"].startswith("/tmp")


def test_service_and_disruption_budget_select_the_deployments_pods() -> None:
    labels = POD["metadata"]["labels"]
    ports = {p["name"]: p["containerPort"] for p in CONTAINER["ports"]}
    service = one("Service", "mcp-kscan")
    assert service["metadata"]["namespace"] == NAMESPACE
    assert service["spec"]["selector"].items() <= labels.items()
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in ports
    pdb = one("PodDisruptionBudget", "mcp-kscan")
    assert pdb["metadata"]["namespace"] == NAMESPACE
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert 1 <= pdb["spec"]["minAvailable"] < DEPLOYMENT["spec"]["replicas"]  # a drain can still move one
    for policy in objects("NetworkPolicy"):
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
        for rule in policy["spec"]["ingress"]:
            assert all(p["port"] in ports for p in rule["ports"])


def _example_secret(name: str, key: str) -> str:
    secret = one("Secret", name)
    assert secret["metadata"]["namespace"] == NAMESPACE
    values = secret.get("stringData") or {}
    assert key in values, f"Secret {name} has no key {key!r}"
    return str(values[key])


def container_env() -> dict[str, str]:
    """The container's environment, Secrets read from the example (as the kubelet would resolve them)."""
    env: dict[str, str] = {}
    for item in CONTAINER["env"]:
        ref = item.get("valueFrom", {}).get("secretKeyRef")
        env[item["name"]] = _example_secret(ref["name"], ref["key"]) if ref else str(item["value"])
    return env


def test_environment_is_settings_this_version_accepts() -> None:
    env = container_env()
    known = {name for names in SETTING_ENV.values() for name in names} | NOT_SETTINGS
    assert set(env) <= known, f"not settings: {set(env) - known}"
    settings = Settings.from_env(env)  # the schedule, the URL and every number are checked here
    assert settings.database_url and settings.database_url.startswith("postgresql://")
    assert settings.token and settings.schedule
    secret_env = {e["name"] for e in CONTAINER["env"] if "valueFrom" in e}
    assert secret_env == {"MCP_KSCAN_DATABASE_URL", "MCP_KSCAN_TOKEN"}  # never a literal value


def _serve_args() -> Any:
    args = build_parser().parse_args(CONTAINER["args"])
    assert args.command == "serve" and args.transport == "http" and args.host == "0.0.0.0"
    return args


def test_args_serve_the_service_names() -> None:
    args = _serve_args()
    assert args.port in {p["containerPort"] for p in CONTAINER["ports"]}
    service = one("Service", "mcp-kscan")["metadata"]["name"]
    names = served_host_names(args.host, args.allowed_host)
    for dns in (service, f"{service}.{NAMESPACE}", f"{service}.{NAMESPACE}.svc", f"{service}.{NAMESPACE}.svc.cluster.local"):
        assert dns in names


@pytest.mark.anyio
async def test_probes_reach_routes_of_the_app_with_a_served_host() -> None:
    args = _serve_args()
    app = build_app(Settings.from_env(container_env()), host=args.host, allowed_hosts=args.allowed_host)
    paths = {r.path for r in app.routes if isinstance(r, Route)}
    ports = {p["name"] for p in CONTAINER["ports"]}
    probes = [CONTAINER[p] for p in ("livenessProbe", "readinessProbe", "startupProbe") if p in CONTAINER]
    assert {"livenessProbe", "readinessProbe"} <= set(CONTAINER)
    assert CONTAINER["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert CONTAINER["livenessProbe"]["httpGet"]["path"] == "/livez"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://probe") as client:
        for probe in probes:
            get = probe["httpGet"]
            assert get["path"] in paths and get["port"] in ports
            headers = {h["name"]: h["value"] for h in get.get("httpHeaders", [])}
            # The token guards everything but the probes: the kubelet sends none.
            r = await client.get(get["path"], headers=headers)
            if get["path"] == "/livez":
                assert r.status_code == 200, r.text
            else:  # the app's lifespan (its database) is not running here: not ready, but served
                assert r.status_code == 503
    assert (await httpx.AsyncClient(transport=httpx.ASGITransport(app=app)).get("http://10.1.2.3:8080/livez")).status_code == 421


def _rules(role: dict[str, Any]) -> list[dict[str, Any]]:
    return list(role.get("rules") or [])


def test_bindings_name_existing_roles_and_the_deployments_service_account() -> None:
    account = (NAMESPACE, POD["spec"]["serviceAccountName"])
    for kind in ("ClusterRoleBinding", "RoleBinding"):
        for binding in objects(kind):
            ref = binding["roleRef"]
            role = one(ref["kind"], ref["name"])
            if ref["kind"] == "Role":
                assert role["metadata"]["namespace"] == binding["metadata"]["namespace"]
            subjects = {(s["namespace"], s["name"]) for s in binding["subjects"] if s["kind"] == "ServiceAccount"}
            assert subjects == {account}, f"{kind}/{binding['metadata']['name']} binds {subjects}"


def test_cluster_reader_grants_what_the_engine_lists_and_nothing_that_writes() -> None:
    role = one("ClusterRole", "mcp-kscan-cluster-reader")
    granted: set[tuple[str, str, str]] = set()
    for rule in _rules(role):
        assert not WRITE_VERBS & set(rule["verbs"])
        for group in rule.get("apiGroups", []):
            assert "*" not in rule["resources"] and "secrets" not in rule["resources"]
            granted |= {(group, res, verb) for res in rule["resources"] for verb in rule["verbs"]}
    for prefix, plural, _, api_version, _ in LISTED_KINDS:
        group = "" if prefix == "/api/v1" else api_version.split("/")[0]
        assert {(group, plural, "list"), (group, plural, "get")} <= granted, f"{plural} not readable"
    binding = one("ClusterRoleBinding", "mcp-kscan-cluster-reader")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]


def test_kube_bench_jobs_role_covers_the_executors_namespace() -> None:
    namespace = KubeBenchRequest.model_fields["namespace"].default
    roles = [r for r in objects("Role") if r["metadata"]["namespace"] == namespace]
    granted = {(g, res, verb) for role in roles for rule in _rules(role) for g in rule["apiGroups"]
               for res in rule["resources"] for verb in rule["verbs"]}
    assert {("batch", "jobs", "create"), ("batch", "jobs", "delete"), ("", "pods", "get"), ("", "pods", "list"),
            ("", "pods/log", "get")} <= granted
    assert one("Namespace", namespace)


def test_the_engines_own_scan_of_deploy_has_no_high_or_critical_failure(tmp_path: Path) -> None:
    report_file = tmp_path / "deploy-scan.json"
    done = subprocess.run(
        [sys.executable, "-m", "mcp_kscan", "scan", str(DEPLOY), "--framework", "all", "--engine", "builtin",
         "--format", "json", "-o", str(report_file), "--severity-threshold", "high"],
        capture_output=True, text=True, timeout=600,
    )
    report = json.loads(report_file.read_text())
    summary = report["summaryDetails"]
    failed = {cid: v2.control_severity(c) for cid, c in v2.summary_controls(summary).items()
              if v2.control_status(c) == "failed"}
    worst = {cid: sev for cid, sev in failed.items() if v2.severity_rank(sev) <= v2.severity_rank("High")}
    assert not v2.nothing_scanned(report)
    assert worst == {}, f"high/critical failures in deploy/: {worst}"
    assert done.returncode == 0, done.stderr[-2000:]
