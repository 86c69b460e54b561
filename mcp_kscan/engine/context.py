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

from mcp_kscan.engine.inputs import ControlInputs, default_inputs
from mcp_kscan.engine.model import Resource

# Kinds other objects' controls look up: a parallel scan ships only these between workers.
CONTEXT_KINDS = frozenset({
    "ServiceAccount", "Role", "ClusterRole", "Namespace", "PodSecurityPolicy", "Service", "ConfigMap",
    "Secret", "PersistentVolumeClaim", "Ingress", "HorizontalPodAutoscaler", "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration", "NetworkPolicy", "CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy",
    "RoleBinding", "ClusterRoleBinding",
})
NETWORK_POLICY_KINDS = frozenset({"NetworkPolicy", "CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy"})

# Built-in ClusterRoles every cluster has, for file scans whose bindings refer to them.
# Only cluster-admin is listed: its rules are exactly "everything", so the verdict is certain.
BUILTIN_CLUSTER_ROLES: dict[str, list[dict[str, Any]]] = {
    "cluster-admin": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
}


@dataclass
class ScanContext:
    """Indexes over the scanned objects, built once with ``ScanContext.build``."""

    service_accounts: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    """(effective namespace, name) → ServiceAccount object."""
    roles: dict[tuple[str, str, str], list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    """(kind, effective namespace or "", name) → rules (definitions in several files are merged)."""
    network_policy_objects: list[dict[str, Any]] = field(default_factory=list)
    """NetworkPolicy, CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy objects, as written."""
    by_kind: dict[str, list[Resource]] = field(default_factory=lambda: defaultdict(list))
    """Every scanned object of the CONTEXT_KINDS, by kind."""
    cloud_provider: str = ""
    """The cluster's cloud provider ("eks", "aks", "gke"); empty for manifest files, as in Kubescape."""
    inputs: ControlInputs = field(default_factory=default_inputs)
    """The control inputs (settings.postureControlInputs): defaults, or a --controls-config file's."""

    def input(self, key: str) -> tuple[str, ...]:
        return tuple(self.inputs.get(key, ()))

    def of_kind(self, kind: str) -> list[Resource]:
        return self.by_kind.get(kind, [])

    @classmethod
    def build(cls, resources: Iterable[Resource], inputs: ControlInputs | None = None) -> ScanContext:
        ctx = cls() if inputs is None else cls(inputs=inputs)
        for res in resources:
            ctx.add(res)
        return ctx

    def add(self, res: Resource) -> None:
        kind = res.kind
        if kind in CONTEXT_KINDS:
            self.by_kind[kind].append(res)
        if kind in NETWORK_POLICY_KINDS:
            self.network_policy_objects.append(res.obj)
        if kind == "ServiceAccount":
            self.service_accounts[(res.effective_namespace, res.name)] = res.obj
        elif kind in ("Role", "ClusterRole"):
            rules = res.obj.get("rules")
            ns = res.effective_namespace if kind == "Role" else ""
            if isinstance(rules, list):
                self.roles[(kind, ns, res.name)].extend(r for r in rules if isinstance(r, dict))
            else:
                self.roles.setdefault((kind, ns, res.name), [])

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
