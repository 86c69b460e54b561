"""Attack paths through several objects (regolibrary v2.0.33): a workload whose service account
holds powerful roles, a workload a Service exposes on SSH ports. All the objects on the path must
be among the scanned ones, as in the rules.
"""

from __future__ import annotations

from typing import Any

from mcp_kscan.engine.context import ScanContext
from mcp_kscan.engine.controls.base import PASSED, Check, Verdict, fail
from mcp_kscan.engine.controls.rbac import Grant, rule_matches
from mcp_kscan.engine.model import Resource


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    return _dict(obj.get("metadata"))


def _same_namespace(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return str(_meta(a).get("namespace") or "default") == str(_meta(b).get("namespace") or "default")


ADMIN: tuple[Grant, ...] = ((frozenset({"*"}), frozenset({"", "*"}), frozenset({"*"})),)
TAKEOVER: tuple[Grant, ...] = (
    (frozenset({"create", "update", "patch", "*"}), frozenset({"", "*"}), frozenset({"pods", "*"})),
    (frozenset({"get", "list", "watch", "*"}), frozenset({"", "*"}), frozenset({"secrets", "*"})),
)


def _workload_with_roles(grants: tuple[Grant, ...], match_role_kind: bool, what: str) -> Check:
    """The pods mount the token of a scanned service account that a scanned binding grants a
    scanned role holding one of ``grants``."""

    def check(res: Resource, ctx: ScanContext) -> Verdict:
        spec = res.pod_spec or {}
        setting = spec.get("automountServiceAccountToken")
        if setting is False:
            return PASSED
        name = spec.get("serviceAccountName") or "default"
        roles = [r.obj for kind in ("Role", "ClusterRole") for r in ctx.of_kind(kind)
                 if any(rule_matches(_dict(rule), g) for rule in _list(r.obj.get("rules")) for g in grants)]
        if not roles:
            return PASSED
        for sa_res in ctx.of_kind("ServiceAccount"):
            sa = sa_res.obj
            if _meta(sa).get("name") != name or not _same_namespace(sa, res.obj):
                continue
            if setting is None and sa.get("automountServiceAccountToken") is False:
                continue
            for kind in ("RoleBinding", "ClusterRoleBinding"):
                for b in ctx.of_kind(kind):
                    ref = _dict(b.obj.get("roleRef"))
                    if not any(ref.get("name") == _meta(role).get("name") and (not match_role_kind or ref.get("kind") == role.get("kind"))
                               for role in roles):
                        continue
                    for s in _list(b.obj.get("subjects")):
                        s = _dict(s)
                        if (s.get("kind") == "ServiceAccount" and s.get("name") == _meta(sa).get("name")
                                and "namespace" in _meta(sa) and s.get("namespace") == _meta(sa).get("namespace")):
                            return fail([], [], f"its service account {name!r} is bound to {what} ({kind} {b.name!r})")
        return PASSED

    return check


administrative_roles = _workload_with_roles(ADMIN, False, "an administrative role")  # C-0272
cluster_takeover_roles = _workload_with_roles(TAKEOVER, True, "a role that can take over the cluster")  # C-0267

SSH_PORTS = (22, 2222)


def _has_ssh_port(service: dict[str, Any]) -> bool:
    return any(_dict(p).get("port") in SSH_PORTS or _dict(p).get("targetPort") in SSH_PORTS
               for p in _list(_dict(service.get("spec")).get("ports")))


def ssh_exposed(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0042: a Service in the workload's namespace selects exactly its pod labels and exposes
    port 22 or 2222 (a Pod's pod-template-hash label is ignored)."""
    ns = _meta(res.obj).get("namespace")
    if ns is None:
        return PASSED
    if res.kind == "Pod":
        labels = _meta(res.obj).get("labels")
        if not isinstance(labels, dict):
            return PASSED
        labels = {k: v for k, v in labels.items() if k != "pod-template-hash"}
        path = "metadata.labels"
    else:
        template: Any = res.obj
        for key in res.pod_path.removesuffix("spec.").rstrip(".").split("."):
            template = _dict(template).get(key)
        labels = _dict(_dict(template).get("metadata")).get("labels")
        if labels is None:
            return PASSED
        path = res.pod_path.removesuffix("spec.") + "metadata.labels"
    for svc in ctx.of_kind("Service"):
        if _meta(svc.obj).get("namespace") == ns and _dict(svc.obj.get("spec")).get("selector") == labels and _has_ssh_port(svc.obj):
            return fail([path], [], f"Service {svc.name!r} exposes it on an SSH port")
    return PASSED
