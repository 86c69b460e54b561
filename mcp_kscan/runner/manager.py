"""The scan manager: one per process, shared by the MCP tools and the REST routes.

Scans are submitted and return at once with an id; a fixed number of worker tasks take them
from a FIFO queue. The manager owns the task group, so a scan outlives the request (or MCP
call) that started it: a client that disconnects or cancels its wait loses nothing.

With SQLite the queue is in memory: one server owns the database. With PostgreSQL the queue is
in the database, shared by every replica (``runner.queue``: admission, claims, global limits), and
a replica runs the queued scans it may, whoever admitted them: it rebuilds their tasks through the
``rebuild`` hook (the planner), which the runner knows nothing about.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
from anyio.abc import TaskGroup

from mcp_kscan.errors import KscanError, NotAccepting, QueueFull, ScanBusy, ScanNotFound
from mcp_kscan.redact import redact_bytes, redact_mapping, redact_text, redact_values, scan_secrets
from mcp_kscan.runner import queue as shared_queue
from mcp_kscan.runner.process import ProcessResult, run_process
from mcp_kscan.runner.records import (
    ACTIVE_STATES,
    Placement,
    TaskContext,
    TaskOutcome,
    ScanTask,
    ScanRecord,
    ScanState,
)
from mcp_kscan.runner.standby import StandbyPool
from mcp_kscan.runner.store import ItemFilter, ItemPage, Output, ResultsStore
from mcp_kscan.settings import Settings

log = logging.getLogger(__name__)

ProgressCallback = Callable[[ScanRecord], Awaitable[None]]
FinishHook = Callable[[ScanRecord], None]
RecoveryHook = Callable[[list[ScanRecord]], Awaitable[None]]
"""Called once at start with the scans a stopped server left ``interrupted`` (e.g. to delete the
Kubernetes Jobs they left behind); the runner itself knows nothing of what a scan ran."""
Rebuild = Callable[[Mapping[str, Any]], ScanTask]
"""A queued scan's task rebuilt from its stored plan with this server's settings (``scan_plan.task_from_plan``);
raises when this server cannot run it (the planner refuses under its settings)."""

OWN_SCANS_ONLY = Placement("process", "the server that queued it (a stdio server or the CLI) runs only its own scans")
"""Where a server that takes no other server's scans queues its own: the replicas would run them, but
it never hands them over either, so they end with it (``interrupted``, or cancelled at its shutdown)."""

# Beyond its own timeout a task gets this long to wrap up (kill grace, parsing) before the
# manager cancels it outright.
_HARD_DEADLINE_SLACK_S = 30.0
# Beyond the kill grace, how long a cancel or a shutdown waits for a stopped scan's outcome to be stored.
_STORE_SLACK_S = 30.0
# How often a server sharing its database looks for cancel requests made through another replica.
_REMOTE_CANCEL_POLL_S = 1.0


class ScanManager:
    """Submit, wait for, inspect, page, delete and cancel scans.

    Use as ``async with ScanManager(settings) as manager:``; leaving the block stops accepting
    work, lets running scans finish for ``settings.shutdown_grace_s``, then cancels the rest
    and records them ``cancelled``.
    """

    def __init__(
        self, settings: Settings, store: ResultsStore | None = None, *, on_recovered: RecoveryHook | None = None,
        rebuild: Rebuild | None = None,
    ) -> None:
        self.settings = settings
        self._on_recovered = on_recovered
        self._rebuild = rebuild
        """Without it (bare managers in tests) a shared queue hands this server only the scans it admitted."""
        self.store = store or ResultsStore.for_settings(settings)
        self._tg: TaskGroup | None = None
        self._accepting = False
        self._queue: deque[str] = deque()
        """Scans this server admitted that wait. With a shared queue they are not in ``_active``: another
        server may take them, so their record is read from the database until this one claims them."""
        self._tasks: dict[str, ScanTask] = {}
        self._active: dict[str, ScanRecord] = {}
        self._scopes: dict[str, anyio.CancelScope] = {}
        self._cancel_reason: dict[str, str] = {}
        self._changed: dict[str, anyio.Event] = {}
        self._send, self._receive = anyio.create_memory_object_stream[str](max_buffer_size=float("inf"))
        self._wake = anyio.Event()
        """Set when this server may claim from the shared queue (a submission, a scan of its own ended)."""
        self._busy_workers = 0
        self._admitting = 0
        """Submissions past the capacity check whose database insert is still in flight."""
        self._finish_hooks: list[FinishHook] = []
        self._unsaved: dict[str, ScanRecord] = {}
        self._published: set[str] = set()
        """Running tasks whose result is already stored (``TaskContext.publish``): their end stores
        only the items (``_settle_published``)."""
        self._refused_bytes = 0
        """Size of the last result the database refused: readiness probes for that much room."""
        """Final records the database refused to store (full disk, read-only), by scan id."""
        self.recovered: list[str] = []
        self.standbys = StandbyPool()
        """Scanner processes started ahead of their scans (``runner.standby``), killed at the end."""

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> ScanManager:
        await anyio.to_thread.run_sync(self.store.open)
        if self.store.read_only:
            log.error("results database is read-only: stored results are served, new scans are refused")
        else:
            try:
                self.recovered = await anyio.to_thread.run_sync(self._recover)
                await anyio.to_thread.run_sync(self.store.purge_orphans_sync)
            except KscanError as exc:  # serving goes on; /readyz reports the store's state
                log.error("start-up recovery of interrupted scans failed: %s", exc)
        if self.recovered:
            log.warning("marked %d scan(s) left by a stopped server as interrupted", len(self.recovered))
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self.standbys.bind(self._tg)
        if self.recovered and self._on_recovered is not None:
            self._tg.start_soon(self._clean_up_after_recovery, list(self.recovered))
        if self.store.shared:
            self._tg.start_soon(self._claim_shared)
        else:
            for i in range(self.settings.max_concurrent_scans):
                self._tg.start_soon(self._worker, i)
        if not self.store.read_only:
            self._tg.start_soon(self._heartbeat)
            if self.store.shared:
                self._tg.start_soon(self._remote_cancels)
        self._accepting = True
        return self

    async def _remote_cancels(self) -> None:
        """Cancel this server's scans that another replica was asked to cancel (polled each second:
        a cancel reaches the scan wherever it runs, with no connection between replicas)."""
        pending: set[str] = set()

        async def cancel(scan_id: str, reason: str) -> None:
            try:
                await self.cancel(scan_id, reason)
            finally:
                pending.discard(scan_id)

        while True:
            await anyio.sleep(_REMOTE_CANCEL_POLL_S)
            try:
                requests = await self.store.cancel_requests()
            except KscanError as exc:
                log.error("reading cancel requests failed: %s", exc)
                continue
            assert self._tg is not None
            for scan_id, reason in requests:
                if scan_id in self._active and scan_id not in pending:
                    pending.add(scan_id)
                    self._tg.start_soon(cancel, scan_id, reason)

    def _recover(self) -> list[str]:
        """``recover_sync``; only a server that runs others' scans adopts this host's queued ones."""
        return self.store.recover_sync(adopt=self._rebuild is not None)

    async def _heartbeat(self) -> None:
        """Renew this server's leases a third of a lease apart; on a shared database, also settle
        the scans of replicas whose lease ran out (they died: ``kill -9``, a lost node)."""
        period = self.store.lease_s / 3
        while True:
            await anyio.sleep(period)
            try:
                # On a shared queue always: the queued scans it admitted or adopted need a live lease
                # too, or a replica on another host would settle them as a dead server's.
                if self._active or self.store.shared:
                    await self.store.renew_leases()
                if self.store.shared:
                    settled = await anyio.to_thread.run_sync(self._recover)
                    if settled:
                        log.warning("marked %d scan(s) of a replica that stopped renewing its lease as interrupted",
                                    len(settled))
                        if self._on_recovered is not None:
                            await self._clean_up_after_recovery(settled)
            except KscanError as exc:  # the database is away: /readyz says so; try again next beat
                log.error("lease renewal failed: %s", exc)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        # Shielded: leaving because of a cancellation (a signal ended the stdio server) must
        # still give running scans their grace period and record the ones cut short.
        with anyio.CancelScope(shield=True):
            await self.shutdown()
            await self.standbys.close()
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        result = await self._tg.__aexit__(exc_type, exc, tb)
        await anyio.to_thread.run_sync(self.store.close)
        return result

    async def shutdown(self) -> None:
        """Stop taking work; running scans get the grace period, then are cancelled."""
        if not self._accepting and not self._active:
            return
        self._accepting = False
        if self.store.shared:
            await self._hand_over_queued()
        for scan_id in list(self._queue):
            await self._cancel_queued(scan_id, "cancelled at server shutdown before it started")
        # What is left in _active runs, or is about to: a scan just taken from the queue saves its
        # running state before it opens its cancel scope. It gets the grace too, and is cancelled
        # as it opens its scope (_run_one honours a reason set before then); else it ran to its
        # timeout after the server had stopped taking work.
        with anyio.move_on_after(self.settings.shutdown_grace_s):
            while self._scopes or self._active:
                await anyio.sleep(0.05)
        for scan_id in list(self._active):
            self._cancel_reason[scan_id] = "cancelled at server shutdown (grace period over)"
            scope = self._scopes.get(scan_id)
            if scope is not None:
                scope.cancel()
        # Until the outcomes are stored, not only until the tasks stopped: a caller may close the
        # store (or the process) as soon as this returns.
        with anyio.move_on_after(self.settings.kill_grace_s + _STORE_SLACK_S):
            while self._scopes or self._active:
                await anyio.sleep(0.05)

    async def _hand_over_queued(self) -> None:
        """At shutdown, leave the waiting scans another server may run in the shared queue (a rolling
        restart moves them instead of cancelling them); cancel the ones bound to this process."""
        left = 0
        for scan_id in list(self._queue):
            task = self._tasks.pop(scan_id, None)
            self._queue.remove(scan_id)
            if task is not None and self._placement(task).runs_on != "process":
                left += 1
                continue
            try:
                await self._settle_queued(scan_id, "cancelled at server shutdown before it started")
            except KscanError as exc:
                log.error("could not cancel queued scan %s at shutdown: %s", scan_id, exc)
        if left:
            log.info("left %d queued scan(s) in the shared queue for the other servers", left)

    @property
    def accepting(self) -> bool:
        return self._accepting

    async def _clean_up_after_recovery(self, scan_ids: list[str]) -> None:
        """Hand the interrupted scans to the recovery hook, in the background: start-up never waits on it."""
        assert self._on_recovered is not None
        records = [r for r in [await self.store.get(i) for i in scan_ids] if r is not None]
        try:
            await self._on_recovered(records)
        except Exception:  # best effort: a cluster problem must not stop the server
            log.exception("clean-up after recovery failed")

    async def readiness_problem(self) -> str | None:
        """None when new scans can run and be stored; else why not (``/readyz`` answers 503).

        After a result was refused (full disk, size cap), the probe asks for room for one as
        big as that (up to 8 MiB), so readiness comes back by itself once space is freed.
        """
        if not self._accepting:
            return "the server is shutting down"
        probe = min(max(65536, self._refused_bytes), 8 * 1024 * 1024)
        problem = await self.store.check_writable(probe)
        if problem is None:
            self._refused_bytes = 0
        elif self._refused_bytes:
            problem = f"the last scan result ({self._refused_bytes} bytes) could not be stored: {problem}"
        return problem

    def add_finish_hook(self, hook: FinishHook) -> None:
        """Called with every record that reaches a final state (metrics counters use it)."""
        self._finish_hooks.append(hook)

    # ------------------------------------------------------------------ counts

    @property
    def running_count(self) -> int:
        return sum(1 for r in self._active.values() if r.status is ScanState.running)

    @property
    def queued_count(self) -> int:
        return len(self._queue)

    def active_records(self) -> list[ScanRecord]:
        """Copies of the queued and running scans' records (kept in memory: no database read)."""
        return [r.model_copy() for r in self._active.values()]

    # ------------------------------------------------------------------ submit / wait

    async def submit(self, task: ScanTask, origin: str = "mcp") -> ScanRecord:
        """Queue ``task`` and return its record at once (status ``queued``)."""
        if not self._accepting:
            raise NotAccepting("the server is shutting down and accepts no new scans")
        full = QueueFull(f"the scan queue is full ({self.settings.queue_capacity} waiting); retry when a scan finishes")
        # Admission is one step with no await between the check and the reservation: the
        # database insert below yields to other requests, and without the reservation every
        # concurrent submission would pass the check before any of them was queued.
        # Scans an idle worker is about to take are not waiting; only the rest count against capacity.
        free_workers = self.settings.max_concurrent_scans - self._busy_workers
        # A shared queue (PostgreSQL) checks and inserts in one transaction across replicas instead.
        if not self.store.shared and len(self._queue) + self._admitting - free_workers >= self.settings.queue_capacity:
            raise full
        self._admitting += 1
        try:
            # The task's secrets are scrubbed from this scan's record, outputs and log lines only
            # (``scan_secrets`` in the worker, ``secrets=`` below): never registered server-wide.
            record = ScanRecord(
                scan_id=str(uuid.uuid4()),
                scanner=task.scanner,
                engine=task.engine,
                status=ScanState.queued,
                origin=origin,
                created_at=datetime.now(UTC),
                phase="queued",
                request=redact_mapping(dict(task.request), task.secrets),
                server=self.store.name,
            )
            placement = self._placement(task)
            if not self.store.shared:
                await self.store.insert(record, placement)
            elif not await shared_queue.admit(
                self.store, record, self.settings.max_concurrent_scans, self.settings.queue_capacity, placement
            ):
                raise full
            if not self._accepting:  # shutdown began during the insert: no worker would take it
                reason = "cancelled at server shutdown before it started"
                if self.store.shared:
                    await self._settle_queued(record.scan_id, reason)
                else:
                    self._active[record.scan_id] = record
                    record.finished_at = datetime.now(UTC)
                    await self._persist_final(record, TaskOutcome(status=ScanState.cancelled, error=reason))
                raise NotAccepting("the server is shutting down and accepts no new scans")
            self._tasks[record.scan_id] = task
            self._queue.append(record.scan_id)
            if self.store.shared:
                self._wake.set()
            else:
                self._active[record.scan_id] = record
                self._changed[record.scan_id] = anyio.Event()
                self._send.send_nowait(record.scan_id)
        finally:
            self._admitting -= 1
        log.info("scan %s queued (%s, engine %s, origin %s)", record.scan_id, task.scanner, task.engine, origin)
        return record.model_copy()

    def _placement(self, task: ScanTask) -> Placement:
        """Where ``task`` may run once queued: as the planner says on a server that takes others'
        scans too (``rebuild``); else only here, since a stdio server or the CLI never hands its
        scans over, and a replica pool may not even exist to take them."""
        return task.placement if self._rebuild is not None else OWN_SCANS_ONLY

    async def wait(
        self, scan_id: str, timeout_s: float, on_progress: ProgressCallback | None = None, tick_s: float = 1.0
    ) -> ScanRecord:
        """Wait up to ``timeout_s`` for the scan to finish; return its record either way.

        ``on_progress`` is called about every ``tick_s`` and on each change while waiting (for a
        scan another replica runs: every half second, from the database). Cancelling the wait
        does not cancel the scan.
        """
        with anyio.move_on_after(max(0.0, timeout_s)):
            while True:
                record = self._active.get(scan_id)
                if record is None:
                    if not self.store.shared:
                        break
                    # Another replica may run it: its progress and end are seen in the database.
                    stored = await self.status(scan_id)
                    if stored.finished:
                        break
                    if on_progress is not None:
                        await on_progress(stored)
                    await anyio.sleep(min(tick_s, _REMOTE_CANCEL_POLL_S / 2))
                    continue
                if on_progress is not None:
                    await on_progress(record.model_copy())
                event = self._changed.get(scan_id)
                if event is None:
                    break
                with anyio.move_on_after(tick_s):
                    await event.wait()
        return await self.status(scan_id)

    # ------------------------------------------------------------------ reads

    async def status(self, scan_id: str | None = None) -> ScanRecord:
        """The record of ``scan_id``, or of the latest scan (metrics scrapes excluded) when None."""
        if scan_id is None:
            record = await self.store.latest()
            if record is None:
                raise ScanNotFound("no scans yet")
            scan_id = record.scan_id
        active = self._active.get(scan_id) or self._unsaved.get(scan_id)
        if active is not None:
            return active.model_copy()
        record = await self.store.get(scan_id)
        if record is None:
            raise ScanNotFound(f"no scan with id {scan_id!r} (it may have been deleted)")
        return record

    async def status_with_output(self, scan_id: str) -> tuple[ScanRecord, Output | None]:
        """``status`` and, once the scan is stored finished, its raw output, read together."""
        active = self._active.get(scan_id) or self._unsaved.get(scan_id)
        if active is not None:
            return active.model_copy(), None
        found = await self.store.get_with_output(scan_id)
        if found is None:
            raise ScanNotFound(f"no scan with id {scan_id!r} (it may have been deleted)")
        return found

    async def latest_finished(self, scanner: str | None = None) -> ScanRecord:
        record = await self.store.latest(finished_only=True, scanner=scanner)
        if record is None:
            raise ScanNotFound("no finished scans yet")
        return record

    async def raw_output(self, scan_id: str) -> tuple[bytes, str] | None:
        return await self.store.raw_output(scan_id)

    async def open_output(self, scan_id: str) -> Output | None:
        return await self.store.open_output(scan_id)

    async def items(
        self, scan_id: str, item_type: str, filt: ItemFilter, limit: int, cursor: str | None
    ) -> ItemPage:
        return await self.store.items(scan_id, item_type, filt, limit, cursor)

    async def list(
        self, scanner: str | None = None, status: str | None = None, limit: int = 20, offset: int = 0
    ) -> tuple[list[ScanRecord], int]:
        records, total = await self.store.list(scanner=scanner, status=status, limit=limit, offset=offset)
        # Active scans change faster than the store is written; show the live view.
        return [self._active.get(r.scan_id, r).model_copy() for r in records], total

    # ------------------------------------------------------------------ delete / cancel

    async def delete(self, scan_id: str, *, purge: bool = True) -> None:
        """``purge`` False: the record goes now, its output and items at ``purge`` (``store.delete``)."""
        if scan_id in self._active:
            raise ScanBusy(f"scan {scan_id} is still {self._active[scan_id].status.value}; cancel it first")
        if self.store.shared and scan_id not in self._unsaved:
            other = await self.store.get(scan_id)
            if other is not None and not other.finished:  # running on another replica
                raise ScanBusy(f"scan {scan_id} is still {other.status.value}; cancel it first")
        held = self._unsaved.pop(scan_id, None)
        if await self.store.delete([scan_id], purge=purge) == 0 and held is None:
            raise ScanNotFound(f"no scan with id {scan_id!r}")

    async def purge(self, scan_id: str) -> None:
        await self.store.purge([scan_id])

    async def delete_all(self) -> int:
        if self._active:
            raise ScanBusy("cannot delete all results while a scan is in progress")
        ids = await self.store.finished_ids()
        return await self.store.delete(ids)

    async def cancel(self, scan_id: str, reason: str = "cancelled by request") -> ScanRecord:
        """Cancel a queued or running scan; a finished one is returned unchanged."""
        record = self._active.get(scan_id)
        if record is None:
            if self.store.shared:  # still waiting, wherever it was admitted: settled here and now
                settled = await self._settle_queued(scan_id, reason)
                if settled is not None:
                    return settled
            stored = await self.status(scan_id)  # raises ScanNotFound for unknown ids
            if stored.finished or not self.store.shared or not await self.store.request_cancel(scan_id, reason):
                return stored
            return await self._await_remote_outcome(scan_id)
        if record.status is ScanState.queued and scan_id in self._queue:
            await self._cancel_queued(scan_id, reason)
        else:
            self._cancel_reason[scan_id] = reason
            scope = self._scopes.get(scan_id)
            if scope is not None:
                scope.cancel()
            # Wait for the worker to record the outcome, so the caller sees it: killing takes up to
            # the kill grace, and the outcome is published only once stored (slow on a busy disk).
            event = self._changed.get(scan_id)
            with anyio.move_on_after(self.settings.kill_grace_s + _STORE_SLACK_S):
                while scan_id in self._active and event is not None:
                    await event.wait()
                    event = self._changed.get(scan_id)
        return await self.status(scan_id)

    async def _await_remote_outcome(self, scan_id: str) -> ScanRecord:
        """The record once the replica running ``scan_id`` stored its outcome (or its lease ran out)."""
        with anyio.move_on_after(self.store.lease_s + self.settings.kill_grace_s + _STORE_SLACK_S):
            while True:
                record = await self.status(scan_id)
                if record.finished:
                    return record
                await anyio.sleep(_REMOTE_CANCEL_POLL_S / 2)
        return await self.status(scan_id)

    async def _settle_queued(self, scan_id: str, reason: str) -> ScanRecord | None:
        """Cancel a scan waiting in the shared queue (None when no longer waiting: a claim took it)."""
        settled = await self.store.cancel_queued(scan_id, reason)
        if settled is not None:
            self._tasks.pop(scan_id, None)
            try:
                self._queue.remove(scan_id)
            except ValueError:
                pass
            self._announce(settled)
        return settled

    async def _cancel_queued(self, scan_id: str, reason: str) -> None:
        try:
            self._queue.remove(scan_id)
        except ValueError:
            return
        record = self._active[scan_id]
        record.finished_at = datetime.now(UTC)
        self._tasks.pop(scan_id, None)
        await self._persist_final(record, TaskOutcome(status=ScanState.cancelled, error=reason))

    # ------------------------------------------------------------------ workers

    async def _worker(self, index: int) -> None:
        receive = self._receive.clone()
        while True:
            scan_id = await receive.receive()
            task = self._tasks.pop(scan_id, None)
            if task is None:  # cancelled while queued
                continue
            try:
                self._queue.remove(scan_id)
            except ValueError:
                pass
            self._busy_workers += 1
            try:
                await self._run_task(scan_id, task)
            finally:
                self._busy_workers -= 1

    async def _claim_shared(self) -> None:
        """Run the queued scans the shared queue hands this server (``runner.queue``).

        Claims right after a submission or one of its own scans ending, and polls every
        ``POLL_S`` for scans other replicas admitted and for slots they freed. The claim's
        transaction has marked each scan running under this server's name, so each gets its own
        task here: the global limit already holds. A scan this server admitted runs its own task;
        another's is rebuilt through the planner with this server's settings, and one that cannot
        be rebuilt here is settled ``failed`` with the reason.
        """
        failing = False
        while True:
            with anyio.move_on_after(shared_queue.POLL_S):
                await self._wake.wait()
            self._wake = anyio.Event()  # before the claim: a wake during it is not lost
            if not self._accepting or self.store.read_only or (not self._queue and self._rebuild is None):
                continue
            try:
                claimed, gone = await shared_queue.claim(
                    self.store, self.settings.max_concurrent_scans, set(self._queue), rebuild=self._rebuild is not None
                )
            except KscanError as exc:  # the database is away: /readyz says so; try again next poll
                # Said once, not twice a second for as long as the outage lasts.
                (log.debug if failing else log.error)("claiming queued scans failed: %s", exc)
                failing = True
                continue
            if failing:
                log.info("claiming queued scans works again")
                failing = False
            for scan_id in gone:  # taken by another server, cancelled or deleted
                self._tasks.pop(scan_id, None)
                try:
                    self._queue.remove(scan_id)
                except ValueError:
                    pass
            assert self._tg is not None
            for claim in claimed:
                self._start_claimed(claim)

    def _start_claimed(self, claim: shared_queue.Claimed) -> None:
        record = claim.record
        scan_id = record.scan_id
        task = self._tasks.pop(scan_id, None)
        try:
            self._queue.remove(scan_id)
        except ValueError:
            pass
        self._active[scan_id] = record
        self._changed[scan_id] = anyio.Event()
        if not self._accepting:  # shutdown began while the claim ran: the scan stops as it starts
            self._cancel_reason[scan_id] = "cancelled at server shutdown as it started"
        assert self._tg is not None
        if task is None:
            try:
                if claim.plan is None or self._rebuild is None:
                    raise ValueError("its task exists only in the server that admitted it")
                task = self._rebuild(claim.plan)
            except Exception as exc:  # the planner refuses under this server's settings
                reason = " ".join(str(exc).split()) or type(exc).__name__
                host = self.store.owner[0]
                log.warning("scan %s admitted elsewhere cannot run on %s: %s", scan_id, host, reason)
                record.finished_at = datetime.now(UTC)
                outcome = TaskOutcome(status=ScanState.failed, error=f"server {host} could not start this scan: {reason}")
                self._tg.start_soon(self._refuse_claimed, record, outcome)
                return
            log.info("scan %s admitted by another server runs here (%s, engine %s)", scan_id, task.scanner, task.engine)
        self._tg.start_soon(self._run_task, scan_id, task)

    async def _refuse_claimed(self, record: ScanRecord, outcome: TaskOutcome) -> None:
        self._cancel_reason.pop(record.scan_id, None)
        try:
            await self._persist_final(record, outcome)
        finally:
            self._wake.set()  # its slot is free again

    async def _run_task(self, scan_id: str, task: ScanTask) -> None:
        try:
            with scan_secrets(task.secrets):
                await self._run_one(scan_id, task)
        finally:
            self._wake.set()  # a slot is free: a shared queue may hand this server its next scan

    def _touch(self, scan_id: str) -> None:
        """Wake everything waiting on this scan; the next waiter gets a fresh event."""
        event = self._changed.get(scan_id)
        if event is not None:
            event.set()
        if scan_id in self._active:
            self._changed[scan_id] = anyio.Event()
        else:
            self._changed.pop(scan_id, None)

    async def _save(self, record: ScanRecord) -> None:
        try:
            await self.store.update(record)
        except Exception as exc:  # the store says why in last_error; keep the scan going
            log.error("could not save scan %s: %s", record.scan_id, exc)
        self._touch(record.scan_id)

    async def _run_one(self, scan_id: str, task: ScanTask) -> None:
        record = self._active[scan_id]
        record.status = ScanState.running
        record.phase = "running"
        record.started_at = datetime.now(UTC)
        await self._save(record)
        workdir = Path(tempfile.mkdtemp(prefix=f"mcp-kscan-{scan_id[:8]}-"))
        timeout_s = task.timeout_s or self.settings.default_timeout_s
        deadline = anyio.current_time() + timeout_s
        outcome: TaskOutcome | None = None
        hard_timeout = False
        with anyio.CancelScope() as scope:
            self._scopes[scan_id] = scope
            if scan_id in self._cancel_reason:  # cancel() came while the running state was being saved
                scope.cancel()
            try:
                with anyio.move_on_after(timeout_s + self.settings.kill_grace_s + _HARD_DEADLINE_SLACK_S) as hard:
                    outcome = await task.run(self._context(scan_id, task, workdir, deadline))
                hard_timeout = hard.cancelled_caught
            except Exception as exc:
                log.exception("scan %s: the %s task failed unexpectedly", scan_id, task.engine)
                outcome = TaskOutcome(
                    status=ScanState.failed,
                    error=redact_text(f"internal error while running the scan: {type(exc).__name__}: {exc}"),
                )
        self._scopes.pop(scan_id, None)
        try:
            await self._settle(scan_id, record, task, outcome, scope, hard_timeout, timeout_s)
        finally:
            # After the store: a report file the store keeps as one is linked from here, not copied
            # (runner.report_files); the engine's files go with the directory either way.
            shutil.rmtree(workdir, ignore_errors=True)

    async def _settle(self, scan_id: str, record: ScanRecord, task: ScanTask, outcome: TaskOutcome | None,
                      scope: anyio.CancelScope, hard_timeout: bool, timeout_s: float) -> None:
        """The task's end as its final state: cancelled, timed out or the outcome; stored, then published."""
        if scan_id in self._published:
            await self._settle_published(scan_id, outcome, scope.cancelled_caught or scope.cancel_called or hard_timeout)
            return
        if scope.cancelled_caught or scope.cancel_called:
            reason = self._cancel_reason.pop(scan_id, "cancelled")
            outcome = TaskOutcome(
                status=ScanState.cancelled,
                error=reason,
                raw_output=outcome.raw_output if outcome else None,
                raw_file=outcome.raw_file if outcome else None,
                command=(outcome.command if outcome else None) or record.command,
            )
        elif hard_timeout or outcome is None:
            outcome = TaskOutcome(status=ScanState.timed_out, error=f"the scan did not finish within {timeout_s:g} s")
        record.finished_at = datetime.now(UTC)
        await self._persist_final(record, outcome, tuple(task.secrets))

    def _context(self, scan_id: str, task: ScanTask, workdir: Path, deadline: float) -> TaskContext:
        async def on_start(pid: int, pgid: int, ticks: int | None) -> None:
            try:
                await self.store.set_process_group(scan_id, pgid, ticks)
            except Exception as exc:
                log.error("could not record process group of scan %s: %s", scan_id, exc)

        async def managed_run(argv: list[str], **kwargs: Any) -> ProcessResult:
            kwargs.setdefault("timeout_s", max(0.0, deadline - anyio.current_time()))
            kwargs.setdefault("stdout_cap", self.settings.output_cap_bytes)
            kwargs.setdefault("stderr_cap", self.settings.output_cap_bytes)
            kwargs.setdefault("kill_grace_s", self.settings.kill_grace_s)
            kwargs.setdefault("secrets", tuple(task.secrets))
            kwargs.setdefault("on_start", on_start)
            result = await run_process(argv, **kwargs)
            live = self._active.get(scan_id)
            if live is not None:  # not after the task published its result (``publish``)
                live.command = result.argv
            return result

        async def set_phase(phase: str) -> None:
            record = self._active[scan_id]
            record.phase = phase
            await self._save(record)

        async def set_progress(done: int, total: int, resources: tuple[int, int] | None = None) -> None:
            record = self._active[scan_id]
            record.progress_done, record.progress_total = done, total
            if resources is not None:
                record.resources_done, record.resources_total = resources
            await self._save(record)

        async def publish(outcome: TaskOutcome) -> bool:
            # A task's secrets are scrubbed from the whole report, which needs it whole: not here.
            record = self._active.get(scan_id)
            if task.secrets or outcome.status is not ScanState.succeeded or record is None:
                return False
            self._published.add(scan_id)
            record.finished_at = datetime.now(UTC)
            await self._persist_final(record, outcome, items_pending=True)
            return True

        return TaskContext(
            scan_id=scan_id,
            workdir=workdir,
            deadline=deadline,
            run_process=managed_run,
            set_phase=set_phase,
            set_progress=set_progress,
            standbys=self.standbys,
            publish=publish,
        )

    async def _settle_published(self, scan_id: str, outcome: TaskOutcome | None, stopped: bool) -> None:
        """The end of a task that published its result: store its items, or say why they never come."""
        self._published.discard(scan_id)
        with anyio.CancelScope(shield=True):
            if outcome is not None and outcome.raw_file is not None:
                outcome.raw_file.close()
            if not stopped and outcome is not None and outcome.status is ScanState.succeeded \
                    and outcome.item_rows is not None:
                try:
                    await self.store.finish_items(scan_id, outcome.item_rows, outcome.file_hashes, outcome.return_code)
                    return
                except Exception as exc:
                    reason = str(exc) if isinstance(exc, KscanError) else type(exc).__name__
                    log.error("could not store the findings of scan %s: %s", scan_id, reason)
                    why = f"they could not be stored: {reason}"
            elif stopped:
                why = "the scan was stopped while they were worked out"
            else:
                why = (outcome.error if outcome is not None and outcome.error else "the engine produced none")
            try:
                await self.store.items_failed(scan_id, redact_text(why), outcome.return_code if outcome else None)
            except Exception as exc:  # the next start's recovery says so instead
                log.error("could not record that scan %s has no findings: %s", scan_id, exc)

    async def _persist_final(self, live: ScanRecord, outcome: TaskOutcome, secrets: tuple[str, ...] = (), *,
                             items_pending: bool = False) -> None:
        """Store the final state, then publish it; ``secrets`` (the task's own) are scrubbed from everything stored.

        ``items_pending``: the task published its result before its items (``TaskContext.publish``);
        they are stored when it ends (``_settle_published``).

        The final state is written to a copy: until the store holds the outcome, readers keep
        seeing the scan as queued or running. A caller that sees a final state can therefore read
        the stored result and delete it at once; before, ``GET /v1/results`` could see ``failed``
        while the scan was still being written, and its delete was refused as "still active"
        (issue 12).

        The scanner may write the access key it was given into its report (Kubescape echoes
        its configuration), so the raw report, the parsed report behind the findings and the
        summary are scrubbed too. Nothing is copied when the scan carries no secret.
        """
        record = live.model_copy()
        record.status = outcome.status
        record.phase = None
        if outcome.engine:
            record.engine = outcome.engine
        record.error = redact_text(outcome.error, secrets) if outcome.error else None
        if outcome.command is not None:
            record.command = outcome.command
        record.return_code = outcome.return_code
        record.stderr_tail = redact_text(outcome.stderr_tail, secrets) if outcome.stderr_tail else None
        record.output_truncated = outcome.output_truncated
        summary = outcome.summary
        if summary is not None and secrets:
            summary = summary.model_validate(redact_values(summary.model_dump(mode="json"), secrets))
        record.summary = summary
        if secrets:
            if outcome.raw_file is not None:  # redacting needs the whole text
                with outcome.raw_file as fh:
                    outcome.raw_output, outcome.raw_file = fh.read(), None
            if outcome.raw_output is not None:
                outcome.raw_output = redact_bytes(outcome.raw_output, secrets)
            if outcome.report is not None:
                outcome.report = outcome.report.model_validate(redact_values(outcome.report.model_dump(), secrets))
        record.has_report = outcome.raw_output is not None or outcome.raw_file is not None
        if record.started_at and record.finished_at:
            record.duration_s = round((record.finished_at - record.started_at).total_seconds(), 3)
        with anyio.CancelScope(shield=True):
            try:
                await self._store_final(record, outcome, items_pending)
            finally:
                if outcome.raw_file is not None:
                    outcome.raw_file.close()
        self._active.pop(record.scan_id, None)
        self._touch(record.scan_id)
        self._announce(record)

    def _announce(self, record: ScanRecord) -> None:
        """Log a scan's final state and hand it to the finish hooks."""
        log.info("scan %s %s%s", record.scan_id, record.status.value, f": {record.error}" if record.error else "")
        for hook in self._finish_hooks:
            try:
                hook(record)
            except Exception:
                log.exception("finish hook failed")

    async def _store_final(self, record: ScanRecord, outcome: TaskOutcome, items_pending: bool = False) -> None:
        """Store the outcome; when the database refuses (full disk, read-only), keep the outcome anyway.

        A result that cannot be stored is reported as such: the record says ``failed`` with the
        reason (its summary kept), is written without the report if that still fits, and is
        otherwise held in memory so status calls tell the truth instead of "running" forever.
        """
        try:
            raw = outcome.raw_output if outcome.raw_output is not None else outcome.raw_file
            await self.store.finish(record, raw, outcome.raw_media_type, outcome.report,
                                    outcome.item_rows, outcome.file_hashes, items_pending=items_pending)
        except Exception as exc:
            reason = str(exc) if isinstance(exc, KscanError) else type(exc).__name__
            log.error("could not store the result of scan %s: %s", record.scan_id, reason)
            self._refused_bytes = outcome.raw_size() * 2  # the report and its items
            if record.status is ScanState.succeeded:
                record.status = ScanState.failed
            record.error = (record.error + "; " if record.error else "") + (
                f"the result could not be stored ({reason}); free space or fix the data directory "
                "(mcp-kscan doctor), then run the scan again"
            )
            record.has_report = False
            try:
                await self.store.update(record)
            except Exception:
                self._unsaved[record.scan_id] = record.model_copy()
            return
        self._refused_bytes = 0
        await self._flush_unsaved()
        try:
            await self.store.enforce_retention(self.settings.max_results)
        except Exception as exc:
            log.error("could not apply the results retention limit: %s", exc)

    async def _flush_unsaved(self) -> None:
        """Write outcomes held in memory since the database last refused them."""
        for scan_id, record in list(self._unsaved.items()):
            try:
                await self.store.update(record)
            except Exception:
                return
            self._unsaved.pop(scan_id, None)


__all__ = ["ScanManager", "ACTIVE_STATES"]
