"""S3 bundles, through moto's server over HTTP (boto3 configured by AWS_* as in production)."""

import hashlib
import json

import boto3
import pytest

from service.storage import StorageError, open_storage
from service.storage.s3_staging import PART_SIZE
from tests.support.service import custom_action_body
from tests.support.stack import blob_sha256, stack

pytestmark = pytest.mark.anyio


def keys(bucket, prefix=""):
    listing = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def body(bucket, key):
    return boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


async def chunks_of(data, size=1024 * 1024):
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.slow
async def test_objects_first_manifest_last(bucket):
    storage = open_storage(f"s3://{bucket}/shared")
    large = bytes(range(256)) * (PART_SIZE * 3 // 2 // 256)  # two parts
    async with storage.stage("T [a1]") as staging:
        size, digest = await staging.write_stream("media/m.mp4", chunks_of(large))
        assert (size, digest) == (len(large), hashlib.sha256(large).hexdigest())
        await staging.write_bytes("captions/en.vtt", b"WEBVTT")
        # Everything is there but the manifest: not a bundle yet.
        assert keys(bucket) == ["shared/T [a1]/captions/en.vtt", "shared/T [a1]/media/m.mp4"]
        assert await storage.find_bundles("a1") == []
        await staging.publish(json.dumps({"status": "ready"}).encode(), [])
    assert body(bucket, "shared/T [a1]/media/m.mp4") == large
    assert (await storage.read_manifest("T [a1]"))["status"] == "ready"
    assert await storage.find_bundles("a1") == ["T [a1]"]


async def test_refresh_keeps_captioner_objects_and_drops_stale_service_ones(bucket):
    storage = open_storage(f"s3://{bucket}")
    async with storage.stage("T [a1]") as staging:
        await staging.write_bytes("captions/de.vtt", b"old")
        await staging.publish(b"{}", [])
    boto3.client("s3").put_object(Bucket=bucket, Key="T [a1]/captions/mine.txt", Body=b"mine")
    async with storage.stage("T [a1]") as staging:
        await staging.write_bytes("captions/en.vtt", b"new")
        await staging.publish(b'{"revision": 2}', ["captions/de.vtt"])
    assert keys(bucket) == [
        "T [a1]/captions/en.vtt",
        "T [a1]/captions/mine.txt",
        "T [a1]/project.json",
    ]
    assert body(bucket, "T [a1]/captions/mine.txt") == b"mine"


async def test_a_failed_stream_leaves_no_object_and_no_open_upload(bucket):
    storage = open_storage(f"s3://{bucket}")

    async def broken():
        yield b"x" * PART_SIZE
        raise ConnectionError("Iconik hung up")

    with pytest.raises(ConnectionError):
        async with storage.stage("T [a1]") as staging:
            await staging.write_stream("media/m.mp4", broken())
    assert keys(bucket) == []
    uploads = boto3.client("s3").list_multipart_uploads(Bucket=bucket)
    assert uploads.get("Uploads", []) == []


async def test_missing_bucket_is_not_ready(aws):
    with pytest.raises(StorageError, match="s3://no-such-bucket"):
        await open_storage("s3://no-such-bucket/x").ping()


async def test_ping_writes_and_cleans_up(bucket):
    await open_storage(f"s3://{bucket}/p").ping()
    assert keys(bucket) == []


async def test_deliver_folders_are_listed_and_service_files_put_in_place(bucket):
    storage = open_storage(f"s3://{bucket}/shared")
    async with storage.stage("T [a1]") as staging:
        await staging.write_bytes("deliver/README.txt", b"how to")
        await staging.publish(b"{}", [])
    s3 = boto3.client("s3")
    s3.put_object(Bucket=bucket, Key="shared/T [a1]/deliver/en.vtt", Body=b"WEBVTT\n")
    s3.put_object(Bucket=bucket, Key="shared/T [a1]/deliver/old/en.vtt", Body=b"x")
    s3.put_object(Bucket=bucket, Key="shared/.ready/probe", Body=b"x")
    assert await storage.list_folders() == ["T [a1]"]
    listed = {f.name: f for f in await storage.list_files("T [a1]", "deliver")}
    # A subfolder is an entry of its own; what is in it is not listed.
    assert {n: f.kind for n, f in listed.items()} == {
        "README.txt": "file",
        "en.vtt": "file",
        "old": "directory",
    }
    assert listed["en.vtt"].size == 7 and listed["en.vtt"].tag
    s3.put_object(Bucket=bucket, Key="shared/T [a1]/deliver/en.vtt", Body=b"WEBVTT\n\n")
    changed = {f.name: f for f in await storage.list_files("T [a1]", "deliver")}["en.vtt"]
    assert changed.look != listed["en.vtt"].look

    await storage.put_file("T [a1]", "deliver/ERRORS.txt", b"en.vtt, line 3: ...")
    assert body(bucket, "shared/T [a1]/deliver/ERRORS.txt") == b"en.vtt, line 3: ..."
    await storage.delete_file("T [a1]", "deliver/ERRORS.txt")
    assert "shared/T [a1]/deliver/ERRORS.txt" not in keys(bucket)


@pytest.mark.slow
def test_end_to_end_into_s3(tmp_path, bucket):
    with stack(tmp_path, storage_url=f"s3://{bucket}/captioning") as s:
        answer = s.send(
            custom_action_body(context="BULK", asset_ids=[s.seeded.normal, s.seeded.large])
        )
        s.drain()
        assert s.status(answer["request_id"])["status"] == "done"
        folder = f"Harbour Lights_ Episode 1 [{s.seeded.normal}]"
        manifest = json.loads(body(bucket, f"captioning/{folder}/project.json"))
        assert manifest["status"] == "ready"
        for entry in manifest["files"]:
            data = body(bucket, f"captioning/{folder}/{entry['path']}")
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        large_folder = f"Feature Cut (large proxy) [{s.seeded.large}]"
        media = body(bucket, f"captioning/{large_folder}/media/feature_1080p.mp4")
        proxy = s.sim.assets[s.seeded.large].proxies[0]["id"]
        assert hashlib.sha256(media).hexdigest() == blob_sha256(s.sim, f"proxies/{proxy}")
        assert not (tmp_path / "bundles").exists()  # nothing went to local disk


@pytest.mark.slow
def test_deliveries_from_an_s3_bundle(tmp_path, bucket):
    from tests.support.deliver import BROKEN_DE, EN_VTT, cues_of, track_writes

    s3 = boto3.client("s3")
    with stack(tmp_path, storage_url=f"s3://{bucket}/captioning") as s:
        asset = s.seeded.normal
        s.send(custom_action_body(asset_ids=[asset]))
        s.drain()
        deliver = f"captioning/Harbour Lights_ Episode 1 [{asset}]/deliver"
        assert b"fr.cc.vtt" in body(bucket, f"{deliver}/README.txt")
        s3.put_object(Bucket=bucket, Key=f"{deliver}/en.vtt", Body=EN_VTT.encode())
        s3.put_object(Bucket=bucket, Key=f"{deliver}/de.vtt", Body=BROKEN_DE.encode())
        assert [s.scan().queued for _ in range(2)] == [0, 2]
        errors = body(bucket, f"{deliver}/ERRORS.txt").decode()
        assert "\nde.vtt, line 7: the cue ends" in errors
        assert "  de.vtt: refused: 1 problem, listed below\n" in errors
        s.drain()

        [track] = s.sim.tracks(asset, "en", False)
        assert cues_of(s.sim.assets[asset].webvtt[("en", False)]) == cues_of(EN_VTT)
        assert [p for _, p in track_writes(s.sim)] == [
            f"/API/files/v1/assets/{asset}/subtitles/{track['id']}/"
        ]  # English replaced; nothing for the broken German file
        receipt = json.loads(body(bucket, f"{deliver}/RECEIPT.json"))
        [entry] = receipt["deliveries"]
        assert (entry["path"], entry["subtitle_id"]) == ("deliver/en.vtt", track["id"])
        manifest = json.loads(body(bucket, f"{deliver.rsplit('/', 1)[0]}/project.json"))
        assert manifest["deliveries"] == receipt["deliveries"] and manifest["revision"] == 2
        assert body(bucket, f"{deliver}/en.vtt") == EN_VTT.encode()  # untouched
        assert body(bucket, f"{deliver}/de.vtt") == BROKEN_DE.encode()
        assert [s.scan().queued for _ in range(2)] == [0, 0]  # nothing goes twice
        assert sorted(k.rsplit("/", 1)[1] for k in keys(bucket, deliver + "/")) == [
            "ERRORS.txt",
            "README.txt",
            "RECEIPT.json",
            "REPORT.txt",  # en.vtt's house-style findings
            "de.vtt",
            "en.vtt",
        ]
