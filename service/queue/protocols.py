"""The queue's interface, split along its concerns.

Each part is a small Protocol, so a consumer can declare the part it uses
(the due-date check needs `OpenWork` and `Outbox`, a lease holder `Leases`);
`Queue` is their union, what both backends (sqlite.py, postgres.py) provide.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from service.queue.outbox import Destination, Send
    from service.queue.types import Delivery, Enqueued, Event, NewTask, Task, Work


class Store(Protocol):
    """The store itself: opened, closed, and whether it takes a write."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> None: ...


class Intake(Protocol):
    """Deliveries in (the receiver), and how many tasks wait, by lane."""

    async def enqueue(self, delivery: Delivery, request_id: str) -> Enqueued: ...
    async def backlog(self) -> int: ...
    async def backlog_by_lane(self) -> dict[str, int]: ...


class Tasks(Protocol):
    """The worker's side: tasks claimed under a lease, and how each ends."""

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
    async def retry(
        self, task: Task, error: str, delay: float | None = None, count_attempt: bool = True
    ) -> bool: ...
    # A task that failed may carry events too (a refused delivery), stored alike.
    async def fail(self, task: Task, error: str, events: list[Event] | None = None) -> None: ...
    async def extend_lease(self, task: Task) -> bool: ...
    async def set_job_id(self, request_id: str, job_id: str) -> None: ...
    async def wait_for_work(self, at_most: float) -> None: ...


class History(Protocol):
    """Status reads, and retention (service/queue/retention.py)."""

    async def request_status(self, request_id: str) -> dict[str, Any] | None: ...
    async def recent_failures(self, limit: int = 20) -> list[dict[str, Any]]: ...
    async def failure_count(self) -> int: ...  # kept by the store, not counted
    async def retrying_by_cause(self) -> dict[str, int]: ...  # service.queue.retry_causes labels
    async def caption_deliveries(
        self, asset_ids: list[str], limit: int = 100
    ) -> list[dict[str, Any]]: ...
    # One batch of finished requests older than `older_than` seconds
    # deleted (how many); space given back.
    async def prune(self, older_than: float, max_tasks: int = ...) -> int: ...
    async def compact(self) -> bool: ...


class Registry(Protocol):
    """The bundle registry: which folders hold a bundle of which asset."""

    async def record_bundle(self, asset_id: str, folder: str, status: str) -> None: ...
    async def bundle_folders(self, asset_id: str | None = None) -> list[str]: ...  # None: all
    # Every (asset id, folder, status) recorded: which asset a folder belongs
    # to is this record, never what a file in the folder says.
    async def bundle_records(self, folder: str | None = None) -> list[tuple[str, str, str]]: ...
    async def registry_filled(self) -> bool: ...
    async def fill_registry(self, bundles: list[tuple[str, str, str]]) -> None: ...
    # Folders found gone from the storage leave the registry (the reconcile).
    async def retire_bundles(self, folders: list[str]) -> None: ...


class Leases(Protocol):
    """Work one process of the deployment does at a time: True while
    `holder` holds `name` (taken when free or expired; renewed by taking it
    again)."""

    async def take_lease(self, name: str, holder: str, seconds: float) -> bool: ...
    async def release_lease(self, name: str, holder: str) -> None: ...


class OpenWork(Protocol):
    """Open work (service/notify/due_check.py): recorded by each build (with the
    languages already delivered from the folder, from its deliver tasks), a
    language delivered recorded by the deliver task; what is due by
    `soon_until` or past due at `now` with its notification not yet stored
    for this due date (due first, at most `limit`), and that it was."""

    async def record_work(self, work: Work) -> None: ...
    async def record_delivered(self, folder: str, language: str) -> None: ...
    # The work `folder` holds for `asset_id` as its last build recorded it;
    # None when no build recorded any. What a delivery's notification says,
    # never the folder's own project.json (a captioner can write that).
    async def work_of(self, folder: str, asset_id: str) -> Work | None: ...
    async def work_to_notify(
        self, now: float, soon_until: float, limit: int = 100
    ) -> list[dict[str, Any]]: ...
    async def mark_notified(self, folder: str, due_at: float, overdue: bool) -> None: ...


class Outbox(Protocol):
    """Notifications (service/queue/outbox.py, service/notify/sender.py)."""

    # Events not tied to a task's end (due dates): stored unless an event of
    # the same id is stored already; how many were new.
    async def add_events(self, events: list[Event]) -> int: ...
    async def fan_out(self, destinations: list[Destination], limit: int = ...) -> int: ...
    async def due_sends(self, now: float, limit: int = ...) -> list[Send]: ...
    async def settle_send(
        self, send: Send, state: str, *, next_at: float, error: str | None = None
    ) -> None: ...
    async def outbox_backlog(self) -> dict[str, int]: ...
    async def outbox_sends(self) -> list[dict[str, Any]]: ...
    async def prune_outbox(self, older_than: float, max_events: int = ...) -> int: ...


class Queue(Store, Intake, Tasks, History, Registry, Leases, OpenWork, Outbox, Protocol):
    """The whole queue: every part above."""


PARTS = (Store, Intake, Tasks, History, Registry, Leases, OpenWork, Outbox)
