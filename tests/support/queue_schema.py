"""Queue stores as earlier versions of the code left them: the steps of a
backend's .sql file up to a version, for the upgrade tests."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from service.queue import sqlite_migrate
from service.queue.postgres_store import migration_steps


def sqlite_file_at(path: Path, version: int, *, versioned: bool = False) -> None:
    """A SQLite queue file with the steps up to `version`. Not `versioned`:
    as the code made it before the steps were (user_version 0, whatever it held)."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    sqlite_migrate.apply(db, after=0, upto=version)
    db.execute(f"PRAGMA user_version = {version if versioned else 0}")
    db.execute("COMMIT")
    db.close()


def postgres_database_at(url: str, version: int) -> None:
    """A PostgreSQL queue database with the steps up to `version`, recorded."""
    import psycopg

    with psycopg.connect(url) as connection:
        connection.execute(
            "CREATE TABLE schema_version"
            " (version integer PRIMARY KEY, applied_at double precision NOT NULL)"
        )
        for step, sql in migration_steps():
            if step > version:
                break
            connection.execute(sql)  # type: ignore[arg-type]
            connection.execute(
                "INSERT INTO schema_version (version, applied_at) VALUES (%s, %s)",
                (step, time.time()),
            )
