"""The SQLite queue's history: what operators read of it, and how long it is kept.

Every read here is bounded by an index however long the history
(`GET /requests/{id}` reads one request's tasks and its assets' latest
deliveries, `status` the latest failures and a kept count), and the
history itself is bounded by retention (service/queue/retention.py):
finished requests older than RETENTION_DAYS are deleted in small batches
by the worker. tests/system/queue/test_queue_plans.py checks each statement's plan.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from service.queue import as_observed
from service.queue import sqlite_sql as sql
from service.queue.retention import (
    PRUNE_CANDIDATES,
    PRUNE_MAX_TASKS,
    VACUUM_MIN_FREE_PAGES,
    VACUUM_STEP_PAGES,
    within_budget,
)
from service.queue.sqlite_store import SQLiteStore


class SQLiteHistory(SQLiteStore):
    # -- how operators read it -------------------------------------------------

    async def request_status(self, request_id: str) -> dict[str, Any] | None:
        def read() -> dict[str, Any] | None:
            db = self._connection()
            request = db.execute(sql.REQUEST, (request_id,)).fetchone()
            if request is None:
                return None
            tasks = db.execute(sql.REQUEST_TASKS, (request_id,)).fetchall()
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
        """Caption files delivered back to these assets (service/deliver/task.py), latest last."""

        def read() -> list[dict[str, Any]]:
            rows = (
                self._connection()
                .execute(sql.CAPTION_DELIVERIES, (json.dumps(asset_ids), limit))
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
            rows = self._connection().execute(sql.RECENT_FAILURES, (limit,)).fetchall()
            return [dict(r) for r in rows]

        return await self._run(read)

    async def failure_count(self) -> int:
        def count() -> int:
            row = (
                self._connection()
                .execute("SELECT sum(n) FROM task_counts WHERE state = 'failed'")
                .fetchone()
            )
            return int(row[0] or 0)

        return await self._run(count)

    # -- how long it is kept -------------------------------------------------

    async def prune(self, older_than: float, max_tasks: int = PRUNE_MAX_TASKS) -> int:
        """Delete one batch of finished requests older than `older_than` seconds
        (their tasks and payloads with them); how many requests went."""

        def delete(db: sqlite3.Connection) -> int:
            cutoff = self.clock() - older_than
            candidates = db.execute(
                sql.EXPIRED, {"cutoff": cutoff, "candidates": PRUNE_CANDIDATES}
            ).fetchall()
            chosen = [row["request_id"] for row in within_budget(candidates, max_tasks)]
            if chosen:
                ids = json.dumps(chosen)
                db.execute(sql.DELETE_TASKS, (ids,))
                db.execute(sql.DELETE_REQUESTS, (ids,))
            return len(chosen)

        return await self._submit(delete)

    async def compact(self) -> bool:
        """One step of handing free pages back to the file system; True while
        there is more to give back (see _give_back_free_pages)."""
        return await self._submit(self._give_back_free_pages)

    @staticmethod
    def _give_back_free_pages(db: sqlite3.Connection) -> bool:
        """Hand free pages back to the file system, a bounded step at a time,
        once they are a large part of the file (after a backlog was pruned).

        Below that, the free pages are simply reused by the next inserts:
        a queue whose history is as long as the window stays one size, and
        vacuuming pages that would be taken again soon is wasted writing.
        Only a file made with auto_vacuum=INCREMENTAL can do this (new files
        are); in an older one the free pages are reused all the same.
        """
        if db.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:  # 2: incremental
            return False
        free: int = db.execute("PRAGMA freelist_count").fetchone()[0]
        pages: int = db.execute("PRAGMA page_count").fetchone()[0]
        if free < VACUUM_MIN_FREE_PAGES or free * 4 < pages:
            return False
        # Python's sqlite3 steps a statement once, and each step of this
        # pragma frees one page: hence one call per page (~20 us each).
        step = min(free, VACUUM_STEP_PAGES)
        for _ in range(step):
            db.execute("PRAGMA incremental_vacuum")
        return free > step
