"""The deliver/ scan (service/deliver/scan.py), one look at a time, over a
real local storage in tmp_path and a real SQLite queue.

What it takes (a file that stopped changing), what it leaves (a file still
changing, a name it does not deliver, two files for one track, a folder with
no record), where a delivery goes (the registry's asset, never project.json's),
and that several scanners store one delivery. The scan inside a running
service is in tests/system/deliver/.
"""

from __future__ import annotations

import json

import pytest

from service.bundle.manifest import (
    AssetFacts,
    RequestFacts,
    build_manifest,
    folder_name,
    manifest_bytes,
)
from service.deliver.scan import DeliverScan
from service.queue.sqlite import SQLiteQueue
from service.storage import open_storage
from tests.support.clock import FakeClock
from tests.support.deliver import BROKEN_DE, EN_VTT

pytestmark = pytest.mark.anyio

ASSET = "0a1b2c3d-0000-4000-8000-00000000a001"
OTHER = "0a1b2c3d-0000-4000-8000-00000000a002"
FOLDER = folder_name("Harbour Lights", ASSET)


def project(asset_id: str = ASSET, status: str = "ready") -> bytes:
    manifest = build_manifest(
        asset=AssetFacts(id=asset_id, title="Harbour Lights", duration_seconds=60.0),
        request=RequestFacts(request_id="req-1"),
        files=[],
        revision=1,
        generated_at="2026-12-06T10:00:00Z",
        status=status,
    )
    if status == "withdrawn":
        manifest["withdrawn"] = {"at": "2026-12-06T11:00:00Z"}
    return manifest_bytes(manifest)


class Share:
    """The bundles' root in tmp_path, a queue beside it, and a scan over both."""

    def __init__(self, tmp_path, queue: SQLiteQueue, clock: FakeClock) -> None:
        self.root = tmp_path / "bundles"
        self.queue = queue
        self.clock = clock
        self.storage = open_storage(str(self.root))

    async def bundle(self, folder: str = FOLDER, *, asset_id: str = ASSET, **manifest) -> None:
        (self.root / folder / "deliver").mkdir(parents=True)
        (self.root / folder / "project.json").write_bytes(project(asset_id, **manifest))
        await self.queue.record_bundle(asset_id, folder, manifest.get("status", "ready"))

    def drop(self, name: str, text: str, folder: str = FOLDER) -> None:
        (self.root / folder / "deliver" / name).write_text(text)

    def errors(self, folder: str = FOLDER) -> str:
        path = self.root / folder / "deliver" / "ERRORS.txt"
        return path.read_text() if path.exists() else ""

    def scan(self) -> DeliverScan:
        return DeliverScan(self.queue, self.storage, clock=self.clock)

    async def looks(self, scan: DeliverScan, times: int) -> list[int]:
        queued = []
        for _ in range(times):
            self.clock.now += 1
            queued.append((await scan.step()).queued)
        return queued

    async def tasks(self) -> list[tuple[str, str | None, dict]]:
        claimed = []
        while (task := await self.queue.claim("test")) is not None:
            claimed.append((task.kind, task.asset_id, task.payload))
        return claimed


@pytest.fixture
async def share(tmp_path):
    clock = FakeClock(1_800_000_000.0)
    queue = SQLiteQueue(tmp_path / "q.db", clock=clock)
    await queue.open()
    await queue.fill_registry([])
    yield Share(tmp_path, queue, clock)
    await queue.close()


async def test_a_file_is_taken_on_the_second_look_that_finds_it_unchanged(share):
    await share.bundle()
    share.drop("en.vtt", EN_VTT)
    scan = share.scan()
    assert await share.looks(scan, 1) == [0]
    assert "en.vtt" in share.errors() and "waiting" in share.errors()
    assert await share.looks(scan, 1) == [1]
    assert await share.looks(scan, 2) == [0, 0]  # taken once, not again
    [(kind, asset_id, _)] = await share.tasks()
    assert (kind, asset_id) == ("deliver", ASSET)


