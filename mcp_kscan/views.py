"""Result views an agent reads: controls, findings, resources (Kubescape) and checks (kube-bench).

Three calls answer "how secure is it, what first, and exactly where": the scan's summary, the
controls view (one row per control, most urgent first) and the findings of the top control (each
with its file, document and line). This module holds what those pages share:

- filters checked against what a report can hold, so a filter never silently matches nothing;
- findings completed with their location, a stable ``finding_id`` and the catalogue's facts;
- pages that fit the size budget by returning fewer items, saying so, and never cutting a locator;
- one text line per item, so a client that shows the model only text still shows the findings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from mcp_kscan.catalogue import all_controls, framework_controls, framework_names, get_control
from mcp_kscan.errors import InvalidRequest
from mcp_kscan.locations import Location, finding_id, locate
from mcp_kscan.readers.kubescape_v2 import SEVERITIES, parse_severity, severity_rank
from mcp_kscan.risk import is_security, risk_key
from mcp_kscan.runner.records import ScanRecord
from mcp_kscan.runner.store import ControlCount, ItemFilter, ResourceRow

View = Literal["summary", "controls", "findings", "resources", "checks"]
VIEWS: tuple[str, ...] = ("summary", "controls", "findings", "resources", "checks")
KUBESCAPE_VIEWS = ("controls", "findings", "resources")


STATUSES: dict[str, tuple[str, ...]] = {
    "controls": ("failed", "passed", "skipped"),
    "findings": ("failed", "passed", "skipped"),
    "resources": ("failed", "passed"),
    "checks": ("PASS", "FAIL", "WARN", "INFO"),
}

FILTER_VIEWS: dict[str, tuple[str, ...]] = {
    "severity": KUBESCAPE_VIEWS,
    "min_severity": KUBESCAPE_VIEWS,
    "namespace": KUBESCAPE_VIEWS,
    "kind": KUBESCAPE_VIEWS,
    "status": (*KUBESCAPE_VIEWS, "checks"),
    "control_id": (*KUBESCAPE_VIEWS, "checks"),
    "node": ("checks",),
}

KUBESCAPE_CONTROL_RE = re.compile(r"^C-\d{4}$", re.ASCII)
CIS_CHECK_RE = re.compile(r"^\d{1,3}(\.\d{1,3}){0,5}$", re.ASCII)

# Locators are never shortened to fit a page: a cut path points nowhere.
LOCATOR_KEYS = frozenset({"location", "finding_id", "resource", "file", "control_id"})
DESCRIPTION_CHARS = 200
REMEDIATION_CHARS = 400


def _one_of(values: Sequence[str]) -> str:
    return ", ".join(values)


def canonical_severity(field: str, value: str | None) -> str | None:
    """``high``/``HIGH``/``High`` → ``High``; anything else is an error naming the field."""
    if value is None:
        return None
    found = parse_severity(value)
    if found is None:
        raise InvalidRequest(field, f"{value[:20]!r} is not a severity; use one of {_one_of(SEVERITIES[:4])}")
    return found


def severities_at_least(minimum: str) -> tuple[str, ...]:
    """The severities at or above ``minimum`` (canonical), most severe first."""
    rank = severity_rank(minimum)
    return tuple(s for s in SEVERITIES if severity_rank(s) <= rank and s != "Unknown")


def known_control(control_id: str) -> bool:
    """Whether the control catalogue knows ``control_id``."""
    return get_control(control_id) is not None


def control_facts(control_id: str) -> Mapping[str, Any] | None:
    """What the catalogue says about a control: name, severity, base score, category, text."""
    info = get_control(control_id)
    if info is None:
        return None
    return {
        "name": info.name, "severity": info.severity, "base_score": info.base_score, "category": info.category,
        "description": info.description, "remediation": info.remediation, "builtin": info.builtin,
    }


@dataclass
class Filters:
    """A page request's filters, checked and in canonical case."""

    view: str
    item_filter: ItemFilter


