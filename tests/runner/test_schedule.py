"""runner/schedule.py: a schedule fires once across servers sharing a database (two managers on one
PostgreSQL, and on one SQLite file), each fire is a scan submitted through the manager, and after
downtime the newest missed slot fires once. Time is stepped through ``tick(now)`` and a fake clock:
nothing here sleeps for a slot."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from mcp_kscan.errors import QueueFull
from mcp_kscan.runner.cron import Cron
from mcp_kscan.runner.manager import ScanManager
from mcp_kscan.runner.records import ScanState
from mcp_kscan.runner.schedule import Entry, FireLedger, Scheduler
from mcp_kscan.settings import Settings

from .taskhelpers import ScriptTask

pytestmark = pytest.mark.anyio

EVERY_6H = Entry(key="0 */6 * * * framework=nsa", cron=Cron.parse("0 */6 * * *"))
DAILY = Entry(key="0 0 * * * kube-bench", cron=Cron.parse("@daily"))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def fire_into(manager: ScanManager, log: list[tuple[str, datetime, str]]) -> Callable:  # type: ignore[type-arg]
    """A fire that submits a real (tiny) scan through the manager, as the service's does."""

    async def fire(entry: Entry, slot: datetime) -> str:
        record = await manager.submit(ScriptTask("print('{}')"), origin="schedule")
        log.append((entry.key, slot, record.scan_id))
        return record.scan_id

    return fire


@asynccontextmanager
async def managers(settings: list[Settings]) -> AsyncIterator[list[ScanManager]]:
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(ScanManager(s)) for s in settings]


async def _fires_once_across(two: list[ScanManager]) -> None:
    fired: list[tuple[str, datetime, str]] = []
    schedulers = [
        Scheduler([EVERY_6H, DAILY], FireLedger(m.store.db, host=f"replica-{i}"), fire_into(m, fired))
        for i, m in enumerate(two)
    ]
    start = at("2026-12-01T05:59")
    for s in schedulers:
        await s.start(start)

    async def tick_all(now: datetime) -> None:
        async with anyio.create_task_group() as tg:  # both replicas reach the slot at the same moment
            for s in schedulers:
                tg.start_soon(s.tick, now)

    await tick_all(at("2026-12-01T06:00"))
    assert [(k, slot) for k, slot, _ in fired] == [(EVERY_6H.key, at("2026-12-01T06:00"))]
    await tick_all(at("2026-12-01T06:00:30"))
    await tick_all(at("2026-12-01T11:59"))
    assert len(fired) == 1  # a slot fires once, however often the replicas look
    await tick_all(at("2026-12-02T00:00:05"))
    assert sorted((k, slot) for k, slot, _ in fired[1:]) == sorted([
        (DAILY.key, at("2026-12-02T00:00")),
        (EVERY_6H.key, at("2026-12-02T00:00")),
    ])

    # Each fire is a scan like any other, readable from both replicas, and the ledger names it.
    ledger = schedulers[1].ledger
    for key, slot, scan_id in fired:
        for m in two:  # the replica running it waits for the end; the other reads the stored record
            await m.wait(scan_id, 60)
        for m in two:
            record = await m.status(scan_id)
            assert record.status is ScanState.succeeded and record.origin == "schedule"
        assert (slot.strftime("%Y-%m-%dT%H:%MZ"), scan_id, None) in await ledger.fires(key)
    assert len(await ledger.fires(EVERY_6H.key)) == 2
    listed, total = await two[0].list()
    assert total == 3 and {r.scan_id for r in listed} == {f[2] for f in fired}


async def test_fires_once_with_two_managers_on_one_postgresql(tmp_path: Path, postgres_url: str) -> None:
    settings = [Settings(data_dir=tmp_path / name, database_url=postgres_url) for name in ("a", "b")]
    async with managers(settings) as two:
        await _fires_once_across(two)


async def test_fires_once_with_two_managers_on_one_sqlite_file(tmp_path: Path) -> None:
    settings = [Settings(data_dir=tmp_path / "shared")] * 2
    async with managers(settings) as two:
        await _fires_once_across(two)


