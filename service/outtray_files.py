"""The files the deliver/ scan writes: ERRORS.txt and REPORT.txt.

No manifest lists them, so no reader can find them torn; each is replaced
whole (never read: anything may be there), only when what it says changed,
and removed (a regular file only) once it has nothing to say.
"""

from __future__ import annotations

import hashlib
from typing import Any

from service.logging import get_logger, redact
from service.storage import Blocked, Storage, StoredFile

log = get_logger("service.deliver_scan")


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
