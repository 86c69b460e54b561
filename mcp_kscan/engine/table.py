"""A readable terminal summary of a Kubescape v2 report: scores first, then what to fix."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from mcp_kscan.engine.sarif import severity_of_control

SEVERITIES = ("Critical", "High", "Medium", "Low", "Unknown")
MAX_RESOURCES_PER_CONTROL = 10


def _resource_label(rid: str, sources: dict[str, dict[str, Any]]) -> str:
    """``Kind/namespace/name (file)`` from a resourceID like ``path=1/api=apps/v1/ns/Deployment/x``."""
    parts = rid.split("/api=", 1)[-1].split("/")
    label = rid
    if len(parts) >= 5:
        kind, name, ns = parts[-2], parts[-1], parts[-3]
        label = f"{kind}/{ns}/{name}" if ns else f"{kind}/{name}"
    src = sources.get(rid) or {}
    if src.get("relativePath"):
        label += f"  ({src['relativePath']})"
    return label


def render_table(report: dict[str, Any], *, color: bool = False) -> str:
    sd = report.get("summaryDetails") or {}
    controls: dict[str, Any] = sd.get("controls") or {}
    sources = {r.get("resourceID"): (r.get("source") or {}) for r in report.get("resources") or []}
    engine = ((report.get("metadata") or {}).get("engine") or {})
    counters = sd.get("ResourceCounters") or {}
    lines: list[str] = []
    bold = (lambda s: f"\033[1m{s}\033[0m") if color else (lambda s: s)
    red = (lambda s: f"\033[31m{s}\033[0m") if color else (lambda s: s)

    engine_name = engine.get("name") or "kubescape"
    lines.append(bold(f"Scan by {engine_name} {engine.get('version', '')}".rstrip()))
    failed_controls = [c for c in controls.values() if c.get("status") == "failed"]
    lines.append(
        f"Resources: {counters.get('failedResources', 0)} failed, {counters.get('passedResources', 0)} passed"
        f"   Controls: {len(failed_controls)} failed of {len(controls)}"
    )
    if isinstance(sd.get("complianceScore"), int | float):
        lines.append(f"Compliance score: {sd['complianceScore']:.2f}%   (risk score {sd.get('score', 0):.2f})")
    for fw in sd.get("frameworks") or []:
        if isinstance(fw.get("complianceScore"), int | float):
            lines.append(f"  {fw.get('name')}: {fw['complianceScore']:.2f}%")
    errors = engine.get("errors") or []
    if errors:
        lines.append(f"{len(errors)} file problem(s):")
        lines.extend(f"  ! {e}" for e in errors[:20])
        if len(errors) > 20:
            lines.append(f"  ! ... and {len(errors) - 20} more")

    failing: dict[str, list[str]] = defaultdict(list)
    for res in report.get("results") or []:
        for ctl in res.get("controls") or []:
            status = (ctl.get("status") or {}).get("status") if isinstance(ctl.get("status"), dict) else None
            if status is None:
                status = "failed" if any(r.get("status") == "failed" for r in ctl.get("rules") or []) else "passed"
            if status == "failed":
                failing[ctl.get("controlID", "")].append(res.get("resourceID", ""))
    if not failing:
        lines.append("")
        lines.append("No failed controls.")
        return "\n".join(lines) + "\n"
    by_sev: dict[str, list[str]] = defaultdict(list)
    for cid in failing:
        by_sev[severity_of_control(controls.get(cid, {}))].append(cid)
    for sev in SEVERITIES:
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
