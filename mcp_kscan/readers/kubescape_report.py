"""Kubescape's v2 JSON report turned into the normalized ``KubescapeReport``.

Field conventions (severities, statuses, resource ids, scores) are read through
``readers.kubescape_v2``; this module assembles them. Facts it relies on (opa-utils
reporthandling/v2): ``summaryDetails`` (``ResourceCounters`` with a capital R; ``score`` is a risk
score, ``complianceScore`` 0–100), ``resources[]`` (object + source) and ``results[]`` (per
resource, per control, with ``rules[]``). Old reports (2022) have no per-control status in
``results`` (derived from the rules) and use "irrelevant"/"excluded" statuses. The fields of
each finding and resource, and the control order, are plain data (``readers.kubescape_fields``),
which the built-in engine's process computes without the models.
"""


from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mcp_kscan import strict_json
from mcp_kscan.readers import kubescape_fields as fields
from mcp_kscan.readers import kubescape_v2 as v2
from mcp_kscan.readers.kubescape_fields import finding_fields, resource_fields
from mcp_kscan.redact import redact_text
from mcp_kscan.reports import (
    ControlCounts,
    FailedControl,
    FrameworkScore,
    KubescapeFinding,
    KubescapeReport,
    ResourceCounts,
    ResourceRef,
)
from mcp_kscan.scanners.common import ScanOutputError


def resource_from_id(resource_id: str) -> ResourceRef:
    """Best-effort identity from a resourceID alone (when ``resources[]`` lacks the object)."""
    rid = v2.parse_resource_id(resource_id)
    return ResourceRef(api_version=rid.api_version, kind=rid.kind, namespace=rid.namespace, name=rid.name)


def resource_ref(entry: Mapping[str, Any] | None, resource_id: str) -> ResourceRef:
    return ResourceRef(**resource_fields(entry, resource_id))


