"""What the server needs from a finished built-in scan, computed in the engine's own process.

The server stores a scan's summary and one row per finding (``runner.items``). Read back out of
the report text, these cost more than the scan itself (the 10,000-resource bench corpus writes
an 85 MB report with 221,000 findings). So the engine computes them from what it holds as it
writes the report, and after:

- each worker turns the ``resources[]`` and ``results[]`` entries of its slice into findings
  (``slice_items``, once its part of the report is written) with the reader's and the store's own functions
  (``readers.kubescape_report.resource_fields``/``finding_fields``, ``runner.items``): one
  definition of every field, whichever path computes it. A finding is its JSON without the
  resource (its template, encoded once per distinct finding: a control's verdict is alike in
  most objects, passed or failing the same paths) and its resource's number, packed in one int.
  The worker numbers its resources in the table's order (``resource_tail``) and walks them in
  it, so each group of (status, control, severity) comes out sorted, an array of ints;
- the parent, which has ``summaryDetails`` and ``metadata``, reads the control order from them
  alone (``readers.kubescape_fields.head_control_order``), merges the slices' templates and
  resources, orders the groups and sorts each group's ints (``write_file_index``); a group
  with one template (a control's passed verdicts) is one run.

It writes the report's head (``head.json``: ``summaryDetails`` and ``metadata``, from which the
server reads the summary with the reader's models, ``read_summary``: the engine's process never
imports pydantic, which cost a small scan as much CPU as its scan), the store's items as the
store's own rows (``index.sqlite``, ``runner.item_index``: the resources numbered from 0 in the
table's order; per group in the table's order, runs of consecutive findings with the same
template, by resource number; a report held as a dict gives rows instead, a finding each) beside
the report, and for a file scan the SHA-256 of every file as the workers read it
(``hashes.json``, what ``fixes.hashes`` records; the server never reads the files again). The
server reads the small summary and has the store take the index as it is (``item_rows``).
For a file scan the head and hashes come first (``write_file_head``, while the workers copy the
report), then the engine says the report is whole (``entry.REPORT_READY``) and the server stores
the result, then the workers work out their slices and the parent writes the index
(``write_file_index``): the items follow the result (``TaskContext.publish``).
Cluster and workload scans build their report as a dict: ``write_digest`` reads that dict (with
the reader's models), never its text.

One difference from reading the report, in theory only: two objects of different workers with
the same ``resourceID`` (same kind, namespace and name, and a 32-bit hash collision of their
paths) each keep their own source here, where the reader gives both the later one's.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
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
from mcp_kscan.runner.item_index import IndexWriter, ItemIndex
from mcp_kscan.runner.items import (
    Group,
    Row,
    Tail,
    control_ranks,
    finding_group,
    finding_item,
    group_order,
    resource_tail,
    risk_rank,
)

if TYPE_CHECKING:
    from mcp_kscan.engine.model import Finding
    from mcp_kscan.reports import KubescapeSummary

HEAD_NAME, INDEX_NAME, HASHES_NAME = "head.json", "index.sqlite", "hashes.json"

_SHIFT = 32
_TEMPLATE = (1 << _SHIFT) - 1
"""A finding travels as one int, ``resource number << _SHIFT | template index``: sorting a
group's ints sorts it by resource, and an array of them pickles (as bytes) and merges at C speed."""


Head = tuple[str, "str | None", str, int]
"""A template's (status, severity, control_id, excepted): its run's columns."""
Resource = tuple["str | None", "str | None", str, str]
"""A resource's (kind, namespace, resource_key, its ``ResourceRef`` fields as JSON)."""


