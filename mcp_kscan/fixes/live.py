"""Fixes for live cluster objects: a JSON Patch of the object, and the API server's dry run of it.

A cluster finding has no file to edit. Its fix is the JSON Patch of the object as the API
server holds it now (read fresh: the scan's copy may be old), verified in memory by the engine
like a file's, and sent once with ``dryRun=All``: the API server then runs its validation and
every admission controller (Pod Security, webhooks, quotas) on the patched object and answers,
without storing anything. Nothing is ever applied to a cluster here.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from mcp_kscan.cluster import ClusterConfigError, ClusterSource, new_api_client, safe_api_error
from mcp_kscan.engine.cluster import LISTED_KINDS
from mcp_kscan.fixes.models import DryRun, NoFix, ProposedFix
from mcp_kscan.fixes.patch import Edit, apply_patch, build_patch
from mcp_kscan.fixes.planner import NO_REMEDY, Plan, edit_attempts
from mcp_kscan.fixes.remedies import remedy_for
from mcp_kscan.fixes.verify import Identity, Verifier

TIMEOUT_S = 30.0
_PATHS = {kind: (prefix, plural, namespaced) for prefix, plural, kind, _, namespaced in LISTED_KINDS}
_MESSAGE_CHARS = 300


def object_path(kind: str, namespace: str, name: str) -> str | None:
    """The API path of one object of a kind the engine reads from clusters (None for others)."""
    entry = _PATHS.get(kind)
    if entry is None:
        return None
    prefix, plural, namespaced = entry
    if namespaced:
        return f"{prefix}/namespaces/{namespace or 'default'}/{plural}/{name}"
    return f"{prefix}/{plural}/{name}"


def _call(client: Any, method: str, path: str, query: list[tuple[str, str]], body: Any = None,
          content_type: str | None = None) -> tuple[int, bytes]:
    """One authenticated request returning (status, raw body), for old and new client generations."""
    headers = {"Accept": "application/json"}
    if content_type:
        headers["Content-Type"] = content_type
    try:
        if hasattr(client, "param_serialize"):  # kubernetes >= 31 (OpenAPI generator 7)
            m, url, header_params, serialized, _ = client.param_serialize(
                method, path, query_params=query, header_params=headers, body=body, auth_settings=["BearerToken"])
            resp = client.call_api(m, url, header_params=header_params, body=serialized, _request_timeout=TIMEOUT_S)
            resp.read()
            return int(resp.status), resp.data
        resp = client.call_api(path, method, query_params=query, header_params=headers, body=body,
                               auth_settings=["BearerToken"], _preload_content=False,
                               _return_http_data_only=True, _request_timeout=TIMEOUT_S)
        return int(resp.status), resp.data
    except Exception as exc:  # noqa: BLE001 - ApiException carries the status; others only their kind
        status = getattr(exc, "status", None)
        body_text = getattr(exc, "body", None)
        if isinstance(status, int) and status:
            return status, body_text.encode() if isinstance(body_text, str) else (body_text or b"")
        raise ClusterConfigError(safe_api_error(exc)) from None


def _message(raw: bytes) -> str | None:
    """The API server's own Status message (what validation or admission said), shortened."""
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    message = data.get("message") if isinstance(data, dict) else None
    return message[:_MESSAGE_CHARS] if isinstance(message, str) else None


class LiveFixer:
    """Plans fixes for one cluster's objects (one API client per request)."""

    def __init__(self, source: ClusterSource) -> None:
        self.source = source
        self._client: Any = None

    def _api(self) -> Any:
        if self._client is None:
            self._client = new_api_client(self.source, pool_size=4)
        return self._client

    def plan(self, item: Mapping[str, Any], verifier: Verifier) -> Plan | NoFix:
        fid, control = str(item.get("finding_id")), str(item.get("control_id") or "")
        res = item.get("resource") or {}
        who = Identity(str(res.get("kind") or ""), str(res.get("namespace") or ""), str(res.get("name") or ""))
        path = object_path(who.kind, who.namespace, who.name)
        if path is None:
            return NoFix(finding_id=fid, control_id=control, reason=f"{who.kind} objects are not read from clusters")
        try:
            status, raw = _call(self._api(), "GET", path, [])
        except ClusterConfigError as exc:
            return NoFix(finding_id=fid, control_id=control, reason=f"cannot read the object: {exc}")
        if status != 200:
            return NoFix(finding_id=fid, control_id=control, reason=f"cannot read the object: HTTP {status}")
        obj = json.loads(raw)
        remedy = remedy_for(item, obj)
        if remedy.empty:
            return NoFix(finding_id=fid, control_id=control, reason=NO_REMEDY)
        attempts = edit_attempts(remedy)
        fix: ProposedFix | None = None
        edits: list[Edit] = []
        for edits, needs in attempts:
            patch = build_patch(obj, edits)
            fix = ProposedFix(finding_id=fid, control_id=control, severity=item.get("severity"), resource=dict(res),
                              json_patch=patch, needs_user_value=needs, verified=False, verification="")
            if not patch:
                fix.verification = ("no value to suggest: nothing is patched until you choose one" if needs
                                    else "nothing to change: the object already holds these values")
                continue
            verdict = verifier.judge(control, obj, apply_patch(copy.deepcopy(obj), patch))
            fix.verified, fix.verification = verdict.verified, verdict.reason
            if fix.verified:
                break
        assert fix is not None
        if fix.json_patch:
            fix.dry_run = self.dry_run(path, fix.json_patch)
        return Plan(fix, edits, None, who)

    def dry_run(self, path: str, patch: list[dict[str, Any]]) -> DryRun:
        """Send the patch with ``dryRun=All``: validation and admission run, nothing is stored."""
        try:
            status, raw = _call(self._api(), "PATCH", path, [("dryRun", "All")], body=patch,
                                content_type="application/json-patch+json")
        except ClusterConfigError as exc:
            return DryRun(accepted=False, message=str(exc))
        accepted = 200 <= status < 300
        return DryRun(accepted=accepted, status=status, message=None if accepted else _message(raw))
