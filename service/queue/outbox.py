"""The outbox: notifications stored with the change that caused them.

A task's events are inserted by `complete()` in the transaction that ends
the task, and only when this worker still held it, so an event is never
stored for a change that rolled back and never lost once the change is
committed. `add_events()` stores events not tied to a task (due dates). An
event id is stored once: storing it again does nothing.

The sender (service/notify/sender.py) *fans out* each new event into one send per
destination that wants its type (the webhook, each Apprise URL, named by a
key that is never the URL), then sends, per destination and asset, the
oldest waiting send first: a send that fails waits (`next_at`) and the
later events of that asset for that destination wait behind it, while every
other asset and destination goes on. A send ends `sent` or `given_up`.

Retention (service/queue/retention.py) deletes events older than
RETENTION_DAYS that have no send waiting, with their sends.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from service.queue import Event

QUEUED, SENT, GIVEN_UP = "queued", "sent", "given_up"

# At most this many events fanned out, or sends read, per call.
FAN_OUT_BATCH = 500
DUE_BATCH = 200
# Retention: at most this many events deleted per transaction.
PRUNE_MAX_EVENTS = 2_000


@dataclass(frozen=True)
class Destination:
    """Where sends go: `key` names it in the queue (never its URL, which may
    hold a secret); `types` it wants (None: every type)."""

    key: str
    types: frozenset[str] | None = None

    def wants(self, event_type: str) -> bool:
        return self.types is None or event_type in self.types


@dataclass(frozen=True)
class Send:
    """One event due to one destination."""

    seq: int  # the event's place in the outbox: the order of sends
    destination: str
    attempts: int  # tried this many times before
    event: Event
    stored_at: float  # when the event was stored (give-up is counted from here)


def event_row(event: Event, now: float) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "type": event.type,
        "asset_id": event.asset_id,
        "data": json.dumps(event.data, ensure_ascii=False, sort_keys=True),
        "happened_at": event.timestamp,
        "stored_at": now,
    }


def send_of(row: Any) -> Send:
    data = row["data"]
    return Send(
        seq=int(row["seq"]),
        destination=row["destination"],
        attempts=int(row["attempts"]),
        event=Event(
            event_id=row["event_id"],
            type=row["type"],
            asset_id=row["asset_id"],
            data=json.loads(data) if isinstance(data, str) else data,
            timestamp=float(row["happened_at"]),
        ),
        stored_at=float(row["stored_at"]),
    )


def fan_out_rows(
    events: list[Any], destinations: list[Destination], now: float
) -> list[dict[str, Any]]:
    """One send per (event, destination that wants its type)."""
    return [
        {
            "seq": int(e["seq"]),
            "destination": d.key,
            "asset_id": e["asset_id"],
            "now": now,
        }
        for e in events
        for d in destinations
        if d.wants(e["type"])
    ]


class Outbox(Protocol):
    """What the sender needs of the queue (both backends have it)."""

    async def fan_out(self, destinations: list[Destination], limit: int = ...) -> int: ...
    async def due_sends(self, now: float, limit: int = ...) -> list[Send]: ...
    async def settle_send(
        self,
        send: Send,
        state: str,
        *,
        next_at: float,
        error: str | None = None,
    ) -> None: ...
    async def outbox_backlog(self) -> dict[str, int]: ...
    async def take_lease(self, name: str, holder: str, seconds: float) -> bool: ...
    async def release_lease(self, name: str, holder: str) -> None: ...
    async def wait_for_work(self, at_most: float) -> None: ...
