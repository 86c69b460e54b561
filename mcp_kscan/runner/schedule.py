"""Scheduled work that fires once across every server sharing a database.

Each replica runs a ``Scheduler`` over the same entries. When an entry's slot comes, every
replica tries to claim (entry, slot) in the ``schedule_fires`` table, whose primary key lets
exactly one insert succeed; that replica submits the scan through its manager like any other,
and records the scan id (or why it could not start) on the claimed row. The others see the
claim taken and move on. No clocks are compared between replicas: the slot, not the moment of
the claim, is the key.

Missed slots (every replica was down): on start, an entry that fired before and missed slots
since fires **once**, for the newest missed slot, then keeps its cadence: a daily scan missed
during a three-day outage runs once, not three times. An entry never fired before waits for
its next slot (adding an entry does not start a scan at once).

The runner knows no scanner: an entry is a key and a cron expression, and ``fire`` is the
caller's (the service layer submits the scan the entry describes). Time comes from a ``Clock``,
so tests step it instead of sleeping.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

import anyio
import anyio.to_thread

from mcp_kscan.errors import KscanError
from mcp_kscan.runner.cron import Cron
from mcp_kscan.runner.db import Conn, Database

log = logging.getLogger(__name__)

T = TypeVar("T")

FIRES_KEPT = timedelta(days=30)
"""Claims older than this (before an entry's newest one) are deleted: the newest always stays."""

RETRY = timedelta(seconds=30)
"""How soon a server looks again after the database refused a claim (or the start)."""

_MAX_NAP_S = 60.0
"""The system clock is looked at again at least this often, so a clock step is noticed."""


class Clock(Protocol):
    def now(self) -> datetime:
        """An aware UTC datetime."""
        ...

    async def sleep_until(self, when: datetime) -> None:
        """Return at ``when`` or earlier (callers look at ``now`` again)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime) -> None:
        await anyio.sleep(min(_MAX_NAP_S, max(0.0, (when - self.now()).total_seconds())))


@dataclass(frozen=True)
class Entry:
    key: str
    """The entry as written, normalised: the same text on every replica names the same schedule."""
    cron: Cron


FireFn = Callable[[Entry, datetime], Awaitable[str]]
"""Start the entry's work for a slot; returns the scan id. A ``KscanError`` is recorded as the reason."""


def slot_text(slot: datetime) -> str:
    """The slot as the ledger keys it: UTC to the minute, so text order is time order."""
    return slot.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


class FireLedger:
    """The ``schedule_fires`` table: one row per (entry, slot) that some server claimed."""

    def __init__(self, db: Database, host: str | None = None) -> None:
        self.db = db
        self.host = host or socket.gethostname()

    async def _run(self, fn: Callable[[Conn], T], write: bool) -> T:
        return await anyio.to_thread.run_sync(self.db.call, fn, write)

    async def last_slot(self, key: str) -> str | None:
        def op(c: Conn) -> str | None:
            row = c.execute("SELECT MAX(slot) FROM schedule_fires WHERE entry=?", (key,)).fetchone()
            return str(row[0]) if row and row[0] is not None else None

        return await self._run(op, False)

    async def claim(self, key: str, slot: datetime, now: datetime) -> bool:
        """True for the one server whose insert made the row; every other gets False."""
        text = slot_text(slot)
        oldest = slot_text(slot - FIRES_KEPT)

        def op(c: Conn) -> bool:
            made = c.execute(
                "INSERT INTO schedule_fires (entry, slot, claimed_at, server_host) VALUES (?,?,?,?)"
                " ON CONFLICT (entry, slot) DO NOTHING",
                (key, text, now.isoformat(), self.host),
            ).rowcount
            if made:
                c.execute("DELETE FROM schedule_fires WHERE entry=? AND slot<?", (key, oldest))
            return bool(made)

        return await self._run(op, True)

    async def record(self, key: str, slot: datetime, scan_id: str | None, error: str | None) -> None:
        def op(c: Conn) -> None:
            c.execute(
                "UPDATE schedule_fires SET scan_id=?, error=? WHERE entry=? AND slot=?",
                (scan_id, error, key, slot_text(slot)),
            )

        await self._run(op, True)

    async def fires(self, key: str) -> list[tuple[str, str | None, str | None]]:
        """(slot, scan id, error) of an entry's claims, oldest first (tests, diagnostics)."""

        def op(c: Conn) -> list[tuple[str, str | None, str | None]]:
            rows = c.execute("SELECT slot, scan_id, error FROM schedule_fires WHERE entry=? ORDER BY slot", (key,))
            return [(str(r[0]), r[1], r[2]) for r in rows]

        return await self._run(op, False)


class Scheduler:
    """Fires each entry's slots once across the servers sharing ``ledger``'s database."""

    def __init__(self, entries: Sequence[Entry], ledger: FireLedger, fire: FireFn, clock: Clock | None = None) -> None:
        self.entries = list(entries)
        self.ledger = ledger
        self.fire = fire
        self.clock: Clock = clock or SystemClock()
        self._done: dict[str, datetime | None] = {}
        """Per entry, the newest slot this server has dealt with (claimed, or seen claimed)."""
        self._started = False
        self._first_look: datetime | None = None
        """When this server first tried to start: entries never fired wait for slots after it,
        even when the database was away then and the start succeeded only later."""
        self.behind = False
        """True after a tick that could not reach the database: ``run`` looks again soon, not at the next slot."""

    async def start(self, now: datetime) -> None:
        """Learn where each entry stands: its newest claimed slot, or ``now`` for one never fired."""
        for entry in self.entries:
            last = await self.ledger.last_slot(entry.key)
            if last is None:
                self._done[entry.key] = entry.cron.latest(now)
            else:
                self._done[entry.key] = datetime.strptime(last, "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC)
        self._started = True

    async def tick(self, now: datetime) -> list[tuple[Entry, datetime, str | None]]:
        """Fire every entry whose newest slot at or before ``now`` is one this server has not dealt
        with and whose claim this server wins. Returns (entry, slot, scan id) of what it fired."""
        if not self._started:
            self._first_look = self._first_look or now
            self.behind = True  # until start() has read the ledger
            await self.start(self._first_look)
        self.behind = False
        fired: list[tuple[Entry, datetime, str | None]] = []
        for entry in self.entries:
            slot = entry.cron.latest(now)
            done = self._done.get(entry.key)
            if slot is None or (done is not None and slot <= done):
                continue
            try:
                won = await self.ledger.claim(entry.key, slot, now)
            except KscanError as exc:  # the database is away: try this slot again on the next tick
                log.error("schedule %r: could not claim the slot %s: %s", entry.key, slot_text(slot), exc)
                self.behind = True
                continue
            self._done[entry.key] = slot
            if not won:
                continue
            scan_id, error = await self._start(entry, slot)
            fired.append((entry, slot, scan_id))
            try:
                await self.ledger.record(entry.key, slot, scan_id, error)
            except KscanError as exc:
                log.error("schedule %r: could not record the fire of %s: %s", entry.key, slot_text(slot), exc)
        return fired

    async def _start(self, entry: Entry, slot: datetime) -> tuple[str | None, str | None]:
        try:
            scan_id = await self.fire(entry, slot)
        except KscanError as exc:  # queue full, no cluster, no binary: said in the log and on the row
            log.error("schedule %r: the scan of %s did not start: %s", entry.key, slot_text(slot), exc)
            return None, str(exc)
        log.info("schedule %r fired for %s: scan %s", entry.key, slot_text(slot), scan_id)
        return scan_id, None

    def next_wake(self, now: datetime) -> datetime:
        """The next slot of any entry; sooner (``RETRY``) while a slot could not be claimed."""
        wake = min(entry.cron.following(now) for entry in self.entries)
        return min(wake, now + RETRY) if self.behind else wake

    async def run(self) -> None:
        """Tick at every slot until cancelled (the app's lifespan owns the task)."""
        while True:
            now = self.clock.now()
            try:
                await self.tick(now)
            except Exception as exc:  # the database away at start, or a bug: the schedule goes on
                self.behind = True
                if isinstance(exc, KscanError):
                    log.error("scheduled scans: %s; trying again in %d s", exc, RETRY.total_seconds())
                else:
                    log.exception("scheduled scans: a tick failed")
            await self.clock.sleep_until(self.next_wake(now))
