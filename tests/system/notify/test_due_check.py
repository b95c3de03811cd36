"""The due-date check (service/notify/due_check.py) over a real queue, with an
injected clock and a recording `emit` standing in for the outbox."""

import anyio
import pytest

from service.notify import due_check
from service.queue import DUE_SOON, OVERDUE, Event, event_id
from service.queue.sqlite import SQLiteQueue
from service.work import leases
from tests.support.clock import FakeClock
from tests.support.outbox import Outbox
from tests.support.queue import HOUR, published, work

pytestmark = pytest.mark.anyio


def checker(queue, outbox, clock, hours: float = 24) -> due_check.DueCheck:
    return due_check.DueCheck(queue, outbox, notify_before_hours=hours, clock=clock)


async def test_due_soon_once_then_overdue_once(queue, clock):
    outbox = Outbox()
    check = checker(queue, outbox, clock)
    item = work("a1", clock.now + 30 * HOUR, ["en", "fr"])
    await published(queue, item)
    assert await check.look() == 0  # not within 24 h yet
    clock.now += 7 * HOUR  # due in 23 h
    assert await check.look() == 1
    [soon] = outbox.events
    assert soon.type == DUE_SOON and soon.asset_id == "a1" and soon.timestamp == clock.now
    assert soon.event_id == event_id(item.folder, "1970-01-13T19:46:40Z", "due_soon")
    assert soon.data == {
        "asset_id": "a1",
        "title": "Title a1",
        "folder": item.folder,
        "languages": ["en", "fr"],
        "missing_languages": ["en", "fr"],
        "due_date": item.due_date,
        "request_id": "req-a1",
    }
    for _ in range(3):
        clock.now += 60
        assert await check.look() == 0  # once
    await queue.record_delivered(item.folder, "fr")
    clock.now += 24 * HOUR  # past due, English still missing
    assert await check.look() == 1
    assert await check.look() == 0
    assert outbox.kinds() == [(DUE_SOON, item.folder), (OVERDUE, item.folder)]
    overdue = outbox.events[1]
    assert overdue.data["missing_languages"] == ["en"]
    assert overdue.event_id == event_id(item.folder, "1970-01-13T19:46:40Z", "overdue")


async def test_work_first_seen_past_due_is_overdue_only(queue, clock):
    outbox = Outbox()
    item = work("a1", clock.now - 3 * HOUR, ["en"])
    await published(queue, item)
    assert await checker(queue, outbox, clock).look() == 1
    assert await checker(queue, outbox, clock).look() == 0
    assert outbox.kinds() == [(OVERDUE, item.folder)]


async def test_every_language_delivered_tells_nothing(queue, clock):
    outbox = Outbox()
    check = checker(queue, outbox, clock)
    item = work("a1", clock.now + 2 * HOUR, ["en", "fr"])
    await published(queue, item)
    await queue.record_delivered(item.folder, "en")
    await queue.record_delivered(item.folder, "fr")
    assert await check.look() == 0
    clock.now += 3 * HOUR
    assert await check.look() == 0
    assert outbox.events == []


async def test_withdrawn_work_tells_nothing(queue, clock):
    outbox = Outbox()
    item = work("a1", clock.now - HOUR, ["en"])
    await published(queue, item)
    await queue.record_bundle(item.asset_id, item.folder, "withdrawn")
    assert await checker(queue, outbox, clock).look() == 0


async def test_a_new_due_date_is_told_anew(queue, clock):
    outbox = Outbox()
    check = checker(queue, outbox, clock)
    item = work("a1", clock.now + HOUR, ["en"])
    await published(queue, item)
    assert await check.look() == 1
    moved = work("a1", clock.now + 2 * HOUR, ["en"])
    await queue.record_work(moved)  # the next build, with a later date
    assert await check.look() == 1
    assert await check.look() == 0
    first, second = outbox.events
    assert (first.type, second.type) == (DUE_SOON, DUE_SOON)
    assert first.event_id != second.event_id
    assert second.data["due_date"] == moved.due_date
    # The same date again: the same id as before, so the outbox stores nothing.
    await queue.record_work(item)
    assert await check.look() == 0  # emitted again, stored once
    assert len(outbox.events) == 2


