"""The queue's rules that are the same on both backends, written once.

`QueueRules` comes first among a backend's bases (sqlite.py, postgres.py):
it takes the limits every queue is made with and passes the rest on to the
backend's store, and it decides what a retry does; the backend only writes
the decision (`_requeue`) in its own SQL. The intake rules are each
backend's SQL (sqlite_intake.py, `admit_deliveries()` in postgres.sql),
with the limits and the lanes' ranks from here and types.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from service.queue.types import Event, Task, backoff_delay


class QueueRules:
    def __init__(
        self,
        *store: Any,
        max_attempts: int = 8,
        max_backlog: int = 10_000,
        max_event_backlog: int = 10_000,
        lease_seconds: float = 60.0,
        retry_after_seconds: int = 30,
        backoff: Callable[[int], float] = backoff_delay,
        **store_options: Any,
    ) -> None:
        super().__init__(*store, **store_options)
        self.max_attempts = max_attempts
        self.max_backlog = max_backlog
        self.max_event_backlog = max_event_backlog
        self.lease_seconds = lease_seconds
        self.retry_after_seconds = retry_after_seconds
        self.backoff = backoff

    async def retry(
        self, task: Task, error: str, delay: float | None = None, count_attempt: bool = True
    ) -> bool:
        """Put the task back for later; False when it has no attempts left and failed."""
        if count_attempt and task.attempts >= self.max_attempts:
            await self.fail(task, f"{error} (gave up after {task.attempts} attempts)")
            return False
        wait = self.backoff(task.attempts) if delay is None else delay
        # A wait that is not the task's fault (a proxy still transcoding)
        # gives the attempt back, so it cannot exhaust the task.
        await self._requeue(task, error, wait, refund=0 if count_attempt else 1)
        return True

    if TYPE_CHECKING:

        async def fail(self, task: Task, error: str, events: list[Event] | None = None) -> None: ...

        async def _requeue(self, task: Task, error: str, wait: float, refund: int) -> None:
            """Queued again `wait` seconds from now (ranked in its lane), with
            `refund` attempts given back, if this worker still holds it."""
