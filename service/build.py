"""The bundle tasks: `build` (a click), `refresh` (the asset changed), `withdraw` (deleted).

A build reads as three steps:
1. gather: everything the bundle needs to know from Iconik, as one value
   (`AssetSnapshot`); a proxy still transcoding is a wait, not a failure;
2. plan: which files go where, what is the captioner's, what is stale, what
   media is already there (`service.plan`, pure);
3. write: stream what changed into a staging area and publish it, the
   manifest last, only while this worker still holds the task.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from service import bundle, captions, outtray, plan, preview
from service.iconik import IconikClient, NotFound, ResponseTooLarge
from service.logging import get_logger, redact
from service.queue import Task
from service.storage import NotRegularFile, check_relative
from service.storage import TooLarge as StorageTooLarge
from service.tasks import ProxyNotReady, TaskContext, TaskFailed

log = get_logger("service.build")

# The caption tracks of one asset that go into its bundle, at most, in
# Iconik's order; the others are left out, each with its reason in
# project.json (`tracks_skipped`). Each track is read whole (for the .srt
# made from it and for the preview page, which embeds it), at most
# MAX_CAPTION_BYTES of it: this bounds what one build holds.
MAX_TRACKS_PER_ASSET = 100


@dataclass(frozen=True)
class MediaSource:
    path: str  # where the bundle wants it
    iconik_id: str
    size: int | None
    source: str  # "proxy" | "original"
    record: dict[str, Any]
    signed_url: str | None  # from the listing, when Iconik gave one


@dataclass(frozen=True)
class CaptionSource:
    language: str
    closed_captions: bool
    srt: dict[str, Any] | None  # Iconik's original .srt file of this track, if any

    @property
    def path(self) -> str:
        return bundle.caption_path(self.language, self.closed_captions)

    @property
    def srt_path(self) -> str:
        return bundle.caption_path(self.language, self.closed_captions, "srt")

    def skipped(self, reason: str) -> dict[str, Any]:
        """How project.json records the track left out of the bundle."""
        return {
            "language": self.language,
            "closed_captions": self.closed_captions,
            "reason": reason,
        }


@dataclass(frozen=True)
class AssetSnapshot:
    """What Iconik says about an asset, gathered once per build."""

    asset: dict[str, Any]
    media: MediaSource
    captions: list[CaptionSource]
    metadata: dict[str, Any] = field(default_factory=dict)
    # Tracks Iconik has that the bundle leaves out, known before reading any.
    tracks_skipped: list[dict[str, Any]] = field(default_factory=list)

    @property
    def wanted_paths(self) -> list[str]:
        # Every track also as SRT: Iconik's own, or converted from its WebVTT.
        paths = [self.media.path, bundle.PREVIEW]
        for caption in self.captions:
            paths += [caption.path, caption.srt_path]
        return paths


# -- 1. gather ------------------------------------------------------------------


def pick_proxy(proxies: list[dict[str, Any]], max_height: int) -> dict[str, Any] | None:
    """The best finished proxy: MP4/H.264 first, then the largest up to `max_height`.

    A proxy above the cap is taken only when there is nothing at or below
    it, and then the smallest such.
    """
    ready = [p for p in proxies if p.get("status") == "CLOSED"]
    if not ready:
        return None

    def rank(proxy: dict[str, Any]) -> tuple[bool, bool, int]:
        height = int((proxy.get("resolution") or {}).get("height") or 0)
        within = height <= max_height
        mp4_h264 = (proxy.get("format") or "").upper() == "MP4" and (
            proxy.get("codec") or ""
        ).lower() in ("h264", "avc", "avc1")
        return (within, mp4_h264, height if within else -height)

    return max(ready, key=rank)


def pick_original(files: list[dict[str, Any]], exclude_formats: set[str]) -> dict[str, Any] | None:
    candidates = [
        f
        for f in files
        if f.get("status") == "CLOSED"
        and f.get("type", "FILE") == "FILE"
        and f.get("format_id") not in exclude_formats
    ]
    return max(candidates, key=lambda f: f.get("size") or 0, default=None)


async def gather(ctx: TaskContext, task: Task, asset_id: str) -> AssetSnapshot:
    iconik = ctx.iconik
    try:
        asset = await iconik.get_asset(asset_id)
    except NotFound:
        raise TaskFailed(
            f"asset {asset_id} not found in Iconik: deleted, or not visible to the "
            "application token's user"
        ) from None
    proxy = await _usable_proxy(ctx, task, asset_id)
    subtitles = await iconik.list_subtitles(asset_id)
    # One listing of the asset's files serves both the original-media
    # fallback and the lookup of each track's original .srt.
    files = await iconik.list_files(asset_id) if subtitles or proxy is None else []
    if proxy is not None:
        media = MediaSource(
            bundle.media_path(proxy.get("filename") or proxy.get("name"), "proxy.mp4"),
            proxy["id"],
            proxy.get("size"),
            "proxy",
            proxy,
            proxy.get("url"),
        )
    else:
        media = _original_media(asset_id, files, subtitles)
    srt_by_format = {
        f["format_id"]: f
        for f in files
        if f.get("format_id")
        and (f.get("original_name") or f.get("name") or "").lower().endswith(".srt")
    }
    captions = [
        CaptionSource(
            s.get("language") or "und",
            bool(s.get("closed_captions")),
            srt_by_format.get(s.get("format_id") or ""),
        )
        for s in subtitles
    ]
    over = f"more than MAX_TRACKS_PER_ASSET ({MAX_TRACKS_PER_ASSET}) tracks on the asset"
    skipped = [c.skipped(over) for c in captions[MAX_TRACKS_PER_ASSET:]]
    return AssetSnapshot(
        asset,
        media,
        captions[:MAX_TRACKS_PER_ASSET],
        await _metadata(ctx, asset_id),
        skipped,
    )


async def _usable_proxy(ctx: TaskContext, task: Task, asset_id: str) -> dict[str, Any] | None:
    """The proxy to use; None when the original file should be used instead."""
    proxies = await ctx.iconik.list_proxies(asset_id)
    proxy = pick_proxy(proxies, ctx.settings.proxy_max_height)
    if proxy is not None:
        return proxy
    waited = ctx.clock() - (task.first_claimed_at or ctx.clock())
    limit = ctx.settings.proxy_wait_seconds
    if waited < limit:
        pending = [p.get("status") for p in proxies]
        state = f"proxies {pending}" if pending else "no proxy yet"
        raise ProxyNotReady(
            f"asset {asset_id}: {state}; waiting for Iconik to finish the proxy "
            f"({waited:.0f}s of PROXY_WAIT_SECONDS={limit:.0f}s)"
        )
    if not ctx.settings.allow_original_media:
        raise TaskFailed(
            f"asset {asset_id} has no usable proxy after waiting {limit:.0f}s "
            "(PROXY_WAIT_SECONDS); generate a proxy in Iconik and send it again, or set "
            "ALLOW_ORIGINAL_MEDIA=true to use the original file"
        )
    return None


def _original_media(
    asset_id: str, files: list[dict[str, Any]], subtitles: list[dict[str, Any]]
) -> MediaSource:
    # Subtitle files are files of the asset too; they are not its media.
    subtitle_formats = {s.get("format_id") for s in subtitles if s.get("format_id")}
    original = pick_original(files, subtitle_formats)
    if original is None:
        raise TaskFailed(f"asset {asset_id} has neither a proxy nor an original file")
    return MediaSource(
        bundle.media_path(original.get("original_name") or original.get("name"), "media"),
        original["id"],
        original.get("size"),
        "original",
        original,
        original.get("url"),
    )


async def _metadata(ctx: TaskContext, asset_id: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for view_id in ctx.settings.metadata_view_ids:
        try:
            view = await ctx.iconik.metadata_view(asset_id, view_id)
        except NotFound:
            log.info("metadata.view_empty", view_id=view_id)
            continue
        values.update(bundle.flatten_metadata(view.get("metadata_values")))
    return values


async def _read_track(
    ctx: TaskContext, asset_id: str, caption: CaptionSource
) -> tuple[bytes, bytes | None] | str:
    """The track's WebVTT and Iconik's .srt of it (if any), each capped at
    MAX_CAPTION_BYTES; or, for a track over the cap, why it is left out."""
    iconik, limit = ctx.iconik, ctx.settings.max_caption_bytes
    lang, cc = caption.language, caption.closed_captions
    name = f"the {bundle.caption_label(lang, cc)} track of asset {asset_id}"
    try:
        vtt = await iconik.read_capped(
            iconik.subtitle_path(asset_id, lang, cc), limit=limit, what=name, api=True
        )
    except ResponseTooLarge as exc:
        return f"Iconik's track is larger than MAX_CAPTION_BYTES {exc.comparison}"
    if caption.srt is None:
        return vtt, None
    url = caption.srt.get("url") or await iconik.file_download_url(asset_id, caption.srt["id"])
    try:
        srt = await iconik.read_capped(url, limit=limit, what=f"the .srt file of {name}")
    except ResponseTooLarge as exc:
        return f"Iconik's .srt file of the track is larger than MAX_CAPTION_BYTES {exc.comparison}"
    return vtt, srt


async def _signed_url(iconik: IconikClient, asset_id: str, media: MediaSource) -> str:
    if media.signed_url:
        return media.signed_url
    if media.source == "proxy":
        return await iconik.proxy_download_url(asset_id, media.iconik_id)
    return await iconik.file_download_url(asset_id, media.iconik_id)


# -- 2. plan, 3. write --------------------------------------------------------------


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


async def build(ctx: TaskContext, task: Task, existing: list[str] | None = None) -> None:
    """Build or rebuild the asset's bundle; `existing` is its folders, if already looked up."""
    asset_id = task.asset_id or ""
    if not bundle.is_valid_asset_id(asset_id):
        raise TaskFailed(f"{asset_id!r} is not an Iconik asset id")
    snapshot = await gather(ctx, task, asset_id)

    if existing is None:
        existing = await ctx.registry.find(asset_id)
    folder = existing[0] if existing else bundle.folder_name(snapshot.asset.get("title"), asset_id)
    # Read even for a folder the registry did not know: a bundle published
    # by a worker that died before recording it must still be refreshed as
    # one, never overwritten as if it were new.
    previous = await ctx.storage.read_manifest(folder)
    revision = int(previous.get("revision", 0)) + 1 if previous else 1
    placement = await _placement(ctx, folder, snapshot.wanted_paths, previous, revision)
    where = placement.where
    iconik, media = ctx.iconik, snapshot.media

    async with ctx.storage.stage(folder) as staging:
        files: list[bundle.BundleFile] = []
        kept = placement.reusable(media.path, iconik_id=media.iconik_id, size=media.size)
        if kept is not None:
            files.append(bundle.BundleFile.from_entry(kept))
            log.info("bundle.media_reused", path=media.path)
        else:
            url = await _signed_url(iconik, asset_id, media)
            what = f"the {media.source} of asset {asset_id}"
            async with iconik.download(url, what=what) as download:
                size, digest = await staging.write_body(where[media.path], download)
            files.append(
                bundle.BundleFile(
                    where[media.path],
                    size,
                    digest,
                    "media",
                    source=media.source,
                    format=media.record.get("format"),
                    iconik_id=media.iconik_id,
                )
            )

        caption_texts: dict[str, str] = {}
        skipped = list(snapshot.tracks_skipped)
        for caption in snapshot.captions:
            lang, cc = caption.language, caption.closed_captions
            track = await _read_track(ctx, asset_id, caption)
            if isinstance(track, str):  # over the cap: the bundle goes on without it
                log.warning("bundle.track_skipped", language=lang, closed_captions=cc, reason=track)
                skipped.append(caption.skipped(track))
                continue
            vtt, srt = track
            path, srt_path = where[caption.path], where[caption.srt_path]
            size, digest = await staging.write_bytes(path, vtt)
            files.append(
                bundle.BundleFile(path, size, digest, "caption", lang, cc, "webvtt", "webvtt")
            )
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
            files.append(
                bundle.BundleFile(srt_path, size, digest, "caption", lang, cc, "srt", source)
            )

        facts = bundle.asset_facts(
            snapshot.asset,
            proxy=media.record if media.source == "proxy" else None,
            metadata=snapshot.metadata,
            web_url=f"{ctx.settings.iconik_url}/asset/{asset_id}",
        )
        # The out-tray's instructions go to their own path, never beside: the
        # contract reserves deliver/README.txt for the service.
        readme = outtray.readme(
            facts.title, asset_id, facts.duration_seconds, ctx.settings.deliver_scan_seconds
        ).encode()
        size, digest = await staging.write_bytes(outtray.README_PATH, readme)
        files.append(bundle.BundleFile(outtray.README_PATH, size, digest, "note"))

        manifest_for = functools.partial(
            bundle.build_manifest,
            asset=facts,
            request=_request_facts(task, previous),
            revision=revision,
            generated_at=ctx.iso_now(),
            captioner_edits=placement.captioner_edits,
            tracks_skipped=skipped,
            # What came back from the captioners stays on record through refreshes.
            deliveries=(previous or {}).get("deliveries", []),
        )
        # The page shows the manifest's files; the manifest lists the page.
        page = redact(preview.render_preview(manifest_for(files=files), caption_texts)).encode()
        size, digest = await staging.write_bytes(where[bundle.PREVIEW], page)
        files.append(bundle.BundleFile(where[bundle.PREVIEW], size, digest, "preview"))
        manifest = manifest_for(files=files)
        await ctx.still_mine()
        # Known before it is visible, so no crash can leave a bundle the
        # registry does not know of.
        await ctx.registry.record(asset_id, folder, "publishing")
        blocked = await staging.publish(
            bundle.manifest_bytes(manifest), placement.stale(f.path for f in files)
        )
    if blocked:  # a captioner put something in the way; the scan says so in ERRORS.txt
        log.warning("bundle.files_blocked", folder=folder, paths=blocked)
    await ctx.registry.record(asset_id, folder, manifest["status"])
    log.info("bundle.published", folder=folder, revision=revision, files=len(files))


