"""Agreement with real Kubescape on the same inputs (shared fixtures, read in place)."""

from __future__ import annotations

from pathlib import Path

from mcp_kscan.engine.agreement import agreement_for

MIN_AGREEMENT = 0.95


def test_agreement_with_kubescape_2022(examples_2022: Path, many_findings: Path) -> None:
    result = agreement_for(many_findings, examples_2022)
    print()
    print(result.table())
    assert result.total > 300, "the comparison should cover hundreds of verdicts"
    assert len(result.per_control) >= 30
    assert result.ratio >= MIN_AGREEMENT, result.table()
