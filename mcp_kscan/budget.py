"""Keep what an agent receives small: cut long strings and lists until JSON fits a byte budget.

Agents have small context windows. A Kubescape report of a real cluster runs to megabytes and
a kube-bench check's ``actual_value`` can be a whole ``ps`` line, so every tool result passes
through here. Everything cut is marked, and the full data stays reachable by paging and by
the raw report resource.
"""

from __future__ import annotations

import json
from typing import Any

from mcp_kscan.reports import TRUNCATION_MARKER

DEFAULT_BUDGET_BYTES = 16_000
MAX_LIST_ITEMS = 10
# Successively shorter limits for long strings, tried until the result fits.
_STRING_LIMITS = (500, 300, 160, 80)


def json_size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, default=str).encode())


def _cut(value: Any, limit: int, list_limit: int, keep: frozenset[str] = frozenset()) -> Any:
    if isinstance(value, str):
        if len(value) > limit:
            return value[: max(0, limit - len(TRUNCATION_MARKER))] + TRUNCATION_MARKER
        return value
    if isinstance(value, dict):
        # Only strings, lists and dicts can change: the other values (most of a finding's) are
        # kept without a call, which was most of a page's cost (every limit walks every item).
        return {k: v if k in keep or not isinstance(v, (str, dict, list)) or (isinstance(v, str) and len(v) <= limit)
                else _cut(v, limit, list_limit, keep) for k, v in value.items()}
    if isinstance(value, list):
        if len(value) > list_limit and all(not isinstance(v, dict) for v in value):
            # Lists of scalars (failed paths) are cut with a marker entry; lists of objects are
            # pages and are shrunk by the caller, which knows how to keep paging consistent.
            return [_cut(v, limit, list_limit, keep) for v in value[:list_limit]] + [
                f"{TRUNCATION_MARKER} {len(value) - list_limit} more"
            ]
        return [_cut(v, limit, list_limit, keep) for v in value]
    return value


def fit(value: Any, budget: int = DEFAULT_BUDGET_BYTES, keep: frozenset[str] = frozenset()) -> tuple[Any, bool]:
    """``value`` with long strings/lists cut just enough to fit ``budget`` bytes of JSON.

    Returns the (possibly) cut value and whether anything was cut. A value that still does not
    fit at the shortest limit is returned at that limit; callers that page drop items instead.
    Values under a key in ``keep`` are never cut (locators: a cut file path points nowhere).
    """
    if json_size(value) <= budget:
        return value, False
    cut = value
    for limit in _STRING_LIMITS:
        cut = _cut(value, limit, MAX_LIST_ITEMS, keep)
        if json_size(cut) <= budget:
            return cut, True
    return cut, True
