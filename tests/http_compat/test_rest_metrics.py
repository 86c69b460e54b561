"""/v1/metrics (Kubescape's families from a scan) and /metrics (the server's own)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mcp_kscan.http_compat.prometheus import ServerMetrics, kubescape_metrics_text
from mcp_kscan.readers.kubescape_v2 import score_int

pytestmark = pytest.mark.anyio


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def families(text: str) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(text)}


async def test_v1_metrics_families_from_fake_report(rest: httpx.AsyncClient, fake_bin) -> None:  # type: ignore[no-untyped-def]
    c = rest
    r = await c.get("/v1/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    got = samples(r.text)
    assert got[("kubescape_cluster_complianceScore", ())] == 50
    assert got[("kubescape_cluster_count_resources_failed", ())] == 1
    assert got[("kubescape_cluster_count_control_failed", ())] == 1
    assert got[("kubescape_cluster_count_control_passed", ())] == 1
    assert got[("kubescape_cluster_count_control_skipped", ())] == 0
    c16 = (("link", "https://hub.armosec.io/docs/c-0016"), ("name", "Allow privilege escalation"), ("severity", "High"))
    assert got[("kubescape_control_complianceScore", c16)] == 0
    assert got[("kubescape_control_count_resources_failed", c16)] == 1
    assert got[("kubescape_framework_complianceScore", (("name", "AllControls"),))] == 50
    assert got[("kubescape_framework_count_control_failed", (("name", "NSA"),))] == 1
    web = (("apiVersion", "apps/v1"), ("kind", "Deployment"), ("name", "web"), ("namespace", "default"))
    assert got[("kubescape_resource_count_controls_failed", web)] == 1
    assert got[("kubescape_resource_count_controls_skipped", web)] == 0
    assert set(families(r.text).values()) == {"gauge"}
    assert fake_bin.starts("kubescape")[0]["argv"][1:4] == ["scan", "framework", "all"]

    # A metrics scrape never becomes "the latest scan", and leaves no result behind.
    assert (await c.get("/v1/status")).json() == {"id": "", "type": "notBusy"}
    assert (await c.get("/v1/results")).status_code == 400

    r = await c.post("/v1/metrics", params={"frameworks": "nsa,mitre"})
    assert r.status_code == 200
    assert fake_bin.starts("kubescape")[1]["argv"][1:4] == ["scan", "framework", "nsa,mitre"]
    assert (await c.put("/v1/metrics")).status_code == 405


async def test_v1_metrics_failed_scan_is_503(rest: httpx.AsyncClient, fake_bin) -> None:  # type: ignore[no-untyped-def]
    c = rest
    fake_bin.configure(mode="error")
    r = await c.get("/v1/metrics")
    assert r.status_code == 503
    assert r.json()["type"] == "error"
    bad = await c.get("/v1/metrics", params={"frameworks": "nsa;x"})
    assert bad.status_code == 400


# ---------------------------------------------------------------------------- source=latest


async def _stored_scan(c: httpx.AsyncClient, body: dict[str, object] | None = None) -> str:
    r = await c.post("/v1/scan", params={"wait": "true", "keep": "true"}, json=body or {})
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


async def test_v1_metrics_latest_serves_the_stored_scan_without_scanning(rest: httpx.AsyncClient, fake_bin) -> None:  # type: ignore[no-untyped-def]
    c = rest
    r = await c.get("/v1/metrics", params={"source": "latest"})
    assert r.status_code == 404
    message = r.json()["response"]
    assert "\n" not in message and "no stored successful framework scan of the cluster" in message
    assert fake_bin.starts("kubescape") == []  # no scan was started for the scrape

    scan_id = await _stored_scan(c)
    stored = (await c.get("/v1/results", params={"id": scan_id, "keep": "true"})).json()["response"]
    started = len(fake_bin.starts("kubescape"))
    r = await c.get("/v1/metrics", params={"source": "latest"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    assert len(fake_bin.starts("kubescape")) == started  # at once: no scan
    got = samples(r.text)
    age = got.pop(("kubescape_scan_age_seconds", ()))
    assert 0 <= age < 3600
    assert got == samples(kubescape_metrics_text(stored).decode())  # the same families a scan-per-scrape gives
    assert got[("kubescape_cluster_complianceScore", ())] == 50
    assert families(r.text)["kubescape_scan_age_seconds"] == "gauge"

    # A second scrape is served from the same stored scan (and it is still there: nothing deleted).
    again = samples((await c.get("/v1/metrics", params={"source": "latest"})).text)
    assert again[("kubescape_scan_age_seconds", ())] >= age
    assert (await c.get("/v1/results", params={"id": scan_id, "keep": "true"})).status_code == 200


async def test_v1_metrics_latest_picks_the_newest_successful_cluster_framework_scan(
    rest: httpx.AsyncClient, fake_bin, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    c = rest
    all_frameworks = await _stored_scan(c)
    nsa = await _stored_scan(c, {"targetType": "framework", "targetNames": ["NSA"]})
    # Newer scans that are not a cluster framework scan, or did not succeed, never stand in for one.
    manifest = tmp_path / "pod.yaml"
    manifest.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: x}]}\n")
    await _stored_scan(c, {"paths": [str(manifest)]})
    await _stored_scan(c, {"targetType": "control", "targetNames": ["C-0016"]})
    fake_bin.configure(mode="error")
    r = await c.post("/v1/scan", params={"wait": "true", "keep": "true"}, json={})
    assert r.status_code == 500
    fake_bin.configure(mode=None)

    cache = c._transport.app.state.stored_metrics  # type: ignore[attr-defined]
    # No frameworks means every framework, as for a scrape that scans: the NSA scan is newer but not that.
    assert (await c.get("/v1/metrics", params={"source": "latest"})).status_code == 200
    assert cache.text_for(all_frameworks) is not None
    assert (await c.get("/v1/metrics", params={"source": "latest", "frameworks": "nsa"})).status_code == 200
    assert cache.text_for(nsa) is not None
    assert (await c.get("/v1/metrics", params={"source": "latest", "frameworks": "all"})).status_code == 200
    assert cache.text_for(all_frameworks) is not None
    missing = await c.get("/v1/metrics", params={"source": "latest", "frameworks": "mitre"})
    assert missing.status_code == 404
    assert "framework scan of frameworks=mitre of the cluster" in missing.json()["response"]


async def test_v1_metrics_bad_source_names_the_valid_values(rest: httpx.AsyncClient, fake_bin) -> None:  # type: ignore[no-untyped-def]
    r = await rest.get("/v1/metrics", params={"source": "cache"})
    assert r.status_code == 400
    assert r.json()["response"] == "source: 'cache' is not a metrics source; use scan or latest"
    assert fake_bin.starts("kubescape") == []
    r = await rest.get("/v1/metrics", params={"source": "scan"})  # today's behaviour, said out loud
    assert r.status_code == 200 and len(fake_bin.starts("kubescape")) == 1


async def test_server_metrics_count_scans(rest: httpx.AsyncClient) -> None:
    c = rest
    before = await c.get("/metrics")
    assert before.status_code == 200 and before.headers["content-type"].startswith("text/plain")
    assert (await c.post("/v1/scan", params={"wait": "true"}, content=b"{}")).status_code == 200
    assert (await c.post("/api/tools/kube-bench", json={"targets": "node"})).status_code == 200
    got = samples((await c.get("/metrics")).text)
    assert got[("mcp_kscan_scans_total", (("scanner", "kubescape"), ("state", "succeeded")))] == 1
    assert got[("mcp_kscan_scans_total", (("scanner", "kube-bench"), ("state", "succeeded")))] == 1
    assert got[("mcp_kscan_scan_duration_seconds_count", (("scanner", "kubescape"),))] == 1
    assert got[("mcp_kscan_queue_depth", ())] == 0
    assert got[("mcp_kscan_scans_running", ())] == 0


# ---------------------------------------------------------------------------- units


def test_upstream_summary_details_fixture(shared_dir: Path) -> None:
    summary = json.loads((shared_dir / "fixtures/kubescape/upstream/mock_summaryDetails.json").read_text())
    text = kubescape_metrics_text({"summaryDetails": summary}).decode()
    got = samples(text)
    assert got[("kubescape_cluster_complianceScore", ())] == score_int(summary["complianceScore"])
    controls = [k for k in got if k[0] == "kubescape_control_count_resources_failed"]
    assert len(controls) == len(summary["controls"])
    assert not any(k[0].startswith("kubescape_resource_") for k in got)  # no results[] section


def test_many_findings_report(shared_dir: Path) -> None:
    report = json.loads((shared_dir / "fixtures/kubescape/defectdojo/many_findings.json").read_text())
    got = samples(kubescape_metrics_text(report).decode())
    resources = [k for k in got if k[0] == "kubescape_resource_count_controls_failed"]
    assert len(resources) > 10
    assert sum(got[k] for k in resources) > 0


def test_per_app_registries_are_independent() -> None:
    a, b = ServerMetrics(), ServerMetrics()
    a.scans.labels("kubescape", "failed").inc()
    assert b"mcp_kscan_scans_total{" not in b.text()
    assert b'mcp_kscan_scans_total{scanner="kubescape",state="failed"} 1.0' in a.text()


KUBECONFIG_TWO_CONTEXTS = """apiVersion: v1
kind: Config
clusters:
- {name: prod, cluster: {server: "https://127.0.0.1:6443"}}
- {name: staging, cluster: {server: "https://127.0.0.1:6444"}}
users:
- {name: u, user: {token: t}}
contexts:
- {name: prod, context: {cluster: prod, user: u}}
- {name: staging, context: {cluster: staging, user: u}}
current-context: prod
"""


async def test_v1_metrics_latest_never_serves_another_clusters_scan(rest_factory, fake_bin, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A scrape scans the server's own cluster: a stored scan of another kube context is another
    cluster's compliance, and must not be served as this one's."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG_TWO_CONTEXTS)
    rest = await rest_factory({"KUBECONFIG": str(kubeconfig)})
    other = await _stored_scan(rest, {"targetType": "framework", "targetNames": [], "kubeContext": "staging"})
    assert "--kube-context" in fake_bin.starts("kubescape")[-1]["argv"]
    r = await rest.get("/v1/metrics", params={"source": "latest"})
    assert r.status_code == 404, r.text
    assert other not in r.text
    ours = await _stored_scan(rest)
    r = await rest.get("/v1/metrics", params={"source": "latest"})
    assert r.status_code == 200
    assert rest._transport.app.state.stored_metrics.text_for(ours) is not None  # type: ignore[attr-defined]


async def test_v1_metrics_latest_404_names_the_frameworks_that_are_stored(rest: httpx.AsyncClient, fake_bin) -> None:  # type: ignore[no-untyped-def]
    """A schedule of framework=nsa and a scrape without frameworks: the 404 must not say to run a
    scan (there is one), but which frameworks= the stored scans would answer."""
    await _stored_scan(rest, {"targetType": "framework", "targetNames": ["NSA", "MITRE"]})
    await _stored_scan(rest, {"targetType": "framework", "targetNames": ["nsa"]})
    r = await rest.get("/v1/metrics", params={"source": "latest"})
    assert r.status_code == 404
    message = r.json()["response"]
    assert "\n" not in message
    assert "stored framework scans are of frameworks=mitre,nsa or frameworks=nsa: scrape with that" in message, message


async def test_v1_metrics_latest_serves_only_a_scan_of_the_namespaces_a_scrape_scans(rest_factory, fake_bin) -> None:  # type: ignore[no-untyped-def]
    """A scan of one namespace gives that namespace's compliance, not the cluster's: it stands in
    for a scrape only when it covered what the scrape's own scan would (KS_* defaults included)."""
    rest = await rest_factory({"KS_EXCLUDE_NAMESPACES": "kube-system"})
    one = await _stored_scan(rest, {"targetType": "framework", "includeNamespaces": ["dev"]})
    r = await rest.get("/v1/metrics", params={"source": "latest"})
    assert r.status_code == 404, r.text
    assert "include-namespaces=dev" in r.json()["response"]  # what the stored scan covered, said
    cluster = await _stored_scan(rest)  # KS_EXCLUDE_NAMESPACES applies to it, as to a scrape's scan
    r = await rest.get("/v1/metrics", params={"source": "latest"})
    assert r.status_code == 200, r.text
    assert rest._transport.app.state.stored_metrics.text_for(cluster) is not None  # type: ignore[attr-defined]
    assert one != cluster
    bad = await rest.get("/v1/metrics", params={"source": "latest", "frameworks": "../nsa"})
    assert bad.status_code == 400, bad.text
    assert bad.json()["response"] == "frameworks: not a framework name like nsa or cis-v1.10.0: '../nsa'"
    scan = await rest.get("/v1/metrics", params={"frameworks": "../nsa"})  # the same rule, the same words
    assert scan.status_code == 400 and scan.json()["response"] == bad.json()["response"]
