"""The PostgreSQL queue's open work (service/queue/work_sql.py): the same
statements as the SQLite queue's, in transactions of their own."""

from __future__ import annotations

import json
from typing import Any

import psycopg

from service.queue import Work
from service.queue import work_sql as sql
from service.queue.postgres_history import PostgresHistory

_DELIVERED = sql.for_pg(sql.DELIVERED)
_ROW = sql.for_pg(sql.ROW) + " FOR UPDATE"
_RECORD = sql.for_pg(sql.RECORD)
_DELIVERED_NOW = sql.for_pg(sql.DELIVERED_NOW)
_WORK_OF = sql.for_pg(sql.WORK_OF)
_TO_NOTIFY = sql.for_pg(sql.TO_NOTIFY)
_MARK_SOON = sql.for_pg(sql.MARK_SOON)
_MARK_OVERDUE = sql.for_pg(sql.MARK_OVERDUE)

Cursor = psycopg.AsyncCursor[dict[str, Any]]


class PostgresWork(PostgresHistory):
    async def record_work(self, work: Work) -> None:
        async def record(cursor: Cursor) -> None:
            where = {"folder": work.folder, "asset_id": work.asset_id}
            await cursor.execute(_DELIVERED, where)
            delivered = {row["language"] for row in await cursor.fetchall()}
            await cursor.execute(_ROW, where)
            row = await cursor.fetchone()
            if row is not None:  # what deliveries recorded stays, whatever retention pruned
                delivered |= set(json.loads(row["delivered"]))
            delivered.discard(None)
            await cursor.execute(_RECORD, sql.record_params(work, delivered, self.clock()))

        await self._in_transaction(record)

    async def record_delivered(self, folder: str, language: str) -> None:
        async def record(cursor: Cursor) -> None:
            await cursor.execute(_ROW, {"folder": folder})
            row = await cursor.fetchone()
            params = sql.delivered_params(folder, row, language, self.clock())
            if params is not None:
                await cursor.execute(_DELIVERED_NOW, params)

        await self._in_transaction(record)

    async def work_of(self, folder: str, asset_id: str) -> Work | None:
        async def read(cursor: Cursor) -> Work | None:
            await cursor.execute(_WORK_OF, {"folder": folder, "asset_id": asset_id})
            row = await cursor.fetchone()
            return None if row is None else sql.work_from_row(row)

        return await self._in_transaction(read)

    async def work_to_notify(
        self, now: float, soon_until: float, limit: int = 100
    ) -> list[dict[str, Any]]:
        async def read(cursor: Cursor) -> list[dict[str, Any]]:
            await cursor.execute(_TO_NOTIFY, {"now": now, "soon_until": soon_until, "limit": limit})
            rows = await cursor.fetchall()
            return [
                {**r, "missing": json.loads(r["missing"]), "languages": json.loads(r["languages"])}
                for r in rows
            ]

        return await self._in_transaction(read)

    async def mark_notified(self, folder: str, due_at: float, overdue: bool) -> None:
        async def mark(cursor: Cursor) -> None:
            statement = _MARK_OVERDUE if overdue else _MARK_SOON
            await cursor.execute(statement, {"folder": folder, "due_at": due_at})

        await self._in_transaction(mark)
