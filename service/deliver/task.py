"""The `deliver` task: a finished caption file from a bundle's deliver/ folder
becomes the asset's caption track in Iconik.

A delivery reads as three steps:
1. read: exactly the content the scan found (same SHA-256), read once and
   bounded (a regular file, under MAX_CAPTION_BYTES), from a folder the
   bundle registry holds as this asset's and still `ready` (never what the
   folder's own project.json says: a captioner can write that);
2. check and convert (service.captions.track, pure): refused with a line number,
   or WebVTT for Iconik; checked against the house style (service/captions/house_style.py):
   findings are counted in the receipt, or refuse the file under HOUSE_STYLE=strict;
3. write to Iconik: the track of that language and kind is replaced when
   the asset has one (exactly one remains), else its format is created and
   the subtitle added; RECEIPT.json and project.json's `deliveries` then
   record it, published together (readers never see one without the other),
   with what was noted on the way (Track.notes) and the findings counted;
   each track's latest entry and the `outtray.HISTORY_PER_TRACK` before it
   are kept.

The `readme` task writes deliver/README.txt anew, with project.json's record
of it, when the scan finds it was written for another scan interval or
house style.

The scan (service/deliver/scan.py) enqueues one task per new content; the
queue runs it under the asset's one-task-at-a-time rule, so a delivery never
races a build of the same bundle. `report` tells Iconik (a job) and the
metrics how it ended, once the runner has settled it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import anyio.to_thread

from service.bundle import manifest as bundle
from service.bundle import outtray, outtray_readme, readback
from service.captions import house_style
from service.captions import track as captions
from service.iconik.client import CredentialsRejected, IconikClient, IconikError, NotFound
from service.iconik.json_stream import JsonStream
from service.logging import get_logger
from service.metrics import Metrics
from service.notify import events as notify_events
from service.queue import Delivery, Expanded, NewTask, RequestKind, Task, TaskKind
from service.storage import NotRegularFile, TooLarge
from service.work import caption_status, preview_publish
from service.work.tasks import TaskContext, TaskFailed, TaskOutcome

log = get_logger("service.deliver.task")

_ROLES = "writing caption tracks needs the roles can_write_formats and can_write_asset_subtitles"


class CaptionRefused(TaskFailed):
    """The captioner's file failed its checks (not Iconik, not the storage):
    counted apart from other failures (CaptionDeliveryOutcome.REFUSED)."""


class CaptionDeliveryOutcome(StrEnum):
    """How a caption delivery ended: the `outcome` label of
    caption_bridge_caption_deliveries_total."""

    DELIVERED = "delivered"
    REFUSED = "refused"  # the captioner's file failed its checks (CaptionRefused)
    FAILED = "failed"  # anything else
    RETRIED = "retried"


def caption_delivery_key(asset_id: str, path: str, sha256: str, replaces: str | None) -> str:
    """One delivery, whichever process found it: this content of this file, over
    what the track was (so content that comes back after a change goes again)."""
    return f"deliver:{asset_id}:{path}:{sha256}:over:{replaces or 'none'}"


def new_caption_delivery(
    *,
    folder: str,
    asset_id: str,
    title: str,
    path: str,
    sha256: str,
    track: captions.TrackName,
    replaces: str | None,
) -> Delivery:
    """What the scan stores in the queue for one new content of a file."""
    return Delivery(
        key=caption_delivery_key(asset_id, path, sha256, replaces),
        kind=RequestKind.DELIVER,
        payload=json.dumps(
            {
                "folder": folder,
                "asset_id": asset_id,
                "title": title,
                "path": path,
                "sha256": sha256,
                "language": track.language,
                "closed_captions": track.closed_captions,
                "replaces": replaces,
            }
        ),
        first_task=NewTask(TaskKind.DELIVER, asset_id),
    )


async def deliver(ctx: TaskContext, task: Task) -> Expanded:
    wanted = task.payload
    folder, path, asset_id = wanted["folder"], wanted["path"], task.asset_id or ""

    # 1. read
    owner = await ctx.registry.owner_of(folder)
    if owner is None or owner[0] != asset_id:
        raise TaskFailed(
            f"{path} was not delivered: the folder is not on record as a bundle of asset {asset_id}"
        )
    if owner[1] == "withdrawn":
        raise TaskFailed(
            f"{path} was not delivered: the bundle is withdrawn (the asset was deleted in Iconik)"
        )
    manifest = await ctx.storage.read_manifest(folder)
    if manifest is None:
        raise TaskFailed(
            f"{path} was not delivered: the bundle's project.json is missing or unreadable; "
            "it is written anew when the asset next changes in Iconik"
        )
    try:
        data = await ctx.storage.read_file(folder, path, limit=ctx.settings.max_caption_bytes)
    except (NotRegularFile, TooLarge) as exc:
        raise TaskFailed(f"{path} was not delivered: {exc}") from None
    if data is None:
        raise TaskFailed(f"{path} was not delivered: it was removed before it could be")
    if hashlib.sha256(data).hexdigest() != wanted["sha256"]:
        raise TaskFailed(
            f"{path} was not delivered: it changed after it was found; "
            "its newer content is delivered instead"
        )

    # 2. check and convert (a long file takes a moment: off the event loop)
    said = manifest["asset"]  # the facts of the media, in their shape (readback)
    media = readback.media_of(said)
    filename = path.rsplit("/", 1)[-1]
    style = ctx.settings.style
    refused_track = (str(wanted.get("language")), bool(wanted.get("closed_captions")))
    label = bundle.caption_label(*refused_track)

    # What the notification says of the work: the queue's record of the
    # bundle's last build, not this project.json (a captioner can write it).
    work = await ctx.registry.work_of(folder, asset_id)

    def refusal(problem: str) -> CaptionRefused:
        event = notify_events.refused(ctx, task, work, folder, path, label, problem)
        return CaptionRefused(
            f"{path} was refused: {problem}; fix the file and save it again", [event]
        )

    try:
        track, findings = await anyio.to_thread.run_sync(_read, filename, data, media, style)
    except captions.Refused as refused:
        await caption_status.write(ctx, asset_id, caption_status.refused(*refused_track))
        raise refusal(str(refused)) from None
    except (MemoryError, RecursionError):  # failed, not retried: no crash loop
        raise refusal(
            "the file could not be checked: it is too large or too complex to read"
        ) from None

    del data  # the WebVTT made from it is what goes on: one copy less while it is sent

    # 3. write to Iconik, then record it in the bundle
    subtitle_id = await write_track(ctx.iconik, asset_id, track)
    entry = outtray.caption_delivery_entry(
        path=path,
        sha256=wanted["sha256"],
        language=track.name.language,
        closed_captions=track.name.closed_captions,
        subtitle_id=subtitle_id,
        delivered_at=ctx.iso_now(),
        notes=track.notes,
        house_style=findings.counts,
    )
    # The manifest as read back has the service's shape (service/bundle/readback.py).
    deliveries = outtray.with_caption_delivery(manifest["deliveries"], entry)
    updated = {**manifest, "revision": manifest["revision"] + 1, "deliveries": deliveries}
    async with ctx.storage.stage(folder) as staging:
        await staging.write_bytes(outtray.RECEIPT_PATH, outtray.receipt_bytes(deliveries))
        # The page shows each language's delivery state: rewritten with it.
        updated = await preview_publish.rewrite_page(ctx, folder, updated, staging)
        await ctx.still_mine()
        # The track is in Iconik now: whatever a captioner put in the way of
        # RECEIPT.json, the manifest records it (and the scan says what is blocked).
        blocked = await staging.publish(bundle.manifest_bytes(updated), [])
    if blocked:
        log.warning("delivery.files_blocked", paths=blocked)
    await caption_status.write(ctx, asset_id, caption_status.delivered(deliveries, ctx.clock()))
    await ctx.registry.delivered(folder, track.name.language)  # open work (due dates)
    log.info(
        "delivery.delivered",
        path=path,
        language=track.name.language,
        closed_captions=track.name.closed_captions,
        subtitle_id=subtitle_id,
        cues=len(track.cues),
        house_style=findings.total,
        revision=updated["revision"],
    )
    label = bundle.caption_label(track.name.language, track.name.closed_captions)
    return Expanded([], events=[notify_events.delivered(ctx, task, work, folder, path, label)])


def _read(
    filename: str, data: bytes, media: captions.Media, style: house_style.Style
) -> tuple[captions.Track, house_style.Report]:
    """The track and its house-style findings; Refused under strict when there are any."""
    track = captions.read(filename, data, media)
    findings = house_style.check(track.cues, style, media.frame_rate)
    refused = house_style.refusal(findings, style)
    if refused is not None:
        raise refused
    return track, findings


def readme_key(asset_id: str, revision: int, digest: str) -> str:
    """One README.txt rewrite per revision of the bundle and text wanted."""
    return f"readme:{asset_id}:r{revision}:{digest}"


def new_readme(folder: str, asset_id: str, revision: int, digest: str) -> Delivery:
    """What the scan stores when a bundle's README.txt is not the one it would write."""
    return Delivery(
        key=readme_key(asset_id, revision, digest),
        kind=RequestKind.README,
        payload=json.dumps({"folder": folder, "asset_id": asset_id, "sha256": digest}),
        first_task=NewTask(TaskKind.README, asset_id),
    )


