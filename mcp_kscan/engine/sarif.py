"""SARIF 2.1.0 from a Kubescape v2 report, for code-scanning tools (GitHub, GitLab, ...).

One rule per control; one result per failed (resource, control), located in the manifest file the
resource came from. Works on any v2 report, the built-in engine's or Kubescape's own.
"""

from __future__ import annotations

from typing import Any

import mcp_kscan

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {"Critical": "error", "High": "error", "Medium": "warning", "Low": "note"}
_SECURITY_SEVERITY = {"Critical": "9.5", "High": "7.5", "Medium": "5.0", "Low": "2.0"}


def severity_of_control(summary: dict[str, Any]) -> str:
    from mcp_kscan.engine.scoring import severity_of

    sev = summary.get("severity")
    if isinstance(sev, str) and sev:
        return sev
    factor = summary.get("scoreFactor")
    return severity_of(float(factor)) if isinstance(factor, int | float) else "Unknown"


def to_sarif(report: dict[str, Any]) -> dict[str, Any]:
    controls: dict[str, Any] = (report.get("summaryDetails") or {}).get("controls") or {}
    sources = {r.get("resourceID"): (r.get("source") or {}) for r in report.get("resources") or []}
    engine = (report.get("metadata") or {}).get("engine") or {}
    rule_ids = sorted(controls)
    rules = []
    for cid in rule_ids:
        c = controls[cid]
        sev = severity_of_control(c)
        rules.append({
            "id": cid,
            "name": str(c.get("name", cid)).replace(" ", ""),
            "shortDescription": {"text": c.get("name", cid)},
            "helpUri": f"https://hub.armosec.io/docs/{cid.lower()}",
            "defaultConfiguration": {"level": _LEVEL.get(sev, "warning")},
            "properties": {"security-severity": _SECURITY_SEVERITY.get(sev, "5.0"), "tags": ["security", "kubernetes"]},
        })
    index = {cid: i for i, cid in enumerate(rule_ids)}
    results = []
    for res in report.get("results") or []:
        rid = res.get("resourceID", "")
        src = sources.get(rid) or {}
        uri = src.get("relativePath") or ""
        for ctl in res.get("controls") or []:
            status = (ctl.get("status") or {}).get("status") if isinstance(ctl.get("status"), dict) else None
            if status is None:
                status = "failed" if any(r.get("status") == "failed" for r in ctl.get("rules") or []) else "passed"
            if status != "failed":
                continue
            cid = ctl.get("controlID", "")
            paths = [p for r in ctl.get("rules") or [] for p in r.get("paths") or []]
            failed = [p["failedPath"] for p in paths if p.get("failedPath")]
            fixes = [f"{p['fixPath']['path']}={p['fixPath']['value']}" for p in paths
                     if isinstance(p.get("fixPath"), dict) and p["fixPath"].get("path")]
            text = f"{ctl.get('name', cid)}: {rid}"
            if failed:
                text += f"; failing: {', '.join(failed[:5])}"
            if fixes:
                text += f"; fix: {', '.join(fixes[:5])}"
            result: dict[str, Any] = {
                "ruleId": cid,
                "level": _LEVEL.get(severity_of_control(controls.get(cid, ctl)), "warning"),
                "message": {"text": text},
                "partialFingerprints": {"resourceControl": f"{rid}|{cid}"},
            }
            if cid in index:
                result["ruleIndex"] = index[cid]
            if uri:
                result["locations"] = [{"physicalLocation": {"artifactLocation": {"uri": uri}}}]
            results.append(result)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": engine.get("name") or "kubescape",
                "version": engine.get("version") or mcp_kscan.__version__,
                "informationUri": "https://github.com/kubescape/kubescape",
                "rules": rules,
            }},
            "results": results,
        }],
    }
