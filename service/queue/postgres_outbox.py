"""The PostgreSQL queue's outbox (service/queue/outbox.py): the same rules as
service/queue/sqlite_outbox.py; its tables are the `-- version: 7` step of
postgres.sql. Events of one asset are stored one after another (one task per
asset runs at a time), so their `seq` is their order."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

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
from service.queue.postgres_history import PostgresHistory
from service.queue.postgres_store import NOTIFY_CHANNEL

Cursor = psycopg.AsyncCursor[dict[str, Any]]

INSERT_EVENT = """
INSERT INTO outbox_events (event_id, type, asset_id, data, happened_at, stored_at)
VALUES (%(event_id)s, %(type)s, %(asset_id)s, %(data)s, %(happened_at)s, %(stored_at)s)
ON CONFLICT (event_id) DO NOTHING
"""

INSERT_SEND = """
INSERT INTO outbox_sends (seq, destination, asset_id, state, next_at, updated_at)
VALUES (%(seq)s, %(destination)s, %(asset_id)s, 'queued', %(now)s, %(now)s)
ON CONFLICT DO NOTHING
"""

DUE = """
SELECT s.seq, s.destination, s.attempts, e.event_id, e.type, e.asset_id, e.data,
       e.happened_at, e.stored_at
FROM outbox_sends s JOIN outbox_events e ON e.seq = s.seq
WHERE s.state = 'queued' AND s.next_at <= %(now)s
  AND s.seq = (SELECT min(h.seq) FROM outbox_sends h
               WHERE h.state = 'queued' AND h.destination = s.destination
                 AND h.asset_id = s.asset_id)
ORDER BY s.seq
LIMIT %(limit)s
"""

EXPIRED_EVENTS = """
SELECT e.seq FROM outbox_events e
WHERE e.stored_at < %(cutoff)s
  AND NOT EXISTS (SELECT 1 FROM outbox_sends s WHERE s.seq = e.seq AND s.state = 'queued')
ORDER BY e.stored_at
LIMIT %(limit)s
FOR UPDATE OF e SKIP LOCKED
"""


class PostgresOutbox(PostgresHistory):
    async def _store_events(self, cursor: Cursor, events: list[Event], now: float) -> int:
        stored = 0
        for event in events:
            row = event_row(event, now)
            await cursor.execute(INSERT_EVENT, {**row, "data": Jsonb(event.data)})
            stored += cursor.rowcount
        if stored:
            await cursor.execute("SELECT pg_notify(%s, '')", (NOTIFY_CHANNEL,))
        return stored

    async def add_events(self, events: list[Event]) -> int:
        if not events:
            return 0

        async def store(cursor: Cursor) -> int:
            return await self._store_events(cursor, events, self.clock())

        return await self._in_transaction(store)

    # -- the sender's side ----------------------------------------------------

    async def fan_out(self, destinations: list[Destination], limit: int = FAN_OUT_BATCH) -> int:
        async def fan(cursor: Cursor) -> int:
            await cursor.execute(
                "SELECT seq, type, asset_id FROM outbox_events WHERE NOT fanned_out"
                " ORDER BY seq LIMIT %s FOR UPDATE SKIP LOCKED",
                (limit,),
            )
            events = await cursor.fetchall()
            if not events:
                return 0
            rows = fan_out_rows(events, destinations, self.clock())
            if rows:
                await cursor.executemany(INSERT_SEND, rows)
            await cursor.execute(
                "UPDATE outbox_events SET fanned_out = true WHERE seq = ANY(%s)",
                ([e["seq"] for e in events],),
            )
            return len(events)

        return await self._in_transaction(fan)

    async def due_sends(self, now: float, limit: int = DUE_BATCH) -> list[Send]:
        return [send_of(row) for row in await self._read(DUE, {"now": now, "limit": limit})]

    async def settle_send(
        self, send: Send, state: str, *, next_at: float, error: str | None = None
    ) -> None:
        async def settle(cursor: Cursor) -> None:
            await cursor.execute(
                "UPDATE outbox_sends SET state = %s, attempts = attempts + 1, next_at = %s,"
                " last_error = %s, updated_at = %s WHERE seq = %s AND destination = %s",
                (state, next_at, error, self.clock(), send.seq, send.destination),
            )

        await self._in_transaction(settle)

    async def outbox_backlog(self) -> dict[str, int]:
        rows = await self._read(
            "SELECT destination, count(*) AS n FROM outbox_sends"
            " WHERE state = 'queued' GROUP BY destination"
        )
        backlog = {row["destination"]: int(row["n"]) for row in rows}
        [new] = await self._read("SELECT count(*) AS n FROM outbox_events WHERE NOT fanned_out")
        backlog[""] = int(new["n"])
        return backlog

    async def outbox_sends(self) -> list[dict[str, Any]]:
        return await self._read(
            "SELECT e.event_id, e.type, s.destination, s.state, s.attempts, s.last_error"
            " FROM outbox_sends s JOIN outbox_events e ON e.seq = s.seq"
            " ORDER BY s.seq, s.destination"
        )

    async def prune_outbox(self, older_than: float, max_events: int = PRUNE_MAX_EVENTS) -> int:
        async def delete(cursor: Cursor) -> int:
            cutoff = self.clock() - older_than
            await cursor.execute(EXPIRED_EVENTS, {"cutoff": cutoff, "limit": max_events})
            seqs = [row["seq"] for row in await cursor.fetchall()]
            if seqs:
                await cursor.execute("DELETE FROM outbox_sends WHERE seq = ANY(%s)", (seqs,))
                await cursor.execute("DELETE FROM outbox_events WHERE seq = ANY(%s)", (seqs,))
            return len(seqs)

        return await self._in_transaction(delete)
