"""The queue's contract, run against every backend: SQLite and PostgreSQL.

The same rules hold whichever store `QUEUE_URL` names: one request per
delivery key, leases, one task per asset at a time, retries and backlog.
Backend-specific behaviour (SQLite's files, PostgreSQL's server going away)
is tested beside each backend.
"""

import anyio
import pytest

from service.queue import Delivery, NewTask, QueueFull, backoff_delay
from service.queue.postgres import PostgresQueue
from service.queue.sqlite import SQLiteQueue
from tests.support.queue import LIMITS, delivery
from tests.support.queue_schema import postgres_database_at, sqlite_file_at


# "-upgraded": a store the first version of the code made, brought through
# every migration step on open (tests/system/queue/test_queue_migrations.py tests each step).
@pytest.fixture(params=["sqlite", "postgres", "sqlite-upgraded", "postgres-upgraded"])
async def queue(request, tmp_path, clock):
    backoff = {"clock": clock, "backoff": lambda attempt: 10.0 * attempt}
    if request.param.startswith("sqlite"):
        if request.param == "sqlite-upgraded":
            sqlite_file_at(tmp_path / "q.db", 1)
        q = SQLiteQueue(tmp_path / "q.db", **LIMITS, **backoff)
    else:
        url = request.getfixturevalue("pg_url")
        if request.param == "postgres-upgraded":
            postgres_database_at(url, 1)
        q = PostgresQueue(url, **LIMITS, **backoff)
    await q.open()
    yield q
    await q.close()


pytestmark = pytest.mark.anyio


async def test_enqueue_then_claim(queue):
    result = await queue.enqueue(delivery(), "req-1")
    assert (result.request_id, result.duplicate) == ("req-1", False)
    task = await queue.claim("w1")
    assert task is not None
    assert (task.request_id, task.kind, task.attempts, task.payload) == (
        "req-1",
        "expand",
        1,
        {"context": "ASSET"},
    )
    assert await queue.claim("w2") is None  # leased to w1


async def test_same_delivery_key_is_one_request(queue):
    first = await queue.enqueue(delivery("same"), "req-a")
    second = await queue.enqueue(delivery("same"), "req-b")
    assert second.request_id == first.request_id == "req-a"
    assert second.duplicate


async def test_concurrent_identical_deliveries_store_one(queue):
    results = []

    async def send(i: int) -> None:
        results.append(await queue.enqueue(delivery("same"), f"req-{i}"))

    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(send, i)
    assert len({r.request_id for r in results}) == 1
    assert sum(not r.duplicate for r in results) == 1
    assert await queue.backlog() == 1  # one request, one task


async def test_expired_lease_is_claimed_again(queue, clock):
    await queue.enqueue(delivery(), "req-1")
    first = await queue.claim("crashed-worker")
    clock.now += 61
    second = await queue.claim("w2")
    assert second is not None and second.task_id == first.task_id
    assert second.attempts == 2
    # The crashed worker can no longer finish it.
    await queue.complete(first)
    status = await queue.request_status("req-1")
    assert status["tasks"][0]["state"] == "running"


async def test_extended_lease_is_not_taken(queue, clock):
    await queue.enqueue(delivery(), "req-1")
    task = await queue.claim("w1")
    clock.now += 50
    await queue.extend_lease(task)
    clock.now += 50
    assert await queue.claim("w2") is None


async def test_a_worker_that_lost_its_lease_cannot_renew_it(queue, clock):
    await queue.enqueue(delivery(), "req-1")
    slow = await queue.claim("slow-worker")
    assert await queue.extend_lease(slow)
    clock.now += 61
    assert await queue.claim("w2") is not None
    assert not await queue.extend_lease(slow)


async def test_a_lapsed_lease_reads_as_waiting_with_the_reason(queue, clock):
    await queue.enqueue(delivery(), "req-1")
    await queue.claim("killed-worker")
    assert (await queue.request_status("req-1"))["tasks"][0]["state"] == "running"
    clock.now += 61
    [task] = (await queue.request_status("req-1"))["tasks"]
    assert task["state"] == "queued"
    assert "stopped renewing the lease" in task["last_error"]


async def _asset_tasks(queue, *asset_ids_by_request):
    for number, asset_id in enumerate(asset_ids_by_request):
        await queue.enqueue(delivery(f"k{number}", NewTask("build", asset_id)), f"req-{number}")


