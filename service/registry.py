"""Which bundle folders exist for which asset: the bundle registry.

Kept in the queue's store (SQLite or PostgreSQL), written by the worker
around every publish and withdrawal, so that finding an asset's bundles is
one indexed lookup and never a listing of the bundle storage, on every
replica alike. Bundles made before the registry existed are found once, by
one listing of the storage, the first time a process needs the registry.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

from service import startup
from service.logging import get_logger
from service.queue import Queue, QueueUnavailable
from service.storage import Storage, StorageError

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

    async def every_folder(self) -> list[str]:
        """Every bundle folder there is."""
        await self.fill_once()
        return await self.queue.bundle_folders()

    async def every_bundle(self) -> list[tuple[str, str, str]]:
        """Every (asset id, folder, status) on record (for the deliver/ scan)."""
        await self.fill_once()
        return await self.queue.bundle_records()

    async def owner_of(self, folder: str) -> tuple[str, str] | None:
        """(asset id, status) of the one asset `folder` was published for, or None."""
        found = await self.queue.bundle_records(folder)
        return (found[0][0], found[0][2]) if len(found) == 1 else None

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
        log.info("registry.ready")


def filled_in_background(storage: Storage, retry_every: float = 30.0) -> Any:
    """A lifespan companion for a receiver without a worker: fill the registry
    once at start-up (never on a request's path), retrying while the queue or
    the storage is away. Until it is filled, intake stores every event."""

    @asynccontextmanager
    async def run(services: Any) -> AsyncIterator[None]:
        registry = BundleRegistry(services.queue, storage)

        async def fill() -> None:
            while True:
                try:
                    await registry.fill_once()
                    return
                except (QueueUnavailable, StorageError) as exc:
                    log.warning("registry.not_filled", error=str(exc), retry_in=retry_every)
                    await anyio.sleep(retry_every)

        async with anyio.create_task_group() as group:
            startup.check_in_background(group, services, storage)  # no Iconik: no worker here
            group.start_soon(fill)
            yield
            group.cancel_scope.cancel()

    return run
