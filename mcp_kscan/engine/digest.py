"""What the server needs from a finished built-in scan, computed in the engine's own process.

The server stores a scan's summary and one row per finding (``runner.items``). Read back out of
the report text, these cost more than the scan itself (the 10,000-resource bench corpus writes
an 85 MB report with 221,000 findings). So the engine computes them from what it holds while it
writes the report:

- each worker turns the ``resources[]`` and ``results[]`` entries of its slice into rows
  (``slice_items``) with the reader's and the store's own functions
  (``readers.kubescape_report.resource_fields``/``finding_fields``, ``runner.items.finding_item``):
  one definition of every field, whichever path computes it. It groups them by (status,
  control, severity), each group sorted by resource, and encodes each row as its line;
- the parent, which has ``summaryDetails`` and ``metadata``, reads the summary and the control
  order from them alone (``parse_report_head``), orders the groups and merges each group's
  sorted runs (``write_file_digest``): no row is decoded or encoded twice.

It writes the summary (``summary.json``) and the rows (``items.jsonl``: per group in the table's
order, a ``{"risk_rank": n}`` line, then its rows without that column, one JSON array a line)
beside the report, and for a file scan the SHA-256 of every file as the workers read it
(``hashes.json``, what ``fixes.hashes`` records; the server never reads the files again). The
server reads the small summary and streams the rows into the database (``item_rows``). Cluster
and workload scans build their report as a dict: ``write_digest`` reads that dict, never its text.

One difference from reading the report, in theory only: two objects of different workers with
the same ``resourceID`` (same kind, namespace and name, and a 32-bit hash collision of their
paths) each keep their own source here, where the reader gives both the later one's.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

import orjson

from mcp_kscan.engine.controls import Control
from mcp_kscan.readers.kubescape_report import (
    finding_fields,
    parse_report,
    parse_report_head,
    resource_fields,
)
from mcp_kscan.reports import (
    KubescapeReport,
    KubescapeSummary,
    resource_key,
    summarize_kubescape,
)
from mcp_kscan.runner.items import (
    Group,
    Row,
    Tail,
    control_ranks,
    finding_item,
    group_order,
    risk_rank,
)

SUMMARY_NAME, ITEMS_NAME, HASHES_NAME = "summary.json", "items.jsonl", "hashes.json"

Groups = dict[Group, list[tuple[Tail, bytes | memoryview]]]
"""Rows by group: (tail, the row's line) in the table's order."""


def controls_info(controls: Iterable[Control]) -> dict[str, dict[str, Any]]:
    """What ``summaryDetails`` says of each control that ``finding_fields`` may fall back on."""
    return {c.id: {"controlID": c.id, "name": c.name, "severity": c.severity, "scoreFactor": c.score_factor}
            for c in controls}


def slice_items(resource_entries: Iterable[Mapping[str, Any]], results: Iterable[Mapping[str, Any]],
                controls_info: Mapping[str, Mapping[str, Any]],
                shared: Iterable[Mapping[str, Any]] = ()) -> Groups:
    """The store's rows of one slice's ``resources[]`` and ``results[]`` entries, read as
    ``parse_report`` reads them, by group, each group in its order.

    ``controls_info``: the summary's controls by id (what ``finding_fields`` falls back on).
    ``shared``: control entries that many results hold as one object (a passed control's entry
    is the same for every resource); their fields are worked out once.
    """
    entries = {e["resourceID"]: e for e in resource_entries}
    once = {id(ctrl): finding_fields(ctrl, controls_info, None) for ctrl in shared}

    def items() -> Iterator[tuple[Group, Tail, Row]]:
        for result in results:
            rid = result["resourceID"]
            resource = resource_fields(entries.get(rid), rid)
            key = resource_key(resource["kind"], resource["namespace"], resource["name"], resource["file"])
            for ctrl in result["controls"]:
                fields = once.get(id(ctrl))
                # Replacing a key keeps its place: the same field order as finding_fields'.
                yield finding_item(finding_fields(ctrl, controls_info, resource) if fields is None
                                   else {**fields, "resource": resource}, key)

    return _grouped(items())


def _grouped(items: Iterable[tuple[Group, Tail, Row]]) -> Groups:
    """Rows as lines by group, each group sorted by tail (stably: ties keep the report's order)."""
    groups: Groups = {}
    for group, tail, row in items:
        lines = groups.get(group)
        if lines is None:
            lines = groups[group] = []
        lines.append((tail, orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)))
    for lines in groups.values():
        lines.sort(key=itemgetter(0))
    return groups


def write_file_digest(directory: Path, summary_details: Mapping[str, Any], metadata: Mapping[str, Any],
                      slices: Sequence[Groups], *, nothing_scanned: bool, file_hashes: Mapping[str, str]) -> None:
    """The digest of a file scan from its report's summary and metadata and its slices' rows
    (in report order: a group's ties keep it), with the SHA-256 of every file as the scan read it."""
    head = parse_report_head({"summaryDetails": summary_details, "metadata": metadata},
                             nothing_scanned=nothing_scanned)
    groups: Groups = {}
    for piece in slices:
        for group, lines in piece.items():
            groups.setdefault(group, []).extend(lines)
    for lines in groups.values():
        lines.sort(key=itemgetter(0))  # sorted runs, one per slice: a merge
    _write(directory, head, groups)
    _write_atomically(directory / HASHES_NAME, [orjson.dumps(dict(file_hashes))])


def write_digest(report: Mapping[str, Any], directory: Path) -> None:
    """The digest of a report held as a dict (cluster and workload scans: small)."""
    parsed = parse_report(report)
    _write(directory, parsed, _grouped(finding_item(f.model_dump()) for f in parsed.findings))


def _write(directory: Path, report: KubescapeReport, groups: Groups) -> None:
    """``items.jsonl``: the groups in the table's order, each a ``{"risk_rank": n}`` line (the
    rank its rows share) and its rows without that column, one JSON array a line."""
    ranks = control_ranks(report.control_order)

    def lines() -> Iterator[bytes | memoryview]:
        for group in sorted(groups, key=lambda g: group_order(g, ranks)):
            yield orjson.dumps({"risk_rank": risk_rank(group, ranks)}, option=orjson.OPT_APPEND_NEWLINE)
            for _, line in groups[group]:
                yield line

    _write_atomically(directory / ITEMS_NAME, lines())
    _write_atomically(directory / SUMMARY_NAME, [summarize_kubescape(report).model_dump_json().encode("utf-8")])


def _write_atomically(path: Path, pieces: Iterable[bytes | memoryview]) -> None:
    partial = path.with_name(path.name + ".part")
    with open(partial, "wb") as fh:
        fh.writelines(pieces)
    os.replace(partial, path)


def read_summary(directory: Path) -> KubescapeSummary:
    return KubescapeSummary.model_validate_json((directory / SUMMARY_NAME).read_bytes())


def read_file_hashes(directory: Path) -> dict[str, str] | None:
    """Path → SHA-256 of the bytes the scan read (``fixes.hashes``); None for a cluster scan."""
    path = directory / HASHES_NAME
    if not path.exists():
        return None
    found = orjson.loads(path.read_bytes())
    if not isinstance(found, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in found.items()):
        raise ValueError("hashes.json is not a map of paths to digests")
    return found


def item_rows(directory: Path) -> Iterator[Row]:
    """The rows, read lazily. The file is opened now: the scan's directory is removed before the
    manager stores the outcome, and an open file outlives its name."""
    fh = open(directory / ITEMS_NAME, "rb")  # noqa: SIM115 - closed by the generator below

    def rows() -> Iterator[Row]:
        rank = None
        with fh:
            for line in fh:
                if line.startswith(b"{"):
                    rank = orjson.loads(line)["risk_rank"]
                else:
                    yield (*orjson.loads(line), rank)

    return rows()
