"""The engine against Kubescape's own rule test cases (regolibrary v2.0.33, read in place).

Every test case of every rule of every implemented control is run through the engine, and each
resource verdict (failed or passed) is compared with the case's expected.json (see
mcp_kscan.engine.ruletests for how alerts become verdicts).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_kscan.catalogue.records import catalogue
from mcp_kscan.engine.controls import CONTROLS
from mcp_kscan.engine.ruletests import expected_failures, run_all, table

MIN_AGREEMENT = 0.98


def test_rule_cases_agree(regolibrary: Path) -> None:
    results = run_all(regolibrary)
    print()
    print(table(results))
    agree, total = sum(r.agree for r in results), sum(r.total for r in results)
    assert total > 140, "the comparison should cover the rules' test cases"
    assert agree / total >= MIN_AGREEMENT, table(results)


def test_every_case_with_control_inputs_is_run(regolibrary: Path) -> None:
    """The custom-input cases (data.json) of implemented rules are part of the comparison."""
    implemented_rules = {r for c in CONTROLS for r in catalogue().controls[c.id].rules}
    with_data = {p.parent.parent.parent.name for p in (regolibrary / "rules").glob("*/test/*/data.json")}
    dirs = {catalogue().rules[r].directory for r in implemented_rules}
    assert {"rule-credentials-in-env-var", "resources-memory-limit-and-request", "label-usage-for-resources"} <= with_data & dirs
    results = {r.control_id: r for r in run_all(regolibrary, [c for c in CONTROLS if c.id in ("C-0004", "C-0012", "C-0076")])}
    cases = {v.case for r in results.values() for v in r.verdicts}
    assert {"workload-exceeded", "env-value-akia-key", "env-value-lowercase-bearer"} <= cases
    assert all(v.agrees for r in results.values() for v in r.verdicts), table(list(results.values()))


@pytest.mark.parametrize(("alerts", "failed"), [
    ([{"alertObject": {"k8sApiObjects": [{"kind": "Pod", "metadata": {"name": "p"}}]}}], [("Pod", "", "p")]),
    ([{"alertObject": {"k8sApiObjects": [], "externalObjects": {
        "kind": "Group", "name": "dev", "relatedObjects": [
            {"kind": "ClusterRoleBinding", "metadata": {"name": "b"}}, {"kind": "ClusterRole", "metadata": {"name": "r"}}]}}}],
     [("ClusterRoleBinding", "", "b")]),
    ([{"alertObject": {"k8sApiObjects": [], "externalObjects": {
        "kind": "Deployment", "name": "d", "namespace": "n", "relatedObjects": [{"kind": "Service"}]}}}],
     [("Deployment", "n", "d")]),
])
def test_alerts_name_the_failed_unit(alerts: list[dict[str, object]], failed: list[tuple[str, str, str]]) -> None:
    assert expected_failures(alerts) == failed
