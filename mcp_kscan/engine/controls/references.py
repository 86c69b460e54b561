"""Objects that point at other objects which must exist and match (regolibrary v2.0.33): selectors
that select nothing, backends and scale targets that are not among the scanned objects.

Label selectors here follow these rules' own reading (matchLabels entries with a value, and the
four matchExpressions operators), which is close to Kubernetes' but decided by the rules.
"""

from __future__ import annotations

from typing import Any

from mcp_kscan.engine.context import ScanContext
from mcp_kscan.engine.controls.base import PASSED, Verdict, fail
from mcp_kscan.engine.controls.usage import workloads_by_namespace
from mcp_kscan.engine.controls.workload import truthy
from mcp_kscan.engine.model import Resource
from mcp_kscan.engine.controls.base import as_dict as _dict, as_list as _list


def _namespace(obj: dict[str, Any]) -> str:
    return str(_dict(obj.get("metadata")).get("namespace") or "default")


def _labels_mismatch(match_labels: dict[str, Any], labels: dict[str, Any]) -> bool:
    for k, v in match_labels.items():
        if truthy(v) and labels.get(k) != v:
            return True
    return False


def _expression_matches(expr: dict[str, Any], labels: dict[str, Any]) -> bool:
    op, key = expr.get("operator"), expr.get("key")
    values = _list(expr.get("values"))
    value = labels.get(key) if isinstance(key, str) else None
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return not truthy(value) or value not in values
    if op == "Exists":
        return truthy(value)
    if op == "DoesNotExist":
        return not truthy(value)
    return False


def selector_defined(selector: dict[str, Any]) -> bool:
    return bool(_dict(selector.get("matchLabels"))) or bool(_list(selector.get("matchExpressions")))


def _expressions_match(selector: dict[str, Any], labels: dict[str, Any]) -> bool:
    for e in _list(selector.get("matchExpressions")):
        if not _expression_matches(_dict(e), labels):
            return False
    return True


def selector_matches(selector: dict[str, Any], labels: dict[str, Any]) -> bool:
    if _labels_mismatch(_dict(selector.get("matchLabels")), labels):
        return False
    return _expressions_match(selector, labels)


def mismatching_selector(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0296: a controller's selector does not select its own pod template."""
    spec = _dict(res.obj.get("spec"))
    if res.kind == "ReplicationController":
        selector = {"matchLabels": _dict(spec.get("selector"))}
        labels_path, expressions_path = "spec.selector", "spec.selector"
    elif res.kind == "CronJob":
        selector = _dict(_dict(_dict(spec.get("jobTemplate")).get("spec")).get("selector"))
        labels_path, expressions_path = "spec.jobTemplate.spec.selector.matchLabels", "spec.jobTemplate.spec.selector.matchExpressions"
    else:
        selector = _dict(spec.get("selector"))
        labels_path, expressions_path = "spec.selector.matchLabels", "spec.selector.matchExpressions"
    if not selector_defined(selector):
        return PASSED
    labels = res.pod_labels
    if _labels_mismatch(_dict(selector.get("matchLabels")), labels):
        return fail([labels_path], [], "the selector does not match the pod template's labels")
    if not _expressions_match(selector, labels):  # the rest of ``selector_matches``
        return fail([expressions_path], [], "the selector does not match the pod template's labels")
    return PASSED


def _service_exists(ctx: ScanContext, name: Any, namespace: str) -> bool:
    services = ctx.memo(("names", "Service"), lambda: {(_namespace(s.obj), _dict(s.obj.get("metadata")).get("name"))
                                                         for s in ctx.of_kind("Service")})
    return (namespace, name) in services


def dangling_ingress_backend(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0298: an Ingress sends traffic to a Service that is not among the scanned objects."""
    spec = _dict(res.obj.get("spec"))
    ns = _namespace(res.obj)
    paths = []
    for i, rule in enumerate(_list(spec.get("rules"))):
        for j, path in enumerate(_list(_dict(_dict(rule).get("http")).get("paths"))):
            name = _dict(_dict(_dict(path).get("backend")).get("service")).get("name")
            if name is not None and not _service_exists(ctx, name, ns):
                paths.append(f"spec.rules[{i}].http.paths[{j}].backend.service.name")
    name = _dict(_dict(spec.get("defaultBackend")).get("service")).get("name")
    if name is not None and not _service_exists(ctx, name, ns):
        paths.append("spec.defaultBackend.service.name")
    return fail(paths, [], "a backend Service does not exist") if paths else PASSED


def dangling_network_policy(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0299: a NetworkPolicy's podSelector selects no scanned workload's pods."""
    selector = _dict(_dict(res.obj.get("spec")).get("podSelector"))
    if not selector_defined(selector):
        return PASSED
    if any(selector_matches(selector, w.pod_labels) for w in workloads_by_namespace(ctx).get(_namespace(res.obj), ())):
        return PASSED
    return fail(["spec.podSelector"], [], "the podSelector selects no workload")


SCALABLE_KINDS = frozenset({"Deployment", "StatefulSet", "ReplicaSet", "ReplicationController"})


def hpa_without_target(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0300: a HorizontalPodAutoscaler scales a workload that is not among the scanned objects."""
    ref = _dict(_dict(res.obj.get("spec")).get("scaleTargetRef"))
    kind = ref.get("kind", "")
    if kind not in SCALABLE_KINDS:
        return PASSED
    name, ns = ref.get("name", ""), _namespace(res.obj)
    if any(_dict(w.obj.get("metadata")).get("name", "") == name for w in workloads_by_namespace(ctx).get(ns, ()) if w.kind == kind):
        return PASSED
    return fail(["spec.scaleTargetRef"], [], f"the scale target {kind}/{name} does not exist")


def dangling_gateway_backend(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0302: a Gateway API route sends traffic to a Service that is not among the scanned objects."""
    ns = _namespace(res.obj)
    paths = []
    for i, rule in enumerate(_list(_dict(res.obj.get("spec")).get("rules"))):
        for j, ref in enumerate(_list(_dict(rule).get("backendRefs"))):
            ref = _dict(ref)
            if ref.get("kind", "Service") != "Service" or ref.get("group", "") != "":
                continue
            if "name" in ref and not _service_exists(ctx, ref.get("name"), str(ref.get("namespace", ns))):
                paths.append(f"spec.rules[{i}].backendRefs[{j}]")
    return fail(paths, [], "a backend Service does not exist") if paths else PASSED
