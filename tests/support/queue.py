"""What tests of and around the queue share: limits, a delivery, both backends."""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from service.queue import Delivery, NewTask, Queue, Work
from service.queue.postgres import PostgresQueue
from service.queue.sqlite import SQLiteQueue

LIMITS = {"max_attempts": 3, "max_backlog": 5, "max_event_backlog": 5, "lease_seconds": 60}
BACKENDS = ["sqlite", "postgres"]


def delivery(key: str = "k1", task: NewTask | None = None) -> Delivery:
    return Delivery(
        key=key,
        kind="custom_action",
        payload='{"context": "ASSET"}',
        first_task=task or NewTask("expand"),
    )


@asynccontextmanager
async def open_backend(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    clock: Callable[[], float],
    **options: object,
) -> AsyncIterator[Queue]:
    """For a `queue` fixture parametrised over BACKENDS: an open queue with
    LIMITS on `request.param`'s backend, closed on leaving."""
    if request.param == "sqlite":
        q = SQLiteQueue(tmp_path / "q.db", **LIMITS, clock=clock, **options)
    else:
        q = PostgresQueue(request.getfixturevalue("pg_url"), **LIMITS, clock=clock, **options)
    await q.open()
    try:
        yield q
    finally:
        await q.close()


HOUR = 3_600.0


def work(asset_id: str, due_at: float | None, languages: list[str], **changes) -> Work:
    """An asset's open work as a build records it, due at `due_at` (or never)."""
    values = {
        "asset_id": asset_id,
        "folder": f"Title {asset_id} [{asset_id}]",
        "title": f"Title {asset_id}",
        "request_id": f"req-{asset_id}",
        "due_at": due_at,
        "due_date": None if due_at is None else f"iso-{due_at:g}",
        "languages": languages,
        **changes,
    }
    return Work(**values)


async def published(queue, *items: Work, status: str = "ready") -> None:
    for item in items:
        await queue.record_bundle(item.asset_id, item.folder, status)
        await queue.record_work(item)
