"""The whole product on loopback for end-to-end tests.

Real uvicorn servers for the simulator, its storage (signed URLs on an
origin of their own, as in production) and the service, the real SQLite
queue and a real bundle folder. The worker is driven step by step from the
test with an injected clock, so waiting for a transcode or a backoff is a
clock advance, not a sleep; for load, `run_until_drained` runs its slots
concurrently until no task is left.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import httpx2

from service.compose import build_app, opened_worker
from service.deliver.scan import DeliverScan, ScanReport
from service.queue import Event, NewTask, Queue, Task, queue_for
from service.queue.sqlite import SQLiteQueue
from service.settings import Settings
from service.storage import open_storage
from service.work.runner import Worker
from simulator import Seeded, Simulator
from tests.support.clock import FakeClock
from tests.support.servers import running
from tests.support.service import ICONIK_TOKEN, PAYLOAD_AUTH_TOKEN, make_settings, signed

APP_ID = "test-app"
# The stack's clock starts at a real date (2027), which its files show.
STACK_EPOCH = 1_800_000_000.0


class VirtualTime(FakeClock):
    """A clock and a sleep that agree and never wait: sleeping moves the clock.

    For the job reporter's throttle: its pauses cost no real time in tests,
    and it stays a clock of its own, so it never expires the queue's leases.
    """

    def __init__(self) -> None:
        super().__init__(0.0)

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)
        await anyio.lowlevel.checkpoint()


class WorkClock:
    """A clock that moves as tasks end: `per_second` of them make a second.

    For the job reporter under load: its throttle coalesces as it would in
    real time, deterministically, and no test waits for real seconds.
    """

    def __init__(self, per_second: int) -> None:
        self.per_second = per_second
        self.ended = 0
        self._alarms: list[tuple[float, anyio.Event]] = []

    def __call__(self) -> float:
        return self.ended / self.per_second

    def tick(self) -> None:
        self.ended += 1
        for when, alarm in self._alarms:
            if when <= self():
                alarm.set()

    async def sleep(self, seconds: float) -> None:
        alarm = anyio.Event()
        entry = (self() + seconds, alarm)
        self._alarms.append(entry)
        try:
            if seconds > 0:
                await alarm.wait()
            else:
                await anyio.lowlevel.checkpoint()
        finally:
            self._alarms.remove(entry)


class WatchedQueue(SQLiteQueue):
    """The real queue, which also says when no task is left, and moves `work`."""

    def __init__(self, *args: Any, work: WorkClock, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.work = work

    async def open(self) -> None:
        self.drained = anyio.Event()
        await super().open()

    async def complete(
        self,
        task: Task,
        children: list[NewTask] | None = None,
        note: str | None = None,
        events: list[Event] | None = None,
    ) -> None:
        await super().complete(task, children, note, events)
        await self._ended()

    async def fail(self, task: Task, error: str, events: list[Event] | None = None) -> None:
        await super().fail(task, error, events)
        await self._ended()

    async def _ended(self) -> None:
        self.work.tick()
        if await self.backlog() == 0:
            self.drained.set()


@dataclass
class Stack:
    sim: Simulator
    seeded: Seeded
    sim_url: str
    app_url: str
    settings: Settings
    clock: FakeClock
    root: Path
    # One scanner for the whole test: it remembers its last look at each file.
    scanner: DeliverScan = field(init=False)

    def __post_init__(self) -> None:
        queue = SQLiteQueue(self.settings.sqlite_path, clock=self.clock)
        self.scanner = DeliverScan(
            queue,
            open_storage(self.settings.storage_url),
            clock=self.clock,
            style=self.settings.style,
            readme_every=self.settings.deliver_scan_seconds,
        )

    def send(self, body: bytes) -> dict[str, Any]:
        answer = httpx2.post(
            self.app_url + "/iconik/custom-action", content=body, headers=signed(body)
        )
        assert answer.status_code == 202, answer.text
        return answer.json()

    def webhook(self, body: bytes) -> httpx2.Response:
        return httpx2.post(self.app_url + "/iconik/webhook", content=body, headers=signed(body))

    def status(self, request_id: str) -> dict[str, Any]:
        from tests.support.service import bearer

        return httpx2.get(f"{self.app_url}/requests/{request_id}", headers=bearer()).json()

    def drain(self, max_steps: int = 500, step_seconds: float = 5.0) -> None:
        anyio.run(self._drain, max_steps, step_seconds)

    def run_once(self) -> bool:
        return anyio.run(self._run_once)

    def run_until_drained(self) -> None:
        """Worker.run(), all WORKER_CONCURRENCY slots, stopped once no task is left."""
        anyio.run(run_until_drained, self.settings, self.clock)

    async def _run_once(self) -> bool:
        return await with_worker(self.settings, self.clock, lambda worker, queue: worker.run_once())

    async def _drain(self, max_steps: int, step_seconds: float) -> None:
        await drain(self.settings, self.clock, max_steps, step_seconds)

    def scan(self) -> ScanReport:
        """One look at every deliver/ folder, as DELIVER_SCAN_SECONDS would make."""
        return anyio.run(self._scan)

    async def _scan(self) -> ScanReport:
        await self.scanner.queue.open()
        try:
            return await self.scanner.step()
        finally:
            await self.scanner.queue.close()

    def bundle_dir(self, asset_id: str) -> Path:
        [folder] = [p for p in self.root.iterdir() if p.name.endswith(f"[{asset_id}]")]
        return folder

    def manifest(self, asset_id: str) -> dict[str, Any]:
        return json.loads((self.bundle_dir(asset_id) / "project.json").read_text())


async def with_worker(
    settings: Settings,
    clock: FakeClock,
    fn: Any,
    *,
    queue_type: Callable[..., SQLiteQueue] | None = None,
    jobs_time: VirtualTime | WorkClock | None = None,
    **worker_options: Any,
) -> Any:
    """Call `fn(worker, queue)` with a worker wired to `settings`, in this thread.

    The job reporter's throttle runs on `jobs_time` (a VirtualTime by default).
    """
    queue: Queue = (
        queue_for(settings, clock=clock, backoff=lambda attempt: 1.0)
        if queue_type is None
        else queue_type(
            settings.sqlite_path,
            clock=clock,
            backoff=lambda attempt: 1.0,
            max_attempts=settings.task_max_attempts,
        )
    )
    await queue.open()
    try:
        jobs_time = jobs_time or VirtualTime()
        async with opened_worker(
            settings,
            queue,
            iconik_options={"rate_limit": 1000, "sleep": _no_sleep},
            jobs_options={"clock": jobs_time, "sleep": jobs_time.sleep},
            clock=clock,
            **worker_options,
        ) as worker:
            return await fn(worker, queue)
    finally:
        await queue.close()


async def drain(
    settings: Settings,
    clock: FakeClock,
    max_steps: int = 500,
    step_seconds: float = 5.0,
) -> None:
    """Run tasks until none is left, advancing the fake clock when all are waiting."""

    async def loop(worker: Worker, queue: Queue) -> None:
        for _ in range(max_steps):
            if await worker.run_once():
                continue
            if await queue.backlog() == 0:
                return
            clock.now += step_seconds  # let waiting tasks come due
        raise AssertionError("the queue did not drain")

    await with_worker(settings, clock, loop)


async def run_until_drained(settings: Settings, clock: FakeClock) -> None:
    """Run the worker's slots until no task is left, then stop it as a shutdown does."""

    async def run(worker: Worker, queue: WatchedQueue) -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(worker.run)
            await queue.drained.wait()
            # Cancelled like a stopping worker: reports still pending are flushed.
            group.cancel_scope.cancel()

    work = WorkClock(per_second=25)
    await with_worker(
        settings,
        clock,
        run,
        queue_type=functools.partial(WatchedQueue, work=work),
        jobs_time=work,
        poll_interval=0.01,  # how often an idle slot looks at the queue (the worker's own wait)
    )


