"""``mcp-kscan scan --baseline BASE.json``: keep only what a change broke, and gate CI on it.

BASE.json is a previous report: this tool's ``--format json`` or real Kubescape's v2 JSON. Both
reports are read by the one reader (``readers.kubescape_report.parse_report``) and classified by the
one comparison (``compare.compare_findings``) that ``compare_scans`` uses, so the CLI and the
server cannot disagree about what is new. The regression report is the scan's own v2 report
with ``results`` (and ``resources``) cut down to the new failures, plus a ``baseline`` section
with the counts; ``summaryDetails`` still describes the whole scan.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp_kscan.compare import Comparison, identity_key, compare_findings, file_identity
from mcp_kscan.errors import InvalidRequest
from mcp_kscan.reports import KubescapeReport
from mcp_kscan.scanners.common import ScanOutputError
from mcp_kscan.readers.kubescape_report import parse_report, resource_ref

MAX_BASELINE_BYTES = 512 * 1024 * 1024


def load_baseline(path: str) -> KubescapeReport:
    """The baseline report, or a one-line error naming ``--baseline`` (read before any scan starts)."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_BASELINE_BYTES:
            raise InvalidRequest("--baseline", f"{path} is larger than {MAX_BASELINE_BYTES // (1024 * 1024)} MB")
        data = p.read_bytes()
    except OSError as exc:
        raise InvalidRequest("--baseline", f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        report = parse_report(data)
    except ScanOutputError as exc:
        raise InvalidRequest("--baseline", f"{path}: {exc}") from None
    if not report.findings and not report.errors:
        raise InvalidRequest("--baseline", f"{path} holds no per-resource results: it cannot tell what is new")
    return report


def _dump(report: KubescapeReport) -> list[dict[str, Any]]:
    return [f.model_dump() for f in report.findings]


@dataclass
class Regressions:
    comparison: Comparison
    report: dict[str, Any]
    """The scan's report with only the new failures in ``results``."""


def regressions(head: Mapping[str, Any], baseline: KubescapeReport, baseline_name: str) -> Regressions:
    comparison = compare_findings(_dump(baseline), _dump(parse_report(head)))
    wanted = {(identity_key(c.item), file_identity(c.item)) for c in comparison.new}
    entries = {e.get("resourceID"): e for e in head.get("resources") or [] if isinstance(e, dict)}
    results: list[dict[str, Any]] = []
    for result in head.get("results") or []:
        if not isinstance(result, dict):
            continue
        rid = str(result.get("resourceID") or "")
        ref = resource_ref(entries.get(rid), rid).model_dump()
        kept = [c for c in result.get("controls") or [] if isinstance(c, dict)
                and (identity_key({"control_id": c.get("controlID"), "resource": ref}),
                     file_identity({"resource": ref})) in wanted]
        if kept:
            results.append({**result, "controls": kept})
    kept_ids = {r["resourceID"] for r in results}
    report = {**head, "results": results,
              "resources": [e for rid, e in entries.items() if rid in kept_ids],
              "baseline": {"file": baseline_name, **comparison.counts()}}
    return Regressions(comparison, report)


def any_failure(report: Mapping[str, Any]) -> bool:
    """Whether the report has a failed (not excepted) finding: ``--fail-on any``."""
    return any(f.status == "failed" for f in parse_report(report).findings)


def regression_table(regs: Regressions, roots: list[str]) -> str:
    """The terminal view with a baseline: the counts, then one line per new failure, file:line first."""
    from mcp_kscan import views

    c = regs.comparison.counts()
    lines = [f"Compared with the baseline {regs.report['baseline']['file']}: {c['new']} new failure(s)"
             f" ({c['new_evidence']} new evidence in failures the baseline had), {c['fixed']} fixed, {c['unchanged']} unchanged"]
    for item in regs.comparison.new:
        shown = views.finding_item(item.item, roots)
        extra = f"  new: {', '.join(item.new_paths[:5])}" if item.new_paths else ""
        lines.append(f"  {views.item_line('findings', shown)}{extra}")
    if not regs.comparison.new:
        lines.append("No new failures.")
    return "\n".join(lines) + "\n"


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
