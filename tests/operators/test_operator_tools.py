"""list_vulnerabilities, find_cve and get_workload_posture through MCP (the SDK Client), against the
fake Kubernetes API serving the operators' real sample objects (../shared/fixtures/operators)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp import Client
from operator_objects import bulk_trivy, trivy_samples

from mcp_kscan.server import build_server

pytestmark = pytest.mark.anyio

KS = "/apis/spdx.softwarecomposition.kubescape.io/v1beta1"
METRICS_SERVER = "Deployment/kube-system/metrics-server-v0.5.2"


@pytest.fixture
async def mcp(cluster) -> AsyncIterator[Client]:  # type: ignore[no-untyped-def]
    """One MCP session per test (the server reads the cluster configuration on every call)."""
    async with Client(build_server()) as client:
        yield client


async def ok(mcp: Client, name: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await mcp.call_tool(name, args)
    assert not result.is_error, result.content
    data: dict[str, Any] = result.structured_content
    return data


async def error_text(mcp: Client, name: str, args: dict[str, Any]) -> str:
    result = await mcp.call_tool(name, args)
    assert result.is_error, result.structured_content
    text: str = result.content[0].text
    return text.removeprefix(f"Error executing tool {name}: ")


async def all_rows(mcp: Client, args: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every row, following next_cursor (a page holds what fits the size budget); and the first page."""
    first = page = await ok(mcp, "list_vulnerabilities", {"limit": 200, **args})
    rows = [*page["vulnerabilities"]]
    while page["next_cursor"]:
        page = await ok(mcp, "list_vulnerabilities", {"limit": 200, **args, "cursor": page["next_cursor"]})
        rows += page["vulnerabilities"]
    assert len(rows) == first["total_matching"]
    return rows, first


RANK = {"Critical": 6, "High": 5, "Medium": 4, "Low": 3, "Negligible": 2, "Unknown": 1}


def worst_first(rows: list[dict[str, Any]]) -> bool:
    keys = [(-RANK[r["severity"]], 0 if r["fixable"] else 1) for r in rows]
    return keys == sorted(keys)


async def test_rows_from_both_operators_worst_first_with_images_and_workloads(mcp, cluster, samples) -> None:  # type: ignore[no-untyped-def]
    cluster(samples)
    rows, page = await all_rows(mcp, {})
    assert len(page["vulnerabilities"]) < page["total_matching"]  # the size budget, not the limit, ended the page
    assert {s["operator"]: s["read"] for s in page["sources"]} == {"kubescape": True, "trivy": True}
    assert worst_first(rows)
    # Trivy: the nginx report belongs to ReplicaSet nginx-deployment-965685897, shown as its Deployment.
    nginx = [r for r in rows if r["source"] == "trivy" and r["report"]["name"] == "replicaset-nginx-deployment-965685897-nginx"]
    assert nginx and all(r["workload"] == {"kind": "Deployment", "namespace": "default", "name": "nginx-deployment"} for r in nginx)
    assert nginx[0]["image"] == {"repository": "index.docker.io/library/nginx", "tag": "alpine", "digest": None}
    curl = next(r for r in nginx if r["vulnerability_id"] == "CVE-2023-23914" and r["package"]["name"] == "curl")
    assert curl["severity"] == "Critical" and curl["fixable"] is True
    assert curl["package"] == {"name": "curl", "installed_version": "7.87.0-r1", "fixed_version": "7.87.0-r2", "type": None}
    # A Pod's report names the Pod; the digest is kept.
    ubuntu = next(r for r in rows if r["report"]["name"] == "pod-ubuntu-ubuntu")
    assert ubuntu["workload"] == {"kind": "Pod", "namespace": "lbc", "name": "ubuntu"}
    assert ubuntu["image"]["digest"].startswith("sha256:f78909c2")
    # Kubescape: a GHSA match carries its CVE from relatedVulnerabilities.
    ghsa = next(r for r in rows if r["vulnerability_id"] == "GHSA-4374-p667-p6c8")
    assert ghsa["cve"] == "CVE-2023-39325" and ghsa["aliases"] == ["CVE-2023-39325"]
    assert ghsa["workload"] == {"kind": "Deployment", "namespace": "kube-system", "name": "metrics-server-v0.5.2"}
    assert ghsa["image"]["repository"] == "gke.gcr.io/metrics-server" and ghsa["report"]["namespace"] == "kubescape"
    assert ghsa["package"]["fixed_version"] == "0.17.0" and ghsa["fix_state"] == "fixed"
    # An image scan no summary points at gives rows without a workload.
    wardle = [r for r in rows if r["report"]["namespace"] == "wardle"]
    assert wardle and all(r["workload"] is None and r["namespace"] is None for r in wardle)
    assert wardle[0]["image"]["repository"] == "nginx" and wardle[0]["image"]["tag"] == "latest"
    # The summary of default/nginx-deployment names a manifest that is not in the cluster: said, not hidden.
    assert any("nginx-e06153" in w for w in page["warnings"])