async def test_one_task_per_asset_runs_at_a_time(queue, clock):
    await _asset_tasks(queue, "asset-a", "asset-a", "asset-b")
    first = await queue.claim("w1")
    assert first.asset_id == "asset-a"
    other = await queue.claim("w2")
    assert other.asset_id == "asset-b"  # the second asset-a task waits its turn
    assert await queue.claim("w3") is None
    await queue.complete(first)
    second = await queue.claim("w3")
    assert (second.asset_id, second.request_id) == ("asset-a", "req-1")


async def test_an_asset_whose_worker_died_is_free_once_its_lease_lapses(queue, clock):
    await _asset_tasks(queue, "asset-a", "asset-a")
    await queue.claim("dead-worker")
    assert await queue.claim("w2") is None
    clock.now += 61
    # Both asset-a tasks are due; whichever runs, only one runs.
    taken = await queue.claim("w2")
    assert taken.asset_id == "asset-a"
    assert await queue.claim("w3") is None


async def test_concurrent_claims_never_run_one_asset_twice(queue, clock):
    await _asset_tasks(queue, "asset-a", "asset-a", "asset-b", "asset-b")
    claimed = []

    async def claim(owner: str) -> None:
        task = await queue.claim(owner)
        if task is not None:
            claimed.append(task.asset_id)

    async with anyio.create_task_group() as group:
        for n in range(12):
            group.start_soon(claim, f"w{n}")
    assert sorted(claimed) == ["asset-a", "asset-b"]


async def test_retry_waits_for_backoff_then_fails_after_max_attempts(queue, clock):
    await queue.enqueue(delivery(), "req-1")
    for attempt in (1, 2):
        task = await queue.claim("w")
        assert task.attempts == attempt
        assert await queue.retry(task, f"boom {attempt}")
        assert await queue.claim("w") is None  # not before the backoff
        clock.now += 10.0 * attempt
    task = await queue.claim("w")
    assert task.attempts == 3
    assert not await queue.retry(task, "boom 3")
    status = await queue.request_status("req-1")
    assert status["tasks"][0]["state"] == "failed"
    assert status["tasks"][0]["last_error"] == "boom 3 (gave up after 3 attempts)"
    assert await queue.recent_failures() == [
        {
            "request_id": "req-1",
            "kind": "expand",
            "asset_id": None,
            "attempts": 3,
            "last_error": "boom 3 (gave up after 3 attempts)",
            "updated_at": clock.now,
        }
    ]


async def test_uncounted_retry_does_not_use_up_attempts(queue, clock):
    await queue.enqueue(delivery(), "req-1")
    for _ in range(10):
        task = await queue.claim("w")
        assert task.attempts == 1
        assert await queue.retry(task, "proxy transcoding", delay=5, count_attempt=False)
        clock.now += 5
    assert task.first_claimed_at == 1_000_000.0


async def test_children_are_added_once_per_asset(queue):
    await queue.enqueue(delivery(), "req-1")
    task = await queue.claim("w")
    await queue.complete(
        task, [NewTask("build", "a1"), NewTask("build", "a2"), NewTask("build", "a1")]
    )
    status = await queue.request_status("req-1")
    assert [(t["kind"], t["asset_id"], t["state"]) for t in status["tasks"]] == [
        ("expand", None, "done"),
        ("build", "a1", "queued"),
        ("build", "a2", "queued"),
    ]


async def test_backlog_over_limit_refuses_new_but_answers_duplicates(queue):
    for i in range(5):
        await queue.enqueue(delivery(f"k{i}"), f"req-{i}")
    with pytest.raises(QueueFull) as err:
        await queue.enqueue(delivery("k-new"), "req-new")
    assert err.value.retry_after > 0
    again = await queue.enqueue(delivery("k0"), "req-x")
    assert again.duplicate and again.request_id == "req-0"
    assert await queue.backlog() == 5


def test_backoff_grows_and_is_capped():
    low = [backoff_delay(a, rng=lambda: 0.0) for a in range(1, 12)]
    high = [backoff_delay(a, rng=lambda: 1.0) for a in range(1, 12)]
    assert low[:4] == [1.0, 2.0, 4.0, 8.0]
    assert high[:4] == [2.0, 4.0, 8.0, 16.0]
    assert max(high) == 300.0 and max(low) == 150.0


