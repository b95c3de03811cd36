"""A request as operators read it: what `GET /requests/{id}` and
`caption-bridge status ID` show. One overall status, each task with its
attempts and last error, and the caption files delivered back to the
request's assets through the bundles' `deliver/` folders.
"""

from __future__ import annotations

from typing import Any

from service.logging import redact_all
from service.queue import Queue


async def request_summary(queue: Queue, request_id: str) -> dict[str, Any] | None:
    """What `GET /requests/{id}` and `caption-bridge status ID` show, or None."""
    status = await queue.request_status(request_id)
    if status is None:
        return None
    deliveries: list[dict[str, Any]] = []
    if status["kind"] == "custom_action":  # what came back to its assets from deliver/
        asset_ids = sorted({t["asset_id"] for t in status["tasks"] if t["asset_id"]})
        deliveries = await queue.caption_deliveries(asset_ids) if asset_ids else []
    elif status["kind"] == "deliver":
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
    return redact_all(summarize_request(status, deliveries))


def summarize_request(
    status: dict[str, Any], deliveries: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The request as operators read it: one overall status, then each task,
    then the caption files delivered back through the bundles' deliver/ folders."""
    tasks = status["tasks"]
    # Judge by the per-asset tasks once there are any; the expand task only
    # counts while it is pending or when it failed (then no asset ever ran).
    per_asset = [t for t in tasks if t["asset_id"] is not None]
    unexpanded = [t for t in tasks if t["asset_id"] is None and t["state"] != "done"]
    states = {t["state"] for t in (per_asset + unexpanded or tasks)}
    if states & {"queued", "running"}:
        overall = "running" if states & {"running", "done", "failed"} else "queued"
    elif states <= {"done"}:
        overall = "done"
    elif "done" in states:
        overall = "done_with_errors"
    else:
        overall = "failed"
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
