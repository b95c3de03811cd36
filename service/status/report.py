"""Requests and the queue as operators read them.

`GET /requests/{id}` shows one overall status, each task with its attempts
and last error, and the caption files delivered back to the request's
assets through the bundles' `deliver/` folders (request_summary).

`caption-bridge status` reads the queue read-only (service.status.reader)
and shows, bounded however many assets a request has: counts by state and
the percentage finished, tasks retrying grouped by cause with the latest
reason, the first (or, for the queue, the latest) failures with their total,
a page of tasks, ISO 8601 times; as text for people (render_*) or as one
JSON document (request_report, queue_report).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from service.logging import redact_all
from service.queue import Queue, RequestKind
from service.queue.retry_causes import ALL_CAUSES

if TYPE_CHECKING:
    from service.status.reader import StatusReader


async def request_summary(queue: Queue, request_id: str) -> dict[str, Any] | None:
    """What `GET /requests/{id}` and `caption-bridge status ID` show, or None."""
    status = await queue.request_status(request_id)
    if status is None:
        return None
    deliveries: list[dict[str, Any]] = []
    if status["kind"] == RequestKind.CUSTOM_ACTION:  # what came back to its assets from deliver/
        asset_ids = sorted({t["asset_id"] for t in status["tasks"] if t["asset_id"]})
        deliveries = await queue.caption_deliveries(asset_ids) if asset_ids else []
    elif status["kind"] == RequestKind.DELIVER:
        deliveries = [
            {
                **t,
                "request_id": status["request_id"],
                "received_at": status["received_at"],
                "payload": status["payload"],
            }
            for t in status["tasks"]
        ]
    # Errors are stored redacted; this also covers what was stored before that.
    summary: dict[str, Any] = redact_all(summarize_request(status, deliveries))
    return summary


def overall_status(tasks: list[tuple[bool, str]]) -> str:
    """A request's one status from its tasks' (per asset?, state).

    Judged by the per-asset tasks once there are any; the expand task only
    counts while it is pending or when it failed (then no asset ever ran).
    """
    per_asset = [state for is_asset, state in tasks if is_asset]
    unexpanded = [state for is_asset, state in tasks if not is_asset and state != "done"]
    states = set(per_asset + unexpanded or [state for _, state in tasks])
    if states & {"queued", "running"}:
        return "running" if states & {"running", "done", "failed"} else "queued"
    if states <= {"done"}:
        return "done"
    if "done" in states:
        return "done_with_errors"
    return "failed"


def summarize_request(
    status: dict[str, Any], deliveries: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The request as operators read it: one overall status, then each task,
    then the caption files delivered back through the bundles' deliver/ folders."""
    tasks = status["tasks"]
    overall = overall_status([(t["asset_id"] is not None, t["state"]) for t in tasks])
    return {
        "request_id": status["request_id"],
        "kind": status["kind"],
        "received_at": status["received_at"],
        "status": overall,
        "iconik_job_id": status.get("job_id"),
        "payload": status["payload"],
        "tasks": [
            {
                "kind": t["kind"],
                "asset_id": t["asset_id"],
                "state": t["state"],
                "attempts": t["attempts"],
                "error": t["last_error"],
            }
            for t in tasks
        ],
        "deliveries": [
            {
                "request_id": d["request_id"],
                "asset_id": d["asset_id"],
                "file": d["payload"].get("path"),
                "language": d["payload"].get("language"),
                "closed_captions": d["payload"].get("closed_captions"),
                "sha256": d["payload"].get("sha256"),
                "received_at": d["received_at"],
                "state": d["state"],
                "attempts": d["attempts"],
                "error": d["last_error"],
            }
            for d in deliveries or []
        ],
    }


# -- `caption-bridge status`: reports read from a StatusReader -------------------

ASSET_STATES = ("done", "failed", "running", "queued")


def iso(timestamp: float | None) -> str | None:
    """An epoch time as people and machines read it: 2026-12-06T15:57:06Z."""
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(timestamp, UTC).replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")


