"""The SQLite queue's plumbing: its file, its connections, and who writes.

WAL journal with `synchronous=FULL`: a commit that returned is on disk, so
a `kill -9` (or a power cut) right after the 202 loses nothing. Every write
of the process goes through one writer thread (service.queue.group_commit),
which commits whatever is waiting in one transaction; reads run on their
own connections in worker threads (WAL readers never wait for the writer),
so the event loop never waits on disk.

A store that cannot take writes (missing, read-only files, a full disk) is
reported, and refused, for as long as that lasts, and used again as soon
as it is fixed, without a restart.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread

from service.queue import QueueUnavailable
from service.queue.group_commit import GroupCommit
from service.storage import probe

T = TypeVar("T")


class SQLiteStore:
    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self.clock = clock
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._writer = GroupCommit(self._transact, name=f"queue-writer {self.path.name}")

    # Why the queue's files could not take a write when `ping` last looked,
    # or None. While it is set, every write looks again first: deliveries are
    # refused exactly while /readyz says the queue is not writable, even where
    # SQLite's already-open files would still take them, and accepted again as
    # soon as the cause is fixed, whether or not anyone polls /readyz.
    _store_fault: str | None = None

    def create_schema(self, db: sqlite3.Connection) -> None:
        """Create or migrate the tables (the queue's own business)."""

    # -- connections --------------------------------------------------------

    def _open_connection(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path,
            timeout=self.busy_timeout,
            isolation_level=None,
            check_same_thread=False,
            factory=_ThreadConnection,
        )
        connection.owner = threading.current_thread()
        try:
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA foreign_keys=ON")
            # What a statement frees is zeroed where that costs no extra write
            # (a sealed user token, once deleted, does not linger in the page).
            connection.execute("PRAGMA secure_delete=FAST")
        except BaseException:
            connection.close()
            raise
        return connection

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._open_connection()
            self._local.connection = connection
            # SQLite opens its files read-only, without a word, when it cannot
            # open them read-write. Such a connection lives for one call only
            # (`_call` drops it), so it never outlasts the cause.
            self._local.read_only = bool(self._unwritable_files())
            with self._connections_lock:
                # anyio retires worker threads that sat idle; the connections
                # they opened would stay open (two descriptors each) until
                # close(), so every burst of concurrent calls leaked some.
                ended = [c for c in self._connections if not _owner_alive(c)]
                for orphan in ended:
                    self._connections.remove(orphan)
                    with contextlib.suppress(sqlite3.Error):
                        orphan.close()  # its thread is gone, so nothing else uses it
                self._connections.append(connection)
        return connection

    def _drop_connection(self) -> None:
        """Close this thread's connection; its next call opens a fresh one."""
        connection = self._local.__dict__.pop("connection", None)
        self._local.__dict__.pop("read_only", None)
        if connection is None:
            return
        with self._connections_lock, contextlib.suppress(ValueError):
            self._connections.remove(connection)
        # Closing also rolls back a transaction a failed COMMIT left open.
        with contextlib.suppress(sqlite3.Error):
            connection.close()

    # -- the files ----------------------------------------------------------

    def _check_store(self) -> None:
        """QueueUnavailable, saying why, unless the queue's files take writes now."""
        self._store_fault = fault = self._store_problem()
        if fault is not None:
            raise QueueUnavailable(fault)

    def _unwritable_files(self) -> list[Path]:
        """Those of the database, its -wal and its -shm that this process cannot write.

        SQLite writes all three, and they take the database's mode when
        created: a read-only database leaves a read-only -wal or -shm behind,
        which keeps SQLite read-only after the database itself is fixed.
        os.access asks the kernel what SQLite's open() asks; opening the files
        here would not do, as closing any descriptor of them drops SQLite's
        POSIX locks.
        """
        paths = [self.path.with_name(self.path.name + suffix) for suffix in ("", "-wal", "-shm")]
        return [p for p in paths if os.access(p, os.F_OK) and not os.access(p, os.W_OK)]

    def _store_problem(self) -> str | None:
        if not self.path.exists():
            return f"queue database {self.path} is missing; restore it or restart the service"
        unwritable = self._unwritable_files()
        if unwritable:
            return (
                f"queue files not writable by this process: {', '.join(map(str, unwritable))} "
                "(check their owner, mode and mount; SQLite opens the queue read-only)"
            )
        # SQLite creates its -wal and -shm files beside the database, and a
        # commit can succeed on a full disk (the WAL reuses its own space), so
        # only a fresh write in that directory shows both problems.
        directory = self.path.parent
        target = directory / f".{self.path.name}.ready-{uuid.uuid4().hex}"
        try:
            probe.write_file(target)
            target.unlink()
        except OSError as exc:
            return (
                f"queue directory {directory}: cannot write a {probe.PROBE_BYTES // 1024} KiB "
                f"file: {probe.reason(exc)}"
            )
        return None

    # -- running statements ---------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        if self._store_fault is not None:
            self._check_store()
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            # If the rollback fails too, the connection is dropped anyway;
            # the error worth reporting is the first one.
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
            raise
        else:
            connection.execute("COMMIT")

    def _call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on this thread's connection; whatever failed is not kept."""
        try:
            return fn()
        except (sqlite3.Error, OSError):
            # Whatever failed may live on in the connection (opened
            # read-only, a transaction left open): a fresh one sees the
            # store as it is now, so the queue recovers without a restart.
            self._drop_connection()
            raise
        finally:
            if getattr(self._local, "read_only", False):
                self._drop_connection()

    def _transact(self, body: Callable[[sqlite3.Connection], None]) -> None:
        """The writer thread's transaction (see GroupCommit)."""

        def run() -> None:
            with self._write() as db:
                body(db)

        self._call(run)

    def _unavailable(self, exc: BaseException) -> QueueUnavailable:
        return QueueUnavailable(f"SQLite queue at {self.path}: {exc}")

    async def _run(self, fn: Callable[[], T]) -> T:
        """A read (or a one-off) in a worker thread, on that thread's connection."""
        try:
            return await anyio.to_thread.run_sync(self._call, fn)
        except (sqlite3.Error, OSError) as exc:
            raise self._unavailable(exc) from exc

    async def _submit(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """A write, committed by the writer thread together with whatever else waits."""
        try:
            return await self._writer.submit(fn)
        except (sqlite3.Error, OSError) as exc:
            raise self._unavailable(exc) from exc

    async def _submit_item(
        self, group: Callable[[sqlite3.Connection, list[Any]], list[Any]], item: Any
    ) -> Any:
        """One item of a write that the writer does for a whole batch at once."""
        try:
            return await self._writer.submit_item(group, item)
        except (sqlite3.Error, OSError) as exc:
            raise self._unavailable(exc) from exc

    # -- lifecycle ------------------------------------------------------------

    async def open(self) -> None:
        def create() -> None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.create_schema(self._connection())

        await self._run(create)

    async def close(self) -> None:
        # The writer commits what is pending before it ends.
        await anyio.to_thread.run_sync(self._writer.stop)
        with self._connections_lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()


class _ThreadConnection(sqlite3.Connection):
    """A connection that knows the thread it was opened for."""

    owner: threading.Thread


def _owner_alive(connection: sqlite3.Connection) -> bool:
    owner = getattr(connection, "owner", None)
    return owner is None or owner.is_alive()