# -- lanes: webhook events never take a click's room ----------------------------


def event(key: str, kind: str, asset_id: str) -> Delivery:
    return Delivery(key=key, kind="webhook", payload="{}", first_task=NewTask(kind, asset_id))


async def _registry_knows(queue, *asset_ids):
    await queue.fill_registry([(a, f"T [{a}]", "ready") for a in asset_ids])


async def test_an_event_about_an_unknown_asset_is_ignored_once_the_registry_is_filled(queue):
    # Before the registry holds the bundles made before it, any asset may have one.
    assert not (await queue.enqueue(event("e0", "refresh", "a0"), "req-0")).ignored
    await _registry_knows(queue, "known")
    ignored = await queue.enqueue(event("e1", "refresh", "unknown"), "req-1")
    assert (ignored.ignored, ignored.request_id) == (True, None)
    assert not (await queue.enqueue(event("e2", "refresh", "known"), "req-2")).ignored
    # An asset with a task waiting (a build under way) is known too.
    await queue.enqueue(delivery("click", NewTask("build", "building")), "req-3")
    assert not (await queue.enqueue(event("e3", "withdraw", "building"), "req-4")).ignored
    assert (await queue.backlog_by_lane())["event"] == 3


async def test_updates_for_an_asset_with_a_pending_refresh_are_coalesced(queue):
    await _registry_knows(queue, "a1", "a2")
    first = await queue.enqueue(event("e1", "refresh", "a1"), "req-1")
    again = await queue.enqueue(event("e2", "refresh", "a1"), "req-2")
    assert (again.coalesced, again.request_id) == (True, "req-1")
    other = await queue.enqueue(event("e3", "refresh", "a2"), "req-3")
    assert not other.coalesced
    # Once the refresh runs it may already have read Iconik: a new event waits anew.
    running = await queue.claim("w")
    assert (running.request_id, running.kind) == (first.request_id, "refresh")
    later = await queue.enqueue(event("e4", "refresh", "a1"), "req-4")
    assert not later.coalesced and later.request_id == "req-4"
    assert (await queue.backlog_by_lane())["event"] == 3  # req-1 running, req-3, req-4


async def test_a_delete_supersedes_a_pending_refresh(queue):
    await _registry_knows(queue, "a1")
    await queue.enqueue(event("e1", "refresh", "a1"), "req-1")
    await queue.enqueue(event("e2", "withdraw", "a1"), "req-2")
    [refresh] = (await queue.request_status("req-1"))["tasks"]
    assert (refresh["state"], refresh["last_error"]) == ("done", "superseded by a delete event")
    task = await queue.claim("w")
    assert (task.kind, task.request_id) == ("withdraw", "req-2")


async def test_events_over_their_limit_are_refused_while_clicks_still_get_in(queue):
    assets = [f"a{i}" for i in range(6)]
    await _registry_knows(queue, *assets)
    for n, asset_id in enumerate(assets[:5]):
        await queue.enqueue(event(f"e{n}", "refresh", asset_id), f"ev-{n}")
    with pytest.raises(QueueFull) as full:
        await queue.enqueue(event("e5", "refresh", assets[5]), "ev-5")
    assert full.value.lane == "event"
    click = await queue.enqueue(delivery("click"), "click-1")
    assert not click.duplicate and click.request_id == "click-1"


async def test_a_click_goes_before_events_that_waited_less_than_a_minute(queue, clock):
    await _registry_knows(queue, "a1", "a2")
    await queue.enqueue(event("e1", "refresh", "a1"), "event-early")
    clock.now += 30
    await queue.enqueue(delivery("click"), "click")
    for expected in ("click", "event-early"):
        task = await queue.claim("w")
        assert task.request_id == expected
        await queue.complete(task)
    # An event that has waited over a minute longer goes first.
    await queue.enqueue(event("e2", "refresh", "a2"), "event-old")
    clock.now += 61
    await queue.enqueue(delivery("click-2"), "click-2")
    assert (await queue.claim("w")).request_id == "event-old"


