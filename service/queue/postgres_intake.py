"""The PostgreSQL queue's intake: a group commit's deliveries in one statement.

`admit_deliveries()` (postgres.sql) applies the intake rules to a whole
batch, in order, in the statement's own transaction: one round trip and
one commit for every delivery that arrived while the previous batch was
on its way (group_commit.AsyncGroupCommit). It replaced a transaction of
six or more statements per delivery, each a round trip.

One delivery that the database refuses (a payload jsonb cannot hold) must
not fail the others: a batch refused for its data is written again one
delivery at a time, so only that one's caller gets the error.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg

from service.ids import new_id
from service.queue import EVENT_LANE_DELAY, Delivery, Enqueued, QueueFull, lane_of

ADMIT = "SELECT item_at, outcome, admitted_id FROM admit_deliveries(%s::jsonb, %s, %s, %s, %s)"

# A batch that met another replica's in a deadlock (two identical deliveries
# inserted in opposite orders) was rolled back whole: it is tried again.
DEADLOCK_RETRIES = 3

# What a statement may fail with that is about the batch, not the database.
STATEMENT_ERRORS = (psycopg.errors.DeadlockDetected, psycopg.DataError, psycopg.IntegrityError)

Item = tuple[Delivery, str]  # (delivery, request id)
Execute = Callable[[str, tuple[Any, ...]], Awaitable[list[tuple[Any, ...]]]]


def encode(items: list[Item]) -> str:
    """The batch as one JSON array; each payload (already a JSON object) goes in as it is."""
    parts = []
    for delivery, request_id in items:
        task = delivery.first_task
        head = json.dumps(
            {
                "request_id": request_id,
                "key": delivery.key,
                "kind": delivery.kind,
                "task_id": new_id(),
                "task_kind": task.kind,
                "asset_id": task.asset_id,
                "lane": lane_of(delivery.kind),
                "user_token": delivery.user_token,  # sealed already, or None
            }
        )
        parts.append(f'{head[:-1]}, "payload": {delivery.payload}}}')
    return "[" + ",".join(parts) + "]"


def outcome_of(
    item: Item, outcome: str, admitted_id: str | None, retry_after: int
) -> Enqueued | QueueFull:
    if outcome == "stored":
        return Enqueued(admitted_id, duplicate=False)
    if outcome == "duplicate":
        return Enqueued(admitted_id, duplicate=True)
    if outcome == "coalesced":
        return Enqueued(admitted_id, duplicate=False, coalesced=True)
    if outcome == "ignored":
        return Enqueued(None, duplicate=False, ignored=True)
    return QueueFull(retry_after, lane_of(item[0].kind))


async def admit_all(
    execute: Execute,
    items: list[Item],
    *,
    now: float,
    max_backlog: int,
    max_event_backlog: int,
    retry_after: int,
) -> list[Enqueued | BaseException]:
    """Each item's outcome; `execute(sql, params)` runs one statement, autocommitted."""
    params = (encode(items), now, max_backlog, max_event_backlog, EVENT_LANE_DELAY)
    for attempt in range(DEADLOCK_RETRIES):
        try:
            rows = await execute(ADMIT, params)
            break
        except psycopg.errors.DeadlockDetected:
            if attempt == DEADLOCK_RETRIES - 1:
                raise
        except (psycopg.DataError, psycopg.IntegrityError) as exc:
            if len(items) == 1:
                return [exc]
            outcomes: list[Enqueued | BaseException] = []
            for item in items:  # find the one the database refuses
                outcomes += await admit_all(
                    execute,
                    [item],
                    now=now,
                    max_backlog=max_backlog,
                    max_event_backlog=max_event_backlog,
                    retry_after=retry_after,
                )
            return outcomes
    by_place = {row[0]: row for row in rows}
    return [
        outcome_of(item, by_place[at][1], by_place[at][2], retry_after)
        for at, item in enumerate(items, start=1)
    ]
