"""The report has Kubescape's v2 shape, says which engine wrote it, and scores like Kubescape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import mcp_kscan
from mcp_kscan.engine.frameworks import UnknownSelection, list_controls, list_frameworks, resolve
from mcp_kscan.engine.model import fnv32a
from mcp_kscan.engine.scan import scan_objects, scan_paths

DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: nginx-deployment}
spec:
  replicas: 3
  template:
    metadata: {labels: {app: nginx}}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        securityContext: {privileged: true}
"""
SERVICE = "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: n}\nspec: {ports: [{port: 80}]}\n"


@pytest.fixture
def report(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "nginx.yaml").write_text(DEPLOY + "---\n" + SERVICE)
    return scan_paths([tmp_path], frameworks=["nsa"])


def test_top_level_shape(report: dict[str, Any]) -> None:
    for key in ("generationTime", "summaryDetails", "resources", "results", "metadata", "clusterName", "reportGUID"):
        assert key in report
    sd = report["summaryDetails"]
    for key in ("controls", "frameworks", "ResourceCounters", "score", "complianceScore", "status",
                "resourcesSeverityCounters", "controlsSeverityCounters"):
        assert key in sd
    assert [f["name"] for f in sd["frameworks"]] == ["NSA"]
    json.dumps(report)  # serialisable as is


def test_engine_is_named_and_no_kubescape_version_claimed(report: dict[str, Any]) -> None:
    md = report["metadata"]
    assert md["engine"]["name"] == "mcp-kscan-builtin"
    assert md["engine"]["version"] == mcp_kscan.__version__
    assert "kubescapeVersion" not in md["scanMetadata"]
    assert md["scanMetadata"]["formatVersion"] == "v2"


def test_resource_ids_and_sources(report: dict[str, Any]) -> None:
    ids = [r["resourceID"] for r in report["resources"]]
    h = fnv32a("nginx.yaml")
    assert ids == [f"path={h}/api=apps/v1//Deployment/nginx-deployment", f"path={h}/api=/v1/n/Service/s"]
    src = report["resources"][0]["source"]
    assert src["relativePath"] == "nginx.yaml" and src["fileType"] == "YAML" and Path(src["path"]).is_dir()
    assert report["resources"][0]["object"]["metadata"]["name"] == "nginx-deployment"


def test_kubescape_own_example_id_hash() -> None:
    # From a real Kubescape report: path=1881121400 for examples/online-boutique/paymentservice.yaml.
    assert fnv32a("examples/online-boutique/paymentservice.yaml") == 1881121400


def test_results_have_status_and_paths(report: dict[str, Any]) -> None:
    (result,) = report["results"]  # the Service has no applicable NSA control
    c57 = next(c for c in result["controls"] if c["controlID"] == "C-0057")
    assert c57["status"] == {"status": "failed"} and c57["severity"] == "High"
    (rule,) = c57["rules"]
    assert rule["status"] == "failed"
    assert rule["paths"][0]["failedPath"] == "spec.template.spec.containers[0].securityContext.privileged"
    assert rule["paths"][0]["fixPath"] == {"path": "spec.template.spec.containers[0].securityContext.privileged", "value": "false"}


def test_scores_follow_kubescape(report: dict[str, Any]) -> None:
    sd = report["summaryDetails"]
    # NSA controls the engine cannot decide from files are listed as skipped, with the reason,
    # and count in no score (as Kubescape's skipped controls).
    skipped = {cid: c for cid, c in sd["controls"].items() if c["status"] == "skipped"}
    assert "C-0005" in skipped and "live cluster" in skipped["C-0005"]["statusInfo"]["info"]
    assert skipped["C-0005"]["complianceScore"] is None
    assert set(skipped) <= set(sd["frameworks"][0]["controls"])
    controls = {cid: c for cid, c in sd["controls"].items() if c["status"] != "skipped"}
    # One resource, failing or passing each control: control scores are 100/0 and 0/100.
    c57 = controls["C-0057"]
    assert c57["score"] == pytest.approx(100) and c57["complianceScore"] == 0
    assert c57["ResourceCounters"] == {"passedResources": 0, "failedResources": 1, "skippedResources": 0, "excludedResources": 0}
    failed = [c for c in controls.values() if c["status"] == "failed"]
    applicable = [c for c in controls.values() if sum(c["ResourceCounters"].values())]
    irrelevant = [c for c in controls.values() if c["statusInfo"].get("subStatus") == "irrelevant"]
    assert irrelevant and all(c["complianceScore"] == 100 for c in irrelevant)
    # complianceScore: plain mean over controls; score: scoreFactor-weighted failed share.
    assert sd["complianceScore"] == pytest.approx(100 * (len(controls) - len(failed)) / len(controls))
    bad = sum(c["scoreFactor"] for c in failed)
    worst = sum(c["scoreFactor"] for c in applicable)
    assert sd["score"] == pytest.approx(100 * bad / worst)
    assert sd["ResourceCounters"]["failedResources"] == 1
    assert sd["frameworks"][0]["complianceScore"] == pytest.approx(sd["complianceScore"])


