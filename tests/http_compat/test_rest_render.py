"""Over REST: /v1/scan, /v1/results, /v1/status and /v1/metrics never claim compliance for nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import write_chart
from mcp_kscan.readers.kubescape_v2 import NOTHING_SCANNED

from .rest_helpers import RestFactory, post_scan
from .test_rest_metrics import samples

pytestmark = pytest.mark.anyio


async def test_empty_scan_over_v1(rest_factory: RestFactory, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "README.md").write_text("# text\n")
    c = await rest_factory({"MCP_KSCAN_ALLOWED_ROOTS": str(tmp_path)})
    r = await post_scan(c, {"paths": [str(folder)], "engine": "builtin"}, wait="true", keep="true")
    assert r.status_code == 200, r.text
    scan_id = r.json()["id"]
    for report in (r.json()["response"], (await c.get("/v1/results", params={"id": scan_id})).json()["response"]):
        sd = report["summaryDetails"]
        assert sd["complianceScore"] is None and sd["score"] is None and sd["status"] == "skipped"
        assert all(fw["complianceScore"] is None for fw in sd["frameworks"])
        assert report["metadata"]["engine"]["warnings"][0] == NOTHING_SCANNED
    status = await c.get("/v1/status", params={"id": scan_id})
    assert status.json() == {"id": "", "type": "notBusy"}  # no score, no "compliant" anywhere


async def test_chart_not_rendered_over_v1(rest_factory: RestFactory, tmp_path: Path) -> None:
    write_chart(tmp_path / "charts")
    c = await rest_factory({"MCP_KSCAN_ALLOWED_ROOTS": str(tmp_path),
                            "MCP_KSCAN_HELM_PATH": str(tmp_path / "no-helm-here")})
    r = await post_scan(c, {"paths": [str(tmp_path / "charts")], "engine": "builtin"}, wait="true")
    report = r.json()["response"]
    assert report["summaryDetails"]["complianceScore"] is None
    assert "Helm chart web not rendered: helm was not found" in report["metadata"]["engine"]["warnings"][1]


async def test_metrics_of_a_scan_that_read_nothing_have_no_score(rest_factory: RestFactory, fake_bin,  # type: ignore[no-untyped-def]
                                                                 tmp_path: Path) -> None:
    """An empty cluster (a Kubescape report with no object, scores printed as 100) scrapes as no score."""
    empty = {
        "summaryDetails": {
            "status": "passed", "score": 0, "complianceScore": 100,
            "ResourceCounters": {"passedResources": 0, "failedResources": 0, "skippedResources": 0},
            "frameworks": [{"name": "NSA", "complianceScore": 100, "score": 0, "controls": {
                "C-0057": {"controlID": "C-0057", "name": "Privileged container", "status": "passed",
                           "complianceScore": 100, "scoreFactor": 8}}}],
            "controls": {"C-0057": {"controlID": "C-0057", "name": "Privileged container", "status": "passed",
                                    "complianceScore": 100, "scoreFactor": 8}},
        },
        "resources": [], "results": [],
    }
    report_file = tmp_path / "empty-report.json"
    report_file.write_text(json.dumps(empty))
    fake_bin.configure(kubescape_report=report_file)
    c = await rest_factory()
    r = await c.get("/v1/metrics")
    assert r.status_code == 200, r.text
    names = {name for name, _ in samples(r.text)}
    assert not {n for n in names if n.endswith("complianceScore")}
    assert samples(r.text)[("kubescape_cluster_count_resources_passed", ())] == 0
    assert "kubescape_cluster_count_control_passed" in names
