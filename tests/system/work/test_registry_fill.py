"""The registry's first fill: once per queue, by one process, the others
waiting for it (two queue connections per backend stand for two replicas)."""

from __future__ import annotations

import anyio
import pytest

from service.queue.postgres import PostgresQueue
from service.queue.sqlite import SQLiteQueue
from service.work.bundle_registry import BundleRegistry

pytestmark = pytest.mark.anyio

BUNDLES = [(f"a{i}", f"T{i} [a{i}]", "ready") for i in range(20)]


class CountedStorage:
    """A storage whose one listing of every bundle is slow and counted."""

    def __init__(self) -> None:
        self.listings = 0
        self.release = anyio.Event()

    async def list_bundles(self) -> list[tuple[str, str, str]]:
        self.listings += 1
        await self.release.wait()
        return list(BUNDLES)


@pytest.fixture(params=["sqlite", "postgres"])
def open_queue(request, tmp_path):
    def make():
        if request.param == "sqlite":
            return SQLiteQueue(tmp_path / "q.db")
        return PostgresQueue(request.getfixturevalue("pg_url"))

    return make


async def test_replicas_and_callers_fill_the_registry_once(open_queue):
    queues = [open_queue(), open_queue()]
    for queue in queues:
        await queue.open()
    storage = CountedStorage()
    replicas = [BundleRegistry(q, storage, wait_between=0.01) for q in queues]  # type: ignore[arg-type]
    found: list[list[str]] = []

    async def find(registry: BundleRegistry) -> None:
        found.append(await registry.every_folder())

    try:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                for registry in replicas:
                    for _ in range(3):  # the worker, the scan and a task of one process
                        group.start_soon(find, registry)
                await anyio.wait_all_tasks_blocked()
                storage.release.set()
    finally:
        for queue in queues:
            await queue.close()
    assert storage.listings == 1
    assert found == [sorted(f for _, f, _ in BUNDLES)] * 6