def request_report(
    reader: StatusReader, request_id: str, *, limit: int, offset: int
) -> dict[str, Any] | None:
    """One request for `status ID`: counts, percentage, retries by cause, the
    first failures and a page of tasks; bounded however many assets it has."""
    request = reader.request(request_id)
    if request is None:
        return None
    rows = reader.request_counts(request_id)
    overall = overall_status([(r["per_asset"], r["state"]) for r in rows])
    assets = {state: 0 for state in ASSET_STATES}
    for row in rows:
        if row["per_asset"]:
            assets[row["state"]] = assets.get(row["state"], 0) + int(row["n"])
    total = sum(assets.values())
    finished = assets["done"] + assets["failed"]
    all_tasks = sum(int(r["n"]) for r in rows)
    failed_total, failed = reader.failures(request_id, limit, offset, newest_first=False)
    payload = _payload_of(request["payload"])
    deliveries: list[dict[str, Any]]
    deliveries_total, deliveries = 0, []
    if request["kind"] == RequestKind.CUSTOM_ACTION:  # what came back to its assets from deliver/
        deliveries_total, deliveries = reader.caption_deliveries(request_id, min(limit, 20))
    elif request["kind"] == RequestKind.DELIVER:  # the caption delivery itself
        deliveries = [
            {**t, "request_id": request_id, "received_at": request["received_at"]}
            | {"payload": payload}
            for t in reader.request_tasks(request_id, 1, 0)
        ]
        deliveries_total = len(deliveries)
    report = {
        "request_id": request["request_id"],
        "kind": request["kind"],
        "context": payload.get("context"),
        "received_at": iso(request["received_at"]),
        "status": overall,
        "iconik_job_id": request["job_id"],
        "assets": {
            "total": total,
            "finished": finished,
            "percent": round(100 * finished / total, 1) if total else None,
            "by_state": assets,
        },
        "retrying": _retrying(reader, request_id),
        "failures": {
            "total": failed_total,
            "offset": offset,
            "items": [_failure(f) for f in failed],
        },
        "tasks": {
            "total": all_tasks,
            "offset": offset,
            "limit": limit,
            "items": [
                {
                    "kind": t["kind"],
                    "asset_id": t["asset_id"],
                    "state": t["state"],
                    "attempts": t["attempts"],
                    "error": t["last_error"],
                    "updated_at": iso(t["updated_at"]),
                }
                for t in reader.request_tasks(request_id, limit, offset)
            ],
        },
        "deliveries": {
            "total": deliveries_total,
            "items": [
                {**delivery, "received_at": iso(delivery["received_at"])}
                for delivery in summarize_request(
                    {**request, "tasks": []},
                    [{**d, "payload": _payload_of(d["payload"])} for d in deliveries],
                )["deliveries"]
            ],
        },
    }
    if request["kind"] == RequestKind.DELIVER:
        report["file"] = payload.get("path")
        report["language"] = payload.get("language")
    redacted: dict[str, Any] = redact_all(report)
    return redacted


def queue_report(reader: StatusReader, *, limit: int, offset: int) -> dict[str, Any]:
    """The whole queue for `status`: tasks by state, retries by cause, recent failures."""
    counts = {state: 0 for state in ("queued", "running", "failed")}
    counts.update(reader.open_counts())
    failed_total, failed = reader.failures(None, limit, offset, newest_first=True)
    report: dict[str, Any] = redact_all(
        {
            "queue": reader.where,
            "tasks": counts,
            "waiting_or_running": counts["queued"] + counts["running"],
            "retrying": _retrying(reader, None),
            "failures": {
                "total": failed_total,
                "offset": offset,
                "items": [_failure(f) for f in failed],
            },
            # Bundles with a language asked for not delivered yet (`status --work`).
            "open_work": reader.open_work_counts(),
        }
    )
    return report


def _retrying(reader: StatusReader, request_id: str | None) -> list[dict[str, Any]]:
    # `label`: the cause as /metrics names it (caption_bridge_tasks_retrying{cause=...}).
    labels = {cause.name: cause.label for cause in ALL_CAUSES}
    return [
        {**group, "label": labels[group["cause"]], "last_at": iso(group["last_at"])}
        for group in reader.retrying(request_id)
    ]


def _failure(task: dict[str, Any]) -> dict[str, Any]:
    return {
        "request_id": task["request_id"],
        "kind": task["kind"],
        "asset_id": task["asset_id"],
        "attempts": task["attempts"],
        "error": task["last_error"],
        "at": iso(task["updated_at"]),
    }


def _payload_of(raw: Any) -> dict[str, Any]:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return {}
    return raw if isinstance(raw, dict) else {}


