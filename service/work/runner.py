"""The runner: claims tasks, keeps their leases, settles how each one ended.

What a task does lives in a module of its own (`service.work.expand`,
`service.work.build`, `service.deliver.task`); this module decides only how
a task ends, in `_settle`:
done; retried later (Iconik or storage trouble, a proxy still transcoding);
or failed with a reason a person can act on. A task is leased while it runs
and the lease is renewed as long as the work goes on, so a worker killed
mid-download leaves a task that another worker (or this one, restarted)
picks up once the lease lapses. A worker that finds it lost a lease stops
that task before publishing anything.
"""

from __future__ import annotations

import contextlib
import functools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import structlog

from service.deliver import changes as deliver_events
from service.deliver import task as deliver
from service.deliver.loop import ScanLoop
from service.deliver.scan import DeliverScan
from service.iconik.client import IconikClient, IconikError, NotFound
from service.logging import get_logger, redact
from service.metrics import Metrics
from service.notify import due_check
from service.notify import sender as notify
from service.queue import (
    Event,
    Expanded,
    NewTask,
    Queue,
    QueueUnavailable,
    RequestKind,
    Task,
    TaskKind,
    retention,
)
from service.settings import Settings
from service.storage import Storage, StorageError
from service.work import build, caption_status, expand
from service.work.bulk_reads import BulkReads, pending_builds
from service.work.bundle_registry import BundleRegistry
from service.work.iconik_jobs import JobReporter
from service.work.tasks import LeaseLost, ProxyNotReady, TaskContext, TaskFailed, TaskOutcome

log = get_logger("service.work.runner")

TaskFunction = Callable[[TaskContext, Task], Awaitable[list[NewTask] | Expanded | None]]

TASK_KINDS: dict[str, TaskFunction] = {
    TaskKind.EXPAND: expand.expand,
    TaskKind.BUILD: build.build,
    TaskKind.REFRESH: build.refresh,
    TaskKind.WITHDRAW: build.withdraw,
    TaskKind.DELIVER: deliver.deliver,
    TaskKind.README: deliver.rewrite_readme,
    TaskKind.CAPTION_STATUS: caption_status.mark_in_captioning,
}


