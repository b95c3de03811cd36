"""The composition root: the service's object graph built from `Settings`, once.

The commands (`serve`, `serve --no-worker`, `worker`, `register`), the demo
and the end-to-end tests (tests/support/stack.py) build their parts here instead of
wiring them by hand; what differs between them is a parameter:

- the receiver (`build_app`): the queue (a short store wait, so a busy store
  answers 503 in time), the app's metrics, readiness of queue and storage,
  and one lifespan companion: the worker (`serve`), the registry fill
  (`serve --no-worker`), or none (the tests drive the worker themselves);
- the worker (`opened_worker`): the Iconik client and its rate budget, the
  job reporter, the storage; `worker_alone` adds the queue it owns;
- the Iconik client (`iconik_client`): on PostgreSQL its limiter draws from
  the budget every replica shares. Whoever opens that budget closes it: this
  module, after the client, never the client itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, Literal

import anyio
from starlette.applications import Starlette

from service import startup
from service.iconik.client import IconikClient
from service.iconik.ratelimit import RateLimiter, default_burst
from service.intake.app import Lifecycle, create_app
from service.intake.services import Services
from service.metrics import Metrics
from service.queue import Queue, queue_for
from service.settings import Settings
from service.storage import Storage, open_storage
from service.work.bundle_registry import filled_in_background
from service.work.iconik_jobs import JobReporter
from service.work.runner import Worker

# The receiver's lifespan companion: the worker beside it, the registry fill
# alone (a receiver without a worker), or nothing (a test runs the worker).
Companion = Literal["worker", "registry", "none"]


@contextlib.asynccontextmanager
async def iconik_client(
    settings: Settings, *, shared_budget: bool = True, **options: Any
) -> AsyncIterator[IconikClient]:
    """The process's Iconik client, closed (with its budget) on leaving.

    On PostgreSQL, with `shared_budget`, its rate limiter draws from the
    budget every replica shares (ICONIK_RATE_LIMIT is the deployment's).
    `options` go to the client (`max_attempts`, `rate_limit`, `sleep`...).
    """
    budget = None
    if shared_budget and settings.queue_url.startswith(("postgresql://", "postgres://")):
        from service.queue.postgres_budget import PostgresBudget

        rate = settings.iconik_rate_limit
        burst = default_burst(rate)
        budget = PostgresBudget(settings.queue_url, rate, burst)
        options["limiter"] = RateLimiter(rate, burst=burst, budget=budget)
    token = settings.iconik_auth_token
    options.setdefault("rate_limit", settings.iconik_rate_limit)
    options.setdefault("timeout", settings.iconik_timeout_seconds)
    try:
        async with IconikClient(
            settings.iconik_url,
            settings.iconik_app_id,
            token.get_secret_value() if token else None,
            **options,
        ) as iconik:
            yield iconik
    finally:
        if budget is not None:  # it holds a database connection
            await budget.aclose()


@contextlib.asynccontextmanager
async def opened_worker(
    settings: Settings,
    queue: Queue,
    storage: Storage | None = None,
    *,
    metrics: Metrics | None = None,
    iconik_options: dict[str, Any] | None = None,
    jobs_options: dict[str, Any] | None = None,
    **worker_options: Any,
) -> AsyncIterator[Worker]:
    """A worker on an open `queue`, with its own Iconik client and job reporter.

    `iconik_options` go to `iconik_client`, `jobs_options` to the
    `JobReporter` (its clock and sleep), `worker_options` to the `Worker`.
    """
    storage = storage or open_storage(settings.storage_url)
    async with iconik_client(settings, **(iconik_options or {})) as iconik:
        jobs = JobReporter(iconik, queue, enabled=settings.iconik_jobs, **(jobs_options or {}))
        yield Worker(settings, queue, iconik, storage, metrics=metrics, jobs=jobs, **worker_options)


def worker_background(settings: Settings, storage: Storage, **worker_options: Any) -> Lifecycle:
    """The worker as a lifespan companion of the HTTP app (what `serve` runs):
    it shares the app's queue and metrics, and checks its dependencies once."""

    @contextlib.asynccontextmanager
    async def run(services: Services) -> AsyncIterator[None]:
        async with (
            opened_worker(
                settings, services.queue, storage, metrics=services.metrics, **worker_options
            ) as worker,
            anyio.create_task_group() as group,
        ):
            startup.check_in_background(group, services, storage, worker.iconik)
            group.start_soon(worker.run)
            yield
            group.cancel_scope.cancel()

    return run


def build_app(
    settings: Settings,
    *,
    companion: Companion = "worker",
    intake: bool = True,
    storage: Storage | None = None,
    queue: Queue | None = None,
    **worker_options: Any,
) -> Starlette:
    """The HTTP app with its lifespan companion (see the module's docstring).

    `queue` replaces the receiver's own (a test's, on its clock);
    `worker_options` go to the worker (`poll_interval`, `proxy_retry_delay`).
    """
    if companion == "worker":
        settings.require_iconik()
    storage = storage or open_storage(settings.storage_url)
    background: Lifecycle | None = None
    if companion == "worker":
        background = worker_background(settings, storage, **worker_options)
    elif companion == "registry":
        background = filled_in_background(storage)
    return create_app(
        settings,
        queue=queue,
        readiness={"storage": storage.ping},
        background=background,
        intake=intake,
    )


@contextlib.asynccontextmanager
async def worker_alone(settings: Settings) -> AsyncIterator[Worker]:
    """`caption-bridge worker` without HTTP: a worker owning its queue.

    The queue keeps its own store wait (no caller waits on a 503 here).
    The caller has checked the Iconik credentials (`Settings.require_iconik`).
    """
    queue = queue_for(settings)
    await queue.open()
    try:
        async with opened_worker(settings, queue, metrics=Metrics()) as worker:
            yield worker
    finally:
        await queue.close()
