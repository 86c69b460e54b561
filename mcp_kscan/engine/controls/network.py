"""Network policy controls (C-0030, C-0054, C-0260) as regolibrary v2.0.33 writes them.

The rules count three policy kinds: ``NetworkPolicy``, ``CiliumNetworkPolicy`` and
``CiliumClusterwideNetworkPolicy``. Their matching is narrower than Kubernetes' own selector
semantics, and the engine follows the rules, not Kubernetes:

- a NetworkPolicy selects by ``podSelector.matchLabels`` only; an empty ``podSelector`` selects
  every pod of its namespace, and a selector with only ``matchExpressions`` selects nothing;
- a Cilium policy selects with ``endpointSelector`` of any entry of ``spec``/``specs``: matching
  ``matchLabels``, or an empty selector (no labels, no expressions) that selects everything;
  a clusterwide policy ignores namespaces;
- "same namespace" treats a missing namespace as ``default``.
"""

from __future__ import annotations

from typing import Any

from mcp_kscan.engine.context import ScanContext
from mcp_kscan.engine.controls.base import PASSED, Verdict, fail
from mcp_kscan.engine.model import Resource
from mcp_kscan.engine.controls.base import as_dict as _dict

NETWORK_POLICY_KINDS = frozenset({"NetworkPolicy", "CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy"})
# Kinds each rule judges (C-0030 leaves StatefulSet out; its rule lists only these).
C0030_KINDS = frozenset({"Pod", "Deployment", "ReplicaSet", "DaemonSet", "Job", "CronJob"})
C0260_KINDS = frozenset({"Pod", "Deployment", "ReplicaSet", "DaemonSet", "StatefulSet", "Job", "CronJob"})


def cilium_specs(policy: dict[str, Any]) -> list[dict[str, Any]]:
    specs = [policy["spec"]] if "spec" in policy else []
    more = policy.get("specs")
    if isinstance(more, list):
        specs.extend(more)
    return [s for s in specs if isinstance(s, dict)]


def _endpoint_selector_matches(spec: dict[str, Any], labels: dict[str, Any]) -> bool:
    if "endpointSelector" not in spec:
        return False
    selector = _dict(spec.get("endpointSelector"))
    match_labels = _dict(selector.get("matchLabels"))
    if match_labels:
        return all(k in labels and labels[k] == v for k, v in match_labels.items())
    return not selector.get("matchExpressions")


def _same_namespace(policy_ns: str, res: Resource) -> bool:
    return (policy_ns or "default") == res.effective_namespace


def _template_labels(res: Resource) -> dict[str, Any]:
    """The labels the rules match against: the Pod's own, or the pod template's."""
    if res.kind == "Pod":
        meta = _dict(res.obj.get("metadata"))
        return _dict(meta.get("labels"))
    return res.pod_labels


def _np_selects(policy: dict[str, Any], labels: dict[str, Any]) -> bool:
    spec = _dict(policy.get("spec"))
    if "podSelector" not in spec:  # the rules count nothing for a policy without one
        return False
    selector = spec.get("podSelector")
    if not selector:  # {}: every pod of the namespace
        return True
    if not isinstance(selector, dict) or "matchLabels" not in selector:
        return False
    match_labels = _dict(selector.get("matchLabels"))
    return all(k in labels and labels[k] == v for k, v in match_labels.items())


def connected(policy: dict[str, Any], res: Resource) -> bool:
    """Does the rule consider ``policy`` to apply to the pods of ``res``?"""
    kind = policy.get("kind")
    ns = str(_dict(policy.get("metadata")).get("namespace") or "")
    labels = _template_labels(res)
    if kind == "NetworkPolicy":
        return _same_namespace(ns, res) and _np_selects(policy, labels)
    if kind == "CiliumNetworkPolicy" and not _same_namespace(ns, res):
        return False
    if kind in ("CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy"):
        return any(_endpoint_selector_matches(s, labels) for s in cilium_specs(policy))
    return False


def restricts_traffic(policy: dict[str, Any]) -> bool:
    """C-0030's "ingress or egress policy": policyTypes names one, or a Cilium spec has rules."""
    if policy.get("kind") == "NetworkPolicy":
        types = _dict(policy.get("spec")).get("policyTypes")
        return isinstance(types, list) and ("Ingress" in types or "Egress" in types)
    return any(_truthy(s.get("ingress")) or _truthy(s.get("egress")) for s in cilium_specs(policy))


def _truthy(value: Any) -> bool:
    """Rego's truth for a bare reference: defined and not false."""
    return value is not None and value is not False


def ingress_and_egress_blocked(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0030: no network policy that selects the pods restricts ingress or egress."""
    selecting = [p for p in ctx.network_policy_objects if connected(p, res)]
    if any(restricts_traffic(p) for p in selecting):
        return PASSED
    why = "no network policy selects its pods" if not selecting else "its network policies restrict neither ingress nor egress"
    return fail([], [], f"{res.kind} {res.name!r}: {why}")


def missing_network_policy(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0260: no network policy selects the workload's pods."""
    if any(connected(p, res) for p in ctx.network_policy_objects):
        return PASSED
    return fail([], [], f"{res.kind} {res.name!r}: no network policy selects its pods")


def _ccnp_covers_cluster(policy: dict[str, Any]) -> bool:
    for spec in cilium_specs(policy):
        if "endpointSelector" not in spec:
            continue
        selector = _dict(spec.get("endpointSelector"))
        if selector.get("matchLabels") or selector.get("matchExpressions"):
            continue
        deny = _dict(spec.get("enableDefaultDeny"))
        if deny.get("ingress") is False and deny.get("egress") is False:
            continue
        if _truthy(spec.get("ingress")) or _truthy(spec.get("egress")):
            return True
    return False


def namespace_without_network_policy(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0054: a namespace no NetworkPolicy/CiliumNetworkPolicy names (a policy must state its
    namespace), unless a clusterwide Cilium policy selects every endpoint with rules."""
    for p in ctx.network_policy_objects:
        kind = p.get("kind")
        if kind in ("NetworkPolicy", "CiliumNetworkPolicy") and _dict(p.get("metadata")).get("namespace") == res.name:
            return PASSED
        if kind == "CiliumClusterwideNetworkPolicy" and _ccnp_covers_cluster(p):
            return PASSED
    return fail([], [], f"namespace {res.name!r}: no network policy is defined for it")
