"""A Kubescape v2 report's findings and resources as plain data: the fields of the reader's models.

The reader (``readers.kubescape_report``) builds its models from these fields; the built-in
engine's process computes the store's rows and their order with the very same functions from the
entries it writes (``engine.digest``). No model here, so that the engine's process never imports
pydantic (about a fifth of a CPU second per process, as much as a small scan's whole work).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from mcp_kscan.readers import kubescape_v2 as v2
from mcp_kscan.risk import risk_key

_EXCEPTED_STATUSES = frozenset({"excluded", "warning"})


def _is_excepted(status: Any, sub_status: Any = None) -> bool:
    """Failed but covered by a posture exception: old reports say "excluded"/"warning", new ones
    say passed with subStatus "w/exceptions"."""
    if isinstance(status, dict):
        status, sub_status = status.get("status"), status.get("subStatus", sub_status)
    return str(status or "").lower() in _EXCEPTED_STATUSES or str(sub_status or "").lower() == "w/exceptions"


def resource_fields(entry: Mapping[str, Any] | None, resource_id: str) -> dict[str, Any]:
    """``ResourceRef``'s fields, in its order, as plain data: the resource of ``resources[]``'s
    ``entry`` (the object and its source), else what ``resource_id`` says.

    Plain data so that the built-in engine's process computes the store's rows with this very
    function from the entries it writes, without building models (``engine.digest``). A field of
    the object that is no string (``name: 123``) counts as absent: the id's reading stands in.
    """
    if not entry:
        rid = v2.parse_resource_id(resource_id)
        return {"api_version": rid.api_version, "kind": rid.kind, "namespace": rid.namespace, "name": rid.name,
                "file": None, "rendered_by": None, "relative_path": None}
    obj = entry.get("object")
    obj = obj if isinstance(obj, dict) else {}
    md = obj.get("metadata")
    md = md if isinstance(md, dict) else {}
    source = entry.get("source")
    source = source if isinstance(source, dict) else {}
    rel = source.get("relativePath")
    api_version, kind = _text(obj.get("apiVersion")), _text(obj.get("kind"))
    # "External" RBAC objects carry name/namespace at the top, not under metadata.
    namespace = _text(md.get("namespace")) or _text(obj.get("namespace"))
    name = _text(md.get("name")) or _text(obj.get("name"))
    if api_version is None or kind is None or namespace is None or name is None:
        # Read only where the object lacks one (a cluster-wide object has no namespace): the
        # built-in engine's workers call this for every resource of a kept scan.
        rid = v2.parse_resource_id(resource_id)
        api_version, kind = api_version or rid.api_version, kind or rid.kind
        namespace, name = namespace or rid.namespace, name or rid.name
    return {
        "api_version": api_version,
        "kind": kind,
        "namespace": namespace,
        "name": name,
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


def resource_key(kind: str | None, namespace: str | None, name: str | None, file: str | None) -> str:
    """A resource's identity as one string (JSON), for grouping findings by resource
    (``ResourceRef.key``; the store's rows of plain data use it too)."""
    parts = [kind or "", namespace or "", name or "", file or ""]
    try:
        text = orjson.dumps(parts)
    except TypeError:  # a lone surrogate, which only the standard library writes
        text = b"\\"
    # Printable ASCII that needed no escape (no backslash, no DEL) is the standard library's
    # compact JSON byte for byte, written in a fifth of the time; anything else goes through it.
    if text.isascii() and b"\\" not in text and b"\x7f" not in text:
        return text.decode("ascii")
    return json.dumps(parts, separators=(",", ":"))


def failed_controls(controls_info: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``FailedControl``'s fields of every failed control of a summary (``summary_controls``), in risk order."""
    failed: list[dict[str, Any]] = [
        {"control_id": str(ctrl.get("controlID") or cid), "name": str(ctrl.get("name") or ""),
         "severity": v2.control_severity(ctrl), "failed_resources": v2.resource_counts(ctrl).failed}
        for cid, ctrl in controls_info.items() if v2.control_status(ctrl) == "failed"
    ]
    failed.sort(key=lambda c: risk_key(c["control_id"], c["severity"], c["failed_resources"]))
    return failed


def control_order(failed: Iterable[Mapping[str, Any]], controls_info: Mapping[str, Mapping[str, Any]],
                  findings: Iterable[tuple[str, str, str]] = ()) -> list[str]:
    """Every control id, most urgent first: the ``failed`` controls (``failed_controls``) in
    their order, then the rest.

    Controls failing in ``findings`` ((control id, status, severity) each) but missing from the
    summary (hand-made or cut reports) are ranked by their findings, so the findings order never
    depends on the summary being whole.
    """
    order = [c["control_id"] for c in failed]
    failed_ids = set(order)
    extra_failed: dict[str, list[Any]] = {}
    others: dict[str, str] = {}
    for cid, status, severity in findings:
        if cid in failed_ids:
            continue
        if status == "failed":
            entry = extra_failed.setdefault(cid, [severity, 0])
            entry[1] += 1
        else:
            others.setdefault(cid, severity)
    for cid, ctrl in controls_info.items():
        if cid not in failed_ids and cid not in extra_failed:
            others.setdefault(cid, v2.control_severity(ctrl))
    order += sorted(extra_failed, key=lambda cid: risk_key(cid, extra_failed[cid][0], extra_failed[cid][1]))
    order += sorted((cid for cid in others if cid not in extra_failed), key=lambda cid: risk_key(cid, others[cid], 0))
    return order


def head_control_order(summary_details: Mapping[str, Any]) -> list[str]:
    """``control_order`` of a report's ``summaryDetails`` alone (``parse_report_head``'s)."""
    controls_info = v2.summary_controls(summary_details)
    return control_order(failed_controls(controls_info), controls_info)
