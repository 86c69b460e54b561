"""RFC 6902 JSON Patches built from Kubescape's fix and delete paths, and applied to any tree.

A fix is first a list of edits in Kubescape's own path language (``spec.containers[0].x``); this
module turns them into a JSON Patch against the object as it is (an ``add`` of the whole missing
branch when parents are absent, a ``replace`` when the field exists, nothing when it already
holds the value), and applies a JSON Patch to a plain object or to a round-trip YAML tree alike.
The patch is the one truth: the YAML edit, the re-scan and the cluster's dry run all apply it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, MutableMapping, MutableSequence, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from mcp_kscan.locations import parse_field_path

Token = str | int
_INT = re.compile(r"^-?\d+$")


@dataclass(frozen=True, slots=True)
class Edit:
    """One change in Kubescape's path language: set ``path`` to ``value``, or delete ``path``."""

    op: Literal["set", "delete"]
    path: str
    value: Any = None


def typed_value(path: str, raw: Any) -> Any:
    """A fixPath value as Kubernetes wants it: ``"false"`` is a boolean, ``"1000"`` an integer,
    except under labels and annotations, whose values are always strings."""
    if not isinstance(raw, str):
        return raw
    tokens = parse_field_path(path)
    if len(tokens) >= 2 and tokens[-2] in ("labels", "annotations"):
        return raw
    if raw in ("true", "false"):
        return raw == "true"
    if _INT.fullmatch(raw):
        return int(raw)
    return raw


def pointer(tokens: Sequence[Token]) -> str:
    """RFC 6901: ``~`` is ``~0`` and ``/`` is ``~1`` (label keys hold slashes)."""
    return "".join("/" + str(t).replace("~", "~0").replace("/", "~1") for t in tokens)


def tokens_of(ptr: str) -> list[str]:
    if ptr == "":
        return []
    if not ptr.startswith("/"):
        raise PatchError(f"{ptr!r} is not a JSON pointer")
    return [t.replace("~1", "/").replace("~0", "~") for t in ptr[1:].split("/")]


class PatchError(ValueError):
    """A patch that does not fit the object (a path through a scalar, an index out of range)."""


def _nest(tokens: Sequence[Token], value: Any) -> Any:
    """The branch ``tokens`` leading to ``value`` (``[0]`` makes a list, a key a mapping)."""
    for token in reversed(tokens):
        value = [value] if isinstance(token, int) else {token: value}
    return value


def _ops_for(obj: Any, edit: Edit) -> list[dict[str, Any]]:
    tokens: list[Token] = parse_field_path(edit.path)
    if not tokens:
        return []
    current = obj
    for i, token in enumerate(tokens):
        last = i == len(tokens) - 1
        here = tokens[: i + 1]
        if isinstance(current, dict):
            key = str(token)
            if key not in current:
                if edit.op == "delete":
                    return []
                return [{"op": "add", "path": pointer(here), "value": _nest(tokens[i + 1:], edit.value)}]
            if last:
                if edit.op == "delete":
                    return [{"op": "remove", "path": pointer(here)}]
                if current[key] == edit.value and type(current[key]) is type(edit.value):
                    return []
                return [{"op": "replace", "path": pointer(here), "value": edit.value}]
            current = current[key]
        elif isinstance(current, list) and isinstance(token, int):
            if token < len(current):
                if last:
                    if edit.op == "delete":
                        return [{"op": "remove", "path": pointer(here)}]
                    if edit.value in current:
                        return []  # capabilities.drop already lists it
                    return [{"op": "add", "path": pointer([*tokens[:i], "-"]), "value": edit.value}]
                current = current[token]
                continue
            if edit.op == "delete":
                return []
            if last and edit.value in current:
                return []
            return [{"op": "add", "path": pointer([*tokens[:i], "-"]), "value": _nest(tokens[i + 1:], edit.value)}]
        else:
            # A scalar (or null) where the path needs a container: replace it with the branch.
            if edit.op == "delete":
                return []
            return [{"op": "replace" if i else "add", "path": pointer(tokens[:i]), "value": _nest(tokens[i:], edit.value)}]
    return []


def build_patch(obj: dict[str, Any], edits: Sequence[Edit]) -> list[dict[str, Any]]:
    """The JSON Patch that makes ``edits`` on ``obj`` (``obj`` itself is not changed).

    Sets come first in order; deletes after them, deepest list index first, so removing
    ``volumes[0]`` does not shift the ``volumes[1]`` removed next.
    """
    work = copy.deepcopy(obj)
    patch: list[dict[str, Any]] = []
    sets = [e for e in edits if e.op == "set"]
    deletes = sorted((e for e in edits if e.op == "delete"),
                     key=lambda e: [(0, t, "") if isinstance(t, int) else (1, 0, t) for t in parse_field_path(e.path)],
                     reverse=True)
    for edit in [*sets, *deletes]:
        for op in _ops_for(work, edit):
            apply_patch(work, [op])
            patch.append(op)
    return patch


def _resolve(tree: Any, tokens: Sequence[str]) -> Any:
    current = tree
    for token in tokens:
        if isinstance(current, MutableMapping):
            if token not in current:
                raise PatchError(f"no member {token!r}")
            current = current[token]
        elif isinstance(current, MutableSequence):
            if not token.isdigit() or int(token) >= len(current):
                raise PatchError(f"no index {token!r}")
            current = current[int(token)]
        else:
            raise PatchError(f"path goes through a {type(current).__name__}")
    return current


def apply_patch(tree: Any, patch: Sequence[dict[str, Any]],
                convert: Callable[[Any], Any] = copy.deepcopy) -> Any:
    """Apply ``add``/``remove``/``replace``/``test`` operations in place; ``convert`` turns each
    added value into the tree's own types (round-trip maps for a YAML tree). Returns the tree."""
    for op in patch:
        tokens = tokens_of(op["path"])
        if not tokens:
            raise PatchError("a patch of the whole document is not a fix")
        parent = _resolve(tree, tokens[:-1])
        last = tokens[-1]
        kind = op["op"]
        if kind == "test":
            if _resolve(tree, tokens) != op["value"]:
                raise PatchError(f"test failed at {op['path']}")
            continue
        if isinstance(parent, MutableMapping):
            if kind == "remove":
                if last not in parent:
                    raise PatchError(f"no member {last!r} to remove")
                del parent[last]
            elif kind in ("add", "replace"):
                if kind == "replace" and last not in parent:
                    raise PatchError(f"no member {last!r} to replace")
                parent[last] = convert(op["value"])
            else:
                raise PatchError(f"unsupported operation {kind!r}")
        elif isinstance(parent, MutableSequence):
            if last == "-" and kind == "add":
                parent.append(convert(op["value"]))
                continue
            if not last.isdigit() or int(last) > len(parent) or (kind != "add" and int(last) == len(parent)):
                raise PatchError(f"index {last!r} out of range")
            index = int(last)
            if kind == "remove":
                del parent[index]
            elif kind == "replace":
                parent[index] = convert(op["value"])
            elif kind == "add":
                parent.insert(index, convert(op["value"]))
            else:
                raise PatchError(f"unsupported operation {kind!r}")
        else:
            raise PatchError(f"{op['path']} goes through a {type(parent).__name__}")
    return tree


def prefixed(patch: Sequence[dict[str, Any]], prefix: Sequence[Token]) -> list[dict[str, Any]]:
    """The patch of an object, made a patch of the document holding it (an item of a List)."""
    if not prefix:
        return [dict(op) for op in patch]
    head = pointer(prefix)
    return [{**op, "path": head + op["path"]} for op in patch]
