"""Kubescape's v2 JSON report, read field by field: the one place its conventions live.

The parser (``readers/kubescape_report.py``), SARIF, the terminal table, the ``/v1/metrics`` families and
the agreement check all read severities, statuses, resource ids, control links and scores through
these functions, so they cannot drift apart again. Reports in the wild come in several shapes
(Kubescape 2.x from 2022, 3.x, 3.0.46+ with ``severity`` fields, the built-in engine's); each
function accepts all of them and never raises on malformed input: a report is untrusted data.

Kubescape facts (opa-utils ``apis/severity.go``, ``reportsummary``, Kubescape ``cautils``):
- severity comes from a control's ``scoreFactor`` (>=9 Critical, >=7 High, >=4 Medium, >=1 Low,
  else Unknown); 3.0.46+ also writes it out, and the case of that text is not to be relied on;
- a control's status is a string or ``{"status": …}``, on the summary beside ``statusInfo``;
  2022 results have no per-control status, only per-rule statuses;
- the control documentation link is ``https://hub.armosec.io/docs/<id, lower case, dots as
  dashes>`` (``cautils.GetControlLink``: ``cis-1.1.3`` becomes ``cis-1-1-3``);
- scores are printed as integers rounded half away from zero, and below 100 never shows as 100
  (``ComplianceScoreToInt``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

# --------------------------------------------------------------------------- severity

Severity = Literal["Critical", "High", "Medium", "Low", "Unknown"]
SEVERITIES: tuple[Severity, ...] = ("Critical", "High", "Medium", "Low", "Unknown")
"""Most severe first: the one severity order (sorting, thresholds, tables)."""

SeverityThreshold = Literal["low", "medium", "high", "critical"]
"""What ``--severity-threshold`` (CLI) and ``severityThreshold`` (HTTP API) take: no Unknown."""

_SEVERITY_BY_NAME: dict[str, Severity] = {s.lower(): s for s in SEVERITIES}
_SEVERITY_RANK: dict[str, int] = {s: i for i, s in enumerate(SEVERITIES)}

SEVERITY_COUNTER_KEYS: dict[Severity, str] = {
    "Critical": "criticalSeverity", "High": "highSeverity", "Medium": "mediumSeverity", "Low": "lowSeverity",
}
"""Keys of ``summaryDetails.controlsSeverityCounters`` / ``resourcesSeverityCounters`` (no Unknown key)."""


def parse_severity(value: Any) -> Severity | None:
    """``"HIGH"``, ``"high"`` or ``"High"`` → ``"High"``; anything else → None."""
    return _SEVERITY_BY_NAME.get(value.strip().lower()) if isinstance(value, str) else None


def severity_rank(severity: str | None) -> int:
    """Sort key, most severe first; text that is no severity sorts after Unknown."""
    parsed = parse_severity(severity)
    return _SEVERITY_RANK[parsed] if parsed else len(SEVERITIES)


def severity_from_score_factor(score_factor: float | None) -> Severity:
    """Kubescape's own mapping (opa-utils apis/severity.go): >=9 Critical, >=7 High, >=4 Medium, >=1 Low."""
    if score_factor is None:
        return "Unknown"
    if score_factor >= 9:
        return "Critical"
    if score_factor >= 7:
        return "High"
    if score_factor >= 4:
        return "Medium"
    if score_factor >= 1:
        return "Low"
    return "Unknown"


def _own_severity(control: Mapping[str, Any]) -> Severity | None:
    stated = parse_severity(control.get("severity"))
    if stated:
        return stated
    factor = control.get("scoreFactor")
    if isinstance(factor, int | float) and not isinstance(factor, bool) and math.isfinite(factor):
        return severity_from_score_factor(float(factor))
    return None


def control_severity(*controls: Mapping[str, Any] | None) -> Severity:
    """The severity of the first of ``controls`` that tells one (``severity``, else ``scoreFactor``).

    Pass a result's control before its summary entry (or the other way round): older reports put
    ``scoreFactor`` only on the summary. Unknown when none tells.
    """
    for control in controls:
        if isinstance(control, Mapping):
            found = _own_severity(control)
            if found:
                return found
    return "Unknown"


# --------------------------------------------------------------------------- status

ControlStatus = Literal["failed", "passed", "skipped"]

_STATUS_MAP: dict[str, ControlStatus] = {
    "passed": "passed",
    "failed": "failed",
    "skipped": "skipped",
    # Old reports: "irrelevant" (nothing to check) became passed/irrelevant in newer Kubescape,
    # "excluded"/"warning" (failed but covered by an exception) became passed/w-exceptions.
    "irrelevant": "passed",
    "excluded": "passed",
    "warning": "passed",
    "error": "skipped",
}


def normalize_status(value: Any) -> ControlStatus:
    """passed/failed/skipped from one status value (a string, or ``{"status": …}``); unknown → skipped."""
    if isinstance(value, Mapping):
        value = value.get("status")
    return _STATUS_MAP.get(str(value or "").strip().lower(), "skipped")


def rules_status(rules: Any) -> ControlStatus:
    """A control's status from its rules (2022 results have no other): any failed rule fails it,
    all passed passes it, anything else (no rules, unknown statuses) is skipped."""
    statuses = [normalize_status(r.get("status")) for r in rules if isinstance(r, Mapping)] if isinstance(rules, list) else []
    if "failed" in statuses:
        return "failed"
    if statuses and all(s == "passed" for s in statuses):
        return "passed"
    return "skipped"


