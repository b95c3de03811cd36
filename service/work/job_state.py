"""What a request's Iconik job says, worked out from the request's tasks: pure.

A "Send to Captioning" request has one Iconik job. It is STARTED (with
`progress_processed` of `progress_total` assets) while any asset is pending,
and ends FINISHED, FINISHED_WITH_WARNING (some assets failed) or FAILED,
with a message naming each failed asset and why. Here: that state
(`Outcome`, `job_outcome`), the job's title, and the bodies that create the
job or move it on. No I/O, no clock: service/work/iconik_jobs.py reads the
queue and sends these to Iconik.
"""

from __future__ import annotations

from typing import Any, NamedTuple

MAX_RELATED = 100  # related_objects beyond this add nothing for a person reading the job
MAX_MESSAGE = 4000


class Outcome(NamedTuple):
    status: str
    processed: int
    total: int
    message: str

    @property
    def final(self) -> bool:
        return self.status != "STARTED"

    @property
    def rank(self) -> tuple[bool, int]:
        """How far on the job is; a state not above the last one sent is never sent."""
        return (self.final, self.processed)


def job_outcome(tasks: list[dict[str, Any]]) -> Outcome | None:
    """(status, processed, total, message) of a request's tasks, pure.

    None while no asset task exists yet, unless the request could not even
    be expanded: then FAILED with the reason. STARTED while any asset is
    pending.
    """
    assets = [t for t in tasks if t.get("asset_id") is not None]
    if not assets:
        # Only the expand task has no asset; failed, it is the request's end.
        failed_expand = [t for t in tasks if t["state"] == "failed"]
        if failed_expand:
            reason = failed_expand[0].get("last_error") or "the request could not be expanded"
            return Outcome("FAILED", 0, 0, reason[:MAX_MESSAGE])
        return None
    finished = [t for t in assets if t["state"] in ("done", "failed")]
    failed = [t for t in assets if t["state"] == "failed"]
    total, processed = len(assets), len(finished)
    if processed < total:
        return Outcome("STARTED", processed, total, f"{processed} of {total} bundles processed")
    if not failed:
        return Outcome("FINISHED", processed, total, f"{total} captioning bundle(s) ready")
    lines = [f"asset {t['asset_id']}: {t.get('last_error')}" for t in failed]
    message = f"{len(failed)} of {total} asset(s) failed:\n" + "\n".join(lines)
    status = "FAILED" if len(failed) == total else "FINISHED_WITH_WARNING"
    return Outcome(status, processed, total, message[:MAX_MESSAGE])


def expanded(asset_count: int) -> Outcome:
    """The state of a request just expanded, before the queue lists its asset tasks."""
    return Outcome("STARTED", 0, asset_count, f"building {asset_count} captioning bundle(s)")


def job_title(payload: dict[str, Any], asset_ids: list[str], asset_title: str | None = None) -> str:
    """The job's name in Iconik: the asset's title for one asset, else what and how many."""
    if len(asset_ids) == 1:
        return f"Send to Captioning: {asset_title or asset_ids[0]}"
    what = {"COLLECTION": "collection", "SAVED_SEARCH": "saved search"}.get(
        payload.get("context") or "", "selection"
    )
    count = len(asset_ids)
    return f"Send to Captioning: {what}" + (f" of {count} assets" if count else "")


def job_assets(status: dict[str, Any], expanded_into: list[str] | None) -> list[str]:
    """The assets a job is about: the request's asset tasks, else those it was
    expanded into (`expanded_into`, known to this process), else its payload's."""
    payload = status.get("payload") or {}
    return (
        [t["asset_id"] for t in status["tasks"] if t.get("asset_id")]
        or expanded_into
        or list(payload.get("asset_ids") or [])
    )


def may_show_title(
    status: dict[str, Any], asset_ids: list[str], unreadable: frozenset[str]
) -> bool:
    """Whether the job may name its asset by title: not if the clicking user may not
    read it (`unreadable`), nor if it failed (after a restart this process no longer
    knows whether the user may read it; its id is shown instead)."""
    failed = {t["asset_id"] for t in status["tasks"] if t.get("state") == "failed"}
    return not ((unreadable | failed) & set(asset_ids))


def state_fields(outcome: Outcome, now: str) -> dict[str, Any]:
    """The fields of a job that say how far it is (for a create and for a PATCH);
    `now` (ISO 8601) is its completion time when the state is final."""
    fields: dict[str, Any] = {"status": outcome.status, "message": outcome.message}
    if outcome.total:  # a request that failed to expand has no assets to count
        fields.update(progress_processed=outcome.processed, progress_total=outcome.total)
    if outcome.final:
        fields["completed_at"] = now
    if outcome.status == "FAILED":
        fields["error_message"] = outcome.message
    return fields


def new_job(
    title: str,
    request_id: str,
    asset_ids: list[str],
    *,
    started_at: str,
    state: dict[str, Any],
) -> dict[str, Any]:
    """The body that creates a request's job: what every job of ours says, its
    start, its state (`state_fields`) and the assets it is about."""
    body = {
        "title": title,
        "type": "CUSTOM",
        "custom_type": "caption-bridge",
        "metadata": {"caption_bridge_request_id": request_id},
        "started_at": started_at,
        **state,
    }
    if asset_ids:
        body["related_objects"] = [
            {"object_type": "assets", "object_id": a} for a in asset_ids[:MAX_RELATED]
        ]
    if len(asset_ids) == 1:
        body.update(object_type="assets", object_id=asset_ids[0])
    return body