async def test_the_bundle_registry_records_and_finds_folders(queue):
    assert not await queue.registry_filled()
    await queue.fill_registry([("a1", "One [a1]", "ready")])
    assert await queue.registry_filled()
    await queue.record_bundle("a2", "Two [a2]", "publishing")
    await queue.record_bundle("a2", "Two [a2]", "ready")
    await queue.record_bundle("a1", "One [a1]", "withdrawn")
    await queue.fill_registry([("a1", "One [a1]", "ready")])  # a second fill changes nothing
    assert await queue.bundle_folders("a1") == ["One [a1]"]
    assert await queue.bundle_folders("missing") == []
    assert await queue.bundle_folders() == ["One [a1]", "Two [a2]"]
    assert await queue.bundle_records() == [
        ("a1", "One [a1]", "withdrawn"),
        ("a2", "Two [a2]", "ready"),
    ]
    assert await queue.bundle_records("Two [a2]") == [("a2", "Two [a2]", "ready")]
    assert await queue.bundle_records("Nowhere [a9]") == []


async def test_the_backlog_count_follows_every_change_of_state(queue, clock):
    # The 429 decision and backlog() read a counter the transactions keep,
    # not a COUNT(*): it must follow claims, children, retries and failures.
    for i in range(4):
        await queue.enqueue(delivery(f"k{i}"), f"req-{i}")
    done, retried, failed = [await queue.claim(f"w{n}") for n in range(3)]
    assert await queue.backlog() == 4  # 1 queued + 3 running
    await queue.complete(done, [NewTask("build", "a1"), NewTask("build", "a2")])
    await queue.retry(retried, "boom")
    await queue.fail(failed, "no")
    assert await queue.backlog() == 4  # 4 queued, none running
    await queue.enqueue(delivery("k4"), "req-4")  # the fifth queued task fits...
    with pytest.raises(QueueFull):
        await queue.enqueue(delivery("k5"), "req-5")  # ...the sixth does not
    clock.now += 100
    while (task := await queue.claim("w")) is not None:
        await queue.complete(task)
    assert await queue.backlog() == 0


SEALED = "sealed-token"  # what intake stores: opaque to the queue


def click(key: str = "k1") -> Delivery:
    return Delivery(
        key=key,
        kind="custom_action",
        payload='{"context": "BULK"}',
        first_task=NewTask("expand"),
        user_token=SEALED,
    )


async def test_the_user_token_goes_to_the_expand_task_only_and_is_deleted_when_it_ends(
    queue, clock
):
    await queue.enqueue(click("k1"), "req-1")
    await queue.enqueue(click("k2"), "req-2")
    one = await queue.claim("w1")
    assert one.user_token == "sealed-token" and "sealed-token" not in repr(one)
    # A retried expand keeps it for its next attempt.
    await queue.retry(one, "Iconik down", delay=0)
    one = await queue.claim("w1")
    assert one.kind == "expand" and one.user_token == "sealed-token"
    clock.now += 1  # the build child comes after the other click's expand
    await queue.complete(one, [NewTask("build", "a1")])
    two = await queue.claim("w1")
    assert two.kind == "expand" and two.user_token == "sealed-token"
    await queue.fail(two, "the token expired")
    # Gone once each expand ended, done or failed; a build never sees it.
    build = await queue.claim("w1")
    assert (build.kind, build.user_token) == ("build", None)
    await queue.complete(build)
    await queue.enqueue(click("k3"), "req-3")
    three = await queue.claim("w1")
    assert three.request_id == "req-3" and three.user_token == "sealed-token"
    # A lapsed lease hands the task, token and all, to the next worker.
    clock.now += 61
    again = await queue.claim("w2")
    assert again.task_id == three.task_id and again.user_token == "sealed-token"
    for request_id in ("req-1", "req-2"):
        status = await queue.request_status(request_id)
        assert "sealed-token" not in repr(status)
    assert await _stored_tokens(queue) == {"req-1": None, "req-2": None, "req-3": "sealed-token"}


async def _stored_tokens(queue) -> dict[str, str | None]:
    if isinstance(queue, SQLiteQueue):
        import sqlite3

        with sqlite3.connect(queue.path) as db:
            rows = db.execute("SELECT request_id, user_token FROM requests").fetchall()
    else:
        import psycopg

        async with await psycopg.AsyncConnection.connect(queue.url) as db:
            cursor = await db.execute("SELECT request_id, user_token FROM requests")
            rows = await cursor.fetchall()
    return dict(rows)


