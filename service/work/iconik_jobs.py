"""Progress in Iconik: one job per "Send to Captioning" request, kept up to date.

The job goes STARTED (progress_total = assets) when the request is expanded,
its progress_processed follows the assets as they finish, and it ends
FINISHED, FINISHED_WITH_WARNING (some assets failed) or FAILED, with a message
naming each failed asset and why. What it says is worked out from the
request's tasks in service/work/job_state.py (pure); this module reads them
from the queue and sends the job to Iconik. Reporting is best-effort: a
failing jobs API is logged and never fails or delays a bundle.

Order. PATCHes of one job used to race: a progress update held back by a 429
retry could land after the final one and leave the job STARTED for good. Now
each process keeps, per request, at most one *updater*, a background task
that reads the request's state from the queue and sends it only when it is
further on than what it sent last, then looks again while there is news.
`progress()` just marks the request as changed, so a worker slot never waits
on a slow PATCH, and one process's updates of one job never overtake each
other. While a job is STARTED, updates are coalesced to one per
`min_interval`; a final state goes out as soon as it is known.

Several processes may report the same job, and their PATCHes can still
cross. So after sending a non-final state an updater reads the queue once
more: if the request finished meanwhile, it sends the final state too. Every
process that sent a non-final state thus ends with a final one, and the last
write Iconik receives is final.

A job that could not be created when the request was expanded (Iconik down
at that moment) is created by the first later report that finds none.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio
from anyio.abc import TaskGroup

from service.iconik.client import IconikClient, IconikError
from service.logging import get_logger
from service.queue import Queue, QueueUnavailable, RequestKind
from service.work import job_state
from service.work.job_state import Outcome

log = get_logger("service.work.iconik_jobs")


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class _Job:
    """What this process knows about one request's job."""

    request_id: str
    asset_ids: list[str] | None = None  # from start(), until the queue lists the asset tasks
    # Of those, the ones the clicking user may not read: the job is theirs to
    # see, so it never names such an asset by its title.
    unreadable: frozenset[str] = frozenset()
    job_id: str | None = None
    stored: bool = False  # the queue has job_id (so no other process creates a second job)
    sent: tuple[bool, int] | None = None  # rank of the last state Iconik accepted from us
    sent_at: float | None = None  # when we last tried to send (the throttle counts tries)
    dirty: bool = False  # the request moved since the updater last read it
    running: bool = False  # an updater is on it
    wake: anyio.Event = field(default_factory=anyio.Event)  # cuts a throttle pause short
    left: int | None = None  # assets not yet processed at the last read
    reported: int = 0  # progress() calls since the last read began


