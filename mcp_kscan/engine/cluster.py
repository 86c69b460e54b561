"""Scan a live cluster: list the kinds the controls read through the Kubernetes API.

The cluster comes from ``mcp_kscan.cluster`` (the operator's kubeconfig and a context, or
in-cluster): this module never chooses a kubeconfig. It uses the ``kubernetes`` client's
``ApiClient.call_api`` for plain list calls whose JSON we read ourselves: the
objects stay exactly as the API wrote them (camelCase, as in a manifest) and skip the client's
slow model classes. No ``kubectl`` subprocess.

Like Kubescape, objects owned by a controller we also list (a Deployment's ReplicaSets and
Pods, a CronJob's Jobs) are not judged twice: their owner is. ``managedFields`` are dropped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mcp_kscan.cluster import ClusterConfigError, ClusterSource, new_api_client, read_kubeconfig, safe_api_error
from mcp_kscan.engine.exceptions import Exceptions
from mcp_kscan.engine.inputs import ControlInputs
from mcp_kscan.engine.report import ScanTarget

# (API path prefix, plural, kind, apiVersion, namespaced)
LISTED_KINDS: tuple[tuple[str, str, str, str, bool], ...] = (
    ("/api/v1", "namespaces", "Namespace", "v1", False),
    ("/api/v1", "pods", "Pod", "v1", True),
    ("/api/v1", "serviceaccounts", "ServiceAccount", "v1", True),
    ("/api/v1", "services", "Service", "v1", True),
    ("/api/v1", "configmaps", "ConfigMap", "v1", True),
    ("/api/v1", "replicationcontrollers", "ReplicationController", "v1", True),
    ("/apis/apps/v1", "deployments", "Deployment", "apps/v1", True),
    ("/apis/apps/v1", "replicasets", "ReplicaSet", "apps/v1", True),
    ("/apis/apps/v1", "statefulsets", "StatefulSet", "apps/v1", True),
    ("/apis/apps/v1", "daemonsets", "DaemonSet", "apps/v1", True),
    ("/apis/batch/v1", "jobs", "Job", "batch/v1", True),
    ("/apis/batch/v1", "cronjobs", "CronJob", "batch/v1", True),
    ("/apis/networking.k8s.io/v1", "networkpolicies", "NetworkPolicy", "networking.k8s.io/v1", True),
    ("/apis/networking.k8s.io/v1", "ingresses", "Ingress", "networking.k8s.io/v1", True),
    ("/apis/rbac.authorization.k8s.io/v1", "roles", "Role", "rbac.authorization.k8s.io/v1", True),
    ("/apis/rbac.authorization.k8s.io/v1", "rolebindings", "RoleBinding", "rbac.authorization.k8s.io/v1", True),
    ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", "ClusterRole", "rbac.authorization.k8s.io/v1", False),
    ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", "ClusterRoleBinding", "rbac.authorization.k8s.io/v1", False),
)
# Owners whose children we skip because the owner itself is scanned.
SCANNED_OWNERS = frozenset({"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob",
                            "ReplicationController"})
PAGE_SIZE = 500


class ClusterError(RuntimeError):
    """The cluster could not be reached or refused a list; the message is one line."""


def _api_client(source: ClusterSource) -> Any:
    try:
        return new_api_client(source, pool_size=4)
    except ClusterConfigError as exc:
        raise ClusterError(str(exc)) from None


def _get(client: Any, path: str, query: list[tuple[str, Any]], timeout_s: float) -> tuple[int, bytes]:
    """One authenticated GET returning (status, raw body), for old and new client generations."""
    headers = {"Accept": "application/json"}
    if hasattr(client, "param_serialize"):  # kubernetes >= 31 (OpenAPI generator 7)
        method, url, header_params, body, _ = client.param_serialize(
            "GET", path, query_params=query, header_params=headers, auth_settings=["BearerToken"]
        )
        resp = client.call_api(method, url, header_params=header_params, body=body, _request_timeout=timeout_s)
        resp.read()
        return int(resp.status), resp.data
    resp = client.call_api(  # older generations
        path, "GET", query_params=query, header_params=headers, auth_settings=["BearerToken"],
        _preload_content=False, _return_http_data_only=True, _request_timeout=timeout_s,
    )
    return int(resp.status), resp.data


def _list(client: Any, path: str, timeout_s: float) -> Iterator[dict[str, Any]]:
    """Every item of a list call, following ``continue`` tokens page by page."""
    token: str | None = None
    while True:
        query: list[tuple[str, Any]] = [("limit", PAGE_SIZE)]
        if token:
            query.append(("continue", token))
        try:
            status, data = _get(client, path, query, timeout_s)
        except Exception as exc:  # noqa: BLE001 - ApiException, urllib3 errors, ...
            code = getattr(exc, "status", None)
            if code in (403, 404):  # not allowed to list this kind, or the API is not served
                return
            raise ClusterError(f"listing {path} failed: {safe_api_error(exc)}") from None
        if status in (403, 404):
            return
        if status >= 400:
            raise ClusterError(f"listing {path} failed: HTTP {status}")
        body = json.loads(data)
        list_kind = str(body.get("kind") or "")
        api_version = body.get("apiVersion")
        for item in body.get("items") or []:
            # List items come without kind/apiVersion; put them back as a manifest has them.
            if "kind" not in item and list_kind.endswith("List"):
                item["kind"] = list_kind[: -len("List")]
            if "apiVersion" not in item and api_version:
                item["apiVersion"] = api_version
            yield item
        token = (body.get("metadata") or {}).get("continue")
        if not token:
            return


def _owned_by_scanned(obj: dict[str, Any]) -> bool:
    owners = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(isinstance(o, dict) and o.get("kind") in SCANNED_OWNERS for o in owners)


def list_cluster_objects(
    source: ClusterSource,
    *,
    include_namespaces: Sequence[str] = (),
    exclude_namespaces: Sequence[str] = (),
    timeout_s: float = 60.0,
) -> list[dict[str, Any]]:
    """The objects the controls read, namespace filters applied.

    With a namespace filter, cluster-scoped objects (ClusterRoles, bindings) are left out, as
    Kubescape does, except the Namespace objects that pass the filter.
    """
    client = _api_client(source)
    include, exclude = set(include_namespaces), set(exclude_namespaces)
    filtered = bool(include or exclude)

    def wanted_ns(ns: str) -> bool:
        return (not include or ns in include) and ns not in exclude

    objects: list[dict[str, Any]] = []
    try:
        for prefix, plural, kind, api_version, namespaced in LISTED_KINDS:
            if namespaced and include:
                paths = [f"{prefix}/namespaces/{ns}/{plural}" for ns in sorted(include) if ns not in exclude]
            else:
                paths = [f"{prefix}/{plural}"]
            if not namespaced and filtered and kind != "Namespace":
                continue
            for path in paths:
                for obj in _list(client, path, timeout_s):
                    obj.setdefault("kind", kind)
                    obj.setdefault("apiVersion", api_version)
                    meta = obj.get("metadata") or {}
                    meta.pop("managedFields", None)
                    if kind == "Namespace":
                        if not wanted_ns(str(meta.get("name", ""))):
                            continue
                    elif namespaced and not wanted_ns(str(meta.get("namespace", ""))):
                        continue
                    if _owned_by_scanned(obj):
                        continue
                    objects.append(obj)
    finally:
        client.close()
    return objects


def current_context(source: ClusterSource) -> str:
    """The context name the report's metadata carries (the kubeconfig's current one by default)."""
    if source.context or source.in_cluster or not source.kubeconfig:
        return source.context or ""
    files = [Path(p) for p in source.kubeconfig.split(os.pathsep) if p]
    return read_kubeconfig(files).current_context or ""


def scan_cluster(
    source: ClusterSource,
    frameworks: Sequence[str] | str | None = None,
    controls: Sequence[str] | str | None = None,
    *,
    include_namespaces: Sequence[str] = (),
    exclude_namespaces: Sequence[str] = (),
    omit_raw_resources: bool = False,
    timeout_s: float = 60.0,
    inputs: ControlInputs | None = None,
    exceptions: Exceptions | None = None,
) -> dict[str, Any]:
    """List the cluster and return the v2 report (resourceIDs in Kubescape's cluster form)."""
    from mcp_kscan.engine.frameworks import resolve
    from mcp_kscan.engine.scan import scan_objects

    resolve(frameworks, controls)  # unknown names fail before any network call
    objects = list_cluster_objects(source, include_namespaces=include_namespaces,
                                   exclude_namespaces=exclude_namespaces, timeout_s=timeout_s)
    ctx_name = current_context(source)
    target = ScanTarget("cluster", cluster_name=ctx_name, context=ctx_name,
                        include_namespaces=list(include_namespaces), exclude_namespaces=list(exclude_namespaces))
    if exceptions is not None:
        exceptions.cluster = ctx_name  # designators' "cluster" attribute is the context's name
    return scan_objects(objects, frameworks, controls, cluster=True, target=target,
                        omit_raw_resources=omit_raw_resources, inputs=inputs, exceptions=exceptions)