async def test_every_row_once_across_pages(mcp, cluster, samples) -> None:  # type: ignore[no-untyped-def]
    cluster(samples)
    first = await ok(mcp, "list_vulnerabilities", {"limit": 7, "min_severity": "medium"})
    total = first["total_matching"]
    seen = [*first["vulnerabilities"]]
    cursor = first["next_cursor"]
    pages = 1
    while cursor:
        page = await ok(mcp, "list_vulnerabilities", {"limit": 7, "min_severity": "Medium", "cursor": cursor})
        assert page["total_matching"] == total
        seen += page["vulnerabilities"]
        cursor = page["next_cursor"]
        pages += 1
    assert len(seen) == total and pages > 3
    assert worst_first(seen)
    keys = {(r["source"], r["report"]["name"], r["namespace"], r["vulnerability_id"], r["package"]["name"],
             r["package"]["installed_version"], (r["workload"] or {}).get("name")) for r in seen}
    assert len(keys) == total
    assert all(RANK[r["severity"]] >= RANK["Medium"] for r in seen)
    # A cursor is bound to its filters.
    text = await error_text(mcp, "list_vulnerabilities", {"limit": 7, "min_severity": "High", "cursor": first["next_cursor"]})
    assert text.startswith("cursor: ")


async def test_filters(mcp, cluster, samples) -> None:  # type: ignore[no-untyped-def]
    api = cluster(samples)
    by_workload, _ = await all_rows(mcp, {"workload": "Deployment/default/nginx-deployment"})
    assert len(by_workload) == 41  # the Trivy report's 41 entries; Kubescape's manifest is missing
    fixable = await ok(mcp, "list_vulnerabilities", {"workload": "Deployment/default/nginx-deployment", "fixable": False})
    assert fixable["total_matching"] == 2 and all(r["package"]["fixed_version"] is None for r in fixable["vulnerabilities"])
    before = len(api.requests)
    by_image = await ok(mcp, "list_vulnerabilities", {"image": "gke.gcr.io/metrics-server", "limit": 10})
    assert by_image["total_matching"] == 18 and {r["source"] for r in by_image["vulnerabilities"]} == {"kubescape"}
    # Only the manifests the filter may need are fetched: the metrics-server image's, and the one
    # image scan whose metadata does not say its image (the wardle sample has no annotations).
    # Manifests are never listed with their spec; summaries always are.
    new = [path for _, path in api.requests[before:]]
    gets = sorted(p.split("/")[-1][:20] for p in new if "/vulnerabilitymanifests/" in p)
    assert gets == ["5185b96f0becf59032b8", "gke.gcr.io-metrics-s"]
    assert not [p for p in new if "vulnerabilitymanifests?" in p and "fullSpec" in p]
    assert all("fullSpec" in p for p in new if "vulnerabilitymanifestsummaries?" in p)
    # A manifest is read once per resourceVersion: asking again reads the summaries, not the manifests.
    before = len(api.requests)
    again = await ok(mcp, "list_vulnerabilities", {"image": "gke.gcr.io/metrics-server", "limit": 10})
    assert again["total_matching"] == 18
    assert not [p for _, p in api.requests[before:] if "/vulnerabilitymanifests/" in p]
    hub = await ok(mcp, "list_vulnerabilities", {"image": "nginx:alpine", "min_severity": "Critical"})
    assert hub["total_matching"] == 2 and all(r["image"]["tag"] == "alpine" for r in hub["vulnerabilities"])
    ns, _ = await all_rows(mcp, {"namespace": "kube-system"})
    assert {r["namespace"] for r in ns} == {"kube-system"}
    assert {r["source"] for r in ns} == {"kubescape", "trivy"}


