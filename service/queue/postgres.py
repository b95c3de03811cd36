"""The queue on PostgreSQL, for several replicas: same rules as the SQLite queue.

Every replica's receiver and worker share one database. A delivery is
acknowledged only once its transaction committed: deliveries that arrive
while the previous batch is on its way are stored together, by one call of
`admit_deliveries()` (group commit: postgres_intake.py). Its key is UNIQUE,
so concurrent duplicates on any replicas store one request (`ON CONFLICT DO
NOTHING`). Workers claim through `claim_task()` (postgres.sql), which skips
locked rows and keeps one task per asset running at a time; `LISTEN/NOTIFY`
wakes idle workers on every replica as soon as there is work, with a slow
poll as a safety net. The pool, the schema steps and the listener are in
postgres_store.py; status reads and retention in postgres_history.py.
"""

from __future__ import annotations

from typing import Any

import psycopg

from service.ids import new_id
from service.queue import (
    Delivery,
    Enqueued,
    Event,
    Lane,
    NewTask,
    QueueUnavailable,
    Task,
    TaskKind,
    lane_of,
    postgres_intake,
    rank_for,
    task_sql,
)
from service.queue.group_commit import AsyncGroupCommit
from service.queue.postgres_outbox import PostgresOutbox
from service.queue.postgres_store import NOTIFY_CHANNEL, _reason
from service.queue.postgres_work import PostgresWork
from service.queue.retry_causes import counts_query, pyformat
from service.queue.rules import QueueRules
from service.queue.work_sql import for_pg

# A claimed task's end, return and lease, and its request's job and user
# token: the statements both backends run (task_sql.py), with %(name)s.
_END, _REQUEUE, _EXTEND_LEASE, _SET_JOB_ID, _FORGET_USER_TOKEN = map(
    for_pg,
    (
        task_sql.END,
        task_sql.REQUEUE,
        task_sql.EXTEND_LEASE,
        task_sql.SET_JOB_ID,
        task_sql.FORGET_USER_TOKEN,
    ),
)

# Which folders hold a bundle of an asset (the primary key), of every asset,
# and who a folder belongs to (bundles_by_folder). Split by argument: a
# generic plan of `%s IS NULL OR asset_id = %s` cannot use an index.
BUNDLE_FOLDERS = "SELECT DISTINCT folder FROM bundles ORDER BY folder"
BUNDLE_FOLDERS_OF = "SELECT folder FROM bundles WHERE asset_id = %s ORDER BY folder"
BUNDLE_RECORDS = "SELECT asset_id, folder, status FROM bundles ORDER BY folder, asset_id"
BUNDLE_RECORDS_OF = (
    "SELECT asset_id, folder, status FROM bundles WHERE folder = %s ORDER BY asset_id"
)


class _Refused(Exception):
    """A statement's own error, carried past the pool's "queue unavailable"."""

    def __init__(self, error: psycopg.Error) -> None:
        super().__init__(str(error))
        self.error = error


