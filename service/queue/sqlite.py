"""The embedded queue: one SQLite file, durable before the 202 goes out.

WAL journal with `synchronous=FULL`: a commit that returned is on disk, so a
`kill -9` (or a power cut) right after the 202 loses nothing. The delivery
key is UNIQUE, and each enqueue runs in one `BEGIN IMMEDIATE` transaction,
so concurrent identical deliveries serialise on the write lock and exactly
one of them inserts. Every call runs in a worker thread so the event loop
never waits on disk.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread

from service.queue import (
    Delivery,
    Enqueued,
    NewTask,
    QueueFull,
    QueueUnavailable,
    Task,
    backoff_delay,
)

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    request_id   TEXT PRIMARY KEY,
    delivery_key TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    received_at  REAL NOT NULL,
    job_id       TEXT
);
CREATE TABLE IF NOT EXISTS tasks (
    task_id          TEXT PRIMARY KEY,
    request_id       TEXT NOT NULL REFERENCES requests(request_id),
    kind             TEXT NOT NULL,
    asset_id         TEXT,
    state            TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    not_before       REAL NOT NULL,
    lease_owner      TEXT,
    lease_until      REAL,
    first_claimed_at REAL,
    last_error       TEXT,
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_ready ON tasks(state, not_before);
CREATE INDEX IF NOT EXISTS tasks_by_request ON tasks(request_id);
-- The claim asks "does this asset have a task under a live lease?" on every call.
CREATE INDEX IF NOT EXISTS tasks_by_asset ON tasks(asset_id, state);
-- An asset reached twice (two collections, a repeated id) is one task.
CREATE UNIQUE INDEX IF NOT EXISTS tasks_once ON tasks(request_id, kind, asset_id);
"""


# The next task to run: due (or left behind by a worker whose lease lapsed),
# oldest first, and never one whose asset already has a task running under a
# live lease. The rule lives here, in the claim's own transaction, so it holds
# for every worker of every process sharing the file, not just within one.
_CLAIM = """
SELECT t.*, r.kind AS request_kind, r.payload FROM tasks t
JOIN requests r USING (request_id)
WHERE ((t.state = 'queued' AND t.not_before <= :now)
       OR (t.state = 'running' AND t.lease_until < :now))
  AND (t.asset_id IS NULL OR NOT EXISTS (
        SELECT 1 FROM tasks busy
        WHERE busy.asset_id = t.asset_id AND busy.state = 'running'
          AND busy.lease_until >= :now AND busy.task_id <> t.task_id))
ORDER BY t.not_before, t.created_at
LIMIT 1
"""