async def test_missed_slots_fire_once_on_catch_up(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    fired: list[tuple[str, datetime, str]] = []
    async with ScanManager(settings) as manager:
        first = Scheduler([DAILY], FireLedger(manager.store.db), fire_into(manager, fired))
        await first.tick(at("2026-12-01T23:00"))  # a new entry waits for its next slot
        assert fired == []
        await first.tick(at("2026-12-02T00:00:10"))
        assert [slot for _, slot, _ in fired] == [at("2026-12-02T00:00")]

    # Down for three days and a half: the restarted server fires the newest missed slot, once.
    async with ScanManager(settings) as manager:
        again = Scheduler([DAILY], FireLedger(manager.store.db), fire_into(manager, fired))
        await again.tick(at("2026-12-05T12:00"))
        await again.tick(at("2026-12-05T12:01"))
        assert [slot for _, slot, _ in fired] == [at("2026-12-02T00:00"), at("2026-12-05T00:00")]
        await again.tick(at("2026-12-06T00:00"))  # and keeps its cadence
        assert [slot for _, slot, _ in fired][-1] == at("2026-12-06T00:00")
        assert [row[0] for row in await again.ledger.fires(DAILY.key)] == [
            "2026-12-02T00:00Z", "2026-12-05T00:00Z", "2026-12-06T00:00Z"]
        for _, _, scan_id in fired:
            assert (await manager.wait(scan_id, 60)).status is ScanState.succeeded


async def test_a_fire_that_cannot_start_is_recorded_once_not_retried(tmp_path: Path) -> None:
    attempts: list[datetime] = []

    async def refuse(entry: Entry, slot: datetime) -> str:
        attempts.append(slot)
        raise QueueFull("the scan queue is full (10 waiting); retry when a scan finishes")

    async with ScanManager(Settings(data_dir=tmp_path)) as manager:
        scheduler = Scheduler([EVERY_6H], FireLedger(manager.store.db), refuse)
        await scheduler.start(at("2026-12-01T05:00"))
        assert await scheduler.tick(at("2026-12-01T06:00")) == [(EVERY_6H, at("2026-12-01T06:00"), None)]
        await scheduler.tick(at("2026-12-01T06:01"))
        assert attempts == [at("2026-12-01T06:00")]
        assert await scheduler.ledger.fires(EVERY_6H.key) == [
            ("2026-12-01T06:00Z", None, "the scan queue is full (10 waiting); retry when a scan finishes")]


class SteppedClock:
    """``sleep_until`` jumps to the wake time at once; after ``stop_after`` sleeps it parks and says so."""

    def __init__(self, now: datetime, stop_after: int) -> None:
        self.current = now
        self.wakes: list[datetime] = []
        self.stop_after = stop_after
        self.parked = anyio.Event()

    def now(self) -> datetime:
        return self.current

    async def sleep_until(self, when: datetime) -> None:
        self.wakes.append(when)
        if len(self.wakes) >= self.stop_after:
            self.parked.set()
            await anyio.Event().wait()
        self.current = when


async def test_run_wakes_at_each_slot_and_fires_it(tmp_path: Path) -> None:
    fired: list[tuple[str, datetime, str]] = []
    clock = SteppedClock(at("2026-12-01T05:00"), stop_after=4)
    async with ScanManager(Settings(data_dir=tmp_path)) as manager:
        scheduler = Scheduler([EVERY_6H, DAILY], FireLedger(manager.store.db), fire_into(manager, fired), clock)
        async with anyio.create_task_group() as tg:
            tg.start_soon(scheduler.run)
            await clock.parked.wait()
            tg.cancel_scope.cancel()
    assert clock.wakes == [at("2026-12-01T06:00"), at("2026-12-01T12:00"), at("2026-12-01T18:00"),
                           at("2026-12-02T00:00")]
    assert [(k, slot) for k, slot, _ in fired] == [
        (EVERY_6H.key, at("2026-12-01T06:00")), (EVERY_6H.key, at("2026-12-01T12:00")),
        (EVERY_6H.key, at("2026-12-01T18:00"))]
    assert timedelta(0) < clock.wakes[-1] - clock.wakes[0]


async def test_a_slot_the_database_could_not_record_is_tried_again(tmp_path: Path) -> None:
    fired: list[tuple[str, datetime, str]] = []
    async with ScanManager(Settings(data_dir=tmp_path)) as manager:
        ledger = FireLedger(manager.store.db)
        scheduler = Scheduler([EVERY_6H], ledger, fire_into(manager, fired))
        await scheduler.start(at("2026-12-01T05:00"))
        manager.store.db.close()  # the database is away when the slot comes
        assert await scheduler.tick(at("2026-12-01T06:00")) == []
        manager.store.db.open()
        won = await scheduler.tick(at("2026-12-01T06:00:30"))  # back: the same slot fires, once
        assert [(e.key, slot) for e, slot, _ in won] == [(EVERY_6H.key, at("2026-12-01T06:00"))]
        assert [row[0] for row in await ledger.fires(EVERY_6H.key)] == ["2026-12-01T06:00Z"]
        assert (await manager.wait(fired[0][2], 60)).status is ScanState.succeeded


class ClockWithOutage(SteppedClock):
    """A stepped clock that reopens the database at the first wake-up (the outage ends)."""

    def __init__(self, now: datetime, stop_after: int, db: object) -> None:
        super().__init__(now, stop_after)
        self.db = db

    async def sleep_until(self, when: datetime) -> None:
        if len(self.wakes) == 0:
            self.db.open()  # type: ignore[attr-defined]
        await super().sleep_until(when)


@pytest.mark.parametrize("outage_at", ["start", "slot"])
async def test_a_database_outage_delays_a_slot_never_loses_it(tmp_path: Path, outage_at: str) -> None:
    """Away at start (the entry was never fired): its first slot after the server came up still
    fires. Away at the slot: the server looks again 30 s later, not at the next slot six hours on."""
    fired: list[tuple[str, datetime, str]] = []
    async with ScanManager(Settings(data_dir=tmp_path)) as manager:
        db = manager.store.db
        begin = at("2026-12-01T05:59:50") if outage_at == "start" else at("2026-12-01T06:00:00")
        clock = ClockWithOutage(begin, stop_after=2, db=db)
        scheduler = Scheduler([EVERY_6H], FireLedger(db), fire_into(manager, fired), clock)
        if outage_at == "slot":
            await scheduler.start(at("2026-12-01T05:59:00"))
        db.close()
        async with anyio.create_task_group() as tg:
            tg.start_soon(scheduler.run)
            await clock.parked.wait()
            tg.cancel_scope.cancel()
        assert [(k, slot) for k, slot, _ in fired] == [(EVERY_6H.key, at("2026-12-01T06:00"))]
        if outage_at == "start":
            assert clock.wakes[0] == at("2026-12-01T06:00")  # the slot came before the retry would have
        else:
            assert clock.wakes[0] == at("2026-12-01T06:00:30")  # the retry, not 12:00
        assert clock.wakes[1] == at("2026-12-01T12:00")
        assert (await manager.wait(fired[0][2], 60)).status is ScanState.succeeded
