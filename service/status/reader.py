"""The queue as `caption-bridge status` reads it: read-only, never created.

A SQLite queue is opened with a `file:...?mode=ro` URI, so a missing file
is an error ("no queue here") instead of a new empty queue in whatever
directory the command ran from; a PostgreSQL queue is read in read-only
transactions (`default_transaction_read_only`), so a mistyped command can
change nothing. Every problem (no queue, not a queue, the database down)
is a `QueueNotReadable` whose message is one line naming the queue, never
its password.

These queries are the status command's own, and small: counts grouped in
the database, pages of tasks, failures with their total, and tasks retrying
grouped by cause (the patterns come from service.status.report), so a request of
thousands of assets is read in a few rows.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from service.queue import as_observed, describe_queue_url, work_sql
from service.queue.retry_causes import RETRYING, cause_case, pyformat

# A task whose worker stopped renewing its lease is waiting, not running (as_observed).
OBSERVED_STATE = "CASE WHEN state = 'running' AND lease_until < :now THEN 'queued' ELSE state END"


class QueueNotReadable(Exception):
    """The queue could not be read; the message is one line an operator acts on."""


class StatusReader:
    """Read-only queries over either backend; subclasses run the SQL."""

    where: str

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock

    def _rows(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> StatusReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one request ----------------------------------------------------------

    def request(self, request_id: str) -> dict[str, Any] | None:
        rows = self._rows(
            "SELECT request_id, kind, payload, received_at, job_id FROM requests"
            " WHERE request_id = :request_id",
            {"request_id": request_id},
        )
        return rows[0] if rows else None

    def request_counts(self, request_id: str) -> list[dict[str, Any]]:
        """(per_asset, state, n) rows: the request's tasks counted in the database."""
        rows = self._rows(
            f"SELECT asset_id IS NOT NULL AS per_asset, {OBSERVED_STATE} AS state,"  # noqa: S608
            " count(*) AS n FROM tasks WHERE request_id = :request_id GROUP BY 1, 2",
            {"request_id": request_id, "now": self.clock()},
        )
        return [{**r, "per_asset": bool(r["per_asset"])} for r in rows]

    def request_tasks(self, request_id: str, limit: int, offset: int) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT kind, asset_id, state, attempts, last_error, updated_at, lease_until"
            " FROM tasks WHERE request_id = :request_id"
            " ORDER BY created_at, asset_id LIMIT :limit OFFSET :offset",
            {"request_id": request_id, "limit": limit, "offset": offset},
        )
        now = self.clock()
        return [as_observed(r, now) for r in rows]

    def caption_deliveries(self, request_id: str, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """Caption files delivered back to the request's assets: (total, the latest `limit`)."""
        mine = (
            "FROM tasks t JOIN requests r ON r.request_id = t.request_id"
            " WHERE t.kind = 'deliver' AND r.kind = 'deliver' AND t.asset_id IN"
            " (SELECT asset_id FROM tasks WHERE request_id = :request_id"
            " AND asset_id IS NOT NULL)"
        )
        params = {"request_id": request_id, "limit": limit}
        [total] = self._rows(f"SELECT count(*) AS n {mine}", params)
        rows = self._rows(
            "SELECT r.request_id, r.received_at, r.payload, t.asset_id, t.state,"
            f" t.attempts, t.last_error, t.lease_until {mine}"
            " ORDER BY r.received_at DESC LIMIT :limit",
            params,
        )
        now = self.clock()
        return int(total["n"]), [as_observed(r, now) for r in reversed(rows)]

    # -- one request, or the whole queue ----------------------------------------

    def open_counts(self) -> dict[str, int]:
        """Queued, running and failed tasks of the whole queue (by the state
        index: done tasks, the bulk of the history, are not counted)."""
        rows = self._rows(
            f"SELECT {OBSERVED_STATE} AS state, count(*) AS n FROM tasks"  # noqa: S608
            " WHERE state IN ('queued', 'running', 'failed') GROUP BY 1",
            {"now": self.clock()},
        )
        return {r["state"]: int(r["n"]) for r in rows}

    def failures(
        self, request_id: str | None, limit: int, offset: int, newest_first: bool
    ) -> tuple[int, list[dict[str, Any]]]:
        """Failed tasks: (how many in all, the page asked for)."""
        where = _of_request(request_id, "state = 'failed'")
        params = {"request_id": request_id, "limit": limit, "offset": offset}
        [total] = self._rows(f"SELECT count(*) AS n FROM tasks {where}", params)  # noqa: S608
        order = "updated_at DESC, asset_id" if newest_first else "updated_at, asset_id"
        rows = self._rows(
            "SELECT request_id, kind, asset_id, attempts, last_error, updated_at"  # noqa: S608
            f" FROM tasks {where} ORDER BY {order} LIMIT :limit OFFSET :offset",
            params,
        )
        return int(total["n"]), rows

    def retrying(self, request_id: str | None) -> list[dict[str, Any]]:
        """Tasks waiting to run again after an error, grouped by cause
        (service.queue.retry_causes), each with how many, and the latest reason and
        its time. A task whose worker stopped renewing its lease counts too."""
        now = self.clock()
        params: dict[str, Any]
        cause, params = cause_case("name")
        params = {**params, "request_id": request_id, "now": now}
        where = _of_request(request_id, RETRYING)
        groups = self._rows(
            f"SELECT {cause} AS cause, count(*) AS n, max(updated_at) AS last_at"  # noqa: S608
            f" FROM tasks {where} GROUP BY 1 ORDER BY 2 DESC",
            params,
        )
        found = []
        for group in groups:
            [latest] = self._rows(
                "SELECT state, last_error, lease_until, asset_id, attempts"  # noqa: S608
                f" FROM tasks {where} AND {cause} = :wanted ORDER BY updated_at DESC LIMIT 1",
                {**params, "wanted": group["cause"]},
            )
            latest = as_observed(latest, now)  # a lapsed lease says so
            found.append(
                {
                    "cause": group["cause"],
                    "tasks": int(group["n"]),
                    "last_error": latest["last_error"],
                    "last_asset_id": latest["asset_id"],
                    "last_attempts": latest["attempts"],
                    "last_at": group["last_at"],
                }
            )
        return found

    # -- open work (service/queue/work_sql.py) -----------------------------------

    def has_table(self, name: str) -> bool:
        raise NotImplementedError

    def open_work_counts(self) -> dict[str, int] | None:
        """How many bundles are open work, and how many of them overdue; None
        when this queue records no open work yet (made before due dates)."""
        if not self.has_table("due_work"):
            return None
        [row] = self._rows(work_sql.COUNT_OPEN, {"now": self.clock()})
        return {"total": int(row["n"]), "overdue": int(row["overdue"])}

    def open_work(self, limit: int, offset: int) -> list[dict[str, Any]]:
        """A page of open work, due first (no due date last)."""
        rows = self._rows(work_sql.OPEN_PAGE, {"limit": limit, "offset": offset})
        return [{**row, "missing": json.loads(row["missing"])} for row in rows]


def _of_request(request_id: str | None, condition: str | None = None) -> str:
    conditions = [c for c in (condition,) if c]
    if request_id is not None:
        conditions.append("request_id = :request_id")
    return f"WHERE {' AND '.join(conditions)}" if conditions else ""


class SQLiteReader(StatusReader):
    def __init__(self, path: Path, queue_url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.where = f"SQLite queue {path}"
        if not path.is_file():
            raise QueueNotReadable(
                f"no queue at {path} (QUEUE_URL={queue_url}): nothing was ever stored there; "
                "run this where the service runs, or set QUEUE_URL (or .env) to its queue"
            )
        # mode=ro: never creates the database, never writes to it.
        uri = f"file:{quote(str(path.resolve()))}?mode=ro"
        try:
            self._db = sqlite3.connect(uri, uri=True, timeout=5, isolation_level=None)
        except sqlite3.Error as exc:
            raise QueueNotReadable(_sqlite_reason(self.where, exc)) from None
        self._db.row_factory = sqlite3.Row
        try:
            self._rows("SELECT 1 FROM requests LIMIT 0")
        except QueueNotReadable:
            self._db.close()
            raise

    def _rows(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        try:
            return [dict(row) for row in self._db.execute(sql, params or {})]
        except sqlite3.DatabaseError as exc:
            raise QueueNotReadable(_sqlite_reason(self.where, exc)) from None

    def has_table(self, name: str) -> bool:
        found = self._rows("SELECT 1 FROM sqlite_master WHERE name = :name", {"name": name})
        return bool(found)

    def close(self) -> None:
        self._db.close()


def _sqlite_reason(where: str, exc: sqlite3.Error) -> str:
    text = str(exc)
    if "no such table" in text or "not a database" in text:
        return f"{where} is not a caption bridge queue ({text})"
    return f"{where}: {text}"


class PostgresReader(StatusReader):
    def __init__(self, url: str, *, timeout: float = 5.0, **kwargs: Any) -> None:
        import psycopg
        from psycopg.rows import dict_row

        super().__init__(**kwargs)
        self._psycopg = psycopg
        self.where = describe_queue_url(url)
        try:
            self._db = psycopg.connect(
                url,
                autocommit=False,
                connect_timeout=max(1, int(timeout)),
                # Every transaction of this session is read-only; the server enforces it.
                options="-c default_transaction_read_only=on"
                f" -c statement_timeout={int(timeout * 1000)}",
                row_factory=dict_row,
            )
        except psycopg.Error as exc:
            raise QueueNotReadable(f"{self.where}: {_pg_reason(exc)}") from None
        self._db.read_only = True
        self._rows("SELECT 1 FROM requests LIMIT 0")

    def _rows(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        psycopg = self._psycopg
        try:
            with self._db.transaction(), self._db.cursor() as cursor:
                cursor.execute(pyformat(sql), params or {})
                return list(cursor.fetchall())
        except psycopg.errors.UndefinedTable as exc:
            raise QueueNotReadable(
                f"{self.where} holds no caption bridge queue ({_pg_reason(exc)})"
            ) from None
        except psycopg.Error as exc:
            raise QueueNotReadable(f"{self.where}: {_pg_reason(exc)}") from None

    def has_table(self, name: str) -> bool:
        [row] = self._rows("SELECT to_regclass(:name) IS NOT NULL AS found", {"name": name})
        return bool(row["found"])

    def close(self) -> None:
        self._db.close()


def _pg_reason(exc: BaseException) -> str:
    from service.queue.postgres_store import _reason

    return _reason(exc)


def open_reader(queue_url: str, **kwargs: Any) -> StatusReader:
    """A read-only view of the queue `queue_url` names, or QueueNotReadable."""
    if queue_url.startswith("sqlite:///"):
        return SQLiteReader(Path(queue_url.removeprefix("sqlite:///")), queue_url, **kwargs)
    if queue_url.startswith(("postgresql://", "postgres://")):
        return PostgresReader(queue_url, **kwargs)
    raise QueueNotReadable(f"QUEUE_URL: unsupported queue backend {queue_url.split(':')[0]!r}")
