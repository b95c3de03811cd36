"""Every bundle's deliver/ in one walk (Storage.outtrays): the same answer on
both backends, few S3 requests however many bundles, and a bounded walk
however much a captioner put in their folder (moto's server over HTTP)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from service.storage import open_storage, s3_outtrays

pytestmark = pytest.mark.anyio


def bundle_keys(folder: str, *deliver: str) -> list[str]:
    """The keys the service writes for one bundle, plus the captioner's."""
    made = ["captions/en.vtt", "captions/en.srt", "media/proxy.mp4", "preview.html"]
    made += ["deliver/README.txt", "project.json"]
    return [f"{folder}/{p}" for p in made] + [f"{folder}/deliver/{name}" for name in deliver]


class Layout:
    """The same files in a local folder and in a bucket."""

    def __init__(self, tmp_path, bucket):
        self.root, self.bucket = tmp_path / "share", bucket
        self.s3 = boto3.client("s3")

    def put(self, *keys: str) -> None:
        for key in keys:
            path = self.root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x")

        def upload(key: str) -> None:
            self.s3.put_object(Bucket=self.bucket, Key=f"shared/{key}", Body=b"x")

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(upload, keys))

    def storages(self):
        return {
            "local": open_storage(str(self.root)),
            "s3": open_storage(f"s3://{self.bucket}/shared"),
        }


async def listed(storage) -> dict[str, list[tuple[str, str]]]:
    return {o.folder: [(f.name, f.kind) for f in o.files] async for o in storage.outtrays()}


def count_lists(storage) -> list[int]:
    calls: list[int] = []
    storage.client.meta.events.register("before-call.s3.ListObjectsV2", lambda **_: calls.append(1))
    return calls


async def test_both_backends_give_every_folder_and_what_its_deliver_holds(tmp_path, bucket):
    layout = Layout(tmp_path, bucket)
    layout.put(
        *bundle_keys("A [1]", "en.vtt", "fr.srt"),
        *bundle_keys("B [2]"),
        *bundle_keys("C [3]", "old/en.vtt"),  # a folder in deliver/: shown, not entered
        "D [4]/notes.txt",  # no deliver/ at all
        ".hidden/deliver/en.vtt",  # hidden: not a bundle
    )
    for name, storage in layout.storages().items():
        found = await listed(storage)
        assert found == {
            "A [1]": [("README.txt", "file"), ("en.vtt", "file"), ("fr.srt", "file")],
            "B [2]": [("README.txt", "file")],
            "C [3]": [("README.txt", "file"), ("old", "directory")],
            "D [4]": [],
        }, name
        manifests = {o.folder: o.manifest async for o in storage.outtrays()}
        assert {f for f, m in manifests.items() if m is not None} == {"A [1]", "B [2]", "C [3]"}
        assert all(m.size == 1 and m.tag for m in manifests.values() if m is not None), name


async def test_a_symlinked_deliver_is_a_problem_not_a_listing(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "secret.vtt").write_text("WEBVTT\n")
    (tmp_path / "share" / "A [1]").mkdir(parents=True)
    os.symlink(elsewhere, tmp_path / "share" / "A [1]" / "deliver")
    [outtray] = [o async for o in open_storage(str(tmp_path / "share")).outtrays()]
    assert outtray.files == [] and "symlink" in (outtray.problem or "")


@pytest.mark.slow
async def test_s3_lists_sixty_bundles_in_five_requests(tmp_path, bucket, monkeypatch):
    monkeypatch.setattr(s3_outtrays, "PAGE_KEYS", 100)  # S3's 1,000, scaled down
    layout = Layout(tmp_path, bucket)
    keys = [k for i in range(60) for k in bundle_keys(f"T{i:04d} [{i}]", "en.vtt")]
    layout.put(*keys)  # 420 keys: five pages of 100
    storage = layout.storages()["s3"]
    calls = count_lists(storage)
    found = await listed(storage)
    assert len(found) == 60 and all(("en.vtt", "file") in v for v in found.values())
    assert len(calls) == 5  # one listing; listing each deliver/ took 60


@pytest.mark.slow
@pytest.mark.parametrize("where", ["deliver/many/", "deliver/", "captions/", "deliver-x/", "zz/"])
async def test_a_folder_full_of_objects_costs_a_few_requests(tmp_path, bucket, monkeypatch, where):
    """A captioner's objects anywhere in their folder: the walk skips past
    them and still lists the folders after it, in a bounded number of
    requests (pages and caps scaled down 40x so the test is small)."""
    monkeypatch.setattr(s3_outtrays, "PAGE_KEYS", 25)
    monkeypatch.setattr(s3_outtrays, "MAX_OTHER_KEYS", 10)
    monkeypatch.setattr("service.storage.s3.MAX_LISTED", 10)
    layout = Layout(tmp_path, bucket)
    flood = [f"B [2]/{where}{i:05d}.vtt" for i in range(300)]  # 12 pages walked whole
    layout.put(*bundle_keys("A [1]", "en.vtt"), *bundle_keys("B [2]", "fr.vtt"), *flood)
    layout.put(*bundle_keys("C [3]", "de.vtt"))
    storage = layout.storages()["s3"]
    calls = count_lists(storage)
    found = await listed(storage)
    assert set(found) == {"A [1]", "B [2]", "C [3]"}
    assert ("de.vtt", "file") in found["C [3]"] and ("en.vtt", "file") in found["A [1]"]
    assert len(found["B [2]"]) <= 10
    if where != "deliver/":  # the real file sorts after a flood in deliver/: not seen
        assert ("fr.vtt", "file") in found["B [2]"]
    assert len(calls) <= 5
