"""Open work in the queue (service/queue/work_sql.py), on both backends:
what builds record, what deliveries change, what the due-date check reads."""

import json

import pytest

from service.queue import Delivery, NewTask, Work
from service.queue.sqlite import SQLiteQueue
from tests.support.queue import HOUR, LIMITS, published, work

pytestmark = pytest.mark.anyio


async def delivered_by_task(queue, item: Work, language: str, key: str) -> None:
    """A deliver task of `language` from the folder that ended well."""
    payload = {"folder": item.folder, "asset_id": item.asset_id, "language": language}
    await queue.enqueue(
        Delivery(key, "deliver", json.dumps(payload), NewTask("deliver", item.asset_id)), key
    )
    task = await queue.claim("w")
    assert task is not None and task.kind == "deliver"
    await queue.complete(task)


def folders(rows) -> list[str]:
    return [row["folder"] for row in rows]


async def test_what_is_due_soon_or_past_due_and_not_told_yet(queue, clock):
    now = clock.now
    overdue = work("a1", now - 2 * HOUR, ["en", "fr"])
    soon = work("a2", now + 5 * HOUR, ["en"])
    later = work("a3", now + 48 * HOUR, ["en"])
    undated = work("a4", None, ["en"])
    await published(queue, later, soon, undated, overdue)
    rows = await queue.work_to_notify(now, now + 24 * HOUR)
    assert folders(rows) == [overdue.folder, soon.folder]  # due first
    first = rows[0]
    assert first["missing"] == ["en", "fr"] and first["title"] == "Title a1"
    assert (first["request_id"], first["due_date"]) == ("req-a1", overdue.due_date)
    assert first["due_at"] == overdue.due_at and first["overdue_sent_for"] is None
    assert folders(await queue.work_to_notify(now, now + 24 * HOUR, limit=1)) == [overdue.folder]

    # Told: not read again for that due date.
    await queue.mark_notified(overdue.folder, overdue.due_at, overdue=True)
    await queue.mark_notified(soon.folder, soon.due_at, overdue=False)
    assert await queue.work_to_notify(now, now + 24 * HOUR) == []
    # The due-soon one once it passes, for its overdue notice.
    later_now = now + 6 * HOUR
    assert folders(await queue.work_to_notify(later_now, later_now)) == [soon.folder]
    # A new due date arms it again; a mark for the old one changes nothing.
    moved = work("a1", now + HOUR, ["en", "fr"])
    await queue.record_work(moved)
    await queue.mark_notified(overdue.folder, overdue.due_at, overdue=True)
    assert folders(await queue.work_to_notify(now, now + 24 * HOUR)) == [overdue.folder]


async def test_work_is_done_once_every_language_asked_for_is_delivered(queue, clock):
    now = clock.now
    item = work("a1", now - HOUR, ["en", "pt-br"])
    await published(queue, item)
    await queue.record_delivered(item.folder, "EN")
    [row] = await queue.work_to_notify(now, now)
    assert row["missing"] == ["pt-br"]
    await queue.record_delivered(item.folder, "pt-BR")
    assert await queue.work_to_notify(now, now) == []
    await queue.record_delivered("Some other [folder]", "en")  # no such work: nothing


async def test_a_build_counts_what_the_folder_delivered_before(queue, clock):
    now = clock.now
    item = work("a1", now - HOUR, ["en", "fr", "de"])
    other = work("a1", now - HOUR, ["en"], folder="Second [a1]")
    await queue.record_bundle(item.asset_id, item.folder, "ready")
    await delivered_by_task(queue, item, "EN", "d1")
    await delivered_by_task(queue, other, "fr", "d2")  # another folder of the asset
    await queue.record_work(item)
    [row] = await queue.work_to_notify(now, now)
    assert row["missing"] == ["fr", "de"]
    # What deliveries recorded stays through the next build (retention may
    # have pruned the tasks by then).
    await queue.record_delivered(item.folder, "de")
    await queue.record_work(item)
    [row] = await queue.work_to_notify(now, now)
    assert row["missing"] == ["fr"]


async def test_no_language_named_is_open_until_a_first_delivery(queue, clock):
    now = clock.now
    item = work("a1", now - HOUR, [])
    await published(queue, item)
    [row] = await queue.work_to_notify(now, now)
    assert row["missing"] == ["*"]
    await queue.record_delivered(item.folder, "de")
    assert await queue.work_to_notify(now, now) == []


async def test_withdrawn_and_retired_bundles_are_not_open_work(queue, clock):
    now = clock.now
    withdrawn, retired, kept = (work(a, now - HOUR, ["en"]) for a in ("a1", "a2", "a3"))
    await published(queue, withdrawn, retired, kept)
    await queue.record_bundle(withdrawn.asset_id, withdrawn.folder, "withdrawn")
    await queue.retire_bundles([retired.folder])
    assert folders(await queue.work_to_notify(now, now)) == [kept.folder]
    # The retired folder's record is gone, not only hidden; the others stay.
    assert await queue.work_of(retired.folder, retired.asset_id) is None
    assert await queue.work_of(withdrawn.folder, withdrawn.asset_id) is not None


async def test_open_work_survives_reopening_the_queue(queue, clock):
    now = clock.now
    item = work("a1", now - HOUR, ["en"])
    await published(queue, item)
    await queue.close()
    await queue.open()
    assert folders(await queue.work_to_notify(now, now)) == [item.folder]


async def test_a_sqlite_queue_made_before_due_dates_gets_the_table(tmp_path, clock):
    import sqlite3

    path = tmp_path / "old.db"
    q = SQLiteQueue(path, **LIMITS, clock=clock)
    await q.open()
    await q.close()
    with sqlite3.connect(path) as db:  # as a file of the previous version was
        db.execute("DROP TABLE due_work")
        db.execute("PRAGMA user_version = 0")  # made before the steps were versioned
    q = SQLiteQueue(path, **LIMITS, clock=clock)
    await q.open()
    try:
        item = work("a1", clock.now - HOUR, ["en"])
        await published(q, item)
        assert folders(await q.work_to_notify(clock.now, clock.now)) == [item.folder]
    finally:
        await q.close()
