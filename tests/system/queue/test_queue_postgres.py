"""PostgreSQL-only behaviour of the queue: migrations, NOTIFY, a server that goes away."""

import anyio
import psycopg
import pytest

from service.queue import Delivery, Enqueued, NewTask, QueueUnavailable
from service.queue.postgres import PostgresQueue
from service.queue.postgres_store import describe, migration_steps
from tests.support.clock import FakeClock
from tests.support.postgres import PASSWORD
from tests.support.queue import delivery

pytestmark = pytest.mark.anyio


def test_migration_steps_are_numbered_in_order():
    versions = [version for version, _ in migration_steps()]
    assert versions == list(range(1, len(versions) + 1))
    assert all(sql.strip() for _, sql in migration_steps())


def test_the_description_never_carries_the_password():
    url = "postgresql://bridge:hunter2@db.internal:5433/captions"
    assert describe(url) == "PostgreSQL queue at db.internal:5433/captions"


async def test_replicas_starting_at_once_migrate_once(pg_url):
    replicas = [PostgresQueue(pg_url) for _ in range(4)]
    async with anyio.create_task_group() as group:
        for replica in replicas:
            group.start_soon(replica.open)
    try:
        with psycopg.connect(pg_url) as connection:
            versions = connection.execute("SELECT version FROM schema_version").fetchall()
        assert versions == [(v,) for v, _ in migration_steps()]
        # Reopening an up-to-date database changes nothing.
        await replicas[0].close()
        await replicas[0].open()
        assert await replicas[0].backlog() == 0
    finally:
        for replica in replicas:
            await replica.close()


async def test_an_idle_worker_on_another_replica_is_woken_by_a_new_task(pg_url):
    receiver, worker = PostgresQueue(pg_url), PostgresQueue(pg_url)
    await receiver.open()
    await worker.open()
    try:
        woken = anyio.Event()

        async def idle_worker() -> None:
            await worker.wait_for_work(at_most=60)
            woken.set()

        async with anyio.create_task_group() as group:
            group.start_soon(idle_worker)
            await anyio.wait_all_tasks_blocked()
            await receiver.enqueue(delivery("k1"), "req-1")
            # Far less than the 60 s poll: NOTIFY woke it.
            with anyio.fail_after(10):
                await woken.wait()
        assert (await worker.claim("w")).request_id == "req-1"
    finally:
        await receiver.close()
        await worker.close()


@pytest.mark.slow
async def test_a_stopped_server_is_unavailable_quickly_then_recovers(pg_cluster, pg_url):
    queue = PostgresQueue(pg_url, clock=FakeClock(), timeout=2.0)
    await queue.open()
    try:
        await queue.enqueue(delivery("before"), "req-0")
        pg_cluster.stop()
        try:
            with anyio.fail_after(5):  # Iconik's deadline is ~10 s; 503 well before
                with pytest.raises(QueueUnavailable) as outage:
                    await queue.enqueue(delivery("during"), "req-1")
            with anyio.fail_after(5), pytest.raises(QueueUnavailable):
                await queue.ping()
        finally:
            pg_cluster.start()
        assert PASSWORD not in str(outage.value)
        assert str(outage.value).startswith("PostgreSQL queue at 127.0.0.1:")
        # Back without reopening the queue: the pool reconnects by itself.
        with anyio.fail_after(15):
            while True:
                try:
                    result = await queue.enqueue(delivery("during"), "req-1")
                    break
                except QueueUnavailable:
                    await anyio.sleep(0.2)  # bounded by fail_after above
        assert result == Enqueued("req-1", duplicate=False)
        await queue.ping()
    finally:
        await queue.close()


async def test_replicas_share_one_rate_budget_and_one_pause(pg_url):
    from service.queue.postgres_budget import PostgresBudget

    queue = PostgresQueue(pg_url)
    await queue.open()  # creates the budget's table and functions
    await queue.close()
    rate, burst = 20.0, 3
    replicas = [PostgresBudget(pg_url, rate, burst) for _ in range(3)]
    granted: list[float] = []

    async def draw(budget: PostgresBudget) -> None:
        while len(granted) < 40:
            grant = await budget.take(burst)
            if grant.tokens:
                granted.extend([anyio.current_time()] * grant.tokens)
            else:
                await anyio.sleep(grant.wait)

    try:
        started = anyio.current_time()
        async with anyio.create_task_group() as group:
            for budget in replicas:
                group.start_soon(draw, budget)
        # However many replicas draw, tokens beyond the first burst come at
        # the one shared rate: three private buckets would take a third of this.
        # (From before the first draw: on a loaded machine the first grant can
        # be seen late, which shortened a span measured from it below the rate.)
        span = max(granted) - started
        assert span >= (len(granted) - burst - 1) / rate
        await replicas[0].pause(30)
        paused = await replicas[1].take(1)
        assert paused.tokens == 0 and 25 < paused.wait <= 30
    finally:
        for budget in replicas:
            await budget.aclose()


