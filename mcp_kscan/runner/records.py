"""Scan states, records and the contract between the scan manager and a scan task."""

from __future__ import annotations

import abc
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, Protocol

from pydantic import BaseModel

from mcp_kscan.reports import (
    KubeBenchReport,
    KubeBenchSummary,
    KubescapeReport,
    KubescapeSummary,
)
from mcp_kscan.runner.items import StoredItem
from mcp_kscan.runner.process import ProcessResult

if TYPE_CHECKING:
    from mcp_kscan.runner.standby import StandbyPool


class ScanState(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    timed_out = "timed_out"
    cancelled = "cancelled"
    interrupted = "interrupted"


ACTIVE_STATES = frozenset({ScanState.queued, ScanState.running})
FINISHED_STATES = frozenset(set(ScanState) - ACTIVE_STATES)

Scanner = Literal["kube-bench", "kubescape"]

ScanSummary = KubeBenchSummary | KubescapeSummary
"""What a caller sees first about a finished scan, by scanner (``kind``). Stored as JSON; rows
written before it was typed hold the same fields and read into it unchanged."""


class ScanRecord(BaseModel):
    """What the store keeps about one scan, and what every front end shows (minus the report)."""

    scan_id: str
    scanner: Scanner
    engine: str
    """Which engine ran: ``kube-bench``, ``kubescape`` (the binary), ``builtin`` or ``kube-bench-job``."""
    status: ScanState
    origin: str = "mcp"
    """Who asked (mcp, rest, metrics, cli): metrics scrapes never become "the latest scan"."""
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None
    phase: str | None = None
    """queued → running → parsing → done: what a waiting client is told."""
    error: str | None = None
    request: dict[str, Any] = {}
    """The validated request, secrets redacted."""
    command: list[str] | None = None
    """The argv that ran, secrets redacted."""
    return_code: int | None = None
    """The scanner's exit status; None while the built-in engine, its result stored, still
    writes the scan's findings (``TaskContext.publish``)."""
    stderr_tail: str | None = None
    """The end of the scanner's stderr, redacted (the kube-bench REST endpoint returns it)."""
    output_truncated: bool = False
    """True when the scanner wrote more than the output cap and the rest was dropped."""
    summary: ScanSummary | None = None
    has_report: bool = False
    progress_done: int | None = None
    progress_total: int | None = None
    """Units done of total: files read (built-in engine file scans), nodes scanned (kube-bench Jobs)."""
    resources_done: int | None = None
    resources_total: int | None = None
    """Built-in engine file scans: resources checked of resources found (found so far while files are read,
    final once ``progress_done == progress_total``; see ``engine.progress``)."""

    server: str | None = None
    """The server that holds the scan, ``host:pid``: the one that queued it while it waits, the one that
    runs it once claimed (with replicas on PostgreSQL, any of them may), the one that ran it after."""

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATES


@dataclass
class TaskOutcome:
    """What a scan task hands back to the manager when it ends (it never raises for scan failures)."""

    status: ScanState
    error: str | None = None
    raw_output: bytes | None = None
    """The scanner's own output, verbatim (Kubescape's JSON report, kube-bench's JSON)."""
    raw_file: BinaryIO | None = None
    """The raw output as an open file instead (the built-in engine's report, up to hundreds of MB):
    the store copies it in pieces, so the server never holds it whole; the manager closes it."""
    raw_media_type: str = "application/json"
    report: KubeBenchReport | KubescapeReport | None = None
    item_rows: Iterable[StoredItem] | None = None
    """The items table's rows (and runs, ``runner.items.Run``) when the task computed them itself
    (else they come from ``report``); consumed once, lazily, in the database thread."""
    summary: ScanSummary | None = None
    command: list[str] | None = None
    return_code: int | None = None
    stderr_tail: str | None = None
    """``ProcessResult.stderr_tail()``: kept on the record for callers that show stderr."""
    output_truncated: bool = False
    engine: str | None = None
    """Set when the task decided the engine at run time (``auto``)."""
    file_hashes: dict[str, str] | None = None
    """Manifest path → SHA-256 of the bytes the scan read (files that changed during the scan are left
    out): what a fix compares before it writes."""

    def raw_size(self) -> int:
        """How many bytes the raw output holds, in memory or in ``raw_file``."""
        if self.raw_file is not None and not self.raw_file.closed:
            return os.fstat(self.raw_file.fileno()).st_size
        return len(self.raw_output or b"")


ProgressFn = Callable[[str, int | None, int | None], Awaitable[None]]


class SetProgress(Protocol):
    """``done`` of ``total`` units (files, nodes), and optionally (resources_done, resources_total)."""

    def __call__(self, done: int, total: int, resources: tuple[int, int] | None = None) -> Awaitable[None]: ...


@dataclass
class TaskContext:
    """What a running task may use: its private directory and the managed process runner."""

    scan_id: str
    workdir: Path
    """A fresh private directory (mode 0700) for this scan only, removed after it ends."""
    deadline: float
    """anyio.current_time() by which the task must be done; run_process uses what is left."""
    run_process: Callable[..., Awaitable[ProcessResult]]
    """``await ctx.run_process(argv, env=..., cwd=...)``: process-group managed, capped, recorded."""
    set_phase: Callable[[str], Awaitable[None]]
    set_progress: SetProgress
    """Shown to waiting MCP clients and kept on the record."""
    extra: dict[str, Any] = field(default_factory=dict)
    standbys: StandbyPool | None = None
    """Processes started ahead of their scans (``runner.standby``): a task may take one of its
    kind and pass it to ``run_process(standby=..., order=...)``. None: every scan starts its own."""
    publish: Callable[[TaskOutcome], Awaitable[bool]] | None = None
    """Store a succeeded result before the task ends, its items to come: callers see the scan
    done and read its report and summary at once, and item reads wait for the items, which the
    outcome the task then returns carries (``item_rows``; a failed outcome: they never come).
    False, with nothing stored, where the runner keeps the result for the end (the task's
    secrets need the whole report scrubbed). None: the runner takes results at the end only."""


RunsOn = Literal["anywhere", "host", "process"]


@dataclass(frozen=True)
class Placement:
    """Where a queued scan may run, and what another server needs to rebuild its task (``runner.queue``).

    The planner (``scan_plan``) sets it; the runner only stores and honours it:

    - ``anywhere``: any server on the database rebuilds the task from ``plan`` with its own settings
      (cluster scans, kube-bench Jobs: every replica has the operator's configuration);
    - ``host``: only a server on the same host (``serve --workers N``): the scan reads this machine's files;
    - ``process``: only the server that admitted it, whose task holds what the row must not (a secret).
    """

    runs_on: RunsOn
    why: str = ""
    """Why the scan cannot go anywhere: the reason given when no server may take it over."""
    plan: Mapping[str, Any] | None = None
    """The planner's inputs as JSON (the validated request, secret-free, and the roots that validated
    its paths); None for ``process``."""


ADMITTING_PROCESS_ONLY = Placement("process", "its task exists only in the server that admitted it")


class ScanTask(abc.ABC):
    """One kind of scan. Subclasses build argv, run it through ``ctx.run_process`` and parse."""

    scanner: Scanner
    engine: str
    timeout_s: float
    request: Mapping[str, Any]
    """The validated request as stored and shown (the task redacts it; the manager redacts again)."""
    secrets: Sequence[str] = ()
    """Secret values this task carries (an access key): scrubbed from everything stored."""
    placement: Placement = ADMITTING_PROCESS_ONLY
    """Where the scan may run when the queue is shared (PostgreSQL); the planner's tasks say more."""

    @abc.abstractmethod
    async def run(self, ctx: TaskContext) -> TaskOutcome:
        """Run the scan. Return a failed/timed_out outcome for scan problems; raise only on bugs."""
