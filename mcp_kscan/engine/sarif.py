"""SARIF 2.1.0 from a Kubescape v2 report, for code-scanning tools (GitHub, GitLab, ...).

One rule per control; one result per failed (resource, control), located in the manifest file the
resource came from. Works on any v2 report, the built-in engine's or Kubescape's own.
"""

from __future__ import annotations

from typing import Any

import mcp_kscan
from mcp_kscan.readers import kubescape_v2 as v2

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {"Critical": "error", "High": "error", "Medium": "warning", "Low": "note"}
_SECURITY_SEVERITY = {"Critical": "9.5", "High": "7.5", "Medium": "5.0", "Low": "2.0"}


def _line(source: dict[str, Any], rid: str, paths: list[str]) -> int | None:
    """The line of the failing field in the manifest, when the file is still on disk."""
    from mcp_kscan.locations import locate
    from mcp_kscan.readers.kubescape_fields import source_file

    ident = v2.parse_resource_id(rid)
    return locate(source_file(source, {}), [], ident.kind, ident.namespace, ident.name, paths).line


def to_sarif(report: dict[str, Any]) -> dict[str, Any]:
    controls = v2.summary_controls(report.get("summaryDetails") or {})
    sources = {r.get("resourceID"): (r.get("source") or {}) for r in report.get("resources") or []}
    engine = (report.get("metadata") or {}).get("engine") or {}
    rule_ids = sorted(controls)
    rules = []
    for cid in rule_ids:
        c = controls[cid]
        sev = v2.control_severity(c)
        rules.append({
            "id": cid,
            "name": str(c.get("name", cid)).replace(" ", ""),
            "shortDescription": {"text": c.get("name", cid)},
            "helpUri": v2.control_url(cid),
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
            if v2.control_status(ctl) != "failed":
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
                "level": _LEVEL.get(v2.control_severity(controls.get(cid), ctl), "warning"),
                "message": {"text": text},
                "partialFingerprints": {"resourceControl": f"{rid}|{cid}"},
            }
            if cid in index:
                result["ruleIndex"] = index[cid]
            if uri:
                physical: dict[str, Any] = {"artifactLocation": {"uri": uri}}
                line = None if v2.rendered_by(src) else _line(src, rid, [*failed, *(
                    p["fixPath"]["path"] for p in paths if isinstance(p.get("fixPath"), dict) and p["fixPath"].get("path"))])
                if line:
                    physical["region"] = {"startLine": line}
                result["locations"] = [{"physicalLocation": physical}]
            rendered = v2.rendered_by(src)
            if rendered:  # the object exists only in rendered output: the file is its template, no line
                result["properties"] = {"renderedBy": rendered}
            results.append(result)
    # What the scan did not cover, where SARIF viewers show tool messages; an empty scan says so.
    notes = [w for w in engine.get("warnings") or [] if isinstance(w, str)]
    if v2.nothing_scanned(report) and v2.NOTHING_SCANNED not in notes:
        notes.insert(0, v2.NOTHING_SCANNED)
    invocation: dict[str, Any] = {"executionSuccessful": True}
    if notes:
        invocation["toolExecutionNotifications"] = [{"level": "warning", "message": {"text": n}} for n in notes]
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
            "invocations": [invocation],
        }],
    }
