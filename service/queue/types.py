"""The queue's values: what goes in (a delivery, its tasks, events), what
comes out (a claimed task, what became of a delivery), and the small rules
both backends apply to them (lanes, backoff, how a task reads to an operator).
Re-exported by service/queue/__init__.py.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

TASK_STATES = ("queued", "running", "done", "failed")


class RequestKind(StrEnum):
    """What a stored delivery is (requests.kind): a POST from Iconik, or what
    the service stores for itself (the deliver/ scan's caption files, its
    README.txt rewrites, and the caption status the first file sets)."""

    CUSTOM_ACTION = "custom_action"  # a person's click
    WEBHOOK = "webhook"  # an event about an object in Iconik
    DELIVER = "deliver"  # a caption file from a bundle's deliver/ folder
    README = "readme"  # a deliver/README.txt to write anew
    CAPTION_STATUS = "caption_status"  # the asset's caption status, "In captioning"


class TaskKind(StrEnum):
    """What a task does (tasks.kind; the runner has one function per kind).
    The value is stored, shown by `caption-bridge status`, and the `kind`
    label of caption_bridge_tasks_total."""

    EXPAND = "expand"  # a click's selection into one build per asset
    BUILD = "build"
    REFRESH = "refresh"
    WITHDRAW = "withdraw"
    DELIVER = "deliver"  # a caption file back to Iconik (service/deliver/task.py)
    README = "readme"  # deliver/README.txt written anew
    CAPTION_STATUS = "caption_status"  # the asset's caption status set


class Lane(StrEnum):
    """Clicks and webhook events wait in separate lanes, each with its own
    limit, so a storm of events never takes a click's room (tasks.lane, the
    `lane` label of caption_bridge_queue_depth)."""

    CLICK = "click"
    EVENT = "event"


# A click's tasks are claimed before event tasks that have waited less than
# this much longer.
EVENT_LANE_DELAY = 60.0


def lane_of(request_kind: str) -> Lane:
    """Webhook events are the event lane; a person's click (and what it expands to) is not."""
    return Lane.EVENT if request_kind == RequestKind.WEBHOOK else Lane.CLICK


def rank_for(lane: str, due_at: float) -> float:
    """A task's place in line in `lane` when it is due at `due_at` (see EVENT_LANE_DELAY)."""
    return due_at + (EVENT_LANE_DELAY if lane == Lane.EVENT else 0.0)


def rank_after(task: Task, not_before: float) -> float:
    """A task's place in line once it is due again."""
    return rank_for(lane_of(task.request_kind), not_before)


class QueueFull(Exception):
    """Too many tasks are waiting; the sender should come back later."""

    def __init__(self, retry_after: int, lane: Lane = Lane.CLICK) -> None:
        super().__init__(f"{lane} backlog over its limit; retry after {retry_after}s")
        self.retry_after = retry_after
        self.lane = lane


class QueueUnavailable(Exception):
    """The queue's store could not be read or written."""


@dataclass(frozen=True)
class Delivery:
    """An authenticated, parsed delivery about to be stored."""

    key: str
    kind: RequestKind
    payload: str  # a JSON object, as stored (made once, off the writer's thread)
    first_task: NewTask
    # The clicking user's Iconik token, sealed (service/iconik/user_token.py); kept
    # beside the payload, never in it, and deleted once the expand task ends.
    user_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class NewTask:
    kind: TaskKind
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
    """A bundle as work to do (service/notify/due_check.py): recorded by each build.

    Open while the bundle is not withdrawn and a language asked for has
    nothing delivered yet (no language asked: until a first delivery).
    """

    asset_id: str
    folder: str
    title: str
    request_id: str | None
    due_at: float | None  # the due date as epoch seconds; None: no due date
    due_date: str | None  # the same, as project.json shows it (ISO 8601)
    languages: list[str]  # asked for, lower case (service/bundle/due_dates.py)
    # The request facts the build used (service/bundle.RequestFacts as a
    # dict, without what each build works out again); None: not recorded.
    request: dict[str, Any] | None = None


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
    kind: str  # a TaskKind as stored (one the runner does not know fails there)
    asset_id: str | None
    attempts: int
    owner: str
    request_kind: str  # a RequestKind as stored
    payload: dict[str, Any] = field(default_factory=dict)
    first_claimed_at: float | None = None
    # An expand task's sealed user token (None for every other kind).
    user_token: str | None = field(default=None, repr=False)


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
    ceiling: float = min(cap, base * 2 ** max(0, attempt - 1))
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
