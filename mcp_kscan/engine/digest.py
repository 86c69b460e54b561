"""What the server needs from a finished built-in scan, computed in the engine's own process.

The server stores a scan's summary and one row per finding (``runner.items``). Read back out of
the report text, these cost more than the scan itself (the 10,000-resource bench corpus writes
an 85 MB report with 221,000 findings). So the engine computes them from what it holds while it
writes the report:

- each worker turns the ``resources[]`` and ``results[]`` entries of its slice into findings
  (``slice_items``) with the reader's and the store's own functions
  (``readers.kubescape_report.resource_fields``/``finding_fields``, ``runner.items``): one
  definition of every field, whichever path computes it. A finding is its JSON without the
  resource (its template, encoded once per distinct finding: a control's verdict is alike in
  most objects, passed or failing the same paths) and its resource's number in the slice. The
  worker groups them by (status, control, severity), each group sorted by resource;
- the parent, which has ``summaryDetails`` and ``metadata``, reads the control order from them
  alone (``readers.kubescape_fields.head_control_order``), merges the slices' templates and
  resources, orders the groups and merges each group's sorted runs (``write_file_digest``).

It writes the report's head (``head.json``: ``summaryDetails`` and ``metadata``, from which the
server reads the summary with the reader's models, ``read_summary``: the engine's process never
imports pydantic, which cost a small scan as much CPU as its scan), the resources (``resources.jsonl``: one
``[kind, namespace, resource_key, resource]`` array a line, numbered from 0 in file order) and
the findings (``items.jsonl``: per group in the table's order, a ``{"risk_rank": n}`` line, then
``{"template": {...}, "members": [...]}`` lines: runs of consecutive findings with the same
template, by resource number; a report held as a dict writes rows instead, one JSON array a
line without the rank) beside the report, and for a file scan the SHA-256 of every file as the
workers read it (``hashes.json``, what ``fixes.hashes`` records; the server never reads the
files again). The server reads the small summary and streams the runs, rows and resources into
the database (``item_rows``, ``runner.items.Run``). Cluster and workload scans build their
report as a dict: ``write_digest`` reads that dict (with the reader's models), never its text.

One difference from reading the report, in theory only: two objects of different workers with
the same ``resourceID`` (same kind, namespace and name, and a 32-bit hash collision of their
paths) each keep their own source here, where the reader gives both the later one's.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from mcp_kscan.engine.controls import Control
from mcp_kscan.readers import kubescape_v2 as v2
from mcp_kscan.readers.kubescape_fields import (
    finding_fields,
    head_control_order,
    resource_fields,
    resource_key,
)
from mcp_kscan.runner.items import (
    Group,
    ItemResource,
    Row,
    Run,
    StoredItem,
    Tail,
    control_ranks,
    finding_group,
    finding_item,
    group_order,
    resource_tail,
    risk_rank,
)

if TYPE_CHECKING:
    from mcp_kscan.reports import KubescapeSummary

HEAD_NAME, ITEMS_NAME, HASHES_NAME = "head.json", "items.jsonl", "hashes.json"
RESOURCES_NAME = "resources.jsonl"

Member = tuple[int, int]
"""A finding that is its template (an index in the slice's ``templates``) with a resource
(its number in the slice's ``resources``)."""

Line = bytes | memoryview | Member
"""A row's line (a report held as a dict: ``write_digest``), or a finding as a ``Member``."""

Groups = dict[Group, list[tuple[Tail, Line]]]
"""Findings by group: (tail, line) in the table's order."""


@dataclass
class SliceDigest:
    """A slice's findings by group (``groups``), the findings' JSON without their resource
    (``templates``; a finding names its template by index) and the lines of the resources they
    name, by number (both from 0 in each slice)."""

    groups: Groups = field(default_factory=dict)
    templates: list[bytes] = field(default_factory=list)
    resources: list[bytes] = field(default_factory=list)


def controls_info(controls: Iterable[Control]) -> dict[str, dict[str, Any]]:
    """What ``summaryDetails`` says of each control that ``finding_fields`` may fall back on."""
    return {c.id: {"controlID": c.id, "name": c.name, "severity": c.severity, "scoreFactor": c.score_factor}
            for c in controls}


def slice_items(resource_entries: Iterable[Mapping[str, Any]], results: Iterable[Mapping[str, Any]],
                controls_info: Mapping[str, Mapping[str, Any]],
                shared: Iterable[tuple[object, Mapping[str, Any]]] = (),
                alike: Iterable[Sequence[Hashable | None]] | None = None) -> SliceDigest:
    """The store's rows of one slice's ``resources[]`` and ``results[]`` entries, read as
    ``parse_report`` reads them, by group, each group in its order.

    ``controls_info``: the summary's controls by id (what ``finding_fields`` falls back on).
    ``shared``: (what many results hold as one object, the control entry it stands for): a
    passed control's entry is the same for every resource, and the worker's results hold it
    pre-encoded (an ``orjson.Fragment``); its fields are worked out once, and its findings are
    the group's template and a resource number each, not rows.
    ``alike``: for each result, a key per control entry (``report.entry_key``, or None): entries
    with equal keys differ only in their resource ids, so their fields are worked out once per
    key too (a control fails the same paths in many objects: the 10,000-resource bench corpus's
    47,000 failed findings hold 41 distinct ones).
    """
    entries = {e["resourceID"]: e for e in resource_entries}
    once = {id(held): finding_fields(entry, controls_info, None) for held, entry in shared}
    digest = SliceDigest()
    groups, templates, resources = digest.groups, digest.templates, digest.resources
    numbered: dict[bytes, int] = {}
    """A template's index, by its text: findings alike but for their resource share it."""
    places: dict[int, tuple[list[tuple[Tail, Line]], int]] = {}
    """A shared entry's (group's lines, template index), by the entry's id."""
    keyed: dict[Hashable, tuple[list[tuple[Tail, Line]], int]] = {}
    """The same, by an ``alike`` key."""
    pairs = zip(results, alike, strict=True) if alike is not None else zip(results, repeat(None))
    for result, keys in pairs:
        rid = result["resourceID"]
        resource = resource_fields(entries.get(rid), rid)
        number, own_tail = len(resources), resource_tail(resource)
        key = resource_key(resource["kind"], resource["namespace"], resource["name"], resource["file"])
        resources.append(orjson.dumps([resource["kind"], resource["namespace"], key, resource],
                                      option=orjson.OPT_APPEND_NEWLINE))
        controls = result["controls"]
        for ctrl, alike_key in zip(controls, keys, strict=True) if keys is not None else zip(controls, repeat(None)):
            place = places.get(id(ctrl)) if alike_key is None else keyed.get(alike_key)
            if place is None:
                # finding_fields places the resource and reads nothing of it: worked out without it.
                fields = once.get(id(ctrl))
                if fields is None:
                    fields = finding_fields(ctrl, controls_info, None)
                text = orjson.dumps(fields)
                index = numbered.get(text)
                if index is None:
                    index = numbered[text] = len(templates)
                    templates.append(text)
                place = (groups.setdefault(finding_group(fields["status"], fields["severity"],
                                                         fields["control_id"]), []), index)
                if alike_key is not None:
                    keyed[alike_key] = place
                elif id(ctrl) in once:
                    places[id(ctrl)] = place
            place[0].append((own_tail, (place[1], number)))
    for lines in groups.values():
        lines.sort(key=itemgetter(0))
    return digest


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
                      slices: Sequence[SliceDigest], *, nothing_scanned: bool, file_hashes: Mapping[str, str]) -> None:
    """The digest of a file scan from its report's summary and metadata and its slices' rows
    (in report order: a group's ties keep it), with the SHA-256 of every file as the scan read it."""
    merged = SliceDigest()
    numbered: dict[bytes, int] = {}
    for piece in slices:
        offset = len(merged.resources)
        merged.resources.extend(piece.resources)
        to_merged = []
        for text in piece.templates:
            index = numbered.get(text)
            if index is None:
                index = numbered[text] = len(merged.templates)
                merged.templates.append(text)
            to_merged.append(index)
        # A slice's lines are all Members (slice_items): renumbered into the merged lists, unless
        # nothing changes (the first slice), which is copied as it is (this loop is serial time).
        same = offset == 0 and to_merged == list(range(len(to_merged)))
        for group, lines in piece.groups.items():
            merged.groups.setdefault(group, []).extend(
                lines if same else [(tail, (to_merged[t], n + offset)) for tail, (t, n) in lines])
    for lines in merged.groups.values():
        lines.sort(key=itemgetter(0))  # sorted runs, one per slice: a merge
    head = {"summaryDetails": summary_details, "metadata": metadata, "nothing_scanned": nothing_scanned}
    _write(directory, head, head_control_order(summary_details), merged)
    _write_atomically(directory / HASHES_NAME, [orjson.dumps(dict(file_hashes))])


def write_digest(report: Mapping[str, Any], directory: Path) -> None:
    """The digest of a report held as a dict (cluster and workload scans: small)."""
    from mcp_kscan.readers.kubescape_report import parse_report

    parsed = parse_report(report)
    head = {key: report[key] for key in HEAD_KEYS if key in report}
    _write(directory, {**head, "nothing_scanned": v2.nothing_scanned(report)}, parsed.control_order,
           SliceDigest(_grouped(finding_item(f.model_dump()) for f in parsed.findings)))


HEAD_KEYS = ("summaryDetails", "metadata", "scanCoverage")
"""What of a report ``parse_report_head`` reads (a file scan's report has no ``scanCoverage``)."""


def _write(directory: Path, head: Mapping[str, Any], control_order: Sequence[str], digest: SliceDigest) -> None:
    """``items.jsonl``, ``resources.jsonl`` and ``head.json`` (see the module's docstring)."""
    ranks = control_ranks(control_order)
    groups = digest.groups

    def run_line(template: int, members: list[int]) -> bytes:
        return b'{"template":%s,"members":%s}\n' % (digest.templates[template], orjson.dumps(members))

    def lines() -> Iterator[bytes | memoryview]:
        for group in sorted(groups, key=lambda g: group_order(g, ranks)):
            yield b'{"risk_rank":%d}\n' % risk_rank(group, ranks)
            template = -1
            members: list[int] = []
            for _, line in groups[group]:
                if not isinstance(line, tuple):  # a row (``write_digest``); a Member is a tuple
                    if members:
                        yield run_line(template, members)
                        members = []
                    template = -1
                    yield line
                    continue
                index, number = line
                if index != template:
                    if members:
                        yield run_line(template, members)
                        members = []
                    template = index
                members.append(number)
            if members:
                yield run_line(template, members)

    _write_atomically(directory / RESOURCES_NAME, digest.resources)
    _write_atomically(directory / ITEMS_NAME, lines())
    _write_atomically(directory / HEAD_NAME, [orjson.dumps(dict(head))])


def _write_atomically(path: Path, pieces: Iterable[bytes | memoryview]) -> None:
    partial = path.with_name(path.name + ".part")
    with open(partial, "wb") as fh:
        fh.writelines(pieces)
    os.replace(partial, path)


def read_summary(directory: Path) -> KubescapeSummary:
    """The scan's summary, read from its head as the reader reads a whole report (the server's side)."""
    from mcp_kscan.readers.kubescape_report import parse_report_head
    from mcp_kscan.reports import summarize_kubescape

    head = orjson.loads((directory / HEAD_NAME).read_bytes())
    if not isinstance(head, dict):
        raise ValueError("head.json is not an object")  # noqa: TRY004 - the caller's one error for a bad digest file
    return summarize_kubescape(parse_report_head(head, nothing_scanned=head.get("nothing_scanned") is True))


def read_file_hashes(directory: Path) -> dict[str, str] | None:
    """Path → SHA-256 of the bytes the scan read (``fixes.hashes``); None for a cluster scan."""
    path = directory / HASHES_NAME
    if not path.exists():
        return None
    found = orjson.loads(path.read_bytes())
    if not isinstance(found, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in found.items()):
        raise ValueError("hashes.json is not a map of paths to digests")
    return found


def item_rows(directory: Path) -> Iterator[StoredItem]:
    """The resources, then the rows and runs in the table's order, read lazily. The files are
    opened now: the scan's directory is removed before the manager stores the outcome, and an
    open file outlives its name."""
    resources_path = directory / RESOURCES_NAME
    # A digest written before resources.jsonl existed has rows only.
    resources_fh = open(resources_path, "rb") if resources_path.exists() else None  # noqa: SIM115 - closed below
    try:
        fh = open(directory / ITEMS_NAME, "rb")  # noqa: SIM115 - closed by the generator below
    except OSError:
        if resources_fh is not None:
            resources_fh.close()
        raise

    def rows() -> Iterator[StoredItem]:
        if resources_fh is not None:
            with resources_fh:
                for number, line in enumerate(resources_fh):
                    kind, namespace, key, resource = orjson.loads(line)
                    yield ItemResource(number, kind, namespace, key, orjson.dumps(resource).decode())
        rank = None
        with fh:
            for line in fh:
                if line.startswith(b"{"):
                    head = orjson.loads(line)
                    if "members" not in head:
                        rank = head["risk_rank"]
                        continue
                    template = head["template"]
                    yield Run(template["status"], template["severity"], template["control_id"],
                              int(template["excepted"]), rank, orjson.dumps(template).decode(), head["members"])
                else:
                    yield (*orjson.loads(line), rank)

    return rows()