async def test_without_notice_before_only_overdue_is_told(queue, clock):
    outbox = Outbox()
    check = checker(queue, outbox, clock, hours=0)
    item = work("a1", clock.now + HOUR, ["en"])
    await published(queue, item)
    assert await check.look() == 0
    clock.now += 2 * HOUR
    assert await check.look() == 1
    assert outbox.kinds() == [(OVERDUE, item.folder)]


async def test_an_outbox_away_loses_nothing(queue, clock):
    outbox = Outbox()
    check = checker(queue, outbox, clock)
    item = work("a1", clock.now - HOUR, ["en"])
    await published(queue, item)
    outbox.fail = True
    with pytest.raises(RuntimeError):
        await check.look()
    outbox.fail = False
    assert await check.look() == 1
    assert outbox.kinds() == [(OVERDUE, item.folder)]


async def test_a_backlog_is_told_in_batches(queue, clock, monkeypatch):
    monkeypatch.setattr(due_check, "BATCH", 3)
    outbox = Outbox()
    items = [work(f"a{i}", clock.now - i * HOUR, ["en"]) for i in range(1, 8)]
    await published(queue, *items)
    assert await checker(queue, outbox, clock).look() == 7
    assert len({e.event_id for e in outbox.events}) == 7
    # Oldest due date first.
    assert [e.asset_id for e in outbox.events][:3] == ["a7", "a6", "a5"]


async def test_one_process_of_the_deployment_checks(queue, clock):
    calls: list[str] = []
    enough = anyio.Event()

    class Recording(due_check.DueCheck):
        def __init__(self, name: str) -> None:
            super().__init__(queue, Outbox(), notify_before_hours=24, clock=clock)
            self.name = name

        async def look(self) -> int:
            calls.append(self.name)
            if len(calls) >= 5:
                enough.set()
            return 0

    async with anyio.create_task_group() as group:
        for name in ("one", "two"):
            group.start_soon(
                # A lease longer than the test: held by whoever took it first,
                # however slow a look on a busy machine (it runs on the
                # database's clock on PostgreSQL).
                lambda n=name: due_check.keep_checking(
                    Recording(n), queue, n, every=0.01, lease_seconds=60
                )
            )
        with anyio.fail_after(10):
            await enough.wait()
        group.cancel_scope.cancel()
    assert len(set(calls)) == 1  # the lease's holder only
    # Released on stop: the other can take it at once.
    assert await queue.take_lease(leases.DUE_CHECK, "someone else", 60)


def test_the_worker_runs_the_check_beside_its_slots_into_the_outbox(tmp_path):
    from service.work.iconik_jobs import JobReporter
    from service.work.runner import Worker
    from tests.support.service import make_settings

    clock = FakeClock()
    settings = make_settings(
        tmp_path, worker_concurrency=1, retention_days=0, deliver_scan_seconds=0
    )
    stored = anyio.Event()

    class WithOutbox(SQLiteQueue):
        """The queue with the outbox's `add_events` (the sender's branch) recorded."""

        events: list[Event] = []

        async def add_events(self, events: list[Event]) -> int:
            self.events += events
            stored.set()
            return len(events)

    queue = WithOutbox(settings.sqlite_path, clock=clock)

    async def main() -> None:
        await queue.open()
        await queue.fill_registry([])
        item = work("a1", clock.now - HOUR, ["en"])
        await published(queue, item)
        jobs = JobReporter(iconik=None, queue=queue, enabled=False)
        worker = Worker(
            settings, queue, iconik=None, storage=None, poll_interval=0, jobs=jobs, clock=clock
        )
        try:
            with anyio.fail_after(30):
                async with anyio.create_task_group() as group:
                    group.start_soon(worker.run)
                    await stored.wait()
                    group.cancel_scope.cancel()
        finally:
            await queue.close()
        [event] = queue.events
        assert (event.type, event.data["folder"]) == (OVERDUE, item.folder)

    anyio.run(main)
