"""`caption-bridge status --work`: open work by due date, for people and machines.

Open work is a bundle not withdrawn with a language asked for that has
nothing delivered yet (service/queue/work_sql.py). Listed due first (no due
date last), a page at a time (--limit, --offset), each with its folder,
asset, due date and how far off it is ("OVERDUE by 2 d 3 h", "due in 5 h"),
and the languages missing. Read-only, like the rest of `status`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from service.bundle import due_dates
from service.logging import redact_all
from service.status.report import iso

if TYPE_CHECKING:
    from service.status.reader import StatusReader

NONE_NAMED = "*"  # no language was named: open until a first delivery


def work_report(reader: StatusReader, *, limit: int, offset: int) -> dict[str, Any]:
    now = reader.clock()
    counts = reader.open_work_counts()
    report: dict[str, Any] = {
        "queue": reader.where,
        "at": iso(now),
        "recorded": counts is not None,
        "total": counts["total"] if counts else 0,
        "overdue": counts["overdue"] if counts else 0,
        "offset": offset,
        "limit": limit,
        "items": [],
    }
    if counts is not None:
        report["items"] = [_item(row, now) for row in reader.open_work(limit, offset)]
    redacted: dict[str, Any] = redact_all(report)
    return redacted


def _item(row: dict[str, Any], now: float) -> dict[str, Any]:
    due_at = row["due_at"]
    return {
        "asset_id": row["asset_id"],
        "title": row["title"],
        "folder": row["folder"],
        "request_id": row["request_id"],
        "due_date": row["due_date"],
        "overdue": due_at is not None and due_at < now,
        "seconds_left": round(due_at - now) if due_at is not None else None,
        "when": due_dates.until(due_at, now) if due_at is not None else "no due date",
        "missing_languages": [m for m in row["missing"] if m != NONE_NAMED],
    }


def render_work(report: dict[str, Any]) -> list[str]:
    if not report["recorded"]:
        return [
            f"{report['queue']}: no open work recorded yet (a queue made before due dates: "
            "each bundle is recorded at its next build)"
        ]
    head = f"open work: {report['total']:,} bundle(s), {report['overdue']:,} overdue"
    shown = len(report["items"])
    if report["offset"] or shown < report["total"]:
        head += f" ({report['offset'] + 1}-{report['offset'] + shown} of {report['total']:,}"
        head += ", due first)" if shown else ")"
    lines = [head + ":" if shown else head]
    for item in report["items"]:
        missing = ", ".join(item["missing_languages"]) or "no language delivered yet"
        due = item["due_date"] or "-"
        lines.append(f"  {item['when']:<20} {due:<25}  {item['folder']}  missing: {missing}")
    after = report["offset"] + shown
    if shown and after < report["total"]:
        lines.append(f"  ... {report['total'] - after:,} more: --offset {after} (or --json)")
    return lines
