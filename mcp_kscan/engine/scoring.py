"""Kubescape's scores, computed the way opa-utils computes them.

Two numbers per control, per framework and for the whole scan:

- ``score`` (risk, 0 is best): failed weight / total weight x 100, where each resource weighs 1,
  or replicas x 1.1 when it has more than one replica, and each control is multiplied by its
  scoreFactor. A framework's (and the scan's) score sums those over its controls.
- ``complianceScore`` (0-100, 100 is best): a passed control counts 100, a failed one its share of
  passed resources; a framework's (and the scan's) is the plain mean over its controls.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(slots=True)
class ControlTally:
    """What one control found over the whole scan (``report.Accumulator.add`` inlines ``add``:
    the two must count alike)."""

    score_factor: float
    passed: int = 0
    failed: int = 0
    passed_weight: int = 0
    failed_weight: int = 0
    """The resources' weights in tenths (``model.Resource.weight_tenths``): exact in any order."""
    excepted: int = 0
    """Failed verdicts covered by an exception: counted as passed, as Kubescape counts them."""

    def add(self, weight: int, failed: bool, excepted: bool = False) -> None:
        self.excepted += excepted
        if failed:
            self.failed += 1
            self.failed_weight += weight
        else:
            self.passed += 1
            self.passed_weight += weight

    def merge(self, other: ControlTally) -> None:
        """Add another shard's counts (parallel scans tally per worker)."""
        self.passed += other.passed
        self.failed += other.failed
        self.passed_weight += other.passed_weight
        self.failed_weight += other.failed_weight
        self.excepted += other.excepted

    @property
    def total(self) -> int:
        return self.passed + self.failed

    @property
    def status(self) -> str:
        return "failed" if self.failed else "passed"

    @property
    def risk_parts(self) -> tuple[float, float]:
        """(un-normalised failed score, worst-case score), both scaled by the scoreFactor; in
        tenths of a weight, which every ratio of them cancels."""
        return (self.failed_weight * self.score_factor,
                (self.failed_weight + self.passed_weight) * self.score_factor)

    @property
    def risk_score(self) -> float:
        bad, worst = self.risk_parts
        return bad * 100 / worst if worst > 0 else 0.0

    @property
    def compliance_score(self) -> float:
        if not self.failed:
            return 100.0
        return self.passed * 100 / self.total if self.total else 0.0


def aggregate_risk(tallies: Iterable[ControlTally]) -> float:
    bad = worst = 0.0
    for t in tallies:
        b, w = t.risk_parts
        bad += b
        worst += w
    return bad * 100 / worst if worst > 0 else 0.0


def aggregate_compliance(tallies: Iterable[ControlTally]) -> float:
    scores = [t.compliance_score for t in tallies]
    return sum(scores) / len(scores) if scores else 0.0
