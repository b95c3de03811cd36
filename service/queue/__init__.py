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

A request is kept while any of its tasks waits or runs, and for
`RETENTION_DAYS` after its last change once all have finished; then the
worker deletes it with its tasks (service/queue/retention.py).

Backends share this interface and its rules: `sqlite` (the embedded
default, one machine) and `postgresql` (several replicas). Which one runs is
a matter of `QUEUE_URL` only.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from service.queue.outbox import Destination, Send

TASK_STATES = ("queued", "running", "done", "failed")


# Clicks and webhook events wait in separate lanes, each with its own limit,
# so a storm of events never takes a click's room; and a click's tasks are
# claimed before event tasks that have waited less than this much longer.
CLICK, EVENT = "click", "event"
EVENT_LANE_DELAY = 60.0


def lane_of(request_kind: str) -> str:
    """Webhook events are the event lane; a person's click (and what it expands to) is not."""
    return EVENT if request_kind == "webhook" else CLICK


def rank_after(task: Task, not_before: float) -> float:
    """A task's place in line once it is due again (see EVENT_LANE_DELAY)."""
    return not_before + (EVENT_LANE_DELAY if lane_of(task.request_kind) == EVENT else 0.0)


class QueueFull(Exception):
    """Too many tasks are waiting; the sender should come back later."""

    def __init__(self, retry_after: int, lane: str = CLICK) -> None:
        super().__init__(f"{lane} backlog over its limit; retry after {retry_after}s")
        self.retry_after = retry_after
        self.lane = lane


class QueueUnavailable(Exception):
    """The queue's store could not be read or written."""


@dataclass(frozen=True)
class Delivery:
    """An authenticated, parsed delivery about to be stored."""

    key: str
    kind: str  # "custom_action" | "webhook" | "deliver"
    payload: str  # a JSON object, as stored (made once, off the writer's thread)
    first_task: NewTask
    # The clicking user's Iconik token, sealed (service/user_token.py); kept
    # beside the payload, never in it, and deleted once the expand task ends.
    user_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class NewTask:
    kind: str  # "expand" | "build" | "refresh" | "withdraw" | "deliver"
    asset_id: str | None = None
    # Set: the task is stored already failed, with this reason (an asset of a
    # click that the clicking user may not read: the status says so per asset).
    failed: str | None = None


# What a notification is about (the `type` of the event sent).
PUBLISHED = "bundle.published"  # new work: a bundle is ready for captioners
REFRESHED = "bundle.refreshed"  # an existing bundle changed (what changed is in data)
WITHDRAWN = "bundle.withdrawn"  # the asset is gone; its bundle no longer needs work
DELIVERED = "captions.delivered"  # a captioner's file went back to Iconik
REFUSED = "captions.refused"  # a captioner's file was refused (first problem in data)
DUE_SOON = "work.due_soon"  # a due date is near and languages are still missing
OVERDUE = "work.overdue"  # a due date passed and languages are still missing
EVENT_TYPES = (PUBLISHED, REFRESHED, WITHDRAWN, DELIVERED, REFUSED, DUE_SOON, OVERDUE)


@dataclass(frozen=True)
class Event:
    """A notification about a change, stored in the queue's outbox with the
    change that caused it (in the same transaction), and sent by the worker.

    `event_id` is stable: the same change always gives the same id (see
    `event_id`), so a receiver drops repeats by it and storing it twice
    stores it once. `data` is the JSON sent (asset id, title, bundle folder,
    languages, request id, ...): never a secret or a URL with a token in it.
    """

    event_id: str
    type: str  # one of EVENT_TYPES
    asset_id: str
    data: dict[str, Any]
    timestamp: float  # when the change happened (the queue's clock)


def event_id(*parts: str) -> str:
    """A stable event id from what identifies the change (e.g. the task id
    and the event type, or a folder, its due date and "overdue")."""
    return "evt_" + uuid.uuid5(uuid.NAMESPACE_URL, "caption-bridge:" + "/".join(parts)).hex


@dataclass(frozen=True)
class Work:
    """A bundle as work to do (service/due_check.py): recorded by each build.

    Open while the bundle is not withdrawn and a language asked for has
    nothing delivered yet (no language asked: until a first delivery).
    """

    asset_id: str
    folder: str
    title: str
    request_id: str | None
    due_at: float | None  # the due date as epoch seconds; None: no due date
    due_date: str | None  # the same, as project.json shows it (ISO 8601)
    languages: list[str]  # asked for, lower case (service/due_dates.py)


@dataclass(frozen=True)
class Expanded:
    """What a task returns when it ends well: its children (an expand's), a
    note for the request's status, and the events its change causes, stored
    with the task's completion (so never for a change that rolled back)."""

    children: list[NewTask]
    note: str | None = None
    events: list[Event] = field(default_factory=list)


