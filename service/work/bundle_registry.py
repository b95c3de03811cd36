"""Which bundle folders exist for which asset: the bundle registry.

Kept in the queue's store (SQLite or PostgreSQL), written by the worker
around every publish and withdrawal, so that finding an asset's bundles is
one indexed lookup and never a listing of the bundle storage, on every
replica alike. Bundles made before the registry existed are found once per
queue, by one listing of the storage (reading every manifest), by the one
process that holds the `registry-fill` lease (15 minutes: a listing of
10,000 bundles on S3 took 136 s); the others wait for it, or for the lease
to expire if its holder died. One
process shares one registry, so it never fills twice either. Until the
registry is filled, intake stores every event (service/intake/endpoints.py): an event
about an asset it cannot tell yet is kept, not dropped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

from service import startup
from service.logging import get_logger
from service.queue import Queue, QueueUnavailable, Work
from service.storage import Storage, StorageError
from service.work import leases

log = get_logger("service.work.bundle_registry")


class BundleRegistry:
    def __init__(
        self,
        queue: Queue,
        storage: Storage,
        *,
        wait_between: float = 2.0,
        lease_seconds: float = 900.0,
    ) -> None:
        self.queue = queue
        self.storage = storage
        self.wait_between = wait_between  # how often a waiting process looks again
        self.lease_seconds = lease_seconds
        self.holder = leases.new_holder()
        self._filled = False
        self._filling = anyio.Lock()

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

    async def record_work(self, work: Work) -> None:
        """The bundle as work to do: its due date and languages (service/notify/due_check.py)."""
        await self.queue.record_work(work)

    async def work_of(self, folder: str, asset_id: str) -> Work | None:
        """The work `folder` holds for `asset_id`, as its last build recorded it."""
        return await self.queue.work_of(folder, asset_id)

    async def delivered(self, folder: str, language: str) -> None:
        """A caption file of `language` went back to Iconik from `folder`."""
        await self.queue.record_delivered(folder, language)

    async def fill_once(self) -> None:
        if self._filled:
            return
        async with self._filling:  # one fill at a time in this process
            if self._filled:  # filled by the caller this one waited behind
                return
            while not await self.queue.registry_filled():
                lease = leases.held(
                    self.queue, leases.REGISTRY_FILL, self.holder, self.lease_seconds
                )
                async with lease as holding:
                    if holding and not await self.queue.registry_filled():
                        found = await self.storage.list_bundles()
                        await self.queue.fill_registry(found)
                        log.info("registry.filled", bundles=len(found))
                        break
                if not holding:  # another process is filling it: wait for it
                    log.info("registry.waiting_for_fill")
                    await anyio.sleep(self.wait_between)
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
