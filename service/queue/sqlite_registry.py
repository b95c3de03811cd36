"""The SQLite queue's bundle registry and leases: which folders hold a bundle
of which asset (service/work/bundle_registry.py), and work one process does at a time
(service/work/leases.py). Writes go through the store's writer like every other."""

from __future__ import annotations

import sqlite3

from service.queue import sqlite_sql as sql
from service.queue.sqlite_work import SQLiteWork


class SQLiteRegistry(SQLiteWork):
    # -- the bundle registry ---------------------------------------------------

    async def record_bundle(self, asset_id: str, folder: str, status: str) -> None:
        def record(db: sqlite3.Connection) -> None:
            db.execute(sql.RECORD_BUNDLE, (asset_id, folder, status, self.clock()))

        await self._submit(record)

    async def bundle_folders(self, asset_id: str | None = None) -> list[str]:
        def read() -> list[str]:
            db = self._connection()
            if asset_id is None:
                rows = db.execute(sql.BUNDLE_FOLDERS)
            else:
                rows = db.execute(sql.BUNDLE_FOLDERS_OF, (asset_id,))
            return [row["folder"] for row in rows]

        return await self._run(read)

    async def bundle_records(self, folder: str | None = None) -> list[tuple[str, str, str]]:
        def read() -> list[tuple[str, str, str]]:
            db = self._connection()
            if folder is None:
                rows = db.execute(sql.BUNDLE_RECORDS)
            else:
                rows = db.execute(sql.BUNDLE_RECORDS_OF, (folder,))
            return [(row["asset_id"], row["folder"], row["status"]) for row in rows]

        return await self._run(read)

    async def registry_filled(self) -> bool:
        def read() -> bool:
            row = self._connection().execute("SELECT 1 FROM registry_filled").fetchone()
            return row is not None

        return await self._run(read)

    async def fill_registry(self, bundles: list[tuple[str, str, str]]) -> None:
        """Record bundles found in storage (asset id, folder, status), once."""

        def fill(db: sqlite3.Connection) -> None:
            now = self.clock()
            db.executemany(
                "INSERT OR IGNORE INTO bundles (asset_id, folder, status, updated_at)"
                " VALUES (?, ?, ?, ?)",
                [(*bundle, now) for bundle in bundles],
            )
            db.execute(
                "INSERT OR IGNORE INTO registry_filled (id, filled_at) VALUES (1, ?)", (now,)
            )

        await self._submit(fill)

    # -- leases and the registry's retirements ----------------------------------

    async def take_lease(self, name: str, holder: str, seconds: float) -> bool:
        def take(db: sqlite3.Connection) -> bool:
            now = self.clock()
            params = {"name": name, "holder": holder, "expires": now + seconds, "now": now}
            db.execute(sql.TAKE_LEASE, params)
            row = db.execute("SELECT holder FROM leases WHERE name = ?", (name,)).fetchone()
            return row is not None and row["holder"] == holder

        return await self._submit(take)

    async def release_lease(self, name: str, holder: str) -> None:
        def release(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))

        await self._submit(release)

    async def retire_bundles(self, folders: list[str]) -> None:
        def retire(db: sqlite3.Connection) -> None:
            # A folder gone from the storage is no one's open work either.
            db.executemany("DELETE FROM bundles WHERE folder = ?", [(f,) for f in folders])
            db.executemany("DELETE FROM due_work WHERE folder = ?", [(f,) for f in folders])

        await self._submit(retire)
