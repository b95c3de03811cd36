"""One Iconik rate budget for every replica, kept in the PostgreSQL queue's database.

With `QUEUE_URL=postgresql://…` each process's RateLimiter draws its tokens
from one bucket row (`take_rate_tokens()` in postgres.sql) instead of its
own, so three replicas together still start at most `ICONIK_RATE_LIMIT`
calls a second (plus the small burst), and a 429 seen by one pauses all
(`pause_rate_budget()`). Time is the database's, the same for everyone.
One short statement per batch of tokens (the limiter asks for as many as it
has callers waiting), on a connection of its own.
"""

from __future__ import annotations

import contextlib

import anyio
import psycopg

from service.iconik.ratelimit import Grant
from service.logging import get_logger
from service.queue.postgres_store import describe

log = get_logger("service.queue.postgres_budget")

_OUTAGE_WAIT = 1.0  # while the database is away, ask again after this


class PostgresBudget:
    def __init__(self, url: str, rate: float, burst: int, timeout: float = 4.0) -> None:
        self.url = url
        self.rate = rate
        self.burst = burst
        self.timeout = timeout
        self._connection: psycopg.AsyncConnection[tuple[int, float]] | None = None
        self._lock = anyio.Lock()

    async def _execute(self, sql: str, params: tuple[object, ...]) -> tuple[int, float] | None:
        async with self._lock:
            try:
                if self._connection is None or self._connection.closed:
                    self._connection = await psycopg.AsyncConnection.connect(
                        self.url,
                        autocommit=True,
                        connect_timeout=max(1, int(self.timeout)),
                        options=f"-c statement_timeout={int(self.timeout * 1000)}",
                    )
                cursor = await self._connection.execute(sql, params)
                return await cursor.fetchone() if cursor.description else None
            except (psycopg.Error, OSError) as exc:
                log.warning(
                    "rate_budget.unavailable", queue=describe(self.url), error=type(exc).__name__
                )
                await self.aclose()
                raise

    async def take(self, wanted: int) -> Grant:
        try:
            row = await self._execute(
                "SELECT granted, wait FROM take_rate_tokens(%s, %s, %s)",
                (wanted, self.rate, self.burst),
            )
        except (psycopg.Error, OSError):
            # No budget can be proved while the database is away: wait.
            return Grant(0, _OUTAGE_WAIT)
        assert row is not None
        granted, wait = row
        return Grant(int(granted), float(wait))

    async def pause(self, seconds: float) -> None:
        # If the database is away, every replica is waiting on it anyway.
        with contextlib.suppress(psycopg.Error, OSError):
            await self._execute("SELECT pause_rate_budget(%s)", (seconds,))

    async def aclose(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