def check_filters(
    view: str,
    scanner: str,
    *,
    severity: str | None = None,
    min_severity: str | None = None,
    status: str | None = None,
    control_id: str | None = None,
    namespace: str | None = None,
    kind: str | None = None,
    node: str | None = None,
    scan_controls: Sequence[str] = (),
) -> ItemFilter:
    """The filters of one page, checked against the view and the scanner, or a one-line error.

    A filter that no item of this view can match is the caller's mistake (``status="FAIL"`` on
    findings, ``control_id="C-57"``), and answering "0 matches" would hide it.
    """
    if view not in VIEWS:
        raise InvalidRequest("view", f"{view[:20]!r} is not a view; use one of {_one_of(VIEWS)}")
    expected = "kube-bench" if view == "checks" else "kubescape"
    if view != "summary" and scanner != expected:
        other = "checks" if scanner == "kube-bench" else _one_of(KUBESCAPE_VIEWS)
        raise InvalidRequest("view", f"'{view}' is for {expected} scans; this is a {scanner} scan: use {other}")
    given = {
        "severity": severity, "min_severity": min_severity, "status": status, "control_id": control_id,
        "namespace": namespace, "kind": kind, "node": node,
    }
    for name, value in given.items():
        if value is not None and view not in FILTER_VIEWS[name]:
            raise InvalidRequest(name, f"not a filter of view {view}; it filters {_one_of(FILTER_VIEWS[name])}")
    filt = ItemFilter(view=view, namespace=namespace, kind=kind, node=node)
    filt.severity = canonical_severity("severity", severity)
    minimum = canonical_severity("min_severity", min_severity)
    if minimum is not None:
        filt.severities = severities_at_least(minimum)
        if filt.severity is not None and filt.severity not in filt.severities:
            raise InvalidRequest("severity", f"{filt.severity} is below min_severity {minimum}: nothing can match both")
    if status is not None:
        valid = STATUSES[view]
        by_lower = {s.lower(): s for s in valid}
        filt.status = by_lower.get(status.strip().lower())
        if filt.status is None:
            raise InvalidRequest("status", f"{status[:20]!r} is not a status of view {view}; use one of {_one_of(valid)}")
    if control_id is not None:
        filt.control_id = _check_control_id(view, control_id.strip(), scan_controls)
    return filt


def _check_control_id(view: str, control_id: str, scan_controls: Sequence[str]) -> str:
    if view == "checks":
        if not CIS_CHECK_RE.fullmatch(control_id):
            raise InvalidRequest("control_id", f"{control_id[:20]!r} is not a CIS check id; they look like 1.2.3")
        return control_id
    canonical = control_id.upper()
    if not KUBESCAPE_CONTROL_RE.fullmatch(canonical):
        raise InvalidRequest(
            "control_id", f"{control_id[:20]!r} is not a Kubescape control id; they look like C-0057 (list_controls shows them)"
        )
    if canonical not in scan_controls and not known_control(canonical):
        raise InvalidRequest(
            "control_id", f"{canonical} is not in the control catalogue nor in this scan; list_controls shows the controls"
        )
    return canonical


# --------------------------------------------------------------------------- items


def scan_roots(record: ScanRecord) -> list[str]:
    """The paths the scan was given: relative file names in its report resolve against them."""
    paths = (record.request or {}).get("paths") or []
    return [p for p in paths if isinstance(p, str)]


def _one_line(text: str | None, limit: int) -> str | None:
    if not text:
        return None
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def catalogue_fields(control_id: str) -> dict[str, Any]:
    """base_score, category, one-line description and remediation of a control, when known."""
    facts = control_facts(control_id)
    if facts is None:
        return {}
    return {
        "base_score": facts.get("base_score"),
        "category": facts.get("category"),
        "description": _one_line(facts.get("description"), DESCRIPTION_CHARS),
        "remediation": _one_line(facts.get("remediation"), REMEDIATION_CHARS),
    }


RENDERED_NOTE = ("rendered output has no lines: the file is the object's Helm template or the overlay's "
                 "kustomization file")


def location_fields(loc: Location, rendered_by: str | None) -> dict[str, Any]:
    """A page's ``location``; a rendered object's says what rendered it and why it has no line."""
    fields: dict[str, Any] = {"file": loc.file, "document": loc.document, "line": loc.line}
    if rendered_by:
        fields["rendered_by"] = rendered_by
        fields["note"] = RENDERED_NOTE
    return fields


def location_of(item: Mapping[str, Any], roots: Sequence[str]) -> Location:
    res = item.get("resource") or {}
    if res.get("rendered_by"):
        # Lines of a template or a kustomization say nothing about the rendered object: none, not a guess.
        return Location(res.get("file"))
    paths = list(item.get("failed_paths") or []) + [fp.get("path", "") for fp in item.get("fix_paths") or []]
    return locate(res.get("file"), roots, res.get("kind"), res.get("namespace"), res.get("name"), paths)


def finding_item(stored: Mapping[str, Any], roots: Sequence[str]) -> dict[str, Any]:
    """A stored finding as a page shows it: locator first, then the verdict and the facts."""
    res = dict(stored.get("resource") or {})
    loc = location_of(stored, roots)
    fid = finding_id(stored.get("control_id", ""), res.get("kind"), res.get("namespace"), res.get("name"),
                     loc.file, loc.document)
    res.pop("file", None)  # the location carries it
    rendered_by = res.pop("rendered_by", None)
    res.pop("relative_path", None)
    item: dict[str, Any] = {
        "finding_id": fid,
        "control_id": stored.get("control_id"),
        "control_name": stored.get("control_name"),
        "severity": stored.get("severity"),
        "status": stored.get("status"),
        "resource": res,
        "location": location_fields(loc, rendered_by),
        "failed_paths": stored.get("failed_paths") or [],
        "fix_paths": stored.get("fix_paths") or [],
    }
    if stored.get("excepted"):
        item["excepted"] = True
        if stored.get("exception"):
            item["exception"] = stored["exception"]
    if stored.get("exception_expired"):
        item["exception_expired"] = stored["exception_expired"]
    item.update(catalogue_fields(str(stored.get("control_id") or "")))
    return item


