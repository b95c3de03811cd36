import errno
import os
import sqlite3
import threading

import anyio
import pytest

from service import probe
from service.queue import Delivery, Enqueued, NewTask, QueueFull, QueueUnavailable, backoff_delay
from service.queue.sqlite import SQLiteQueue


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def delivery(key: str = "k1", task: NewTask | None = None) -> Delivery:
    return Delivery(
        key=key,
        kind="custom_action",
        payload={"context": "ASSET"},
        first_task=task or NewTask("expand"),
    )


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
async def queue(tmp_path, clock):
    q = SQLiteQueue(
        tmp_path / "q.db",
        max_attempts=3,
        max_backlog=5,
        clock=clock,
        backoff=lambda attempt: 10.0 * attempt,
        lease_seconds=60,
    )
    await q.open()
    yield q
    await q.close()


@pytest.fixture
def anyio_backend():
    return "asyncio"


pytestmark = pytest.mark.anyio


async def test_enqueue_then_claim(queue):
    result = await queue.enqueue(delivery(), "req-1")
    assert (result.request_id, result.duplicate) == ("req-1", False)
    task = await queue.claim("w1")
    assert task is not None
    assert (task.request_id, task.kind, task.attempts, task.payload) == (
        "req-1",
        "expand",
        1,
        {"context": "ASSET"},
    )
    assert await queue.claim("w2") is None  # leased to w1


async def test_same_delivery_key_is_one_request(queue):
    first = await queue.enqueue(delivery("same"), "req-a")
    second = await queue.enqueue(delivery("same"), "req-b")
    assert second.request_id == first.request_id == "req-a"
    assert second.duplicate


async def test_concurrent_identical_deliveries_store_one(queue, tmp_path):
    results = []

    async def send(i: int) -> None:
        results.append(await queue.enqueue(delivery("same"), f"req-{i}"))

    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(send, i)
    assert len({r.request_id for r in results}) == 1
    assert sum(not r.duplicate for r in results) == 1
    rows = sqlite3.connect(tmp_path / "q.db").execute("SELECT COUNT(*) FROM requests").fetchone()
    assert rows[0] == 1


async def test_expired_lease_is_claimed_again(queue, clock):
    await queue.enqueue(delivery(), "req-1")
    first = await queue.claim("crashed-worker")
    clock.now += 61
    second = await queue.claim("w2")
    assert second is not None and second.task_id == first.task_id
    assert second.attempts == 2
    # The crashed worker can no longer finish it.
    await queue.complete(first)
    status = await queue.request_status("req-1")
    assert status["tasks"][0]["state"] == "running"


async def test_extended_lease_is_not_taken(queue, clock):
    await queue.enqueue(delivery(), "req-1")
    task = await queue.claim("w1")
    clock.now += 50
    await queue.extend_lease(task)
    clock.now += 50
    assert await queue.claim("w2") is None


async def test_a_worker_that_lost_its_lease_cannot_renew_it(queue, clock):
    await queue.enqueue(delivery(), "req-1")
    slow = await queue.claim("slow-worker")
    assert await queue.extend_lease(slow)
    clock.now += 61
    assert await queue.claim("w2") is not None
    assert not await queue.extend_lease(slow)


async def test_a_lapsed_lease_reads_as_waiting_with_the_reason(queue, clock):
    await queue.enqueue(delivery(), "req-1")
    await queue.claim("killed-worker")
    assert (await queue.request_status("req-1"))["tasks"][0]["state"] == "running"
    clock.now += 61
    [task] = (await queue.request_status("req-1"))["tasks"]
    assert task["state"] == "queued"
    assert "stopped renewing the lease" in task["last_error"]


async def _asset_tasks(queue, *asset_ids_by_request):
    for number, asset_id in enumerate(asset_ids_by_request):
        await queue.enqueue(delivery(f"k{number}", NewTask("build", asset_id)), f"req-{number}")


