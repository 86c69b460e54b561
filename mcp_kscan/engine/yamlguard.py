"""Refuse YAML documents Kubernetes would refuse, before they are built into Python objects.

A YAML alias lets 500 bytes stand for a billion nodes (the "billion laughs"). The parser shares
the aliased node, so parsing is cheap, but every later step (controls walking the object, the
JSON report) expands it. Kubernetes' reader (go-yaml v2, under sigs.k8s.io/yaml) bounds this
by counting decoded nodes and the share of them reached through an alias, and refuses the
document with "document contains excessive aliasing". The same rule is applied here to the
composed node graph, in time proportional to its distinct nodes, not to the expansion.

Also refused, as Kubernetes refuses them:
- an anchor whose value contains its own alias ("anchor value contains itself");
- ``.nan`` and ``.inf``: sigs.k8s.io/yaml's JSON step cannot encode them
  (``json: unsupported value: NaN``), and neither can a strict JSON report. A float written
  too big for a double (``1.0e+999``) would become infinity too, and is refused the same way
  (go-yaml v2 would keep it as a string; either way it never reaches the report as a number).
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml

# go-yaml v2 decode.go: allowedAliasRatio and its two thresholds.
ALIAS_RATIO_RANGE_LOW = 400_000
ALIAS_RATIO_RANGE_HIGH = 4_000_000
MIN_ALIAS_COUNT = 100

EXCESSIVE_ALIASING = "document contains excessive aliasing (as Kubernetes refuses it); skipped"
SELF_ALIAS = "anchor value contains itself (a recursive alias); skipped"
NON_FINITE = "document holds .nan, .inf or a float out of range, which Kubernetes' JSON cannot represent; skipped"

_FLOAT_TAG = "tag:yaml.org,2002:float"
_NON_FINITE_TEXT = re.compile(r"\.(?:nan|NaN|NAN|inf|Inf|INF)\b")
_MAY_OVERFLOW = re.compile(r"[eE][-+]?[0-9_]{3}|[0-9_:]{300}")
"""A three-digit exponent, or a run of 300 digits: only such floats can exceed a double."""
_floats = yaml.constructor.SafeConstructor()


def allowed_alias_ratio(decoded: int) -> float:
    """The share of nodes that may come from aliases once ``decoded`` nodes were read (go-yaml v2)."""
    if decoded <= ALIAS_RATIO_RANGE_LOW:
        return 0.99
    if decoded >= ALIAS_RATIO_RANGE_HIGH:
        return 0.10
    span = ALIAS_RATIO_RANGE_HIGH - ALIAS_RATIO_RANGE_LOW
    return 0.99 - 0.89 * ((decoded - ALIAS_RATIO_RANGE_LOW) / span)


def excessive_aliasing(decoded: int, aliased: int) -> bool:
    """go-yaml v2's refusal rule: many aliased nodes, many nodes in all, and too high a share."""
    return (aliased > MIN_ALIAS_COUNT and decoded > ALIAS_RATIO_RANGE_LOW
            and aliased / decoded > allowed_alias_ratio(decoded))


def might_need_guard(text: str) -> bool:
    """Cheap pre-check: only text with an alias (``*``) or a non-finite float needs ``check_node``."""
    return "*" in text or _NON_FINITE_TEXT.search(text) is not None or _MAY_OVERFLOW.search(text) is not None


def _children(node: Any) -> list[Any]:
    if node.id == "sequence":
        return list(node.value)
    if node.id == "mapping":
        return [n for pair in node.value for n in pair]
    return []


def _non_finite(node: Any) -> bool:
    if node.id != "scalar" or node.tag != _FLOAT_TAG:
        return False
    if _NON_FINITE_TEXT.search(node.value) is not None:
        return True
    if _MAY_OVERFLOW.search(node.value) is None:
        return False
    try:
        return not math.isfinite(_floats.construct_yaml_float(node))
    except (ValueError, OverflowError):
        return False  # the constructor's own error, reported when the document is built


def check_node(root: Any) -> str | None:
    """Why this composed document must be refused, or None.

    ``root`` is a PyYAML node (``id`` is "scalar", "sequence" or "mapping"; ``value`` a string,
    a list of nodes, or a list of (key, value) node pairs; ``tag`` the resolved tag).

    One iterative post-order walk (deep documents cannot overflow the stack): a node met again
    after it was finished is an alias, and adds its whole expanded size to both counts.
    """
    expanded: dict[int, int] = {}
    on_path: set[int] = set()
    decoded = aliased = 0
    # Each frame: the node, its children, the next child's position, the size so far.
    stack: list[list[Any]] = [[root, _children(root), 0, 1]]
    on_path.add(id(root))
    while stack:
        frame = stack[-1]
        node, children, pos, _ = frame
        if pos < len(children):
            frame[2] = pos + 1
            child = children[pos]
            key = id(child)
            if key in on_path:
                return SELF_ALIAS
            done = expanded.get(key)
            if done is not None:
                frame[3] += done
                aliased += done
                decoded += done
                if excessive_aliasing(decoded, aliased):
                    return EXCESSIVE_ALIASING
                continue
            if child.id == "scalar":
                if _non_finite(child):
                    return NON_FINITE
                expanded[key] = 1
                frame[3] += 1
                decoded += 1
                continue
            on_path.add(key)
            stack.append([child, _children(child), 0, 1])
            continue
        stack.pop()
        on_path.discard(id(node))
        expanded[id(node)] = frame[3]
        decoded += 1
        if stack:
            stack[-1][3] += frame[3]
    if _non_finite(root):
        return NON_FINITE
    if excessive_aliasing(decoded, aliased):
        return EXCESSIVE_ALIASING
    return None