@dataclass
class SliceDigest:
    """A slice's findings by group, each group's findings as ints (``_SHIFT``) in resource order;
    the findings' JSON without their resource (``templates``, with ``heads``: each template's
    ``(status, severity, control_id, excepted)``); the resources' columns (``Resource``) and
    ``tails``, numbered
    from 0 in the table's order within a group (``resource_tail``, ties in report order)."""

    groups: dict[Group, array[int]] = field(default_factory=dict)
    """As ``array('Q')``: a slice's ~110,000 ints cost its worker 0.012-0.016 s to pickle and the
    parent 0.007 s to read back as a list (a 10k scan, a slow 2 vCPU machine), about 1 ms as bytes."""
    templates: list[bytes] = field(default_factory=list)
    heads: list[Head] = field(default_factory=list)
    resources: list[Resource] = field(default_factory=list)
    tails: list[Tail] = field(default_factory=list)
    mixed: set[Group] = field(default_factory=set)
    """Groups holding more than one template (a control failing different paths): the others
    are one run each."""


def controls_info(controls: Iterable[Control]) -> dict[str, dict[str, Any]]:
    """What ``summaryDetails`` says of each control that ``finding_fields`` may fall back on."""
    return {c.id: {"controlID": c.id, "name": c.name, "severity": c.severity, "scoreFactor": c.score_factor}
            for c in controls}


def slice_items(resource_entries: Iterable[Mapping[str, Any]],
                verdicts: Iterable[tuple[str, Sequence[tuple[Control, Finding | None]]]],
                controls_info: Mapping[str, Mapping[str, Any]],
                passed_entries: Mapping[str, Mapping[str, Any]]) -> SliceDigest:
    """The store's findings of one slice, by group, each group in its order: what ``parse_report``
    reads of the slice's ``resources[]`` entries and of the ``results[]`` items written from
    ``verdicts`` (resource id, its (control, finding or None) pairs), worked out from the verdicts
    themselves, never from the items: no entry is built or read per finding.

    ``controls_info``: the summary's controls by id (what ``finding_fields`` falls back on).
    ``passed_entries``: a passed control's entry by control id, the same for every resource: its
    fields are worked out once. A failed finding's entry differs from others with the same
    ``report.entry_key`` only in its resource id and its rule's message, neither of which its
    fields hold: they are worked out once per key (a control fails the same paths in many objects).

    The resources are numbered in the table's order (by ``resource_tail``, stably) and walked in
    that order, so each group's findings come out sorted: no sort per group.
    """
    # Here, not at the top: the server imports this module to read a digest, never to write one.
    from mcp_kscan.engine.report import control_entry, entry_key

    entries = {e["resourceID"]: e for e in resource_entries}
    items = list(verdicts)
    fields_of = [resource_fields(entries.get(rid), rid) for rid, _ in items]
    all_tails = [resource_tail(resource) for resource in fields_of]
    digest = SliceDigest()
    templates, heads, mixed = digest.templates, digest.heads, digest.mixed
    groups: dict[Group, list[int]] = {}
    numbered: dict[bytes, int] = {}
    """A template's index, by its text: findings alike but for their resource share it."""
    first: dict[Group, int] = {}
    """A group's first template (another one makes it ``mixed``)."""

    def place_of(entry: Mapping[str, Any]) -> tuple[Callable[[int], None], int]:
        """(what adds a finding to its group, the template's index) of a ``results[]`` entry."""
        # finding_fields places the resource and reads nothing of it: worked out without it.
        fields = finding_fields(entry, controls_info, None)
        text = orjson.dumps(fields)
        index = numbered.get(text)
        if index is None:
            index = numbered[text] = len(templates)
            templates.append(text)
            heads.append((fields["status"], fields["severity"], fields["control_id"], int(fields["excepted"])))
        group = finding_group(fields["status"], fields["severity"], fields["control_id"])
        if first.setdefault(group, index) != index:
            mixed.add(group)
        return groups.setdefault(group, []).append, index

    passed = {cid: place_of(entry) for cid, entry in passed_entries.items()}
    keyed: dict[Hashable, tuple[Callable[[int], None], int]] = {}
    for number, i in enumerate(sorted(range(len(items)), key=all_tails.__getitem__)):
        resource = fields_of[i]
        key = resource_key(resource["kind"], resource["namespace"], resource["name"], resource["file"])
        digest.resources.append((resource["kind"], resource["namespace"], key, orjson.dumps(resource).decode()))
        digest.tails.append(all_tails[i])
        code = number << _SHIFT
        rid, vs = items[i]
        for c, f in vs:
            if f is None:
                add, index = passed[c.id]
            else:
                alike = entry_key(c, f, message=False)
                found = keyed.get(alike)
                add, index = found if found is not None else keyed.setdefault(alike, place_of(control_entry(c, f, rid)))
            add(code | index)
    # A control no resource passed leaves its group empty: no run, no risk-rank line.
    for group in [g for g, codes in groups.items() if not codes]:
        del groups[group]
        mixed.discard(group)
    digest.groups = {group: array("Q", codes) for group, codes in groups.items()}
    return digest