def _request_facts(task: Task, previous: dict[str, Any] | None) -> bundle.RequestFacts:
    """Who asked for the bundle: this custom action, or (for a webhook
    refresh) the request recorded when the bundle was first made."""
    if task.request_kind != "custom_action" and previous and previous.get("request"):
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


async def refresh(ctx: TaskContext, task: Task) -> None:
    """An asset changed in Iconik: rebuild its bundle in place, if it has one."""
    existing = await ctx.registry.find(task.asset_id or "")
    if not existing:
        log.info("refresh.no_bundle")
        return
    await build(ctx, task, existing)


async def _caption_texts(ctx: TaskContext, folder: str, files: Any) -> dict[str, str]:
    """The WebVTT tracks a manifest read back from the folder lists, as text for the
    page; an entry of another shape, or a file that is no longer a plain file
    under the cap, is left out (anyone may have edited the manifest or the file)."""
    texts: dict[str, str] = {}
    for entry in files if isinstance(files, list) else []:
        if not isinstance(entry, dict) or entry.get("kind") != "caption":
            continue
        path = entry.get("path")
        if not isinstance(path, str) or not path.endswith(".vtt"):
            continue
        try:
            data = await ctx.storage.read_file(
                folder, check_relative(path), limit=ctx.settings.max_caption_bytes
            )
        except (NotRegularFile, StorageTooLarge, ValueError):
            continue
        texts[path] = (data or b"").decode("utf-8", "replace")
    return texts


async def withdraw(ctx: TaskContext, task: Task) -> None:
    """The asset was deleted: mark every bundle of it withdrawn; delete nothing."""
    storage = ctx.storage
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
        captions = await _caption_texts(ctx, folder, withdrawn["files"])
        note = bundle.withdrawn_note(withdrawn).encode()
        page = redact(preview.render_preview(withdrawn, captions)).encode()
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
