"""The embedded queue: one SQLite file, durable before the 202 goes out.

WAL journal with `synchronous=FULL`: a commit that returned is on disk, so a
`kill -9` (or a power cut) right after the 202 loses nothing. The delivery
key is UNIQUE, and each enqueue runs in one `BEGIN IMMEDIATE` transaction,
so concurrent identical deliveries serialise on the write lock and exactly
one of them inserts. Every call runs in a worker thread so the event loop
never waits on disk.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread

from service import probe
from service.queue import (
    CLICK,
    EVENT,
    EVENT_LANE_DELAY,
    Delivery,
    Enqueued,
    NewTask,
    QueueFull,
    QueueUnavailable,
    Task,
    as_observed,
    backoff_delay,
    lane_of,
    rank_after,
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
    updated_at       REAL NOT NULL,
    lane             TEXT NOT NULL DEFAULT 'click',
    rank_at          REAL
);
CREATE INDEX IF NOT EXISTS tasks_ready ON tasks(state, not_before);
CREATE INDEX IF NOT EXISTS tasks_by_request ON tasks(request_id);
-- The claim asks "does this asset have a task under a live lease?" on every call.
CREATE INDEX IF NOT EXISTS tasks_by_asset ON tasks(asset_id, state);
-- An asset reached twice (two collections, a repeated id) is one task.
CREATE UNIQUE INDEX IF NOT EXISTS tasks_once ON tasks(request_id, kind, asset_id);
-- The bundle registry: which folders hold a bundle of which asset.
CREATE TABLE IF NOT EXISTS bundles (
    asset_id   TEXT NOT NULL,
    folder     TEXT NOT NULL,
    status     TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (asset_id, folder)
);
-- One row once the registry holds the bundles made before it existed.
CREATE TABLE IF NOT EXISTS registry_filled (id INTEGER PRIMARY KEY, filled_at REAL NOT NULL);
"""


