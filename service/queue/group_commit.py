"""Group commit: one thread runs every write of a process, many per transaction.

SQLite has one writer at a time. When every caller opened its own
`BEGIN IMMEDIATE` on its own thread, the losers slept in SQLite's busy
handler (1, 2, 5 ... 100 ms) while the lock was often free again, and each
delivery paid a commit (an fsync) of its own. Here callers hand their write
to one thread; it takes every write waiting at that moment, runs them in
one transaction, commits once (one fsync, still `synchronous=FULL`), and
only then answers each caller. So a 202 still goes out only after the
commit that holds its delivery, and under load the cost of a commit is
shared by everything that arrived while the previous one was on its way
to disk.

Each write runs inside a SAVEPOINT: one that raises (a full queue, a
constraint) is rolled back alone and its caller gets the exception; the
others commit. An error of the store itself (locked, read-only, disk) fails
the whole batch, and every caller of it gets that error.

Writes of one kind can also be handed over as items of a group
(`submit_item`): one function then writes all the items of a batch with a
few statements. That matters beyond SQL: every statement releases and
retakes the GIL, and each retake can wait for the event loop's thread, so
a delivery written with two statements per batch instead of six per
delivery leaves the loop (and the writer) far more time.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# A transaction holds at most this many writes, so one batch never keeps the
# callers at its front waiting on a long tail.
MAX_BATCH = 512

Transact = Callable[[Callable[[sqlite3.Connection], None]], None]
# Writes every item of a batch; returns, per item, its result or the
# exception its caller should get. It must not fail part-way for one item.
GroupWrite = Callable[[sqlite3.Connection, list[Any]], list[Any]]


class _Job(Generic[T]):
    __slots__ = ("error", "fn", "future", "group", "item", "loop", "result")

    def __init__(
        self,
        fn: Callable[[sqlite3.Connection], T] | None,
        future: asyncio.Future[T],
        group: GroupWrite | None = None,
        item: Any = None,
    ) -> None:
        self.fn, self.group, self.item = fn, group, item
        self.future = future
        self.loop = future.get_loop()
        self.result: Any = None
        self.error: BaseException | None = None


class GroupCommit:
    """The writer thread. `transact(body)` must run `body(db)` in one write
    transaction on the calling thread's connection and commit it, or raise."""

    def __init__(self, transact: Transact, *, name: str = "queue-writer") -> None:
        self._transact = transact
        self._name = name
        # A C queue, not a list under a Condition: handing a write over costs
        # the event loop's thread no Python-level lock, and the writer sleeps
        # in C, without the GIL, until there is something to write.
        self._inbox: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._threads = threading.Lock()  # who starts and ends the writer

    async def submit(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(db)` in the next transaction; its result once committed.

        Like a call in a worker thread, a write once submitted is waited
        for even if the caller is cancelled meanwhile, so a caller never
        walks away from a write that may still commit (a claimed task
        nobody runs, a 503 for a stored delivery).
        """
        return await self._enter(_Job(fn, asyncio.get_running_loop().create_future()))

    async def submit_item(self, group: GroupWrite, item: Any) -> Any:
        """Have `group(db, items)` write `item` with the others of its batch."""
        return await self._enter(
            _Job(None, asyncio.get_running_loop().create_future(), group, item)
        )

    async def _enter(self, job: _Job[T]) -> T:
        self._inbox.put(job)
        # Read after the put: a writer that is ending clears `_thread` before
        # its last look at the inbox, so either it sees this job or we see None.
        if self._thread is None:
            with self._threads:
                if self._thread is None:
                    self._start()
        return await _outcome(job.future)

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Commit what is pending, then end the thread."""
        with self._threads:
            thread = self._thread
            if thread is None:
                return
            self._inbox.put(None)
        if thread is not threading.current_thread():
            thread.join()

    def _serve(self) -> None:
        inbox = self._inbox
        stopping = False
        while True:
            if stopping and inbox.empty():
                with self._threads:
                    self._thread = None
                    if inbox.empty():
                        return
                    self._thread = threading.current_thread()  # a write came in meanwhile
            # Sleeps without the GIL until the first write comes; then takes
            # every write already waiting, up to MAX_BATCH.
            job = inbox.get_nowait() if stopping else inbox.get()
            batch: list[_Job[Any]] = []
            while True:
                if job is None:
                    stopping = True  # commit what was sent before stop(), then end
                else:
                    batch.append(job)
                if len(batch) >= MAX_BATCH or inbox.empty():
                    break
                job = inbox.get_nowait()
            if batch:
                self._commit(batch)

    def _commit(self, batch: list[_Job[Any]]) -> None:
        groups: dict[GroupWrite, list[_Job[Any]]] = {}
        for job in batch:
            if job.group is not None:
                groups.setdefault(job.group, []).append(job)

        def body(db: sqlite3.Connection) -> None:
            for group, members in groups.items():
                outcomes = group(db, [job.item for job in members])
                for job, outcome in zip(members, outcomes, strict=True):
                    if isinstance(outcome, BaseException):
                        job.error = outcome
                    else:
                        job.result = outcome
            for job in batch:
                if job.fn is None:
                    continue
                db.execute("SAVEPOINT job")
                try:
                    job.result = job.fn(db)
                except sqlite3.IntegrityError as exc:
                    _undo(db)
                    job.error = exc
                except sqlite3.Error:
                    raise  # the store's trouble, not this job's: the batch fails
                except Exception as exc:  # QueueFull and the like: this job only
                    _undo(db)
                    job.error = exc
                else:
                    db.execute("RELEASE job")

        try:
            self._transact(body)
        except BaseException as exc:  # nothing of this batch was committed
            for job in batch:
                job.result, job.error = None, exc
        by_loop: dict[asyncio.AbstractEventLoop, list[_Job[Any]]] = {}
        for job in batch:
            by_loop.setdefault(job.loop, []).append(job)
        for loop, jobs in by_loop.items():
            # One wake-up per loop and batch, not one per job.
            with contextlib.suppress(RuntimeError):  # that loop has closed
                loop.call_soon_threadsafe(_settle, jobs)


async def _outcome(future: asyncio.Future[T]) -> T:
    """The write's outcome, even for a caller cancelled meanwhile.

    anyio's shielded scope did not hold against a plain `Task.cancel()`
    (uvicorn's, on a forced shutdown): the caller walked away from a write
    that then committed. Here a cancellation, however delivered and however
    often, waits for the outcome first and then goes on.
    """
    cancelled = False
    while not future.done():
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return future.result()


def _undo(db: sqlite3.Connection) -> None:
    db.execute("ROLLBACK TO job")
    db.execute("RELEASE job")


def _settle(jobs: list[_Job[Any]]) -> None:
    for job in jobs:
        if job.future.done():
            continue
        if job.error is not None:
            job.future.set_exception(job.error)
        else:
            job.future.set_result(job.result)


class AsyncGroupCommit(Generic[T]):
    """Group commit for a store reached over the network (PostgreSQL).

    The first item handed over is written at once, alone; whatever arrives
    while that write is on its way waits, and goes in the next write, all
    together (up to MAX_BATCH): one statement, one transaction, one commit
    for the lot, so under load a round trip and a commit are shared by
    everything that arrived meanwhile, and when idle nobody waits for a
    batch to fill. Each caller gets its own item's outcome only once the
    write that held it has committed. `write(items)` returns, per item, its
    result or the exception its caller should get.
    """

    def __init__(
        self,
        write: Callable[[list[Any]], Awaitable[list[T | BaseException]]],
        *,
        max_batch: int = MAX_BATCH,
        in_flight: int = 1,
    ) -> None:
        self._write = write
        self._max_batch = max_batch
        self._in_flight = in_flight
        self._pending: list[tuple[Any, asyncio.Future[T]]] = []
        self._flushers: set[asyncio.Task[None]] = set()

    async def submit(self, item: Any) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append((item, future))
        if len(self._flushers) < self._in_flight:
            # Its own task, not the caller's: a caller cancelled meanwhile
            # must not take the others' write down with it.
            flusher = loop.create_task(self._flush())
            self._flushers.add(flusher)
            flusher.add_done_callback(self._flushers.discard)
        return await _outcome(future)

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                try:
                    outcomes: list[Any] = await self._write([item for item, _ in batch])
                except asyncio.CancelledError:
                    stopped = RuntimeError("the queue's writer was stopped")
                    outcomes = [stopped] * len(batch)
                    _settle_futures(batch, outcomes)
                    raise
                except Exception as exc:  # nothing of this batch was committed
                    outcomes = [exc] * len(batch)
                _settle_futures(batch, outcomes)
        finally:
            # Out of the set in the same step that found nothing pending: an
            # item handed over after it starts a writer of its own (the task's
            # done callback comes a step later, after such an item).
            self._flushers.discard(asyncio.current_task())

    async def drain(self) -> None:
        """Wait until everything handed over so far has been written."""
        while self._flushers:
            await asyncio.gather(*self._flushers, return_exceptions=True)


def _settle_futures(batch: list[tuple[Any, asyncio.Future[Any]]], outcomes: list[Any]) -> None:
    for (_, future), outcome in zip(batch, outcomes, strict=True):
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
