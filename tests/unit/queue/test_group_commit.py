"""The queue's writer thread: batching, stopping, restarting, one write's error."""

import asyncio
import sqlite3
import threading

import pytest

from service.queue.group_commit import GroupCommit


class Store:
    """A real SQLite file, one connection per thread, commits counted."""

    def __init__(self, path):
        self.path = path
        self.commits = 0
        self.local = threading.local()
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("CREATE TABLE rows (n INTEGER PRIMARY KEY)")
        db.close()

    def transact(self, body):
        db = getattr(self.local, "db", None)
        if db is None:
            db = self.local.db = sqlite3.connect(self.path, isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        try:
            body(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        self.commits += 1

    def rows(self):
        db = sqlite3.connect(self.path)
        try:
            return sorted(n for (n,) in db.execute("SELECT n FROM rows"))
        finally:
            db.close()


def insert(n):
    def write(db):
        db.execute("INSERT INTO rows (n) VALUES (?)", (n,))
        return n

    return write


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "rows.db")


@pytest.mark.anyio
async def test_concurrent_writes_share_transactions(store):
    writer = GroupCommit(store.transact)
    try:
        results = await asyncio.gather(*(writer.submit(insert(n)) for n in range(300)))
    finally:
        writer.stop()
    assert results == list(range(300))
    assert store.rows() == list(range(300))
    assert store.commits < 300 / 4  # they went in batches, not one commit each


@pytest.mark.anyio
async def test_a_failing_write_fails_alone(store):
    writer = GroupCommit(store.transact)
    try:
        outcomes = await asyncio.gather(
            writer.submit(insert(1)),
            writer.submit(insert(1)),  # the same key: an IntegrityError for this one only
            writer.submit(insert(2)),
            return_exceptions=True,
        )
    finally:
        writer.stop()
    assert outcomes[0] == 1 and outcomes[2] == 2
    assert isinstance(outcomes[1], sqlite3.IntegrityError)
    assert store.rows() == [1, 2]


@pytest.mark.anyio
async def test_stop_commits_what_was_sent_and_a_later_write_starts_it_again(store):
    writer = GroupCommit(store.transact)
    pending = [asyncio.ensure_future(writer.submit(insert(n))) for n in range(50)]
    await asyncio.sleep(0)  # every write handed over
    await asyncio.to_thread(writer.stop)
    assert [await p for p in pending] == list(range(50))
    assert await writer.submit(insert(99)) == 99
    writer.stop()
    assert store.rows() == [*range(50), 99]


@pytest.mark.slow
def test_no_write_is_stranded_while_the_writer_stops_and_starts(store):
    """Writes from several loops race stop() over and over; each one commits."""
    writer = GroupCommit(store.transact)
    done = threading.Event()

    def stopper():
        while not done.is_set():
            writer.stop()

    def sender(first):
        async def send():
            for n in range(first, first + 200):
                assert await asyncio.wait_for(writer.submit(insert(n)), 10) == n

        asyncio.run(send())

    stopping = threading.Thread(target=stopper)
    senders = [threading.Thread(target=sender, args=(k * 1000,)) for k in range(3)]
    stopping.start()
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join(60)
    done.set()
    stopping.join(10)
    writer.stop()
    assert store.rows() == [n for k in range(3) for n in range(k * 1000, k * 1000 + 200)]


@pytest.mark.anyio
async def test_a_cancelled_caller_still_waits_for_its_write(store):
    entered, release = threading.Event(), threading.Event()

    def slow(db):
        entered.set()
        release.wait(10)
        db.execute("INSERT INTO rows (n) VALUES (7)")

    writer = GroupCommit(store.transact)
    call = asyncio.ensure_future(writer.submit(slow))
    assert await asyncio.to_thread(entered.wait, 10)
    call.cancel()
    for _ in range(5):
        await asyncio.sleep(0)  # turns of the loop in which a cancellation would land
    assert not call.done()  # still waiting on the write, not walked away from it
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await call
    writer.stop()
    assert store.rows() == [7]


# -- the network store's group commit (PostgreSQL's intake uses it) -----------


@pytest.mark.anyio
async def test_async_group_commit_writes_what_arrived_meanwhile_together():
    from service.queue.group_commit import AsyncGroupCommit

    batches: list[list[int]] = []
    gate = asyncio.Event()

    async def write(items):
        batches.append(list(items))
        await gate.wait()  # the round trip: everyone else arrives meanwhile
        return [n * 10 for n in items]

    writer = AsyncGroupCommit(write)
    first = asyncio.ensure_future(writer.submit(0))
    for _ in range(5):
        await asyncio.sleep(0)
    assert batches == [[0]]  # written at once, alone: nobody waits for a batch to fill
    calls = [first] + [asyncio.ensure_future(writer.submit(n)) for n in range(1, 50)]
    for _ in range(5):
        await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*calls) == [n * 10 for n in range(50)]
    # The 49 that came while the first was out went together.
    assert batches == [[0], list(range(1, 50))]


@pytest.mark.anyio
async def test_async_group_commit_an_item_handed_over_as_the_writer_finishes_is_written():
    """The writer's task had ended, its removal from the set not yet run, when
    the next item came: no writer was started for it and it waited for the
    next caller (a webhook storm on PostgreSQL stalled 30 s in CI)."""
    from service.queue.group_commit import AsyncGroupCommit

    gate = asyncio.Event()

    async def write(items):
        await gate.wait()
        return items

    writer = AsyncGroupCommit(write)
    first = asyncio.ensure_future(writer.submit(1))
    await asyncio.sleep(0)  # the writer is out with the first item
    gate.set()  # it resumes, writes, finds nothing more and ends, in one step...
    second = asyncio.ensure_future(writer.submit(2))  # ...just before this comes in
    for _ in range(20):
        await asyncio.sleep(0)
    assert first.done() and second.done(), "the second item has no writer"
    assert [first.result(), second.result()] == [1, 2]


@pytest.mark.anyio
async def test_async_group_commit_gives_each_its_own_outcome_and_a_failed_write_to_its_batch():
    from service.queue.group_commit import AsyncGroupCommit

    async def write(items):
        if "down" in items:
            raise ConnectionError("store away")
        return [ValueError(item) if item == "bad" else item.upper() for item in items]

    writer = AsyncGroupCommit(write)
    good, bad = await asyncio.gather(
        writer.submit("ok"), writer.submit("bad"), return_exceptions=True
    )
    assert good == "OK" and isinstance(bad, ValueError)
    with pytest.raises(ConnectionError):
        await writer.submit("down")
    assert await writer.submit("again") == "AGAIN"  # the next batch is written as usual


@pytest.mark.anyio
async def test_async_group_commit_a_cancelled_caller_still_waits_for_its_write():
    from service.queue.group_commit import AsyncGroupCommit

    written: list[str] = []
    release = asyncio.Event()

    async def write(items):
        await release.wait()
        written.extend(items)
        return items

    writer = AsyncGroupCommit(write)
    call = asyncio.ensure_future(writer.submit("delivery"))
    await asyncio.sleep(0)
    call.cancel()
    for _ in range(5):
        await asyncio.sleep(0)
    assert not call.done()  # still waiting on the write, not walked away from it
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert written == ["delivery"]
    await writer.drain()