async def test_children_stored_failed_and_a_note_on_the_expand(queue):
    await queue.enqueue(click(), "req-1")
    expand = await queue.claim("w1")
    children = [NewTask("build", "a1"), NewTask("build", "a2", failed="may not read it")]
    await queue.complete(expand, children, note="read as the user")
    status = await queue.request_status("req-1")
    tasks = {t["asset_id"]: (t["state"], t["last_error"]) for t in status["tasks"]}
    assert tasks == {
        None: ("done", "read as the user"),
        "a1": ("queued", None),
        "a2": ("failed", "may not read it"),
    }
    assert await queue.backlog() == 1  # the failed child waits for nothing
    build = await queue.claim("w1")
    assert build.asset_id == "a1" and await queue.claim("w2") is None


# -- retention: finished requests go after RETENTION_DAYS, nothing else -------

DAY = 86_400.0


async def _finish_all(queue, owner="w"):
    while (task := await queue.claim(owner)) is not None:
        await queue.complete(task)


async def _prune_all(queue, older_than, **limits):
    batches = []
    while (deleted := await queue.prune(older_than, **limits)) > 0:
        batches.append(deleted)
    return batches


async def test_finished_requests_older_than_the_window_are_deleted_with_their_tasks(queue, clock):
    await queue.enqueue(delivery("old"), "old")
    await _finish_all(queue)
    clock.now += 10 * DAY
    await queue.enqueue(delivery("recent"), "recent")
    await _finish_all(queue)
    clock.now += 1 * DAY
    # "old" finished 11 days ago, "recent" 1 day ago: a 7-day window keeps one.
    assert await _prune_all(queue, 7 * DAY) == [1]
    assert await queue.request_status("old") is None
    assert (await queue.request_status("recent"))["tasks"][0]["state"] == "done"
    # Its delivery key went with it: the same delivery later is a new request.
    again = await queue.enqueue(delivery("old"), "old-again")
    assert (again.request_id, again.duplicate) == ("old-again", False)


async def test_an_unfinished_request_is_never_deleted_however_old(queue, clock):
    await queue.enqueue(delivery("waiting"), "waiting")
    await queue.enqueue(delivery("running"), "running")
    await queue.enqueue(delivery("expanded"), "expanded")
    tasks = {t.request_id: t for t in [await queue.claim(f"w{n}") for n in range(3)]}
    await queue.retry(tasks["waiting"], "later", delay=400 * DAY, count_attempt=False)
    # An expand that finished long ago, one of whose assets still builds.
    await queue.complete(tasks["expanded"], [NewTask("build", "a1")])
    build = await queue.claim("w")
    clock.now += 365 * DAY
    await queue.extend_lease(tasks["running"])
    await queue.extend_lease(build)
    assert await _prune_all(queue, 7 * DAY) == []
    for request_id in ("waiting", "running", "expanded"):
        assert await queue.request_status(request_id) is not None


async def test_a_request_changed_within_the_window_is_kept(queue, clock):
    await queue.enqueue(delivery("slow"), "slow")
    task = await queue.claim("w")
    clock.now += 30 * DAY
    await queue.fail(task, "gave up")  # received 30 days ago, finished just now
    clock.now += 1 * DAY
    assert await _prune_all(queue, 7 * DAY) == []
    clock.now += 7 * DAY
    assert await _prune_all(queue, 7 * DAY) == [1]


async def test_pruning_goes_in_batches_bounded_by_tasks_and_keeps_the_registry(queue, clock):
    await _registry_knows(queue, "a0", "a1", "a2")
    await queue.record_bundle("a3", "Three [a3]", "ready")
    for n in range(3):
        await queue.enqueue(delivery(f"click-{n}"), f"click-{n}")
        clock.now += 1
    expand = await queue.claim("w")
    assert expand.request_id == "click-0"
    await queue.complete(expand, [NewTask("build", f"a{i}") for i in range(4)])  # 5 tasks
    await _finish_all(queue)
    clock.now += 100 * DAY
    # A budget of 2 tasks: the oldest, of 5 tasks, still goes (alone), then
    # the two others (a task each) together.
    assert await _prune_all(queue, 90 * DAY, max_tasks=2) == [1, 2]
    for n in range(3):
        assert await queue.request_status(f"click-{n}") is None
    assert await queue.bundle_folders("a3") == ["Three [a3]"]
    assert len(await queue.bundle_records()) == 4
    assert await queue.backlog() == 0


