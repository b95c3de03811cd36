"""Iconik's rate limit: what every API call of the deployment draws from.

Iconik counts calls per token in sliding windows (50 per second, 1000 per
20 seconds) and answers 429 beyond them. `ICONIK_RATE_LIMIT` (45 by
default) is the deployment's budget. Two rules keep it under Iconik's:

- The burst is small: after a pause, at most `burst` calls leave at once
  (a few, and never more than Iconik's 50/s minus the configured rate), so
  no 1-second window ever sees more than `rate + burst` calls start.
- A 429 (or `RateLimit-Remaining: 0`) pauses every caller, not just the one
  that got it: nobody starts a call until `Retry-After` (or
  `RateLimit-Reset`) has passed, and then calls resume at the configured
  rate, with an empty bucket, not a full one.

The limiter asks a `Budget` for tokens, a few at a time. `LocalBudget` is
the budget of one process; a budget shared by all replicas (kept in the
queue's database) implements the same two methods, and the limiter works
unchanged on top of it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import anyio

ICONIK_PER_SECOND = 50  # Iconik's own limit, per token, in any 1-second window
DEFAULT_BURST = 3
MAX_PAUSE = 120.0  # a Retry-After beyond this is taken as this
_EPSILON = 1e-9  # float residue must not leave a caller one token short forever


@dataclass(frozen=True)
class Grant:
    """What a budget gives: `tokens` calls may start now; with none, ask again after `wait` s."""

    tokens: int
    wait: float = 0.0


class Budget(Protocol):
    """Where tokens come from. Implementations decide time themselves (their own
    clock, or the database's), so several processes can share one."""

    async def take(self, wanted: int) -> Grant:
        """Up to `wanted` tokens now (at least 1 unless none is due)."""
        ...

    async def pause(self, seconds: float) -> None:
        """No token for anyone for `seconds`; then the rate, from an empty bucket."""
        ...


def default_burst(rate: float) -> int:
    """A few tokens, never more than Iconik's limit leaves above `rate`; at least one."""
    return max(1, min(DEFAULT_BURST, math.floor(ICONIK_PER_SECOND - rate)))


class LocalBudget:
    """A token bucket in this process: `burst` tokens at most, refilled at `rate` per second."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()
        self._paused_until = -math.inf

    async def take(self, wanted: int) -> Grant:
        now = self._clock()
        if now < self._paused_until:
            return Grant(0, self._paused_until - now)
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
        self._updated = now
        available = math.floor(self._tokens + _EPSILON)
        if available >= 1:
            granted = min(wanted, available)
            self._tokens -= granted
            return Grant(granted)
        return Grant(0, (1.0 - self._tokens) / self.rate)

    async def pause(self, seconds: float) -> None:
        until = self._clock() + seconds
        if until > self._paused_until:
            self._paused_until = until
        # Iconik's window is clear once the pause ends; start from nothing
        # so the first second after it is the rate, not a burst.
        self._tokens = 0.0
        self._updated = self._paused_until

    @property
    def paused_until(self) -> float:
        return self._paused_until


class RateLimiter:
    """What the Iconik client awaits before each API call.

    Callers queue first come, first served. The one at the front asks the
    budget for as many tokens as there are callers waiting (at most the
    burst), so with a shared budget a replica takes tokens only for calls
    it is about to make, never to hold.
    """

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        *,
        burst: int | None = None,
        budget: Budget | None = None,
    ) -> None:
        self.rate = rate
        self.burst = default_burst(rate) if burst is None else burst
        self.budget: Budget = budget or LocalBudget(rate, self.burst, clock)
        self._clock = clock
        self._sleep = sleep
        self._lock = anyio.Lock()
        self._waiting = 0
        self._ready = 0  # granted for callers already in the queue
        self._ready_at = 0.0

    async def acquire(self) -> None:
        self._waiting += 1
        try:
            async with self._lock:
                # Tokens granted for a caller who then left are not kept
                # for later: late, they would add to a fresh burst.
                if self._ready and self._clock() - self._ready_at > 1.0 / self.rate:
                    self._ready = 0
                while self._ready == 0:
                    grant = await self.budget.take(min(self._waiting, self.burst))
                    self._ready, self._ready_at = grant.tokens, self._clock()
                    if grant.tokens == 0:
                        await self._sleep(grant.wait)
                self._ready -= 1
        finally:
            self._waiting -= 1

    async def pause(self, seconds: float) -> None:
        """Iconik said stop: nobody starts a call for `seconds`."""
        self._ready = 0
        await self.budget.pause(min(MAX_PAUSE, max(0.0, seconds)))


def pause_for(status: int, headers: Mapping[str, str]) -> float | None:
    """How long every caller should stop after this answer from Iconik, or None.

    A 429 pauses for its Retry-After (1 s, Iconik's shortest window, when it
    gives none); an answer saying no call is left (`RateLimit-Remaining: 0`)
    pauses until `RateLimit-Reset`.
    """
    if status == 429:
        return _seconds(headers.get("retry-after"), default=1.0)
    remaining = headers.get("ratelimit-remaining") or headers.get("x-ratelimit-remaining")
    if remaining is not None and remaining.strip() == "0":
        reset = headers.get("ratelimit-reset") or headers.get("x-ratelimit-reset")
        return _seconds(reset, default=1.0)
    return None


def _seconds(value: str | None, *, default: float) -> float:
    try:
        seconds = float(value) if value is not None else default
    except ValueError:
        return default
    return min(MAX_PAUSE, seconds) if math.isfinite(seconds) and seconds >= 0 else default
