"""The queue in the database: admission and claims shared by every server on one PostgreSQL.

With PostgreSQL (``MCP_KSCAN_DATABASE_URL``) several server processes (replicas, ``serve
--workers``) share one queue: the ``scans`` rows in state ``queued``. The concurrency limit
(MCP_KSCAN_MAX_CONCURRENT_SCANS) and the queue capacity (MCP_KSCAN_QUEUE_CAPACITY) count every
replica's scans, so N replicas run at most the limit between them, not N times it. Every
replica must be given the same two settings: each applies its own when it admits or claims.

- **Admission** is one transaction under the queue lock: count the waiting and the running
  scans, then insert the new one as ``queued`` or refuse it. Concurrent submissions to any
  replicas never overshoot the capacity, as in one process.
- **Claims** take, under the same lock, the oldest queued scans that fit in the free slots
  (``SELECT … FOR UPDATE SKIP LOCKED``), keep those this server may run, and mark them
  ``running`` under this server's name (owner columns, lease) in the same transaction. The order
  is first come, first served across replicas: a free slot goes to the oldest waiting scan; one
  that only another server may run is left to it, never overtaken.
- **Who may run a scan** is stored with it at admission (``runs_on``; the planner decides,
  ``scan_plan``), with what another server needs to rebuild its task (``plan_json``: the validated
  request, secret-free, and the MCP client's roots that validated its paths):

  - ``anywhere``: cluster scans, kube-bench Jobs. Every replica has the same operator
    configuration (kubeconfig, binaries), so any of them rebuilds the task through the planner
    with its own settings and runs it.
  - ``host:<hostname>``: scans that read the host's files (manifests, a controls config, an
    exceptions file, kube-bench on the node itself). ``serve --workers N`` processes share the
    host and its filesystem; replicas in other pods (another hostname) do not. The host is the
    name ``socket.gethostname()`` gives: a pod's name in Kubernetes.
  - ``process``: a scan that holds what the row must not store (a Kubescape access key), or a
    task no planner built. Only the admitting process has its task.

  The admitting server runs its own task when it claims the scan itself; another rebuilds it
  (``ScanManager``'s ``rebuild`` hook, ``scan_plan.task_from_plan``). Only HTTP servers take
  others' scans (``service.open_manager(replica=True)``): a stdio server or the CLI on the same
  database lives as long as its client or its one scan, on a machine configured its own way, and
  queues its own as ``process`` (``manager.OWN_SCANS_ONLY``): none waits for a claim it would never make. A server that cannot (the
  planner refuses under its settings: no such engine, a path outside its allowed roots) settles
  the scan ``failed`` with a one-line reason naming itself.
- **A dead server** (``kill -9``, a lost node): its running scans are settled ``interrupted``
  once its lease runs out, as before. Its queued scans move: one that may run anywhere waits for
  any server's claim; one bound to its host is adopted by a server on that host (the same host
  tells a dead process by its pid at once). Only the scans no server may take over become
  ``interrupted``, with the reason why they could not move (``ResultsStore.recover_sync``). A
  server that stops cleanly (SIGTERM, a rolling restart) leaves its movable queued scans for the
  others and cancels the rest.
- **Cancels** of a queued scan are settled in the database by whichever server is asked, under
  the row's lock: a claim and a cancel cannot both win. A running scan is cancelled by the
  server that runs it (``ScanManager._remote_cancels``).
- **Waking**: a replica claims at once when something happens in it (a submission, one of its
  scans ending). Scans other replicas admitted, and slots they freed, are found by a poll every
  ``POLL_S`` (a read of one row while nothing waits; the lock only when something does). Polling
  rather than LISTEN/NOTIFY: no second connection per process held open for notifications,
  nothing lost when a connection drops, and half a second of queue latency is nothing beside a
  scan's seconds to minutes.

With SQLite a single server owns the database and ``runner.manager`` keeps its in-memory queue.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from mcp_kscan.runner.db import Conn
from mcp_kscan.runner.records import ADMITTING_PROCESS_ONLY, Placement, ScanRecord, ScanState
from mcp_kscan.runner.store import ResultsStore

POLL_S = 0.5
"""How often a replica looks for a queued scan it may run, or a slot another replica freed."""

_QUEUED = ScanState.queued.value
_RUNNING = ScanState.running.value


async def admit(
    store: ResultsStore, record: ScanRecord, max_running: int, capacity: int,
    placement: Placement = ADMITTING_PROCESS_ONLY,
) -> bool:
    """Insert ``record`` (state ``queued``, runnable where ``placement`` says) unless the shared queue
    is full; False when refused.

    Scans about to take a free slot are not waiting: like the in-memory queue, the capacity
    counts only the queued scans beyond the free slots.
    """

    def op(c: Conn) -> bool:
        store.db.lock_queue(c)
        waiting, running = _counts(c)
        if waiting - max(0, max_running - running) >= capacity:
            return False
        store.insert_row(c, record, placement)
        return True

    return await store.write(op)


@dataclass
class Claimed:
    """A queued scan this server now runs (its row is ``running`` and names this server)."""

    record: ScanRecord
    plan: Mapping[str, Any] | None
    """What the planner rebuilds its task from; None for a scan only its admitter can run."""


async def claim(
    store: ResultsStore, max_running: int, held: Collection[str], *, rebuild: bool
) -> tuple[list[Claimed], list[str]]:
    """Take the scans among the oldest that fit in the free slots that this server may run, mark
    them ``running`` under this server's name, and return them; with the ids of ``held`` that no
    longer wait (another server took them, or they were cancelled or deleted).

    ``held``: the scans this server admitted and holds a task for; only these may it run when they
    are bound to their admitting process. (Not "rows with this server's owner columns": two managers
    in one process share those, and one would take a scan only the other holds a task for.)
    ``rebuild``: this server can rebuild a task from its plan, so it also takes the scans that may
    run anywhere, and those bound to its host.
    """

    def op(c: Conn) -> tuple[list[Claimed], list[str]]:
        if not held and c.execute("SELECT 1 FROM scans WHERE status=? LIMIT 1", (_QUEUED,)).fetchone() is None:
            return [], []  # nothing waits: no lock taken (every replica polls)
        store.db.lock_queue(c)
        gone = _no_longer_queued(c, held)
        _, running = _counts(c)
        free = max_running - running
        if free <= 0:
            return [], gone
        # Strictly first come, first served: a free slot goes to the oldest waiting scan. One that
        # only its own server may run is left for that server (at most a poll away, or settled by
        # the lease sweep when that server died) rather than overtaken.
        # A scan with a cancel request is about to be settled by its replica: it takes no slot.
        rows = c.execute(
            "SELECT scan_id, runs_on FROM scans"
            " WHERE status=? AND cancel_reason IS NULL ORDER BY n LIMIT ?" + store.db.skip_locked,
            (_QUEUED, free),
        ).fetchall()
        mine = [
            scan_id for scan_id, runs_on in rows
            if scan_id in held or (rebuild and runs_on in ("anywhere", store.runs_on("host")))
        ]
        taken = [scan_id for scan_id in mine if store.take_row(c, scan_id)]
        found = store.records_in(c, taken)
        return [Claimed(found[i][0], found[i][1].get("plan")) for i in taken if i in found], gone

    return await store.write(op)


def _no_longer_queued(c: Conn, held: Collection[str]) -> list[str]:
    ids = list(held)
    waiting: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        waiting.update(r[0] for r in c.execute(
            f"SELECT scan_id FROM scans WHERE status=? AND scan_id IN ({','.join('?' * len(chunk))})",
            [_QUEUED, *chunk],
        ))
    return [i for i in ids if i not in waiting]


def _counts(c: Conn) -> tuple[int, int]:
    """(queued, running) scans of every replica."""
    counts = dict(c.execute(
        "SELECT status, COUNT(*) FROM scans WHERE status IN (?,?) GROUP BY status", (_QUEUED, _RUNNING)
    ).fetchall())
    return int(counts.get(_QUEUED, 0)), int(counts.get(_RUNNING, 0))
