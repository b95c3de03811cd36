"""Retention: the queue keeps finished requests for RETENTION_DAYS, then deletes them.

A request (its payload with it) and its tasks go once every task of it has
finished (done or failed) and neither it nor any of its tasks changed in the
last RETENTION_DAYS. An unfinished request is never deleted, however old,
and nothing here touches the bundle registry: its rows say which folders
hold live bundles, and retiring them belongs to whoever finds a folder gone.

Notifications in the outbox go alike: an event older than RETENTION_DAYS
with no send waiting, and its sends (a send waits at most
NOTIFY_GIVE_UP_HOURS).

The worker deletes in small batches (`prune_expired`), each one short
transaction bounded by a number of task rows, not of requests (one click
may hold a thousand tasks), so intake and claims never wait long behind it.
Freed space: PostgreSQL's autovacuum makes the dead rows' space reusable;
SQLite reuses its free pages for the next inserts, and a file made with
auto_vacuum=INCREMENTAL (every new one) also hands them back to the file
system once they are a large part of it (SQLiteQueue._give_back_free_pages).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import anyio

from service.logging import get_logger

log = get_logger("service.queue.retention")

DAY = 86_400.0
# One batch: at most this many task rows (and at least one request)...
PRUNE_MAX_TASKS = 2_000
# ...among this many candidate requests, oldest first.
PRUNE_CANDIDATES = 200
# How often the worker looks for expired requests once it has caught up.
PRUNE_INTERVAL = 600.0
# SQLite: free pages are given back once there are at least this many and
# they are a quarter of the file, this many per step.
VACUUM_MIN_FREE_PAGES = 1_024
VACUUM_STEP_PAGES = 1_024  # ~20 ms of the writer's time


def within_budget(candidates: Sequence[Any], max_tasks: int) -> list[Any]:
    """The first candidates (rows with a task count `n`) whose tasks fit in
    `max_tasks`; always the first one, so a big request is never stuck."""
    chosen: list[Any] = []
    total = 0
    for row in candidates:
        if chosen and total + row["n"] > max_tasks:
            break
        chosen.append(row)
        total += row["n"]
    return chosen


class Prunable(Protocol):
    async def prune(self, older_than: float, max_tasks: int = PRUNE_MAX_TASKS) -> int: ...
    async def compact(self) -> bool: ...
    # The outbox's events (service/queue/outbox.py) with no send waiting.
    async def prune_outbox(self, older_than: float) -> int: ...


async def prune_expired(queue: Prunable, retention_seconds: float, *, pause: float = 0.0) -> int:
    """Delete batch after batch until nothing expired is left, then give the
    space back; how many requests went. `pause` between batches leaves the
    store to intake and claims."""
    total = 0
    while (deleted := await queue.prune(retention_seconds)) > 0:
        total += deleted
        await anyio.sleep(pause)
    while True:  # notifications, alike (not counted: the count is of requests)
        if not await queue.prune_outbox(retention_seconds):
            break
        await anyio.sleep(pause)
    while True:
        more = await queue.compact()  # one bounded step
        if not more:
            return total
        await anyio.sleep(pause)


async def keep_pruning(
    queue: Prunable,
    retention_days: float,
    *,
    interval: float = PRUNE_INTERVAL,
    on_error: Iterable[type[BaseException]] = (),
) -> None:
    """The worker's companion: prune now, then every `interval` seconds."""
    errors = tuple(on_error)
    while True:
        try:
            deleted = await prune_expired(queue, retention_days * DAY)
        except errors as exc:  # the queue is away: the next round tries again
            log.warning("retention.unavailable", error=str(exc))
        else:
            if deleted:
                log.info("retention.pruned", requests=deleted, retention_days=retention_days)
        await anyio.sleep(interval)
