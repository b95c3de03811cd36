"""The durable job queue: what a delivery becomes once it is accepted.

A *request* is one stored delivery (unique by its delivery key). A request
owns *tasks*, the units the worker runs: `expand` (turn a custom action into
one task per asset), `build`, `refresh` and `withdraw` (one asset each), and
`deliver` (a caption file from a bundle's deliver/ folder; the scan stores
those, service/deliver_scan.py).
Tasks are leased, so a task held by a crashed worker runs again once its
lease expires; each claim counts as an attempt, and a task that has used
`TASK_MAX_ATTEMPTS` ends `failed` with its last error.

At most one task per asset runs at a time, across every worker of every
process sharing the queue: a claim skips a task whose asset has another task
running under a live lease, so two clicks on one asset, overlapping
selections, or a click and a webhook never build one bundle at once.

Backends share this interface; `sqlite` is the embedded default. Which one
runs is a matter of `QUEUE_URL` only.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

TASK_STATES = ("queued", "running", "done", "failed")


class QueueFull(Exception):
    """Too many tasks are waiting; the sender should come back later."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"queue backlog over its limit; retry after {retry_after}s")
        self.retry_after = retry_after


class QueueUnavailable(Exception):
    """The queue's store could not be read or written."""


@dataclass(frozen=True)
class Delivery:
    """An authenticated, parsed delivery about to be stored."""

    key: str
    kind: str  # "custom_action" | "webhook" | "deliver"
    payload: dict[str, Any]
    first_task: NewTask


@dataclass(frozen=True)
class NewTask:
    kind: str  # "expand" | "build" | "refresh" | "withdraw" | "deliver"
    asset_id: str | None = None


@dataclass(frozen=True)
class Enqueued:
    request_id: str
    duplicate: bool


@dataclass
class Task:
    """A claimed task, with the payload of the request it belongs to."""

    task_id: str
    request_id: str
    kind: str
    asset_id: str | None
    attempts: int
    owner: str
    request_kind: str
    payload: dict[str, Any] = field(default_factory=dict)
    first_claimed_at: float | None = None


class Queue(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def enqueue(self, delivery: Delivery, request_id: str) -> Enqueued: ...
    async def claim(self, owner: str) -> Task | None: ...
    async def complete(self, task: Task, children: list[NewTask] | None = None) -> None: ...
    async def retry(
        self, task: Task, error: str, delay: float | None = None, count_attempt: bool = True
    ) -> bool: ...
    async def fail(self, task: Task, error: str) -> None: ...
    async def extend_lease(self, task: Task) -> bool: ...
    async def set_job_id(self, request_id: str, job_id: str) -> None: ...
    async def backlog(self) -> int: ...
    async def ping(self) -> None: ...
    async def request_status(self, request_id: str) -> dict[str, Any] | None: ...
    async def recent_failures(self, limit: int = 20) -> list[dict[str, Any]]: ...
    async def caption_deliveries(
        self, asset_ids: list[str], limit: int = 100
    ) -> list[dict[str, Any]]: ...


def backoff_delay(
    attempt: int,
    base: float = 2.0,
    cap: float = 300.0,
    rng: Callable[[], float] = random.random,
) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random.

    Attempt 1 waits about 1-2 s, attempt 2 about 2-4 s, ... up to `cap`.
    The random half keeps many tasks that failed together from retrying in
    lockstep against a recovering Iconik.
    """
    ceiling = min(cap, base * 2 ** max(0, attempt - 1))
    return ceiling / 2 + rng() * ceiling / 2


def queue_for(settings: Any, **kwargs: Any) -> Queue:
    """The queue backend `QUEUE_URL` names, with the settings' limits."""
    return open_queue(
        settings.queue_url,
        max_attempts=settings.task_max_attempts,
        max_backlog=settings.queue_max_backlog,
        lease_seconds=settings.task_lease_seconds,
        **kwargs,
    )


def open_queue(queue_url: str, *, max_attempts: int, max_backlog: int, **kwargs: Any) -> Queue:
    """The queue backend `queue_url` names."""
    if queue_url.startswith("sqlite:///"):
        from service.queue.sqlite import SQLiteQueue

        return SQLiteQueue(
            queue_url.removeprefix("sqlite:///"),
            max_attempts=max_attempts,
            max_backlog=max_backlog,
            **kwargs,
        )
    raise ValueError(f"QUEUE_URL: unsupported queue backend {queue_url!r}")
