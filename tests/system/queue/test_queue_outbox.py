"""The outbox's contract, on both backends: events are stored with the task's
completion (and only by the worker that still held it), once per id, fanned
out per destination, sent in order per destination and asset, and pruned
by retention once no send waits."""

import pytest

from service.queue import DELIVERED, PUBLISHED, REFUSED, Delivery, Event, NewTask, event_id
from service.queue.outbox import GIVEN_UP, QUEUED, SENT, Destination
from service.queue.retention import prune_expired

pytestmark = pytest.mark.anyio

WEBHOOK = Destination("webhook")
SLACK = Destination("apprise-1-slack", frozenset({PUBLISHED}))


def event(name: str, asset: str = "a1", kind: str = PUBLISHED, at: float = 1.0) -> Event:
    return Event(event_id(name, kind), kind, asset, {"asset_id": asset, "title": name}, at)


async def running_task(queue, key: str = "k1", asset: str = "a1"):
    stored = Delivery(key, "webhook", "{}", NewTask("build", asset))
    await queue.enqueue(stored, f"req-{key}")
    task = await queue.claim("w1")
    assert task is not None and task.asset_id == asset
    return task


async def test_events_are_stored_with_the_completion(queue, clock):
    task = await running_task(queue)
    await queue.complete(task, None, None, events=[event("one"), event("two")])
    assert await queue.fan_out([WEBHOOK]) == 2
    due = await queue.due_sends(clock())
    # In order per asset: only the head of the line is due.
    assert [s.event.event_id for s in due] == [event("one").event_id]
    assert due[0].event.data == {"asset_id": "a1", "title": "one"}
    assert due[0].event.timestamp == 1.0


async def test_a_worker_that_lost_the_task_stores_no_events(queue, clock):
    task = await running_task(queue)
    clock.now += 61  # its lease lapsed; another worker holds it
    again = await queue.claim("w2")
    assert again is not None
    await queue.complete(task, None, None, events=[event("stale")])
    assert await queue.fan_out([WEBHOOK]) == 0
    await queue.complete(again, None, None, events=[event("fresh")])
    assert await queue.fan_out([WEBHOOK]) == 1


async def test_a_failed_task_stores_its_events(queue, clock):
    task = await running_task(queue)
    await queue.fail(task, "refused", events=[event("no", kind=REFUSED)])
    assert await queue.fan_out([WEBHOOK]) == 1
    assert [s.event.type for s in await queue.due_sends(clock())] == [REFUSED]


async def test_add_events_stores_each_id_once(queue):
    assert await queue.add_events([event("due"), event("due2")]) == 2
    assert await queue.add_events([event("due"), event("due3")]) == 1
    assert await queue.add_events([]) == 0
    assert await queue.fan_out([WEBHOOK]) == 3


async def test_filters_and_destinations(queue, clock):
    await queue.add_events([event("p"), event("d", asset="a2", kind=DELIVERED)])
    await queue.fan_out([WEBHOOK, SLACK])
    due = await queue.due_sends(clock())
    assert sorted((s.destination, s.event.type) for s in due) == [
        ("apprise-1-slack", PUBLISHED),
        ("webhook", PUBLISHED),
        ("webhook", DELIVERED),
    ]
    backlog = await queue.outbox_backlog()
    assert backlog == {"webhook": 2, "apprise-1-slack": 1, "": 0}


async def test_a_failed_send_holds_its_line_only(queue, clock):
    await queue.add_events([event("a1-first"), event("a1-second"), event("a2", asset="a2")])
    await queue.fan_out([WEBHOOK, Destination("other")])
    due = await queue.due_sends(clock())
    first = next(s for s in due if s.destination == "webhook" and s.event.asset_id == "a1")
    await queue.settle_send(first, QUEUED, next_at=clock() + 30, error="HTTP 503")
    due = await queue.due_sends(clock())
    lines = sorted((s.destination, s.event.data["title"]) for s in due)
    # webhook/a1 waits behind its first event; the rest go on.
    assert lines == [("other", "a1-first"), ("other", "a2"), ("webhook", "a2")]
    clock.now += 30
    due = await queue.due_sends(clock())
    again = next(s for s in due if s.destination == "webhook" and s.event.asset_id == "a1")
    assert (again.event.data["title"], again.attempts) == ("a1-first", 1)
    await queue.settle_send(again, SENT, next_at=clock())
    due = await queue.due_sends(clock())
    assert ("webhook", "a1-second") in {(s.destination, s.event.data["title"]) for s in due}
    await queue.settle_send(
        next(s for s in due if s.event.data["title"] == "a1-second"), GIVEN_UP, next_at=clock()
    )
    states = {(r["destination"], r["event_id"]): r["state"] for r in await queue.outbox_sends()}
    assert states[("webhook", event("a1-second").event_id)] == GIVEN_UP
    assert states[("webhook", event("a1-first").event_id)] == SENT


async def test_retention_prunes_finished_events_only(queue, clock):
    await queue.add_events([event("old-sent"), event("old-waiting", asset="a2")])
    await queue.fan_out([WEBHOOK])
    sent = next(s for s in await queue.due_sends(clock()) if s.event.asset_id == "a1")
    await queue.settle_send(sent, SENT, next_at=clock())
    clock.now += 91 * 86_400
    await queue.add_events([event("new", asset="a3")])
    await prune_expired(queue, 90 * 86_400)
    left = [r["event_id"] for r in await queue.outbox_sends()]
    assert left == [event("old-waiting").event_id, event("new").event_id][: len(left)]
    assert event("old-sent").event_id not in left
    # The id is free again once pruned (a receiver drops repeats by it anyway).
    assert await queue.add_events([event("old-sent")]) == 1
