"""RBAC controls: what a RoleBinding/ClusterRoleBinding lets its subjects do (regolibrary v2.0.33).

Kubescape judges "subject vectors": a subject with the binding that names it and the role the
binding grants. The engine judges the binding (it names both the subjects and the role) and
resolves the role among the scanned objects (plus the built-in ``cluster-admin``); a binding
whose role is not visible is not judged (None), never guessed. A binding without subjects has
no subject vector, so it passes.

Most rules are one table row: a role rule matches when one of its verbs, one of its apiGroups
and one of its resources are each *literally* in the row's lists (the rules compare strings;
``*`` matches only where a row lists ``*``).
"""

from __future__ import annotations

from typing import Any

from mcp_kscan.engine.context import ScanContext
from mcp_kscan.engine.controls.base import PASSED, Check, Verdict, fail
from mcp_kscan.engine.model import Resource
from mcp_kscan.engine.controls.base import as_dict as _dict

Grant = tuple[frozenset[str], frozenset[str], frozenset[str]]
"""(verbs, apiGroups, resources): a role rule matches when it shares one of each."""


def _g(verbs: tuple[str, ...], groups: tuple[str, ...], resources: tuple[str, ...]) -> Grant:
    return frozenset(verbs), frozenset(groups), frozenset(resources)


CORE = ("", "*")
# rule name -> the grants that make a binding fail (any of them).
RBAC_RULES: dict[str, tuple[Grant, ...]] = {
    "exec-into-container-v1": (_g(("create", "*"), CORE, ("pods/exec", "pods/*", "*")),),
    "rule-excessive-delete-rights-v1": (_g(
        ("delete", "deletecollection", "*"), ("", "*", "apps", "batch"),
        ("secrets", "pods", "services", "deployments", "replicasets", "daemonsets", "statefulsets",
         "jobs", "cronjobs", "*")),),
    "rule-can-list-get-secrets-v1": (_g(("get", "list", "watch", "*"), CORE, ("secrets", "*")),),
    "rule-can-delete-k8s-events-v1": (_g(("delete", "deletecollection", "*"), CORE, ("events", "*")),),
    "rule-can-portforward-v1": (_g(("create", "*"), CORE, ("pods/portforward", "pods/*", "*")),),
    "rule-can-impersonate-users-groups-v1": (_g(
        ("impersonate", "*"), CORE, ("users", "serviceaccounts", "groups", "uids", "*")),),
    "rule-can-create-pod": (_g(("create", "*"), CORE, ("pods", "*")),),
    "rule-can-update-configmap-v1": (_g(("update", "patch", "*"), CORE, ("configmaps", "*")),),
    "rule-list-all-cluster-admins-v1": (_g(("*",), CORE, ("*",)),),
    "rule-can-bind-escalate": (
        _g(("bind", "*"), ("rbac.authorization.k8s.io", "*"), ("clusterroles", "roles", "*")),
        _g(("escalate", "*"), ("rbac.authorization.k8s.io", "*"), ("clusterroles", "roles", "*")),
    ),
    "rule-can-create-pv": (_g(("create", "*"), CORE, ("persistentvolumes", "*")),),
    "rule-can-access-proxy-subresource": (_g(("get", "create", "connect", "*"), CORE, ("nodes/proxy", "*")),),
    "rule-can-approve-cert-signing-request": (_g(
        ("update", "*"), ("certificates.k8s.io", "*"), ("certificatesigningrequests/approval", "*")),),
    "rule-can-modify-admission-webhooks": (_g(
        ("create", "update", "delete", "*"), ("admissionregistration.k8s.io", "*"),
        ("validatingwebhookconfigurations", "mutatingwebhookconfigurations", "*")),),
    "rule-can-create-service-account-token": (_g(("create", "*"), CORE, ("serviceaccounts/token", "*")),),
}


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def subjects(binding: Resource) -> list[dict[str, Any]]:
    value = binding.obj.get("subjects")
    return [s for s in value if isinstance(s, dict)] if isinstance(value, list) else []


def rule_matches(rule: dict[str, Any], grant: Grant) -> bool:
    verbs, groups, resources = grant
    return (not verbs.isdisjoint(_strings(rule.get("verbs")))
            and not groups.isdisjoint(_strings(rule.get("apiGroups")))
            and not resources.isdisjoint(_strings(rule.get("resources"))))