def write_file_head(directory: Path, summary_details: Mapping[str, Any], metadata: Mapping[str, Any], *,
                    nothing_scanned: bool, file_hashes: Mapping[str, str]) -> None:
    """The first part of a file scan's digest: its head (what the server reads the summary from)
    and the SHA-256 of every file as the scan read it; with the report, the scan's whole result
    but for its items (``write_file_index``, written after)."""
    head = {"summaryDetails": summary_details, "metadata": metadata, "nothing_scanned": nothing_scanned}
    _write_atomically(directory / HASHES_NAME, [orjson.dumps(dict(file_hashes))])
    _write_atomically(directory / HEAD_NAME, [orjson.dumps(head)])


def write_file_index(directory: Path, summary_details: Mapping[str, Any], slices: Sequence[SliceDigest]) -> None:
    """A file scan's items (``index.sqlite``) from its summary and its slices' findings (in report
    order: ties between resources keep it)."""
    # The scan's resources in the table's order: each slice's are sorted, and a stable sort of
    # the slices' runs keeps ties in report order (the slices are contiguous pieces of it).
    tails = [tail for piece in slices for tail in piece.tails]
    resources = [resource for piece in slices for resource in piece.resources]
    order = sorted(range(len(tails)), key=tails.__getitem__)
    renumbered = [0] * len(order)
    for number, i in enumerate(order):
        renumbered[i] = number
    templates: list[bytes] = []
    heads: list[Head] = []
    numbered: dict[bytes, int] = {}
    merged: dict[Group, list[int]] = {}
    """A group's findings: scan-wide resource numbers alone in a group of one template (most:
    a control's passed verdicts, its failures alike), else ints as in the slices (``_SHIFT``)."""
    kinds: dict[Group, set[int]] = {}
    pieces_to_merged: list[list[int]] = []
    for piece in slices:
        to_merged = []
        for text, its_head in zip(piece.templates, piece.heads, strict=True):
            index = numbered.get(text)
            if index is None:
                index = numbered[text] = len(templates)
                templates.append(text)
                heads.append(its_head)
            to_merged.append(index)
        pieces_to_merged.append(to_merged)
        for group, codes in piece.groups.items():
            if group in piece.mixed:
                kinds.setdefault(group, set()).update(to_merged[code & _TEMPLATE] for code in codes)
            else:
                kinds.setdefault(group, set()).add(to_merged[codes[0] & _TEMPLATE])
    offset = 0
    for piece, to_merged in zip(slices, pieces_to_merged, strict=True):
        scan_wide = renumbered[offset:offset + len(piece.tails)].__getitem__
        for group, codes in piece.groups.items():
            if len(kinds[group]) == 1:  # no template to carry: the resources' numbers, renumbered in C
                merged.setdefault(group, []).extend(map(scan_wide, [code >> _SHIFT for code in codes]))
            else:
                merged.setdefault(group, []).extend(
                    [scan_wide(code >> _SHIFT) << _SHIFT | to_merged[code & _TEMPLATE] for code in codes])
        offset += len(piece.tails)

    texts: list[str] = []
    """The templates as text, decoded once each (a template is in many runs)."""

    def run(template: int, members: list[int]) -> tuple[Any, ...]:
        status, severity, control_id, excepted = heads[template]
        return len(members), status, severity, control_id, excepted, texts[template], orjson.dumps(members).decode()

    def runs(group: Group) -> Iterator[tuple[Any, ...]]:
        codes = merged[group]
        codes.sort()
        if len(kinds[group]) == 1:  # one template: the whole group is one run, of resource numbers
            yield run(next(iter(kinds[group])), codes)
            return
        template, members = -1, list[int]()
        for code in codes:
            index = code & _TEMPLATE
            if index != template:
                if members:
                    yield run(template, members)
                template, members = index, []
            members.append(code >> _SHIFT)
        if members:
            yield run(template, members)

    texts.extend(text.decode() for text in templates)
    _write_index(directory, head_control_order(summary_details),
                 ((number, *resources[i]) for number, i in enumerate(order)), {group: runs for group in merged},
                 runs=True)


