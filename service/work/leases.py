"""Work one process of the deployment does at a time, whatever the replicas.

A lease is a row in the queue's store (`Queue.take_lease`): taken when free
or expired, renewed by its holder (taking it again), released when the work
is done. A holder that dies stops renewing, and another process takes the
work over once the lease expires. Nothing here is a correctness lock: the work done under a
lease is safe to do twice (the deliver scan enqueues under delivery keys,
the registry fill inserts what is missing); the lease keeps it from being
done by every replica at once, which costs storage requests and time.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable

import anyio

from service.queue import Leases, QueueUnavailable

DELIVER_SCAN = "deliver-scan"
REGISTRY_FILL = "registry-fill"
DUE_CHECK = "due-check"
NOTIFY = "notify"


def new_holder() -> str:
    return f"process-{uuid.uuid4().hex[:12]}"


@contextlib.asynccontextmanager
async def held(queue: Leases, name: str, holder: str, seconds: float) -> AsyncIterator[bool]:
    """Whether `holder` got `name` for `seconds` (long enough for the work:
    it is not renewed), released after the block."""
    if not await queue.take_lease(name, holder, seconds):
        yield False
        return
    try:
        yield True
    finally:
        with anyio.CancelScope(shield=True), contextlib.suppress(QueueUnavailable):
            await queue.release_lease(name, holder)


async def let_go(
    queue: Leases,
    name: str,
    holder: str,
    on_failure: Callable[[Exception], None] | None = None,
) -> None:
    """Release `name` as its holder stops, shielded from the cancellation that
    stops it, so another process takes the work over at once rather than once
    the lease lapses. A failure goes to `on_failure` (the lease lapses on its own)."""
    with anyio.CancelScope(shield=True):
        try:
            await queue.release_lease(name, holder)
        except Exception as exc:
            if on_failure is not None:
                on_failure(exc)
