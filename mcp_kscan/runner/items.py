"""The items table's rows: one finding or check each, in the order pages show them.

One definition of every column, whichever process computes it: the server from a parsed report
(``report_items``, in the store's thread), or the built-in engine's process from the entries it
writes (``finding_item`` and ``ranked``, see ``engine.digest``). A module of its own so that the
engine's process imports it without the store's database drivers, nor pydantic: the report
models are imported only where a parsed report is read (``report_items``, ``stored_items``).

Most of a big scan's findings differ only in their resource (79% of the 10,000-resource bench
corpus's 221,000 are passed verdicts, and its 47,000 others hold 41 distinct findings without
it). The engine hands them over as ``Run``s: the shared finding once, and the numbers of its
resources (``ItemResource``, one per resource of the scan); ``stored_items`` makes the same of
a parsed report's passed findings (Kubescape's own).
The store keeps a run as one row that takes the place of its findings in the table's order, and
its readers answer exactly as for one row per finding (``runner.store``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from mcp_kscan.readers.kubescape_fields import resource_key
from mcp_kscan.readers.kubescape_v2 import severity_rank

if TYPE_CHECKING:
    from mcp_kscan.reports import KubeBenchReport, KubescapeReport

# Items are stored worst-first, so page one of the default view is what matters most.
_FINDING_STATUS_RANK = {"failed": 0, "skipped": 1, "passed": 2}
_CHECK_STATUS_RANK = {"FAIL": 0, "WARN": 1, "INFO": 2, "PASS": 3}

Row = tuple[Any, ...]
Group = tuple[int, str, int]
"""(status rank, control id, severity rank): findings that differ only in their resource. Their
place in the table is the group's (``group_order``), then their resource's (``finding_item``'s tail)."""
Tail = tuple[str, str, str, str]
"""(namespace, kind, name, file): a finding's place within its group."""


def report_items(report: KubeBenchReport | KubescapeReport) -> Iterable[Row]:
    """Rows for the items table, worst first:
    (item_type, status, severity, control, ns, kind, node, json, resource_key, excepted, risk_rank).

    Findings follow the report's control order (``KubescapeReport.control_order``, the one risk
    order), failed before skipped before passed, so page one is what to fix first; ties keep the
    report's order. The built-in engine's process computes the same rows with ``finding_item``,
    ``group_order`` and ``risk_rank`` from the entries it writes (``engine.digest``), so the
    server never holds a big report's objects.
    """
    from mcp_kscan.reports import KubescapeReport

    if isinstance(report, KubescapeReport):
        ranks = control_ranks(report.control_order)
        items = [finding_item(f.model_dump()) for f in report.findings]
        items.sort(key=lambda item: (*group_order(item[0], ranks), *item[1]))
        for group, _, row in items:
            yield (*row, risk_rank(group, ranks))
    else:
        checks = sorted(
            enumerate(report.checks), key=lambda ic: (_CHECK_STATUS_RANK.get(ic[1].status, 9), ic[0])
        )
        for _, c in checks:
            yield ("check", c.status, None, c.id, None, c.node_type, c.node, c.model_dump_json(), None, 0, None)


@dataclass(frozen=True, slots=True)
class ItemResource:
    """A resource that the findings of ``Run``s name by its ``number`` (its place in the scan's
    list): the columns its findings' rows would hold, and ``data``, its ``ResourceRef`` fields as JSON."""

    number: int
    kind: str | None
    namespace: str | None
    key: str
    data: str


@dataclass(frozen=True, slots=True)
class Run:
    """Findings alike but for their resource, next to each other in the table's order: ``data``
    is their JSON with ``"resource": null``, ``members`` the ``ItemResource`` numbers, in order.
    Findings only (``item_type`` "finding", no ``node``)."""

    status: str
    severity: str | None
    control_id: str
    excepted: int
    risk_rank: int | None
    data: str
    members: Sequence[int]


class EncodedMembers(Sequence[int]):
    """A run's members as the JSON text its producer wrote (``[3,7,12]``, the engine's digest),
    with their count: the store keeps the text as it is, and it is decoded only when read."""

    __slots__ = ("_count", "_decoded", "json")

    def __init__(self, text: str, count: int) -> None:
        self.json = text
        self._count = count
        self._decoded: list[int] | None = None

    def _list(self) -> list[int]:
        if self._decoded is None:
            self._decoded = orjson.loads(self.json)
        return self._decoded

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: Any) -> Any:
        return self._list()[index]

    def __iter__(self) -> Iterator[int]:
        return iter(self._list())


StoredItem = Row | Run | ItemResource
"""What the store takes for a scan's items (``ResultsStore.finish``): rows in the table's order,
runs in their place among them, and the resources the runs name (anywhere in the stream)."""


def run_finding(template: Mapping[str, Any], resource: Any) -> dict[str, Any]:
    """One finding of a run: its shared fields (``Run.data`` decoded) with its resource in
    the place the key holds (the same key order as the finding's own JSON)."""
    return {**template, "resource": resource}