def write_digest(report: Mapping[str, Any], directory: Path) -> None:
    """The digest of a report held as a dict (cluster and workload scans: small)."""
    from mcp_kscan.readers.kubescape_report import parse_report

    parsed = parse_report(report)
    head = {key: report[key] for key in HEAD_KEYS if key in report}
    grouped: dict[Group, list[tuple[Tail, Row]]] = {}
    for group, tail, row in (finding_item(f.model_dump()) for f in parsed.findings):
        grouped.setdefault(group, []).append((tail, row))
    for rows in grouped.values():
        rows.sort(key=itemgetter(0))  # stably: ties keep the report's order

    def rows_of(group: Group) -> Iterator[Row]:
        return (row for _, row in grouped[group])

    _write_index(directory, parsed.control_order, (), {group: rows_of for group in grouped}, runs=False)
    _write_atomically(directory / HEAD_NAME, [orjson.dumps({**head, "nothing_scanned": v2.nothing_scanned(report)})])


HEAD_KEYS = ("summaryDetails", "metadata", "scanCoverage")
"""What of a report ``parse_report_head`` reads (a file scan's report has no ``scanCoverage``)."""


def _write_index(directory: Path, control_order: Sequence[str],
                 resources: Iterable[tuple[int, str | None, str | None, str, str]],
                 groups: Mapping[Group, Callable[[Group], Iterable[tuple[Any, ...]]]], *, runs: bool) -> None:
    """``index.sqlite`` (see the module's docstring): ``groups`` gives each
    group's runs (``runs``: ``item_index.RUN_COLUMNS`` but for ``seq`` and ``risk_rank``) or rows
    (``runner.items.Row``, without the rank) in the group's order; here each gets its ``seq``
    (a run takes one per finding, as the store numbers them) and its group's rank."""
    ranks = control_ranks(control_order)
    seq = 0

    def numbered() -> Iterator[tuple[Any, ...]]:
        nonlocal seq
        for group in sorted(groups, key=lambda g: group_order(g, ranks)):
            rank = risk_rank(group, ranks)
            for values in groups[group](group):
                if runs:
                    n, status, severity, control_id, excepted, data, members = values
                    yield seq, n, status, severity, control_id, excepted, rank, data, members
                    seq += n
                else:
                    yield seq, *values, rank
                    seq += 1

    index = IndexWriter(directory / INDEX_NAME)
    try:
        index.resources(resources)
        (index.runs if runs else index.rows)(numbered())
        index.close()
    except BaseException:
        index.discard()  # no half-written index: the task finds none (the scan failed, or its items)
        raise


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


def item_rows(directory: Path) -> ItemIndex:
    """The scan's items as the store takes them (``runner.item_index.ItemIndex``): the resources,
    then the rows and runs in the table's order. OSError when the engine wrote none."""
    path = directory / INDEX_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no {INDEX_NAME}")
    return ItemIndex(path)
