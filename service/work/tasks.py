"""What every task kind shares: the context it runs in and how it can end.

A task kind is an async function `(context, task) -> children | None`. It
ends by returning (done), or by raising one of the exceptions below, which
the runner (`service.work.runner`) turns into a retry, a wait or a failure.
Iconik and storage errors (IconikError, StorageError) mean "retry later".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

# The failure no retry fixes lives below the work, as the Iconik client raises
# it too; the task kinds import it from here.
from service.failures import TaskFailed as TaskFailed

if TYPE_CHECKING:
    from service.iconik.client import IconikClient
    from service.settings import Settings
    from service.storage import Storage
    from service.work.bulk_reads import BulkReads
    from service.work.bundle_registry import BundleRegistry
    from service.work.iconik_jobs import JobReporter


class TaskOutcome(StrEnum):
    """How a task attempt ended, as the runner settles it; the value is the
    `outcome` label of caption_bridge_tasks_total."""

    DONE = "done"
    RETRIED = "retried"  # runs again later; FAILED instead once its attempts are used up
    FAILED = "failed"  # given up, with a reason a person can act on
    WAIT = "wait"  # no proxy yet: runs again later without using an attempt
    LOST = "lost"  # another worker holds it now; its outcome is theirs to record


class ProxyNotReady(Exception):
    """No usable proxy yet; Iconik may still be transcoding."""


class LeaseLost(Exception):
    """Another worker holds this task now (this one was too slow to renew its lease)."""


@dataclass(frozen=True)
class TaskContext:
    settings: Settings
    iconik: IconikClient
    storage: Storage
    registry: BundleRegistry
    jobs: JobReporter
    clock: Callable[[], float]
    # Raises LeaseLost unless this worker still holds the task: called right
    # before anything becomes visible, so a worker that lost its task to
    # another never publishes over it.
    still_mine: Callable[[], Awaitable[None]]
    # A click's builds read their assets from Iconik's search, a batch at a
    # time (service/work/bulk_reads.py); None: every build reads per asset.
    bulk_reads: BulkReads | None = None

    def iso_now(self) -> str:
        return datetime.fromtimestamp(self.clock(), UTC).isoformat()