def _load(data: bytes | str | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(data, Mapping):
        return data
    text = data.decode("utf-8", "replace") if isinstance(data, bytes | bytearray) else data
    if not text.strip():
        raise ScanOutputError("Kubescape wrote an empty report")
    try:
        doc = strict_json.loads(text)
    except ValueError as exc:
        start = " ".join(text.strip()[:60].split())
        raise ScanOutputError(
            f"Kubescape report is not valid JSON ({strict_json.reason(exc)}); "
            f"it starts with {redact_text(repr(start))}"
        ) from None
    if not isinstance(doc, dict):
        raise ScanOutputError("Kubescape report is JSON but not an object")
    return doc


def parse_report(data: bytes | str | Mapping[str, Any]) -> KubescapeReport:
    """Turn a Kubescape v2 JSON report (any shape in the wild) into a ``KubescapeReport``.

    Also accepts a bare ``summaryDetails`` section (scores and counts, no findings). Raises
    ``ScanOutputError`` (one line) for anything that is not a Kubescape report. Works on the
    parsed dict in place, without copying per finding: a 1 MB report parses in milliseconds.
    """
    doc = _load(data)
    summary, errors = _summary_section(doc)
    controls_info = v2.summary_controls(summary)
    entries: dict[str, Mapping[str, Any]] = {}
    for entry in doc.get("resources") or []:
        if isinstance(entry, dict) and isinstance(entry.get("resourceID"), str):
            entries[entry["resourceID"]] = entry
    findings: list[KubescapeFinding] = []
    for result in doc.get("results") or []:
        if not isinstance(result, dict):
            continue
        rid = str(result.get("resourceID") or "")
        ref = resource_ref(entries.get(rid), rid)
        for ctrl in result.get("controls") or []:
            if isinstance(ctrl, dict):
                findings.append(KubescapeFinding(**finding_fields(ctrl, controls_info, ref)))
    return _assemble(doc, summary, controls_info, errors, findings, v2.nothing_scanned(doc))


def parse_report_head(doc: Mapping[str, Any], *, nothing_scanned: bool) -> KubescapeReport:
    """``parse_report`` of a report's ``summaryDetails`` and ``metadata`` alone: the report
    without findings, for a writer that computed the findings' rows itself (``engine.digest``).

    The control order is the same as the whole report's when every control in ``results`` is in
    ``summaryDetails`` with the same severity and status, as in the built-in engine's reports.
    ``nothing_scanned``: whether the scan read no object (the doc has no ``resources`` to tell).
    """
    summary, errors = _summary_section(doc)
    return _assemble(doc, summary, v2.summary_controls(summary), errors, [], nothing_scanned)


def _summary_section(doc: Mapping[str, Any]) -> tuple[Mapping[str, Any], list[str]]:
    """(the summary, errors so far): ``summaryDetails``, or a bare summary section."""
    if isinstance(doc.get("summaryDetails"), dict):
        return doc["summaryDetails"], []
    if isinstance(doc.get("controls"), dict | list) and any(
        k in doc for k in ("frameworks", "ResourceCounters", "score", "complianceScore")
    ):
        return doc, ["the report holds only a summaryDetails section: no per-resource findings"]
    raise ScanOutputError("JSON is not a Kubescape report (no summaryDetails section)")


def _assemble(doc: Mapping[str, Any], summary: Mapping[str, Any], controls_info: Mapping[str, Mapping[str, Any]],
              errors: list[str], findings: list[KubescapeFinding], empty: bool) -> KubescapeReport:
    """The report from its summary, metadata and findings (``empty``: nothing was scanned)."""
    counts = ControlCounts()
    for ctrl in controls_info.values():
        status = v2.control_status(ctrl)
        setattr(counts, status, getattr(counts, status) + 1)
    failed = fields.failed_controls(controls_info)
    failed_controls = [FailedControl(**control) for control in failed]

    tally = v2.resource_counts(summary)
    resources = ResourceCounts(passed=tally.passed, failed=tally.failed, skipped=tally.skipped)
    frameworks = [
        FrameworkScore(name=str(fw.get("name") or ""), compliance_score=v2.score(fw.get("complianceScore")))
        for fw in summary.get("frameworks") or []
        if isinstance(fw, dict)
    ]
    control_order = fields.control_order(failed, controls_info, ((f.control_id, f.status, f.severity) for f in findings))

    metadata = doc.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    scan_md = metadata.get("scanMetadata")
    scan_md = scan_md if isinstance(scan_md, dict) else {}
    engine = metadata.get("engine")
    engine_name: str | None = None
    warnings: list[str] = []
    if isinstance(engine, dict):
        engine_name = engine.get("name") if isinstance(engine.get("name"), str) else None
        for err in engine.get("errors") or []:
            errors.append(err if isinstance(err, str) else json.dumps(err, sort_keys=True)[:500])
        warnings += [w for w in engine.get("warnings") or [] if isinstance(w, str)]
    elif isinstance(engine, str):
        engine_name = engine
    coverage = doc.get("scanCoverage")
    if coverage:
        errors.append("the scan did not cover everything: " + json.dumps(coverage, sort_keys=True)[:500])

    if empty:
        # Whatever the writer printed (a mean over untouched controls is 100), nothing scanned has no score.
        frameworks = [fw.model_copy(update={"compliance_score": None}) for fw in frameworks]
        if v2.NOTHING_SCANNED not in warnings:
            warnings.append(v2.NOTHING_SCANNED)
    return KubescapeReport(
        compliance_score=None if empty else v2.score(summary.get("complianceScore")),
        risk_score=None if empty else v2.score(summary.get("score")),
        frameworks=frameworks,
        controls=counts,
        resources=resources,
        failed_controls=failed_controls,
        control_order=control_order,
        findings=findings,
        engine=engine_name,
        kubescape_version=scan_md.get("kubescapeVersion") if isinstance(scan_md.get("kubescapeVersion"), str) else None,
        errors=errors,
        warnings=warnings,
        nothing_scanned=empty,
    )