class JobReporter:
    """Each request's Iconik job, kept up to date in the background.

    Use `async with reporter.running():` around the work whose progress it
    reports; the updaters run in its task group, and leaving it sends what is
    pending first (for at most `flush_timeout` real seconds, so a stopping
    worker stops in time). Outside `running()`, each call sends before it
    returns.
    """

    def __init__(
        self,
        iconik: IconikClient,
        queue: Queue,
        enabled: bool = True,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        min_interval: float = 1.0,
        flush_timeout: float = 10.0,
    ) -> None:
        self.iconik = iconik
        self.queue = queue
        self.enabled = enabled
        self.min_interval = min_interval
        self.flush_timeout = flush_timeout
        self._clock = clock
        self._sleep = sleep
        self._jobs: dict[str, _Job] = {}
        self._group: TaskGroup | None = None
        self._scopes: set[anyio.CancelScope] = set()
        self._active = 0  # updaters running
        self._idle: anyio.Event | None = None  # set when _active drops to 0
        self._flushing = 0

    # -- what the worker calls -------------------------------------------------

    async def start(
        self, request_id: str, asset_ids: list[str], unreadable: frozenset[str] = frozenset()
    ) -> None:
        """The request was expanded into `asset_ids`: its job appears, STARTED at 0 of them.
        `unreadable`: those the clicking user may not read (their titles stay hidden)."""
        if not self.enabled:
            return
        job = self._entry(request_id)
        job.asset_ids = list(asset_ids)
        job.unreadable = frozenset(unreadable)
        await self.progress(request_id)

    async def progress(self, request_id: str) -> None:
        """The request moved on (a task ended): its job follows, in the background."""
        if not self.enabled:
            return
        job = self._entry(request_id)
        job.dirty = True
        job.reported += 1
        # Cut a throttle pause short only when this may have been the last
        # asset: the final state must not wait, and a STARTED one can (this
        # spares a queue read per finished asset while the job is paused).
        if job.left is None or job.reported >= job.left:
            job.wake.set()
        if job.running:  # its updater will read the queue again before it stops
            return
        job.running = True
        self._active += 1
        if self._group is not None:
            self._group.start_soon(self._updater, job)
            return
        async with self.running():  # nobody runs us: send now, before returning
            assert self._group is not None
            self._group.start_soon(self._updater, job)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[JobReporter]:
        """Run updaters in the background while open; flush them on the way out."""
        if self._group is not None:  # already open further out: that one serves
            yield self
            return
        async with anyio.create_task_group() as group:
            self._group = group
            try:
                yield self
            finally:
                self._group = None
                # Shutdown included: the final states are what people look at.
                with anyio.CancelScope(shield=True), anyio.move_on_after(self.flush_timeout):
                    await self.flush()
                if self._active:
                    log.warning("job.reports_dropped", pending=self._active)
                for scope in list(self._scopes):
                    scope.cancel()

    async def flush(self) -> None:
        """Send what is pending now, throttle or not, and wait until every updater is done."""
        self._flushing += 1
        try:
            while self._active:
                for job in self._jobs.values():
                    job.wake.set()
                self._idle = anyio.Event()
                await self._idle.wait()
        finally:
            self._flushing -= 1

    # -- the updater -----------------------------------------------------------

    def _entry(self, request_id: str) -> _Job:
        job = self._jobs.get(request_id)
        if job is None:
            job = self._jobs[request_id] = _Job(request_id)
        return job

    async def _updater(self, job: _Job) -> None:
        # Shielded, so that a worker being cancelled does not cut a report
        # off mid-way; `running()` flushes, then cancels what is left.
        with anyio.CancelScope(shield=True) as scope:
            self._scopes.add(scope)
            try:
                await self._update(job)
            except Exception:  # a bug here must not take the worker's task group down
                log.exception("job.updater_crashed", request_id=job.request_id)
            finally:
                self._scopes.discard(scope)
                job.running = False
                if job.sent and job.sent[0] and job.stored and not job.dirty:
                    self._jobs.pop(job.request_id, None)  # the job is over; keep memory flat
                self._active -= 1
                if self._active == 0 and self._idle is not None:
                    self._idle.set()

    async def _update(self, job: _Job) -> None:
        while job.dirty:
            job.dirty = False
            sent = await self._send_latest(job)
            if sent is not None and not sent.final and not job.dirty:
                # Another process may have finished the request while our
                # PATCH travelled, and its final state may have landed first:
                # look again, so that our last word is final too. (When dirty,
                # the loop's next read does that anyway.)
                await self._send_latest(job, final_only=True)

    async def _send_latest(self, job: _Job, *, final_only: bool = False) -> Outcome | None:
        """Read the request; send its state if further on than the last sent.

        Returns the state it tried to send, or None when it sent nothing.
        """
        job.reported = 0
        try:
            status = await self.queue.request_status(job.request_id)
        except QueueUnavailable as exc:
            log.warning("job.not_updated", request_id=job.request_id, error=str(exc))
            return None
        if not status or status.get("kind") != RequestKind.CUSTOM_ACTION:  # only a click has a job
            return None
        outcome = job_state.job_outcome(status["tasks"])
        if outcome is None and job.asset_ids:  # expanded, asset tasks not committed yet
            outcome = job_state.expanded(len(job.asset_ids))
        job.left = outcome.total - outcome.processed if outcome and not outcome.final else None
        if outcome is None or (final_only and not outcome.final):
            return None
        if job.sent is not None and outcome.rank <= job.sent:
            return None
        if not outcome.final and await self._throttled(job):
            job.dirty = True  # read again after the pause; it may be final by then
            return None

        job.sent_at = self._clock()
        if status.get("job_id"):
            job.job_id, job.stored = status["job_id"], True
        if job.job_id is None:
            sent = await self._create(job, status, outcome)
        else:
            sent = await self._patch(job.job_id, outcome)
            if not job.stored:  # created here earlier, but the queue could not take the id
                await self._store(job)
        if sent:
            job.sent = outcome.rank
        return outcome

    async def _throttled(self, job: _Job) -> bool:
        """Pause until `min_interval` after the last send; True if it paused.

        A `progress()` (or a flush) cuts the pause short: the state may have
        become final, and a final state must not wait.
        """
        if job.sent_at is None or self._flushing:
            return False
        remaining = self.min_interval - (self._clock() - job.sent_at)
        if remaining <= 0:
            return False
        job.wake = wake = anyio.Event()
        if job.left is not None and job.reported >= job.left:
            return True  # a report during the read may have been the last asset: read again
        async with anyio.create_task_group() as group:

            async def ring() -> None:
                await self._sleep(remaining)
                wake.set()

            group.start_soon(ring)
            await wake.wait()
            group.cancel_scope.cancel()
        return True

    async def _create(self, job: _Job, status: dict[str, Any], outcome: Outcome) -> bool:
        """The request has no job yet (not made at expand, or Iconik was down): make it now."""
        asset_ids = job_state.job_assets(status, job.asset_ids)
        shown = job_state.may_show_title(status, asset_ids, job.unreadable)
        asset_title = await self._asset_title(asset_ids) if shown else None
        title = job_state.job_title(status.get("payload") or {}, asset_ids, asset_title)
        body = job_state.new_job(
            title,
            job.request_id,
            asset_ids,
            started_at=_now(),
            state=job_state.state_fields(outcome, _now()),
        )
        try:
            created = await self.iconik.create_job(body)
            job.job_id = str(created["id"])
        except (IconikError, KeyError, TypeError, ValueError) as exc:
            log.warning("job.not_created", request_id=job.request_id, error=str(exc))
            return False
        await self._store(job)
        return True

    async def _asset_title(self, asset_ids: list[str]) -> str | None:
        """The title of the request's one asset (None for none or several)."""
        if len(asset_ids) != 1:
            return None
        try:
            title = (await self.iconik.get_asset(asset_ids[0])).get("title")
        except IconikError:
            return None
        return str(title) if title else None

    async def _store(self, job: _Job) -> None:
        assert job.job_id is not None
        try:
            await self.queue.set_job_id(job.request_id, job.job_id)
            job.stored = True
        except QueueUnavailable as exc:
            # Kept in memory: this process will not make a second job, and
            # stores the id with its next report.
            log.warning("job.id_not_stored", job_id=job.job_id, error=str(exc))

    async def _patch(self, job_id: str, outcome: Outcome) -> bool:
        try:
            await self.iconik.update_job(job_id, job_state.state_fields(outcome, _now()))
        except IconikError as exc:
            log.warning("job.not_updated", job_id=job_id, error=str(exc))
            return False
        return True
