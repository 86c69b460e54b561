"""Attack paths through several objects (regolibrary v2.0.33): a workload whose service account
holds powerful roles, a workload a Service exposes on SSH ports. All the objects on the path must
be among the scanned ones, as in the rules.
"""

from __future__ import annotations

from typing import Any

from mcp_kscan.engine.context import ScanContext
from mcp_kscan.engine.controls.base import PASSED, Check, Verdict, fail
from mcp_kscan.engine.controls.rbac import Grant, rule_matches
from mcp_kscan.engine.controls.workload import pod_template
from mcp_kscan.engine.model import Resource
from mcp_kscan.engine.controls.base import as_dict as _dict, as_list as _list, metadata_of as _meta


ADMIN: tuple[Grant, ...] = ((frozenset({"*"}), frozenset({"", "*"}), frozenset({"*"})),)
TAKEOVER: tuple[Grant, ...] = (
    (frozenset({"create", "update", "patch", "*"}), frozenset({"", "*"}), frozenset({"pods", "*"})),
    (frozenset({"get", "list", "watch", "*"}), frozenset({"", "*"}), frozenset({"secrets", "*"})),
)


def _powerful_bindings(ctx: ScanContext, grants: tuple[Grant, ...], match_role_kind: bool) -> dict[tuple[str, Any], str]:
    """(service account name, namespace) -> a binding that grants it a role holding ``grants``."""
    roles = {(r.kind, r.name) for kind in ("Role", "ClusterRole") for r in ctx.of_kind(kind)
             if any(rule_matches(_dict(rule), g) for rule in _list(r.obj.get("rules")) for g in grants)}
    names = {name for _, name in roles}
    out: dict[tuple[str, Any], str] = {}
    for kind in ("RoleBinding", "ClusterRoleBinding"):
        for b in ctx.of_kind(kind):
            ref = _dict(b.obj.get("roleRef"))
            if (ref.get("kind"), ref.get("name")) not in roles if match_role_kind else ref.get("name") not in names:
                continue
            for s in _list(b.obj.get("subjects")):
                s = _dict(s)
                if s.get("kind") == "ServiceAccount":
                    out.setdefault((str(s.get("name")), s.get("namespace")), f"{kind} {b.name!r}")
    return out


def _workload_with_roles(grants: tuple[Grant, ...], match_role_kind: bool, what: str) -> Check:
    """The pods mount the token of a scanned service account that a scanned binding grants a
    scanned role holding one of ``grants``."""

    def check(res: Resource, ctx: ScanContext) -> Verdict:
        spec = res.pod_spec or {}
        setting = spec.get("automountServiceAccountToken")
        if setting is False:
            return PASSED
        name = spec.get("serviceAccountName") or "default"
        sa = ctx.service_accounts.get((res.effective_namespace, str(name)))
        if sa is None or (setting is None and sa.get("automountServiceAccountToken") is False):
            return PASSED
        ns = _meta(sa).get("namespace")
        if ns is None:  # the rule compares the subject's namespace with the account's, which must be set
            return PASSED
        binding = ctx.memo(("powerful-bindings", what), lambda: _powerful_bindings(ctx, grants, match_role_kind)).get((str(name), ns))
        if binding is None:
            return PASSED
        return fail([], [], f"its service account {name!r} is bound to {what} ({binding})")

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
        template_path, template = pod_template(res)
        labels = _dict(_dict(template).get("metadata")).get("labels")
        if labels is None:
            return PASSED
        path = template_path + "metadata.labels"
    for svc in ctx.memo("ssh-services", lambda: _ssh_services(ctx)).get(ns, ()):
        if _dict(svc.obj.get("spec")).get("selector") == labels:
            return fail([path], [], f"Service {svc.name!r} exposes it on an SSH port")
    return PASSED


def _ssh_services(ctx: ScanContext) -> dict[Any, list[Resource]]:
    """Services with an SSH port, by their namespace as written."""
    out: dict[Any, list[Resource]] = {}
    for svc in ctx.of_kind("Service"):
        if _has_ssh_port(svc.obj):
            out.setdefault(_meta(svc.obj).get("namespace"), []).append(svc)
    return out
