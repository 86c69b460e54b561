"""A readable terminal summary of a Kubescape v2 report: scores first, then what to fix."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from mcp_kscan.readers import kubescape_v2 as v2

MAX_RESOURCES_PER_CONTROL = 10


def _resource_label(rid: str, sources: dict[str, dict[str, Any]]) -> str:
    """``Kind/namespace/name (file)`` from a resourceID like ``path=1/api=apps/v1/ns/Deployment/x``."""
    ident = v2.parse_resource_id(rid)
    label = rid
    if ident.kind and ident.name:
        label = f"{ident.kind}/{ident.namespace}/{ident.name}" if ident.namespace else f"{ident.kind}/{ident.name}"
    src = sources.get(rid) or {}
    if src.get("relativePath"):
        rendered = v2.rendered_by(src)
        label += f"  ({src['relativePath']}, {rendered})" if rendered else f"  ({src['relativePath']})"
    return label


def render_table(report: dict[str, Any], *, color: bool = False) -> str:
    sd = report.get("summaryDetails") or {}
    controls = v2.summary_controls(sd)
    sources = {r.get("resourceID"): (r.get("source") or {}) for r in report.get("resources") or []}
    engine = ((report.get("metadata") or {}).get("engine") or {})
    counts = v2.resource_counts(sd)
    lines: list[str] = []
    bold = (lambda s: f"\033[1m{s}\033[0m") if color else (lambda s: s)
    red = (lambda s: f"\033[31m{s}\033[0m") if color else (lambda s: s)

    engine_name = engine.get("name") or "kubescape"
    lines.append(bold(f"Scan by {engine_name} {engine.get('version', '')}".rstrip()))
    failed_controls = [c for c in controls.values() if v2.control_status(c) == "failed"]
    lines.append(
        f"Resources: {counts.failed} failed, {counts.passed} passed"
        f"   Controls: {len(failed_controls)} failed of {len(controls)}"
    )
    excepted = sum(1 for res in report.get("results") or [] for ctl in res.get("controls") or []
                   if str((ctl.get("status") or {}).get("subStatus") if isinstance(ctl.get("status"), dict) else "")
                   == "w/exceptions")
    if excepted:
        lines.append(f"Excepted: {excepted} failure(s) covered by an exception (accepted risk; reported passed)")
    empty = v2.nothing_scanned(report)
    if empty:
        lines.append(bold(red(f"Compliance score: none ({v2.NOTHING_SCANNED})")))
    elif isinstance(sd.get("complianceScore"), int | float):
        lines.append(f"Compliance score: {sd['complianceScore']:.2f}%   (risk score {sd.get('score') or 0:.2f})")
    for fw in [] if empty else sd.get("frameworks") or []:
        if isinstance(fw.get("complianceScore"), int | float):
            lines.append(f"  {fw.get('name')}: {fw['complianceScore']:.2f}%")
    warnings = [w for w in engine.get("warnings") or [] if isinstance(w, str) and w != v2.NOTHING_SCANNED]
    if warnings:
        lines.append(f"{len(warnings)} warning(s): what the scan did not cover")
        lines.extend(f"  - {w}" for w in warnings[:20])
    errors = engine.get("errors") or []
    if errors:
        lines.append(f"{len(errors)} file problem(s):")
        lines.extend(f"  ! {e}" for e in errors[:20])
        if len(errors) > 20:
            lines.append(f"  ! ... and {len(errors) - 20} more")

    failing: dict[str, list[str]] = defaultdict(list)
    failed_in_results: dict[str, dict[str, Any]] = {}
    for res in report.get("results") or []:
        for ctl in res.get("controls") or []:
            if v2.control_status(ctl) == "failed":
                cid = str(ctl.get("controlID", ""))
                failing[cid].append(res.get("resourceID", ""))
                failed_in_results.setdefault(cid, ctl)
    if not failing:
        lines.append("")
        lines.append("Nothing was checked." if empty else "No failed controls.")
        return "\n".join(lines) + "\n"
    by_sev: dict[str, list[str]] = defaultdict(list)
    for cid in failing:
        by_sev[v2.control_severity(controls.get(cid), failed_in_results[cid])].append(cid)
    for sev in v2.SEVERITIES:
        cids = sorted(by_sev.get(sev, []), key=lambda c: (-len(failing[c]), c))
        if not cids:
            continue
        lines.append("")
        lines.append(bold(red(f"{sev.upper()} ({len(cids)} control{'s' if len(cids) != 1 else ''})")))
        for cid in cids:
            rids = failing[cid]
            name = controls.get(cid, {}).get("name", "")
            lines.append(f"  {cid}  {name}  — {len(rids)} resource{'s' if len(rids) != 1 else ''}")
            for rid in rids[:MAX_RESOURCES_PER_CONTROL]:
                lines.append(f"      {_resource_label(rid, sources)}")
            if len(rids) > MAX_RESOURCES_PER_CONTROL:
                lines.append(f"      ... and {len(rids) - MAX_RESOURCES_PER_CONTROL} more")
    return "\n".join(lines) + "\n"
