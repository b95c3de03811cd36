"""Step 1 of a build: gather what Iconik says about an asset, as one value.

`gather` makes the `AssetSnapshot` that `service.work.build` plans and writes
from: the asset, the media to bundle (`MediaSource`: the best finished
proxy, else the original file), its caption tracks (`CaptionSource`, at
most MAX_TRACKS_PER_ASSET) and its metadata. A proxy still transcoding is a
wait (`ProxyNotReady`), not a failure. Two reads from Iconik wait until the
bundle is being written: each track (`read_track`, capped at
MAX_CAPTION_BYTES), and the media's download URL (`signed_url`), asked for
only when the bundle does not already hold that media.

A click's build takes the asset, its proxies (with signed URLs), files and
metadata from Iconik's search of the click's assets (service/work/bulk_reads.py),
and lists only the subtitles itself. A refresh, an asset the search does not
have yet, or one whose proxy is not finished in the search, reads per asset.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from service.bundle import manifest as bundle
from service.bundle import preview_data
from service.iconik.client import CredentialsRejected, IconikClient, NotFound, ResponseTooLarge
from service.iconik.paths import checked_download_url
from service.ids import is_iconik_id
from service.logging import get_logger
from service.queue import Task, TaskKind
from service.work.bulk_reads import SearchDocument
from service.work.tasks import ProxyNotReady, TaskContext, TaskFailed

# Under the build's name: these lines were the build's before this module
# was split from it, and whoever follows the logs follows them there.
log = get_logger("service.work.build")

# The caption tracks of one asset that go into its bundle, at most, in
# Iconik's order; the others are left out, each with its reason in
# project.json (`tracks_skipped`). Each track is read whole (for the .srt
# made from it and for the preview page, which embeds it), at most
# MAX_CAPTION_BYTES of it: this bounds what one build holds.
MAX_TRACKS_PER_ASSET = 100
_LANGUAGE_CODE = re.compile(r"[A-Za-z0-9_-]{1,64}")
# A search document's parts that are not the asset's own fields.
_DOCUMENT_ONLY = ("proxies", "files", "metadata", "object_type")


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


def usable_language(language: str) -> bool:
    """A language code that can be a path segment ("en", "pt-BR", "zh_Hant")."""
    return _LANGUAGE_CODE.fullmatch(language) is not None


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
    """What Iconik says about the asset: from the search of a click's assets when
    it has the asset (service/work/bulk_reads.py), else read per asset."""
    if task.kind == TaskKind.BUILD and ctx.bulk_reads is not None:
        found = await ctx.bulk_reads.document(
            ctx.iconik, task.request_id, asset_id, ctx.settings.metadata_view_ids
        )
        snapshot = await _from_search(ctx, asset_id, found) if found is not None else None
        if snapshot is not None:
            return snapshot
        log.info("bundle.read_per_asset", found_by_search=found is not None)
    return await _per_asset(ctx, task, asset_id)


async def _per_asset(ctx: TaskContext, task: Task, asset_id: str) -> AssetSnapshot:
    """Every read its own call: what a webhook's refresh does (the search index may lag)."""
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
    metadata = await _metadata(ctx, asset_id)
    return _snapshot(asset_id, asset, proxy, files, subtitles, metadata)


async def _from_search(
    ctx: TaskContext, asset_id: str, found: SearchDocument
) -> AssetSnapshot | None:
    """The snapshot from the asset's search document and its subtitle listing (which
    the search does not hold); None when the document shows no finished proxy (the
    per-asset reads then wait for it, or take the original), or an asset that is
    not ACTIVE in it."""
    document = found.document
    if document.get("status", "ACTIVE") != "ACTIVE":  # deleted since: as Iconik says per asset
        return None
    proxies = [p for p in document.get("proxies") or [] if isinstance(p, dict) and p.get("id")]
    proxy = pick_proxy(proxies, ctx.settings.proxy_max_height)
    if proxy is None:
        return None
    subtitles = await ctx.iconik.list_subtitles(asset_id)
    files = [f for f in document.get("files") or [] if isinstance(f, dict) and f.get("id")]
    asset = {k: v for k, v in document.items() if k not in _DOCUMENT_ONLY}
    by_field = document.get("metadata")
    by_field = by_field if isinstance(by_field, dict) else {}
    metadata: dict[str, Any] = {}
    for view_id in ctx.settings.metadata_view_ids:
        fields = found.view_fields.get(view_id, frozenset())
        metadata.update(bundle.flatten_metadata({k: v for k, v in by_field.items() if k in fields}))
    return _snapshot(asset_id, asset, proxy, files if subtitles else [], subtitles, metadata)


