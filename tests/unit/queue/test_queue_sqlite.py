"""SQLite-only behaviour of the embedded queue: its files, locks and connections."""

import errno
import os
import sqlite3
import threading
from dataclasses import replace

import pytest

from service.queue import Enqueued, QueueUnavailable, sqlite_migrate
from service.queue.sqlite import SQLiteQueue
from service.storage import probe
from tests.support.queue import LIMITS, delivery
from tests.support.queue_schema import sqlite_file_at


@pytest.fixture
async def queue(tmp_path, clock):
    q = SQLiteQueue(
        tmp_path / "q.db", **LIMITS, clock=clock, backoff=lambda attempt: 10.0 * attempt
    )
    await q.open()
    yield q
    await q.close()


pytestmark = pytest.mark.anyio


async def test_unwritable_store_is_unavailable(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    q = SQLiteQueue(tmp_path / "file" / "q.db")
    with pytest.raises(QueueUnavailable):
        await q.open()


async def test_locked_store_is_unavailable_not_hung(tmp_path):
    q = SQLiteQueue(tmp_path / "q.db", busy_timeout=0.05)
    await q.open()
    blocker = sqlite3.connect(tmp_path / "q.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(QueueUnavailable):
            await q.ping()
        with pytest.raises(QueueUnavailable):
            await q.enqueue(delivery(), "req-1")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        await q.close()


async def test_a_connection_that_refuses_writes_is_replaced_not_kept(queue):
    await queue.enqueue(delivery("k1"), "req-1")
    # What SQLite does, silently, when it cannot open the file read-write:
    # the connection reads but refuses every write.
    for connection in queue._connections:
        connection.execute("PRAGMA query_only = ON")
    with pytest.raises(QueueUnavailable, match="readonly"):
        await queue.enqueue(delivery("k2"), "req-2")
    # The failed call closed its connection, so this one opens a fresh one.
    assert await queue.enqueue(delivery("k2"), "req-2") == Enqueued("req-2", duplicate=False)


async def test_ping_is_a_committed_write(queue, clock, tmp_path):
    await queue.ping()
    beats = sqlite3.connect(tmp_path / "q.db").execute("SELECT beat_at FROM readiness_heartbeat")
    assert beats.fetchall() == [(clock.now,)]


async def test_full_disk_is_unready_and_refuses_writes_until_space_returns(
    queue, tmp_path, monkeypatch
):
    # A real full disk is in test_readiness.py (a small tmpfs). A heartbeat
    # commit alone can succeed on a full disk, because the WAL reuses its own
    # space, so readiness also writes a file, and that write fails here as it
    # would there.
    def no_space(path, size=probe.PROBE_BYTES):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    with monkeypatch.context() as patched:
        patched.setattr(probe, "write_file", no_space)
        with pytest.raises(QueueUnavailable) as unready:
            await queue.ping()
        assert str(unready.value) == (
            f"queue directory {tmp_path}: cannot write a 64 KiB file: "
            "No space left on device (ENOSPC)"
        )
        # Deliveries are refused for the same reason while it lasts...
        with pytest.raises(QueueUnavailable, match="ENOSPC"):
            await queue.enqueue(delivery("k1"), "req-1")
    # ...and stored again once there is room, with no ping in between.
    assert await queue.enqueue(delivery("k1"), "req-1") == Enqueued("req-1", duplicate=False)
    await queue.ping()
    assert [p.name for p in tmp_path.iterdir() if ".ready-" in p.name] == []


async def test_connections_of_ended_threads_are_closed(queue):
    # anyio retires worker threads that sat idle; here a thread simply ends.
    ended = threading.Thread(target=queue._connection)
    ended.start()
    ended.join()
    orphan = queue._connections[-1]
    newcomer = threading.Thread(target=queue._connection)  # opening one tidies up
    newcomer.start()
    newcomer.join()
    assert orphan not in queue._connections
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        orphan.execute("SELECT 1")
    assert await queue.backlog() == 0  # the queue's own threads still work


async def test_indexes_no_statement_uses_are_dropped_from_older_databases(tmp_path, clock):
    path = tmp_path / "old.db"
    sqlite_file_at(path, sqlite_migrate.latest())
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE INDEX tasks_by_request ON tasks(request_id);"
        "CREATE INDEX tasks_waiting ON tasks(lane, state);"
        "CREATE INDEX tasks_pending_refresh ON tasks(asset_id, kind, state);"
    )
    db.close()
    q = SQLiteQueue(path, **LIMITS, clock=clock)
    await q.open()
    try:
        await q.enqueue(delivery("k1"), "r1")
        assert (await q.claim("w")).request_id == "r1"
    finally:
        await q.close()
    db = sqlite3.connect(path)
    names = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    db.close()
    assert not names & {"tasks_by_request", "tasks_waiting", "tasks_pending_refresh"}
    assert {"tasks_ready", "tasks_by_asset", "tasks_once"} <= names


async def test_a_database_from_before_user_tokens_gains_the_column(tmp_path, clock):
    path = tmp_path / "old.db"
    sqlite_file_at(path, 9)  # the step before user tokens
    db = sqlite3.connect(path)
    assert "user_token" not in {row[1] for row in db.execute("PRAGMA table_info(requests)")}
    db.close()
    q = SQLiteQueue(path, **LIMITS, clock=clock)
    await q.open()
    try:
        await q.enqueue(replace(delivery("k1"), user_token="sealed"), "r1")
        assert (await q.claim("w")).user_token == "sealed"
    finally:
        await q.close()


async def test_a_queue_file_from_before_retention_is_upgraded(tmp_path, clock):
    """An older file gets the new indexes and its failed tasks counted, once."""
    path = tmp_path / "old.db"
    q = SQLiteQueue(path, **LIMITS, clock=clock)
    await q.open()
    for n in range(3):
        await q.enqueue(delivery(f"k{n}"), f"r{n}")
    for n in range(2):
        await q.fail(await q.claim(f"w{n}"), "no")
    await q.close()
    # As the file was before: none of the new indexes, failures not counted.
    db = sqlite3.connect(path)
    db.executescript(
        "DROP INDEX tasks_failed; DROP INDEX tasks_deliveries; DROP INDEX requests_by_time;"
        "DROP INDEX bundles_by_folder; DELETE FROM task_counts WHERE state = 'failed';"
        "PRAGMA user_version = 0;"  # made before the steps were versioned
    )
    db.close()
    q = SQLiteQueue(path, **LIMITS, clock=clock)
    await q.open()
    try:
        assert await q.failure_count() == 2
        assert len(await q.recent_failures()) == 2
        await q.fail(await q.claim("w"), "no")
        assert await q.failure_count() == 3
    finally:
        await q.close()
    db = sqlite3.connect(path)
    names = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    db.close()
    assert {"tasks_failed", "tasks_deliveries", "requests_by_time", "bundles_by_folder"} <= names


async def test_pruned_pages_go_back_to_the_file_system(tmp_path, clock):
    from service.queue.retention import prune_expired

    path = tmp_path / "q.db"
    q = SQLiteQueue(path, **LIMITS, clock=clock)
    await q.open()
    await q.close()
    from tests.support.queue_fill import History, fill_sqlite

    fill_sqlite(str(path), History(n=5_000, start=clock.now - 200 * 86_400, spacing=1.0))
    q = SQLiteQueue(path, **LIMITS, clock=clock)
    await q.open()
    try:

        def pages() -> tuple[int, int]:
            db = sqlite3.connect(path)
            try:
                return tuple(
                    db.execute(f"PRAGMA {name}").fetchone()[0]
                    for name in ("page_count", "freelist_count")
                )
            finally:
                db.close()

        full, _ = pages()
        assert await prune_expired(q, 90 * 86_400) == 5_000
        emptied, free = pages()
    finally:
        await q.close()
    assert emptied < full / 4 and free < 1_024