async def test_one_task_per_asset_runs_at_a_time(queue, clock):
    await _asset_tasks(queue, "asset-a", "asset-a", "asset-b")
    first = await queue.claim("w1")
    assert first.asset_id == "asset-a"
    other = await queue.claim("w2")
    assert other.asset_id == "asset-b"  # the second asset-a task waits its turn
    assert await queue.claim("w3") is None
    await queue.complete(first)
    second = await queue.claim("w3")
    assert (second.asset_id, second.request_id) == ("asset-a", "req-1")


async def test_an_asset_whose_worker_died_is_free_once_its_lease_lapses(queue, clock):
    await _asset_tasks(queue, "asset-a", "asset-a")
    await queue.claim("dead-worker")
    assert await queue.claim("w2") is None
    clock.now += 61
    # Both asset-a tasks are due; whichever runs, only one runs.
    taken = await queue.claim("w2")
    assert taken.asset_id == "asset-a"
    assert await queue.claim("w3") is None


async def test_concurrent_claims_never_run_one_asset_twice(queue, clock):
    await _asset_tasks(queue, "asset-a", "asset-a", "asset-b", "asset-b")
    claimed = []

    async def claim(owner: str) -> None:
        task = await queue.claim(owner)
        if task is not None:
            claimed.append(task.asset_id)

    async with anyio.create_task_group() as group:
        for n in range(12):
            group.start_soon(claim, f"w{n}")
    assert sorted(claimed) == ["asset-a", "asset-b"]


async def test_retry_waits_for_backoff_then_fails_after_max_attempts(queue, clock):
    await queue.enqueue(delivery(), "req-1")
    for attempt in (1, 2):
        task = await queue.claim("w")
        assert task.attempts == attempt
        assert await queue.retry(task, f"boom {attempt}")
        assert await queue.claim("w") is None  # not before the backoff
        clock.now += 10.0 * attempt
    task = await queue.claim("w")
    assert task.attempts == 3
    assert not await queue.retry(task, "boom 3")
    status = await queue.request_status("req-1")
    assert status["tasks"][0]["state"] == "failed"
    assert status["tasks"][0]["last_error"] == "boom 3 (gave up after 3 attempts)"
    assert await queue.recent_failures() == [
        {
            "request_id": "req-1",
            "kind": "expand",
            "asset_id": None,
            "attempts": 3,
            "last_error": "boom 3 (gave up after 3 attempts)",
            "updated_at": clock.now,
        }
    ]


async def test_uncounted_retry_does_not_use_up_attempts(queue, clock):
    await queue.enqueue(delivery(), "req-1")
    for _ in range(10):
        task = await queue.claim("w")
        assert task.attempts == 1
        assert await queue.retry(task, "proxy transcoding", delay=5, count_attempt=False)
        clock.now += 5
    assert task.first_claimed_at == 1_000_000.0


async def test_children_are_added_once_per_asset(queue):
    await queue.enqueue(delivery(), "req-1")
    task = await queue.claim("w")
    await queue.complete(
        task, [NewTask("build", "a1"), NewTask("build", "a2"), NewTask("build", "a1")]
    )
    status = await queue.request_status("req-1")
    assert [(t["kind"], t["asset_id"], t["state"]) for t in status["tasks"]] == [
        ("expand", None, "done"),
        ("build", "a1", "queued"),
        ("build", "a2", "queued"),
    ]


async def test_backlog_over_limit_refuses_new_but_answers_duplicates(queue):
    for i in range(5):
        await queue.enqueue(delivery(f"k{i}"), f"req-{i}")
    with pytest.raises(QueueFull) as err:
        await queue.enqueue(delivery("k-new"), "req-new")
    assert err.value.retry_after > 0
    again = await queue.enqueue(delivery("k0"), "req-x")
    assert again.duplicate and again.request_id == "req-0"
    assert await queue.backlog() == 5


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


def test_backoff_grows_and_is_capped():
    low = [backoff_delay(a, rng=lambda: 0.0) for a in range(1, 12)]
    high = [backoff_delay(a, rng=lambda: 1.0) for a in range(1, 12)]
    assert low[:4] == [1.0, 2.0, 4.0, 8.0]
    assert high[:4] == [2.0, 4.0, 8.0, 16.0]
    assert max(high) == 300.0 and max(low) == 150.0
