"""Runs queued tasks: expand a request into assets, build, refresh, withdraw.

Each task ends one of three ways, and which one is decided here, in
`_settle`: done; retried later (Iconik or storage trouble, a proxy still
transcoding); or failed with a reason a person can act on. A task is leased
while it runs and the lease is renewed as long as the work goes on, so a
worker killed mid-download leaves a task that another worker (or this one,
restarted) picks up once the lease lapses.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import structlog

from service import bundle
from service.iconik import IconikClient, IconikError, NotFound
from service.jobs import JobReporter
from service.logging import get_logger
from service.metrics import Metrics
from service.queue import NewTask, Queue, QueueUnavailable, Task
from service.settings import Settings
from service.storage import Storage, StorageError

log = get_logger("service.worker")

_COLLECTION_DEPTH = 10


class TaskFailed(Exception):
    """The task cannot succeed by retrying; the message is the reason shown to people."""


class ProxyNotReady(Exception):
    """No usable proxy yet; Iconik may still be transcoding."""


@dataclass(frozen=True)
class MediaChoice:
    path: str
    url: str
    source: str  # "proxy" | "original"
    record: dict[str, Any]


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


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat()


class Worker:
    def __init__(
        self,
        settings: Settings,
        queue: Queue,
        iconik: IconikClient,
        storage: Storage,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
        owner: str | None = None,
        poll_interval: float = 1.0,
        proxy_retry_delay: Callable[[float], float] | None = None,
        lease_renewal: float = 30.0,
        jobs: JobReporter | None = None,
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.iconik = iconik
        self.storage = storage
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.owner = owner or f"worker-{uuid.uuid4().hex[:12]}"
        self.poll_interval = poll_interval
        # How long to wait before looking for a proxy again, given how long we
        # have waited so far: soon at first, then every minute at most.
        self.proxy_retry_delay = proxy_retry_delay or (lambda waited: min(60.0, max(2.0, waited)))
        self.lease_renewal = lease_renewal
        self.jobs = jobs or JobReporter(iconik, queue, enabled=settings.iconik_jobs)

    # -- the loop --------------------------------------------------------------

    async def run(self) -> None:
        """Run tasks until cancelled, `WORKER_CONCURRENCY` at a time."""
        log.info("worker.started", owner=self.owner, concurrency=self.settings.worker_concurrency)
        # The reporter's updaters send job progress beside the slots, so a
        # slot never waits on a slow PATCH; stopping flushes them.
        async with self.jobs.running(), anyio.create_task_group() as group:
            for slot in range(self.settings.worker_concurrency):
                group.start_soon(self._slot, slot)

    async def _slot(self, slot: int) -> None:
        while True:
            try:
                task = await self.queue.claim(self.owner)
            except QueueUnavailable as exc:
                log.error("worker.queue_unavailable", error=str(exc))
                await anyio.sleep(self.poll_interval * 5)
                continue
            if task is None:
                await anyio.sleep(self.poll_interval)
                continue
            try:
                await self.run_task(task)
            except QueueUnavailable as exc:
                # The outcome could not be recorded; the lease lapses and the
                # task runs again. One slot's trouble must not stop the others.
                log.error("worker.queue_unavailable", error=str(exc), task_id=task.task_id)
                await anyio.sleep(self.poll_interval * 5)

    async def run_once(self) -> bool:
        """Claim and run one task if there is one (for tools and tests)."""
        task = await self.queue.claim(self.owner)
        if task is None:
            return False
        async with self.jobs.running():  # its job report is sent before this returns
            await self.run_task(task)
        return True

    async def run_task(self, task: Task) -> None:
        with structlog.contextvars.bound_contextvars(
            request_id=task.request_id,
            task=task.kind,
            asset_id=task.asset_id,
            attempt=task.attempts,
        ):
            try:
                async with self._lease_kept(task):
                    outcome = await self._attempt(task)
            except BaseException:
                # Cancelled (shutdown): hand the task back at once, unpenalised.
                with anyio.CancelScope(shield=True):
                    with contextlib.suppress(Exception):
                        await self.queue.retry(task, "worker stopped", delay=0, count_attempt=False)
                raise
            await self._settle(task, *outcome)

    @contextlib.asynccontextmanager
    async def _lease_kept(self, task: Task) -> AsyncIterator[None]:
        async def renew() -> None:
            while True:
                await anyio.sleep(self.lease_renewal)
                with contextlib.suppress(QueueUnavailable):
                    await self.queue.extend_lease(task)

        async with anyio.create_task_group() as group:
            group.start_soon(renew)
            try:
                yield
            finally:
                group.cancel_scope.cancel()

    async def _attempt(self, task: Task) -> tuple[str, Any]:
        """Run the task; say how it ended, without touching the queue."""
        handlers = {
            "expand": self.expand,
            "build": self.build,
            "refresh": self.refresh,
            "withdraw": self.withdraw,
        }
        handler = handlers.get(task.kind)
        if handler is None:
            return "failed", f"unknown task kind {task.kind!r}"
        try:
            return "done", await handler(task)
        except TaskFailed as exc:
            return "failed", str(exc)
        except ProxyNotReady as exc:
            return "wait", str(exc)
        except NotFound as exc:  # the asset itself was checked; this is a part of it
            return "retry", f"{exc} (it was there a moment ago)"
        except IconikError as exc:  # credentials, 429/5xx after retries, odd answers
            return "retry", str(exc)
        except (StorageError, OSError) as exc:
            return "retry", f"bundle storage ({self.storage.description}): {exc}"
        except Exception as exc:  # a bug: keep the task, log the traceback
            log.exception("task.crashed")
            return "retry", f"internal error ({type(exc).__name__}); see the service log"

    async def _settle(self, task: Task, outcome: str, detail: Any) -> None:
        if outcome == "done":
            await self.queue.complete(task, detail or None)
            log.info("task.done", children=len(detail or []))
        elif outcome == "failed":
            await self.queue.fail(task, detail)
            log.warning("task.failed", reason=detail)
        elif outcome == "wait":
            waited = self.clock() - (task.first_claimed_at or self.clock())
            delay = self.proxy_retry_delay(waited)
            await self.queue.retry(task, detail, delay=delay, count_attempt=False)
            log.info("task.waiting", reason=detail, retry_in=delay)
        else:
            retried = await self.queue.retry(task, detail)
            log.warning("task.retry" if retried else "task.failed", reason=detail)
            outcome = "retried" if retried else "failed"
            detail = detail if retried else f"{detail} (gave up after {task.attempts} attempts)"
        self.metrics.tasks.labels(task.kind, outcome).inc()
        await self._report(task, outcome, detail)

    async def _report(self, task: Task, outcome: str, detail: Any) -> None:
        """Tell the request's Iconik job; only custom actions (a person clicked) have one."""
        if task.request_kind != "custom_action" or outcome not in ("done", "failed"):
            return
        if task.kind == "expand" and outcome == "done":
            return  # expand reported its assets through jobs.start()
        # Returns at once: the reporter reads the request's state from the
        # queue and sends it in the background (a failed expand included).
        await self.jobs.progress(task.request_id)

    # -- expand ----------------------------------------------------------------

    async def expand(self, task: Task) -> list[NewTask]:
        payload = task.payload
        context = payload.get("context")
        asset_ids: list[str] = list(payload.get("asset_ids") or [])
        for collection_id in payload.get("collection_ids") or []:
            asset_ids += await self._collection_assets(collection_id)
        for search_id in payload.get("saved_search_ids") or []:
            asset_ids += await self._saved_search_assets(search_id)
        unique = list(dict.fromkeys(asset_ids))
        if not unique:
            raise TaskFailed(
                f"the {context} custom action named no assets (asset_ids, collection_ids "
                "and saved_search_ids were empty)"
            )
        cap = self.settings.max_assets_per_request
        if len(unique) > cap:
            raise TaskFailed(
                f"the request covers {len(unique)} assets, more than MAX_ASSETS_PER_REQUEST "
                f"({cap}); select fewer assets or raise the limit"
            )
        await self.jobs.start(task.request_id, unique)
        return [NewTask("build", asset_id) for asset_id in unique]

    async def _saved_search_assets(self, search_id: str) -> list[str]:
        path = f"/API/search/v1/search/saved/{search_id}/"
        try:
            return [
                item["id"]
                async for item in self.iconik.paginate(path, {"include_results": "true"})
                if (item.get("object_type") or "assets") == "assets" and item.get("id")
            ]
        except NotFound:
            raise TaskFailed(f"saved search {search_id} not found in Iconik") from None

    async def _collection_assets(self, root: str) -> list[str]:
        """Every asset under a collection, sub-collections included, each once."""
        found: list[str] = []
        seen = {root}
        frontier = [(root, 0)]
        while frontier:
            collection_id, depth = frontier.pop(0)
            try:
                async for item in self.iconik.collection_contents(collection_id):
                    kind = (item.get("object_type") or "assets").lower()
                    item_id = item.get("id")
                    if not item_id:
                        continue
                    if kind == "collections":
                        if item_id not in seen and depth + 1 < _COLLECTION_DEPTH:
                            seen.add(item_id)
                            frontier.append((item_id, depth + 1))
                    elif kind == "assets":
                        found.append(item_id)
            except NotFound:
                raise TaskFailed(f"collection {collection_id} not found in Iconik") from None
        return found

    # -- build / refresh / withdraw ---------------------------------------------

    async def refresh(self, task: Task) -> None:
        """An asset changed in Iconik: rebuild its bundle in place, if it has one."""
        existing = await self.storage.find_bundles(task.asset_id or "")
        if not existing:
            log.info("refresh.no_bundle")
            return
        await self.build(task, existing)

    async def withdraw(self, task: Task) -> None:
        """The asset was deleted: mark every bundle of it withdrawn; delete nothing."""
        asset_id = task.asset_id or ""
        for folder in await self.storage.find_bundles(asset_id):
            manifest = await self.storage.read_manifest(folder)
            if manifest is None or manifest.get("status") == "withdrawn":
                continue
            withdrawn = bundle.withdraw_manifest(
                manifest,
                withdrawn_at=_iso(self.clock()),
                event_request_id=task.payload.get("request_id"),
            )
            # The note and the page's banner are the service's files: listed in
            # the manifest, so a restore (refresh) replaces or removes them.
            note = bundle.withdrawn_note(withdrawn).encode()
            await self.storage.write_in_place(folder, bundle.WITHDRAWN_NOTE, note)
            captions = {
                f["path"]: (await self.storage.read_file(folder, f["path"]) or b"").decode(
                    "utf-8", "replace"
                )
                for f in withdrawn["files"]
                if f["kind"] == "caption" and f["path"].endswith(".vtt")
            }
            page = bundle.render_preview(withdrawn, captions).encode()
            await self.storage.write_in_place(folder, bundle.PREVIEW, page)
            withdrawn["files"] = [
                f
                for f in withdrawn["files"]
                if f["path"] not in (bundle.PREVIEW, bundle.WITHDRAWN_NOTE)
            ] + [
                bundle.BundleFile.of(bundle.PREVIEW, page, "preview").entry(),
                bundle.BundleFile.of(bundle.WITHDRAWN_NOTE, note, "note").entry(),
            ]
            await self.storage.write_in_place(
                folder, bundle.MANIFEST, bundle.manifest_bytes(withdrawn)
            )
            log.info("bundle.withdrawn", folder=folder, revision=withdrawn["revision"])

    async def build(self, task: Task, existing: list[str] | None = None) -> None:
        """Build or rebuild the asset's bundle; `existing` is its folders, if already looked up."""
        asset_id = task.asset_id or ""
        if not bundle.is_valid_asset_id(asset_id):
            raise TaskFailed(f"{asset_id!r} is not an Iconik asset id")
        try:
            asset = await self.iconik.get_asset(asset_id)
        except NotFound:
            raise TaskFailed(
                f"asset {asset_id} not found in Iconik: deleted, or not visible to the "
                "application token's user"
            ) from None
        proxy_media = await self._choose_proxy(task, asset_id)
        subtitles = await self.iconik.list_subtitles(asset_id)
        media = proxy_media or await self._original_media(asset_id, subtitles)
        metadata = await self._metadata(asset_id)

        if existing is None:
            existing = await self.storage.find_bundles(asset_id)
        folder = existing[0] if existing else bundle.folder_name(asset.get("title"), asset_id)
        previous = await self.storage.read_manifest(folder)
        revision = int(previous.get("revision", 0)) + 1 if previous else 1
        edited = await self._captioner_edits(folder, previous)

        def place(path: str) -> str:
            return bundle.beside(path, revision) if path in edited else path

        async with self.storage.stage(folder) as staging:
            files: list[bundle.BundleFile] = []
            async with self.iconik.download(media.url) as response:
                size, digest = await staging.write_stream(media.path, response.aiter_bytes())
            files.append(
                bundle.BundleFile(
                    media.path,
                    size,
                    digest,
                    "media",
                    source=media.source,
                    format=media.record.get("format"),
                )
            )
            caption_texts: dict[str, str] = {}
            for caption_file, text in await self._captions(asset_id, subtitles, staging, place):
                files.append(caption_file)
                if text is not None:
                    caption_texts[caption_file.path] = text

            facts = bundle.asset_facts(
                asset,
                proxy=media.record if media.source == "proxy" else None,
                metadata=metadata,
                web_url=f"{self.settings.iconik_url}/asset/{asset_id}",
            )
            manifest_for = functools.partial(
                bundle.build_manifest,
                asset=facts,
                request=self._request_facts(task, previous),
                revision=revision,
                generated_at=_iso(self.clock()),
                captioner_edits=sorted(edited),
            )
            # The page shows the manifest's files; the manifest lists the page.
            page = bundle.render_preview(manifest_for(files=files), caption_texts).encode()
            size, digest = await staging.write_bytes(bundle.PREVIEW, page)
            files.append(bundle.BundleFile(bundle.PREVIEW, size, digest, "preview"))
            manifest = manifest_for(files=files)
            stale = [
                f["path"]
                for f in (previous or {}).get("files", [])
                if f["path"] not in {x.path for x in files} and f["path"] not in edited
            ]
            await staging.publish(bundle.manifest_bytes(manifest), stale)
        log.info("bundle.published", folder=folder, revision=revision, files=len(files))

    @staticmethod
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

    async def _choose_proxy(self, task: Task, asset_id: str) -> MediaChoice | None:
        """The proxy to use; None when the original file should be used instead."""
        proxies = await self.iconik.list_proxies(asset_id)
        proxy = pick_proxy(proxies, self.settings.proxy_max_height)
        if proxy is not None:
            url = await self.iconik.proxy_download_url(asset_id, proxy["id"])
            path = bundle.media_path(proxy.get("filename") or proxy.get("name"), "proxy.mp4")
            return MediaChoice(path, url, "proxy", proxy)

        waited = self.clock() - (task.first_claimed_at or self.clock())
        limit = self.settings.proxy_wait_seconds
        if waited < limit:
            pending = [p.get("status") for p in proxies]
            state = f"proxies {pending}" if pending else "no proxy yet"
            raise ProxyNotReady(
                f"asset {asset_id}: {state}; waiting for Iconik to finish the proxy "
                f"({waited:.0f}s of PROXY_WAIT_SECONDS={limit:.0f}s)"
            )
        if not self.settings.allow_original_media:
            raise TaskFailed(
                f"asset {asset_id} has no usable proxy after waiting {limit:.0f}s "
                "(PROXY_WAIT_SECONDS); generate a proxy in Iconik and send it again, or set "
                "ALLOW_ORIGINAL_MEDIA=true to use the original file"
            )
        return None

    async def _original_media(self, asset_id: str, subtitles: list[dict[str, Any]]) -> MediaChoice:
        # Subtitle files are files of the asset too; they are not its media.
        subtitle_formats = {s.get("format_id") for s in subtitles if s.get("format_id")}
        original = pick_original(await self.iconik.list_files(asset_id), subtitle_formats)
        if original is None:
            raise TaskFailed(f"asset {asset_id} has neither a proxy nor an original file")
        url = await self.iconik.file_download_url(asset_id, original["id"])
        path = bundle.media_path(original.get("original_name") or original.get("name"), "media")
        return MediaChoice(path, url, "original", original)

    async def _captioner_edits(self, folder: str, previous: dict[str, Any] | None) -> set[str]:
        """Caption files the service wrote that no longer hold what it wrote.

        A captioner working in the folder may edit them in place; a refresh
        must then leave them alone (their work) and put Iconik's version
        beside them. Once a captioner's, always a captioner's.
        """
        if not previous:
            return set()
        edited = set(previous.get("captioner_edits", []))
        for entry in previous.get("files", []):
            if entry.get("kind") != "caption" or entry["path"] in edited:
                continue
            current = await self.storage.read_file(folder, entry["path"])
            if current is not None and hashlib.sha256(current).hexdigest() != entry["sha256"]:
                edited.add(entry["path"])
        if edited:
            log.info("bundle.captioner_edits_kept", paths=sorted(edited))
        return edited

    async def _captions(
        self,
        asset_id: str,
        subtitles: list[dict[str, Any]],
        staging: Any,
        place: Callable[[str], str],
    ) -> list[tuple[bundle.BundleFile, str | None]]:
        written: list[tuple[bundle.BundleFile, str | None]] = []
        srt_by_format: dict[str, dict[str, Any]] = {}
        if subtitles:
            for f in await self.iconik.list_files(asset_id):
                name = (f.get("original_name") or f.get("name") or "").lower()
                if name.endswith(".srt") and f.get("format_id"):
                    srt_by_format[f["format_id"]] = f
        for subtitle in subtitles:
            language = subtitle.get("language") or "und"
            cc = bool(subtitle.get("closed_captions"))
            response = await self.iconik.request(
                "GET", self.iconik.subtitle_path(asset_id, language, cc)
            )
            text = response.text
            path = place(bundle.caption_path(language, cc))
            size, digest = await staging.write_bytes(path, response.content)
            written.append(
                (
                    bundle.BundleFile(
                        path, size, digest, "caption", language, cc, "webvtt", "webvtt"
                    ),
                    text,
                )
            )
            srt = srt_by_format.get(subtitle.get("format_id") or "")
            if srt is not None:
                url = await self.iconik.file_download_url(asset_id, srt["id"])
                srt_path = place(bundle.caption_path(language, cc, "srt"))
                async with self.iconik.download(url) as r:
                    size, digest = await staging.write_stream(srt_path, r.aiter_bytes())
                written.append(
                    (
                        bundle.BundleFile(
                            srt_path, size, digest, "caption", language, cc, "srt", "srt"
                        ),
                        None,
                    )
                )
        return written

    async def _metadata(self, asset_id: str) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for view_id in self.settings.metadata_view_ids:
            try:
                view = await self.iconik.metadata_view(asset_id, view_id)
            except NotFound:
                log.info("metadata.view_empty", view_id=view_id)
                continue
            values.update(bundle.flatten_metadata(view.get("metadata_values")))
        return values


def background(settings: Settings, storage: Storage, **worker_options: Any) -> Any:
    """The worker as a lifespan companion of the HTTP app (what `serve` runs)."""

    @contextlib.asynccontextmanager
    async def run(services: Any) -> AsyncIterator[None]:
        async with iconik_client(settings) as iconik:
            worker = Worker(
                settings,
                services.queue,
                iconik,
                storage,
                metrics=services.metrics,
                **worker_options,
            )
            async with anyio.create_task_group() as group:
                group.start_soon(worker.run)
                yield
                group.cancel_scope.cancel()

    return run


def iconik_client(settings: Settings) -> IconikClient:
    token = settings.iconik_auth_token
    return IconikClient(
        settings.iconik_url,
        settings.iconik_app_id,
        token.get_secret_value() if token else None,
        rate_limit=settings.iconik_rate_limit,
    )
