"""The shipped ClusterRole covers every read; severity spellings; filters; the fake API's operator behaviour."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube_api import KUBESCAPE_API, TRIVY_API, FakeKubeAPI

from mcp_kscan.errors import InvalidRequest
from mcp_kscan.operators import kubescape, trivy
from mcp_kscan.operators.client import Resource
from mcp_kscan.operators.filters import ImageMatcher, parse_vuln_id, parse_workload, split_image
from mcp_kscan.operators.models import ImageRef
from mcp_kscan.operators.severity import SEVERITIES, parse_severity

REPO = Path(__file__).resolve().parents[2]
KS = "/apis/spdx.softwarecomposition.kubescape.io/v1beta1"


def test_cluster_role_grants_every_read_and_nothing_else() -> None:
    docs = list(yaml.safe_load_all((REPO / "deploy" / "operator-reader-rbac.yaml").read_text()))
    role = next(d for d in docs if d and d["kind"] == "ClusterRole")
    granted = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    assert {v for _, _, v in granted} <= {"get", "list"}  # read-only
    used = [v for m in (kubescape, trivy) for v in vars(m).values() if isinstance(v, Resource)]
    assert len(used) >= 7
    for res in used:
        assert (res.group, res.plural, "list") in granted, res
        if res.group != "apps":
            assert (res.group, res.plural, "get") in granted, res
    binding = next(d for d in docs if d and d["kind"] == "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]


def test_severity_spellings_of_both_operators() -> None:
    assert [parse_severity(s) for s in ("Critical", "HIGH", "medium", "Low", "Negligible", "NONE", "UNKNOWN", "", None)] == [
        "Critical", "High", "Medium", "Low", "Negligible", "Negligible", "Unknown", "Unknown", "Unknown"]
    assert SEVERITIES[0] == "Critical" and SEVERITIES[-1] == "Unknown"


def test_ids_and_workloads() -> None:
    assert parse_vuln_id("cve-2023-39325", "cve") == "CVE-2023-39325"
    assert parse_vuln_id("GHSA-4374-P667-P6C8", "cve") == "GHSA-4374-p667-p6c8"
    for bad in ("CVE-2023-123", "GHSA-1234-5678-9abc", "CVE-2023-39325;rm", "RHSA-2023:1", "CVE-2023-39325\n", " CVE-2023-39325"):
        with pytest.raises(InvalidRequest, match="^cve: must be a CVE id"):
            parse_vuln_id(bad, "cve")
    assert parse_workload("deployment/default/nginx").kind == "Deployment"
    for bad in ("Deployment/default", "Deployment/default/nginx/x", "Deploy ment/a/b", "Deployment/../x", "Pod/a/b\n"):
        with pytest.raises(InvalidRequest, match="^workload: must be Kind/namespace/name"):
            parse_workload(bad)


def test_image_matching_knows_docker_hub_and_registry_ports() -> None:
    hub = ImageRef(repository="index.docker.io/library/nginx", tag="alpine")
    assert ImageMatcher("nginx").matches(hub) and ImageMatcher("docker.io/library/nginx:alpine").matches(hub)
    assert not ImageMatcher("nginx:latest").matches(hub) and not ImageMatcher("ginx").matches(hub)
    assert split_image("registry:5000/team/app:1.2@sha256:ab") == ImageRef(repository="registry:5000/team/app", tag="1.2", digest="sha256:ab")
    assert split_image("registry:5000/team/app") == ImageRef(repository="registry:5000/team/app")
    assert ImageMatcher("metrics-server").matches(ImageRef(repository="gke.gcr.io/metrics-server"))


def _get(api: FakeKubeAPI, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(api.url + path, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_fake_api_serves_discovery_fullspec_paging_and_403(samples) -> None:  # type: ignore[no-untyped-def]
    with FakeKubeAPI(objects=samples, api_groups={**KUBESCAPE_API, **TRIVY_API},
                     forbidden={("list", "configauditreports")}) as api, \
         FakeKubeAPI(objects=[]) as bare:
        code, groups = _get(api, "/apis")
        assert code == 200 and {g["name"] for g in groups["groups"]} == {"spdx.softwarecomposition.kubescape.io", "aquasecurity.github.io"}
        assert _get(bare, "/apis/aquasecurity.github.io/v1alpha1")[0] == 404
        # The aggregated API lists metadata only unless resourceVersion=fullSpec; GET is whole.
        _, plain = _get(api, f"{KS}/vulnerabilitymanifestsummaries")
        assert plain["items"] and all(i["spec"] == {} and i["metadata"]["name"] for i in plain["items"])
        _, full = _get(api, f"{KS}/vulnerabilitymanifestsummaries?resourceVersion=fullSpec")
        assert all(i["spec"]["vulnerabilitiesRef"] for i in full["items"])
        name = plain["items"][0]["metadata"]["name"]
        ns = plain["items"][0]["metadata"]["namespace"]
        _, one = _get(api, f"{KS}/namespaces/{ns}/vulnerabilitymanifestsummaries/{name}")
        assert one["spec"]["severities"]
        # Paging: limit + continue visits every item once, in order.
        seen, token = [], ""
        while True:
            _, page = _get(api, f"{KS}/workloadconfigurationscansummaries?limit=2" + (f"&continue={token}" if token else ""))
            seen += [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in page["items"]]
            token = page["metadata"].get("continue")
            if not token:
                break
            assert page["metadata"]["remainingItemCount"] > 0
        assert len(seen) == 3 and seen == sorted(seen)
        code, status = _get(api, "/apis/aquasecurity.github.io/v1alpha1/configauditreports")
        assert code == 403 and status["reason"] == "Forbidden"
        assert 'cannot list resource "configauditreports" in API group "aquasecurity.github.io"' in status["message"]
