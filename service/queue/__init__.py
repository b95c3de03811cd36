"""The durable job queue: what a delivery becomes once it is accepted.

A *request* is one stored delivery (unique by its delivery key). A request
owns *tasks*, the units the worker runs: `expand` (turn a custom action into
one task per asset), `build`, `refresh` and `withdraw` (one asset each), and
`deliver` (a caption file from a bundle's deliver/ folder; the scan stores
those, service/deliver/scan.py).
Tasks are leased, so a task held by a crashed worker runs again once its
lease expires; each claim counts as an attempt, and a task that has used
`TASK_MAX_ATTEMPTS` ends `failed` with its last error.

At most one task per asset runs at a time, across every worker of every
process sharing the queue: a claim skips a task whose asset has another task
running under a live lease, so two clicks on one asset, overlapping
selections, or a click and a webhook never build one bundle at once.

A request is kept while any of its tasks waits or runs, and for
`RETENTION_DAYS` after its last change once all have finished; then the
worker deletes it with its tasks (service/queue/retention.py).

Backends share this interface and its rules: `sqlite` (the embedded
default, one machine) and `postgresql` (several replicas). Which one runs is
a matter of `QUEUE_URL` only. The values are in types.py, the interface,
split along its concerns, in protocols.py.
"""

from __future__ import annotations

from typing import Any

from service.queue.protocols import (
    History,
    Intake,
    Leases,
    OpenWork,
    Outbox,
    Queue,
    Registry,
    Store,
    Tasks,
)
from service.queue.types import (
    DELIVERED,
    DUE_SOON,
    EVENT_LANE_DELAY,
    EVENT_TYPES,
    OVERDUE,
    PUBLISHED,
    REFRESHED,
    REFUSED,
    TASK_STATES,
    WITHDRAWN,
    Delivery,
    Enqueued,
    Event,
    Expanded,
    Lane,
    NewTask,
    QueueFull,
    QueueUnavailable,
    RequestKind,
    Task,
    TaskKind,
    Work,
    as_observed,
    backoff_delay,
    event_id,
    lane_of,
    rank_after,
    rank_for,
)

__all__ = [
    "DELIVERED",
    "DUE_SOON",
    "EVENT_LANE_DELAY",
    "EVENT_TYPES",
    "OVERDUE",
    "PUBLISHED",
    "REFRESHED",
    "REFUSED",
    "TASK_STATES",
    "WITHDRAWN",
    "Delivery",
    "Enqueued",
    "Event",
    "Expanded",
    "History",
    "Intake",
    "Lane",
    "Leases",
    "NewTask",
    "OpenWork",
    "Outbox",
    "Queue",
    "QueueFull",
    "QueueUnavailable",
    "Registry",
    "RequestKind",
    "Store",
    "Task",
    "TaskKind",
    "Tasks",
    "Work",
    "as_observed",
    "backoff_delay",
    "describe_queue_url",
    "event_id",
    "lane_of",
    "open_queue",
    "queue_for",
    "rank_after",
    "rank_for",
]


def describe_queue_url(queue_url: str) -> str:
    """QUEUE_URL as people may read it: a PostgreSQL URL without its password."""
    if queue_url.startswith(("postgresql://", "postgres://")):
        from service.queue.postgres_store import describe

        return describe(queue_url)
    return queue_url


def queue_for(settings: Any, **kwargs: Any) -> Queue:
    """The queue backend `QUEUE_URL` names, with the settings' limits."""
    return open_queue(
        settings.queue_url,
        max_attempts=settings.task_max_attempts,
        max_backlog=settings.queue_max_backlog,
        max_event_backlog=settings.events_max_backlog,
        lease_seconds=settings.task_lease_seconds,
        **kwargs,
    )


def open_queue(
    queue_url: str,
    *,
    max_attempts: int,
    max_backlog: int,
    store_wait: float | None = None,
    **kwargs: Any,
) -> Queue:
    """The queue backend `queue_url` names.

    `store_wait` bounds how long one call waits on a busy or absent store
    before it fails (the receiver needs its 503 fast); None keeps each
    backend's own default.
    """
    limits = {"max_attempts": max_attempts, "max_backlog": max_backlog, **kwargs}
    if queue_url.startswith("sqlite:///"):
        from service.queue.sqlite import SQLiteQueue

        if store_wait is not None:
            limits["busy_timeout"] = store_wait
        return SQLiteQueue(queue_url.removeprefix("sqlite:///"), **limits)
    if queue_url.startswith(("postgresql://", "postgres://")):
        from service.queue.postgres import PostgresQueue

        if store_wait is not None:
            limits["timeout"] = store_wait
        return PostgresQueue(queue_url, **limits)
    raise ValueError("QUEUE_URL: unsupported queue backend")
