"""How often the built-in engine agrees with a real Kubescape report on the same inputs.

For every (resource, control) verdict in the Kubescape report, for the controls the engine
implements, look up the engine's verdict on the same resource. Kubescape judges RBAC controls
on (subject, role, binding) triples whose IDs join three resource IDs; those are matched on the
binding part, which is the resource the engine judges.

Used by ``tests/engine/test_agreement.py`` and by anyone who wants the table
(``python -m mcp_kscan.engine.agreement KUBESCAPE_REPORT.json MANIFEST_DIR``).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp_kscan.readers import kubescape_v2 as v2

# Controls whose rule regolibrary rewrote after the 2022 report was made: the engine follows the
# current rule (v2.0.33, proven by its own test cases in tests/engine/test_rule_cases.py), so the
# old report's verdicts on them say nothing about the engine. They are listed, not scored.
SUPERSEDED_SINCE_2022: dict[str, str] = {
    "C-0034": "automount-service-account no longer judges ServiceAccounts, and fails a pod whose "
              "service account is not among the scanned objects (the 2022 rule passed it)",
}

_BINDING_PART = re.compile(r"path=\d+/api=[^/]*/[^/]*/[^/]*/(?:RoleBinding|ClusterRoleBinding)/[^/]+")
_FILE_ID = re.compile(r"^path=\d+/api=")


def kubescape_verdicts(report: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(resourceID, controlID) → "failed"/"passed", from either report format.

    Old (2022) reports carry no per-control status in results: a control failed when any of its
    rules did. Composite RBAC IDs are reduced to their binding's ID.
    """
    out: dict[tuple[str, str], str] = {}
    for result in report.get("results") or []:
        rid = result.get("resourceID", "")
        if not _FILE_ID.match(rid):
            m = _BINDING_PART.search(rid)
            rid = m.group(0) if m else rid
        for control in result.get("controls") or []:
            status = v2.control_status(control)
            if status in ("failed", "passed"):
                key = (rid, control["controlID"])
                if out.get(key) != "failed":  # several triples per binding: any failure counts
                    out[key] = status
    return out


@dataclass
class ControlAgreement:
    control_id: str
    name: str = ""
    agree: int = 0
    disagree: int = 0
    missing: int = 0
    """Kubescape judged the resource; the engine did not (e.g. a Helm template it cannot render)."""
    examples: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.agree + self.disagree + self.missing


@dataclass
class Agreement:
    per_control: dict[str, ControlAgreement]
    extra: int = 0
    """Verdicts the engine gave that Kubescape did not (newer rules, other kinds); not scored."""
    superseded: dict[str, ControlAgreement] = field(default_factory=dict)
    """Controls whose rule changed since the report (SUPERSEDED_SINCE_2022): shown, not scored."""

    @property
    def agree(self) -> int:
        return sum(c.agree for c in self.per_control.values())

    @property
    def total(self) -> int:
        return sum(c.total for c in self.per_control.values())

    @property
    def ratio(self) -> float:
        return self.agree / self.total if self.total else 1.0

    def table(self) -> str:
        lines = [f"{'control':8}  {'name':42}  {'agree':>5}  {'differ':>6}  {'missing':>7}  {'%':>6}"]
        for cid in sorted(self.per_control):
            c = self.per_control[cid]
            pct = 100 * c.agree / c.total if c.total else 100.0
            lines.append(f"{cid:8}  {c.name[:42]:42}  {c.agree:5}  {c.disagree:6}  {c.missing:7}  {pct:6.1f}")
        lines.append(f"{'TOTAL':8}  {'':42}  {self.agree:5}  "
                     f"{sum(c.disagree for c in self.per_control.values()):6}  "
                     f"{sum(c.missing for c in self.per_control.values()):7}  {100 * self.ratio:6.1f}")
        for cid in sorted(self.superseded):
            c = self.superseded[cid]
            lines.append(f"not scored: {cid} (agree {c.agree}, differ {c.disagree}, missing {c.missing}): "
                         f"{SUPERSEDED_SINCE_2022.get(cid, '')}")
        for cid in sorted(self.per_control):
            for ex in self.per_control[cid].examples:
                lines.append(f"  {cid}: {ex}")
        return "\n".join(lines)


def compare(engine_report: dict[str, Any], kubescape_report: dict[str, Any],
            superseded: dict[str, str] | None = None) -> Agreement:
    ours = kubescape_verdicts(engine_report)
    theirs = kubescape_verdicts(kubescape_report)
    implemented = {cid: c.get("name", "") for cid, c in (engine_report.get("summaryDetails") or {}).get("controls", {}).items()}
    per: dict[str, ControlAgreement] = {}
    for (rid, cid), expected in theirs.items():
        if cid not in implemented:
            continue
        entry = per.setdefault(cid, ControlAgreement(cid, implemented[cid]))
        got = ours.get((rid, cid))
        if got is None:
            entry.missing += 1
            entry.examples.append(f"missing {rid} (Kubescape: {expected})")
        elif got == expected:
            entry.agree += 1
        else:
            entry.disagree += 1
            entry.examples.append(f"{rid}: engine {got}, Kubescape {expected}")
    extra = sum(1 for key in ours if key not in theirs and key[1] in {c for (_, c) in theirs})
    skipped = {cid: per.pop(cid) for cid in list(per) if cid in (superseded or {})}
    return Agreement(per, extra, skipped)


def agreement_for(kubescape_report_path: str | Path, manifests_dir: str | Path) -> Agreement:
    """Scan ``manifests_dir`` with the engine (all controls) and compare with the report file."""
    from mcp_kscan.engine.scan import scan_paths

    kubescape_report = json.loads(Path(kubescape_report_path).read_text(encoding="utf-8"))
    engine_report = scan_paths([str(manifests_dir)], frameworks=["all"])
    return compare(engine_report, kubescape_report, SUPERSEDED_SINCE_2022)


if __name__ == "__main__":  # pragma: no cover - a convenience for humans
    if len(sys.argv) != 3:
        print("usage: python -m mcp_kscan.engine.agreement KUBESCAPE_REPORT.json MANIFEST_DIR", file=sys.stderr)
        raise SystemExit(2)
    result = agreement_for(sys.argv[1], sys.argv[2])
    print(result.table())
