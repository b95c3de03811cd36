"""When and where the deliver scan looks (service/deliver/loop.py): one
replica at a time, where events say, everything only to reconcile, and
registry rows of folders gone from the storage retired."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import anyio
import boto3
import pytest

from service.deliver.loop import ScanLoop
from service.deliver.scan import DeliverScan
from service.queue.postgres import PostgresQueue
from service.queue.sqlite import SQLiteQueue
from service.storage import open_storage
from tests.support.clock import FakeClock
from tests.support.deliver import EN_VTT
from tests.support.s3_events import events_to_sqs
from tests.support.serve import real_serve
from tests.support.service import custom_action_body

pytestmark = pytest.mark.anyio


class CountedStorage:
    """A local storage that counts walks and single listings."""

    def __init__(self, root: Path) -> None:
        self.inner = open_storage(str(root))
        self.walks = 0
        self.listed: list[str] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def outtrays(self):
        self.walks += 1
        return self.inner.outtrays()

    async def list_files(self, folder, under):
        self.listed.append(folder)
        return await self.inner.list_files(folder, under)


def bundles(root: Path, n: int) -> list[tuple[str, str, str]]:
    made = []
    for i in range(n):
        folder = f"T{i} [a{i}]"
        (root / folder / "deliver").mkdir(parents=True)
        (root / folder / "project.json").write_text(json.dumps({"asset": {"id": f"a{i}"}}))
        made.append((f"a{i}", folder, "ready"))
    return made


class Events:
    """An event source the test feeds (the real ones: tests/unit/deliver/test_changes.py)."""

    def __init__(self) -> None:
        self.send, self.receive = anyio.create_memory_object_stream[set[str]](10)

    async def batches(self):
        async for batch in self.receive:
            yield batch


async def open_queue(kind: str, tmp_path: Path, pg_url: str | None):
    queue = SQLiteQueue(tmp_path / "q.db") if kind == "sqlite" else PostgresQueue(pg_url)
    await queue.open()
    return queue


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request):
    return request.param


@pytest.mark.slow
async def test_one_replica_scans_and_another_takes_over_when_it_stops(tmp_path, backend, request):
    pg_url = request.getfixturevalue("pg_url") if backend == "postgres" else None
    queues = [await open_queue(backend, tmp_path, pg_url) for _ in range(2)]
    storage = open_storage(str(tmp_path / "share"))
    loops = [
        ScanLoop(
            DeliverScan(q, storage), q, every=60, clock=FakeClock(1000.0), holder=f"replica-{i}"
        )
        for i, q in enumerate(queues)
    ]
    try:
        assert await loops[0]._hold() and not await loops[1]._hold()
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(loops[0].run)
                await anyio.wait_all_tasks_blocked()
                group.cancel_scope.cancel()  # the scanning replica stops
        assert await loops[1]._hold() and not await loops[0]._hold()
    finally:
        for queue in queues:
            await queue.close()


async def test_with_events_only_the_folders_named_are_looked_at(tmp_path):
    queue = SQLiteQueue(tmp_path / "q.db")
    await queue.open()
    try:
        records = bundles(tmp_path / "share", 30)
        await queue.fill_registry(records)
        storage = CountedStorage(tmp_path / "share")
        clock, events = FakeClock(1000.0), Events()
        scan = DeliverScan(queue, storage)  # type: ignore[arg-type]
        loop = ScanLoop(scan, queue, every=60, events=events, clock=clock, reconcile_every=3600)
        await loop.look_once()  # first: everything, in one walk
        assert (storage.walks, storage.listed) == (1, [])
        (tmp_path / "share" / "T7 [a7]" / "deliver" / "en.vtt").write_text(EN_VTT)
        loop.pending |= {"T7 [a7]"}
        clock.now += 10
        await loop.look_once()
        assert (storage.walks, storage.listed) == (1, ["T7 [a7]"])
        assert scan.unsettled == {"T7 [a7]"}  # seen changing: looked at again soon
        assert loop._until_next() == pytest.approx(2.0)
        # Named again (the scan's own ERRORS.txt, say) while settling: not
        # looked at before its time, or a copy that paused would be taken.
        loop.pending |= {"T7 [a7]"}
        clock.now += 0.5
        await loop.look_once()
        assert storage.listed == ["T7 [a7]"] and await queue.backlog() == 0
        clock.now += 1.5
        await loop.look_once()
        assert (storage.walks, storage.listed) == (1, ["T7 [a7]"] * 2)
        assert scan.unsettled == set()
        assert await queue.backlog() == 1  # the file, settled, is one delivery
        clock.now += 3600  # the reconcile: everything again
        await loop.look_once()
        assert storage.walks == 2
    finally:
        await queue.close()


async def test_without_events_everything_is_looked_at_every_interval(tmp_path):
    queue = SQLiteQueue(tmp_path / "q.db")
    await queue.open()
    try:
        await queue.fill_registry(bundles(tmp_path / "share", 5))
        storage = CountedStorage(tmp_path / "share")
        clock = FakeClock(1000.0)
        loop = ScanLoop(DeliverScan(queue, storage), queue, every=60, clock=clock)  # type: ignore[arg-type]
        for _ in range(3):
            await loop.look_once()
            assert loop._until_next() == pytest.approx(60.0)
            clock.now += 60
        assert (storage.walks, storage.listed) == (3, [])
    finally:
        await queue.close()


async def test_a_folder_gone_from_two_walks_leaves_the_registry(tmp_path):
    queue = SQLiteQueue(tmp_path / "q.db")
    await queue.open()
    try:
        root = tmp_path / "share"
        records = bundles(root, 4)
        await queue.fill_registry(records)
        clock = FakeClock(1000.0)
        loop = ScanLoop(DeliverScan(queue, open_storage(str(root))), queue, every=60, clock=clock)
        shutil.rmtree(root / "T2 [a2]")
        await loop.look_once()
        assert len(await queue.bundle_records()) == 4  # missing once: kept
        clock.now += 60
        await loop.look_once()
        assert [r[1] for r in await queue.bundle_records()] == ["T0 [a0]", "T1 [a1]", "T3 [a3]"]
        # A storage that lists nothing (a wrong prefix) retires nothing.
        for folder in ("T0 [a0]", "T1 [a1]", "T3 [a3]"):
            shutil.rmtree(root / folder)
        for _ in range(2):
            clock.now += 60
            await loop.look_once()
        assert len(await queue.bundle_records()) == 3
    finally:
        await queue.close()


@pytest.mark.slow
def test_on_s3_a_file_is_delivered_from_its_event_long_before_the_interval(tmp_path, aws, bucket):
    """A real `serve` on S3 (moto) with the bucket's notifications going to
    SQS: with a 60 s interval, a file written to deliver/ is delivered in
    seconds, from its event."""
    s3 = boto3.client("s3")
    queue_url = events_to_sqs(bucket)
    env = {
        "AWS_ENDPOINT_URL": aws,
        "DELIVER_SCAN_SECONDS": "60",
        "DELIVER_EVENTS_QUEUE_URL": queue_url,
    }
    with real_serve(tmp_path, f"s3://{bucket}/share", **env) as served:
        serve, asset = served.serve, served.seeded.normal
        served.post("/iconik/custom-action", custom_action_body(asset_ids=[asset]))
        folder = serve.wait_for("bundle.published")["folder"]
        written = time.monotonic()
        s3.put_object(Bucket=bucket, Key=f"share/{folder}/deliver/en.vtt", Body=EN_VTT.encode())
        delivered = serve.wait_for("delivery.delivered")
        took = time.monotonic() - written
    assert delivered["asset_id"] == asset
    assert took < 30, took  # polling alone would look no sooner than 60 s after the first look