def control_status(control: Mapping[str, Any]) -> ControlStatus:
    """The status of a control, on the summary or in a result, whatever the report's age.

    ``status`` (string or object) first, then the summary's ``statusInfo``, then the rules.
    """
    value = control.get("status")
    if isinstance(value, Mapping):
        value = value.get("status")
    if not value:
        info = control.get("statusInfo")
        if isinstance(info, Mapping):
            value = info.get("status")
    if not value and isinstance(control.get("rules"), list):
        return rules_status(control["rules"])
    return normalize_status(value)


# --------------------------------------------------------------------------- resource ids


class ResourceId(NamedTuple):
    """What a resourceID alone says about its object (any part may be unknown)."""

    api_version: str | None
    namespace: str | None
    kind: str | None
    name: str | None


def parse_resource_id(resource_id: str) -> ResourceId:
    """Identity from a resourceID (when ``resources[]`` lacks the object, or for a label).

    Shapes: ``group/version/namespace/Kind/name`` (cluster, core group empty: ``/v1/ns/Pod/x``),
    ``path=<hash>/api=group/version/namespace/Kind/name`` (files), and RBAC composites that
    chain several of those: the first object wins. An ID of no known shape is all name.
    """
    s = resource_id
    if s.startswith("path="):
        s = s.split("/", 1)[1] if "/" in s else ""
    if s.startswith("api="):
        s = s[4:]
    cut = s.find("/path=", 1)
    if cut > 0:
        s = s[:cut]
    parts = s.split("/")
    api_version: str | None
    if len(parts) >= 5:
        group, version, namespace, kind = parts[:4]
        name = "/".join(parts[4:])
        api_version = f"{group}/{version}" if group else (version or None)
    elif len(parts) == 4:
        api_version, namespace, kind, name = parts
    elif len(parts) == 3:
        api_version = None
        namespace, kind, name = parts
    else:
        return ResourceId(None, None, None, resource_id or None)
    return ResourceId(api_version or None, namespace or None, kind or None, name or None)


# --------------------------------------------------------------------------- links and scores


def control_url(control_id: str) -> str:
    """The control's documentation page, as Kubescape links it (``cautils.GetControlLink``)."""
    return "https://hub.armosec.io/docs/" + control_id.replace(".", "-").lower()


def score(value: Any) -> float | None:
    """A score (``score``, ``complianceScore``) as a float; None when absent or not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def score_int(value: Any) -> int | None:
    """Kubescape's ComplianceScoreToInt: round half away from zero; below 100 never shows 100."""
    number = score(value)
    if number is None:
        return None
    rounded = int(math.floor(abs(number) + 0.5)) * (1 if number >= 0 else -1)
    if rounded >= 100 and number < 100:
        return 99
    return rounded


class ResourceCounts(NamedTuple):
    passed: int
    failed: int
    skipped: int


def _count(counters: Any, key: str) -> int:
    if not isinstance(counters, Mapping):
        return 0
    value = counters.get(key)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def resource_counts(section: Mapping[str, Any]) -> ResourceCounts:
    """The ``ResourceCounters`` of a summary, framework or control (``resourceCounters`` in some writers)."""
    rc = section.get("ResourceCounters") or section.get("resourceCounters")
    return ResourceCounts(_count(rc, "passedResources"), _count(rc, "failedResources"), _count(rc, "skippedResources"))


def summary_controls(section: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """A summary's or framework's ``controls`` by control ID (a map in v2; some writers emit a list)."""
    raw = section.get("controls")
    if isinstance(raw, Mapping):
        return {str(k): v for k, v in raw.items() if isinstance(v, Mapping)}
    if isinstance(raw, list):
        return {
            str(c.get("controlID") or f"#{i}"): c for i, c in enumerate(raw) if isinstance(c, Mapping)
        }
    return {}


# --------------------------------------------------------------------------- nothing scanned

NOTHING_SCANNED = ("no Kubernetes object was read, so there is no compliance score "
                   "(a scan of nothing is not a clean scan)")
"""The one wording every front end uses for a scan that read no object."""


def nothing_scanned(report: Mapping[str, Any]) -> bool:
    """Did the scan behind this report read no Kubernetes object at all?

    True when the report lists no resource and no result and its counters are all zero. Such a
    report's scores mean nothing (Kubescape and older writers print 100, or 0): every reader
    treats them as absent, whichever engine wrote the report.
    """
    if report.get("resources") or report.get("results"):
        return False
    summary = report.get("summaryDetails")
    summary = summary if isinstance(summary, Mapping) else report
    counts = resource_counts(summary)
    return counts.passed + counts.failed + counts.skipped == 0


RENDERERS = {"helmChartName": "helm template", "kustomizeDirectoryName": "kubectl kustomize"}
"""Kubescape's ``resources[].source`` fields that mark an object as rendered, and by what."""


def rendered_by(source: Mapping[str, Any]) -> str | None:
    """``"helm template of chart web"`` / ``"kubectl kustomize of overlays/prod"`` for a rendered
    object's ``source``; None for an object read from a manifest file as it is."""
    for key, tool in RENDERERS.items():
        value = source.get(key)
        if isinstance(value, str) and value:
            return f"{tool} of {value}"
    return None


__all__ = [
    "NOTHING_SCANNED", "RENDERERS", "nothing_scanned", "rendered_by",
    "SEVERITIES", "SEVERITY_COUNTER_KEYS", "ControlStatus", "ResourceCounts", "ResourceId", "Severity",
    "SeverityThreshold",
    "control_severity", "control_status", "control_url", "normalize_status", "parse_resource_id",
    "parse_severity", "resource_counts", "rules_status", "score", "score_int", "severity_from_score_factor",
    "severity_rank", "summary_controls",
]