def test_replicas_weigh_risk_score() -> None:
    def deploy(name: str, replicas: int, privileged: bool) -> dict[str, Any]:
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "x"},
                "spec": {"replicas": replicas, "template": {"spec": {"containers": [
                    {"name": "c", "image": "i:1", "securityContext": {"privileged": privileged}}]}}}}

    report = scan_objects([deploy("a", 3, True), deploy("b", 1, False)], controls=["C-0057"])
    c = report["summaryDetails"]["controls"]["C-0057"]
    assert c["score"] == pytest.approx(100 * 3.3 / 4.3)
    assert c["complianceScore"] == 50
    assert report["resources"][0]["resourceID"] == "apps/v1/x/Deployment/a"
    assert report["metadata"]["scanMetadata"]["targetType"] == "Control"


def test_selection_errors_list_what_exists() -> None:
    with pytest.raises(UnknownSelection, match="known: allcontrols, armobest, .*, yaml-scanning, all"):
        resolve(["cis"])
    with pytest.raises(UnknownSelection, match="C-0057"):
        resolve(controls=["C-9999"])
    # every implemented control is in some framework but the two Agent Sandbox ones
    assert {c.id for c in resolve(["all"]).controls} == {c["id"] for c in list_controls()} - {"C-0303", "C-0304"}
    assert {c.id for c in resolve(controls=["C-0303"]).controls} == {"C-0303"}
    skipped = resolve(controls=["C-0236"]).skipped
    assert [s.id for s in skipped] == ["C-0236"] and "registry" in skipped[0].reason
    assert resolve("nsa,mitre").frameworks == ("NSA", "MITRE")
    assert {"allcontrols", "armobest", "clusterscan", "devopsbest", "mitre", "nsa", "security", "soc2",
            "workloadscan", "yaml-scanning", "cis-v1.10.0", "cis-v1.12.0", "all"} == set(list_frameworks())
    # cloud-only CIS benchmarks (EKS, AKS, GKE) do not apply to files
    assert "cis-eks-t1.8.0" not in list_frameworks()


def test_omit_raw_resources(tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text(DEPLOY)
    report = scan_paths([tmp_path], omit_raw_resources=True)
    assert "object" not in report["resources"][0]


def test_load_errors_are_carried(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("kind: [\n")
    (tmp_path / "d.yaml").write_text(DEPLOY)
    report = scan_paths([tmp_path])
    assert report["metadata"]["engine"]["errors"][0].startswith("bad.yaml (document 1): cannot parse YAML")
    assert len(report["resources"]) == 1


def test_project_parser_reads_the_report(report: dict[str, Any]) -> None:
    kubescape = pytest.importorskip("mcp_kscan.readers.kubescape_report", reason="the Kubescape parser has not landed yet")
    parsed = kubescape.parse_report(json.dumps(report).encode())
    assert any(f.control_id == "C-0057" and f.status == "failed" for f in parsed.findings)
    assert parsed.compliance_score == pytest.approx(report["summaryDetails"]["complianceScore"])


def test_parallel_writer_matches_the_dict_report(tmp_path: Path) -> None:
    from mcp_kscan.engine.parallel import scan_paths_json

    for i in range(6):
        (tmp_path / f"d{i}.yaml").write_text(DEPLOY.replace("nginx-deployment", f"web-{i}") + "---\n" + SERVICE.replace("name: s", f"name: s{i}"))
    (tmp_path / "sa.yaml").write_text("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: default}\n")
    (tmp_path / "bad.yaml").write_text("kind: [\n")
    expected = scan_paths([tmp_path])
    for workers in (1, 2, 3):
        got = json.loads(scan_paths_json([tmp_path], workers=workers))
        for key in ("summaryDetails", "resources", "results"):
            assert got[key] == expected[key], (workers, key)
        assert got["metadata"] == expected["metadata"]