async def test_find_cve_by_cve_and_by_ghsa_alias(mcp, cluster, samples) -> None:  # type: ignore[no-untyped-def]
    cluster(samples)
    found = await ok(mcp, "find_cve", {"cve_id": "CVE-2023-39325"})
    assert found["found"] is True and found["namespaces"] == ["kube-system"]
    assert found["images"] == ["gke.gcr.io/metrics-server@sha256:1d20492ca374191e5b6ff4b7712b62b41ab75ce226424974356dc266e6e99e83"]
    assert found["workloads"] == 1 and found["fixed_versions"] == ["0.17.0"] and found["fixable_everywhere"] is True
    assert [r["vulnerability_id"] for r in found["vulnerabilities"]] == ["GHSA-4374-p667-p6c8"]
    by_alias = await ok(mcp, "find_cve", {"cve_id": "ghsa-4374-P667-p6c8"})
    assert by_alias["cve_id"] == "GHSA-4374-p667-p6c8" and by_alias["total_matching"] == 1
    curl = await ok(mcp, "find_cve", {"cve_id": "CVE-2023-23914"})
    assert curl["namespaces"] == ["default"] and curl["fixed_versions"] == ["7.87.0-r2"]
    assert {r["package"]["name"] for r in curl["vulnerabilities"]} == {"curl", "libcurl"}
    absent = await ok(mcp, "find_cve", {"cve_id": "CVE-2001-0001"})
    assert absent["found"] is False and absent["total_matching"] == 0 and absent["vulnerabilities"] == []


async def test_workload_posture_from_each_operator(mcp, cluster, samples) -> None:  # type: ignore[no-untyped-def]
    cluster(samples)
    ks = await ok(mcp, "get_workload_posture", {"workload": "Deployment/local-path-storage/local-path-provisioner"})
    assert ks["findings_total"] == 19 and ks["skipped"] == 3 and ks["passed"] == 22
    first = ks["findings"][0]
    assert set(first) >= {"control_id", "control_name", "severity", "status", "resource", "failed_paths", "fix_paths", "source"}
    assert first["status"] == "failed" and first["resource"]["kind"] == "Deployment"
    assert any(f["fix_paths"] for f in ks["findings"]) and any(f["failed_paths"] for f in ks["findings"])
    order = {"Critical": 0, "High": 1, "Medium": 2, "Low": 3, "Unknown": 4}
    assert [order[f["severity"]] for f in ks["findings"]] == sorted(order[f["severity"]] for f in ks["findings"])
    trivy = await ok(mcp, "get_workload_posture", {"workload": "Deployment/default/nginx-deployment"})
    assert trivy["findings_total"] == 13 and {f["source"] for f in trivy["findings"]} == {"trivy"}
    assert trivy["resolved_from"] == [{"kind": "ReplicaSet", "namespace": "default", "name": "nginx-deployment-965685897"}]
    assert trivy["vulnerabilities"]["trivy"] == {"Critical": 2, "High": 3, "Medium": 25, "Low": 11}
    assert trivy["vulnerabilities"]["kubescape"] == {"High": 4, "Medium": 27, "Low": 4, "Negligible": 72, "Unknown": 6}
    text = await error_text(mcp, "get_workload_posture", {"workload": "Deployment/default/no-such-app"})
    assert text.startswith("workload: no operator has results for Deployment/default/no-such-app")


@pytest.mark.parametrize(
    ("tool", "args", "start"),
    [
        ("find_cve", {"cve_id": "CVE-23-1"}, "cve_id: must be a CVE id (CVE-2023-39325) or a GitHub advisory id"),
        ("list_vulnerabilities", {"cve": "log4shell"}, "cve: must be a CVE id"),
        ("list_vulnerabilities", {"workload": "nginx"}, "workload: must be Kind/namespace/name"),
        ("get_workload_posture", {"workload": "Deployment/Default/x"}, "workload: must be Kind/namespace/name"),
        ("list_vulnerabilities", {"namespace": "Kube_System"}, "namespace: must be a namespace name"),
        ("list_vulnerabilities", {"image": "nginx latest"}, "image: must be an image reference"),
        ("list_vulnerabilities", {"cursor": "!!"}, "cursor: not a next_cursor"),
    ],
)
async def test_bad_input_is_one_line_naming_the_field(mcp, cluster, tool, args, start) -> None:  # type: ignore[no-untyped-def]
    api = cluster([])
    text = await error_text(mcp, tool, args)
    assert text.startswith(start) and "\n" not in text
    assert api.requests == []  # validated before any API call


async def test_bad_severity_names_the_valid_values(mcp, cluster) -> None:  # type: ignore[no-untyped-def]
    cluster([])
    text = await error_text(mcp, "list_vulnerabilities", {"min_severity": "Severe"})
    assert "min_severity" in text and "Critical" in text and "Negligible" in text