def _snapshot(
    asset_id: str,
    asset: dict[str, Any],
    proxy: dict[str, Any] | None,
    files: list[dict[str, Any]],
    subtitles: list[dict[str, Any]],
    metadata: dict[str, Any],
) -> AssetSnapshot:
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
            str(s.get("language") or "und"),
            bool(s.get("closed_captions")),
            srt_by_format.get(s.get("format_id") or ""),
        )
        for s in subtitles
    ]
    # A language becomes a segment of the track's path: one that could steer
    # it (a "/", "..", a space) leaves that track out, not the whole bundle.
    unusable = "Iconik's language code of the track cannot be part of an Iconik path"
    skipped = [c.skipped(unusable) for c in captions if not usable_language(c.language)]
    captions = [c for c in captions if usable_language(c.language)]
    over = f"more than MAX_TRACKS_PER_ASSET ({MAX_TRACKS_PER_ASSET}) tracks on the asset"
    skipped += [c.skipped(over) for c in captions[MAX_TRACKS_PER_ASSET:]]
    return AssetSnapshot(asset, media, captions[:MAX_TRACKS_PER_ASSET], metadata, skipped)


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
    subtitle_formats = {s["format_id"] for s in subtitles if s.get("format_id")}
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


async def field_labels(ctx: TaskContext, view_ids: list[str | None]) -> dict[str, dict[str, str]]:
    """Each metadata view's {field name: label}, from its definition, so the
    page shows a form's labels instead of its keys. A view that cannot be read
    (gone, or the token lacks can_read_metadata_views) shows its keys: that
    is no reason to hold the bundle back."""
    labels: dict[str, dict[str, str]] = {}
    now = ctx.clock()
    for view_id in dict.fromkeys(v for v in view_ids if v):
        if not is_iconik_id(view_id):  # an id, never a path
            continue
        key = (ctx.iconik.base_url, view_id)
        cached = _VIEW_LABELS.get(key)
        if cached is not None and now - cached[0] < VIEW_LABELS_SECONDS:
            labels[view_id] = cached[1]
            continue
        try:
            definition = await ctx.iconik.get_json(f"/API/metadata/v1/views/{view_id}/")
        except (NotFound, CredentialsRejected) as exc:
            log.info("metadata.view_labels_unavailable", view_id=view_id, reason=str(exc))
            continue
        labels[view_id] = preview_data.labels_of(definition)
        if len(_VIEW_LABELS) >= MAX_CACHED_VIEWS:
            _VIEW_LABELS.pop(next(iter(_VIEW_LABELS)))  # the oldest first
        _VIEW_LABELS[key] = (now, labels[view_id])
    return labels


# A click of 1,000 assets names one form and the same metadata views: their
# labels are read once per process every few minutes, not once per asset
# (an admin's relabelled field shows within that time).
VIEW_LABELS_SECONDS = 300.0
MAX_CACHED_VIEWS = 256
_VIEW_LABELS: dict[tuple[str, str], tuple[float, dict[str, str]]] = {}


async def read_track(
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
    url = checked_download_url(url, f"the .srt file of {name}")  # from Iconik: http(s) only
    try:
        srt = await iconik.read_capped(url, limit=limit, what=f"the .srt file of {name}")
    except ResponseTooLarge as exc:
        return f"Iconik's .srt file of the track is larger than MAX_CAPTION_BYTES {exc.comparison}"
    return vtt, srt


async def signed_url(iconik: IconikClient, asset_id: str, media: MediaSource) -> str:
    if media.signed_url:
        return media.signed_url
    if media.source == "proxy":
        return await iconik.proxy_download_url(asset_id, media.iconik_id)
    return await iconik.file_download_url(asset_id, media.iconik_id)
