"""When the deliver/ scan looks, and where: once per deployment, as changes come.

One replica at a time scans (the `deliver-scan` lease in the queue's store,
service/work/leases.py); the others only try to take the lease over, once per
DELIVER_SCAN_SECONDS, so a scanner that dies is replaced within a few
intervals. The holder looks:

- with events (S3 notifications through SQS, or inotify on a local folder:
  service/deliver/changes.py): at each folder an event names, as it comes;
  at a folder with a file still changing again `SETTLE_SECONDS` (or
  DELIVER_SCAN_SECONDS, if shorter) later; and
  at everything once every DELIVER_RECONCILE_SECONDS, for what events missed;
- without events, or when the event source fails: at everything once every
  DELIVER_SCAN_SECONDS. A look at everything is one walk of the storage
  (service/storage: about one S3 request per hundred bundles).

A look at everything also tells which of the registry's folders the storage
no longer has; one missing from two walks in a row leaves the registry.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Protocol

import anyio

from service.deliver.scan import DeliverScan
from service.logging import get_logger
from service.queue import Queue, QueueUnavailable
from service.work import leases

log = get_logger("service.deliver.loop")

# A file seen changing is looked at again this long after, with events: the
# second look that finds it unchanged takes it (a copy in progress changes).
SETTLE_SECONDS = 2.0
# Retiring more than this share of the registry in one walk looks like a
# storage that lists nothing (a wrong prefix, lost permissions): not done.
MAX_RETIRED_SHARE = 0.5


class EventSource(Protocol):
    def batches(self) -> AsyncIterator[set[str]]: ...


class ScanLoop:
    def __init__(
        self,
        scan: DeliverScan,
        queue: Queue,
        *,
        every: float,
        events: EventSource | None = None,
        reconcile_every: float = 6 * 3600.0,
        clock: Callable[[], float] = time.monotonic,
        holder: str | None = None,
    ) -> None:
        self.scan, self.queue = scan, queue
        self.every, self.events, self.reconcile_every = every, events, reconcile_every
        self.clock = clock
        self.holder = holder or leases.new_holder()
        self.lease_seconds = max(3 * every, 30.0)
        self.pending: set[str] = set()  # folders events named, not looked at yet
        self._woken = anyio.Event()
        self._events_work = events is not None
        self._missing_before: set[str] = set()
        self._next_everything = 0.0
        self._renewed_at: float | None = None
        self.settle = min(SETTLE_SECONDS, every)
        self._looked_at: dict[str, float] = {}  # unsettled folders: when last looked at

    async def run(self) -> None:
        log.info("deliver_scan.started", every=self.every, events=self.events is not None)
        try:
            await self._run()
        finally:  # stopped: another replica may take the scan over at once
            self._renewed_at = None
            await leases.let_go(self.queue, leases.DELIVER_SCAN, self.holder)

    async def _run(self) -> None:
        while True:
            if not await self._hold():
                await self._sleep(self.every)  # another replica scans
                continue
            log.info("deliver_scan.lease_taken", holder=self.holder)
            async with anyio.create_task_group() as group:
                if self._events_work:
                    group.start_soon(self._listen)
                while await self._hold():
                    await self.look_once()
                    await self._sleep(self._until_next())
                group.cancel_scope.cancel()
            log.info("deliver_scan.lease_lost")

    async def look_once(self) -> None:
        """Whatever is due now: everything, or the folders named and unsettled."""
        try:
            if self.clock() >= self._next_everything:
                report = await self.scan.step()
                self._looked_at = dict.fromkeys(self.scan.unsettled, self.clock())
                self._next_everything = self.clock() + (
                    self.reconcile_every if self._events_work else self.every
                )
                await self._retire(report.missing, len(self.scan.known_folders))
            else:
                # A folder with a file still changing is looked at again only
                # once it has had `settle` seconds to change (a copy in
                # progress), however often events wake the loop meanwhile.
                now = self.clock()
                waiting = {f for f in self.scan.unsettled if now < self._due(f)}
                folders = (self.pending | self.scan.unsettled) - waiting
                self.pending &= waiting  # named again while settling: at its time
                if folders:
                    await self.scan.step(folders)
                    for folder in folders:
                        self._looked_at[folder] = now
                for folder in [f for f in self._looked_at if f not in self.scan.unsettled]:
                    del self._looked_at[folder]
        except Exception as exc:  # the queue or storage is down, or a bug: next time
            self.scan.metrics.deliver_scans.labels("failed").inc()
            log.warning("deliver_scan.failed", error=str(exc) or type(exc).__name__)

    def _due(self, folder: str) -> float:
        return self._looked_at.get(folder, 0.0) + self.settle

    def _until_next(self) -> float:
        now = self.clock()
        wait = max(0.0, self._next_everything - now)
        if self._events_work and self.scan.unsettled:
            wait = min(wait, max(0.0, min(self._due(f) for f in self.scan.unsettled) - now))
        return min(wait, self.lease_seconds / 3)  # the lease is renewed in time

    async def _sleep(self, seconds: float) -> None:
        """Until `seconds` pass or an event names a folder."""
        with anyio.move_on_after(seconds):
            await self._woken.wait()
        self._woken = anyio.Event()

    async def _hold(self) -> bool:
        """Whether this process holds the scan's lease (taken or renewed)."""
        now = self.clock()
        if self._renewed_at is not None and now - self._renewed_at < self.lease_seconds / 3:
            return True
        try:
            held = await self.queue.take_lease(leases.DELIVER_SCAN, self.holder, self.lease_seconds)
        except Exception as exc:  # the queue is down (or a bug): the slots go on
            log.warning("deliver_scan.lease_unavailable", error=str(exc) or type(exc).__name__)
            held = False
        self._renewed_at = now if held else None
        return held

    async def _listen(self) -> None:
        assert self.events is not None
        try:
            async for folders in self.events.batches():
                if not folders:  # a watch (re)made: look at everything once
                    self._next_everything = self.clock()
                self.pending |= folders
                self._woken.set()
        except Exception as exc:  # the source is gone: every look is a walk again
            log.warning("deliver_events.failed", error=str(exc) or type(exc).__name__)
            self._events_work = False
            self._next_everything = min(self._next_everything, self.clock() + self.every)

    async def _retire(self, missing: set[str], known: int) -> None:
        """Registry rows of folders missing from two walks in a row leave it."""
        gone, self._missing_before = missing & self._missing_before, missing
        if not gone:
            return
        if len(gone) > MAX_RETIRED_SHARE * known:
            log.warning("deliver_scan.retire_refused", folders=len(gone), known=known)
            return
        with contextlib.suppress(QueueUnavailable):  # the next walk tries again
            await self.queue.retire_bundles(sorted(gone))
            log.info("deliver_scan.folders_retired", folders=len(gone))
