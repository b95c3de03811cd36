"""The job reporter's ordering, against a fake jobs API that can hold a write.

The queue is the real SQLite one; Iconik is an `httpx2.MockTransport` that
applies writes in the order they complete, as Iconik would, so a held PATCH
lands after anything sent meanwhile.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
import pytest

from service.iconik.client import IconikClient
from service.queue import Delivery, NewTask, Task
from service.queue.sqlite import SQLiteQueue
from service.work.iconik_jobs import JobReporter
from tests.support.stack import VirtualTime

pytestmark = pytest.mark.anyio

REQUEST = "req-1"

JOB_ID = "0b000000-0000-4000-8000-000000000b01"  # Iconik ids are UUIDs


@dataclass
class Hold:
    """Keeps one write from being applied until released."""

    arrived: anyio.Event = field(default_factory=anyio.Event)
    release: anyio.Event = field(default_factory=anyio.Event)


class FakeJobsApi:
    """Iconik's jobs API in memory, shared by several "processes" (clients)."""

    def __init__(self) -> None:
        self.applied: list[tuple[str, str, dict[str, Any]]] = []  # (process, method, body)
        self.holds: dict[tuple[str, str], list[Hold]] = {}
        self._applied_more = anyio.Event()

    def hold(self, process: str, method: str) -> Hold:
        """Hold the next `method` write of `process`."""
        hold = Hold()
        self.holds.setdefault((process, method), []).append(hold)
        return hold

    def client(self, process: str) -> IconikClient:
        async def handle(request: httpx2.Request) -> httpx2.Response:
            return await self._handle(process, request)

        return IconikClient(
            "https://iconik.test", "app", "token", transport=httpx2.MockTransport(handle)
        )

    async def _handle(self, process: str, request: httpx2.Request) -> httpx2.Response:
        if request.method == "GET":  # the asset, for a one-asset job's title
            return httpx2.Response(200, json={"id": "a0", "title": "Clip"})
        holds = self.holds.get((process, request.method))
        if holds:
            hold = holds.pop(0)
            hold.arrived.set()
            await hold.release.wait()
        body = json.loads(request.content)
        self.applied.append((process, request.method, body))
        self._applied_more.set()
        return httpx2.Response(201 if request.method == "POST" else 200, json={"id": JOB_ID})

    async def wait_for(self, count: int) -> None:
        while len(self.applied) < count:
            self._applied_more = anyio.Event()
            await self._applied_more.wait()

    def states(self, process: str | None = None) -> list[tuple[str, int | None]]:
        return [
            (body["status"], body.get("progress_processed"))
            for who, _, body in self.applied
            if process in (None, who)
        ]


