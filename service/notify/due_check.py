"""The due-date check: notifications about open work whose due date is near or past.

Beside the worker's task slots, one process of the deployment (the one
holding the `due-check` lease) looks every minute for open work (a bundle
not withdrawn with a language asked for and nothing delivered in it yet,
service/queue/work_sql.py) due within NOTIFY_DUE_BEFORE_HOURS, or past
due, and stores one event for each: `work.due_soon` and `work.overdue`,
once per bundle and due date. The events go through `emit` (the queue's
outbox, `Queue.add_events`, which the notification sender reads); each id
is made from the folder, the due date and the kind (`event_id`), so a
look repeated after a crash stores nothing twice, and a new due date gives
new events. Once stored, the queue notes it for that due date, so a look
reads only what has something new to say.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from service.bundle import due_dates
from service.logging import get_logger
from service.queue import DUE_SOON, OVERDUE, Event, Queue, event_id
from service.work import leases

log = get_logger("service.notify.due_check")

Emit = Callable[[list[Event]], Awaitable[Any]]

CHECK_EVERY = 60.0
BATCH = 100  # rows read and events stored at a time
MAX_BATCHES = 20  # per look: a backlog of due dates is worked off over a few looks


def event_for(row: dict[str, Any], kind: str, now: float) -> Event:
    """The notification about one row of open work (work_to_notify's)."""
    name = "overdue" if kind == OVERDUE else "due_soon"
    return Event(
        event_id=event_id(row["folder"], due_dates.iso_utc(row["due_at"]), name),
        type=kind,
        asset_id=row["asset_id"],
        data={
            "asset_id": row["asset_id"],
            "title": row["title"],
            "folder": row["folder"],
            # "*": no language was named; nothing at all is delivered yet.
            "languages": list(row.get("languages") or []),  # asked for
            "missing_languages": [m for m in row["missing"] if m != "*"],
            "due_date": row["due_date"],
            "request_id": row["request_id"],
        },
        timestamp=now,
    )


class DueCheck:
    def __init__(
        self,
        queue: Queue,
        emit: Emit,
        *,
        notify_before_hours: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.queue = queue
        self.emit = emit
        self.before = notify_before_hours * 3600
        self.clock = clock

    async def look(self) -> int:
        """One look: the events due now stored (through `emit`); how many were new."""
        now = self.clock()
        stored = 0
        for _ in range(MAX_BATCHES):
            rows = await self.queue.work_to_notify(now, now + self.before, BATCH)
            events = []
            for row in rows:
                overdue = row["due_at"] <= now
                if overdue and row["overdue_sent_for"] == row["due_at"]:
                    continue  # told already; only its due-soon mark was left
                events.append(event_for(row, OVERDUE if overdue else DUE_SOON, now))
            if events:
                new = await self.emit(events)
                stored += new if isinstance(new, int) else len(events)
                for event in events:
                    log.info(
                        "due_check.event",
                        type=event.type,
                        folder=event.data["folder"],
                        due_date=event.data["due_date"],
                    )
            # Noted after the events are stored: a crash in between stores
            # them again next time, under the same ids (so once).
            for row in rows:
                await self.queue.mark_notified(row["folder"], row["due_at"], row["due_at"] <= now)
            if len(rows) < BATCH:
                break
        return stored


async def keep_checking(
    check: DueCheck,
    queue: Queue,
    holder: str,
    *,
    every: float = CHECK_EVERY,
    lease_seconds: float | None = None,
) -> None:
    """Look every `every` seconds while this process holds the lease (one
    process of the deployment at a time; another takes over once it lapses,
    after `lease_seconds`: three looks' time unless said)."""
    lease = lease_seconds if lease_seconds is not None else every * 3
    first = True
    try:
        while True:
            try:
                if await queue.take_lease(leases.DUE_CHECK, holder, lease):
                    stored = await check.look()
                    if first or stored:  # quiet looks after the first are not logged
                        log.info("due_check.looked", stored=stored)
                    first = False
            except Exception as exc:  # the queue, the outbox: tried again next look
                log.warning("due_check.failed", error=str(exc))
            await anyio.sleep(every)
    finally:
        await leases.let_go(
            queue,
            leases.DUE_CHECK,
            holder,
            lambda exc: log.info("due_check.lease_not_released", error=str(exc)),
        )