@dataclass(frozen=True)
class Enqueued:
    """What became of a delivery: stored, or answered without a new task.

    `duplicate`: the same delivery was stored before (same request id).
    `coalesced`: an update for an asset whose refresh is already waiting;
    that refresh (its request id) will see Iconik's latest state anyway.
    `ignored`: an event about an asset with no bundle and no task (no id).
    """

    request_id: str | None
    duplicate: bool
    coalesced: bool = False
    ignored: bool = False


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
    # An expand task's sealed user token (None for every other kind).
    user_token: str | None = field(default=None, repr=False)


class Queue(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def enqueue(self, delivery: Delivery, request_id: str) -> Enqueued: ...
    async def claim(self, owner: str) -> Task | None: ...
    # Ending an expand task (complete, or fail) also deletes its request's user token.
    # `events` go into the outbox in the same transaction, only if this
    # worker still held the task (else its new owner's completion sends them).
    async def complete(
        self,
        task: Task,
        children: list[NewTask] | None = None,
        note: str | None = None,
        events: list[Event] | None = None,
    ) -> None: ...
    # Events not tied to a task's end (due dates): stored unless an event of
    # the same id is stored already; how many were new.
    async def add_events(self, events: list[Event]) -> int: ...
    async def retry(
        self, task: Task, error: str, delay: float | None = None, count_attempt: bool = True
    ) -> bool: ...
    # A task that failed may carry events too (a refused delivery), stored alike.
    async def fail(self, task: Task, error: str, events: list[Event] | None = None) -> None: ...
    async def extend_lease(self, task: Task) -> bool: ...
    async def set_job_id(self, request_id: str, job_id: str) -> None: ...
    async def wait_for_work(self, at_most: float) -> None: ...
    async def backlog(self) -> int: ...
    async def backlog_by_lane(self) -> dict[str, int]: ...
    async def retrying_by_cause(self) -> dict[str, int]: ...  # service.retry_causes labels
    async def ping(self) -> None: ...
    async def request_status(self, request_id: str) -> dict[str, Any] | None: ...
    async def recent_failures(self, limit: int = 20) -> list[dict[str, Any]]: ...
    async def failure_count(self) -> int: ...  # kept by the store, not counted
    # Retention (service/queue/retention.py): one batch of finished requests
    # older than `older_than` seconds deleted (how many); space given back.
    async def prune(self, older_than: float, max_tasks: int = ...) -> int: ...
    async def compact(self) -> bool: ...
    # The bundle registry: which folders hold a bundle of which asset.
    async def record_bundle(self, asset_id: str, folder: str, status: str) -> None: ...
    async def bundle_folders(self, asset_id: str | None = None) -> list[str]: ...  # None: all
    # Every (asset id, folder, status) recorded: which asset a folder belongs
    # to is this record, never what a file in the folder says.
    async def bundle_records(self, folder: str | None = None) -> list[tuple[str, str, str]]: ...
    async def registry_filled(self) -> bool: ...
    async def fill_registry(self, bundles: list[tuple[str, str, str]]) -> None: ...
    # Folders found gone from the storage leave the registry (the reconcile).
    async def retire_bundles(self, folders: list[str]) -> None: ...
    # Work one process of the deployment does at a time: True while `holder`
    # holds `name` (taken when free or expired; renewed by taking it again).
    async def take_lease(self, name: str, holder: str, seconds: float) -> bool: ...
    async def release_lease(self, name: str, holder: str) -> None: ...
    async def caption_deliveries(
        self, asset_ids: list[str], limit: int = 100
    ) -> list[dict[str, Any]]: ...
    # Open work (service/due_check.py): recorded by each build (with the
    # languages already delivered from the folder, from its deliver tasks),
    # a language delivered recorded by the deliver task; what is due by
    # `soon_until` or past due at `now` with its notification not yet stored
    # for this due date (due first, at most `limit`), and that it was.
    async def record_work(self, work: Work) -> None: ...
    async def record_delivered(self, folder: str, language: str) -> None: ...
    async def work_to_notify(
        self, now: float, soon_until: float, limit: int = 100
    ) -> list[dict[str, Any]]: ...
    async def mark_notified(self, folder: str, due_at: float, overdue: bool) -> None: ...
    # The outbox's sender side (service/queue/outbox.py, service/notify.py).
    async def fan_out(self, destinations: list[Destination], limit: int = ...) -> int: ...
    async def due_sends(self, now: float, limit: int = ...) -> list[Send]: ...
    async def settle_send(
        self, send: Send, state: str, *, next_at: float, error: str | None = None
    ) -> None: ...
    async def outbox_backlog(self) -> dict[str, int]: ...
    async def outbox_sends(self) -> list[dict[str, Any]]: ...
    async def prune_outbox(self, older_than: float, max_events: int = ...) -> int: ...


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


def as_observed(task: dict[str, Any], now: float) -> dict[str, Any]:
    """A task as an operator should read it: a `running` task whose worker
    stopped renewing its lease is not running; it waits to be taken again."""
    lease_until = task.pop("lease_until", None)
    if task["state"] == "running" and lease_until is not None and lease_until < now:
        task["state"] = "queued"
        task["last_error"] = (
            "its worker stopped renewing the lease (stopped or lost); it runs again "
            "on the next free worker"
        )
    return task


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
