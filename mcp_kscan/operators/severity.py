"""Each operator's severity spelling, mapped to one scale (the one place that reads them).

Grype (Kubescape) writes title case and has ``Negligible``; Trivy writes upper case and counts
``NONE`` in its summaries. Both become ``Critical``..``Unknown``; ``Unknown`` sorts last because
it says nothing about the risk (Trivy's and Grype's own tables put it last too).
"""

from __future__ import annotations

from typing import Literal

VulnSeverity = Literal["Critical", "High", "Medium", "Low", "Negligible", "Unknown"]
SEVERITIES: tuple[VulnSeverity, ...] = ("Critical", "High", "Medium", "Low", "Negligible", "Unknown")
RANK: dict[str, int] = {name: len(SEVERITIES) - i for i, name in enumerate(SEVERITIES)}
"""Higher is worse: Critical 6 … Unknown 1."""

_ALIASES: dict[str, VulnSeverity] = {name.upper(): name for name in SEVERITIES}
_ALIASES["NONE"] = "Negligible"  # Trivy: CVSS "None"; Grype's lowest level is Negligible

TRIVY_SUMMARY_KEYS: dict[VulnSeverity, str] = {
    "Critical": "criticalCount",
    "High": "highCount",
    "Medium": "mediumCount",
    "Low": "lowCount",
    "Negligible": "noneCount",
    "Unknown": "unknownCount",
}
"""VulnerabilityReport ``report.summary`` field per severity."""

KUBESCAPE_SUMMARY_KEYS: dict[VulnSeverity, str] = {name: name.lower() for name in SEVERITIES}
"""VulnerabilityManifestSummary ``spec.severities`` key per severity."""


def parse_severity(value: object) -> VulnSeverity:
    """Grype's ``High``, Trivy's ``HIGH``, or anything else (``Unknown``)."""
    if not isinstance(value, str):
        return "Unknown"
    return _ALIASES.get(value.strip().upper(), "Unknown")


def at_least(severity: str, minimum: str | None) -> bool:
    return minimum is None or RANK.get(severity, 0) >= RANK[minimum]


def config_severity(value: object) -> Literal["Critical", "High", "Medium", "Low", "Unknown"]:
    """Configuration findings use get_results' scale, which has no Negligible."""
    severity = parse_severity(value)
    return "Low" if severity == "Negligible" else severity
