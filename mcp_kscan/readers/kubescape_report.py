"""Kubescape's v2 JSON report turned into the normalized ``KubescapeReport``.

Field conventions (severities, statuses, resource ids, scores) are read through
``readers.kubescape_v2``; this module assembles them. Facts it relies on (opa-utils
reporthandling/v2): ``summaryDetails`` (``ResourceCounters`` with a capital R; ``score`` is a risk
score, ``complianceScore`` 0–100), ``resources[]`` (object + source) and ``results[]`` (per
resource, per control, with ``rules[]``). Old reports (2022) have no per-control status in
``results`` (derived from the rules) and use "irrelevant"/"excluded" statuses.
"""


from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from mcp_kscan import strict_json
from mcp_kscan.readers import kubescape_v2 as v2
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
from mcp_kscan.risk import risk_key
from mcp_kscan.scanners.common import ScanOutputError

_EXCEPTED_STATUSES = frozenset({"excluded", "warning"})


def _is_excepted(status: Any, sub_status: Any = None) -> bool:
    """Failed but covered by a posture exception: old reports say "excluded"/"warning", new ones
    say passed with subStatus "w/exceptions"."""
    if isinstance(status, dict):
        status, sub_status = status.get("status"), status.get("subStatus", sub_status)
    return str(status or "").lower() in _EXCEPTED_STATUSES or str(sub_status or "").lower() == "w/exceptions"


def resource_from_id(resource_id: str) -> ResourceRef:
    """Best-effort identity from a resourceID alone (when ``resources[]`` lacks the object)."""
    rid = v2.parse_resource_id(resource_id)
    return ResourceRef(api_version=rid.api_version, kind=rid.kind, namespace=rid.namespace, name=rid.name)


def resource_ref(entry: Mapping[str, Any] | None, resource_id: str) -> ResourceRef:
    return ResourceRef(**resource_fields(entry, resource_id))


def resource_fields(entry: Mapping[str, Any] | None, resource_id: str) -> dict[str, Any]:
    """``ResourceRef``'s fields, in its order, as plain data: the resource of ``resources[]``'s
    ``entry`` (the object and its source), else what ``resource_id`` says.

    Plain data so that the built-in engine's process computes the store's rows with this very
    function from the entries it writes, without building models (``engine.digest``). A field of
    the object that is no string (``name: 123``) counts as absent: the id's reading stands in.
    """
    rid = v2.parse_resource_id(resource_id)
    if not entry:
        return {"api_version": rid.api_version, "kind": rid.kind, "namespace": rid.namespace, "name": rid.name,
                "file": None, "rendered_by": None, "relative_path": None}
    obj = entry.get("object")
    obj = obj if isinstance(obj, dict) else {}
    md = obj.get("metadata")
    md = md if isinstance(md, dict) else {}
    source = entry.get("source")
    source = source if isinstance(source, dict) else {}
    rel = source.get("relativePath")
    return {
        "api_version": _text(obj.get("apiVersion")) or rid.api_version,
        "kind": _text(obj.get("kind")) or rid.kind,
        # "External" RBAC objects carry name/namespace at the top, not under metadata.
        "namespace": _text(md.get("namespace")) or _text(obj.get("namespace")) or rid.namespace,
        "name": _text(md.get("name")) or _text(obj.get("name")) or rid.name,
        "file": source_file(source, obj),
        "rendered_by": v2.rendered_by(source),
        "relative_path": rel if isinstance(rel, str) else None,
    }


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def source_file(source: Mapping[str, Any], obj: Mapping[str, Any]) -> str | None:
    """The manifest file as the scan saw it: ``source.path`` (the scanned base) joined with
    ``relativePath``; the relative path alone when the report has no base (2022 reports)."""
    base = source.get("path")
    rel = source.get("relativePath")
    base = base if isinstance(base, str) and base else None
    rel = rel if isinstance(rel, str) and rel else None
    if base and rel:
        return base if base.endswith(rel) and base != rel and os.path.isabs(base) else os.path.join(base, rel)
    found = rel or base or obj.get("sourcePath")
    return found if isinstance(found, str) and found else None


def _paths(rules: Any) -> tuple[list[str], list[dict[str, str]]]:
    """(failed paths, fix paths as ``FixPath``'s fields) of one control's rules."""
    failed: list[str] = []
    fixes: list[dict[str, str]] = []
    for rule in rules if isinstance(rules, list) else []:
        if not isinstance(rule, dict):
            continue
        entries = list(rule.get("paths") or [])
        # Older reports put these lists straight on the rule.
        entries += [{"failedPath": p} for p in rule.get("failedPaths") or []]
        entries += [{"fixPath": p} for p in rule.get("fixPaths") or []]
        for p in entries:
            if not isinstance(p, dict):
                continue
            for key in ("failedPath", "reviewPath", "deletePath"):
                if isinstance(p.get(key), str) and p[key]:
                    failed.append(p[key])
            fix = p.get("fixPath")
            if isinstance(fix, dict) and isinstance(fix.get("path"), str):
                fixes.append({"path": fix["path"], "value": str(fix.get("value", ""))})
    return failed, fixes