class SQLiteQueue:
    def __init__(
        self,
        path: str | Path,
        *,
        max_attempts: int = 8,
        max_backlog: int = 10_000,
        lease_seconds: float = 60.0,
        retry_after_seconds: int = 30,
        busy_timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        backoff: Callable[[int], float] = backoff_delay,
    ) -> None:
        self.path = Path(path)
        self.max_attempts = max_attempts
        self.max_backlog = max_backlog
        self.lease_seconds = lease_seconds
        self.retry_after_seconds = retry_after_seconds
        self.busy_timeout = busy_timeout
        self.clock = clock
        self.backoff = backoff
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()

    # -- plumbing ---------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA foreign_keys=ON")
            self._local.connection = connection
            with self._connections_lock:
                self._connections.append(connection)
        return connection

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        else:
            connection.execute("COMMIT")

    async def _run(self, fn: Callable[[], T]) -> T:
        try:
            return await anyio.to_thread.run_sync(fn)
        except sqlite3.Error as exc:
            raise QueueUnavailable(f"SQLite queue at {self.path}: {exc}") from exc

    # -- lifecycle --------------------------------------------------------

    async def open(self) -> None:
        def create() -> None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = self._connection()
            db.executescript(_SCHEMA)
            # Databases made before Iconik jobs were reported lack the column.
            columns = {row["name"] for row in db.execute("PRAGMA table_info(requests)")}
            if "job_id" not in columns:
                db.execute("ALTER TABLE requests ADD COLUMN job_id TEXT")

        try:
            await self._run(create)
        except OSError as exc:
            raise QueueUnavailable(f"SQLite queue at {self.path}: {exc}") from exc

    async def close(self) -> None:
        with self._connections_lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()

    # -- intake -----------------------------------------------------------

    async def enqueue(self, delivery: Delivery, request_id: str) -> Enqueued:
        def insert() -> Enqueued:
            now = self.clock()
            with self._write() as db:
                existing = db.execute(
                    "SELECT request_id FROM requests WHERE delivery_key = ?", (delivery.key,)
                ).fetchone()
                if existing is not None:
                    return Enqueued(existing["request_id"], duplicate=True)
                waiting = db.execute(
                    "SELECT COUNT(*) FROM tasks WHERE state = 'queued'"
                ).fetchone()[0]
                if waiting >= self.max_backlog:
                    raise QueueFull(self.retry_after_seconds)
                db.execute(
                    "INSERT INTO requests (request_id, delivery_key, kind, payload, received_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (request_id, delivery.key, delivery.kind, json.dumps(delivery.payload), now),
                )
                self._insert_tasks(db, request_id, [delivery.first_task], now)
            return Enqueued(request_id, duplicate=False)

        return await self._run(insert)

    @staticmethod
    def _insert_tasks(
        db: sqlite3.Connection, request_id: str, tasks: list[NewTask], now: float
    ) -> None:
        db.executemany(
            "INSERT OR IGNORE INTO tasks (task_id, request_id, kind, asset_id, state,"
            " not_before, created_at, updated_at) VALUES (?, ?, ?, ?, 'queued', ?, ?, ?)",
            [(uuid.uuid4().hex, request_id, t.kind, t.asset_id, now, now, now) for t in tasks],
        )

    # -- worker side ------------------------------------------------------

    async def claim(self, owner: str) -> Task | None:
        def take() -> Task | None:
            now = self.clock()
            with self._write() as db:
                row = db.execute(_CLAIM, {"now": now}).fetchone()
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
            )

        return await self._run(take)

    def _owned_update(self, task: Task, sql: str, params: tuple[Any, ...]) -> bool:
        """Update the task only while this worker still holds its lease."""
        with self._write() as db:
            cursor = db.execute(
                sql + " WHERE task_id = ? AND lease_owner = ? AND state = 'running'",
                (*params, task.task_id, task.owner),
            )
            return cursor.rowcount == 1

    async def complete(self, task: Task, children: list[NewTask] | None = None) -> None:
        def done() -> None:
            now = self.clock()
            with self._write() as db:
                cursor = db.execute(
                    "UPDATE tasks SET state = 'done', lease_owner = NULL, lease_until = NULL,"
                    " last_error = NULL, updated_at = ?"
                    " WHERE task_id = ? AND lease_owner = ? AND state = 'running'",
                    (now, task.task_id, task.owner),
                )
                if cursor.rowcount == 1 and children:
                    self._insert_tasks(db, task.request_id, children, now)

        await self._run(done)

    async def retry(
        self, task: Task, error: str, delay: float | None = None, count_attempt: bool = True
    ) -> bool:
        """Put the task back for later; False when it has no attempts left and failed."""
        if count_attempt and task.attempts >= self.max_attempts:
            await self.fail(task, f"{error} (gave up after {task.attempts} attempts)")
            return False
        wait = self.backoff(task.attempts) if delay is None else delay

        def again() -> bool:
            now = self.clock()
            # A wait that is not the task's fault (a proxy still transcoding)
            # gives the attempt back, so it cannot exhaust the task.
            refund = 0 if count_attempt else 1
            return self._owned_update(
                task,
                "UPDATE tasks SET state = 'queued', lease_owner = NULL, lease_until = NULL,"
                " attempts = attempts - ?, not_before = ?, last_error = ?, updated_at = ?",
                (refund, now + wait, error, now),
            )

        await self._run(again)
        return True

    async def fail(self, task: Task, error: str) -> None:
        def failed() -> None:
            self._owned_update(
                task,
                "UPDATE tasks SET state = 'failed', lease_owner = NULL, lease_until = NULL,"
                " last_error = ?, updated_at = ?",
                (error, self.clock()),
            )

        await self._run(failed)

    async def extend_lease(self, task: Task) -> bool:
        """Renew the lease; False when this worker no longer holds the task."""

        def extend() -> bool:
            now = self.clock()
            return self._owned_update(
                task,
                "UPDATE tasks SET lease_until = ?, updated_at = ?",
                (now + self.lease_seconds, now),
            )

        return await self._run(extend)

    async def set_job_id(self, request_id: str, job_id: str) -> None:
        def store() -> None:
            with self._write() as db:
                db.execute(
                    "UPDATE requests SET job_id = ? WHERE request_id = ?", (job_id, request_id)
                )

        await self._run(store)

    # -- observation ------------------------------------------------------

    async def backlog(self) -> int:
        def count() -> int:
            row = (
                self._connection()
                .execute("SELECT COUNT(*) FROM tasks WHERE state IN ('queued', 'running')")
                .fetchone()
            )
            return int(row[0])

        return await self._run(count)

    async def ping(self) -> None:
        def check() -> None:
            db = self._connection()
            db.execute("SELECT 1 FROM requests LIMIT 1").fetchall()
            # Readiness means we can also write: take and drop the write lock.
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")

        await self._run(check)

    async def request_status(self, request_id: str) -> dict[str, Any] | None:
        def read() -> dict[str, Any] | None:
            db = self._connection()
            request = db.execute(
                "SELECT request_id, kind, payload, received_at, job_id FROM requests"
                " WHERE request_id = ?",
                (request_id,),
            ).fetchone()
            if request is None:
                return None
            tasks = db.execute(
                "SELECT kind, asset_id, state, attempts, last_error, not_before, updated_at,"
                " lease_until FROM tasks WHERE request_id = ? ORDER BY created_at, asset_id",
                (request_id,),
            ).fetchall()
            return {
                "request_id": request["request_id"],
                "kind": request["kind"],
                "received_at": request["received_at"],
                "job_id": request["job_id"],
                "payload": json.loads(request["payload"]),
                "tasks": [_as_observed(dict(t), self.clock()) for t in tasks],
            }

        return await self._run(read)

    async def caption_deliveries(
        self, asset_ids: list[str], limit: int = 100
    ) -> list[dict[str, Any]]:
        """Caption files delivered back to these assets (service/deliver.py), latest last."""

        def read() -> list[dict[str, Any]]:
            rows = (
                self._connection()
                .execute(
                    "SELECT * FROM (SELECT r.request_id, r.received_at, r.payload, t.asset_id,"
                    " t.state, t.attempts, t.last_error, t.lease_until FROM tasks t"
                    " JOIN requests r USING (request_id)"
                    " WHERE t.asset_id IN (SELECT value FROM json_each(?)) AND r.kind = 'deliver'"
                    " ORDER BY r.received_at DESC LIMIT ?) ORDER BY received_at",
                    (json.dumps(asset_ids), limit),
                )
                .fetchall()
            )
            found = []
            for row in rows:
                delivery = _as_observed(dict(row), self.clock())
                delivery["payload"] = json.loads(delivery["payload"])
                found.append(delivery)
            return found

        return await self._run(read)

    async def recent_failures(self, limit: int = 20) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            rows = (
                self._connection()
                .execute(
                    "SELECT request_id, kind, asset_id, attempts, last_error, updated_at FROM tasks"
                    " WHERE state = 'failed' ORDER BY updated_at DESC LIMIT ?",
                    (limit,),
                )
                .fetchall()
            )
            return [dict(r) for r in rows]

        return await self._run(read)


def _as_observed(task: dict[str, Any], now: float) -> dict[str, Any]:
    """A task as an operator should read it: a `running` task whose worker
    stopped renewing its lease is not running; it waits to be taken again."""
    lease_until = task.pop("lease_until", None)
    if task["state"] == "running" and lease_until is not None and lease_until < now:
        task["state"] = "queued"
        task["last_error"] = (
            "its worker stopped renewing the lease (stopped or lost); it runs again "
            "on the next free worker"
        )
    return task
