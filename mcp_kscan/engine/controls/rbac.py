"""RBAC checks: what a RoleBinding/ClusterRoleBinding lets its subjects do.

Kubescape judges a (subject, binding, role) triple; we judge the binding, which names both the
subjects and the role, resolving the role among the scanned objects (plus the built-in
``cluster-admin``). A binding whose role we cannot see is not judged (None), never guessed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mcp_kscan.engine.context import ScanContext
from mcp_kscan.engine.controls.base import PASSED, YOUR_VALUE, Check, Verdict, fail
from mcp_kscan.engine.model import Resource, list_at


def _as_list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _grants(rule: dict[str, Any], verbs: Iterable[str], resources: Iterable[str], groups: Iterable[str]) -> bool:
    """Does one PolicyRule allow any of ``verbs`` on any of ``resources`` in any of ``groups``?"""
    rule_verbs = _as_list(rule.get("verbs"))
    rule_resources = _as_list(rule.get("resources"))
    rule_groups = _as_list(rule.get("apiGroups"))
    if not ("*" in rule_verbs or any(v in rule_verbs for v in verbs)):
        return False
    if not ("*" in rule_groups or any(g in rule_groups for g in groups)):
        return False
    for wanted in resources:
        base = wanted.split("/", 1)[0]
        if "*" in rule_resources or wanted in rule_resources or f"{base}/*" in rule_resources:
            return True
    return False


def _rbac_check(description: str, verbs: tuple[str, ...], resources: tuple[str, ...],
                groups: tuple[str, ...] = ("", "*")) -> Check:
    """A check failing bindings whose role allows ``verbs`` on ``resources``."""

    def check(res: Resource, ctx: ScanContext) -> Verdict:
        rules = ctx.role_rules(res)
        if rules is None:
            return None
        bad = [i for i, rule in enumerate(rules) if _grants(rule, verbs, resources, groups)]
        if not bad:
            return PASSED
        ref = res.obj.get("roleRef") or {}
        subjects = list_at(res.obj, "subjects")
        failed = ["roleRef.name"] + [f"subjects[{k}]" for k in range(len(subjects))]
        return fail(failed, [("roleRef.name", YOUR_VALUE)],
                    f"{ref.get('kind')} {ref.get('name')!r} (rules {bad}) can {description}")

    return check


exec_into_container = _rbac_check("exec into containers", ("create", "*"), ("pods/exec",))  # C-0002
data_destruction = _rbac_check(  # C-0007
    "delete workloads and data", ("delete", "deletecollection"),
    ("secrets", "pods", "services", "deployments", "replicasets", "daemonsets", "statefulsets",
     "jobs", "cronjobs"),
    ("", "*", "apps", "batch"),
)
list_secrets = _rbac_check("read secrets", ("get", "list", "watch"), ("secrets",))  # C-0015
delete_events = _rbac_check("delete events", ("delete", "deletecollection"), ("events",),
                            ("", "*", "events.k8s.io"))  # C-0031
port_forward = _rbac_check("port-forward into pods", ("create",), ("pods/portforward",))  # C-0063
impersonation = _rbac_check("impersonate users", ("impersonate",),
                            ("users", "groups", "serviceaccounts", "uids"),
                            ("", "*", "authentication.k8s.io"))  # C-0065
create_pods = _rbac_check("create pods", ("create",), ("pods",), ("", "*"))  # C-0188


def administrative_role(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0035: the role allows every verb on every resource (cluster-admin or its twin)."""
    rules = ctx.role_rules(res)
    if rules is None:
        return None
    for i, rule in enumerate(rules):
        if "*" in _as_list(rule.get("verbs")) and "*" in _as_list(rule.get("resources")):
            ref = res.obj.get("roleRef") or {}
            subjects = list_at(res.obj, "subjects")
            return fail(["roleRef.name"] + [f"subjects[{k}]" for k in range(len(subjects))],
                        [("roleRef.name", YOUR_VALUE)],
                        f"{ref.get('kind')} {ref.get('name')!r} grants every verb on every resource")
    return PASSED


def dashboard_binding(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0014: a binding grants a role to the Kubernetes dashboard's service account."""
    subjects = list_at(res.obj, "subjects")
    for k, s in enumerate(subjects):
        if isinstance(s, dict) and s.get("kind") == "ServiceAccount" and s.get("name") == "kubernetes-dashboard":
            return fail([f"subjects[{k}]"], [(f"subjects[{k}]", "")], "binds the kubernetes-dashboard service account")
    return PASSED


def wildcard_role(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0187: a Role/ClusterRole uses ``*`` in verbs, resources or apiGroups."""
    rules = list_at(res.obj, "rules")
    failed = []
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict):
            continue
        for key in ("apiGroups", "resources", "verbs"):
            for j, v in enumerate(_as_list(rule.get(key))):
                if v == "*":
                    failed.append(f"rules[{i}].{key}[{j}]")
    if not failed:
        return PASSED
    return fail(failed, [(p, YOUR_VALUE) for p in failed], f"{res.kind} {res.name!r} uses wildcards")
