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


def _problem(value: Any, want: type, where: str) -> str:
    return f"{where}: expected {'a mapping' if want is dict else 'a list' if want is list else 'a string'}, " \
           f"got {_type_name(value)}"


def _expect(value: Any, want: type, where: str) -> str | None:
    if value is None or isinstance(value, want):
        return None
    return _problem(value, want, where)


def shape_problem(obj: dict[str, Any]) -> str | None:
    """Why Kubernetes would refuse this object for a field's type, or None.

    Runs on every object read, and nearly every object is fine: each field's place is spelled
    out only when its type is wrong (formatting it for every field was most of this check's cost).
    """
    meta = obj.get("metadata")
    if meta is None:
        return None
    if not isinstance(meta, dict):
        return _problem(meta, dict, "metadata")
    for key in ("name", "namespace", "generateName"):
        value = meta.get(key)
        if value is not None and not isinstance(value, str):
            return _problem(value, str, f"metadata.{key}")
    for key in ("labels", "annotations"):
        value = meta.get(key)
        if value is not None and not isinstance(value, dict):
            return _problem(value, dict, f"metadata.{key}")
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
    return _pod_spec_problem(node, keys)


_CONTAINER_KEYS = frozenset({"containers", "initContainers", "ephemeralContainers"})


def _pod_spec_problem(spec: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in _POD_SPEC_MAPPINGS:
        value = spec.get(key)
        if value is not None and not isinstance(value, dict):
            return _problem(value, dict, f"{'.'.join(keys)}.{key}")
    for key in _POD_SPEC_LISTS:
        items = spec.get(key)
        if items is None:
            continue
        if not isinstance(items, list):
            return _problem(items, list, f"{'.'.join(keys)}.{key}")
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                return _expect(item, dict, f"{'.'.join(keys)}.{key}[{i}]")
            if key in _CONTAINER_KEYS and (problem := _container_problem(item)):
                return f"{'.'.join(keys)}.{key}[{i}].{problem}"
    return None


def _container_problem(container: dict[str, Any]) -> str | None:
    """The problem with one container, its place relative to the container."""
    for key in _CONTAINER_MAPPINGS:
        value = container.get(key)
        if value is not None and not isinstance(value, dict):
            return _problem(value, dict, key)
    for key in _CONTAINER_LISTS:
        value = container.get(key)
        if value is not None and not isinstance(value, list):
            return _problem(value, list, key)
    for key in ("name", "image"):
        value = container.get(key)
        if value is not None and not isinstance(value, str):
            return _problem(value, str, key)
    return None