def _exception_of(rules: Any) -> tuple[dict[str, str] | None, dict[str, str] | None]:
    """(the exception a rule names, an expired inline one) of one control's rules.

    Kubescape puts the applied postureExceptionPolicy objects on the rule (``exception``); the
    built-in engine adds ``attributes.source`` there and ``expiredException`` for an inline
    exception past its ``kubescape.io/skip-expiry``.
    """
    applied: dict[str, str] | None = None
    expired: dict[str, str] | None = None
    for rule in rules if isinstance(rules, list) else []:
        if not isinstance(rule, dict):
            continue
        for policy in rule.get("exception") or []:
            if isinstance(policy, dict) and applied is None:
                attributes: dict[str, Any] = policy["attributes"] if isinstance(policy.get("attributes"), dict) else {}
                name = str(policy.get("name") or "")
                applied = {"name": name, "reason": str(policy.get("reason") or ""),
                           "source": str(attributes.get("source") or (f"exception {name}" if name else "exception"))}
        found = rule.get("expiredException")
        if isinstance(found, dict) and expired is None:
            expired = {str(k): str(v) for k, v in found.items() if isinstance(v, str | int | float)}
    return applied, expired


def _control_order(
    failed: list[FailedControl], summary: Mapping[str, Mapping[str, Any]], findings: list[KubescapeFinding]
) -> list[str]:
    """Every control id, most urgent first: the failed controls in risk order, then the rest.

    Controls failing in ``results`` but missing from ``summaryDetails`` (hand-made or cut reports)
    are ranked by their findings, so the findings order never depends on the summary being whole.
    """
    failed_ids = {c.control_id for c in failed}
    extra_failed: dict[str, list[Any]] = {}
    others: dict[str, str] = {}
    for f in findings:
        if f.control_id in failed_ids:
            continue
        if f.status == "failed":
            entry = extra_failed.setdefault(f.control_id, [f.severity, 0])
            entry[1] += 1
        else:
            others.setdefault(f.control_id, f.severity)
    for cid, ctrl in summary.items():
        if cid not in failed_ids and cid not in extra_failed:
            others.setdefault(cid, v2.control_severity(ctrl))
    order = [c.control_id for c in failed]
    order += sorted(extra_failed, key=lambda cid: risk_key(cid, extra_failed[cid][0], extra_failed[cid][1]))
    order += sorted((cid for cid in others if cid not in extra_failed), key=lambda cid: risk_key(cid, others[cid], 0))
    return order


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


def finding_fields(ctrl: Mapping[str, Any], controls_info: Mapping[str, Mapping[str, Any]],
                   resource: Any) -> dict[str, Any]:
    """``KubescapeFinding``'s fields, in its order, for one control ``ctrl`` of a ``results[]`` item.

    ``controls_info`` is the summary's controls by id (names and severities older results lack);
    ``resource`` goes in as given: a ``ResourceRef`` here, ``resource_fields``' plain data in the
    built-in engine's process, which computes the store's rows with this function (``engine.digest``).
    """
    cid = str(ctrl.get("controlID") or "")
    info = controls_info.get(cid)
    failed_paths, fix_paths = _paths(ctrl.get("rules"))
    status = v2.control_status(ctrl)
    excepted = status == "passed" and (_is_excepted(ctrl.get("status")) or any(
        _is_excepted(r.get("status"), r.get("subStatus")) for r in ctrl.get("rules") or [] if isinstance(r, dict)
    ))
    applied, expired = _exception_of(ctrl.get("rules"))
    return {
        "control_id": cid,
        "control_name": str(ctrl.get("name") or (info or {}).get("name") or ""),
        "severity": v2.control_severity(ctrl, info),
        "status": status,
        "resource": resource,
        "failed_paths": failed_paths,
        "fix_paths": fix_paths,
        "excepted": excepted,
        "exception": applied if excepted else None,
        "exception_expired": expired if status == "failed" else None,
    }


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
    failed_controls: list[FailedControl] = []
    for cid, ctrl in controls_info.items():
        status = v2.control_status(ctrl)
        setattr(counts, status, getattr(counts, status) + 1)
        if status == "failed":
            failed_controls.append(
                FailedControl(
                    control_id=str(ctrl.get("controlID") or cid),
                    name=str(ctrl.get("name") or ""),
                    severity=v2.control_severity(ctrl),
                    failed_resources=v2.resource_counts(ctrl).failed,
                )
            )
    failed_controls.sort(key=lambda c: risk_key(c.control_id, c.severity, c.failed_resources))

    tally = v2.resource_counts(summary)
    resources = ResourceCounts(passed=tally.passed, failed=tally.failed, skipped=tally.skipped)
    frameworks = [
        FrameworkScore(name=str(fw.get("name") or ""), compliance_score=v2.score(fw.get("complianceScore")))
        for fw in summary.get("frameworks") or []
        if isinstance(fw, dict)
    ]
    control_order = _control_order(failed_controls, controls_info, findings)

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