def control_row(cc: ControlCount) -> dict[str, Any]:
    facts = control_facts(cc.control_id) or {}
    status = "failed" if cc.failed else "passed" if (cc.passed or cc.excepted) else "skipped"
    row: dict[str, Any] = {
        "control_id": cc.control_id,
        "name": cc.sample.get("control_name") or facts.get("name") or "",
        "severity": cc.sample.get("severity") or facts.get("severity") or "Unknown",
        "status": status,
        "failed": cc.failed,
        "passed": cc.passed,
        "excepted": cc.excepted,
        "skipped": cc.skipped,
        "security": is_security(cc.control_id),
    }
    row.update(catalogue_fields(cc.control_id))
    return row


def resource_row(rr: ResourceRow, roots: Sequence[str]) -> dict[str, Any]:
    sample = rr.sample.get("resource") or {}
    rendered_by = sample.get("rendered_by")
    loc = Location(rr.file or None) if rendered_by else locate(rr.file or None, roots, rr.kind, rr.namespace,
                                                               rr.name, [])
    return {
        "resource": {
            "api_version": sample.get("api_version"), "kind": rr.kind or None,
            "namespace": rr.namespace or None, "name": rr.name or None,
        },
        "location": location_fields(loc, rendered_by),
        "status": "failed" if rr.failed else "passed",
        "failed_controls": [
            {"control_id": f.get("control_id"), "name": f.get("control_name"), "severity": f.get("severity"),
             "line": location_of(f, roots).line}
            for f in rr.failed
        ],
        "passed_controls": rr.passed,
    }


# --------------------------------------------------------------------------- text


def _where(item: Mapping[str, Any]) -> str:
    loc = item.get("location") or {}
    if loc.get("file"):
        where = f"{loc['file']}:{loc['line']}" if loc.get("line") else str(loc["file"])
        return f"{where} ({loc['rendered_by']})" if loc.get("rendered_by") else where
    return "(cluster)"


def _resource_name(res: Mapping[str, Any]) -> str:
    parts = [res.get("kind") or "?", res.get("namespace") or "", res.get("name") or "?"]
    return "/".join(parts) if parts[1] else f"{parts[0]}/{parts[2]}"


def item_line(view: str, item: Mapping[str, Any]) -> str:
    """One compact line per item: severity, control, resource, file:line."""
    if view == "findings":
        status = "" if item.get("status") == "failed" else f" [{item.get('status')}]"
        return (f"{item.get('severity')} {item.get('control_id')} {_resource_name(item.get('resource') or {})}"
                f" {_where(item)}{status}")
    if view == "controls":
        return (f"{item.get('severity')} {item.get('control_id')} {item.get('name')}: {item.get('status')}, "
                f"{item.get('failed')} failed / {item.get('passed')} passed / {item.get('excepted')} excepted resources")
    if view == "resources":
        controls = ", ".join(f"{c['control_id']} ({c['severity']})" for c in item.get("failed_controls") or [])
        return f"{_resource_name(item.get('resource') or {})} {_where(item)}: " + (f"fails {controls}" if controls else "passes")
    node = f" on {item['node']}" if item.get("node") else ""
    return f"{item.get('status')} {item.get('id')}{node}: {_one_line(item.get('description'), 120) or ''}"


# --------------------------------------------------------------------------- catalogue


def catalogue_rows(framework: str | None, severity: str | None, query: str | None) -> tuple[list[str], list[dict[str, Any]]]:
    """(every framework name, the catalogue's controls matching the filters, most urgent first).

    Frameworks and control ids were learnt from error messages before; here they are listed.
    """
    names = list(framework_names())
    wanted: set[str] | None = None
    if framework is not None:
        match = next((n for n in names if n.lower() == framework.strip().lower()), None)
        if match is None:
            raise InvalidRequest("framework", f"{framework[:40]!r} is not a framework; use one of {_one_of(names)}")
        wanted = set(framework_controls(match))
    sev = canonical_severity("severity", severity)
    needle = (query or "").strip().lower()
    rows: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    for info in all_controls():
        if wanted is not None and info.control_id not in wanted:
            continue
        if sev is not None and info.severity != sev:
            continue
        if needle and not any(needle in text.lower() for text in (info.control_id, info.name, info.description)):
            continue
        row = {
            "control_id": info.control_id,
            "name": info.name,
            "severity": info.severity,
            "base_score": info.base_score,
            "category": info.category,
            "security": is_security(info.control_id),
            "builtin": info.builtin,
            "description": _one_line(info.description, DESCRIPTION_CHARS),
            "remediation": _one_line(info.remediation, REMEDIATION_CHARS),
        }
        rows.append((risk_key(info.control_id, info.severity, 0), row))
    rows.sort(key=lambda r: r[0])
    return names, [r for _, r in rows]


def catalogue_line(row: Mapping[str, Any]) -> str:
    engine = "" if row.get("builtin") else " (Kubescape binary only)"
    return f"{row['severity']} {row['control_id']} {row['name']}{engine}"
