"""``MCP_KSCAN_SCHEDULE``: which scans run on a schedule, parsed and checked at start-up.

The syntax is what users of cron, Kubernetes CronJobs and Kubescape's own scheduler
(``kubescapeScheduler.scanSchedule: "0 8 * * *"``) already write, followed by the scan:

    MCP_KSCAN_SCHEDULE="0 */6 * * * framework=nsa; @daily kube-bench targets=node"

- entries are separated by ``;`` or new lines (a ConfigMap can hold one per line); ``#`` starts a comment line;
- each entry is a cron expression (five fields in UTC, or a macro such as ``@daily``: see
  ``runner.cron``) and then a scan: ``framework=NAMES`` (a cluster scan of those frameworks,
  comma-separated, ``all`` for every one) or ``kube-bench``;
- options follow as ``key=value`` with the names of the scanners' own flags (``OPTIONS``).

Every mistake is one line naming the entry and what is wrong; the server refuses to start.
The runner (``runner.schedule``) fires each entry once across replicas; ``fire_for`` submits the
entry's request through the service like any other scan, with origin ``schedule``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from pydantic import BaseModel, ValidationError

from mcp_kscan.catalogue import framework_names
from mcp_kscan.errors import ClusterNotConfigured, KscanError, describe_validation_error
from mcp_kscan.runner.cron import Cron, CronError
from mcp_kscan.runner.schedule import Entry, FireFn, FireLedger, Scheduler
from mcp_kscan.scanners.kube_bench_request import KubeBenchRequest
from mcp_kscan.scanners.kubescape_request import KubescapeRequest

if TYPE_CHECKING:
    from mcp_kscan.service import ScanService

log = logging.getLogger(__name__)

ORIGIN = "schedule"

FRAMEWORK = "framework"
KUBE_BENCH = "kube-bench"

OPTIONS: Mapping[str, Mapping[str, str]] = {
    FRAMEWORK: {
        "include-namespaces": "include_namespaces",
        "exclude-namespaces": "exclude_namespaces",
        "kube-context": "kube_context",
        "engine": "engine",
        "timeout": "timeout_seconds",
    },
    KUBE_BENCH: {
        "targets": "targets",
        "benchmark": "benchmark",
        "version": "version",
        "executor": "executor",
        "kube-context": "kube_context",
        "node-selector": "node_selector",
        "namespace": "namespace",
        "timeout": "timeout_seconds",
    },
}
"""Per scan, the options an entry may set (as the scanners' flags spell them) and the request field each fills."""

_CRON_FIELD = re.compile(r"[0-9*/,\-]+")


@dataclass(frozen=True)
class ScheduledScan:
    entry: Entry
    scan: str
    """``framework`` or ``kube-bench``."""
    request: BaseModel
    """The validated request: a ``KubescapeRequest`` or a ``KubeBenchRequest``."""


def _shown(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _options(tokens: list[str], scan: str) -> dict[str, str]:
    allowed = OPTIONS[scan]
    found: dict[str, str] = {}
    for token in tokens:
        key, eq, value = token.partition("=")
        if not eq or not key:
            raise ValueError(f"{token!r} is not an option; write key=value ({', '.join(allowed)})")
        if key not in allowed:
            raise ValueError(f"unknown option {key!r} for {scan}; use {', '.join(allowed)}")
        if key in found:
            raise ValueError(f"option {key!r} is given twice")
        if not value:
            raise ValueError(f"option {key!r} has no value")
        found[key] = value
    return found


def _frameworks(value: str) -> list[str]:
    known = {n.lower(): n for n in framework_names()}
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise ValueError("framework= names no framework; e.g. framework=nsa,mitre or framework=all")
    for name in names:
        if name.lower() != "all" and name.lower() not in known:
            raise ValueError(f"unknown framework {name!r}; use all or one of {', '.join(sorted(known.values()))}")
    return [] if any(n.lower() == "all" for n in names) else [known[n.lower()] for n in names]


def _request(scan: str, data: dict[str, Any]) -> BaseModel:
    """The scanner's own request model checks the values; its complaint names the entry's option."""
    model = KubeBenchRequest if scan == KUBE_BENCH else KubescapeRequest
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = describe_validation_error(exc)
        field = re.split(r"[\[.]", error.field)[0]
        option = {v: k for k, v in OPTIONS[scan].items()}.get(field, FRAMEWORK if field == "target_names" else field)
        raise ValueError(f"{option}: {error.reason}" if option else error.reason) from None


def parse_entry(text: str) -> ScheduledScan:
    """One entry (``0 3 * * * framework=nsa``); a ``ValueError`` of one line says what is wrong."""
    tokens = text.split()
    cut = 1 if tokens[0].startswith("@") else 5
    if len(tokens) <= cut:
        raise ValueError(
            "write a cron expression (five fields, or a macro such as @daily) and then the scan"
            " (framework=NAMES or kube-bench)"
        )
    try:
        cron = Cron.parse(" ".join(tokens[:cut]))
    except CronError as exc:
        raise ValueError(str(exc)) from None
    target, *rest = tokens[cut:]
    if _CRON_FIELD.fullmatch(target):
        raise ValueError(f"{target!r} looks like a sixth cron field: cron takes five (no seconds), then the scan")
    if target == KUBE_BENCH:
        scan, data = KUBE_BENCH, {}
    elif target.startswith(f"{FRAMEWORK}="):
        scan = FRAMEWORK
        data = {"target_type": "framework", "target_names": _frameworks(target.partition("=")[2])}
    else:
        raise ValueError(f"{target!r} is not a scan; use framework=NAMES (framework=nsa,mitre or framework=all) or kube-bench")
    options = _options(rest, scan)
    for key, value in options.items():
        data[OPTIONS[scan][key]] = value
    request = _request(scan, data)
    # The key is the entry in one spelling: replicas given the same text agree on it whatever the spacing.
    key = " ".join([cron.text, target, *(f"{k}={v}" for k, v in sorted(options.items()))])
    return ScheduledScan(entry=Entry(key=key, cron=cron), scan=scan, request=request)


def parse_schedule(text: str | None) -> list[ScheduledScan]:
    """Every entry of ``MCP_KSCAN_SCHEDULE``; a ``ValueError`` names the first bad one."""
    scans: list[ScheduledScan] = []
    seen: dict[str, int] = {}
    pieces = [p.strip() for line in (text or "").splitlines() for p in line.split(";")]
    number = 0
    for piece in pieces:
        if not piece or piece.startswith("#"):
            continue
        number += 1
        where = f"MCP_KSCAN_SCHEDULE entry {number} ({_shown(piece)})"
        try:
            scan = parse_entry(piece)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        if scan.entry.key in seen:
            raise ValueError(f"{where}: repeats entry {seen[scan.entry.key]}")
        seen[scan.entry.key] = number
        scans.append(scan)
    return scans


def fire_for(scans: list[ScheduledScan], service: ScanService) -> FireFn:
    """The scheduler's ``fire``: submit the entry's scan through ``service`` like any other."""
    by_key = {s.entry.key: s for s in scans}

    async def fire(entry: Entry, slot: datetime) -> str:
        scheduled = by_key[entry.key]
        if isinstance(scheduled.request, KubeBenchRequest):
            record = await service.start_kube_bench(scheduled.request, origin=ORIGIN)
        else:
            assert isinstance(scheduled.request, KubescapeRequest)
            record = await service.start_kubescape(scheduled.request, origin=ORIGIN)
        return record.scan_id

    return fire


NO_CLUSTER = "no cluster to scan: no kubeconfig (KUBECONFIG, ~/.kube/config) and not running in a pod"


def _plan(scheduled: ScheduledScan, service: ScanService) -> None:
    """Plan the entry's scan as a slot would, and drop the task: raises what the slot would meet."""
    if isinstance(scheduled.request, KubeBenchRequest):
        service.kube_bench_task(scheduled.request)
        return
    assert isinstance(scheduled.request, KubescapeRequest)
    service.kubescape_task(scheduled.request)
    if service.cluster_for(scheduled.request.kube_context) is None:  # a framework entry scans the cluster
        raise ClusterNotConfigured(NO_CLUSTER)


async def unrunnable(schedule: str | None, service: ScanService) -> dict[str, str]:
    """Entries this server cannot plan now (no cluster, no binary, no node), by key, with the reason;
    each is logged as a warning at start, so an operator learns it before the first slot.

    Only a warning: a cluster or a binary may come later, and every slot tries again (and records
    why when it cannot start).
    """
    problems: dict[str, str] = {}
    for scheduled in parse_schedule(schedule):
        try:
            await anyio.to_thread.run_sync(_plan, scheduled, service)  # reads kubeconfig files, looks up binaries
        except KscanError as exc:
            problems[scheduled.entry.key] = str(exc)
            log.warning("MCP_KSCAN_SCHEDULE entry %r cannot run on this server now: %s", scheduled.entry.key, exc)
    return problems


def scheduler_for(schedule: str | None, service: ScanService) -> Scheduler | None:
    """The scheduler of ``MCP_KSCAN_SCHEDULE`` over the service's database; None without entries."""
    scans = parse_schedule(schedule)
    if not scans:
        return None
    ledger = FireLedger(service.manager.store.db)
    return Scheduler([s.entry for s in scans], ledger, fire_for(scans, service))
