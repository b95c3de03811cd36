"""The PostgreSQL queue's history: what operators read of it, and how long it is kept.

Every read here is bounded by an index however long the history (the
same rules as service/queue/sqlite_history.py; tests/system/queue/test_queue_plans.py
checks each statement's plan on a filled queue), and the history itself
is bounded by retention (service/queue/retention.py).
"""

from __future__ import annotations

from typing import Any

import psycopg

from service.queue import as_observed
from service.queue.postgres_store import PostgresStore
from service.queue.retention import PRUNE_CANDIDATES, PRUNE_MAX_TASKS, within_budget

REQUEST = (
    "SELECT request_id, kind, payload, received_at, job_id FROM requests WHERE request_id = %s"
)
# A request's tasks, through tasks_by_request.
REQUEST_TASKS = (
    "SELECT kind, asset_id, state, attempts, last_error, not_before, updated_at, lease_until"
    " FROM tasks WHERE request_id = %s ORDER BY created_at, asset_id NULLS FIRST"
)
# The caption files delivered back to some assets, latest first, through
# tasks_deliveries: those assets' deliveries, never their whole history.
CAPTION_DELIVERIES = """
SELECT * FROM (
    SELECT r.request_id, r.received_at, r.payload, t.asset_id, t.state, t.attempts,
           t.last_error, t.lease_until
    FROM tasks t JOIN requests r USING (request_id)
    WHERE t.kind = 'deliver' AND t.asset_id = ANY(%s)
    ORDER BY t.created_at DESC LIMIT %s
) latest ORDER BY received_at
"""
# The latest failures, through the partial index tasks_failed.
RECENT_FAILURES = (
    "SELECT request_id, kind, asset_id, attempts, last_error, updated_at FROM tasks"
    " WHERE state = 'failed' ORDER BY updated_at DESC LIMIT %s"
)
# Requests past the retention window (service/queue/retention.py): every
# task finished and nothing changed since the cutoff; oldest first, by
# requests_by_time; each with its task count, so a batch stops at a number
# of rows.
EXPIRED = """
SELECT r.request_id, (SELECT count(*) FROM tasks t WHERE t.request_id = r.request_id) AS n
FROM requests r
WHERE r.received_at < %(cutoff)s
  AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.request_id = r.request_id
                  AND (t.state IN ('queued', 'running') OR t.updated_at >= %(cutoff)s))
ORDER BY r.received_at
LIMIT %(candidates)s
FOR UPDATE OF r SKIP LOCKED
"""


class PostgresHistory(PostgresStore):
    # -- how operators read it -------------------------------------------------

    async def request_status(self, request_id: str) -> dict[str, Any] | None:
        requests = await self._read(REQUEST, (request_id,))
        if not requests:
            return None
        request = requests[0]
        tasks = await self._read(REQUEST_TASKS, (request_id,))
        now = self.clock()
        return {**request, "tasks": [as_observed(t, now) for t in tasks]}

    async def caption_deliveries(
        self, asset_ids: list[str], limit: int = 100
    ) -> list[dict[str, Any]]:
        """Caption files delivered back to these assets (service/deliver/task.py), latest last."""
        rows = await self._read(CAPTION_DELIVERIES, (asset_ids, limit))
        now = self.clock()
        return [as_observed(row, now) for row in rows]

    async def recent_failures(self, limit: int = 20) -> list[dict[str, Any]]:
        return await self._read(RECENT_FAILURES, (limit,))

    async def failure_count(self) -> int:
        [row] = await self._read("SELECT n FROM failed_tasks WHERE id = 1")
        return int(row["n"])

    # -- how long it is kept -------------------------------------------------

    async def prune(self, older_than: float, max_tasks: int = PRUNE_MAX_TASKS) -> int:
        """Delete one batch of finished requests older than `older_than` seconds
        (their tasks and payloads with them); how many requests went.

        Candidates are locked SKIP LOCKED, so replicas pruning at once take
        different batches. Autovacuum makes the space reusable.
        """

        async def delete(cursor: psycopg.AsyncCursor[dict[str, Any]]) -> int:
            cutoff = self.clock() - older_than
            await cursor.execute(EXPIRED, {"cutoff": cutoff, "candidates": PRUNE_CANDIDATES})
            chosen = [
                row["request_id"] for row in within_budget(await cursor.fetchall(), max_tasks)
            ]
            if chosen:
                await cursor.execute("DELETE FROM tasks WHERE request_id = ANY(%s)", (chosen,))
                await cursor.execute("DELETE FROM requests WHERE request_id = ANY(%s)", (chosen,))
            return len(chosen)

        return await self._in_transaction(delete)

    async def compact(self) -> bool:
        return False  # autovacuum's business
