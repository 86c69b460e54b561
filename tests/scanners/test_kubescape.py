"""Kubescape adapter: request validation (HTTP API names too), exact argv, v2 report parsing."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeBin, shared_fixture
from pydantic import ValidationError

import mcp_kscan.settings as settings_mod
from mcp_kscan.client_roots import ALLOWED_ROOTS_KEY
from mcp_kscan.errors import describe_validation_error
from mcp_kscan.readers.kubescape_v2 import severity_rank
from mcp_kscan.reports import summarize_kubescape
from mcp_kscan.scanners.common import ScanOutputError
from mcp_kscan.risk import risk_key
from mcp_kscan.readers.kubescape_report import parse_report, resource_from_id
from mcp_kscan.scanners.kubescape_argv import build_argv, build_env
from mcp_kscan.scanners.kubescape_request import KubescapeRequest

B = "/opt/ks/kubescape"
OUT = "/work/scan/report.json"
TAIL = ["--format", "json", "--output", OUT]
HOME_CACHE = str(Path.home() / ".kubescape")


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    d = tmp_path / "manifests"
    d.mkdir()
    (d / "pod.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n")
    return d


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    f = tmp_path / "kubeconfig"
    f.write_text("apiVersion: v1\nkind: Config\n")
    return f


ARGV_CASES: list[tuple[dict[str, Any], list[str]]] = [
    ({}, [B, "scan", "framework", "all", *TAIL]),
    ({"targetType": "framework", "targetNames": ["nsa", "mitre"]}, [B, "scan", "framework", "nsa,mitre", *TAIL]),
    ({"target_type": "Framework", "target_names": "nsa"}, [B, "scan", "framework", "nsa", *TAIL]),
    ({"targetType": "framework", "targetNames": ["nsa", "all"]}, [B, "scan", "framework", "all", *TAIL]),
    ({"targetType": "CONTROL", "targetNames": ["C-0057", "C-0016"]},
     [B, "scan", "control", "C-0057,C-0016", *TAIL]),
    ({"targetNames": ["C-0057"]}, [B, "scan", "control", "C-0057", *TAIL]),
    ({"targetNames": ["cis-v1.10.0"]}, [B, "scan", "framework", "cis-v1.10.0", *TAIL]),
    ({"includeNamespaces": ["a", "b"]}, [B, "scan", "framework", "all", *TAIL, "--include-namespaces", "a,b"]),
    ({"excludedNamespaces": "kube-system,kube-public"},
     [B, "scan", "framework", "all", *TAIL, "--exclude-namespaces", "kube-system,kube-public"]),
    ({"keepLocal": True, "submit": False}, [B, "scan", "framework", "all", *TAIL, "--keep-local"]),
    ({"useCachedArtifacts": True}, [B, "scan", "framework", "all", *TAIL, "--use-artifacts-from", HOME_CACHE]),
    ({"submit": True, "account": "1e3a88bf-92ce-44f8-914e-cbe71830d566"},
     [B, "scan", "framework", "all", *TAIL, "--submit", "--account", "1e3a88bf-92ce-44f8-914e-cbe71830d566"]),
    ({"accessKey": "5ec7e7a1-0b1c-4d2e-8f3a-9b8c7d6e5f40"}, [B, "scan", "framework", "all", *TAIL]),
    ({"compliance_threshold": 80}, [B, "scan", "framework", "all", *TAIL, "--compliance-threshold", "80"]),
    ({"complianceThreshold": 72.5, "severityThreshold": "HIGH"},
     [B, "scan", "framework", "all", *TAIL, "--compliance-threshold", "72.5", "--severity-threshold", "high"]),
    ({"format": "JSON,sarif", "hostScanner": True, "engine": "kubescape", "timeout_seconds": 60},
     [B, "scan", "framework", "all", *TAIL]),
]


@pytest.mark.parametrize(("fields", "expected"), ARGV_CASES)
def test_argv(fields: dict[str, Any], expected: list[str]) -> None:
    assert build_argv(KubescapeRequest.model_validate(fields), B, OUT) == expected


def test_argv_paths(manifests: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(manifests.parent)
    req = KubescapeRequest.model_validate(
        {"targetType": "framework", "targetNames": ["nsa"], "paths": ["manifests", str(manifests / "pod.yaml")]},
        context={ALLOWED_ROOTS_KEY: []},
    )
    assert build_argv(req, B, OUT) == [
        B, "scan", "framework", "nsa", str(manifests.resolve()), str((manifests / "pod.yaml").resolve()), *TAIL,
    ]


def test_argv_context_is_the_resolvers_and_the_kubeconfig_never_a_flag() -> None:
    """The context reaches Kubescape as --kube-context; the kubeconfig only as KUBECONFIG in its env."""
    req = KubescapeRequest.model_validate({"kube_context": "arn:aws:eks:us-east-1:123:cluster/prod"})
    assert build_argv(req, B, OUT) == [B, "scan", "framework", "all", *TAIL]
    assert build_argv(req, B, OUT, kube_context="arn:aws:eks:us-east-1:123:cluster/prod") == [
        B, "scan", "framework", "all", *TAIL, "--kube-context", "arn:aws:eks:us-east-1:123:cluster/prod"]
    assert build_env(req, settings_mod.Settings(data_dir=Path("/nonexistent")), {}, kubeconfig="/etc/operator/kubeconfig")["KUBECONFIG"] == "/etc/operator/kubeconfig"


def test_a_request_cannot_name_a_kubeconfig(kubeconfig: Path) -> None:
    for key in ("kubeconfig", "kubeConfig", "kubeconfigPath"):
        with pytest.raises(ValidationError) as info:
            KubescapeRequest.model_validate({key: str(kubeconfig)})
        assert describe_validation_error(info.value).field == key


def test_request_keeps_fields_and_hides_the_key() -> None:
    req = KubescapeRequest.model_validate({"format": "sarif", "accessKey": "5ec7e7a1-0b1c-4d2e-8f3a-9b8c7d6e5f40", "targetType": "control",
                                           "targetNames": ["C-0001"]})
    assert req.format == "sarif" and req.target_type == "control" and req.engine == "auto"
    assert "5ec7e7a1" not in repr(req)
    assert "5ec7e7a1" not in json.dumps(req.model_dump(mode="json"))


def test_env_carries_the_access_key_and_little_else(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_KSCAN_TOKEN", "server-token-123")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    env = build_env(KubescapeRequest(accessKey="5ec7e7a1-0b1c-4d2e-8f3a-9b8c7d6e5f40"), settings_mod.Settings.from_env())  # type: ignore[call-arg]
    assert env["KS_ACCESS_KEY"] == "5ec7e7a1-0b1c-4d2e-8f3a-9b8c7d6e5f40"
    assert "MCP_KSCAN_TOKEN" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    assert set(env) <= {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "KUBECONFIG", "KS_ACCESS_KEY", "HTTPS_PROXY",
                        "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy",
                        "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"targetType": "everything"}, "targetType"),
        ({"targetType": "control", "targetNames": ["nsa"]}, "targetNames"),
        ({"targetNames": ["C-57"], "targetType": "control"}, "targetNames"),
        ({"includeNamespaces": ["Kube_System"]}, "includeNamespaces"),
        ({"excludedNamespaces": ["-a"]}, "excludedNamespaces"),
        ({"compliance_threshold": 101}, "compliance_threshold"),
        ({"compliance_threshold": -1}, "compliance_threshold"),
        ({"severity_threshold": "severe"}, "severity_threshold"),
        ({"format": "docx"}, "format"),
        ({"engine": "other"}, "engine"),
        ({"account": "a b"}, "account"),
        ({"accessKey": "has space"}, "accessKey"),
        ({"paths": ["/nonexistent/x.yaml"]}, "paths"),
        ({"kubeconfig": "/"}, "kubeconfig"),
        ({"failThreshold": 3}, "failThreshold"),
    ],
)
def test_invalid_requests(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        KubescapeRequest.model_validate(fields, context={ALLOWED_ROOTS_KEY: []})
    assert describe_validation_error(info.value).field.split("[")[0].split(".")[0] == field


def test_access_key_error_does_not_echo_the_key() -> None:
    with pytest.raises(ValidationError) as info:
        KubescapeRequest.model_validate({"accessKey": "very secret key"})
    assert "very secret" not in str(describe_validation_error(info.value))


# --------------------------------------------------------------------------- hostile inputs

HOSTILE_VALUES = [
    "; touch x", "$(id)", "`id`", "a\nb", "a\x00b", "--output=/etc/x", "-o/etc/x", "x" * 10_000,
    "nsа",  # Cyrillic a
    "C\u20100057",  # unicode hyphen
]
STRING_FIELDS = ["format", "account", "accessKey", "kubeconfig", "kube_context", "severity_threshold", "targetType"]
LIST_FIELDS = ["excludedNamespaces", "includeNamespaces", "targetNames", "paths"]


@pytest.mark.parametrize("field", STRING_FIELDS + LIST_FIELDS)
@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_hostile_inputs_rejected(field: str, value: str, fake_bin: FakeBin) -> None:
    data: dict[str, Any] = {field: [value] if field in LIST_FIELDS else value}
    if field == "targetNames" and value.startswith("C"):
        data["targetType"] = "control"
    with pytest.raises(ValidationError) as info:
        KubescapeRequest.model_validate(data, context={ALLOWED_ROOTS_KEY: []})
    err = describe_validation_error(info.value)
    assert err.field.split("[")[0] == field
    assert "\n" not in str(err) and "\x00" not in str(err) and len(str(err)) < 600
    assert fake_bin.starts() == []


def test_paths_outside_allowed_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "ok.yaml").write_text("kind: Pod\n")
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "key.yaml").write_text("kind: Secret\n")
    (root / "escape").symlink_to(outside / "key.yaml")
    monkeypatch.setenv("MCP_KSCAN_ALLOWED_ROOTS", str(root))
    monkeypatch.chdir(root)
    settings_mod.configure(None)
    # The roots reach the validators through the validation context, from the settings passed down.
    roots = {ALLOWED_ROOTS_KEY: [str(r) for r in settings_mod.get_settings().allowed_roots]}
    try:
        assert KubescapeRequest.model_validate({"paths": ["ok.yaml"]}, context=roots).paths == [
            str((root / "ok.yaml").resolve())]
        for bad in ["escape", "../secret/key.yaml", str(outside), "../../../../etc/passwd", "/etc/passwd"]:
            with pytest.raises(ValidationError) as info:
                KubescapeRequest.model_validate({"paths": [bad]}, context=roots)
            err = describe_validation_error(info.value)
            assert err.field == "paths[0]" and "allowed roots" in err.reason
            assert "secret/key.yaml" not in err.reason or "secret/key.yaml" in bad
        # Without the server's roots a path is refused, never read as "no roots" (anywhere).
        with pytest.raises(ValidationError) as info:
            KubescapeRequest(paths=["ok.yaml"])
        assert "validated without the server's settings" in describe_validation_error(info.value).reason
        with pytest.raises(ValidationError):
            KubescapeRequest(kubeconfig=str(outside / "key.yaml"))
    finally:
        settings_mod.configure(None)


# --------------------------------------------------------------------------- argv vs the fake CLI


@pytest.mark.parametrize(("fields", "expected"), ARGV_CASES)
def test_fake_kubescape_accepts_our_argv(
    fields: dict[str, Any], expected: list[str], fake_bin: FakeBin, tmp_path: Path
) -> None:
    out = tmp_path / "report.json"
    argv = build_argv(KubescapeRequest.model_validate(fields), str(fake_bin.kubescape), out)
    res = subprocess.run(argv, capture_output=True, timeout=30)
    assert res.returncode in (0, 1), res.stderr
    assert b"unknown flag" not in res.stderr
    parse_report(out.read_bytes())


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("name", ["results.json", "with_a_failure.json", "many_findings.json"])
def test_parse_defectdojo_reports(name: str) -> None:
    data = shared_fixture("kubescape", "defectdojo", name).read_bytes()
    doc = json.loads(data)
    sd = doc["summaryDetails"]
    report = parse_report(data)
    assert report.compliance_score == sd.get("complianceScore")
    assert report.risk_score == pytest.approx(sd["score"])
    assert [f.name for f in report.frameworks] == [f["name"] for f in sd["frameworks"]]
    assert [f.compliance_score for f in report.frameworks] == [f.get("complianceScore") for f in sd["frameworks"]]
    assert report.resources.failed == sd["ResourceCounters"]["failedResources"]
    assert report.resources.passed == sd["ResourceCounters"]["passedResources"]
    statuses = Counter(c["status"] for c in sd["controls"].values())
    assert report.controls.failed == statuses["failed"]
    assert report.controls.passed + report.controls.skipped + report.controls.failed == len(sd["controls"])
    assert {c.control_id for c in report.failed_controls} == {
        cid for cid, c in sd["controls"].items() if c["status"] == "failed"}
    # Most urgent first: severity, then the risk order's tie-breakers (mcp_kscan.risk).
    keys = [risk_key(c.control_id, c.severity, c.failed_resources) for c in report.failed_controls]
    assert keys == sorted(keys)
    assert [severity_rank(c.severity) for c in report.failed_controls] == sorted(severity_rank(c.severity) for c in report.failed_controls)
    assert len(report.findings) == sum(len(r["controls"]) for r in doc["results"])
    assert all(f.resource.kind and f.resource.name for f in report.findings)


def test_with_a_failure_details() -> None:
    report = parse_report(shared_fixture("kubescape", "defectdojo", "with_a_failure.json").read_bytes())
    assert report.compliance_score == pytest.approx(90.90909)
    assert report.kubescape_version == "v3.0.3"
    failed = {f.control_id: f for f in report.findings if f.status == "failed"}
    assert set(failed) == {"C-0030", "C-0055", "C-0260"}
    assert failed["C-0055"].fix_paths
    ref = failed["C-0055"].resource
    # The file is source.path joined with relativePath, whole: an agent opens it.
    assert (ref.api_version, ref.kind, ref.name, ref.file) == (
        "apps/v1", "Deployment", "nginx-deployment", "/home/administrator/k8s-kubescape-test/nginx.yaml")
    # no `severity` field in this v3.0.3 report: taken from scoreFactor
    assert all(c.severity != "Unknown" for c in report.failed_controls)


def test_many_findings_status_derived_from_rules() -> None:
    data = shared_fixture("kubescape", "defectdojo", "many_findings.json").read_bytes()
    doc = json.loads(data)
    report = parse_report(data)
    assert report.compliance_score is None and report.risk_score == pytest.approx(28.733154)
    expected = Counter()
    for r in doc["results"]:
        for c in r["controls"]:
            assert "status" not in c  # the old format: only rules carry a status
            rule_statuses = {ru["status"] for ru in c["rules"]}
            expected["failed" if "failed" in rule_statuses else "passed"] += 1
    assert Counter(f.status for f in report.findings) == expected
    by_id = {f.resource.name: f.resource for f in report.findings}
    # No source.path in 2022 reports: the relative path as the scan saw it.
    assert by_id["paymentservice"].file == "examples/online-boutique/paymentservice.yaml"
    assert by_id["kubescape-discovery"].kind == "ServiceAccount"
    assert any(f.failed_paths for f in report.findings)


def test_many_findings_parses_whole() -> None:
    """A 1 MB report parses into every finding. (It takes about 0.06 s of CPU; how fast is a
    benchmark figure, not a unit test's: a wall-clock bound here failed on a loaded machine.)"""
    data = shared_fixture("kubescape", "defectdojo", "many_findings.json").read_bytes()
    assert len(data) > 1_000_000
    report = parse_report(data)
    assert len(report.findings) == 710
    assert (report.controls.failed, report.controls.passed, report.controls.skipped) == (46, 137, 0)


def test_mock_summary_details_is_a_bare_summary_section() -> None:
    data = shared_fixture("kubescape", "upstream", "mock_summaryDetails.json").read_bytes()
    doc = json.loads(data)
    assert "summaryDetails" not in doc and "controls" in doc
    report = parse_report(data)
    assert report.risk_score == pytest.approx(19.654322)
    assert report.compliance_score == pytest.approx(73.24568)
    assert (report.controls.failed, report.controls.passed, report.controls.skipped) == (16, 5, 3)
    assert (report.resources.passed, report.resources.failed, report.resources.skipped) == (210, 83, 89)
    assert report.findings == [] and report.errors
    assert summarize_kubescape(report).failed_controls_total == 16


def _mini(**extra: Any) -> dict[str, Any]:
    return {
        "summaryDetails": {
            "controls": {
                "C-0057": {"controlID": "C-0057", "name": "Privileged container", "status": "failed",
                           "severity": "high", "ResourceCounters": {"failedResources": 2}},
                "C-0001": {"controlID": "C-0001", "name": "Registries", "status": "failed", "scoreFactor": 9.5,
                           "ResourceCounters": {"failedResources": 1}},
                "C-0002": {"controlID": "C-0002", "name": "Exec", "status": "skipped", "scoreFactor": 0.5},
            },
            "frameworks": [{"name": "NSA", "complianceScore": 40}],
            "ResourceCounters": {"passedResources": 1, "failedResources": 2, "skippedResources": 0},
            "score": 60, "complianceScore": 40,
        },
        "resources": [],
        "results": [{"resourceID": "/v1/default/Pod/web", "controls": [
            {"controlID": "C-0057", "name": "Privileged container", "status": {"status": "failed"},
             "rules": [{"name": "r", "status": "failed", "paths": [
                 {"failedPath": "spec.containers[0].securityContext.privileged"},
                 {"reviewPath": "spec.hostPID"}]}]},
            {"controlID": "C-0002", "rules": []},
        ]}],
        **extra,
    }


def test_severity_sources_order_and_fallback_identity() -> None:
    report = parse_report(_mini())
    assert [(c.control_id, c.severity) for c in report.failed_controls] == [("C-0001", "Critical"),
                                                                            ("C-0057", "High")]
    first, second = report.findings
    assert (first.resource.api_version, first.resource.namespace, first.resource.kind, first.resource.name) == (
        "v1", "default", "Pod", "web")
    assert first.failed_paths == ["spec.containers[0].securityContext.privileged", "spec.hostPID"]
    assert (second.status, second.severity, second.control_name) == ("skipped", "Unknown", "Exec")
    assert report.engine is None


def test_builtin_engine_marker() -> None:
    report = parse_report(_mini(metadata={"scanMetadata": {"kubescapeVersion": "v3"},
                                          "engine": {"name": "mcp-kscan-builtin", "errors": ["bad.yaml: line 3"]}}))
    assert report.engine == "mcp-kscan-builtin" and report.kubescape_version == "v3"
    assert "bad.yaml: line 3" in report.errors


@pytest.mark.parametrize(
    ("rid", "expected"),
    [
        ("apps/v1/default/Deployment/nginx", ("apps/v1", "default", "Deployment", "nginx")),
        ("/v1/kube-system/ServiceAccount/sa", ("v1", "kube-system", "ServiceAccount", "sa")),
        ("path=966824446/api=apps/v1//Deployment/nginx-deployment", ("apps/v1", None, "Deployment",
                                                                      "nginx-deployment")),
        ("rbac.authorization.k8s.io/v1//ClusterRole/admin", ("rbac.authorization.k8s.io/v1", None, "ClusterRole",
                                                             "admin")),
        ("/kubescape/ServiceAccount/sa/path=1/api=rbac.authorization.k8s.io/v1//ClusterRole/x",
         (None, "kubescape", "ServiceAccount", "sa")),
    ],
)
def test_resource_from_id(rid: str, expected: tuple[str | None, ...]) -> None:
    ref = resource_from_id(rid)
    assert (ref.api_version, ref.namespace, ref.kind, ref.name) == expected


@pytest.mark.parametrize(
    "data", [b"", b"<html>not json</html>", b"[]", b"{}", b'{"results": []}', b'{"summaryDetails": {"contr']
)
def test_garbage_is_a_clear_error(data: bytes) -> None:
    with pytest.raises(ScanOutputError) as info:
        parse_report(data)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_in_a_report_is_refused_by_name(constant: str) -> None:
    """Stored reports must be strict JSON (GET /v1/results serves their bytes as they are)."""
    with pytest.raises(ScanOutputError) as info:
        parse_report(b'{"summaryDetails": {"complianceScore": %s}}' % constant.encode())
    assert constant in str(info.value) and "\n" not in str(info.value)


def test_every_shared_json_parses(shared_dir: Path) -> None:
    from mcp_kscan.readers.kube_bench_json import parse_output

    files = sorted((shared_dir / "fixtures" / "kubescape").rglob("*.json"))
    assert files
    for f in files:
        report = parse_report(f.read_bytes())
        assert report.risk_score is not None, f
    kb_files = sorted((shared_dir / "fixtures" / "kube-bench").rglob("*.json"))
    assert kb_files
    for f in kb_files:
        assert parse_output(f.read_bytes()).checks, f
