"""Every status and retention statement uses its index on a filled queue, both backends.

The queue is filled with 100k (SQLite) or 20k (PostgreSQL) finished
requests (tests/support/queue_fill.py, bulk SQL) and its statistics taken (the
service never runs ANALYZE on SQLite, but an operator may; on PostgreSQL
autovacuum does); then each statement's plan must name its index and read
no table whole (SQLite's EXPLAIN QUERY PLAN; PostgreSQL's EXPLAIN, with a
custom plan and with the generic plan a prepared statement switches to).
"""

import dataclasses
import json
import re
import sqlite3

import anyio
import psycopg
import pytest

from service.queue import postgres as pg_queue
from service.queue import postgres_history as pg
from service.queue import sqlite_sql as sql
from service.queue import work_sql
from service.queue.postgres import PostgresQueue
from service.queue.sqlite import SQLiteQueue
from tests.support.queue_fill import History, fill_postgres, fill_sqlite

HISTORY = History(n=20_000, start=1_000_000.0, assets=500)
MIDDLE = HISTORY.start + HISTORY.n * HISTORY.spacing / 2
ASSETS = [f"ha{n}" for n in range(0, 1000, 5)][:100]  # a 100-asset click's assets

# The indexes that lead with the asset, so read one asset's tasks only (the
# planner picks any, by the statistics of the moment).
ONE_ASSETS_TASKS = ("tasks_deliveries", "tasks_by_asset", "tasks_pending_refresh")

# (statement, parameters, the index its plan must use, or one of these)
SQLITE_READS = [
    (sql.RECENT_FAILURES, (20,), "tasks_failed"),
    (sql.CAPTION_DELIVERIES, (json.dumps(ASSETS), 100), "tasks_deliveries"),
    (sql.REQUEST, ("hr77",), "sqlite_autoindex_requests_1"),
    (sql.REQUEST_TASKS, ("hr77",), "tasks_once"),
    (sql.BUNDLE_FOLDERS_OF, ("ha7",), "sqlite_autoindex_bundles_1"),
    (sql.BUNDLE_RECORDS_OF, ("Title [ha7]",), "bundles_by_folder"),
    (sql.EXPIRED, {"cutoff": MIDDLE, "candidates": 200}, "requests_by_time"),
    # Not a status read, but every worker's, and the one statistics turned.
    (sql.CLAIM, {"now": MIDDLE}, "tasks_ready"),
    # What a folder delivered, read by each build that records its work:
    # the asset's deliveries, or its done tasks (either index is bounded by the asset).
    (work_sql.DELIVERED, {"asset_id": "ha7", "folder": "Title [ha7]"}, ONE_ASSETS_TASKS),
]
PG_READS = [
    (pg.RECENT_FAILURES, (20,), "tasks_failed"),
    (pg.CAPTION_DELIVERIES, (ASSETS, 100), "tasks_deliveries"),
    (pg.REQUEST, ("hr77",), "requests_pkey"),
    (pg.REQUEST_TASKS, ("hr77",), "tasks_by_request"),
    (pg_queue.BUNDLE_FOLDERS_OF, ("ha7",), "bundles_pkey"),
    (pg_queue.BUNDLE_RECORDS_OF, ("Title [ha7]",), "bundles_by_folder"),
    (pg.EXPIRED, {"cutoff": MIDDLE, "candidates": 200}, "requests_by_time"),
    (
        work_sql.for_pg(work_sql.DELIVERED),
        {"asset_id": "ha7", "folder": "Title [ha7]"},
        ONE_ASSETS_TASKS,
    ),
]


@pytest.fixture(scope="module")
def sqlite_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("plans") / "q.db"

    async def create():
        queue = SQLiteQueue(path)
        await queue.open()
        await queue.fill_registry([(f"ha{n}", f"Title [ha{n}]", "ready") for n in range(2000)])
        await queue.close()

    anyio.run(create)
    # At 100k, not 20k: where SQLite's choice of plan for the claim flipped.
    fill_sqlite(str(path), dataclasses.replace(HISTORY, n=100_000))
    return path


def sqlite_plan(path, statement, params):
    db = sqlite3.connect(path)
    try:
        return [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + statement, params)]
    finally:
        db.close()


@pytest.mark.parametrize(("statement", "params", "index"), SQLITE_READS)
def test_sqlite_statement_uses_its_index(sqlite_path, statement, params, index):
    plan = sqlite_plan(sqlite_path, statement, params)
    wanted = (index,) if isinstance(index, str) else index
    assert any(name in step for step in plan for name in wanted), plan
    # No table read whole ("SCAN t" without an index); a request's own rows
    # may be sorted (bounded), the failures list may not.
    assert not [step for step in plan if re.fullmatch(r"SCAN \w+( AS \w+)?", step)], plan
    if statement == sql.RECENT_FAILURES:
        assert not any("TEMP B-TREE" in step for step in plan), plan


def test_sqlite_the_old_registry_lookup_read_every_row(sqlite_path):
    # Why BUNDLE_FOLDERS_OF is a statement of its own: the one form of old.
    old = "SELECT DISTINCT folder FROM bundles WHERE ? IS NULL OR asset_id = ? ORDER BY folder"
    assert "SCAN bundles" in " ".join(sqlite_plan(sqlite_path, old, ("ha7", "ha7")))


@pytest.fixture(scope="module")
def filled_pg_url(pg_cluster):
    url = pg_cluster.new_database()

    async def create():
        queue = PostgresQueue(url)
        await queue.open()
        await queue.fill_registry([(f"ha{n}", f"Title [ha{n}]", "ready") for n in range(2000)])
        await queue.close()

    anyio.run(create)
    fill_postgres(url, HISTORY)  # (the plans hold at 100k too: 25 s more)
    return url


def _nodes(plan):
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def pg_plans(url, statement, params):
    """The custom plan for these values and, for positional parameters, the
    generic plan (what a statement prepared by psycopg may switch to)."""
    # Client-side binding: the values go into the text, as EXECUTE needs them.
    with psycopg.connect(url, autocommit=True, cursor_factory=psycopg.ClientCursor) as connection:
        [[custom]] = connection.execute("EXPLAIN (FORMAT JSON) " + statement, params).fetchall()
        plans = [custom[0]["Plan"]]
        if isinstance(params, tuple):
            numbered = statement
            for n in range(1, len(params) + 1):
                numbered = numbered.replace("%s", f"${n}", 1)
            connection.execute("SET plan_cache_mode = force_generic_plan")
            connection.execute(f"PREPARE probe AS {numbered}")  # type: ignore[arg-type]
            values = ", ".join(["%s"] * len(params))
            [[generic]] = connection.execute(
                f"EXPLAIN (FORMAT JSON) EXECUTE probe ({values})",  # type: ignore[arg-type]
                params,
            ).fetchall()
            plans.append(generic[0]["Plan"])
    return plans


@pytest.mark.parametrize(("statement", "params", "index"), PG_READS)
def test_postgres_statement_uses_its_index(filled_pg_url, statement, params, index):
    for plan in pg_plans(filled_pg_url, statement, params):
        nodes = list(_nodes(plan))
        wanted = {index} if isinstance(index, str) else set(index)
        assert wanted & {node.get("Index Name") for node in nodes}, plan
        assert "Seq Scan" not in {node["Node Type"] for node in nodes}, plan