class PostgresQueue(QueueRules, PostgresOutbox, PostgresWork):
    def __init__(self, url: str, **options: Any) -> None:
        # options: the limits (rules.QueueRules), then the store's (postgres_store.py)
        super().__init__(url, **options)
        self._intake: AsyncGroupCommit[Enqueued] = AsyncGroupCommit(self._store_deliveries)

    async def close(self) -> None:
        await self._intake.drain()  # what was handed over is written first
        await super().close()

    # -- intake -----------------------------------------------------------

    async def enqueue(self, delivery: Delivery, request_id: str) -> Enqueued:
        # Stored with whatever else arrived meanwhile, in one statement
        # (postgres_intake.py); acknowledged once that has committed.
        outcome: Enqueued = await self._intake.submit((delivery, request_id))
        return outcome

    async def _store_deliveries(
        self, items: list[tuple[Delivery, str]]
    ) -> list[Enqueued | BaseException]:
        async def execute(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
            try:
                async with self._connection() as connection:
                    try:
                        cursor = await connection.execute(sql, params)
                        return await cursor.fetchall()
                    except postgres_intake.STATEMENT_ERRORS as exc:
                        # Not the connection's trouble: admit_all's to handle.
                        raise _Refused(exc) from exc
            except _Refused as refused:
                raise refused.error from None

        try:
            outcomes = await postgres_intake.admit_all(
                execute,
                items,
                now=self.clock(),
                max_backlog=self.max_backlog,
                max_event_backlog=self.max_event_backlog,
                retry_after=self.retry_after_seconds,
            )
        except psycopg.Error as exc:  # deadlocked again and again: nothing was stored
            raise QueueUnavailable(f"{self.description}: {_reason(exc)}") from None
        return [
            QueueUnavailable(f"{self.description}: {_reason(o)}")
            if isinstance(o, psycopg.Error)
            else o
            for o in outcomes
        ]

    @staticmethod
    async def _insert_tasks(
        cursor: psycopg.AsyncCursor[dict[str, Any]],
        request_id: str,
        tasks: list[NewTask],
        now: float,
        lane: str,
    ) -> None:
        rank = rank_for(lane, now)
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
                user_token=request["user_token"] if row["kind"] == TaskKind.EXPAND else None,
            )

        return await self._in_transaction(take)

    async def _update_one(self, statement: str, params: dict[str, Any]) -> bool:
        """One statement of task_sql.py in its own transaction; whether it changed a row."""

        async def update(cursor: psycopg.AsyncCursor[dict[str, Any]]) -> bool:
            await cursor.execute(statement, params)
            return cursor.rowcount == 1

        return await self._in_transaction(update)

    async def _end(
        self,
        cursor: psycopg.AsyncCursor[dict[str, Any]],
        task: Task,
        state: str,
        error: str | None,
        now: float,
    ) -> bool:
        """Done or failed, and an expand's user token forgotten; False: not held."""
        params = task_sql.end(task, state, error, now)
        await cursor.execute(_END, params)
        if cursor.rowcount != 1:
            return False
        if task.kind == TaskKind.EXPAND:
            request = {"request_id": task.request_id}
            await cursor.execute(_FORGET_USER_TOKEN, request)
        return True

    async def complete(
        self,
        task: Task,
        children: list[NewTask] | None = None,
        note: str | None = None,
        events: list[Event] | None = None,
    ) -> None:
        async def done(cursor: psycopg.AsyncCursor[dict[str, Any]]) -> None:
            now = self.clock()
            if await self._end(cursor, task, "done", note, now):
                if events:  # the outbox: with the change, or not at all
                    await self._store_events(cursor, events, now)
                if children:
                    lane = lane_of(task.request_kind)
                    await self._insert_tasks(cursor, task.request_id, children, now, lane)
                elif task.asset_id is not None:
                    # The asset is free again: a waiting task of it may run now.
                    await cursor.execute("SELECT pg_notify(%s, '')", (NOTIFY_CHANNEL,))

        await self._in_transaction(done)

    async def _requeue(self, task: Task, error: str, wait: float, refund: int) -> None:
        await self._update_one(_REQUEUE, task_sql.requeue(task, error, wait, refund, self.clock()))

    async def fail(self, task: Task, error: str, events: list[Event] | None = None) -> None:
        async def failed(cursor: psycopg.AsyncCursor[dict[str, Any]]) -> None:
            now = self.clock()
            if await self._end(cursor, task, "failed", error, now) and events:  # refused
                await self._store_events(cursor, events, now)

        await self._in_transaction(failed)

    async def extend_lease(self, task: Task) -> bool:
        return await self._update_one(
            _EXTEND_LEASE, task_sql.extend_lease(task, self.lease_seconds, self.clock())
        )

    async def set_job_id(self, request_id: str, job_id: str) -> None:
        await self._update_one(_SET_JOB_ID, {"job_id": job_id, "request_id": request_id})

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
        return {Lane.CLICK: 0, Lane.EVENT: 0, **{row["lane"]: int(row["n"]) for row in rows}}

    async def retrying_by_cause(self) -> dict[str, int]:
        """Tasks retrying now by cause (one grouped query; see service.queue.retry_causes)."""
        query, params = counts_query()
        rows = await self._read(pyformat(query), {**params, "now": self.clock()})
        return {row["cause"]: int(row["n"]) for row in rows}

    async def ping(self) -> None:
        """Readiness: the queue takes a write (a read-only or full database fails here)."""

        async def write(cursor: psycopg.AsyncCursor[dict[str, Any]]) -> None:
            await cursor.execute(
                "INSERT INTO readiness_heartbeat (id, beat_at) VALUES (1, %s)"
                " ON CONFLICT (id) DO UPDATE SET beat_at = excluded.beat_at",
                (self.clock(),),
            )

        await self._in_transaction(write)

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
        if asset_id is None:
            rows = await self._read(BUNDLE_FOLDERS)
        else:
            rows = await self._read(BUNDLE_FOLDERS_OF, (asset_id,))
        return [row["folder"] for row in rows]

    async def bundle_records(self, folder: str | None = None) -> list[tuple[str, str, str]]:
        if folder is None:
            rows = await self._read(BUNDLE_RECORDS)
        else:
            rows = await self._read(BUNDLE_RECORDS_OF, (folder,))
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

    # -- leases and the registry's retirements ----------------------------------

    async def take_lease(self, name: str, holder: str, seconds: float) -> bool:
        rows = await self._write_read(
            "INSERT INTO leases AS l (name, holder, expires_at)"
            " VALUES (%(name)s, %(holder)s, extract(epoch FROM clock_timestamp()) + %(seconds)s)"
            " ON CONFLICT (name) DO UPDATE"
            " SET holder = excluded.holder, expires_at = excluded.expires_at"
            " WHERE l.holder = excluded.holder"
            " OR l.expires_at <= extract(epoch FROM clock_timestamp())"
            " RETURNING holder",
            {"name": name, "holder": holder, "seconds": seconds},
        )
        return bool(rows)

    async def release_lease(self, name: str, holder: str) -> None:
        await self._write_read(
            "DELETE FROM leases WHERE name = %(name)s AND holder = %(holder)s RETURNING 1",
            {"name": name, "holder": holder},
        )

    async def retire_bundles(self, folders: list[str]) -> None:
        await self._write_read(
            # A folder gone from the storage is no one's open work either.
            "WITH work AS (DELETE FROM due_work WHERE folder = ANY(%(folders)s))"
            " DELETE FROM bundles WHERE folder = ANY(%(folders)s) RETURNING 1",
            {"folders": folders},
        )

    async def _write_read(self, statement: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        async def run(cursor: psycopg.AsyncCursor[dict[str, Any]]) -> list[dict[str, Any]]:
            await cursor.execute(statement, params)
            return await cursor.fetchall()

        return await self._in_transaction(run)
