"""Objects Kubernetes would refuse for the types of their fields, caught before any control runs.

The API server decodes every object into typed Go structs, so ``namespace: [a]``,
``volumes: 5`` or ``containers: {}`` never reach a cluster: ``kubectl apply`` fails with
"cannot unmarshal ...". The engine refuses the same documents with a per-document warning
instead of letting a control trip over them. Only the fields nearly every control reads are
checked (metadata and the pod spec's lists), so the check is a few dictionary lookups; deeper
oddities are caught at the evaluation boundary (``scan.evaluate_one``).
"""

from __future__ import annotations

from typing import Any

from mcp_kscan.engine.model import POD_SPEC_PATHS

_POD_SPEC_LISTS = ("containers", "initContainers", "ephemeralContainers", "volumes", "tolerations",
                   "imagePullSecrets", "hostAliases")
_POD_SPEC_MAPPINGS = ("securityContext", "nodeSelector")
_CONTAINER_LISTS = ("ports", "env", "envFrom", "volumeMounts", "command", "args")
_CONTAINER_MAPPINGS = ("securityContext", "resources", "livenessProbe", "readinessProbe", "startupProbe")


def _type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)


def _expect(value: Any, want: type, where: str) -> str | None:
    if value is None or isinstance(value, want):
        return None
    return f"{where}: expected {'a mapping' if want is dict else 'a list' if want is list else 'a string'}, " \
           f"got {_type_name(value)}"


def shape_problem(obj: dict[str, Any]) -> str | None:
    """Why Kubernetes would refuse this object for a field's type, or None."""
    meta = obj.get("metadata")
    problem = _expect(meta, dict, "metadata")
    if problem or meta is None:
        return problem
    for key in ("name", "namespace", "generateName"):
        if problem := _expect(meta.get(key), str, f"metadata.{key}"):
            return problem
    for key in ("labels", "annotations"):
        if problem := _expect(meta.get(key), dict, f"metadata.{key}"):
            return problem
    keys = POD_SPEC_PATHS.get(obj.get("kind", ""))
    if keys is None:
        return None
    node: Any = obj
    for i, key in enumerate(keys):
        node = node.get(key)
        if problem := _expect(node, dict, ".".join(keys[: i + 1])):
            return problem
        if node is None:
            return None
    return _pod_spec_problem(node, ".".join(keys))


def _pod_spec_problem(spec: dict[str, Any], where: str) -> str | None:
    for key in _POD_SPEC_MAPPINGS:
        if problem := _expect(spec.get(key), dict, f"{where}.{key}"):
            return problem
    for key in _POD_SPEC_LISTS:
        items = spec.get(key)
        if problem := _expect(items, list, f"{where}.{key}"):
            return problem
        for i, item in enumerate(items or ()):
            if problem := _expect(item, dict, f"{where}.{key}[{i}]"):
                return problem
            if key in ("containers", "initContainers", "ephemeralContainers"):
                if problem := _container_problem(item, f"{where}.{key}[{i}]"):
                    return problem
    return None


def _container_problem(container: dict[str, Any], where: str) -> str | None:
    for key in _CONTAINER_MAPPINGS:
        if problem := _expect(container.get(key), dict, f"{where}.{key}"):
            return problem
    for key in _CONTAINER_LISTS:
        if problem := _expect(container.get(key), list, f"{where}.{key}"):
            return problem
    for key in ("name", "image"):
        if problem := _expect(container.get(key), str, f"{where}.{key}"):
            return problem
    return None