async def rewrite_readme(ctx: TaskContext, task: Task) -> None:
    """deliver/README.txt as the settings make it now, and project.json's record of it."""
    folder, asset_id = task.payload["folder"], task.asset_id or ""
    owner = await ctx.registry.owner_of(folder)
    if owner is None or (owner[0], owner[1]) != (asset_id, "ready"):
        log.info("readme.not_rewritten", folder=folder, reason="not a ready bundle of the asset")
        return
    manifest = await ctx.storage.read_manifest(folder)
    if manifest is None:
        return  # written anew with the bundle when the asset next changes
    text = outtray_readme.readme_of(
        manifest["asset"],
        asset_id,
        ctx.settings.deliver_scan_seconds,
        ctx.settings.style,
        manifest.get("request"),
    ).encode()
    if hashlib.sha256(text).hexdigest() != task.payload.get("sha256"):
        # Asked by a process with other settings (a change being rolled out):
        # no README.txt written back and forth; the scan asks again with the
        # bundle's next revision.
        log.info("readme.not_rewritten", folder=folder, reason="asked with other settings")
        return
    listed = [f for f in manifest["files"] if f["path"] != outtray.README_PATH]
    async with ctx.storage.stage(folder) as staging:
        size, digest = await staging.write_bytes(outtray.README_PATH, text)
        note = bundle.BundleFile(outtray.README_PATH, size, digest, "note").entry()
        updated = {
            **manifest,
            "revision": manifest["revision"] + 1,
            "files": [*listed, note],
        }
        await ctx.still_mine()
        blocked = await staging.publish(bundle.manifest_bytes(updated), [])
    if blocked:
        log.warning("readme.blocked", paths=blocked)
    log.info("readme.rewritten", folder=folder, revision=updated["revision"])