class Worker:
    def __init__(
        self,
        settings: Settings,
        queue: Queue,
        iconik: IconikClient,
        storage: Storage,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
        owner: str | None = None,
        poll_interval: float = 1.0,
        proxy_retry_delay: Callable[[float], float] | None = None,
        lease_renewal: float | None = None,
        jobs: JobReporter | None = None,
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.iconik = iconik
        self.storage = storage
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.owner = owner or f"worker-{uuid.uuid4().hex[:12]}"
        self.poll_interval = poll_interval
        # How long to wait before looking for a proxy again, given how long we
        # have waited so far: soon at first, then every minute at most.
        self.proxy_retry_delay = proxy_retry_delay or (lambda waited: min(60.0, max(2.0, waited)))
        # Renewed three times per lease, so one slow renewal never loses it.
        self.lease_renewal = lease_renewal or settings.task_lease_seconds / 3
        self.jobs = jobs or JobReporter(iconik, queue, enabled=settings.iconik_jobs)
        self.registry = BundleRegistry(queue, storage)
        self.bulk_reads = BulkReads(functools.partial(pending_builds, queue), clock)

    # -- the loop --------------------------------------------------------------

    async def run(self) -> None:
        """Run tasks until cancelled, `WORKER_CONCURRENCY` at a time."""
        log.info("worker.started", owner=self.owner, concurrency=self.settings.worker_concurrency)
        # The reporter's updaters send job progress beside the slots, so a
        # slot never waits on a slow PATCH; stopping flushes them.
        async with self.jobs.running(), anyio.create_task_group() as group:
            group.start_soon(self._fill_registry)
            if self.settings.retention_days > 0:  # the queue's history, beside the slots
                group.start_soon(self._prune)
            group.start_soon(self._check_due_dates)  # notifications about due dates
            for slot in range(self.settings.worker_concurrency):
                group.start_soon(self._slot, slot)
            # Notifications, beside the slots: an endpoint that is down holds up no task.
            sender = notify.sender_for(self.settings, self.queue, self.metrics)
            if sender is not None:
                group.start_soon(sender.run)
            if self.settings.deliver_scan_seconds > 0:  # the deliver/ folders, beside the slots
                scan = DeliverScan(
                    self.queue,
                    self.storage,
                    metrics=self.metrics,
                    clock=self.clock,
                    max_caption_bytes=self.settings.max_caption_bytes,
                    style=self.settings.style,
                    readme_every=self.settings.deliver_scan_seconds,
                    registry=self.registry,
                    cache_files=self.settings.deliver_cache_files,
                    caption_status=bool(self.settings.caption_status_view_id),
                )
                loop = ScanLoop(
                    scan,
                    self.queue,
                    every=self.settings.deliver_scan_seconds,
                    events=deliver_events.source_for(
                        self.settings, self.storage, lambda: scan.known_folders
                    ),
                    reconcile_every=self.settings.deliver_reconcile_seconds,
                )
                group.start_soon(loop.run)

    async def _fill_registry(self) -> None:
        # Until the registry has the bundles made before it existed, intake
        # stores every event: fill it at start-up, beside the slots (a large
        # bucket's listing must not hold them up), not on an event's path.
        try:
            await self.registry.fill_once()
        except (QueueUnavailable, StorageError) as exc:
            # The deliver scan fills it later; until then events are all stored.
            log.warning("registry.not_filled", error=str(exc))

    async def _prune(self) -> None:
        # Finished requests older than RETENTION_DAYS, in small batches.
        await retention.keep_pruning(
            self.queue, self.settings.retention_days, on_error=(QueueUnavailable,)
        )

    async def _check_due_dates(self) -> None:
        async def emit(events: list[Event]) -> int:
            return await self.queue.add_events(events)  # the outbox (the sender sends them)

        check = due_check.DueCheck(
            self.queue,
            emit,
            notify_before_hours=self.settings.notify_due_before_hours,
            clock=self.clock,
        )
        await due_check.keep_checking(check, self.queue, self.registry.holder)

    async def _slot(self, slot: int) -> None:
        while True:
            try:
                task = await self.queue.claim(self.owner)
            except QueueUnavailable as exc:
                log.error("worker.queue_unavailable", error=str(exc))
                await anyio.sleep(self.poll_interval * 5)
                continue
            if task is None:
                await self.queue.wait_for_work(self.poll_interval)
                continue
            try:
                await self.run_task(task)
            except QueueUnavailable as exc:
                # The outcome could not be recorded; the lease lapses and the
                # task runs again. One slot's trouble must not stop the others.
                log.error("worker.queue_unavailable", error=str(exc), task_id=task.task_id)
                await anyio.sleep(self.poll_interval * 5)

    async def run_once(self) -> bool:
        """Claim and run one task if there is one (for tools and tests)."""
        task = await self.queue.claim(self.owner)
        if task is None:
            return False
        async with self.jobs.running():  # its job report is sent before this returns
            await self.run_task(task)
        return True

    async def run_task(self, task: Task) -> None:
        with structlog.contextvars.bound_contextvars(
            request_id=task.request_id,
            task=task.kind,
            asset_id=task.asset_id,
            attempt=task.attempts,
        ):
            try:
                async with self._lease_kept(task):
                    outcome = await self._attempt(task)
            except LeaseLost as exc:
                outcome = (TaskOutcome.LOST, str(exc))
            except BaseException:
                # Cancelled (shutdown): hand the task back at once, unpenalised.
                with anyio.CancelScope(shield=True):
                    with contextlib.suppress(Exception):
                        await self.queue.retry(task, "worker stopped", delay=0, count_attempt=False)
                raise
            await self._settle(task, *outcome)

    @contextlib.asynccontextmanager
    async def _lease_kept(self, task: Task) -> AsyncIterator[None]:
        lost = False

        async def renew() -> None:
            nonlocal lost
            while True:
                await anyio.sleep(self.lease_renewal)
                with contextlib.suppress(QueueUnavailable):
                    if not await self.queue.extend_lease(task):
                        lost = True
                        group.cancel_scope.cancel()
                        return

        async with anyio.create_task_group() as group:
            group.start_soon(renew)
            try:
                yield
            finally:
                group.cancel_scope.cancel()
        if lost:
            raise LeaseLost(f"task {task.task_id} was taken over by another worker")

    def context(self, task: Task) -> TaskContext:
        async def still_mine() -> None:
            try:
                mine = await self.queue.extend_lease(task)
            except QueueUnavailable:
                mine = False  # cannot prove it: publish nothing
            if not mine:
                raise LeaseLost(f"task {task.task_id} is no longer held by {self.owner}")

        return TaskContext(
            self.settings,
            self.iconik,
            self.storage,
            self.registry,
            self.jobs,
            self.clock,
            still_mine,
            self.bulk_reads,
        )

    async def _attempt(self, task: Task) -> tuple[TaskOutcome, Any]:
        """Run the task; say how it ended, without touching the queue
        (RETRIED: asked for; `_settle` makes it FAILED once attempts run out)."""
        run = TASK_KINDS.get(task.kind)
        if run is None:
            return TaskOutcome.FAILED, f"unknown task kind {task.kind!r}"
        try:
            return TaskOutcome.DONE, await run(self.context(task), task)
        except TaskFailed as exc:
            return TaskOutcome.FAILED, exc
        except ProxyNotReady as exc:
            return TaskOutcome.WAIT, str(exc)
        except LeaseLost as exc:
            return TaskOutcome.LOST, str(exc)
        except NotFound as exc:  # the asset itself was checked; this is a part of it
            return TaskOutcome.RETRIED, f"{exc} (it was there a moment ago)"
        except IconikError as exc:  # credentials, 429/5xx after retries, odd answers
            return TaskOutcome.RETRIED, str(exc)
        except (StorageError, OSError) as exc:
            # The log names the storage for the operator; the task's reason is
            # read by Iconik users (and captioners, in ERRORS.txt): no server path.
            log.warning("task.storage_failed", storage=self.storage.description, error=str(exc))
            return TaskOutcome.RETRIED, f"the bundle storage: {self._without_root(str(exc))}"
        except Exception as exc:  # a bug: keep the task, log the traceback
            log.exception("task.crashed")
            return (
                TaskOutcome.RETRIED,
                f"internal error ({type(exc).__name__}); see the service log",
            )

    def _without_root(self, text: str) -> str:
        """`text` without the storage's own location (a server path, a bucket)."""
        text = text.replace(f"{self.storage.description}: ", "")
        root = getattr(self.storage, "root", None)
        if root is None:
            return text
        return text.replace(f"{root}/", "").replace(str(root), "the storage root")

    async def _settle(self, task: Task, outcome: TaskOutcome, detail: Any) -> None:
        # Whatever the reason quotes (an answer from Iconik or a gateway may
        # echo a credential), it is stored, shown and sent to Iconik redacted.
        events, failure = None, None
        if isinstance(detail, TaskFailed):  # a refused delivery carries its event
            detail, events, failure = str(detail), detail.events, detail
        if isinstance(detail, str):
            detail = redact(detail)
        if outcome == TaskOutcome.LOST:
            # Another worker runs it now; its outcome is theirs to record.
            log.warning("task.lease_lost", reason=detail)
            self.metrics.tasks.labels(task.kind, outcome).inc()
            return
        if outcome == TaskOutcome.DONE:
            # An expand says what it made, and may leave a note for the status.
            expanded = detail if isinstance(detail, Expanded) else Expanded(detail or [])
            await self.queue.complete(
                task, expanded.children or None, expanded.note, events=expanded.events or None
            )
            log.info("task.done", children=len(expanded.children), events=len(expanded.events))
        elif outcome == TaskOutcome.FAILED:
            await self.queue.fail(task, detail, events=events or None)
            log.warning("task.failed", reason=detail)
        elif outcome == TaskOutcome.WAIT:
            waited = self.clock() - (task.first_claimed_at or self.clock())
            delay = self.proxy_retry_delay(waited)
            await self.queue.retry(task, detail, delay=delay, count_attempt=False)
            log.info("task.waiting", reason=detail, retry_in=delay)
            self.metrics.retried(detail)
        else:  # RETRIED, unless its attempts are used up
            retried = await self.queue.retry(task, detail)
            log.warning("task.retry" if retried else "task.failed", reason=detail)
            if retried:
                self.metrics.retried(detail)
            outcome = TaskOutcome.RETRIED if retried else TaskOutcome.FAILED
            detail = detail if retried else f"{detail} (gave up after {task.attempts} attempts)"
        self.metrics.tasks.labels(task.kind, outcome).inc()
        await self._report(task, outcome, detail, failure)

    async def _report(
        self, task: Task, outcome: TaskOutcome, detail: Any, failure: TaskFailed | None
    ) -> None:
        """Tell the request's Iconik job; only custom actions (a person clicked) have one."""
        if task.kind == TaskKind.DELIVER:  # a delivery has a job of its own
            await deliver.report(self.context(task), self.metrics, task, outcome, detail, failure)
            return
        if task.request_kind != RequestKind.CUSTOM_ACTION or outcome not in (
            TaskOutcome.DONE,
            TaskOutcome.FAILED,
        ):
            return
        if task.kind == TaskKind.EXPAND and outcome == TaskOutcome.DONE:
            return  # expand reported its assets through jobs.start()
        # Returns at once: the reporter reads the request's state from the
        # queue and sends it in the background (a failed expand included).
        await self.jobs.progress(task.request_id)
