"""Which bundle folders exist for which asset: the bundle registry.

Kept in the queue's store (SQLite or PostgreSQL), written by the worker
around every publish and withdrawal, so that finding an asset's bundles is
one indexed lookup and never a listing of the bundle storage, on every
replica alike. Bundles made before the registry existed are found once, by
one listing of the storage, the first time a process needs the registry.
"""

from __future__ import annotations

from service.logging import get_logger
from service.queue import Queue
from service.storage import Storage

log = get_logger("service.registry")


class BundleRegistry:
    def __init__(self, queue: Queue, storage: Storage) -> None:
        self.queue = queue
        self.storage = storage
        self._filled = False

    async def find(self, asset_id: str) -> list[str]:
        """The folders holding a bundle of `asset_id`, oldest name first."""
        await self.fill_once()
        return await self.queue.bundle_folders(asset_id)

    async def record(self, asset_id: str, folder: str, status: str) -> None:
        await self.queue.record_bundle(asset_id, folder, status)

    async def fill_once(self) -> None:
        if self._filled:
            return
        if not await self.queue.registry_filled():
            found = await self.storage.list_bundles()
            await self.queue.fill_registry(found)
            log.info("registry.filled", bundles=len(found))
        self._filled = True