async def write_track(iconik: IconikClient, asset_id: str, track: captions.Track) -> str:
    """Make `track` the asset's one track of its language and kind; its subtitle id."""
    language, cc = track.name.language, track.name.closed_captions
    try:
        same = [
            s
            for s in await iconik.list_subtitles(asset_id)
            if str(s.get("language", "")).lower() == language.lower()
            and bool(s.get("closed_captions")) == cc
        ]
    except NotFound:
        raise TaskFailed(
            f"asset {asset_id} is not in Iconik any more (deleted, or not visible to the "
            "application token's user); nothing was delivered"
        ) from None
    body = {
        "language": language,
        "closed_captions": cc,
        "name": bundle.caption_label(language, cc),
    }
    # The track's text is sent in pieces (service/iconik/json_stream.py): a large
    # file is not held three times over while it goes.
    try:
        if same and same[0].get("format_id"):
            current = same[0]
            fields = {
                **body,
                "language": current["language"],  # Iconik's spelling of it
                "name": current.get("name") or body["name"],
                "format_id": current["format_id"],
            }
            replaced = await iconik.update_subtitle(
                asset_id, current["id"], JsonStream(fields, "content", track.webvtt)
            )
            return str(replaced.get("id") or current["id"])
        fmt = await iconik.create_format(
            asset_id,
            {
                "name": "SUBTITLES",
                "metadata": [
                    {
                        "subtitle_language": language,
                        "subtitle_closed_captions": "true" if cc else "false",
                    }
                ],
            },
        )
        fields = {**body, "format_id": fmt["id"]}
        created = await iconik.create_subtitle(
            asset_id, JsonStream(fields, "content", track.webvtt)
        )
        return str(created["id"])
    except CredentialsRejected as exc:
        raise CredentialsRejected(f"{exc}; {_ROLES}") from None


async def report(
    ctx: TaskContext,
    metrics: Metrics,
    task: Task,
    outcome: TaskOutcome,
    detail: Any,
    failure: TaskFailed | None = None,
) -> None:
    """How a delivery ended, for the metrics and as an Iconik job (best-effort).

    `failure`: what a FAILED task raised, if it ended by raising TaskFailed
    (a CaptionRefused is counted as refused); `detail` is its reason as shown."""
    if outcome == TaskOutcome.DONE:
        label = CaptionDeliveryOutcome.DELIVERED
    elif outcome == TaskOutcome.RETRIED:
        label = CaptionDeliveryOutcome.RETRIED
    elif outcome == TaskOutcome.FAILED:
        refused = isinstance(failure, CaptionRefused)
        label = CaptionDeliveryOutcome.REFUSED if refused else CaptionDeliveryOutcome.FAILED
    else:
        return
    metrics.caption_deliveries.labels(label).inc()
    if outcome == TaskOutcome.RETRIED or not ctx.settings.iconik_jobs:
        return
    wanted = task.payload
    kind = " CC" if wanted.get("closed_captions") else ""
    path = wanted.get("path", "")
    now = datetime.fromtimestamp(ctx.clock(), UTC).isoformat()
    job: dict[str, Any] = {
        "title": f"Captions delivered: {wanted.get('title', '')} ({wanted.get('language')}{kind})",
        "type": "CUSTOM",
        "custom_type": "caption-bridge",
        "metadata": {"caption_bridge_request_id": task.request_id},
        "object_type": "assets",
        "object_id": task.asset_id,
        "status": "FINISHED" if outcome == TaskOutcome.DONE else "FAILED",
        "message": f"{path} is the asset's track now"
        if outcome == TaskOutcome.DONE
        else str(detail),
        "completed_at": now,
    }
    if outcome == TaskOutcome.FAILED:
        job["error_message"] = str(detail)
    try:
        await ctx.iconik.create_job(job)
    except IconikError as exc:
        log.warning("job.not_created", error=str(exc))
