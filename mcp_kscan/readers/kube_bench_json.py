"""kube-bench's ``--json`` output turned into the normalized ``KubeBenchReport``.

Facts this module relies on (kube-bench check/controls.go): ``--json`` prints one JSON document on
stdout: ``{"Controls": [...], "Totals": {...}}`` or, with ``--nototals`` and in old releases, a bare
array of controls (releases before mid-2020: one object per control, concatenated).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from mcp_kscan import strict_json
from mcp_kscan.redact import redact_text
from mcp_kscan.reports import (
    KubeBenchCheck,
    KubeBenchControl,
    KubeBenchGroup,
    KubeBenchReport,
    KubeBenchTotals,
    cut_text,
)
from mcp_kscan.scanners.common import ScanOutputError

_STATUSES = ("PASS", "FAIL", "WARN", "INFO")
_UNSUBSTITUTED_RE = re.compile(r"\$[a-z]+(bin|conf|svc|kubeconfig|cafile|datadir)\b")

NO_COMPONENTS_WARNING = (
    "kube-bench found no Kubernetes components running on this host: most audits could not run "
    "(the component binaries were not detected), so FAIL/WARN results here say little about the "
    "cluster. Run kube-bench on a cluster node (or as a Kubernetes Job) for meaningful results."
)


def _decode_json(data: bytes | bytearray | str) -> Any:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes | bytearray) else data
    text = text.strip()
    if not text:
        raise ScanOutputError("kube-bench printed no output (expected a JSON report on stdout)")
    try:
        return strict_json.loads(text)
    except ValueError as exc:
        first_error = exc
    # Releases before mid-2020 printed one JSON object per control, concatenated.
    decoder = strict_json.decoder()
    docs: list[Any] = []
    pos = 0
    try:
        while pos < len(text):
            doc, pos = decoder.raw_decode(text, pos)
            docs.append(doc)
            while pos < len(text) and text[pos].isspace():
                pos += 1
    except ValueError:
        docs = []
    if len(docs) > 1 and all(isinstance(d, dict) for d in docs):
        return docs
    start = " ".join(text[:60].split())
    raise ScanOutputError(
        f"kube-bench output is not JSON ({strict_json.reason(first_error)}); "
        f"it starts with {redact_text(repr(start))}"
    )


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _totals(counts: dict[str, int]) -> KubeBenchTotals:
    return KubeBenchTotals(pass_=counts["PASS"], fail=counts["FAIL"], warn=counts["WARN"], info=counts["INFO"])


def _given_totals(obj: dict[str, Any], prefix: str) -> KubeBenchTotals | None:
    keys = [f"{prefix}{k}" for k in ("pass", "fail", "warn", "info")]
    if not any(k in obj for k in keys):
        return None
    p, f, w, i = (_int(obj.get(k)) for k in keys)
    return KubeBenchTotals(pass_=p, fail=f, warn=w, info=i)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def parse_output(data: bytes | str | Any, *, node: str | None = None) -> KubeBenchReport:
    """Turn ``kube-bench --json`` output (either shape) into a ``KubeBenchReport``.

    Totals come from the report's ``Totals`` when present (they are kube-bench's own numbers),
    else they are counted from the checks. Raises ``ScanOutputError`` with a one-line message
    for anything that is not a kube-bench JSON report.
    """
    doc = _decode_json(data) if isinstance(data, bytes | bytearray | str) else data
    given_totals: KubeBenchTotals | None = None
    if isinstance(doc, dict) and "Controls" in doc:
        controls_raw = doc.get("Controls") or []
        if isinstance(doc.get("Totals"), dict):
            given_totals = _given_totals(doc["Totals"], "total_")
    elif isinstance(doc, dict) and "tests" in doc:
        controls_raw = [doc]
    elif isinstance(doc, list):
        controls_raw = doc
    else:
        raise ScanOutputError("kube-bench output is JSON but not a kube-bench report (no Controls)")
    if not isinstance(controls_raw, list) or not all(isinstance(c, dict) for c in controls_raw):
        raise ScanOutputError("kube-bench output is JSON but its Controls are not a list of objects")

    checks: list[KubeBenchCheck] = []
    controls: list[KubeBenchControl] = []
    all_counts = dict.fromkeys(_STATUSES, 0)
    for ctrl in controls_raw:
        ctrl_id = _text(ctrl.get("id")) or ""
        node_type = _text(ctrl.get("node_type"))
        ctrl_counts = dict.fromkeys(_STATUSES, 0)
        groups: list[KubeBenchGroup] = []
        for group in ctrl.get("tests") or []:
            if not isinstance(group, dict):
                continue
            section = _text(group.get("section")) or ""
            desc = _text(group.get("desc")) or ""
            group_counts = dict.fromkeys(_STATUSES, 0)
            ids: list[str] = []
            for raw in group.get("results") or []:
                if not isinstance(raw, dict):
                    continue
                status = str(raw.get("status") or "").upper()
                if status not in _STATUSES:
                    status = "WARN"  # an unknown verdict needs a human look, like kube-bench's WARN
                check_id = _text(raw.get("test_number")) or ""
                checks.append(
                    KubeBenchCheck(
                        id=check_id,
                        description=_text(raw.get("test_desc")) or "",
                        status=status,  # type: ignore[arg-type]
                        scored=bool(raw.get("scored")),
                        remediation=cut_text(_text(raw.get("remediation")), 2000),
                        actual_value=cut_text(_text(raw.get("actual_value"))),
                        expected_result=cut_text(_text(raw.get("expected_result"))),
                        reason=cut_text(_text(raw.get("reason"))),
                        audit=cut_text(_text(raw.get("audit"))),
                        control_id=ctrl_id,
                        node_type=node_type,
                        section=section,
                        section_desc=desc,
                        node=node,
                    )
                )
                ids.append(check_id)
                group_counts[status] += 1
            for k in _STATUSES:
                ctrl_counts[k] += group_counts[k]
            counts = _given_totals(group, "") or _totals(group_counts)
            groups.append(KubeBenchGroup(section=section, desc=desc, counts=counts, check_ids=ids))
        for k in _STATUSES:
            all_counts[k] += ctrl_counts[k]
        controls.append(
            KubeBenchControl(
                id=ctrl_id,
                text=_text(ctrl.get("text")) or "",
                node_type=node_type,
                version=_text(ctrl.get("version")),
                detected_version=_text(ctrl.get("detected_version")),
                totals=_given_totals(ctrl, "total_") or _totals(ctrl_counts),
                groups=groups,
                node=node,
            )
        )
    report = KubeBenchReport(
        benchmark=next((c.version for c in controls if c.version), None),
        detected_version=next((c.detected_version for c in controls if c.detected_version), None),
        totals=given_totals or _totals(all_counts),
        controls=controls,
        checks=checks,
    )
    if no_components_detected(report.checks):
        report.warnings.append(NO_COMPONENTS_WARNING)
    return report


def no_components_detected(checks: Iterable[KubeBenchCheck]) -> bool:
    """True when most audits could not run: kube-bench found no Kubernetes binaries here.

    Signs (kube-bench keeps going and exits 0 in this case): ``reason`` starting with
    ``failed to run``, or an audit still holding an unsubstituted ``$kubeletbin``-style variable.
    Manual checks (no audit) do not count either way.
    """
    audited = 0
    broken = 0
    for c in checks:
        if not (c.audit and c.audit.strip()):
            continue
        audited += 1
        if (c.reason or "").startswith("failed to run") or _UNSUBSTITUTED_RE.search(c.audit):
            broken += 1
    return audited >= 3 and broken * 2 >= audited