def spelled_out(items: Iterable[StoredItem]) -> Iterator[Row]:
    """The rows that ``items`` stand for: each run as one row per finding, in its place (the
    resources first: a stream may hold them anywhere, ``engine.digest`` puts them first)."""
    items = list(items)
    resources = {item.number: item for item in items if isinstance(item, ItemResource)}
    for item in items:
        if isinstance(item, Run):
            template = orjson.loads(item.data)
            for number in item.members:
                r = resources[number]
                finding = run_finding(template, orjson.loads(r.data))
                yield ("finding", item.status, item.severity, item.control_id, r.namespace, r.kind, None,
                       orjson.dumps(finding).decode(), r.key, item.excepted, item.risk_rank)
        elif not isinstance(item, ItemResource):
            yield item


def finding_group(status: str, severity: str, cid: str) -> Group:
    """The group of a finding (``finding_item``)."""
    return _FINDING_STATUS_RANK.get(status, 9), cid, severity_rank(severity)


def resource_tail(r: Mapping[str, Any]) -> Tail:
    """A finding's place in its group: its resource's (``finding_item``)."""
    return r["namespace"] or "", r["kind"] or "", r["name"] or "", r["file"] or ""


def stored_items(report: KubeBenchReport | KubescapeReport) -> Iterator[StoredItem]:
    """``report_items``' rows as the store keeps them: the passed findings alike but for their
    resource (a Kubescape report's bulk, as the engine's) as ``Run``s in their place, with each
    resource they name once. The same order and ``seq``s as one row per finding."""
    from mcp_kscan.reports import KubescapeReport

    if not isinstance(report, KubescapeReport):
        yield from report_items(report)
        return
    ranks = control_ranks(report.control_order)
    items = []
    for f in report.findings:
        finding = f.model_dump()
        items.append((*finding_item(finding), finding))
    items.sort(key=lambda item: (*group_order(item[0], ranks), *item[1]))
    resources: dict[str, ItemResource] = {}
    sent: set[int] = set()
    run: list[tuple[Row, dict[str, Any]]] = []
    template = ""

    def flushed() -> Iterator[StoredItem]:
        """The run read so far: a run of one is its row."""
        if len(run) == 1:
            yield run[0][0]
            return
        members: list[int] = []
        for _, resource in run:
            data = orjson.dumps(resource).decode()
            found = resources.get(data)
            if found is None:
                row = run[len(members)][0]
                found = resources[data] = ItemResource(len(resources), row[5], row[4], row[8], data)
            if found.number not in sent:
                sent.add(found.number)
                yield found
            members.append(found.number)
        row = run[0][0]
        yield Run(row[1], row[2], row[3], row[9], row[10], template, members)

    for group, _, row, finding in items:
        ranked = (*row, risk_rank(group, ranks))
        shared = orjson.dumps({**finding, "resource": None}).decode() if row[1] == "passed" else None
        if run and shared != template:
            yield from flushed()
            run = []
        if shared is None:
            yield ranked
        else:
            template = shared
            run.append((ranked, finding["resource"]))
    if run:
        yield from flushed()


def finding_item(finding: Mapping[str, Any], key_of_resource: str | None = None) -> tuple[Group, Tail, Row]:
    """(group, tail, row without its risk rank) of one finding, given as ``KubescapeFinding``'s
    fields in plain data.

    The risk rank of its control takes the whole scan's control order (``risk_rank``). The row's
    JSON is the model's own (``model_dump_json``'s text; a test holds them equal).
    ``key_of_resource``: its resource's ``resource_key`` when the caller has it already (every
    finding of a resource shares it).
    """
    r = finding["resource"]
    status, severity, cid = finding["status"], finding["severity"], finding["control_id"]
    group, tail = finding_group(status, severity, cid), resource_tail(r)
    row = ("finding", status, severity, cid, r["namespace"], r["kind"], None, orjson.dumps(finding).decode(),
           key_of_resource if key_of_resource is not None else resource_key(r["kind"], r["namespace"], r["name"], r["file"]),
           int(finding["excepted"]))
    return group, tail, row


def control_ranks(control_order: Sequence[str]) -> dict[str, int]:
    """Control id → its risk rank (``risk_rank``'s ``ranks``)."""
    return {cid: i for i, cid in enumerate(control_order)}


def risk_rank(group: Group, ranks: Mapping[str, int]) -> int:
    """The ``risk_rank`` column of a group's findings: its control's place in the control order
    (a control outside it comes after all)."""
    return ranks.get(group[1], len(ranks))


def group_order(group: Group, ranks: Mapping[str, int]) -> tuple[int, int, int, str]:
    """Where a group's findings go: status (failed first), risk rank, severity, control id."""
    status_rank, cid, severity = group
    return status_rank, risk_rank(group, ranks), severity, cid