def render_request(report: dict[str, Any], *, with_tasks: bool = False) -> list[str]:
    """`status ID` for people: a few lines, however many assets."""
    kind = report["kind"].replace("_", " ")
    if report.get("context"):
        kind += f" ({report['context']})"
    head = f"request {report['request_id']}: {kind}, received {report['received_at']}"
    if report.get("iconik_job_id"):
        head += f", Iconik job {report['iconik_job_id']}"
    lines = [head]
    if report.get("file"):
        lines.append(f"file {report['file']} ({report.get('language')})")
    assets = report["assets"]
    if assets["total"]:
        states = ", ".join(f"{n:,} {s}" for s, n in assets["by_state"].items() if n)
        lines.append(
            f"status: {report['status']}: {assets['finished']:,} of {assets['total']:,} "
            f"asset task(s) finished ({assets['percent']:g}%): {states}"
        )
    else:
        lines.append(f"status: {report['status']} (the selection is not expanded yet)")
    lines += _render_retrying(report["retrying"])
    failures = report["failures"]
    if failures["total"]:
        lines.append(_page_title("failures", failures, "first"))
        lines += [_failure_line(f, with_request=False) for f in failures["items"]]
        lines += _more(failures, "failures")
    tasks = report["tasks"]
    if with_tasks:
        lines.append(_page_title("tasks", tasks, "in order"))
        for t in tasks["items"]:
            error = f": {t['error']}" if t["error"] else ""
            lines.append(
                f"  {t['kind']:<8} {t['asset_id'] or '-':<36}  {t['state']:<7} "
                f"{t['attempts']} attempt(s){error}"
            )
        lines += _more(tasks, "tasks")
    deliveries = report["deliveries"]
    if deliveries["total"]:
        lines.append(f"caption files delivered back: {deliveries['total']:,} (the latest):")
        for d in deliveries["items"]:
            error = f": {d['error']}" if d["error"] else ""
            lines.append(
                f"  {d['received_at']}  asset {d['asset_id']}  {d['file']}  {d['state']}{error}"
            )
    return lines


def render_queue(report: dict[str, Any]) -> list[str]:
    """`status` for people: the queue at a glance, then what is wrong."""
    counts = report["tasks"]
    lines = [
        f"{report['queue']}: {report['waiting_or_running']:,} task(s) waiting or running "
        f"({counts['queued']:,} queued, {counts['running']:,} running); "
        f"{counts['failed']:,} failed"
    ]
    lines += _render_retrying(report["retrying"])
    work = report.get("open_work")
    if work:
        lines.append(
            f"open work: {work['total']:,} bundle(s), {work['overdue']:,} overdue "
            "(`status --work` lists them by due date)"
        )
    failures = report["failures"]
    if not failures["total"]:
        lines.append("no failed tasks")
        return lines
    lines.append(_page_title("recent failures", failures, "newest first"))
    lines += [_failure_line(f, with_request=True) for f in failures["items"]]
    lines += _more(failures, "failures")
    return lines


def _render_retrying(groups: list[dict[str, Any]]) -> list[str]:
    if not groups:
        return []
    lines = [f"retrying ({sum(g['tasks'] for g in groups):,} task(s)), by cause:"]
    for g in groups:
        lines.append(
            f"  {g['cause']}: {g['tasks']:,} task(s); last at {g['last_at']} "
            f"(asset {g['last_asset_id']}, attempt {g['last_attempts']}): {g['last_error']}"
        )
    return lines


def _page_title(name: str, page: dict[str, Any], order: str) -> str:
    shown = len(page["items"])
    if page["offset"] or shown < page["total"]:
        first = page["offset"] + 1 if shown else page["offset"]
        where = f"{first}-{page['offset'] + shown}" if shown != 1 else f"{first}"
        return f"{name} ({where} of {page['total']:,}, {order}):"
    return f"{name} ({page['total']:,}):"


def _more(page: dict[str, Any], name: str) -> list[str]:
    after = page["offset"] + len(page["items"])
    if after >= page["total"] or not page["items"]:
        return []
    return [f"  ... {page['total'] - after:,} more {name}: --offset {after} (or --json)"]


def _failure_line(f: dict[str, Any], *, with_request: bool) -> str:
    request = f"request {f['request_id']}  " if with_request else ""
    asset = f"asset {f['asset_id']}" if f["asset_id"] else f"{f['kind']} task"
    return f"  {f['at']}  {request}{asset}  after {f['attempts']} attempt(s): {f['error']}"
