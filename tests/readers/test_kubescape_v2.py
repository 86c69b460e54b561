"""The Kubescape v2 reader, and the five modules that read reports through it agreeing."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mcp_kscan.engine.agreement import kubescape_verdicts
from mcp_kscan.engine.cli import threshold_met
from mcp_kscan.engine.sarif import to_sarif
from mcp_kscan.engine.table import render_table
from mcp_kscan.http_compat.prometheus import kubescape_metrics_text
from mcp_kscan.readers import kubescape_v2 as v2
from mcp_kscan.readers.kubescape_report import parse_report


@pytest.mark.parametrize("text", ["High", "high", "HIGH", " hIgh "])
def test_severity_parse_ignores_case(text: str) -> None:
    assert v2.parse_severity(text) == "High"


@pytest.mark.parametrize("text", ["", "severe", None, 7, "Critical!"])
def test_severity_parse_rejects_what_is_no_severity(text: Any) -> None:
    assert v2.parse_severity(text) is None


def test_one_severity_order_most_severe_first() -> None:
    assert v2.SEVERITIES == ("Critical", "High", "Medium", "Low", "Unknown")
    ranks = [v2.severity_rank(s) for s in ("critical", "High", "MEDIUM", "low", "Unknown", "bogus", None)]
    assert ranks == sorted(ranks) and len(set(ranks)) == 6 and ranks[-1] == ranks[-2]


@pytest.mark.parametrize(
    ("factor", "expected"),
    [(10, "Critical"), (9, "Critical"), (8.9, "High"), (7, "High"), (6, "Medium"), (4, "Medium"),
     (3, "Low"), (1, "Low"), (0.5, "Unknown"), (None, "Unknown")],
)
def test_severity_from_score_factor_like_opa_utils(factor: float | None, expected: str) -> None:
    assert v2.severity_from_score_factor(factor) == expected


def test_control_severity_precedence() -> None:
    # The stated severity wins over the scoreFactor of the same control, in any case.
    assert v2.control_severity({"severity": "low", "scoreFactor": 9}) == "Low"
    # A result control without either falls through to the summary entry (older reports).
    assert v2.control_severity({"controlID": "C-0001"}, {"scoreFactor": 7.0}) == "High"
    assert v2.control_severity(None, {"severity": "CRITICAL"}) == "Critical"
    # Nothing usable: Unknown, not a crash (booleans and NaN are no scoreFactor).
    assert v2.control_severity({"severity": "bad", "scoreFactor": True}, {"scoreFactor": float("nan")}) == "Unknown"
    assert v2.control_severity() == "Unknown"


@pytest.mark.parametrize(
    ("control", "expected"),
    [
        ({"status": "failed"}, "failed"),
        ({"status": {"status": "passed", "subStatus": "w/exceptions"}}, "passed"),
        ({"status": "FAILED"}, "failed"),
        ({"statusInfo": {"status": "skipped", "subStatus": "manual review"}}, "skipped"),
        ({"status": "", "statusInfo": {"status": "failed"}}, "failed"),
        ({"status": "irrelevant"}, "passed"),
        ({"status": "warning"}, "passed"),
        ({"status": "error"}, "skipped"),
        ({"status": "whatever"}, "skipped"),
        # 2022 results: the rules decide.
        ({"rules": [{"status": "passed"}, {"status": "failed"}]}, "failed"),
        ({"rules": [{"status": "passed"}, {"status": "passed"}]}, "passed"),
        ({"rules": [{"status": "passed"}, {"status": "skipped"}]}, "skipped"),
        ({"rules": []}, "skipped"),
        ({}, "skipped"),
    ],
)
def test_control_status_every_shape(control: dict[str, Any], expected: str) -> None:
    assert v2.control_status(control) == expected


@pytest.mark.parametrize(
    ("rid", "expected"),
    [
        ("apps/v1/default/Deployment/nginx", ("apps/v1", "default", "Deployment", "nginx")),
        ("/v1/kube-system/Pod/coredns", ("v1", "kube-system", "Pod", "coredns")),
        ("path=123/api=apps/v1//Deployment/x", ("apps/v1", None, "Deployment", "x")),
        ("rbac.authorization.k8s.io/v1//ClusterRole/admin", ("rbac.authorization.k8s.io/v1", None, "ClusterRole", "admin")),
        ("not-an-id", (None, None, None, "not-an-id")),
        ("", (None, None, None, None)),
    ],
)
def test_parse_resource_id(rid: str, expected: tuple[str | None, ...]) -> None:
    assert tuple(v2.parse_resource_id(rid)) == expected


def test_control_url_is_kubescapes_link() -> None:
    assert v2.control_url("C-0057") == "https://hub.armosec.io/docs/c-0057"
    # cautils.GetControlLink: CIS ids have dots, the docs pages dashes.
    assert v2.control_url("CIS-1.1.3") == "https://hub.armosec.io/docs/cis-1-1-3"


def test_score_rounding_like_kubescape() -> None:
    assert v2.score_int(73.25) == 73
    assert v2.score_int(73.5) == 74
    assert v2.score_int(-0.5) == -1  # half away from zero
    assert v2.score_int(99.6) == 99  # below 100 never shows as 100
    assert v2.score_int(100) == 100
    assert v2.score_int(None) is None and v2.score_int("x") is None and v2.score_int(True) is None
    assert v2.score(float("inf")) is None and v2.score(12) == 12.0


def test_resource_counts_and_summary_controls_shapes() -> None:
    assert v2.resource_counts({"ResourceCounters": {"passedResources": 3, "failedResources": 2}}) == (3, 2, 0)
    assert v2.resource_counts({"resourceCounters": {"skippedResources": 4, "failedResources": True}}) == (0, 0, 4)
    assert v2.resource_counts({}) == (0, 0, 0)
    as_list = v2.summary_controls({"controls": [{"controlID": "C-0001"}, {"name": "no id"}, "junk"]})
    assert list(as_list) == ["C-0001", "#1"]
    assert list(v2.summary_controls({"controls": {"C-0002": {"name": "x"}, "C-0003": None}})) == ["C-0002"]


# --------------------------------------------------------------------------- every reader agrees

def _report(severity: str) -> dict[str, Any]:
    """One failed CIS control, its severity written in a case Kubescape does not promise."""
    cid = "CIS-1.1.3"
    rid = "path=1/api=apps/v1/shop/Deployment/cart"
    return {
        "summaryDetails": {
            "controls": {cid: {"controlID": cid, "name": "Pod spec file permissions", "status": "failed",
                               "severity": severity, "scoreFactor": 2,
                               "ResourceCounters": {"failedResources": 1}, "complianceScore": 0}},
            "ResourceCounters": {"failedResources": 1, "passedResources": 0, "skippedResources": 0},
            "complianceScore": 0, "score": 100, "frameworks": [],
        },
        "resources": [{"resourceID": rid, "source": {"relativePath": "cart.yaml"}}],
        "results": [{"resourceID": rid, "controls": [
            {"controlID": cid, "name": "Pod spec file permissions", "status": {"status": "failed"},
             "rules": [{"name": "r", "status": "failed", "paths": [{"failedPath": "spec.x"}]}]}]}],
    }


@pytest.mark.parametrize("severity", ["critical", "CRITICAL", "Critical"])
def test_parser_sarif_table_metrics_and_agreement_read_alike(severity: str) -> None:
    report = _report(severity)
    url = "https://hub.armosec.io/docs/cis-1-1-3"

    parsed = parse_report(report)
    assert [f.severity for f in parsed.findings] == ["Critical"]
    assert [(f.status, f.resource.kind, f.resource.namespace) for f in parsed.findings] == [("failed", "Deployment", "shop")]
    assert [c.severity for c in parsed.failed_controls] == ["Critical"]

    sarif = to_sarif(report)["runs"][0]
    assert sarif["tool"]["driver"]["rules"][0]["helpUri"] == url
    assert sarif["tool"]["driver"]["rules"][0]["defaultConfiguration"]["level"] == "error"
    assert [r["level"] for r in sarif["results"]] == ["error"]

    table = render_table(report)
    assert "CRITICAL (1 control)" in table and "Deployment/shop/cart  (cart.yaml)" in table

    labels = [s.labels for f in text_string_to_metric_families(kubescape_metrics_text(report).decode())
              for s in f.samples if s.name == "kubescape_control_count_resources_failed"]
    assert labels == [{"name": "Pod spec file permissions", "severity": "Critical", "link": url}]

    assert kubescape_verdicts(report) == {("path=1/api=apps/v1/shop/Deployment/cart", "CIS-1.1.3"): "failed"}
    assert threshold_met(report, "critical") and threshold_met(report, "HIGH")
