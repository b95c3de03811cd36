"""What the deliver scan remembers of each caption file between looks.

A file is read, hashed and checked once per content, not once per look:
its last look (size, time, tag) and when that was first seen, the check of
what it held, its digest, and the delivery key its content was stored
under. Each is an LRU of `cache_files` entries (DELIVER_CACHE_FILES), so the
memory follows the files being worked on, not every file ever delivered;
one forgotten costs one more read if it is looked at again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread

from service.bundle import outtray
from service.bundle.outtray import Problem
from service.bundle.outtray_view import Checked, check, path_of
from service.captions import house_style
from service.captions import track as captions
from service.logging import get_logger
from service.lru import Lru
from service.queue import Delivery, Queue, QueueFull
from service.storage import NotRegularFile, Storage, StoredFile, TooLarge

log = get_logger("service.deliver.scan")


@dataclass
class ScanReport:
    folders: int = 0
    queued: int = 0
    refused: int = 0
    # After a look at everything: the folders the storage has, and the
    # registry's folders it does not have (retired by service/deliver/loop.py).
    present: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)


class FileMemory:
    def __init__(
        self,
        queue: Queue,
        storage: Storage,
        *,
        style: house_style.Style,
        max_caption_bytes: int,
        cache_files: int,
    ) -> None:
        self.queue, self.storage = queue, storage
        self.style, self.max_caption_bytes = style, max_caption_bytes
        self.looks: Lru[tuple[str, str], tuple[tuple[Any, ...], float]] = Lru(cache_files)
        self.checked: Lru[tuple[str, str], tuple[tuple[Any, ...], Checked | Problem]] = Lru(
            cache_files
        )
        self.digests: Lru[tuple[str, str], tuple[tuple[Any, ...], str | None]] = Lru(cache_files)
        self.stored: Lru[tuple[str, str], tuple[str, str]] = Lru(cache_files)

    def keep_only(self, looked: set[tuple[str, str]]) -> None:
        """After a look at everything: forget files that are gone (a file put
        back is looked at afresh)."""
        for cache in (self.looks, self.checked, self.digests, self.stored):
            cache.keep_only(looked)

    def too_large(self, size: int) -> str:
        return (
            f"too large for a caption file ({size:,} bytes; the limit is "
            f"{self.max_caption_bytes:,}): split it, or ask for the limit to be raised"
        )

    async def check(
        self, folder: str, found: StoredFile, name: captions.TrackName, media: captions.Media
    ) -> Checked | Problem | None:
        """The file's content and its check, read once per look of the file."""
        key = (folder, found.name)
        cached = self.checked.get(key)
        if cached is not None and cached[0] == (found.look, media):
            return cached[1]
        result: Checked | Problem
        try:
            data = await self.storage.read_file(
                folder, path_of(found), limit=self.max_caption_bytes
            )
        except TooLarge as exc:
            result = Problem(found.name, None, self.too_large(exc.size))
        except NotRegularFile as exc:
            result = Problem(found.name, None, outtray.not_a_file(exc.kind))
        else:
            if data is None:
                return None  # removed since the listing
            result = await anyio.to_thread.run_sync(check, found.name, data, media, self.style)
        self.checked[key] = ((found.look, media), result)
        return result

    async def delivered(
        self, folder: str, found: StoredFile, deliveries: list[dict[str, Any]], *, latest: bool
    ) -> dict[str, Any] | None:
        """The receipt entry of this file's content, if it was delivered (and,
        with `latest`, is still its track's): read only for a regular file a
        receipt names, once per look."""
        path = path_of(found)
        if found.kind != "file" or found.size > self.max_caption_bytes:
            return None
        if not any(entry["path"] == path for entry in deliveries):
            return None
        key = (folder, found.name)
        cached = self.digests.get(key)
        if cached is None or cached[0] != found.look:
            cached = (found.look, await self.storage.file_digest(folder, path))
            self.digests[key] = cached
        if cached[1] is None:
            return None
        if latest:
            return outtray.delivered_as(deliveries, path, cached[1])
        return next(
            (e for e in reversed(deliveries) if (e["path"], e["sha256"]) == (path, cached[1])),
            None,
        )

    async def store(
        self, folder: str, found: StoredFile, delivery: Delivery, report: ScanReport
    ) -> str | bool | None:
        """Store the delivery (once); False when the queue is full, the reason
        when it was stored before and failed, else None."""
        stored = self.stored.get((folder, found.name))
        if stored is not None and stored[0] == delivery.key:
            request_id = stored[1]  # stored on an earlier look: no write to repeat
        else:
            try:
                enqueued = await self.queue.enqueue(delivery, uuid.uuid4().hex)
            except QueueFull as exc:
                log.warning(
                    "deliver_scan.queue_full", folder=folder, path=path_of(found), error=str(exc)
                )
                return False
            # A delivery is a click-lane request: never ignored, never coalesced.
            assert enqueued.request_id is not None
            request_id = enqueued.request_id
            self.stored[(folder, found.name)] = (delivery.key, request_id)
            if not enqueued.duplicate:
                report.queued += 1
                log.info(
                    "deliver_scan.delivery_queued",
                    folder=folder,
                    path=path_of(found),
                    request_id=request_id,
                )
                return None
        status = await self.queue.request_status(request_id)
        failed = [t for t in (status or {}).get("tasks", []) if t["state"] == "failed"]
        if failed:
            return f"not delivered: {failed[0].get('last_error')} (request {request_id})"
        return None
