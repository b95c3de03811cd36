"""The Iconik rate limiter under a fake clock, and a 429 from the simulator over HTTP."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from service.iconik.client import IconikClient
from service.iconik.ratelimit import LocalBudget, RateLimiter, default_burst, pause_for
from simulator import Simulator
from tests.support.servers import running

pytestmark = pytest.mark.anyio


class FakeTime:
    """A clock that moves only when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await anyio.lowlevel.checkpoint()


def most_in_any_second(starts: list[float]) -> int:
    starts = sorted(starts)
    return max(
        sum(1 for t in starts[i:] if t < start + 1.0 - 1e-9) for i, start in enumerate(starts)
    )


def test_the_burst_is_a_few_tokens_never_above_iconiks_limit():
    assert default_burst(45) == 3
    assert default_burst(48) == 2
    assert default_burst(50) == default_burst(1000) == 1  # always at least one call


async def test_no_second_sees_more_than_rate_plus_burst_calls_start():
    time = FakeTime()
    limiter = RateLimiter(45, clock=time, sleep=time.sleep)
    starts: list[float] = []

    async def worker(pauses: bool) -> None:
        for n in range(60):
            await limiter.acquire()
            starts.append(time.now)
            if pauses and n % 20 == 19:
                await time.sleep(2.5)  # an idle spell lets the bucket refill

    async with anyio.create_task_group() as group:
        for w in range(8):
            group.start_soon(worker, w % 2 == 0)
    assert len(starts) == 480
    assert most_in_any_second(starts) <= 45 + limiter.burst


async def test_the_limiter_is_a_pacer_not_a_brake():
    time = FakeTime()
    limiter = RateLimiter(45, clock=time, sleep=time.sleep)

    async def worker() -> None:
        for _ in range(60):
            await limiter.acquire()

    async with anyio.create_task_group() as group:
        for _ in range(8):
            group.start_soon(worker)
    # 480 calls: the burst at once, then one every 1/45 s.
    assert time.now - 1000.0 == pytest.approx((480 - limiter.burst) / 45)


async def test_a_429_pauses_every_caller_then_resumes_at_the_rate():
    time = FakeTime()
    limiter = RateLimiter(45, clock=time, sleep=time.sleep)
    starts: list[float] = []

    async def worker() -> None:
        for _ in range(20):
            await limiter.acquire()
            starts.append(time.now)

    async with anyio.create_task_group() as group:
        for _ in range(4):
            group.start_soon(worker)
        await anyio.lowlevel.checkpoint()
        paused_at = time.now
        await limiter.pause(3.0)
    after = [t for t in starts if t > paused_at]
    assert after and min(after) >= paused_at + 3.0
    assert most_in_any_second(after) <= 45 + 1  # no burst after a pause


def test_what_pauses_everyone():
    assert pause_for(429, {"retry-after": "7"}) == 7.0
    assert pause_for(429, {}) == 1.0  # Iconik's shortest window
    assert pause_for(429, {"retry-after": "soon"}) == 1.0
    assert pause_for(200, {"ratelimit-remaining": "0", "ratelimit-reset": "4"}) == 4.0
    assert pause_for(200, {"ratelimit-remaining": "12"}) is None
    assert pause_for(503, {"retry-after": "7"}) is None  # a 503 is the caller's own backoff


async def test_local_budget_grants_what_is_due_and_says_when_the_next_is():
    time = FakeTime()
    budget = LocalBudget(10, 3, clock=time)
    assert (await budget.take(5)).tokens == 3
    empty = await budget.take(1)
    assert empty.tokens == 0 and empty.wait == pytest.approx(0.1)


async def test_a_429_from_iconik_pauses_all_workers_of_the_process(tmp_path):
    """Over real HTTP: one worker's 429 holds every other worker's next call."""
    sim = Simulator("app", "tok")
    asset = sim.add_asset("a", "A")
    sim.retry_after = "2"
    time = FakeTime()
    limiter = RateLimiter(45, clock=time, sleep=time.sleep)
    sent: list[tuple[float, str]] = []
    pauses: list[float] = []
    real_pause = limiter.pause

    async def recorded_pause(seconds: float) -> None:
        pauses.append(time.now)
        await real_pause(seconds)

    limiter.pause = recorded_pause  # type: ignore[method-assign]
    with running(sim.app()) as url:
        async with IconikClient(url, "app", "tok", limiter=limiter) as client:

            async def on_request(request):
                sent.append((time.now, request.url.path))

            client._transport.http.event_hooks["request"].append(on_request)
            sim.fail_next("/assets/v1/assets/", 429)

            async def worker() -> None:
                for _ in range(5):
                    await client.get_asset(asset.asset["id"])

            async with anyio.create_task_group() as group:
                for _ in range(4):
                    group.start_soon(worker)
    assert len(pauses) == 1
    after = [t for t, _ in sent if t > pauses[0]]
    # Every call that started after the 429 waited out its Retry-After.
    assert len(after) >= 15 and min(after) >= pauses[0] + 2.0
    assert sim.requests.count(("GET", f"/API/assets/v1/assets/{asset.asset['id']}/")) == 21
