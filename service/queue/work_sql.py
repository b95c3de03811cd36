"""Open work in the queue, in SQL both backends run (service/notify/due_check.py).

`due_work` holds one row per bundle folder, written by each build
(`record_work`) and by each caption file delivered (`record_delivered`):
the due date, the languages asked for, those delivered, and those still
`missing` (a JSON array; '[]' once every one is delivered). A bundle is
open work while `missing` is not empty and the registry does not hold it
withdrawn (or retired). `soon_sent_for` and `overdue_sent_for` are the due
date (`due_at`) whose notification was stored: a new due date arms both
again. Parameters are :named (PostgreSQL's are made from them by `for_pg`).
"""

from __future__ import annotations

import json
import re
from typing import Any

from service.bundle import due_dates
from service.queue import Work

# The table is made by each backend's steps (sqlite.sql 11 and 13, postgres.sql 8 and 9).

# The caption files already delivered from a folder (its deliver tasks that
# ended well, through tasks_deliveries), for a build that records its work.
DELIVERED = """
SELECT DISTINCT lower(r.payload->>'language') AS language
FROM tasks t JOIN requests r ON r.request_id = t.request_id
WHERE t.kind = 'deliver' AND t.state = 'done' AND t.asset_id = :asset_id
  AND r.payload->>'folder' = :folder
"""
ROW = "SELECT languages, delivered FROM due_work WHERE folder = :folder"
# One bundle's work as its build recorded it (for a delivery's notification).
WORK_OF = (
    "SELECT asset_id, folder, title, request_id, due_at, due_date, languages, request"
    " FROM due_work"
    " WHERE folder = :folder AND asset_id = :asset_id"
)
RECORD = """
INSERT INTO due_work (folder, asset_id, title, request_id, due_at, due_date, languages,
                      delivered, missing, request, updated_at)
VALUES (:folder, :asset_id, :title, :request_id, :due_at, :due_date, :languages,
        :delivered, :missing, :request, :now)
ON CONFLICT (folder) DO UPDATE SET
    asset_id = excluded.asset_id, title = excluded.title, request_id = excluded.request_id,
    due_at = excluded.due_at, due_date = excluded.due_date, languages = excluded.languages,
    delivered = excluded.delivered, missing = excluded.missing, request = excluded.request,
    updated_at = excluded.updated_at
"""
DELIVERED_NOW = (
    "UPDATE due_work SET delivered = :delivered, missing = :missing, updated_at = :now"
    " WHERE folder = :folder"
)

# Open work: `missing` not empty, the bundle on record and not withdrawn.
OPEN = (
    "FROM due_work w JOIN bundles b ON b.folder = w.folder AND b.asset_id = w.asset_id"
    " WHERE w.missing <> '[]' AND b.status <> 'withdrawn'"
)
COLUMNS = "w.folder, w.asset_id, w.title, w.request_id, w.due_at, w.due_date, w.missing"
TO_NOTIFY = f"""
SELECT {COLUMNS}, w.languages, w.soon_sent_for, w.overdue_sent_for {OPEN}
  AND w.due_at IS NOT NULL
  AND ((w.due_at <= :now AND (w.overdue_sent_for IS NULL OR w.overdue_sent_for <> w.due_at))
       OR (w.due_at <= :soon_until
           AND (w.soon_sent_for IS NULL OR w.soon_sent_for <> w.due_at)))
ORDER BY w.due_at, w.folder
LIMIT :limit
"""
MARK_SOON = (
    "UPDATE due_work SET soon_sent_for = :due_at WHERE folder = :folder AND due_at = :due_at"
)
MARK_OVERDUE = (
    "UPDATE due_work SET soon_sent_for = :due_at, overdue_sent_for = :due_at"
    " WHERE folder = :folder AND due_at = :due_at"
)

# `caption-bridge status --work`: counted, then a page, due first, none last.
COUNT_OPEN = (
    "SELECT count(*) AS n, coalesce(sum(CASE WHEN w.due_at < :now THEN 1 ELSE 0 END), 0)"
    f" AS overdue {OPEN}"
)
OPEN_PAGE = (
    f"SELECT {COLUMNS} {OPEN}"
    " ORDER BY w.due_at IS NULL, w.due_at, w.folder LIMIT :limit OFFSET :offset"
)

_PARAM = re.compile(r"(?<!:):(\w+)")


def for_pg(statement: str) -> str:
    """A statement with PostgreSQL's parameters (%(name)s) for :name."""
    return _PARAM.sub(r"%(\1)s", statement)


def record_params(work: Work, delivered: set[str], now: float) -> dict[str, Any]:
    """RECORD's parameters: the work, with what was delivered and what is missing."""
    return {
        "folder": work.folder,
        "asset_id": work.asset_id,
        "title": work.title,
        "request_id": work.request_id,
        "due_at": work.due_at,
        "due_date": work.due_date,
        "languages": json.dumps(work.languages),
        "delivered": json.dumps(sorted(delivered)),
        "missing": json.dumps(due_dates.missing(work.languages, delivered)),
        "request": json.dumps(work.request) if work.request is not None else None,
        "now": now,
    }


def work_from_row(row: dict[str, Any]) -> Work:
    """WORK_OF's row as the `Work` its build recorded."""
    return Work(
        asset_id=row["asset_id"],
        folder=row["folder"],
        title=row["title"],
        request_id=row["request_id"],
        due_at=row["due_at"],
        due_date=row["due_date"],
        languages=list(json.loads(row["languages"])),
        request=json.loads(row["request"]) if row["request"] else None,
    )


def delivered_params(
    folder: str, row: dict[str, Any] | None, language: str, now: float
) -> dict[str, Any] | None:
    """DELIVERED_NOW's parameters once `language` is delivered; None: no such work."""
    if row is None:
        return None
    delivered = set(json.loads(row["delivered"])) | {language.lower()}
    asked = json.loads(row["languages"])
    return {
        "folder": folder,
        "delivered": json.dumps(sorted(delivered)),
        "missing": json.dumps(due_dates.missing(asked, delivered)),
        "now": now,
    }
