"""The SQLite queue's open work (service/queue/work_sql.py): what each build
records, what each delivery changes, and what the due-date check reads."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from service.queue import Work
from service.queue import work_sql as sql
from service.queue.sqlite_history import SQLiteHistory


class SQLiteWork(SQLiteHistory):
    async def record_work(self, work: Work) -> None:
        def record(db: sqlite3.Connection) -> None:
            where = {"folder": work.folder, "asset_id": work.asset_id}
            delivered = {row["language"] for row in db.execute(sql.DELIVERED, where)}
            row = db.execute(sql.ROW, where).fetchone()
            if row is not None:  # what deliveries recorded stays, whatever retention pruned
                delivered |= set(json.loads(row["delivered"]))
            delivered.discard(None)
            db.execute(sql.RECORD, sql.record_params(work, delivered, self.clock()))

        await self._submit(record)

    async def record_delivered(self, folder: str, language: str) -> None:
        def record(db: sqlite3.Connection) -> None:
            row = db.execute(sql.ROW, {"folder": folder}).fetchone()
            params = sql.delivered_params(folder, row and dict(row), language, self.clock())
            if params is not None:
                db.execute(sql.DELIVERED_NOW, params)

        await self._submit(record)

    async def work_of(self, folder: str, asset_id: str) -> Work | None:
        def read() -> Work | None:
            where = {"folder": folder, "asset_id": asset_id}
            row = self._connection().execute(sql.WORK_OF, where).fetchone()
            return None if row is None else sql.work_from_row(dict(row))

        return await self._run(read)

    async def work_to_notify(
        self, now: float, soon_until: float, limit: int = 100
    ) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            params = {"now": now, "soon_until": soon_until, "limit": limit}
            rows = self._connection().execute(sql.TO_NOTIFY, params).fetchall()
            return [
                {
                    **dict(row),
                    "missing": json.loads(row["missing"]),
                    "languages": json.loads(row["languages"]),
                }
                for row in rows
            ]

        return await self._run(read)

    async def mark_notified(self, folder: str, due_at: float, overdue: bool) -> None:
        def mark(db: sqlite3.Connection) -> None:
            statement = sql.MARK_OVERDUE if overdue else sql.MARK_SOON
            db.execute(statement, {"folder": folder, "due_at": due_at})

        await self._submit(mark)