async def test_neither_operator_installed(mcp, cluster) -> None:  # type: ignore[no-untyped-def]
    cluster([], kubescape=False, trivy=False)
    for tool, args in (("list_vulnerabilities", {}), ("find_cve", {"cve_id": "CVE-2023-39325"}),
                       ("get_workload_posture", {"workload": "Deployment/default/x"})):
        text = await error_text(mcp, tool, args)
        assert text.startswith("no security operator is installed in the cluster: looked for the Kubescape operator"), text
        assert "spdx.softwarecomposition.kubescape.io" in text and "aquasecurity.github.io" in text


async def test_forbidden_read_names_resource_and_verb(mcp, cluster, operators_dir) -> None:  # type: ignore[no-untyped-def]
    cluster(trivy_samples(operators_dir), kubescape=False, forbidden={("list", "vulnerabilityreports")})
    text = await error_text(mcp, "list_vulnerabilities", {})
    assert "RBAC forbids list on vulnerabilityreports.aquasecurity.github.io cluster-wide" in text
    assert "deploy/operator-reader-rbac.yaml" in text


async def test_one_operator_forbidden_the_other_answers(mcp, cluster, samples) -> None:  # type: ignore[no-untyped-def]
    cluster(samples, forbidden={("list", "vulnerabilityreports"), ("list", "replicasets")})
    page = await ok(mcp, "list_vulnerabilities", {"namespace": "kube-system", "limit": 5})
    sources = {s["operator"]: s for s in page["sources"]}
    assert sources["kubescape"]["read"] is True and page["total_matching"] == 18
    assert sources["trivy"]["read"] is False and "list on vulnerabilityreports" in sources["trivy"]["error"]


async def test_replicasets_forbidden_rows_keep_the_replicaset(mcp, cluster, samples) -> None:  # type: ignore[no-untyped-def]
    cluster(samples, forbidden={("list", "replicasets")})
    page = await ok(mcp, "list_vulnerabilities", {"image": "nginx:alpine", "limit": 3})
    assert page["vulnerabilities"][0]["workload"]["kind"] == "ReplicaSet"
    assert any("list on replicasets.apps" in w for w in page["warnings"])


async def test_unreachable_api(mcp, cluster) -> None:  # type: ignore[no-untyped-def]
    api = cluster([])
    api.stop()  # the kubeconfig now points at a closed port
    text = await error_text(mcp, "list_vulnerabilities", {})
    assert text.startswith("cannot reach the Kubernetes API (the kubeconfig): cannot reach the API server"), text


async def test_paged_lists_follow_continue(mcp, cluster, operators_dir) -> None:  # type: ignore[no-untyped-def]
    template = next(o for o in trivy_samples(operators_dir) if o["kind"] == "VulnerabilityReport"
                    and o["metadata"]["name"].startswith("replicaset-nginx"))
    api = cluster(bulk_trivy(1_001, template), kubescape=False)  # pages of 500, 500 and 1
    page = await ok(mcp, "list_vulnerabilities", {"min_severity": "Critical", "limit": 5})
    lists = [p for _, p in api.requests if p.startswith("/apis/aquasecurity.github.io/v1alpha1/vulnerabilityreports?")]
    assert len(lists) == 3 and all("limit=500" in p for p in lists) and sum("continue=" in p for p in lists) == 2
    assert page["sources"][1]["objects"] == 1_001
    critical_per_report = {v["vulnerabilityID"] for v in template["report"]["vulnerabilities"] if v["severity"] == "CRITICAL"}
    assert critical_per_report and page["total_matching"] > 0
    assert all(r["workload"]["kind"] == "Deployment" and r["workload"]["name"].startswith("app-") for r in page["vulnerabilities"])


async def test_tools_list_entries_stay_small(mcp) -> None:  # type: ignore[no-untyped-def]
    """tools/list has a budget (24,000 characters for every tool together): these three take < 6,000."""
    import json

    tools = {t.name: t for t in (await mcp.list_tools()).tools}
    ours = [tools[n] for n in ("list_vulnerabilities", "find_cve", "get_workload_posture")]
    size = sum(len(json.dumps(t.model_dump(mode="json", by_alias=True, exclude_none=True))) for t in ours)
    assert size < 6_000, size
    for tool in ours:
        assert tool.output_schema and tool.output_schema["type"] == "object"
        for name, prop in tool.input_schema["properties"].items():
            assert prop.get("description"), (tool.name, name)
