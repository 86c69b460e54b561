"""`mcp-kscan doctor` reports which operators the cluster serves (discovery by API group)."""

from __future__ import annotations

import mcp_kscan.settings
from mcp_kscan import doctor


def _operators_check(report: dict) -> dict:  # type: ignore[type-arg]
    return next(c for c in report["checks"] if c["name"] == "operators")


def test_doctor_names_installed_and_missing_operators(cluster) -> None:  # type: ignore[no-untyped-def]
    cluster([], kubescape=True, trivy=False)
    check = _operators_check(doctor.collect(mcp_kscan.settings.get_settings()))
    assert check["level"] == "ok" and check["message"].startswith("installed: kubescape (8 resources); not installed: trivy")
    assert "vulnerabilitymanifestsummaries" in check["data"]["kubescape"] and check["data"]["trivy"] == []


def test_doctor_with_neither_operator_says_what_it_looked_for(cluster) -> None:  # type: ignore[no-untyped-def]
    cluster([], kubescape=False, trivy=False)
    check = _operators_check(doctor.collect(mcp_kscan.settings.get_settings()))
    assert check["level"] == "info" and "none installed: looked for the Kubescape operator" in check["message"]
    assert "aquasecurity.github.io" in check["message"]


def test_doctor_with_an_unreachable_api_warns(cluster) -> None:  # type: ignore[no-untyped-def]
    cluster([]).stop()
    check = _operators_check(doctor.collect(mcp_kscan.settings.get_settings()))
    assert check["level"] == "warn" and "cannot reach the Kubernetes API" in check["message"]
