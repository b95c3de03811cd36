"""The bundle tasks: `build` (a click), `refresh` (the asset changed), `withdraw` (deleted).

A build reads as three steps:
1. gather: everything the bundle needs to know from Iconik, as one value
   (`AssetSnapshot`, `service.work.gather`); a proxy still transcoding is a wait,
   not a failure;
2. plan: which folder, which files go where, what is the captioner's, what
   is stale, what media is already there (`_target`, `service.bundle.plan`,
   pure), and who asked (`_request_of`);
3. write: stream what changed into a staging area (`_write_media`,
   `_write_captions`, `_write_readme`, `_write_page`) and publish it, the
   manifest last, only while this worker still holds the task; then the
   queue records it (`_record`).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, NamedTuple

from service.bundle import due_dates, outtray, outtray_readme, plan
from service.bundle import manifest as bundle
from service.captions import track as captions
from service.logging import get_logger
from service.notify import events as notify_events
from service.queue import Event, Expanded, RequestKind, Task, Work
from service.storage import Staging
from service.work import caption_status, preview_publish
from service.work.gather import (
    AssetSnapshot,
    MediaSource,
    field_labels,
    gather,
    read_track,
    signed_url,
)
from service.work.tasks import TaskContext, TaskFailed

log = get_logger("service.work.build")


async def build(ctx: TaskContext, task: Task, existing: list[str] | None = None) -> Expanded:
    """Build or rebuild the asset's bundle; `existing` is its folders, if already looked up.

    Its notification: `published` for a new bundle, `refreshed` (with what
    changed) for a rebuilt one, none when a rebuild changed nothing."""
    asset_id = task.asset_id or ""
    if not bundle.is_valid_asset_id(asset_id):
        raise TaskFailed(f"{asset_id!r} is not an Iconik asset id")
    snapshot = await gather(ctx, task, asset_id)
    target = await _target(ctx, asset_id, snapshot, existing)
    request, due, metadata_labels = await _request_of(ctx, task, target)
    media, where = snapshot.media, target.placement.where

    async with ctx.storage.stage(target.folder) as staging:
        files = [await _write_media(ctx, staging, asset_id, media, target.placement)]
        captions_written = await _write_captions(ctx, staging, asset_id, snapshot, where)
        files += captions_written.files
        facts = bundle.asset_facts(
            snapshot.asset,
            proxy=media.record if media.source == "proxy" else None,
            metadata=snapshot.metadata,
            web_url=f"{ctx.settings.iconik_url}/asset/{asset_id}",
            metadata_labels=metadata_labels,
        )
        files.append(await _write_readme(ctx, staging, asset_id, facts, request))
        manifest, files = await _write_page(
            ctx, staging, target, files, captions_written, facts, request
        )
        await ctx.still_mine()
        # Known before it is visible, so no crash can leave a bundle the
        # registry does not know of.
        await ctx.registry.record(asset_id, target.folder, "publishing")
        blocked = await staging.publish(
            bundle.manifest_bytes(manifest), target.placement.stale(f.path for f in files)
        )
    if blocked:  # a captioner put something in the way; the scan says so in ERRORS.txt
        log.warning("bundle.files_blocked", folder=target.folder, paths=blocked)
    await _record(ctx, asset_id, target.folder, manifest, facts, request, due)
    log.info("bundle.published", folder=target.folder, revision=target.revision, files=len(files))
    if target.previous is None:  # first published: the asset says so (refreshes change nothing)
        await caption_status.write(ctx, asset_id, caption_status.sent(ctx.clock()))
        return Expanded([], events=[notify_events.published(ctx, task, manifest, target.folder)])
    event = notify_events.refreshed(ctx, task, target.previous, manifest, target.folder)
    return Expanded([], events=[event] if event else [])


# -- the steps of a build, in their order ----------------------------------------------


@dataclass(frozen=True)
class _Target:
    """The folder a build publishes to, and what it held before."""

    folder: str
    previous: dict[str, Any] | None  # its project.json; None for a new bundle
    revision: int
    placement: plan.Placement


async def _target(
    ctx: TaskContext, asset_id: str, snapshot: AssetSnapshot, existing: list[str] | None
) -> _Target:
    """The asset's folder (the registry's, else a new one named by its title) and the plan."""
    if existing is None:
        existing = await ctx.registry.find(asset_id)
    folder = existing[0] if existing else bundle.folder_name(snapshot.asset.get("title"), asset_id)
    # Read even for a folder the registry did not know: a bundle published
    # by a worker that died before recording it must still be refreshed as
    # one, never overwritten as if it were new.
    previous = await ctx.storage.read_manifest(folder)
    revision = int(previous.get("revision", 0)) + 1 if previous else 1
    placement = await _placement(ctx, folder, snapshot.wanted_paths, previous, revision)
    return _Target(folder, previous, revision, placement)


async def _placement(
    ctx: TaskContext,
    folder: str,
    wanted: list[str],
    previous: dict[str, Any] | None,
    revision: int,
) -> plan.Placement:
    on_disk: dict[str, str | None] = {}
    if previous is not None:  # a new folder holds nothing yet
        sizes = {f["path"]: f["size"] for f in previous.get("files", [])}
        for path in plan.paths_to_check(wanted, previous):
            on_disk[path] = await ctx.storage.file_digest(folder, path, size=sizes.get(path))
    placement = plan.place(wanted, previous=previous, on_disk=on_disk, revision=revision)
    if placement.captioner_edits:
        log.info("bundle.captioner_files_kept", paths=placement.captioner_edits)
    return placement


async def _request_of(
    ctx: TaskContext, task: Task, target: _Target
) -> tuple[bundle.RequestFacts, due_dates.Due, dict[str, str]]:
    """Who asked, with the form's labels and due date; and the labels of the asset's metadata."""
    request = await _request_facts(ctx, task, target.folder, target.previous)
    # The labels of the form's fields and of the asset's metadata, for the page.
    labels = await field_labels(ctx, [request.metadata_view_id, *ctx.settings.metadata_view_ids])
    form_labels = labels.get(request.metadata_view_id or "", {})
    due = due_dates.due_of(
        request.form_values, ctx.settings.due_date_field, ctx.settings.due_date_zone
    )
    if due.at is None and due.note:
        log.warning("bundle.due_date_not_read", note=due.note)
    request = dataclasses.replace(
        request, form_labels=form_labels, due_date=due.iso, due_date_note=due.note
    )
    metadata_labels = {
        name: label
        for view_id in ctx.settings.metadata_view_ids
        for name, label in labels.get(view_id, {}).items()
    }
    return request, due, metadata_labels


async def _write_media(
    ctx: TaskContext,
    staging: Staging,
    asset_id: str,
    media: MediaSource,
    placement: plan.Placement,
) -> bundle.BundleFile:
    """The proxy (or original): kept when the bundle already holds this one, else downloaded."""
    kept = placement.reusable(media.path, iconik_id=media.iconik_id, size=media.size)
    if kept is not None:
        reused = bundle.BundleFile.from_entry(kept)
        log.info("bundle.media_reused", path=media.path)
        return reused
    url = await signed_url(ctx.iconik, asset_id, media)
    what = f"the {media.source} of asset {asset_id}"
    async with ctx.iconik.download(url, what=what) as download:
        size, digest = await staging.write_body(placement.where[media.path], download)
    return bundle.BundleFile(
        placement.where[media.path],
        size,
        digest,
        "media",
        source=media.source,
        format=media.record.get("format"),
        iconik_id=media.iconik_id,
    )


class _CaptionsWritten(NamedTuple):
    files: list[bundle.BundleFile]
    texts: dict[str, str]  # the WebVTT of each track by its path, for the page
    skipped: list[dict[str, Any]]  # the tracks left out, and why


async def _write_captions(
    ctx: TaskContext,
    staging: Staging,
    asset_id: str,
    snapshot: AssetSnapshot,
    where: dict[str, str],
) -> _CaptionsWritten:
    """Each caption track as WebVTT, and as SubRip (Iconik's own, or converted)."""
    files: list[bundle.BundleFile] = []
    caption_texts: dict[str, str] = {}
    skipped = list(snapshot.tracks_skipped)
    for caption in snapshot.captions:
        lang, cc = caption.language, caption.closed_captions
        track = await read_track(ctx, asset_id, caption)
        if isinstance(track, str):  # over the cap: the bundle goes on without it
            log.warning("bundle.track_skipped", language=lang, closed_captions=cc, reason=track)
            skipped.append(caption.skipped(track))
            continue
        vtt, srt = track
        path, srt_path = where[caption.path], where[caption.srt_path]
        size, digest = await staging.write_bytes(path, vtt)
        files.append(bundle.BundleFile(path, size, digest, "caption", lang, cc, "webvtt", "webvtt"))
        text = caption_texts[path] = vtt.decode("utf-8", "replace")
        del vtt
        if srt is not None:
            source = "srt"
        else:  # for captioning tools that take SubRip only
            try:
                srt = captions.webvtt_to_srt(text).encode()
            except captions.Refused as exc:
                log.warning("bundle.srt_not_converted", path=path, reason=str(exc))
                continue
            source = "webvtt"
        size, digest = await staging.write_bytes(srt_path, srt)
        files.append(bundle.BundleFile(srt_path, size, digest, "caption", lang, cc, "srt", source))
    return _CaptionsWritten(files, caption_texts, skipped)


async def _write_readme(
    ctx: TaskContext,
    staging: Staging,
    asset_id: str,
    facts: bundle.AssetFacts,
    request: bundle.RequestFacts,
) -> bundle.BundleFile:
    """The out-tray's instructions for the captioner."""
    # They go to their own path, never beside: the contract reserves
    # deliver/README.txt for the service.
    readme = outtray_readme.readme_of(
        dataclasses.asdict(facts),
        asset_id,
        ctx.settings.deliver_scan_seconds,
        ctx.settings.style,
        dataclasses.asdict(request),
    ).encode()
    size, digest = await staging.write_bytes(outtray.README_PATH, readme)
    return bundle.BundleFile(outtray.README_PATH, size, digest, "note")


async def _write_page(
    ctx: TaskContext,
    staging: Staging,
    target: _Target,
    files: list[bundle.BundleFile],
    captions_written: _CaptionsWritten,
    facts: bundle.AssetFacts,
    request: bundle.RequestFacts,
) -> tuple[dict[str, Any], list[bundle.BundleFile]]:
    """The preview page, and the manifest that lists it: (the manifest, every file)."""
    manifest_for = functools.partial(
        bundle.build_manifest,
        asset=facts,
        request=request,
        revision=target.revision,
        generated_at=ctx.iso_now(),
        captioner_edits=target.placement.captioner_edits,
        tracks_skipped=captions_written.skipped,
        # What came back from the captioners stays on record through refreshes.
        deliveries=(target.previous or {}).get("deliveries", []),
    )
    # The page shows the manifest's files; the manifest lists the page.
    page = await preview_publish.page_bytes(
        ctx, target.folder, manifest_for(files=files), captions_written.texts
    )
    preview = target.placement.where[bundle.PREVIEW]
    size, digest = await staging.write_bytes(preview, page)
    files = [*files, bundle.BundleFile(preview, size, digest, "preview")]
    return manifest_for(files=files), files


async def _record(
    ctx: TaskContext,
    asset_id: str,
    folder: str,
    manifest: dict[str, Any],
    facts: bundle.AssetFacts,
    request: bundle.RequestFacts,
    due: due_dates.Due,
) -> None:
    """What the queue keeps of the published bundle: its state, and the open work."""
    await ctx.registry.record(asset_id, folder, manifest["status"])
    await ctx.registry.record_work(
        Work(
            asset_id=asset_id,
            folder=folder,
            title=facts.title,
            request_id=request.request_id,
            due_at=due.at.timestamp() if due.at is not None else None,
            due_date=due.iso,
            languages=due_dates.languages_asked(
                request.form_values, ctx.settings.target_languages_field
            ),
            request={k: getattr(request, k) for k in _RECORDED},
        )
    )


# The facts of a request a build records in the queue (Work.request): those
# each build does not work out again from them.
_RECORDED = (
    "request_id",
    "action_id",
    "context",
    "requested_by",
    "requested_at",
    "metadata_view_id",
    "form_values",
)


async def _request_facts(
    ctx: TaskContext, task: Task, folder: str, previous: dict[str, Any] | None
) -> bundle.RequestFacts:
    """Who asked for the bundle: this custom action, or (for a webhook
    refresh) the request its last build recorded in the queue, never the
    folder's project.json (a captioner can rewrite the brief or the due
    date there). Only a bundle built before the queue recorded requests
    takes them from its project.json, once: its rebuild records them."""
    if task.request_kind != RequestKind.CUSTOM_ACTION:
        work = await ctx.registry.work_of(folder, task.asset_id or "")
        if work is not None and work.request is not None:
            recorded = {k: v for k, v in work.request.items() if k in _RECORDED}
            if isinstance(recorded.get("request_id"), str):
                return bundle.RequestFacts(**recorded)
        if previous and previous.get("request"):
            return bundle.RequestFacts(**previous["request"])
    request = task.payload
    return bundle.RequestFacts(
        request_id=task.request_id,
        action_id=request.get("action_id"),
        context=request.get("context"),
        requested_by=request.get("user_id"),
        requested_at=request.get("date_created"),
        metadata_view_id=request.get("metadata_view_id"),
        form_values=bundle.flatten_metadata(request.get("metadata_values")),
    )


async def refresh(ctx: TaskContext, task: Task) -> Expanded | None:
    """An asset changed in Iconik: rebuild its bundle in place, if it has one."""
    existing = await ctx.registry.find(task.asset_id or "")
    if not existing:
        log.info("refresh.no_bundle")
        return None
    return await build(ctx, task, existing)


async def withdraw(ctx: TaskContext, task: Task) -> Expanded:
    """The asset was deleted: mark every bundle of it withdrawn; delete nothing."""
    storage = ctx.storage
    events: list[Event] = []
    for folder in await ctx.registry.find(task.asset_id or ""):
        manifest = await storage.read_manifest(folder)
        if manifest is None or manifest.get("status") == "withdrawn":
            continue
        withdrawn = bundle.withdraw_manifest(
            manifest,
            withdrawn_at=ctx.iso_now(),
            event_request_id=task.payload.get("request_id"),
        )
        # The note and the page's banner are the service's files: listed in
        # the manifest, so a restore (refresh) replaces or removes them.
        wanted = [bundle.PREVIEW, bundle.WITHDRAWN_NOTE]
        placement = await _placement(ctx, folder, wanted, manifest, withdrawn["revision"])
        note = bundle.withdrawn_note(withdrawn).encode()
        page = await preview_publish.page_bytes(ctx, folder, withdrawn)
        withdrawn["files"] = [f for f in withdrawn["files"] if f["path"] not in wanted] + [
            bundle.BundleFile.of(placement.where[bundle.PREVIEW], page, "preview").entry(),
            bundle.BundleFile.of(placement.where[bundle.WITHDRAWN_NOTE], note, "note").entry(),
        ]
        withdrawn["captioner_edits"] = placement.captioner_edits
        if not withdrawn["captioner_edits"]:
            del withdrawn["captioner_edits"]
        async with storage.stage(folder) as staging:
            await staging.write_bytes(placement.where[bundle.WITHDRAWN_NOTE], note)
            await staging.write_bytes(placement.where[bundle.PREVIEW], page)
            await ctx.still_mine()
            blocked = await staging.publish(bundle.manifest_bytes(withdrawn), [])
        if blocked:
            log.warning("bundle.files_blocked", folder=folder, paths=blocked)
        await ctx.registry.record(task.asset_id or "", folder, "withdrawn")
        log.info("bundle.withdrawn", folder=folder, revision=withdrawn["revision"])
        await caption_status.write(ctx, task.asset_id or "", caption_status.WITHDRAWN)
        if not events:  # one notification per withdrawal, however many folders
            work = await ctx.registry.work_of(folder, task.asset_id or "")
            events.append(notify_events.withdrawn(ctx, task, work, folder))
    return Expanded([], events=events)
