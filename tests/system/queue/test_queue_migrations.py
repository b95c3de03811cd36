"""Every earlier schema of both backends upgrades to the latest, keeping
what it holds; then the queue works on it. (The whole contract suite runs
on the longest upgrade of each backend too: tests/system/queue/test_queue.py.)"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from service.queue import Event, NewTask, Work, sqlite_migrate
from service.queue.postgres import PostgresQueue
from service.queue.postgres_store import migration_steps
from service.queue.sql_files import steps
from service.queue.sqlite import SQLiteQueue
from tests.support.clock import FakeClock
from tests.support.queue import LIMITS, delivery
from tests.support.queue_schema import postgres_database_at, sqlite_file_at

pytestmark = pytest.mark.anyio

SQLITE_LATEST = sqlite_migrate.latest()
POSTGRES_LATEST = migration_steps()[-1][0]


def test_sqlite_steps_are_numbered_in_order_and_each_does_something():
    versions = [version for version, _ in steps("sqlite.sql")]
    assert versions == list(range(1, len(versions) + 1))
    assert all(sqlite_migrate.statements(sql) for _, sql in steps("sqlite.sql"))


def schema(path: Path) -> dict[str, object]:
    """What a file's schema is, whatever the order its columns were added in."""
    db = sqlite3.connect(path)
    try:
        objects = db.execute(
            "SELECT type, name, tbl_name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
        ).fetchall()
        return {
            "objects": sorted(objects),
            "columns": {
                table: sorted(tuple(row[1:]) for row in db.execute(f"PRAGMA table_info({table})"))
                for kind, table, _ in objects
                if kind == "table"
            },
            "version": db.execute("PRAGMA user_version").fetchone()[0],
        }
    finally:
        db.close()


# A click left waiting in an old store, in the columns every version had.
OLD_ROWS = (
    "INSERT INTO requests (request_id, delivery_key, kind, payload, received_at)"
    " VALUES ('old', 'old-key', 'custom_action', '{\"context\": \"OLD\"}', 999000)",
    "INSERT INTO tasks (task_id, request_id, kind, asset_id, state, not_before,"
    " created_at, updated_at) VALUES ('t-old', 'old', 'build', 'a-old', 'queued',"
    " 999000, 999000, 999000)",
)


def old_task(path: Path, version: int) -> None:
    """A click left waiting in the old file, in the columns it had then."""
    db = sqlite3.connect(path)
    with db:
        for statement in OLD_ROWS:
            db.execute(statement)
    db.close()


async def works(queue, clock: FakeClock) -> None:
    """A representative part of the contract, on every concern of the queue."""
    old = await queue.claim("w")  # what the old file held runs first (ranked earlier)
    assert (old.request_id, old.asset_id, old.payload) == ("old", "a-old", {"context": "OLD"})
    assert await queue.backlog_by_lane() == {"click": 1, "event": 0}
    await queue.enqueue(delivery("k1"), "r1")
    assert await queue.backlog() == 2
    expand = await queue.claim("w")
    await queue.complete(expand, [NewTask("build", "a1"), NewTask("build", "a2")])
    build = await queue.claim("w")
    assert await queue.retry(build, "later")
    await queue.fail(old, "no", events=[Event("evt_1", "captions.refused", "a-old", {}, 1.0)])
    assert await queue.failure_count() == 1
    assert [f["request_id"] for f in await queue.recent_failures()] == ["old"]
    status = await queue.request_status("r1")
    assert sorted(t["state"] for t in status["tasks"]) == ["done", "queued", "queued"]
    await queue.record_bundle("a1", "f1", "published")
    assert await queue.bundle_folders("a1") == ["f1"]
    assert await queue.take_lease("scan", "me", 30)
    assert not await queue.take_lease("scan", "you", 30)
    await queue.record_work(Work("a1", "f1", "T", "r1", clock.now - 1, None, ["en"]))
    assert [w["folder"] for w in await queue.work_to_notify(clock.now, clock.now)] == ["f1"]
    assert await queue.outbox_backlog() is not None
    assert await queue.add_events([Event("evt_1", "captions.refused", "a-old", {}, 1.0)]) == 0


async def opened_and_working(queue, clock: FakeClock) -> None:
    await queue.open()  # the upgrade
    try:
        await works(queue, clock)
    finally:
        await queue.close()


@pytest.mark.parametrize("versioned", [False, True], ids=["before-versions", "versioned"])
@pytest.mark.parametrize("version", range(1, SQLITE_LATEST))
async def test_every_sqlite_schema_upgrades_to_the_latest(tmp_path, version, versioned):
    clock = FakeClock()
    new = tmp_path / "new.db"
    q = SQLiteQueue(new, **LIMITS, clock=clock)
    await q.open()
    await q.close()
    path = tmp_path / "old.db"
    sqlite_file_at(path, version, versioned=versioned)
    old_task(path, version)
    await opened_and_working(SQLiteQueue(path, **LIMITS, clock=clock), clock)
    assert schema(path) == schema(new)
    assert schema(path)["version"] == SQLITE_LATEST


async def test_an_old_sqlite_file_opened_read_only_opens_and_upgrades_later(tmp_path):
    clock = FakeClock()
    path = tmp_path / "old.db"
    sqlite_file_at(path, 9)
    old_task(path, 9)
    readonly = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    # The steps cannot be written: nothing is, and the file stays as it was.
    sqlite_migrate.migrate(readonly)
    assert readonly.execute("PRAGMA user_version").fetchone()[0] == 0
    assert not readonly.in_transaction
    readonly.close()
    await opened_and_working(SQLiteQueue(path, **LIMITS, clock=clock), clock)


@pytest.mark.parametrize("version", range(1, POSTGRES_LATEST))
async def test_every_postgres_schema_upgrades_to_the_latest(pg_url, version):
    postgres_database_at(pg_url, version)
    with psycopg.connect(pg_url, autocommit=True) as connection:
        for statement in OLD_ROWS:
            connection.execute(statement)  # type: ignore[arg-type]
    clock = FakeClock()
    await opened_and_working(PostgresQueue(pg_url, **LIMITS, clock=clock), clock)
    with psycopg.connect(pg_url) as connection:
        versions = connection.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()
    assert versions == [(v,) for v, _ in migration_steps()]


def test_every_named_sqlite_statement_is_loaded_and_whole():
    """Each statement of sqlite_queries.sql is one of sqlite_sql's, and whole."""
    import sqlite3 as sqlite

    from service.queue import sqlite_sql
    from service.queue.sql_files import named

    statements = named("sqlite_queries.sql")
    assert set(statements) == {name.lower() for name in vars(sqlite_sql) if name.isupper()}
    for name, text in statements.items():
        assert sqlite.complete_statement(text + ";"), name
        assert ";" not in text, f"{name}: one statement each"
