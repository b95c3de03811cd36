"""The service's files in deliver/ that the scan keeps current.

ERRORS.txt and REPORT.txt (`ScanWrites`): no manifest lists them, so no
reader can find them torn; each is replaced whole (never read: anything may
be there), only when what it says changed, and removed (a regular file
only) once it has nothing to say.

README.txt (`ReadmeCheck`): listed in the manifest, so the scan never
writes it; when the one on record is not the one the scan would write now
(another interval, another house style) it stores a `readme` task
(service/deliver/task.py), once per revision of the bundle.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from service.bundle import outtray, outtray_readme
from service.captions import house_style
from service.deliver import task as deliver
from service.logging import get_logger, redact
from service.queue import Queue, QueueFull
from service.storage import Blocked, Storage, StoredFile

log = get_logger("service.deliver.scan")


class ScanWrites:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        # Per (folder, path), the digest of what was last written and how the
        # listing showed it since: unchanged, it is not written again.
        self._written: dict[tuple[str, str], tuple[str, tuple[Any, ...] | None]] = {}

    def keep_only(self, folders: set[str]) -> None:
        """Forget the folders no longer looked at."""
        self._written = {k: v for k, v in self._written.items() if k[0] in folders}

    async def replace(self, folder: str, path: str, text: str, listed: StoredFile | None) -> bool:
        """`text` at `path` (removed when empty); whether anything was written."""
        key = (folder, path)
        text = redact(text)
        if not text:
            self._written.pop(key, None)
            if listed is not None:  # only a regular file is removed
                await self.storage.delete_file(folder, path)
            return False
        data = text.encode()
        digest = hashlib.sha256(data).hexdigest()
        last = self._written.get(key)
        # Written by this scan and not changed since (the first look after the
        # write is taken as it is): nothing to do.
        if (
            listed is not None
            and listed.kind == "file"
            and last is not None
            and last[0] == digest
            and last[1] in (None, listed.look)
        ):
            self._written[key] = (digest, listed.look)
            return False
        try:
            await self.storage.put_file(folder, path, data)
        except Blocked as exc:
            log.warning("deliver_scan.write_blocked", folder=folder, path=path, reason=str(exc))
            return False
        self._written[key] = (digest, None)
        return True


class ReadmeCheck:
    # At most this many README.txt rewrites are asked for in one look: after
    # a change of interval every bundle needs one, and they must not take
    # the room of the clicks' tasks in the queue all at once.
    PER_LOOK = 50

    def __init__(self, queue: Queue, style: house_style.Style, every: float | None) -> None:
        self.queue, self.style, self.every = queue, style, every
        self._budget = self.PER_LOOK
        # Per folder, the README.txt look found current, and the rewrite asked for.
        self._current: dict[str, tuple[Any, ...]] = {}
        self._asked: dict[str, str] = {}

    def keep_only(self, folders: set[str]) -> None:
        """After a look: forget the folders no longer looked at, and give the
        next look its own share of rewrites."""
        self._current = {k: v for k, v in self._current.items() if k in folders}
        self._asked = {k: v for k, v in self._asked.items() if k in folders}
        self._budget = self.PER_LOOK

    def due(self, folder: str, readme: StoredFile | None) -> bool:
        """Whether the manifest must be read to check README.txt: not since it
        last changed (a folder's first look in this process reads it once)."""
        return (
            self.every is not None
            and self._budget > 0
            and readme is not None
            and readme.kind == "file"
            and self._current.get(folder) != readme.look
        )

    async def check(
        self, folder: str, asset_id: str, manifest: dict[str, Any], readme: StoredFile
    ) -> None:
        assert self.every is not None
        text = outtray_readme.readme_of(
            manifest["asset"], asset_id, self.every, self.style, manifest.get("request")
        )
        digest = hashlib.sha256(text.encode()).hexdigest()
        entry = next((f for f in manifest["files"] if f["path"] == outtray.README_PATH), None)
        if entry is None or entry["sha256"] == digest:
            self._current[folder] = readme.look
            return
        delivery = deliver.new_readme(folder, asset_id, manifest["revision"], digest)
        if self._asked.get(folder) == delivery.key:
            return
        self._budget -= 1
        try:
            await self.queue.enqueue(delivery, uuid.uuid4().hex)
        except QueueFull as exc:
            log.warning(
                "deliver_scan.queue_full", folder=folder, path=outtray.README_PATH, error=str(exc)
            )
            return
        self._asked[folder] = delivery.key
        log.info("deliver_scan.readme_queued", folder=folder, every=self.every)