class ManualTime:
    """A clock that moves when the test says; a sleeper wakes once its time has come."""

    def __init__(self) -> None:
        self.now = 0.0
        self.naps: list[float] = []
        self.napping = anyio.Event()
        self._alarms: list[tuple[float, anyio.Event]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.naps.append(seconds)
        alarm = anyio.Event()
        self._alarms.append((self.now + seconds, alarm))
        self.napping.set()
        await alarm.wait()

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for when, alarm in self._alarms:
            if when <= self.now:
                alarm.set()


async def expanded_request(queue: SQLiteQueue, assets: list[str]) -> list[Task]:
    """A custom action expanded into `assets`; their build tasks, claimed."""
    payload = json.dumps({"context": "BULK", "asset_ids": assets})
    await queue.enqueue(Delivery("key-1", "custom_action", payload, NewTask("expand")), REQUEST)
    expand = await queue.claim("worker")
    assert expand is not None
    await queue.complete(expand, [NewTask("build", a) for a in assets])
    builds = [await queue.claim("worker") for _ in assets]
    assert all(builds)
    return builds  # type: ignore[return-value]


@pytest.fixture
async def queue(tmp_path):
    queue = SQLiteQueue(tmp_path / "queue.db")
    await queue.open()
    yield queue
    await queue.close()


async def test_a_later_state_waits_for_a_delayed_patch_and_is_the_last_write(queue):
    api = FakeJobsApi()
    builds = await expanded_request(queue, ["a0", "a1", "a2"])
    time = VirtualTime()
    with anyio.fail_after(10):
        async with api.client("p") as iconik:
            jobs = JobReporter(iconik, queue, clock=time, sleep=time.sleep)
            async with jobs.running():
                await jobs.start(REQUEST, ["a0", "a1", "a2"])
                await api.wait_for(1)  # the job, STARTED at 0 of 3

                held = api.hold("p", "PATCH")
                await queue.complete(builds[0])
                await jobs.progress(REQUEST)
                await held.arrived.wait()  # STARTED 1 of 3 is on its way, slowly

                await queue.complete(builds[1])
                await queue.complete(builds[2])
                # Returns although the PATCH before is still held: a worker
                # slot never waits on a slow report.
                await jobs.progress(REQUEST)
                await jobs.progress(REQUEST)
                assert api.states() == [("STARTED", 0)]
                held.release.set()
    assert api.states() == [("STARTED", 0), ("STARTED", 1), ("FINISHED", 3)]


async def test_a_final_state_from_another_process_is_sent_again_after_a_late_patch(queue, tmp_path):
    api = FakeJobsApi()
    builds = await expanded_request(queue, ["a0", "a1"])
    other_queue = SQLiteQueue(tmp_path / "queue.db")  # the second process's own connection
    await other_queue.open()
    time = VirtualTime()
    with anyio.fail_after(10):
        async with api.client("p1") as one, api.client("p2") as two:
            first = JobReporter(one, queue, clock=time, sleep=time.sleep)
            second = JobReporter(two, other_queue, clock=time, sleep=time.sleep)
            async with first.running(), second.running():
                await first.start(REQUEST, ["a0", "a1"])
                await first.flush()

                held = api.hold("p1", "PATCH")
                await queue.complete(builds[0])
                await first.progress(REQUEST)
                await held.arrived.wait()  # p1's STARTED 1 of 2 is delayed (a 429 retry)

                await queue.complete(builds[1])
                await second.progress(REQUEST)
                await second.flush()
                assert api.states()[-1] == ("FINISHED", 2)  # p2 finished the job first

                held.release.set()  # p1's STARTED lands after it...
                await first.flush()
    await other_queue.close()
    # ...and p1, having sent a non-final state, sends the final one after it.
    assert api.states("p1") == [("STARTED", 0), ("STARTED", 1), ("FINISHED", 2)]
    assert api.states()[-2:] == [("STARTED", 1), ("FINISHED", 2)]


async def test_started_updates_are_coalesced_to_one_a_second_and_the_final_is_not_held(queue):
    api = FakeJobsApi()
    builds = await expanded_request(queue, ["a0", "a1", "a2", "a3"])
    time = ManualTime()
    with anyio.fail_after(10):
        async with api.client("p") as iconik:
            jobs = JobReporter(iconik, queue, clock=time, sleep=time.sleep)
            async with jobs.running():
                await jobs.start(REQUEST, ["a0", "a1", "a2", "a3"])
                await api.wait_for(1)  # at t=0

                time.advance(0.25)
                await queue.complete(builds[0])
                await jobs.progress(REQUEST)
                await time.napping.wait()  # too soon after the last write: it waits
                await queue.complete(builds[1])
                await jobs.progress(REQUEST)  # still STARTED: the pause goes on
                time.advance(0.75)
                await api.wait_for(2)  # one PATCH for both assets, at t=1
                assert api.states() == [("STARTED", 0), ("STARTED", 2)]

                time.advance(0.25)
                time.napping = anyio.Event()
                await queue.complete(builds[2])
                await jobs.progress(REQUEST)
                await time.napping.wait()  # 3 of 4 waits its turn...
                await queue.complete(builds[3])
                await jobs.progress(REQUEST)
                await api.wait_for(3)  # ...but the final state cuts the pause short
                assert time.now == 1.25 and time.naps == [0.75, 0.75]
    assert api.states() == [("STARTED", 0), ("STARTED", 2), ("FINISHED", 4)]


async def test_reports_during_a_slow_create_make_one_job(queue):
    api = FakeJobsApi()
    builds = await expanded_request(queue, ["a0", "a1"])
    time = VirtualTime()
    with anyio.fail_after(10):
        async with api.client("p") as iconik:
            jobs = JobReporter(iconik, queue, clock=time, sleep=time.sleep)
            async with jobs.running():
                held = api.hold("p", "POST")
                await jobs.start(REQUEST, ["a0", "a1"])
                await held.arrived.wait()
                for build in builds:
                    await queue.complete(build)
                    await jobs.progress(REQUEST)
                held.release.set()
    assert [method for _, method, _ in api.applied] == ["POST", "PATCH"]
    assert api.states() == [("STARTED", 0), ("FINISHED", 2)]
    status = await queue.request_status(REQUEST)
    assert status is not None and status["job_id"] == JOB_ID


async def test_leaving_running_flushes_a_paused_update(queue):
    api = FakeJobsApi()
    builds = await expanded_request(queue, ["a0", "a1"])
    time = ManualTime()
    with anyio.fail_after(10):
        async with api.client("p") as iconik:
            jobs = JobReporter(iconik, queue, clock=time, sleep=time.sleep)
            async with jobs.running():
                await jobs.start(REQUEST, ["a0", "a1"])
                await api.wait_for(1)
                await queue.complete(builds[0])
                await jobs.progress(REQUEST)
                await time.napping.wait()  # paused by the throttle; the clock never moves
    # A stopping worker sends what it holds rather than waiting out the pause.
    assert api.states() == [("STARTED", 0), ("STARTED", 1)]
