"""Progress in Iconik: one job per "Send to Captioning" request.

The job goes STARTED (progress_total = assets) when the request is expanded,
its progress_processed follows the assets as they finish, and it ends
FINISHED, FINISHED_WITH_WARNING (some assets failed) or FAILED, with a message
naming each failed asset and why. Reporting is best-effort: a failing jobs
API is logged and never fails or delays a bundle.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from service.iconik import IconikClient, IconikError
from service.logging import get_logger
from service.queue import Queue, QueueUnavailable

log = get_logger("service.jobs")

_MAX_RELATED = 100  # related_objects beyond this add nothing for a person reading the job
_MAX_MESSAGE = 4000


def _now() -> str:
    return datetime.now(UTC).isoformat()


def job_outcome(tasks: list[dict[str, Any]]) -> tuple[str, int, int, str] | None:
    """(status, processed, total, message) of a request's asset tasks, pure.

    None while no asset task exists yet. Status is STARTED while any is
    pending.
    """
    assets = [t for t in tasks if t.get("asset_id") is not None]
    if not assets:
        return None
    finished = [t for t in assets if t["state"] in ("done", "failed")]
    failed = [t for t in assets if t["state"] == "failed"]
    total, processed = len(assets), len(finished)
    if processed < total:
        return "STARTED", processed, total, f"{processed} of {total} bundles processed"
    if not failed:
        return "FINISHED", processed, total, f"{total} captioning bundle(s) ready"
    lines = [f"asset {t['asset_id']}: {t.get('last_error')}" for t in failed]
    message = f"{len(failed)} of {total} asset(s) failed:\n" + "\n".join(lines)
    status = "FAILED" if len(failed) == total else "FINISHED_WITH_WARNING"
    return status, processed, total, message[:_MAX_MESSAGE]


def _job(title: str, request_id: str, **fields: Any) -> dict[str, Any]:
    """A job body: what every job of ours says, plus `fields`."""
    return {
        "title": title,
        "type": "CUSTOM",
        "custom_type": "caption-bridge",
        "metadata": {"caption_bridge_request_id": request_id},
        **fields,
    }


class JobReporter:
    def __init__(self, iconik: IconikClient, queue: Queue, enabled: bool = True) -> None:
        self.iconik = iconik
        self.queue = queue
        self.enabled = enabled

    async def start(self, request_id: str, asset_ids: list[str], title: str) -> None:
        if not self.enabled:
            return
        try:
            existing = await self.queue.request_status(request_id)
        except QueueUnavailable:
            existing = None
        if existing and existing.get("job_id"):  # an expand that ran twice: one job
            return
        job = _job(
            title,
            request_id,
            status="STARTED",
            started_at=_now(),
            progress_total=len(asset_ids),
            progress_processed=0,
            message=f"building {len(asset_ids)} captioning bundle(s)",
            related_objects=[
                {"object_type": "assets", "object_id": a} for a in asset_ids[:_MAX_RELATED]
            ],
        )
        if len(asset_ids) == 1:
            job.update(object_type="assets", object_id=asset_ids[0])
        try:
            created = await self.iconik.create_job(job)
            await self.queue.set_job_id(request_id, created["id"])
        except (IconikError, QueueUnavailable, KeyError, TypeError) as exc:
            log.warning("job.not_created", error=str(exc))

    async def fail_request(self, request_id: str, title: str, reason: str) -> None:
        """The request could not even be expanded: a job that says so."""
        if not self.enabled:
            return
        job = _job(
            title,
            request_id,
            status="FAILED",
            error_message=reason,
            message=reason,
            completed_at=_now(),
        )
        try:
            await self.iconik.create_job(job)
        except IconikError as exc:
            log.warning("job.not_created", error=str(exc))

    async def progress(self, request_id: str) -> None:
        if not self.enabled:
            return
        try:
            status = await self.queue.request_status(request_id)
        except QueueUnavailable as exc:
            log.warning("job.not_updated", error=str(exc))
            return
        if not status or not status.get("job_id"):
            return
        outcome = job_outcome(status["tasks"])
        if outcome is None:
            return
        state, processed, total, message = outcome
        changes: dict[str, Any] = {
            "status": state,
            "progress_processed": processed,
            "progress_total": total,
            "message": message,
        }
        if state != "STARTED":
            changes["completed_at"] = _now()
        if state == "FAILED":
            changes["error_message"] = message
        try:
            await self.iconik.update_job(status["job_id"], changes)
        except IconikError as exc:
            log.warning("job.not_updated", job_id=status["job_id"], error=str(exc))
