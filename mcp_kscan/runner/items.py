"""The items table's rows: one finding or check each, in the order pages show them.

One definition of every column, whichever process computes it: the server from a parsed report
(``report_items``, in the store's thread), or the built-in engine's process from the entries it
writes (``finding_item`` and ``ranked``, see ``engine.digest``). A module of its own so that the
engine's workers import it without the store's database drivers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any

import orjson

from mcp_kscan.readers.kubescape_v2 import severity_rank
from mcp_kscan.reports import KubeBenchReport, KubescapeReport, resource_key

# Items are stored worst-first, so page one of the default view is what matters most.
_FINDING_STATUS_RANK = {"failed": 0, "skipped": 1, "passed": 2}
_CHECK_STATUS_RANK = {"FAIL": 0, "WARN": 1, "INFO": 2, "PASS": 3}

ItemKey = tuple[Any, ...]
Row = tuple[Any, ...]


def report_items(report: KubeBenchReport | KubescapeReport) -> Iterable[Row]:
    """Rows for the items table, worst first:
    (item_type, status, severity, control, ns, kind, node, json, resource_key, excepted, risk_rank).

    Findings follow the report's control order (``KubescapeReport.control_order``, the one risk
    order), failed before skipped before passed, so page one is what to fix first. The built-in
    engine's process computes the same rows with ``finding_item`` and ``ranked`` from the entries
    it writes (``engine.digest``), so the server never holds a big report's objects.
    """
    if isinstance(report, KubescapeReport):
        ranks = control_ranks(report.control_order)
        items = [ranked(finding_item(f.model_dump()), ranks) for f in report.findings]
        items.sort(key=itemgetter(0))
        for _, row in items:
            yield row
    else:
        checks = sorted(
            enumerate(report.checks), key=lambda ic: (_CHECK_STATUS_RANK.get(ic[1].status, 9), ic[0])
        )
        for _, c in checks:
            yield ("check", c.status, None, c.id, None, c.node_type, c.node, c.model_dump_json(), None, 0, None)


def finding_item(finding: Mapping[str, Any], key_of_resource: str | None = None) -> tuple[ItemKey, Row]:
    """(sort key, row) of one finding, given as ``KubescapeFinding``'s fields in plain data.

    The risk rank of its control is not known yet (it takes the whole scan's control order):
    the key holds the control id in its place and the row None, until ``ranked``. The row's
    JSON is the model's own (``model_dump_json``'s text; a test holds them equal).
    ``key_of_resource``: its resource's ``resource_key`` when the caller has it already (every
    finding of a resource shares it)."""
    r = finding["resource"]
    status, severity, cid = finding["status"], finding["severity"], finding["control_id"]
    key = (_FINDING_STATUS_RANK.get(status, 9), cid, severity_rank(severity), cid, r["namespace"] or "",
           r["kind"] or "", r["name"] or "", r["file"] or "")
    row = ("finding", status, severity, cid, r["namespace"], r["kind"], None, orjson.dumps(finding).decode(),
           key_of_resource if key_of_resource is not None else resource_key(r["kind"], r["namespace"], r["name"], r["file"]),
           int(finding["excepted"]), None)
    return key, row


def control_ranks(control_order: Sequence[str]) -> dict[str, int]:
    """Control id → its risk rank (``ranked``'s ``ranks``); unknown controls rank last (``len``)."""
    return {cid: i for i, cid in enumerate(control_order)}


def ranked(item: tuple[ItemKey, Row], ranks: Mapping[str, int]) -> tuple[ItemKey, Row]:
    """``finding_item``'s (key, row) with its control's risk rank in both: its place (after
    status) and the ``risk_rank`` column."""
    key, row = item
    rank = ranks.get(key[1], len(ranks))
    return (key[0], rank, *key[2:]), (*row[:-1], rank)