async def test_the_failure_count_follows_failures_and_retention(queue, clock):
    assert await queue.failure_count() == 0
    for n in range(3):
        await queue.enqueue(delivery(f"k{n}"), f"req-{n}")
    tasks = [await queue.claim(f"w{n}") for n in range(3)]
    for task in tasks[:2]:
        await queue.fail(task, "no")
    await queue.complete(tasks[2])
    assert await queue.failure_count() == 2
    assert len(await queue.recent_failures(limit=1)) == 1
    clock.now += 100 * DAY
    await _prune_all(queue, 90 * DAY)
    assert await queue.failure_count() == 0
    assert await queue.recent_failures() == []


async def test_caption_deliveries_are_the_latest_of_those_assets(queue, clock):
    from service.queue import RequestKind, TaskKind

    for n in range(5):
        clock.now += 1
        for asset_id in ("a1", "a2"):
            key = f"deliver:{asset_id}:{n}"
            payload = f'{{"path": "deliver/{n}.srt", "asset_id": "{asset_id}"}}'
            d = Delivery(key, RequestKind.DELIVER, payload, NewTask(TaskKind.DELIVER, asset_id))
            await queue.enqueue(d, f"{asset_id}-{n}")
        # Builds of the same assets are history, not deliveries.
        await queue.enqueue(delivery(f"b{n}", NewTask("build", "a1")), f"build-{n}")
        await _finish_all(queue)  # (the backlog's limit is 5)
    found = await queue.caption_deliveries(["a1"], limit=3)
    assert [d["request_id"] for d in found] == ["a1-2", "a1-3", "a1-4"]
    assert found[-1]["payload"]["path"] == "deliver/4.srt"


async def test_events_arriving_together_leave_one_pending_refresh(queue):
    await _registry_knows(queue, "a1")
    results = []

    async def send(n: int) -> None:
        kind = "withdraw" if n == 7 else "refresh"
        results.append(await queue.enqueue(event(f"e{n}", kind, "a1"), f"req-{n}"))

    async with anyio.create_task_group() as group:
        for n in range(12):
            group.start_soon(send, n)
    stored = [r for r in results if not (r.coalesced or r.duplicate or r.ignored)]
    # However they were batched: a refresh before the delete (superseded by
    # it), the delete, a refresh after it; every other update coalesced.
    assert 1 <= len(stored) <= 3
    assert "req-7" in {r.request_id for r in stored}
    tasks = []
    while (task := await queue.claim("w")) is not None:
        tasks.append(task.kind)
        await queue.complete(task)
    assert tasks.count("withdraw") == 1 and tasks.count("refresh") <= 1


async def test_a_lease_is_held_by_one_holder_until_released_or_expired(queue):
    assert await queue.take_lease("deliver-scan", "a", 60)
    assert await queue.take_lease("deliver-scan", "a", 60)  # renewed by its holder
    assert not await queue.take_lease("deliver-scan", "b", 60)
    assert await queue.take_lease("registry-fill", "b", 60)  # another name: its own lease
    await queue.release_lease("deliver-scan", "b")  # not b's: nothing happens
    assert not await queue.take_lease("deliver-scan", "b", 60)
    await queue.release_lease("deliver-scan", "a")
    assert await queue.take_lease("deliver-scan", "b", 0)
    assert await queue.take_lease("deliver-scan", "a", 60)  # b's expired at once


async def test_concurrent_takers_get_one_lease(queue):
    holders = [f"h{i}" for i in range(8)]
    won: list[str] = []

    async def take(holder: str) -> None:
        if await queue.take_lease("deliver-scan", holder, 60):
            won.append(holder)

    async with anyio.create_task_group() as group:
        for holder in holders:
            group.start_soon(take, holder)
    assert len(won) == 1


async def test_retired_folders_leave_the_registry(queue):
    await queue.record_bundle("a1", "A [a1]", "ready")
    await queue.record_bundle("a2", "B [a2]", "ready")
    await queue.record_bundle("a3", "B [a2]", "ready")  # two records of one folder
    await queue.retire_bundles(["B [a2]", "gone"])
    assert await queue.bundle_records() == [("a1", "A [a1]", "ready")]
