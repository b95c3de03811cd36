"""The PostgreSQL queue's plumbing: its pool, its schema steps, and NOTIFY.

Statements time out after `timeout` seconds and the pool keeps reconnecting
in the background, so a dead database means a quick 503 and a database that
comes back is used again without a restart. The schema is created and
migrated at start-up, one replica at a time (advisory lock), from the steps
in postgres.sql. `wait_for_work` returns as soon as any replica NOTIFYs.

Errors never carry the connection string: its password must not reach a
log line, an error body or `/readyz`.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit

import anyio
import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from service.logging import get_logger
from service.queue import QueueUnavailable
from service.queue.sql_files import steps

log = get_logger("service.queue.postgres")

T = TypeVar("T")

NOTIFY_CHANNEL = "caption_bridge_tasks"
_MIGRATION_LOCK = 7_301_946_112  # any constant; one per application


def migration_steps() -> list[tuple[int, str]]:
    """(version, SQL) of every step in postgres.sql, in order."""
    return list(steps("postgres.sql"))


def describe(url: str) -> str:
    """The database, named for people: host, port and name, never the password."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"PostgreSQL queue at {host}{port}{parts.path or '/'}"


class PostgresStore:
    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float] = time.time,
        pool_size: int = 10,
        timeout: float = 4.0,
    ) -> None:
        self.url = url
        self.description = describe(url)
        self.clock = clock
        self.timeout = timeout
        self.pool_size = pool_size
        self._pool: AsyncConnectionPool | None = None
        self._work = anyio.Event()
        self._listening = anyio.Lock()
        self._listener: psycopg.AsyncConnection[Any] | None = None

    # -- plumbing ---------------------------------------------------------

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        if self._pool is None:
            raise QueueUnavailable(f"{self.description}: the queue is not open")
        try:
            async with self._pool.connection() as connection:
                yield connection
        except (psycopg.Error, OSError) as exc:
            raise QueueUnavailable(f"{self.description}: {_reason(exc)}") from None
        except TimeoutError:
            raise QueueUnavailable(
                f"{self.description}: no connection within {self.timeout:.0f}s"
            ) from None

    async def _in_transaction(
        self, fn: Callable[[psycopg.AsyncCursor[dict[str, Any]]], Awaitable[T]]
    ) -> T:
        async with (
            self._connection() as connection,
            connection.transaction(),
            connection.cursor(row_factory=dict_row) as cursor,
        ):
            return await fn(cursor)

    # -- lifecycle --------------------------------------------------------

    def _new_pool(self) -> AsyncConnectionPool:
        # A statement that waits longer than `timeout` on a dead or stuck
        # database fails, so a delivery gets its 503 well inside Iconik's
        # deadline; the pool keeps reconnecting in the background meanwhile.
        return AsyncConnectionPool(
            self.url,
            min_size=1,
            max_size=self.pool_size,
            open=False,
            timeout=self.timeout,
            kwargs={
                "autocommit": True,
                "connect_timeout": max(1, int(self.timeout)),
                "options": f"-c statement_timeout={int(self.timeout * 1000)}",
            },
            check=AsyncConnectionPool.check_connection,
            reconnect_timeout=0,  # never give up on a database that went away
        )

    async def open(self) -> None:
        self._pool = self._new_pool()
        await self._pool.open(wait=False)
        await self._migrate()

    async def _migrate(self) -> None:
        async def migrate(cursor: psycopg.AsyncCursor[dict[str, Any]]) -> None:
            await cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            await cursor.execute(
                "CREATE TABLE IF NOT EXISTS schema_version"
                " (version integer PRIMARY KEY, applied_at double precision NOT NULL)"
            )
            await cursor.execute("SELECT coalesce(max(version), 0) AS v FROM schema_version")
            row = await cursor.fetchone()
            current = int(row["v"]) if row else 0
            for version, sql in migration_steps():
                if version <= current:
                    continue
                await cursor.execute(sql)
                await cursor.execute(
                    "INSERT INTO schema_version (version, applied_at) VALUES (%s, %s)",
                    (version, self.clock()),
                )
                log.info("queue.migrated", version=version)

        await self._in_transaction(migrate)

    async def close(self) -> None:
        await self._close_listener()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def wait_for_work(self, at_most: float) -> None:
        """Return when any replica signals new work (NOTIFY), or after `at_most` seconds.

        One slot of the process listens on a dedicated connection; the other
        idle slots wait for it to tell them.
        """
        woken = self._work
        with anyio.move_on_after(at_most + 1):
            if self._listening.locked():
                await woken.wait()
                return
            async with self._listening:
                try:
                    if self._listener is None or self._listener.closed:
                        self._listener = await psycopg.AsyncConnection.connect(
                            self.url, autocommit=True, connect_timeout=max(1, int(self.timeout))
                        )
                        await self._listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    async for _ in self._listener.notifies(timeout=at_most, stop_after=1):
                        pass
                except (psycopg.Error, OSError):
                    # The next claim reports the outage; listen again afresh then.
                    await self._close_listener()
                    await anyio.sleep(at_most)
        self._work = anyio.Event()
        woken.set()

    async def _close_listener(self) -> None:
        if self._listener is not None:
            await self._listener.close()
            self._listener = None

    async def _read(
        self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()
    ) -> list[dict[str, Any]]:
        async def read(cursor: psycopg.AsyncCursor[dict[str, Any]]) -> list[dict[str, Any]]:
            await cursor.execute(sql, params)
            return await cursor.fetchall()

        return await self._in_transaction(read)


def _reason(exc: BaseException) -> str:
    """What went wrong, in the server's or the driver's words, minus any conninfo."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # libpq quotes the connection target in some messages; never its password.
    return re.sub(r"password=\S+", "password=…", text)