# The next task to run: due (or left behind by a worker whose lease lapsed),
# first in line by rank (a click's tasks rank EVENT_LANE_DELAY ahead of
# events), and never one whose asset already has a task running under a
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
ORDER BY t.rank_at, t.created_at
LIMIT 1
"""

_LANE_INDEXES = """
CREATE INDEX IF NOT EXISTS tasks_waiting ON tasks(lane, state);
CREATE INDEX IF NOT EXISTS tasks_pending_refresh ON tasks(asset_id, kind, state);
"""


# An asset the service knows: it has a bundle, or a task waiting or running.
# Until the registry holds the bundles made before it existed, every asset
# may have one, and events are stored (the worker then looks).
_KNOWN_ASSET = (
    "SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM registry_filled)"
    " OR EXISTS (SELECT 1 FROM bundles WHERE asset_id = ?)"
    " OR EXISTS (SELECT 1 FROM tasks WHERE asset_id = ? AND state IN ('queued', 'running'))"
)
_PENDING_REFRESH = (
    "SELECT request_id FROM tasks WHERE asset_id = ? AND kind = 'refresh' AND state = 'queued'"
    " LIMIT 1"
)
# A delete makes a waiting refresh of the same asset pointless.
_SUPERSEDE_REFRESH = (
    "UPDATE tasks SET state = 'done', last_error = 'superseded by a delete event',"
    " updated_at = ? WHERE asset_id = ? AND kind = 'refresh' AND state = 'queued'"
)
_RECORD_BUNDLE = (
    "INSERT INTO bundles (asset_id, folder, status, updated_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (asset_id, folder) DO UPDATE SET status = excluded.status,"
    " updated_at = excluded.updated_at"
)


class SQLiteQueue:
    def __init__(
        self,
        path: str | Path,
        *,
        max_attempts: int = 8,
        max_backlog: int = 10_000,
        max_event_backlog: int = 10_000,
        lease_seconds: float = 60.0,
        retry_after_seconds: int = 30,
        busy_timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        backoff: Callable[[int], float] = backoff_delay,
    ) -> None:
        self.path = Path(path)
        self.max_attempts = max_attempts
        self.max_backlog = max_backlog
        self.max_event_backlog = max_event_backlog
        self.lease_seconds = lease_seconds
        self.retry_after_seconds = retry_after_seconds
        self.busy_timeout = busy_timeout
        self.clock = clock
        self.backoff = backoff
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._work = anyio.Event()

    # -- plumbing ---------------------------------------------------------

    # Why the queue's files could not take a write when `ping` last looked,
    # or None. While it is set, every write looks again first: deliveries are
    # refused exactly while /readyz says the queue is not writable, even where
    # SQLite's already-open files would still take them, and accepted again as
    # soon as the cause is fixed, whether or not anyone polls /readyz.
    _store_fault: str | None = None

    def _open_connection(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path,
            timeout=self.busy_timeout,
            isolation_level=None,
            check_same_thread=False,
            factory=_ThreadConnection,
        )
        connection.owner = threading.current_thread()
        try:
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA foreign_keys=ON")
        except BaseException:
            connection.close()
            raise
        return connection

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._open_connection()
            self._local.connection = connection
            # SQLite opens its files read-only, without a word, when it cannot
            # open them read-write. Such a connection lives for one call only
            # (`_run` drops it), so it never outlasts the cause.
            self._local.read_only = bool(self._unwritable_files())
            with self._connections_lock:
                # anyio retires worker threads that sat idle; the connections
                # they opened would stay open (two descriptors each) until
                # close(), so every burst of concurrent calls leaked some.
                ended = [c for c in self._connections if not _owner_alive(c)]
                for orphan in ended:
                    self._connections.remove(orphan)
                    with contextlib.suppress(sqlite3.Error):
                        orphan.close()  # its thread is gone, so nothing else uses it
                self._connections.append(connection)
        return connection

    def _drop_connection(self) -> None:
        """Close this thread's connection; its next call opens a fresh one."""
        connection = self._local.__dict__.pop("connection", None)
        self._local.__dict__.pop("read_only", None)
        if connection is None:
            return
        with self._connections_lock, contextlib.suppress(ValueError):
            self._connections.remove(connection)
        # Closing also rolls back a transaction a failed COMMIT left open.
        with contextlib.suppress(sqlite3.Error):
            connection.close()

    def _check_store(self) -> None:
        """QueueUnavailable, saying why, unless the queue's files take writes now."""
        self._store_fault = fault = self._store_problem()
        if fault is not None:
            raise QueueUnavailable(fault)

    def _unwritable_files(self) -> list[Path]:
        """Those of the database, its -wal and its -shm that this process cannot write.

        SQLite writes all three, and they take the database's mode when
        created: a read-only database leaves a read-only -wal or -shm behind,
        which keeps SQLite read-only after the database itself is fixed.
        os.access asks the kernel what SQLite's open() asks; opening the files
        here would not do, as closing any descriptor of them drops SQLite's
        POSIX locks.
        """
        paths = [self.path.with_name(self.path.name + suffix) for suffix in ("", "-wal", "-shm")]
        return [p for p in paths if os.access(p, os.F_OK) and not os.access(p, os.W_OK)]

    def _store_problem(self) -> str | None:
        if not self.path.exists():
            return f"queue database {self.path} is missing; restore it or restart the service"
        unwritable = self._unwritable_files()
        if unwritable:
            return (
                f"queue files not writable by this process: {', '.join(map(str, unwritable))} "
                "(check their owner, mode and mount; SQLite opens the queue read-only)"
            )
        # SQLite creates its -wal and -shm files beside the database, and a
        # commit can succeed on a full disk (the WAL reuses its own space), so
        # only a fresh write in that directory shows both problems.
        directory = self.path.parent
        target = directory / f".{self.path.name}.ready-{uuid.uuid4().hex}"
        try:
            probe.write_file(target)
            target.unlink()
        except OSError as exc:
            return (
                f"queue directory {directory}: cannot write a {probe.PROBE_BYTES // 1024} KiB "
                f"file: {probe.reason(exc)}"
            )
        return None

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        if self._store_fault is not None:
            self._check_store()
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            # If the rollback fails too, the connection is dropped anyway;
            # the error worth reporting is the first one.
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
            raise
        else:
            connection.execute("COMMIT")

    async def _run(self, fn: Callable[[], T]) -> T:
        def call() -> T:
            try:
                return fn()
            except (sqlite3.Error, OSError):
                # Whatever failed may live on in the connection (opened
                # read-only, a transaction left open): a fresh one sees the
                # store as it is now, so the queue recovers without a restart.
                self._drop_connection()
                raise
            finally:
                if getattr(self._local, "read_only", False):
                    self._drop_connection()

        try:
            return await anyio.to_thread.run_sync(call)
        except (sqlite3.Error, OSError) as exc:
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
            # ...and before clicks and events had lanes of their own.
            task_columns = {row["name"] for row in db.execute("PRAGMA table_info(tasks)")}
            if "lane" not in task_columns:
                db.execute("ALTER TABLE tasks ADD COLUMN lane TEXT NOT NULL DEFAULT 'click'")
                db.execute("ALTER TABLE tasks ADD COLUMN rank_at REAL")
                db.execute("UPDATE tasks SET rank_at = not_before")
            db.executescript(_LANE_INDEXES)

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
            with self._write() as db:
                return self._admit(db, delivery, request_id, self.clock())

        enqueued = await self._run(insert)
        if not (enqueued.duplicate or enqueued.coalesced or enqueued.ignored):
            self._signal_work()
        return enqueued

    def _admit(
        self, db: sqlite3.Connection, delivery: Delivery, request_id: str, now: float
    ) -> Enqueued:
        """Store one delivery inside the caller's write transaction, or say why not."""
        existing = db.execute(
            "SELECT request_id FROM requests WHERE delivery_key = ?", (delivery.key,)
        ).fetchone()
        if existing is not None:
            return Enqueued(existing["request_id"], duplicate=True)
        lane, task = lane_of(delivery.kind), delivery.first_task
        if lane == EVENT and task.asset_id is not None:
            known = db.execute(_KNOWN_ASSET, (task.asset_id, task.asset_id)).fetchone()
            if known is None:
                return Enqueued(None, duplicate=False, ignored=True)
            if task.kind == "refresh":
                pending = db.execute(_PENDING_REFRESH, (task.asset_id,)).fetchone()
                if pending is not None:
                    return Enqueued(pending["request_id"], duplicate=False, coalesced=True)
            elif task.kind == "withdraw":
                db.execute(_SUPERSEDE_REFRESH, (now, task.asset_id))
        limit = self.max_event_backlog if lane == EVENT else self.max_backlog
        waiting = db.execute(
            "SELECT COUNT(*) FROM tasks WHERE lane = ? AND state = 'queued'", (lane,)
        ).fetchone()[0]
        if waiting >= limit:
            raise QueueFull(self.retry_after_seconds, lane)
        db.execute(
            "INSERT INTO requests (request_id, delivery_key, kind, payload, received_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (request_id, delivery.key, delivery.kind, json.dumps(delivery.payload), now),
        )
        self._insert_tasks(db, request_id, [task], now, lane)
        return Enqueued(request_id, duplicate=False)

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
        rank = now + (EVENT_LANE_DELAY if lane == EVENT else 0.0)
        db.executemany(
            "INSERT OR IGNORE INTO tasks (task_id, request_id, kind, asset_id, state,"
            " not_before, created_at, updated_at, lane, rank_at)"
            " VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?)",
            [
                (uuid.uuid4().hex, request_id, t.kind, t.asset_id, now, now, now, lane, rank)
                for t in tasks
            ],
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
                    lane = lane_of(task.request_kind)
                    self._insert_tasks(db, task.request_id, children, now, lane)

        await self._run(done)
        if children or task.asset_id is not None:
            self._signal_work()  # new tasks, or an asset free again

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
                " attempts = attempts - ?, not_before = ?, rank_at = ?, last_error = ?,"
                " updated_at = ?",
                (refund, now + wait, rank_after(task, now + wait), error, now),
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

    async def backlog_by_lane(self) -> dict[str, int]:
        def count() -> dict[str, int]:
            rows = self._connection().execute(
                "SELECT lane, COUNT(*) AS n FROM tasks WHERE state IN ('queued', 'running')"
                " GROUP BY lane"
            )
            return {CLICK: 0, EVENT: 0, **{row["lane"]: row["n"] for row in rows}}

        return await self._run(count)

    async def ping(self) -> None:
        def check() -> None:
            self._check_store()
            # A committed write, not just a lock taken and dropped: only that
            # fails on a connection SQLite opened read-only, or on a database
            # it cannot write for any other reason.
            with self._write() as db:
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
                "tasks": [as_observed(dict(t), self.clock()) for t in tasks],
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
                delivery = as_observed(dict(row), self.clock())
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

    # -- the bundle registry ---------------------------------------------------

    async def record_bundle(self, asset_id: str, folder: str, status: str) -> None:
        def record() -> None:
            with self._write() as db:
                db.execute(_RECORD_BUNDLE, (asset_id, folder, status, self.clock()))

        await self._run(record)

    async def bundle_folders(self, asset_id: str | None = None) -> list[str]:
        def read() -> list[str]:
            rows = self._connection().execute(
                "SELECT DISTINCT folder FROM bundles WHERE ? IS NULL OR asset_id = ?"
                " ORDER BY folder",
                (asset_id, asset_id),
            )
            return [row["folder"] for row in rows]

        return await self._run(read)

    async def registry_filled(self) -> bool:
        def read() -> bool:
            row = self._connection().execute("SELECT 1 FROM registry_filled").fetchone()
            return row is not None

        return await self._run(read)

    async def fill_registry(self, bundles: list[tuple[str, str, str]]) -> None:
        """Record bundles found in storage (asset id, folder, status), once."""

        def fill() -> None:
            now = self.clock()
            with self._write() as db:
                db.executemany(
                    "INSERT OR IGNORE INTO bundles (asset_id, folder, status, updated_at)"
                    " VALUES (?, ?, ?, ?)",
                    [(*bundle, now) for bundle in bundles],
                )
                db.execute(
                    "INSERT OR IGNORE INTO registry_filled (id, filled_at) VALUES (1, ?)", (now,)
                )

        await self._run(fill)


class _ThreadConnection(sqlite3.Connection):
    """A connection that knows the thread it was opened for."""

    owner: threading.Thread


def _owner_alive(connection: sqlite3.Connection) -> bool:
    owner = getattr(connection, "owner", None)
    return owner is None or owner.is_alive()

