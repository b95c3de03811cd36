"""A click's assets read from Iconik a few hundred at a time, as its build tasks run.

A click of N assets becomes N `build` tasks. Each used to read its asset,
proxies, files and metadata view one call at a time (4+ calls per asset);
Iconik's search answers all of that for up to a few hundred assets in one
call (`POST /API/search/v1/search/`, proxies and files with signed URLs on
request, metadata as values by field).

Where the results live between the expand and the builds: in the worker
process's memory, read when the builds run, not when the click is
expanded. The first build of a request that finds no document for its asset
searches for it and for the request's other waiting builds (up to
`BATCH` ids, read from the queue), with the application token as every
build reads, and keeps the documents here for the next builds in this
process. Why not in the queue: the documents carry signed URLs, which
expire, so they must be taken shortly before the download, not when the
click was expanded (a backlog can hold a task for hours); and nothing
signed is then stored at rest or kept for RETENTION_DAYS.

Bounds: a document is used once (a retried build reads afresh), and only
within `MAX_AGE` seconds of the search (well inside the life of Iconik's
signed URLs); at most `MAX_DOCUMENTS` are held, the oldest dropped first.
Several processes each read their own batches: a few more searches, never
per asset. An asset the search does not find (Iconik's index lags behind a
fresh upload) is remembered as such, and its build reads per asset.

Whose rights: the clicking user's search (service/work/expand.py) decided which
assets get a build; this search only reads those, as the builds' per-asset
reads did before. Refreshes from webhooks never come here: they read per
asset, which is current.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from service.iconik.client import CredentialsRejected, IconikClient, NotFound, NotPermitted
from service.logging import get_logger
from service.queue import Queue, TaskKind

log = get_logger("service.work.bulk_reads")

BATCH = 250  # ids per search call: a 1000-asset click takes four
MAX_AGE = 120.0  # seconds a document (and its signed URLs) is used after the search
MAX_DOCUMENTS = 4 * BATCH  # held per process, at most
# The search asks Iconik for the proxies' and files' signed URLs.
SIGNED_URLS = {"generate_signed_proxy_url": "true", "generate_signed_download_url": "true"}

# The asset ids of a request's builds still waiting or running.
PendingBuilds = Callable[[str], Awaitable[list[str]]]


@dataclass(frozen=True)
class SearchDocument:
    """What Iconik's search said about one asset, and when."""

    read_at: float
    document: dict[str, Any]
    # Each metadata view's field names at that time (METADATA_VIEW_IDS).
    view_fields: dict[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class _NotFound:
    read_at: float


class BulkReads:
    """Per worker process: search documents for the builds of clicks."""

    def __init__(
        self,
        pending_builds: PendingBuilds,
        clock: Callable[[], float],
        *,
        batch: int = BATCH,
        max_age: float = MAX_AGE,
        max_documents: int = MAX_DOCUMENTS,
    ) -> None:
        self.pending_builds = pending_builds
        self.clock = clock
        self.batch = batch
        self.max_age = max_age
        self.max_documents = max_documents
        self._held: OrderedDict[str, SearchDocument | _NotFound] = OrderedDict()
        self._searching = anyio.Lock()  # one search at a time: the others wait for its answer

    async def document(
        self, iconik: IconikClient, request_id: str, asset_id: str, view_ids: list[str]
    ) -> SearchDocument | None:
        """The asset's search document, fresh; None when the search does not find it."""
        held = self._take(asset_id)
        if held is None:
            async with self._searching:
                held = self._take(asset_id)  # found by the search this one waited for
                if held is None:
                    await self._search(iconik, request_id, asset_id, view_ids)
                    held = self._take(asset_id)
        return held if isinstance(held, SearchDocument) else None

    def _take(self, asset_id: str) -> SearchDocument | _NotFound | None:
        held = self._held.pop(asset_id, None)
        if held is not None and self.clock() - held.read_at > self.max_age:
            return None  # its signed URLs may have expired: read again
        return held

    async def _search(
        self, iconik: IconikClient, request_id: str, asset_id: str, view_ids: list[str]
    ) -> None:
        now = self.clock()
        for stale in [a for a, held in self._held.items() if now - held.read_at > self.max_age]:
            del self._held[stale]  # built elsewhere, or not yet: read again when it is
        fresh = set(self._held)
        others = [a for a in await self.pending_builds(request_id) if a not in fresh]
        ids = list(dict.fromkeys([asset_id, *others]))[: self.batch]
        try:
            views = await _view_fields(iconik, view_ids)
            documents = await iconik.search_assets(ids, per_page=self.batch, params=SIGNED_URLS)
        except (NotPermitted, CredentialsRejected):
            # 403: the token's role lacks can_search or can_read_metadata_views. Each
            # build reads per asset (whose own refusal, if any, then says what to fix).
            log.warning("bulk_reads.search_refused", asked=len(ids))
            views, documents = {}, []
        now = self.clock()
        found = {d["id"].lower(): d for d in documents}
        for asset in ids:
            document = found.get(asset)
            self._hold(asset, SearchDocument(now, document, views) if document else _NotFound(now))
        log.info("bulk_reads.searched", asked=len(ids), found=len(found))

    def _hold(self, asset_id: str, held: SearchDocument | _NotFound) -> None:
        self._held.pop(asset_id, None)
        self._held[asset_id] = held
        while len(self._held) > self.max_documents:
            self._held.popitem(last=False)


async def pending_builds(queue: Queue, request_id: str) -> list[str]:
    """The assets of the request's builds that wait or run, as the queue says."""
    status = await queue.request_status(request_id)
    return [
        task["asset_id"]
        for task in (status or {}).get("tasks", [])
        if task["kind"] == TaskKind.BUILD
        and task["state"] in ("queued", "running")
        and task["asset_id"]
    ]


async def _view_fields(iconik: IconikClient, view_ids: list[str]) -> dict[str, frozenset[str]]:
    """Each metadata view's field names (a view Iconik does not know has none)."""
    fields: dict[str, frozenset[str]] = {}
    for view_id in view_ids:
        try:
            fields[view_id] = frozenset(await iconik.metadata_view_fields(view_id))
        except NotFound:
            log.info("metadata.view_missing", view_id=view_id)
            fields[view_id] = frozenset()
    return fields
