"""A queue filled with finished history in a few bulk statements, not through HTTP.

For the plan tests (tests/system/queue/test_queue_plans.py) and `bench retention`: `n`
finished requests received `spacing` seconds apart from `start`, shaped
like real ones: mostly clicks (an expand and one asset's build, every
`failed_every`-th build failed) and every `deliver_every`-th a caption
file delivered back (one `deliver` task, to the assets in turn), over
`assets` assets (so each asset's history grows with `n`), each
payload about `payload_bytes` long. Row `i`'s ids carry `prefix`, so a
queue can be filled more than once.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True)
class History:
    n: int
    start: float
    spacing: float = 60.0
    assets: int = 1_000
    failed_every: int = 10
    deliver_every: int = 5
    payload_bytes: int = 1_000
    prefix: str = "h"


# {seq} yields i = 0..n-1; {pad} is payload_bytes of filler; parameters are
# named alike on both backends (SQLite :name, PostgreSQL %(name)s).
_REQUESTS = """
INSERT INTO requests (request_id, delivery_key, kind, payload, received_at)
SELECT {p} || 'r' || i, {p} || 'k' || i,
       CASE WHEN i % {deliver_every} = 0 THEN 'deliver' ELSE 'custom_action' END,
       {json_open}'{{"context": "ASSET", "asset_ids": ["' || {p} || 'a' || (i % {assets})
           || '"], "path": "deliver/en.srt", "pad": "' || {pad} || '"}}'{json_close},
       {start} + i * {spacing}
FROM {seq}
"""
_TASKS = """
INSERT INTO tasks (task_id, request_id, kind, asset_id, state, attempts, not_before,
                   created_at, updated_at, lane, rank_at)
SELECT {p} || 't' || i || '-' || part, {p} || 'r' || i,
       CASE WHEN i % {deliver_every} = 0 THEN 'deliver'
            WHEN part = 0 THEN 'expand' ELSE 'build' END,
       CASE WHEN i % {deliver_every} = 0 THEN {p} || 'a' || ((i / {deliver_every}) % {assets})
            WHEN part = 0 THEN NULL
            ELSE {p} || 'a' || (i % {assets}) END,
       CASE WHEN part = 1 AND i % {failed_every} = 1 THEN 'failed' ELSE 'done' END,
       1, {start} + i * {spacing}, {start} + i * {spacing} + part,
       {start} + i * {spacing} + 1 + part, 'click', {start} + i * {spacing}
FROM {seq}, (SELECT 0 AS part UNION ALL SELECT 1) parts
WHERE part = 0 OR i % {deliver_every} <> 0
"""


def _statements(history: History, *, postgres: bool) -> list[str]:
    values = {
        "p": f"'{history.prefix}'",
        "deliver_every": history.deliver_every,
        "failed_every": history.failed_every,
        "assets": history.assets,
        "start": repr(float(history.start)),
        "spacing": repr(float(history.spacing)),
    }
    if postgres:
        values |= {
            "seq": f"generate_series(0, {history.n - 1}) AS seq(i)",
            "pad": f"repeat('x', {history.payload_bytes})",
            "json_open": "(",
            "json_close": ")::jsonb",
        }
    else:
        values |= {
            "seq": f"(WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s"  # noqa: S608
            f" WHERE i < {history.n - 1}) SELECT i FROM s)",
            "pad": f"printf('%.{history.payload_bytes}c', 'x')",
            "json_open": "",
            "json_close": "",
        }
    return [_REQUESTS.format(**values), _TASKS.format(**values)]


def fill_sqlite(path: str, history: History) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("BEGIN IMMEDIATE")
        for statement in _statements(history, postgres=False):
            db.execute(statement)
        db.execute("COMMIT")
        db.execute("ANALYZE")  # as a long-lived queue's statistics would be, at most
    finally:
        db.close()


def fill_postgres(url: str, history: History) -> None:
    import psycopg

    with psycopg.connect(url) as connection:
        for statement in _statements(history, postgres=True):
            connection.execute(statement)  # type: ignore[arg-type]
        connection.commit()
        connection.autocommit = True
        connection.execute("VACUUM ANALYZE tasks")
        connection.execute("VACUUM ANALYZE requests")
