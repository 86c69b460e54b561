"""What controls may know about the other objects in a scan.

Some controls look past one object: a workload's service account (C-0034), the network policies
that select its pods (C-0030, C-0260), the role a binding grants (C-0015, C-0035, ...). The
context indexes those few kinds once, after loading, so each check is a dictionary lookup.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from mcp_kscan.engine.inputs import ControlInputs, default_inputs
from mcp_kscan.engine.model import POD_SPEC_PATHS, WORKLOAD_KINDS, Resource

# Kinds other objects' controls look up: a parallel scan ships only these between workers.
CONTEXT_KINDS = frozenset({
    "ServiceAccount", "Role", "ClusterRole", "Namespace", "PodSecurityPolicy", "Service", "ConfigMap",
    "Secret", "PersistentVolumeClaim", "Ingress", "HorizontalPodAutoscaler", "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration", "NetworkPolicy", "CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy",
    "RoleBinding", "ClusterRoleBinding", "ControlPlaneInfo",
} | WORKLOAD_KINDS)
# Workloads are context for the controls on Services, policies and autoscalers; a parallel scan
# ships only what those read of them (context_object), not whole pod specs.
_STUB_SPEC_KEYS = ("selector",)
# Other objects are read in the context by their namespace and name (usage._names: mounted
# ConfigMaps and Secrets exist), and a ConfigMap also for this one key (C-0059's
# allow-snippet-annotations); a stub of those ships without the rest of its data.
_STUB_DATA_KEYS: dict[str, tuple[str, ...]] = {"ConfigMap": ("allow-snippet-annotations",), "Secret": ()}
# No control reads a context object's annotations (exceptions are the evaluated object's own):
# a stub leaves them out (kubectl's last-applied-configuration is often most of an object).
_STUB_METADATA_DROPPED = "annotations"
T = TypeVar("T")
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
    _memo: dict[Any, Any] = field(default_factory=dict, repr=False)
    _input_cache: dict[str, tuple[ControlInputs, tuple[str, ...]]] = field(default_factory=dict, repr=False)

    def memo(self, key: Any, build: Callable[[], T]) -> T:
        """An index derived from the context, built on first use: a check that looks across objects
        (services by namespace, roles with a grant, ...) pays for it once per scan, not per resource."""
        if key not in self._memo:
            self._memo[key] = build()
        return cast(T, self._memo[key])

    def input(self, key: str) -> tuple[str, ...]:
        """A control input's list (checks ask for it once per object: it is built once per scan)."""
        cached = self._input_cache.get(key)
        if cached is None or cached[0] is not self.inputs:
            cached = (self.inputs, tuple(self.inputs.get(key, ())))
            self._input_cache[key] = cached
        return cached[1]

    def of_kind(self, kind: str) -> list[Resource]:
        return self.by_kind.get(kind, [])

    def workloads(self) -> list[Resource]:
        """Every scanned workload (Pod and the controllers), in kind order."""
        return [r for kind in sorted(WORKLOAD_KINDS) for r in self.by_kind.get(kind, ())]

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


def _stub_metadata(res: Resource) -> dict[str, Any]:
    meta = res.obj.get("metadata")
    if not isinstance(meta, dict):
        return {}
    if _STUB_METADATA_DROPPED not in meta:
        return meta
    return {k: v for k, v in meta.items() if k != _STUB_METADATA_DROPPED}


def context_object(res: Resource) -> dict[str, Any] | None:
    """What another worker of a parallel scan needs of ``res`` (every scan's context holds these,
    in one process too): the object for most context kinds; for ConfigMaps and Secrets a stub
    with the kind, metadata and the data keys controls read; for workloads a stub with the kind,
    metadata, selector and pod-template labels; else None. Stubs leave out the annotations."""
    if res.kind not in CONTEXT_KINDS:
        return None
    data_keys = _STUB_DATA_KEYS.get(res.kind)
    if data_keys is not None:
        data = res.obj.get("data")
        stub_data = {k: data[k] for k in data_keys if k in data} if isinstance(data, dict) else {}
        return {"apiVersion": res.obj.get("apiVersion"), "kind": res.kind, "metadata": _stub_metadata(res),
                "data": stub_data}
    if res.kind not in WORKLOAD_KINDS:
        return res.obj
    stub: dict[str, Any] = {"apiVersion": res.obj.get("apiVersion"), "kind": res.kind,
                            "metadata": _stub_metadata(res)}
    spec = res.obj.get("spec")
    keys = POD_SPEC_PATHS[res.kind]
    # Rebuild the path to the pod spec (empty) and its template's labels, so make_resource finds
    # the same pod labels in the stub as in the object.
    node: dict[str, Any] = {k: spec[k] for k in _STUB_SPEC_KEYS if isinstance(spec, dict) and k in spec}
    stub["spec"] = node
    for key in keys[1:]:
        node = node.setdefault(key, {})
    if res.kind != "Pod":
        template: dict[str, Any] = stub
        for key in keys[:-1]:
            template = template[key]
        template["metadata"] = {"labels": res.pod_labels}
    return stub