def _binding_paths(binding: Resource) -> list[str]:
    return [f"subjects[{k}]" for k in range(len(subjects(binding)))] + ["roleRef.name"]


def grant_check(rule_name: str, description: str) -> Check:
    """A check failing bindings (with subjects) whose role has a rule matching ``rule_name``'s grants."""
    grants = RBAC_RULES[rule_name]

    def check(res: Resource, ctx: ScanContext) -> Verdict:
        rules = ctx.role_rules(res)
        if rules is None:
            return None
        if not subjects(res):
            return PASSED
        bad = [i for i, rule in enumerate(rules) if any(rule_matches(rule, g) for g in grants)]
        if not bad:
            return PASSED
        ref = _dict(res.obj.get("roleRef"))
        return fail(_binding_paths(res), [],
                    f"{ref.get('kind')} {ref.get('name')!r} (rules {bad}) lets its subjects {description}")

    return check


exec_into_container = grant_check("exec-into-container-v1", "exec into containers")  # C-0002
data_destruction = grant_check("rule-excessive-delete-rights-v1", "delete workloads and data")  # C-0007
list_secrets = grant_check("rule-can-list-get-secrets-v1", "read secrets")  # C-0015, C-0186
delete_events = grant_check("rule-can-delete-k8s-events-v1", "delete events")  # C-0031
administrative_role = grant_check("rule-list-all-cluster-admins-v1", "do anything (cluster-admin)")  # C-0035, C-0187
update_configmaps = grant_check("rule-can-update-configmap-v1", "update ConfigMaps (CoreDNS)")  # C-0037
port_forward = grant_check("rule-can-portforward-v1", "port-forward into pods")  # C-0063
impersonation = grant_check("rule-can-impersonate-users-groups-v1", "impersonate users")  # C-0065
create_pods = grant_check("rule-can-create-pod", "create pods")  # C-0188
bind_escalate = grant_check("rule-can-bind-escalate", "bind or escalate roles")  # C-0191
create_pv = grant_check("rule-can-create-pv", "create persistent volumes")  # C-0278
node_proxy = grant_check("rule-can-access-proxy-subresource", "use the nodes/proxy sub-resource")  # C-0279
approve_csr = grant_check("rule-can-approve-cert-signing-request", "approve certificate signing requests")  # C-0280
modify_webhooks = grant_check("rule-can-modify-admission-webhooks", "modify admission webhooks")  # C-0281
create_sa_token = grant_check("rule-can-create-service-account-token", "create service account tokens")  # C-0282


def _either(*checks: Check) -> Check:
    """A control with several binding rules: fails when any rule does."""

    def check(res: Resource, ctx: ScanContext) -> Verdict:
        verdicts = [c(res, ctx) for c in checks]
        for v in verdicts:
            if v is not None and v is not PASSED:
                return v
        return PASSED if any(v is PASSED for v in verdicts) else None

    return check


bind_escalate_impersonate = _either(bind_escalate, impersonation)  # C-0191


def dashboard_binding(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0014 (rule-access-dashboard-subject-v1): a role named kubernetes-dashboard is bound to a
    subject other than the dashboard's own service account."""
    if ctx.role_rules(res) is None:
        return None
    ref = _dict(res.obj.get("roleRef"))
    if ref.get("name") != "kubernetes-dashboard":
        return PASSED
    others = [k for k, s in enumerate(subjects(res)) if s.get("name") != "kubernetes-dashboard"]
    if not others:
        return PASSED
    return fail([f"subjects[{k}]" for k in others] + ["roleRef.name"], [],
                "binds the kubernetes-dashboard role to other subjects")


def service_account_bound(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0053 (access-container-service-account-v1): a service account is bound to a role."""
    if ctx.role_rules(res) is None:
        return None
    sas = [k for k, s in enumerate(subjects(res)) if s.get("kind") == "ServiceAccount"]
    if not sas:
        return PASSED
    return fail([f"subjects[{k}]" for k in sas], [], "grants a role to service accounts")


def anonymous_binding(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0262: a binding grants a role to system:anonymous or system:unauthenticated."""
    bad = [k for k, s in enumerate(subjects(res)) if s.get("name") in ("system:anonymous", "system:unauthenticated")]
    if not bad:
        return PASSED
    return fail([f"subjects[{k}]" for k in bad], [], "gives permissions to anonymous users")


