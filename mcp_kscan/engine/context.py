"""What controls may know about the other objects in a scan.

Some controls look past one object: a workload's service account (C-0034), the network policies
that select its pods (C-0030, C-0260), the role a binding grants (C-0015, C-0035, ...). The
context indexes those few kinds once, after loading, so each check is a dictionary lookup.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mcp_kscan.engine.model import Resource, dict_at

# Built-in ClusterRoles every cluster has, for file scans whose bindings refer to them.
# Only cluster-admin is listed: its rules are exactly "everything", so the verdict is certain.
BUILTIN_CLUSTER_ROLES: dict[str, list[dict[str, Any]]] = {
    "cluster-admin": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
}


def selector_matches(selector: Any, labels: dict[str, Any]) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions); {} selects all."""
    if not isinstance(selector, dict):
        return selector is None  # a missing podSelector is invalid; treat as "selects all"
    match_labels = selector.get("matchLabels") or {}
    if isinstance(match_labels, dict):
        for key, value in match_labels.items():
            if str(labels.get(key)) != str(value) or key not in labels:
                return False
    for expr in selector.get("matchExpressions") or []:
        if not isinstance(expr, dict):
            continue
        key = expr.get("key")
        if not isinstance(key, str):
            key = ""  # no label has an empty key, as for a missing one
        op = expr.get("operator")
        values = [str(v) for v in (expr.get("values") or [])]
        present = key in labels
        if op == "In" and not (present and str(labels[key]) in values):
            return False
        if op == "NotIn" and present and str(labels[key]) in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


@dataclass
class NetworkPolicyView:
    namespace: str
    pod_selector: Any
    ingress: bool
    egress: bool


@dataclass
class ScanContext:
    """Indexes over the scanned objects, built once with ``ScanContext.build``."""

    service_accounts: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    """(effective namespace, name) → ServiceAccount object."""
    any_service_account: bool = False
    network_policies: dict[str, list[NetworkPolicyView]] = field(default_factory=lambda: defaultdict(list))
    roles: dict[tuple[str, str, str], list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    """(kind, effective namespace or "", name) → rules (definitions in several files are merged)."""

    @classmethod
    def build(cls, resources: Iterable[Resource]) -> ScanContext:
        ctx = cls()
        for res in resources:
            ctx.add(res)
        return ctx

    def add(self, res: Resource) -> None:
        kind = res.kind
        if kind == "ServiceAccount":
            self.any_service_account = True
            self.service_accounts[(res.effective_namespace, res.name)] = res.obj
        elif kind == "NetworkPolicy":
            spec = dict_at(res.obj, "spec")
            types = spec.get("policyTypes")
            if isinstance(types, list) and types:
                ingress, egress = "Ingress" in types, "Egress" in types
            else:  # Kubernetes' defaulting: Ingress always, Egress when egress rules exist
                ingress, egress = True, "egress" in spec
            self.network_policies[res.effective_namespace].append(
                NetworkPolicyView(res.effective_namespace, spec.get("podSelector", {}), ingress, egress)
            )
        elif kind in ("Role", "ClusterRole"):
            rules = res.obj.get("rules")
            ns = res.effective_namespace if kind == "Role" else ""
            if isinstance(rules, list):
                self.roles[(kind, ns, res.name)].extend(r for r in rules if isinstance(r, dict))
            else:
                self.roles.setdefault((kind, ns, res.name), [])

    def policies_selecting(self, res: Resource) -> list[NetworkPolicyView]:
        return [
            p for p in self.network_policies.get(res.effective_namespace, ())
            if selector_matches(p.pod_selector, res.pod_labels)
        ]

    def role_rules(self, binding: Resource) -> list[dict[str, Any]] | None:
        """The rules a binding grants, or None when its role is not among the scanned objects."""
        ref = binding.obj.get("roleRef")
        if not isinstance(ref, dict):
            return None
        kind, name = str(ref.get("kind") or ""), str(ref.get("name") or "")
        ns = binding.effective_namespace if kind == "Role" else ""
        key = (kind, ns, name)
        if key in self.roles:
            return self.roles[key]
        if kind == "ClusterRole" and name in BUILTIN_CLUSTER_ROLES:
            return BUILTIN_CLUSTER_ROLES[name]
        return None
