"""One rule for every engine: a report that read no object has no score (readers.kubescape_v2)."""

from __future__ import annotations

from typing import Any

from mcp_kscan.readers.kubescape_report import parse_report
from mcp_kscan.readers.kubescape_v2 import NOTHING_SCANNED, nothing_scanned
from mcp_kscan.reports import summarize_kubescape


def report(resources: list[dict[str, Any]], passed: int = 0) -> dict[str, Any]:
    """A Kubescape-written report: its scores say 100 whether or not it read anything."""
    return {
        "summaryDetails": {
            "complianceScore": 100, "score": 0,
            "ResourceCounters": {"passedResources": passed, "failedResources": 0, "skippedResources": 0},
            "frameworks": [{"name": "NSA", "complianceScore": 100}],
            "controls": {"C-0057": {"controlID": "C-0057", "name": "Privileged container", "status": "passed"}},
        },
        "resources": resources, "results": [],
    }


def test_kubescape_report_of_nothing_has_no_score() -> None:
    parsed = parse_report(report([]))
    assert parsed.nothing_scanned and parsed.compliance_score is None and parsed.risk_score is None
    assert [fw.compliance_score for fw in parsed.frameworks] == [None]
    assert parsed.warnings == [NOTHING_SCANNED]
    summary = summarize_kubescape(parsed)
    assert summary.nothing_scanned and summary.compliance_score is None and summary.warnings == [NOTHING_SCANNED]


def test_a_report_with_objects_keeps_its_score() -> None:
    pod = {"resourceID": "/v1/default/Pod/p", "object": {"apiVersion": "v1", "kind": "Pod"}}
    parsed = parse_report(report([pod], passed=1))
    assert not parsed.nothing_scanned and parsed.compliance_score == 100 and parsed.warnings == []
    # Counters alone (a summary-only report) also mean objects were read.
    assert not nothing_scanned(report([], passed=3))
