"""The queue on PostgreSQL, for several replicas: same rules as the SQLite queue.

Every replica's receiver and worker share one database. A delivery is
acknowledged only once its transaction committed; its key is UNIQUE, so
concurrent duplicates on any replicas store one request (`ON CONFLICT DO
NOTHING`). Workers claim through `claim_task()` (postgres.sql), which skips
locked rows and keeps one task per asset running at a time; `LISTEN/NOTIFY`
wakes idle workers on every replica as soon as there is work, with a slow
poll as a safety net. The pool, the schema steps and the listener are in
postgres_store.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg

from service.ids import new_id
from service.queue import (
    CLICK,
    EVENT,
    EVENT_LANE_DELAY,
    Delivery,
    Enqueued,
    NewTask,
    QueueFull,
    Task,
    as_observed,
    backoff_delay,
    lane_of,
    rank_after,
)
from service.queue.postgres_store import NOTIFY_CHANNEL, PostgresStore

# The clicking user's token is kept only until the expand task ends (done or failed).
_FORGET_USER_TOKEN = "UPDATE requests SET user_token = NULL WHERE request_id = %s"  # noqa: S105

# An asset the service knows: it has a bundle, or a task waiting or running.
# Until the registry holds the bundles made before it existed, every asset
# may have one, and events are stored (the worker then looks).
_KNOWN_ASSET = (
    "SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM registry_filled)"
    " OR EXISTS (SELECT 1 FROM bundles WHERE asset_id = %s)"
    " OR EXISTS (SELECT 1 FROM tasks WHERE asset_id = %s AND state IN ('queued', 'running'))"
)
_PENDING_REFRESH = (
    "SELECT request_id FROM tasks WHERE asset_id = %s AND kind = 'refresh' AND state = 'queued'"
    " LIMIT 1"
)
# A delete makes a waiting refresh of the same asset pointless.
_SUPERSEDE_REFRESH = (
    "UPDATE tasks SET state = 'done', last_error = 'superseded by a delete event',"
    " updated_at = %s WHERE asset_id = %s AND kind = 'refresh' AND state = 'queued'"
)


class PostgresQueue(PostgresStore):
    def __init__(
        self,
        url: str,
        *,
        max_attempts: int = 8,
        max_backlog: int = 10_000,
        max_event_backlog: int = 10_000,
        lease_seconds: float = 60.0,
        retry_after_seconds: int = 30,
        clock: Callable[[], float] = time.time,
        backoff: Callable[[int], float] = backoff_delay,
        pool_size: int = 10,
        timeout: float = 4.0,
    ) -> None:
        super().__init__(url, clock=clock, pool_size=pool_size, timeout=timeout)
        self.max_attempts = max_attempts
        self.max_backlog = max_backlog
        self.max_event_backlog = max_event_backlog
        self.lease_seconds = lease_seconds
        self.retry_after_seconds = retry_after_seconds
        self.backoff = backoff

    # -- intake -----------------------------------------------------------

    async def enqueue(self, delivery: Delivery, request_id: str) -> Enqueued:
        async def insert(cursor: psycopg.AsyncCursor[dict[str, Any]]) -> Enqueued:
            return await self._admit(cursor, delivery, request_id, self.clock())

        return await self._in_transaction(insert)

    async def _admit(
        self,
        cursor: psycopg.AsyncCursor[dict[str, Any]],
        delivery: Delivery,
        request_id: str,
        now: float,
    ) -> Enqueued:
        """Store one delivery in the caller's transaction, or say why not (same rules as SQLite)."""
        lane, task = lane_of(delivery.kind), delivery.first_task
        if lane == EVENT and task.asset_id is not None:
            # Events about one asset are admitted one at a time, so two
            # updates arriving together still leave one pending refresh.
            await cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtext('caption-bridge intake'), hashtext(%s))",
                (task.asset_id,),
            )
        await cursor.execute(
            "SELECT request_id FROM requests WHERE delivery_key = %s", (delivery.key,)
        )
        existing = await cursor.fetchone()
        if existing is not None:
            return Enqueued(existing["request_id"], duplicate=True)
        if lane == EVENT and task.asset_id is not None:
            await cursor.execute(_KNOWN_ASSET, (task.asset_id, task.asset_id))
            if await cursor.fetchone() is None:
                return Enqueued(None, duplicate=False, ignored=True)
            if task.kind == "refresh":
                await cursor.execute(_PENDING_REFRESH, (task.asset_id,))
                pending = await cursor.fetchone()
                if pending is not None:
                    return Enqueued(pending["request_id"], duplicate=False, coalesced=True)
            elif task.kind == "withdraw":
                await cursor.execute(_SUPERSEDE_REFRESH, (now, task.asset_id))
        limit = self.max_event_backlog if lane == EVENT else self.max_backlog
        await cursor.execute(
            "SELECT count(*) AS n FROM tasks WHERE lane = %s AND state = 'queued'", (lane,)
        )
        waiting = await cursor.fetchone()
        if waiting is not None and waiting["n"] >= limit:
            raise QueueFull(self.retry_after_seconds, lane)
        await cursor.execute(
            "INSERT INTO requests (request_id, delivery_key, kind, payload, received_at,"
            " user_token) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (delivery_key) DO NOTHING"
            " RETURNING request_id",
            (request_id, delivery.key, delivery.kind, delivery.payload, now, delivery.user_token),
        )
        if await cursor.fetchone() is None:  # a concurrent twin committed first
            await cursor.execute(
                "SELECT request_id FROM requests WHERE delivery_key = %s", (delivery.key,)
            )
            twin = await cursor.fetchone()
            assert twin is not None
            return Enqueued(twin["request_id"], duplicate=True)
        await self._insert_tasks(cursor, request_id, [task], now, lane)
        return Enqueued(request_id, duplicate=False)

    @staticmethod
    async def _insert_tasks(
        cursor: psycopg.AsyncCursor[dict[str, Any]],
        request_id: str,
        tasks: list[NewTask],
        now: float,
        lane: str,
    ) -> None:
        rank = now + (EVENT_LANE_DELAY if lane == EVENT else 0.0)
        # A child with `failed` is stored already failed, with its reason.
        await cursor.executemany(
            "INSERT INTO tasks (task_id, request_id, kind, asset_id, state, last_error,"
            " not_before, created_at, updated_at, lane, rank_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [
                (
                    new_id(),
                    request_id,
                    t.kind,
                    t.asset_id,
                    "queued" if t.failed is None else "failed",
                    t.failed,
                    now,
                    now,
                    now,
                    lane,
                    rank,
                )
                for t in tasks
            ],
        )
        await cursor.execute("SELECT pg_notify(%s, '')", (NOTIFY_CHANNEL,))

    # -- worker side ------------------------------------------------------

    async def claim(self, owner: str) -> Task | None:
        async def take(cursor: psycopg.AsyncCursor[dict[str, Any]]) -> Task | None:
            await cursor.execute(
                "SELECT * FROM claim_task(%s, %s, %s)", (owner, self.clock(), self.lease_seconds)
            )
            row = await cursor.fetchone()
            if row is None:
                return None
            await cursor.execute(
                "SELECT kind, payload, user_token FROM requests WHERE request_id = %s",
                (row["request_id"],),
            )
            request = await cursor.fetchone()
            assert request is not None
            return Task(
                task_id=row["task_id"],
                request_id=row["request_id"],
                kind=row["kind"],
                asset_id=row["asset_id"],
                attempts=row["attempts"],
                owner=owner,
                request_kind=request["kind"],
                payload=request["payload"],
                first_claimed_at=row["first_claimed_at"],
                user_token=request["user_token"] if row["kind"] == "expand" else None,
            )

        return await self._in_transaction(take)

    async def _owned_update(self, task: Task, sql: str, params: tuple[Any, ...]) -> bool:
        """Update the task only while this worker still holds its lease."""

        async def update(cursor: psycopg.AsyncCursor[dict[str, Any]]) -> bool:
            await cursor.execute(
                sql + " WHERE task_id = %s AND lease_owner = %s AND state = 'running'",
                (*params, task.task_id, task.owner),
            )
            return cursor.rowcount == 1

        return await self._in_transaction(update)

    async def complete(
        self, task: Task, children: list[NewTask] | None = None, note: str | None = None
    ) -> None:
        async def done(cursor: psycopg.AsyncCursor[dict[str, Any]]) -> None:
            now = self.clock()
            await cursor.execute(
                "UPDATE tasks SET state = 'done', lease_owner = NULL, lease_until = NULL,"
                " last_error = %s, updated_at = %s"
                " WHERE task_id = %s AND lease_owner = %s AND state = 'running'",
                (note, now, task.task_id, task.owner),
            )
            if cursor.rowcount == 1:
                if task.kind == "expand":
                    await cursor.execute(_FORGET_USER_TOKEN, (task.request_id,))
                if children:
                    lane = lane_of(task.request_kind)
                    await self._insert_tasks(cursor, task.request_id, children, now, lane)
                elif task.asset_id is not None:
                    # The asset is free again: a waiting task of it may run now.
                    await cursor.execute("SELECT pg_notify(%s, '')", (NOTIFY_CHANNEL,))

        await self._in_transaction(done)

    async def retry(
        self, task: Task, error: str, delay: float | None = None, count_attempt: bool = True
    ) -> bool:
        """Put the task back for later; False when it has no attempts left and failed."""
        if count_attempt and task.attempts >= self.max_attempts:
            await self.fail(task, f"{error} (gave up after {task.attempts} attempts)")
            return False
        wait = self.backoff(task.attempts) if delay is None else delay
        now = self.clock()
        refund = 0 if count_attempt else 1
        await self._owned_update(
            task,
            "UPDATE tasks SET state = 'queued', lease_owner = NULL, lease_until = NULL,"
            " attempts = attempts - %s, not_before = %s, rank_at = %s, last_error = %s,"
            " updated_at = %s",
            (refund, now + wait, rank_after(task, now + wait), error, now),
        )
        return True

    async def fail(self, task: Task, error: str) -> None:
        async def failed(cursor: psycopg.AsyncCursor[dict[str, Any]]) -> None:
            await cursor.execute(
                "UPDATE tasks SET state = 'failed', lease_owner = NULL, lease_until = NULL,"
                " last_error = %s, updated_at = %s"
                " WHERE task_id = %s AND lease_owner = %s AND state = 'running'",
                (error, self.clock(), task.task_id, task.owner),
            )
            if cursor.rowcount == 1 and task.kind == "expand":
                await cursor.execute(_FORGET_USER_TOKEN, (task.request_id,))

        await self._in_transaction(failed)

    async def extend_lease(self, task: Task) -> bool:
        now = self.clock()
        return await self._owned_update(
            task,
            "UPDATE tasks SET lease_until = %s, updated_at = %s",
            (now + self.lease_seconds, now),
        )

    async def set_job_id(self, request_id: str, job_id: str) -> None:
        async def store(cursor: psycopg.AsyncCursor[dict[str, Any]]) -> None:
            await cursor.execute(
                "UPDATE requests SET job_id = %s WHERE request_id = %s", (job_id, request_id)
            )

        await self._in_transaction(store)

    # -- observation ------------------------------------------------------

    async def backlog(self) -> int:
        [row] = await self._read(
            "SELECT count(*) AS n FROM tasks WHERE state IN ('queued', 'running')"
        )
        return int(row["n"])

    async def backlog_by_lane(self) -> dict[str, int]:
        rows = await self._read(
            "SELECT lane, count(*) AS n FROM tasks WHERE state IN ('queued', 'running')"
            " GROUP BY lane"
        )
        return {CLICK: 0, EVENT: 0, **{row["lane"]: int(row["n"]) for row in rows}}

    async def ping(self) -> None:
        """Readiness: the queue takes a write (a read-only or full database fails here)."""

        async def write(cursor: psycopg.AsyncCursor[dict[str, Any]]) -> None:
            await cursor.execute(
                "INSERT INTO readiness_heartbeat (id, beat_at) VALUES (1, %s)"
                " ON CONFLICT (id) DO UPDATE SET beat_at = excluded.beat_at",
                (self.clock(),),
            )

        await self._in_transaction(write)

    async def request_status(self, request_id: str) -> dict[str, Any] | None:
        requests = await self._read(
            "SELECT request_id, kind, payload, received_at, job_id FROM requests"
            " WHERE request_id = %s",
            (request_id,),
        )
        if not requests:
            return None
        request = requests[0]
        tasks = await self._read(
            "SELECT kind, asset_id, state, attempts, last_error, not_before, updated_at,"
            " lease_until FROM tasks WHERE request_id = %s"
            " ORDER BY created_at, asset_id NULLS FIRST",
            (request_id,),
        )
        now = self.clock()
        return {**request, "tasks": [as_observed(t, now) for t in tasks]}

    async def caption_deliveries(
        self, asset_ids: list[str], limit: int = 100
    ) -> list[dict[str, Any]]:
        """Caption files delivered back to these assets (service/deliver.py), latest last."""
        rows = await self._read(
            "SELECT * FROM (SELECT r.request_id, r.received_at, r.payload, t.asset_id,"
            " t.state, t.attempts, t.last_error, t.lease_until FROM tasks t"
            " JOIN requests r USING (request_id)"
            " WHERE t.asset_id = ANY(%s) AND r.kind = 'deliver'"
            " ORDER BY r.received_at DESC LIMIT %s) latest ORDER BY received_at",
            (asset_ids, limit),
        )
        now = self.clock()
        return [as_observed(row, now) for row in rows]

    async def recent_failures(self, limit: int = 20) -> list[dict[str, Any]]:
        return await self._read(
            "SELECT request_id, kind, asset_id, attempts, last_error, updated_at FROM tasks"
            " WHERE state = 'failed' ORDER BY updated_at DESC LIMIT %s",
            (limit,),
        )

    # -- the bundle registry ---------------------------------------------------

    async def record_bundle(self, asset_id: str, folder: str, status: str) -> None:
        async def record(cursor: psycopg.AsyncCursor[dict[str, Any]]) -> None:
            await cursor.execute(
                "INSERT INTO bundles (asset_id, folder, status, updated_at)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (asset_id, folder) DO UPDATE"
                " SET status = excluded.status, updated_at = excluded.updated_at",
                (asset_id, folder, status, self.clock()),
            )

        await self._in_transaction(record)

    async def bundle_folders(self, asset_id: str | None = None) -> list[str]:
        rows = await self._read(
            "SELECT DISTINCT folder FROM bundles WHERE %s::text IS NULL OR asset_id = %s"
            " ORDER BY folder",
            (asset_id, asset_id),
        )
        return [row["folder"] for row in rows]

    async def bundle_records(self, folder: str | None = None) -> list[tuple[str, str, str]]:
        rows = await self._read(
            "SELECT asset_id, folder, status FROM bundles"
            " WHERE %s::text IS NULL OR folder = %s ORDER BY folder, asset_id",
            (folder, folder),
        )
        return [(row["asset_id"], row["folder"], row["status"]) for row in rows]

    async def registry_filled(self) -> bool:
        return bool(await self._read("SELECT 1 FROM registry_filled"))

    async def fill_registry(self, bundles: list[tuple[str, str, str]]) -> None:
        """Record bundles found in storage (asset id, folder, status), once."""

        async def fill(cursor: psycopg.AsyncCursor[dict[str, Any]]) -> None:
            now = self.clock()
            await cursor.executemany(
                "INSERT INTO bundles (asset_id, folder, status, updated_at)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                [(*bundle, now) for bundle in bundles],
            )
            await cursor.execute(
                "INSERT INTO registry_filled (id, filled_at) VALUES (1, %s) ON CONFLICT DO NOTHING",
                (now,),
            )

        await self._in_transaction(fill)
