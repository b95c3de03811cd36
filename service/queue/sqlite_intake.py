"""The SQLite queue's intake rules, applied to a group commit's deliveries at once.

In order, each delivery sees the ones before it: a repeat in the same batch
is a duplicate, a second update of one asset is coalesced, a delete
supersedes a waiting refresh. The rows go in a few statements per batch,
not several per delivery: each statement hands the GIL back and forth with
the event loop's thread, and under a burst that hand-over, not SQLite, was
most of a delivery's cost. PostgreSQL applies the same rules in one
statement, `admit_deliveries()` in postgres.sql (postgres_intake.py calls it).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from service.ids import new_id
from service.queue import (
    Delivery,
    Enqueued,
    Lane,
    QueueFull,
    TaskKind,
    lane_of,
    rank_for,
)
from service.queue import sqlite_sql as sql


@dataclass(frozen=True)
class Limits:
    max_backlog: int
    max_event_backlog: int
    retry_after_seconds: int


def admit_all(
    db: sqlite3.Connection, items: list[tuple[Delivery, str, str]], now: float, limits: Limits
) -> list[Enqueued | QueueFull]:
    """Store what may be stored of (delivery, request id, payload) `items`; each one's outcome."""
    batch = _Batch(db, now, [delivery.key for delivery, _, _ in items])
    outcomes: list[Enqueued | QueueFull] = []
    for delivery, request_id, payload in items:
        try:
            outcomes.append(_admit(batch, delivery, request_id, payload, limits))
        except QueueFull as full:
            outcomes.append(full)
    batch.flush()
    return outcomes


def _admit(
    batch: _Batch, delivery: Delivery, request_id: str, payload: str, limits: Limits
) -> Enqueued:
    """Store one delivery, or say why not."""
    existing = batch.stored.get(delivery.key)
    if existing is not None:
        return Enqueued(existing, duplicate=True)
    lane, task = lane_of(delivery.kind), delivery.first_task
    if lane == Lane.EVENT and task.asset_id is not None:
        # These rules read the tasks table: what this batch holds so far
        # must be in it first.
        db = batch.flush()
        if db.execute(sql.KNOWN_ASSET, (task.asset_id, task.asset_id)).fetchone() is None:
            return Enqueued(None, duplicate=False, ignored=True)
        if task.kind == TaskKind.REFRESH:
            pending = db.execute(sql.PENDING_REFRESH, (task.asset_id,)).fetchone()
            if pending is not None:
                return Enqueued(pending["request_id"], duplicate=False, coalesced=True)
        elif task.kind == TaskKind.WITHDRAW:
            superseded = db.execute(sql.SUPERSEDE_REFRESH, (batch.now, task.asset_id))
            batch.waiting[Lane.EVENT] -= superseded.rowcount
    limit = limits.max_event_backlog if lane == Lane.EVENT else limits.max_backlog
    if batch.waiting[lane] >= limit:
        raise QueueFull(limits.retry_after_seconds, lane)
    batch.add(delivery, request_id, payload, lane)
    return Enqueued(request_id, duplicate=False)


class _Batch:
    """The deliveries of one group commit, written together once admitted.

    It knows, from one read each, which of the batch's keys are already
    stored and how many tasks wait in each lane; it keeps both current as
    deliveries are admitted, so the rules need no statement per delivery.
    """

    def __init__(self, db: sqlite3.Connection, now: float, keys: list[str]) -> None:
        self.db, self.now = db, now
        rows = db.execute(
            "SELECT delivery_key, request_id FROM requests"
            " WHERE delivery_key IN (SELECT value FROM json_each(?))",
            (json.dumps(keys),),
        )
        self.stored: dict[str, str] = {row[0]: row[1] for row in rows}
        self.waiting = {Lane.CLICK: 0, Lane.EVENT: 0}
        for row in db.execute("SELECT lane, n FROM task_counts WHERE state = 'queued'"):
            self.waiting[row[0]] = int(row[1])
        self._requests: list[str] = []
        self._tasks: list[tuple[Any, ...]] = []

    def add(self, delivery: Delivery, request_id: str, payload: str, lane: Lane) -> None:
        now, task = self.now, delivery.first_task
        rank = rank_for(lane, now)
        # The payload is already a JSON object: it goes into the batch's array
        # as it is, not escaped into a string (that was most of the encoding).
        head = json.dumps([request_id, delivery.key, delivery.kind])
        token = json.dumps(delivery.user_token)  # sealed already, or null
        self._requests.append(f"{head[:-1]},{payload},{now!r},{token}]")
        self._tasks.append((new_id(), request_id, task.kind, task.asset_id, now, lane, rank))
        self.stored[delivery.key] = request_id
        self.waiting[lane] += 1

    def flush(self) -> sqlite3.Connection:
        """Write what was admitted so far; the connection, for rules that read."""
        if self._requests:
            self.db.execute(sql.INSERT_REQUESTS, ("[" + ",".join(self._requests) + "]",))
            self.db.execute(sql.INSERT_TASKS, (json.dumps(self._tasks),))
            self._requests, self._tasks = [], []
        return self.db
