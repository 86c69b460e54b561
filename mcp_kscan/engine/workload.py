"""Scan one cluster object: fetch it, and only what its controls read beside it.

Checking one Deployment should cost one Deployment, not a list of the whole cluster (issue 14).
The controls that look past a workload read, in its namespace, its service account (C-0034), the
network policies that may select it (C-0030, C-0260), the Services and Ingresses that expose it
(C-0256, C-0266), the bindings and roles that grant its service account rights (C-0267, C-0272,
...), and the ConfigMaps it mounts (C-0258); cluster-wide, only the ClusterRoleBindings and
ClusterRoles. Those are fetched as context and never judged themselves: the report holds the one
object.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from mcp_kscan.cluster import ClusterSource, safe_api_error
from mcp_kscan.engine.cluster import LISTED_KINDS, ClusterError, _api_client, _get, _list, current_context
from mcp_kscan.engine.exceptions import Exceptions
from mcp_kscan.engine.inputs import ControlInputs
from mcp_kscan.engine.model import make_resource
from mcp_kscan.engine.report import ScanTarget

_BY_KIND = {kind.lower(): (prefix, plural, kind, api_version, namespaced)
            for prefix, plural, kind, api_version, namespaced in LISTED_KINDS}

NAMESPACE_CONTEXT = ("networkpolicies", "services", "ingresses", "rolebindings", "roles")
"""Plurals listed in the workload's namespace as context (LISTED_KINDS gives their API paths)."""
CLUSTER_CONTEXT = ("clusterrolebindings", "clusterroles")


def _fetch(client: Any, path: str, timeout_s: float) -> dict[str, Any] | None:
    """One object, or None when the API says it does not exist (or may not be read)."""
    try:
        status, data = _get(client, path, [], timeout_s)
    except Exception as exc:  # noqa: BLE001 - ApiException, urllib3 errors, ...
        if getattr(exc, "status", None) in (403, 404):
            return None
        raise ClusterError(f"reading {path} failed: {safe_api_error(exc)}") from None
    if status in (403, 404):
        return None
    if status >= 400:
        raise ClusterError(f"reading {path} failed: HTTP {status}")
    obj = json.loads(data)
    return obj if isinstance(obj, dict) else None


def _typed(obj: dict[str, Any], kind: str, api_version: str) -> dict[str, Any]:
    obj.setdefault("kind", kind)
    obj.setdefault("apiVersion", api_version)
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    return obj


def _listed(client: Any, plural: str, namespace: str | None, timeout_s: float) -> list[dict[str, Any]]:
    prefix, _, kind, api_version, _ = next(k for k in LISTED_KINDS if k[1] == plural)
    path = f"{prefix}/namespaces/{namespace}/{plural}" if namespace else f"{prefix}/{plural}"
    return [_typed(o, kind, api_version) for o in _list(client, path, timeout_s)]


def fetch_workload(
    kind: str, namespace: str, name: str, source: ClusterSource, *, timeout_s: float = 60.0,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the object, the objects its controls read beside it)."""
    known = _BY_KIND.get(kind.lower())
    if known is None or not known[4]:
        kinds = ", ".join(sorted(k for _, _, k, _, namespaced in LISTED_KINDS if namespaced))
        raise ClusterError(f"workload: the built-in engine scans one object of {kinds}; not {kind}")
    prefix, plural, canonical, api_version, _ = known
    if not namespace or not name:
        raise ClusterError(f"workload: {canonical} is namespaced: give Kind/namespace/name")
    client = _api_client(source)
    try:
        obj = _fetch(client, f"{prefix}/namespaces/{namespace}/{plural}/{name}", timeout_s)
        if obj is None:
            raise ClusterError(f"workload: no {canonical} {namespace}/{name} in the cluster (or no permission to read it)")
        obj = _typed(obj, canonical, api_version)
        related: list[dict[str, Any]] = []
        pod_spec = make_resource(obj, cluster=True).pod_spec
        if pod_spec is not None:
            sa_name = pod_spec.get("serviceAccountName") or pod_spec.get("serviceAccount") or "default"
            sa = _fetch(client, f"/api/v1/namespaces/{namespace}/serviceaccounts/{sa_name}", timeout_s)
            if sa is not None:
                related.append(_typed(sa, "ServiceAccount", "v1"))
            for volume in pod_spec.get("volumes") or []:
                cm = volume.get("configMap") if isinstance(volume, dict) else None
                if isinstance(cm, dict) and isinstance(cm.get("name"), str):
                    found = _fetch(client, f"/api/v1/namespaces/{namespace}/configmaps/{cm['name']}", timeout_s)
                    if found is not None:
                        related.append(_typed(found, "ConfigMap", "v1"))
        for context_plural in NAMESPACE_CONTEXT:
            related += _listed(client, context_plural, namespace, timeout_s)
        for context_plural in CLUSTER_CONTEXT:
            related += _listed(client, context_plural, None, timeout_s)
    finally:
        client.close()
    return obj, related


def scan_workload(
    kind: str,
    namespace: str,
    name: str,
    source: ClusterSource,
    frameworks: Sequence[str] | str | None = None,
    controls: Sequence[str] | str | None = None,
    *,
    omit_raw_resources: bool = False,
    inputs: ControlInputs | None = None,
    exceptions: Exceptions | None = None,
    timeout_s: float = 60.0,
) -> dict[str, Any]:
    """The v2 report for one object, judged with its context."""
    from mcp_kscan.engine.context import ScanContext
    from mcp_kscan.engine.frameworks import resolve
    from mcp_kscan.engine.report import build_report
    from mcp_kscan.engine.scan import apply_exceptions, evaluate_one
    from mcp_kscan.engine.loader import LoadError

    # Unknown names fail before any network call.
    selection = replace(resolve(frameworks, controls, inputs), exceptions=exceptions)
    obj, related = fetch_workload(kind, namespace, name, source, timeout_s=timeout_s)
    target_res = make_resource(obj, cluster=True)
    ctx = ScanContext.build([target_res, *(make_resource(o, cluster=True) for o in related)], selection.inputs)
    by_kind: dict[str, list[Any]] = {}
    for c in selection.controls:
        for k in c.kinds:
            by_kind.setdefault(k, []).append(c)
    problems: list[LoadError] = []
    ctx_name = current_context(source)
    if exceptions is not None:
        exceptions.cluster = ctx_name  # designators' "cluster" attribute is the context's name, as in cluster scans
    verdicts = apply_exceptions(target_res, evaluate_one(target_res, ctx, by_kind, problems), exceptions)
    target = ScanTarget("cluster", cluster_name=ctx_name, context=ctx_name, include_namespaces=[namespace],
                        errors=[str(p) for p in problems])
    return build_report(selection, [target_res], [verdicts], target, omit_raw_resources=omit_raw_resources)