async def test_a_database_from_before_retention_is_upgraded(pg_url):
    """Version 3 with failed tasks: step 4 counts them, and intake goes on."""
    with psycopg.connect(pg_url) as connection:
        connection.execute(
            "CREATE TABLE schema_version"
            " (version integer PRIMARY KEY, applied_at double precision NOT NULL)"
        )
        for version, sql in migration_steps()[:3]:
            connection.execute(sql)
            connection.execute("INSERT INTO schema_version VALUES (%s, 0)", (version,))
        connection.execute(
            "INSERT INTO requests VALUES ('r1', 'k1', 'custom_action', '{}', 1, NULL)"
        )
        connection.execute(
            "INSERT INTO tasks (task_id, request_id, kind, state, not_before, created_at,"
            " updated_at) VALUES ('t1', 'r1', 'expand', 'failed', 1, 1, 1)"
        )
    queue = PostgresQueue(pg_url, clock=FakeClock())
    await queue.open()
    try:
        assert await queue.failure_count() == 1
        assert (await queue.enqueue(delivery("k2"), "r2")).request_id == "r2"
        assert (await queue.enqueue(delivery("k1"), "r3")).duplicate
    finally:
        await queue.close()


async def test_deliveries_arriving_together_share_one_statement(pg_url):
    queue = PostgresQueue(pg_url, max_backlog=10_000)
    await queue.open()
    batches: list[int] = []
    write = queue._intake._write

    async def counted(items):
        batches.append(len(items))
        return await write(items)

    queue._intake._write = counted
    try:
        results = []

        async def send(n: int) -> None:
            results.append(await queue.enqueue(delivery(f"k{n}"), f"req-{n}"))

        async with anyio.create_task_group() as group:
            for n in range(300):
                group.start_soon(send, n)
        assert sorted(r.request_id for r in results) == sorted(f"req-{n}" for n in range(300))
        assert sum(batches) == 300 and len(batches) < 300 / 4  # in batches, not one each
        assert await queue.backlog() == 300
    finally:
        await queue.close()


async def test_a_delivery_the_database_refuses_fails_alone(pg_url):
    queue = PostgresQueue(pg_url, max_backlog=10_000)
    await queue.open()
    try:
        refused = Delivery("bad", "custom_action", '{"text": "nul \\u0000"}', NewTask("expand"))
        outcomes = []

        async def send(d, request_id) -> None:
            try:
                outcomes.append(await queue.enqueue(d, request_id))
            except QueueUnavailable as exc:
                outcomes.append(exc)

        async with anyio.create_task_group() as group:
            for n in range(20):
                group.start_soon(send, delivery(f"k{n}"), f"req-{n}")
            group.start_soon(send, refused, "req-bad")
        errors = [o for o in outcomes if isinstance(o, QueueUnavailable)]
        assert len(errors) == 1 and PASSWORD not in str(errors[0])
        assert await queue.backlog() == 20
        assert await queue.request_status("req-bad") is None
    finally:
        await queue.close()


async def test_replicas_pruning_at_once_delete_each_request_once(pg_url):
    from tests.support.queue_fill import History, fill_postgres

    clock = FakeClock()
    replicas = [PostgresQueue(pg_url, clock=clock) for _ in range(3)]
    for replica in replicas:
        await replica.open()
    fill_postgres(pg_url, History(n=3_000, start=clock.now - 200 * 86_400, spacing=60.0))
    deleted: list[int] = []

    async def prune(replica: PostgresQueue) -> None:
        while (n := await replica.prune(90 * 86_400, max_tasks=100)) > 0:
            deleted.append(n)

    try:
        async with anyio.create_task_group() as group:
            for replica in replicas:
                group.start_soon(prune, replica)
        assert sum(deleted) == 3_000
        assert await replicas[0].failure_count() == 0
    finally:
        for replica in replicas:
            await replica.close()
