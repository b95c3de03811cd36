"""The SQLite queue's outbox (service/queue/outbox.py): its tables, the
events stored with a task's completion, and what the sender reads and writes."""

from __future__ import annotations

import sqlite3
from typing import Any

from service.queue import Event
from service.queue.outbox import (
    DUE_BATCH,
    FAN_OUT_BATCH,
    PRUNE_MAX_EVENTS,
    Destination,
    Send,
    event_row,
    fan_out_rows,
    send_of,
)
from service.queue.sqlite_registry import SQLiteRegistry

# Its tables are made by sqlite.sql (step 12).

INSERT_EVENT = """
INSERT INTO outbox_events (event_id, type, asset_id, data, happened_at, stored_at)
VALUES (:event_id, :type, :asset_id, :data, :happened_at, :stored_at)
ON CONFLICT (event_id) DO NOTHING
"""

INSERT_SEND = """
INSERT OR IGNORE INTO outbox_sends (seq, destination, asset_id, state, next_at, updated_at)
VALUES (:seq, :destination, :asset_id, 'queued', :now, :now)
"""

# Due: waiting, its time come, and first in its (destination, asset) line.
DUE = """
SELECT s.seq, s.destination, s.attempts, e.event_id, e.type, e.asset_id, e.data,
       e.happened_at, e.stored_at
FROM outbox_sends s JOIN outbox_events e ON e.seq = s.seq
WHERE s.state = 'queued' AND s.next_at <= :now
  AND s.seq = (SELECT min(h.seq) FROM outbox_sends h
               WHERE h.state = 'queued' AND h.destination = s.destination
                 AND h.asset_id = s.asset_id)
ORDER BY s.seq
LIMIT :limit
"""

EXPIRED_EVENTS = """
SELECT e.seq FROM outbox_events e
WHERE e.stored_at < :cutoff
  AND NOT EXISTS (SELECT 1 FROM outbox_sends s WHERE s.seq = e.seq AND s.state = 'queued')
ORDER BY e.stored_at
LIMIT :limit
"""


class SQLiteOutbox(SQLiteRegistry):
    def _store_events(self, db: sqlite3.Connection, events: list[Event], now: float) -> int:
        stored = 0
        for event in events:
            stored += db.execute(INSERT_EVENT, event_row(event, now)).rowcount
        return stored

    async def add_events(self, events: list[Event]) -> int:
        if not events:
            return 0

        def store(db: sqlite3.Connection) -> int:
            return self._store_events(db, events, self.clock())

        stored: int = await self._submit(store)
        if stored:
            self._signal_work()  # type: ignore[attr-defined]  # the queue's: wakes the sender
        return stored

    # -- the sender's side ----------------------------------------------------

    async def fan_out(self, destinations: list[Destination], limit: int = FAN_OUT_BATCH) -> int:
        """Make the sends of events not fanned out yet; how many events were."""

        def fan(db: sqlite3.Connection) -> int:
            events = db.execute(
                "SELECT seq, type, asset_id FROM outbox_events WHERE fanned_out = 0"
                " ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
            if not events:
                return 0
            db.executemany(INSERT_SEND, fan_out_rows(events, destinations, self.clock()))
            db.executemany(
                "UPDATE outbox_events SET fanned_out = 1 WHERE seq = ?",
                [(e["seq"],) for e in events],
            )
            return len(events)

        return await self._submit(fan)

    async def due_sends(self, now: float, limit: int = DUE_BATCH) -> list[Send]:
        def read() -> list[Send]:
            rows = self._connection().execute(DUE, {"now": now, "limit": limit}).fetchall()
            return [send_of(row) for row in rows]

        return await self._run(read)

    async def settle_send(
        self, send: Send, state: str, *, next_at: float, error: str | None = None
    ) -> None:
        """Record one attempt: `sent`, `given_up`, or `queued` again until `next_at`."""

        def settle(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE outbox_sends SET state = ?, attempts = attempts + 1, next_at = ?,"
                " last_error = ?, updated_at = ? WHERE seq = ? AND destination = ?",
                (state, next_at, error, self.clock(), send.seq, send.destination),
            )

        await self._submit(settle)

    async def outbox_backlog(self) -> dict[str, int]:
        """Sends waiting, by destination key ("" for events not fanned out yet)."""

        def count() -> dict[str, int]:
            db = self._connection()
            rows = db.execute(
                "SELECT destination, count(*) AS n FROM outbox_sends"
                " WHERE state = 'queued' GROUP BY destination"
            ).fetchall()
            backlog = {row["destination"]: int(row["n"]) for row in rows}
            new = db.execute("SELECT count(*) FROM outbox_events WHERE fanned_out = 0")
            backlog[""] = int(new.fetchone()[0])
            return backlog

        return await self._run(count)

    async def outbox_sends(self) -> list[dict[str, Any]]:
        """Every send with its event id and state, in order (for tests and tools)."""

        def read() -> list[dict[str, Any]]:
            rows = self._connection().execute(
                "SELECT e.event_id, e.type, s.destination, s.state, s.attempts, s.last_error"
                " FROM outbox_sends s JOIN outbox_events e ON e.seq = s.seq"
                " ORDER BY s.seq, s.destination"
            )
            return [dict(row) for row in rows]

        return await self._run(read)

    async def prune_outbox(self, older_than: float, max_events: int = PRUNE_MAX_EVENTS) -> int:
        """Delete one batch of events older than `older_than` seconds with no
        send waiting, and their sends; how many events went."""

        def delete(db: sqlite3.Connection) -> int:
            cutoff = self.clock() - older_than
            seqs = [
                (row["seq"],)
                for row in db.execute(EXPIRED_EVENTS, {"cutoff": cutoff, "limit": max_events})
            ]
            db.executemany("DELETE FROM outbox_sends WHERE seq = ?", seqs)
            db.executemany("DELETE FROM outbox_events WHERE seq = ?", seqs)
            return len(seqs)

        return await self._submit(delete)