async def test_a_file_still_changing_is_not_taken(share):
    await share.bundle()
    scan = share.scan()
    share.drop("en.vtt", EN_VTT[:40])
    assert await share.looks(scan, 1) == [0]
    share.drop("en.vtt", EN_VTT)  # still being copied in
    assert await share.looks(scan, 1) == [0]
    assert FOLDER in scan.unsettled  # looked at again soon
    assert await share.looks(scan, 1) == [1]
    assert FOLDER not in scan.unsettled


async def test_two_scanners_store_one_delivery(share):
    await share.bundle()
    share.drop("en.vtt", EN_VTT)
    first, second = share.scan(), share.scan()
    queued = 0
    for _ in range(2):
        share.clock.now += 1
        queued += (await first.step()).queued + (await second.step()).queued
    assert queued == 1
    assert await share.queue.backlog() == 1  # (a second task would wait behind the first)


async def test_a_broken_file_is_a_delivery_refused_and_errors_say_where(share):
    await share.bundle()
    share.drop("de.vtt", BROKEN_DE)
    scan = share.scan()
    await share.looks(scan, 1)
    share.clock.now += 1
    report = await scan.step()
    assert (report.queued, report.refused) == (1, 1)
    errors = share.errors()
    assert "de.vtt" in errors and "line 7" in errors


async def test_a_name_the_service_does_not_deliver_is_said_and_never_taken(share):
    await share.bundle()
    share.drop("notes.txt", "call me")
    scan = share.scan()
    assert await share.looks(scan, 3) == [0, 0, 0]
    assert "notes.txt" in share.errors() and "not delivered" in share.errors()
    assert await share.tasks() == []


async def test_two_files_for_one_track_are_neither_taken(share):
    await share.bundle()
    share.drop("en.vtt", EN_VTT)
    share.drop("en.srt", "1\n00:00:00,000 --> 00:00:01,000\nHello.\n")
    scan = share.scan()
    assert await share.looks(scan, 3) == [0, 0, 0]
    assert "en.srt and en.vtt are both the en track; keep one" in share.errors()
    assert await share.tasks() == []


async def test_a_folder_with_no_record_is_not_looked_at(share):
    await share.bundle()
    stray = folder_name("Stray", OTHER)
    (share.root / stray / "deliver").mkdir(parents=True)
    (share.root / stray / "project.json").write_bytes(project(OTHER))
    share.drop("en.vtt", EN_VTT, folder=stray)
    scan = share.scan()
    assert await share.looks(scan, 3) == [0, 0, 0]
    report = await scan.step()
    assert report.folders == 1 and stray in report.present
    assert not (share.root / stray / "deliver" / "ERRORS.txt").exists()
    assert await share.tasks() == []


async def test_a_delivery_goes_to_the_registrys_asset_not_to_the_one_project_json_names(share):
    await share.bundle()
    (share.root / FOLDER / "project.json").write_bytes(project(OTHER))  # a captioner's edit
    share.drop("en.vtt", EN_VTT)
    assert await share.looks(share.scan(), 2) == [0, 1]
    [(kind, asset_id, payload)] = await share.tasks()
    assert (kind, asset_id) == ("deliver", ASSET)
    assert OTHER not in json.dumps(payload)
    assert f"was made for the asset {ASSET}" in share.errors()


async def test_a_withdrawn_bundle_takes_nothing_and_says_why(share):
    await share.bundle(status="withdrawn")
    share.drop("en.vtt", EN_VTT)
    assert await share.looks(share.scan(), 3) == [0, 0, 0]
    assert "withdrawn" in share.errors()
    assert await share.tasks() == []


async def test_a_link_in_deliver_is_not_followed(share, tmp_path):
    await share.bundle()
    secret = tmp_path / "outside.vtt"
    secret.write_text(EN_VTT)
    (share.root / FOLDER / "deliver" / "en.vtt").symlink_to(secret)
    assert await share.looks(share.scan(), 3) == [0, 0, 0]
    assert "en.vtt" in share.errors() and "not delivered" in share.errors()
    assert await share.tasks() == []
