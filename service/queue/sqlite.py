"""The embedded queue: one SQLite file, durable before the 202 goes out.

The delivery key is UNIQUE, and every write of the process is committed by
one writer thread (service.queue.sqlite_store, group_commit), so concurrent
identical deliveries are serialised and exactly one of them inserts. The
backlog that decides a 429 is a counter the same transactions keep (by
triggers), not a COUNT(*) that grows with the queue. Status reads and
retention are in sqlite_history.py.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from service.ids import new_id
from service.queue import (
    Delivery,
    Enqueued,
    Event,
    Lane,
    NewTask,
    QueueFull,
    Task,
    TaskKind,
    lane_of,
    rank_for,
    task_sql,
)
from service.queue import sqlite_sql as sql
from service.queue.retry_causes import counts_query
from service.queue.rules import QueueRules
from service.queue.sqlite_intake import Limits, admit_all
from service.queue.sqlite_migrate import migrate
from service.queue.sqlite_outbox import SQLiteOutbox


class SQLiteQueue(QueueRules, SQLiteOutbox):
    def __init__(self, path: str | Path, **options: Any) -> None:
        # options: the limits (rules.QueueRules), then the store's (sqlite_store.py)
        super().__init__(path, **options)
        self._work = anyio.Event()

    def create_schema(self, db: sqlite3.Connection) -> None:
        if db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is None:
            # A new file: pages that retention frees can be handed back to the
            # file system (service.queue.retention); only settable before the
            # first table. An older file keeps reusing its free pages instead.
            # The connection is in WAL mode already, so it takes a VACUUM
            # (of an empty file: instant) for the setting to hold.
            db.execute("PRAGMA auto_vacuum = INCREMENTAL")
            db.execute("VACUUM")
        migrate(db)  # the steps of sqlite.sql this file lacks

    # -- intake -----------------------------------------------------------

    async def enqueue(self, delivery: Delivery, request_id: str) -> Enqueued:
        item = (delivery, request_id, delivery.payload)
        enqueued: Enqueued = await self._submit_item(self._store_deliveries, item)
        if not (enqueued.duplicate or enqueued.coalesced or enqueued.ignored):
            self._signal_work()
        return enqueued

    def _store_deliveries(
        self, db: sqlite3.Connection, items: list[tuple[Delivery, str, str]]
    ) -> list[Enqueued | QueueFull]:
        """Every delivery of a batch, in the writer's one transaction (GroupCommit)."""
        limits = Limits(self.max_backlog, self.max_event_backlog, self.retry_after_seconds)
        return admit_all(db, items, self.clock(), limits)

    def _signal_work(self) -> None:
        # Wakes this process's idle workers at once; workers in other
        # processes find the task on their next poll.
        self._work.set()
        self._work = anyio.Event()

    async def wait_for_work(self, at_most: float) -> None:
        with anyio.move_on_after(at_most):
            await self._work.wait()

    @staticmethod
    def _insert_tasks(
        db: sqlite3.Connection, request_id: str, tasks: list[NewTask], now: float, lane: str
    ) -> None:
        rank = rank_for(lane, now)
        db.executemany(
            sql.INSERT_TASK,
            [
                (new_id(), request_id, t.kind, t.asset_id, now, now, now, lane, rank)
                for t in tasks
                if t.failed is None
            ],
        )
        failed = [t for t in tasks if t.failed is not None]
        if failed:
            db.executemany(
                sql.INSERT_FAILED_TASK,
                [
                    (new_id(), request_id, t.kind, t.asset_id, t.failed, now, now, now, lane, rank)
                    for t in failed
                ],
            )

    # -- worker side ------------------------------------------------------

    async def claim(self, owner: str) -> Task | None:
        def take(db: sqlite3.Connection) -> Task | None:
            now = self.clock()
            row = db.execute(sql.CLAIM, {"now": now}).fetchone()
            if row is None:
                return None
            first_claimed = row["first_claimed_at"] or now
            db.execute(
                "UPDATE tasks SET state = 'running', lease_owner = ?, lease_until = ?,"
                " attempts = attempts + 1, first_claimed_at = ?, updated_at = ?"
                " WHERE task_id = ?",
                (owner, now + self.lease_seconds, first_claimed, now, row["task_id"]),
            )
            return Task(
                task_id=row["task_id"],
                request_id=row["request_id"],
                kind=row["kind"],
                asset_id=row["asset_id"],
                attempts=row["attempts"] + 1,
                owner=owner,
                request_kind=row["request_kind"],
                payload=json.loads(row["payload"]),
                first_claimed_at=first_claimed,
                user_token=row["user_token"] if row["kind"] == TaskKind.EXPAND else None,
            )

        return await self._submit(take)

    async def _owned_update(self, statement: str, params: Callable[[], dict[str, Any]]) -> bool:
        """Update a task this worker holds (task_sql.py); `params` is called
        at commit time, so times read the clock then."""

        def update(db: sqlite3.Connection) -> bool:
            return db.execute(statement, params()).rowcount == 1

        return await self._submit(update)

    @staticmethod
    def _end(db: sqlite3.Connection, task: Task, state: str, error: str | None, now: float) -> bool:
        """Done or failed, and an expand's user token forgotten; False: not held."""
        ended = db.execute(task_sql.END, task_sql.end(task, state, error, now))
        if ended.rowcount == 1 and task.kind == TaskKind.EXPAND:
            db.execute(task_sql.FORGET_USER_TOKEN, {"request_id": task.request_id})
        return ended.rowcount == 1

    async def complete(
        self,
        task: Task,
        children: list[NewTask] | None = None,
        note: str | None = None,
        events: list[Event] | None = None,
    ) -> None:
        def done(db: sqlite3.Connection) -> None:
            now = self.clock()
            if self._end(db, task, "done", note, now):
                if children:
                    lane = lane_of(task.request_kind)
                    self._insert_tasks(db, task.request_id, children, now, lane)
                if events:  # the outbox: with the change, or not at all
                    self._store_events(db, events, now)

        await self._submit(done)
        if children or events or task.asset_id is not None:
            self._signal_work()  # new tasks, an asset free again, or events to send

    async def _requeue(self, task: Task, error: str, wait: float, refund: int) -> None:
        await self._owned_update(
            task_sql.REQUEUE, lambda: task_sql.requeue(task, error, wait, refund, self.clock())
        )

    async def fail(self, task: Task, error: str, events: list[Event] | None = None) -> None:
        def failed(db: sqlite3.Connection) -> None:
            now = self.clock()
            if self._end(db, task, "failed", error, now) and events:  # a refused delivery says so
                self._store_events(db, events, now)

        await self._submit(failed)
        if events:
            self._signal_work()

    async def extend_lease(self, task: Task) -> bool:
        """Renew the lease; False when this worker no longer holds the task."""
        return await self._owned_update(
            task_sql.EXTEND_LEASE,
            lambda: task_sql.extend_lease(task, self.lease_seconds, self.clock()),
        )

    async def set_job_id(self, request_id: str, job_id: str) -> None:
        def store(db: sqlite3.Connection) -> None:
            db.execute(task_sql.SET_JOB_ID, {"job_id": job_id, "request_id": request_id})

        await self._submit(store)

    # -- observation ------------------------------------------------------

    async def backlog(self) -> int:
        def count() -> int:
            row = (
                self._connection()
                .execute("SELECT sum(n) FROM task_counts WHERE state IN ('queued', 'running')")
                .fetchone()
            )
            return int(row[0] or 0)

        return await self._run(count)

    async def backlog_by_lane(self) -> dict[str, int]:
        def count() -> dict[str, int]:
            rows = self._connection().execute(
                "SELECT lane, sum(n) AS n FROM task_counts"
                " WHERE state IN ('queued', 'running') GROUP BY lane"
            )
            return {Lane.CLICK: 0, Lane.EVENT: 0, **{row["lane"]: int(row["n"]) for row in rows}}

        return await self._run(count)

    async def retrying_by_cause(self) -> dict[str, int]:
        """Tasks retrying now by cause (one grouped query; see service.queue.retry_causes)."""
        query, params = counts_query()

        def count() -> dict[str, int]:
            rows = self._connection().execute(query, {**params, "now": self.clock()})
            return {row["cause"]: int(row["n"]) for row in rows}

        return await self._run(count)

    async def ping(self) -> None:
        # The files first (a probe write, in a worker thread: not the
        # writer's time), then a committed write, not just a lock taken and
        # dropped: only that fails on a connection SQLite opened read-only,
        # or on a database it cannot write for any other reason.
        await self._run(self._check_store)

        def beat(db: sqlite3.Connection) -> None:
            # One row, rewritten by every check; created here so the
            # queue's own schema stays out of readiness.
            db.execute(
                "CREATE TABLE IF NOT EXISTS readiness_heartbeat"
                " (id INTEGER PRIMARY KEY CHECK (id = 1), beat_at REAL NOT NULL)"
            )
            db.execute(
                "INSERT INTO readiness_heartbeat (id, beat_at) VALUES (1, ?)"
                " ON CONFLICT (id) DO UPDATE SET beat_at = excluded.beat_at",
                (self.clock(),),
            )

        await self._submit(beat)