async def _no_sleep(seconds: float) -> None:
    """Retry waits inside the client take no time in tests (Retry-After is 0 anyway)."""


def blob_sha256(sim: Simulator, key: str) -> str:
    digest = hashlib.sha256()
    for chunk in sim.blobs[key].chunks():
        digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def stack(
    tmp_path: Path, *, large_proxy_bytes: int = 3 * 1024 * 1024, **overrides: Any
) -> Iterator[Stack]:
    sim = Simulator(APP_ID, ICONIK_TOKEN)
    sim.add_user(PAYLOAD_AUTH_TOKEN)  # whose auth_token the clicks carry
    seeded = sim.seed(large_proxy_bytes=large_proxy_bytes)
    clock = FakeClock(STACK_EPOCH)
    with running(sim.app()) as sim_url, running(sim.storage_app()) as storage_url:
        sim.storage_base = storage_url + "/"
        values = {
            "iconik_url": sim_url,
            "iconik_app_id": APP_ID,
            "metadata_view_ids": seeded.view_id,
            "proxy_wait_seconds": 60,
            **overrides,
        }
        settings = make_settings(tmp_path, **values)
        root = tmp_path / "bundles"
        # The receiver alone, on the test's clock: the test runs the worker.
        app = build_app(settings, companion="none", queue=queue_for(settings, clock=clock))
        with running(app) as app_url:
            yield Stack(sim, seeded, sim_url, app_url, settings, clock, root)
