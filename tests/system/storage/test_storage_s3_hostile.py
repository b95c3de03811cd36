"""S3 bundles under a captioner's hand: objects too large, "folders", a manifest
of theirs, a change that fails part-way (moto's server over HTTP)."""

import json

import boto3
import pytest
from botocore.exceptions import ClientError

from service.storage import (
    MAX_MANIFEST_BYTES,
    NotRegularFile,
    StorageError,
    TooLarge,
    open_storage,
)
from service.storage import s3 as s3_backend

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
FOLDER = "T [a1]"


@pytest.fixture
def storage(bucket):
    return open_storage(f"s3://{bucket}/shared")


def put(bucket, path, data, **extra):
    boto3.client("s3").put_object(Bucket=bucket, Key=f"shared/{FOLDER}/{path}", Body=data, **extra)


def body(bucket, path):
    key = f"shared/{FOLDER}/{path}"
    return boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def keys(bucket):
    listing = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=f"shared/{FOLDER}/")
    return sorted(o["Key"].rsplit("/", 1)[1] for o in listing.get("Contents", []))


class Counted:
    """A GET's body that counts what is read of it."""

    def __init__(self, stream, record):
        self.stream, self.record = stream, record

    def read(self, amt=None):
        data = self.stream.read(amt)
        self.record["read"] += len(data)
        return data

    def iter_chunks(self, chunk_size=1024):
        for chunk in self.stream.iter_chunks(chunk_size):
            self.record["read"] += len(chunk)
            yield chunk

    def close(self):
        self.record["closed"] = True
        self.stream.close()


@pytest.fixture
def gets(storage, monkeypatch):
    """Every GET the storage makes: its key, Range, the length the server
    answered with (what it sends) and how much of the body was read."""
    made = []
    original = storage.client.get_object

    def get_object(**kwargs):
        record = {"key": kwargs["Key"].split(f"{FOLDER}/", 1)[-1], "range": kwargs.get("Range")}
        record.update(read=0, closed=False, sent=None)
        made.append(record)
        answer = original(**kwargs)
        record["sent"] = answer["ContentLength"]
        answer["Body"] = Counted(answer["Body"], record)
        return answer

    monkeypatch.setattr(storage.client, "get_object", get_object)
    return made


def fail_once(storage, monkeypatch, method, key_suffix):
    """Make `method` of the storage's client fail, once, for a key ending so."""
    original = getattr(storage.client, method)
    failed = []

    def failing(**kwargs):
        if kwargs["Key"].endswith(key_suffix) and not failed:
            failed.append(kwargs["Key"])
            error = {"Error": {"Code": "InternalError", "Message": "We encountered an error"}}
            raise ClientError(error, method)
        return original(**kwargs)

    monkeypatch.setattr(storage.client, method, failing)
    return failed


@pytest.mark.slow
async def test_an_object_over_the_limit_is_refused_before_its_body_is_read(storage, bucket, gets):
    huge = bytes(range(256)) * (64 * MiB // 256)
    put(bucket, "deliver/huge.vtt", huge)
    with pytest.raises(TooLarge) as refused:
        await storage.read_file(FOLDER, "deliver/huge.vtt", limit=MiB)
    assert (refused.value.path, refused.value.size, refused.value.limit) == (
        "deliver/huge.vtt",
        64 * MiB,
        MiB,
    )
    assert bucket not in str(refused.value) and "shared" not in str(refused.value)
    [get] = gets
    # Asked for no more than the limit and a byte; read none of it; let it go.
    assert get["range"] == f"bytes=0-{MiB}"
    assert get["sent"] <= MiB + 1 and get["read"] == 0 and get["closed"]

    gets.clear()
    assert await storage.read_file(FOLDER, "deliver/huge.vtt", limit=64 * MiB) == huge
    assert gets[0]["read"] == len(huge)


async def test_reads_are_exact_up_to_the_limit(storage, bucket):
    data = b"WEBVTT\n\n00:00.000 --> 00:01.000\nHello\n"
    put(bucket, "deliver/en.vtt", data)
    put(bucket, "deliver/empty.vtt", b"")
    put(bucket, "deliver/one.vtt", b"x")
    assert await storage.read_file(FOLDER, "deliver/en.vtt", limit=len(data)) == data
    assert await storage.read_file(FOLDER, "deliver/en.vtt", limit=10 * MiB) == data
    with pytest.raises(TooLarge, match=r"^deliver/en\.vtt is too large"):
        await storage.read_file(FOLDER, "deliver/en.vtt", limit=len(data) - 1)
    # S3 answers a range on an empty object with 416 InvalidRange.
    assert await storage.read_file(FOLDER, "deliver/empty.vtt", limit=MiB) == b""
    assert await storage.read_file(FOLDER, "deliver/empty.vtt", limit=0) == b""
    assert await storage.read_file(FOLDER, "deliver/one.vtt", limit=1) == b"x"
    with pytest.raises(TooLarge):
        await storage.read_file(FOLDER, "deliver/one.vtt", limit=0)
    assert await storage.read_file(FOLDER, "deliver/missing.vtt", limit=MiB) is None
    assert await storage.read_file("No such [a9]", "project.json", limit=MiB) is None


async def test_a_folder_is_not_read_as_a_file(storage, bucket):
    put(bucket, "deliver/sub/en.vtt", b"WEBVTT\n")
    put(bucket, "deliver/marked", b"", ContentType="application/x-directory")
    with pytest.raises(NotRegularFile) as refused:
        await storage.read_file(FOLDER, "deliver/sub", limit=MiB)
    assert (refused.value.path, refused.value.kind) == ("deliver/sub", "directory")
    with pytest.raises(NotRegularFile, match=r"^deliver/marked is not a regular file"):
        await storage.read_file(FOLDER, "deliver/marked", limit=MiB)
    assert await storage.file_digest(FOLDER, "deliver/marked") is None
    assert await storage.file_digest(FOLDER, "deliver/sub") is None
    assert await storage.file_digest(FOLDER, "deliver/sub/en.vtt") is not None


async def test_subfolders_are_listed_as_directories(storage, bucket):
    put(bucket, "deliver/", b"")  # a console's marker for the folder itself
    put(bucket, "deliver/en.vtt", b"WEBVTT\n")
    put(bucket, "deliver/README.txt", b"how to")
    put(bucket, "deliver/sub/x.vtt", b"WEBVTT\n")
    put(bucket, "deliver/sub/deeper/y.vtt", b"WEBVTT\n")
    put(bucket, "deliver/empty/", b"")  # a marker alone is a folder too
    put(bucket, "deliver/both.vtt", b"WEBVTT\n")  # an object and a "folder" of one name
    put(bucket, "deliver/both.vtt/z.vtt", b"WEBVTT\n")
    listed = await storage.list_files(FOLDER, "deliver")
    assert [(f.name, f.kind) for f in listed] == [
        ("README.txt", "file"),
        ("both.vtt", "file"),
        ("empty", "directory"),
        ("en.vtt", "file"),
        ("sub", "directory"),
    ]
    sub = next(f for f in listed if f.name == "sub")
    assert sub.size == 0
    assert await storage.list_files(FOLDER, "nothing") == []


async def test_a_listing_stops_at_its_cap(storage, bucket, monkeypatch):
    monkeypatch.setattr(s3_backend, "MAX_LISTED", 5)
    for n in range(8):
        put(bucket, f"deliver/{n}.vtt", b"")
    put(bucket, "deliver/z/x.vtt", b"")
    listed = await storage.list_files(FOLDER, "deliver")
    assert [f.name for f in listed] == ["0.vtt", "1.vtt", "2.vtt", "3.vtt", "4.vtt"]


async def publish_first(storage, revision=1):
    async with storage.stage(FOLDER) as staging:
        await staging.write_bytes("captions/en.vtt", b"WEBVTT first")
        await staging.publish(json.dumps({"revision": revision}).encode(), [])


async def test_a_publish_that_fails_part_way_puts_the_manifest_back(storage, bucket, monkeypatch):
    await publish_first(storage)
    failed = fail_once(storage, monkeypatch, "put_object", "/project.json")
    with pytest.raises(StorageError, match="InternalError"):
        async with storage.stage(FOLDER) as staging:
            await staging.write_bytes("captions/en.vtt", b"WEBVTT second")
            await staging.publish(b'{"revision": 2}', [])
    assert failed  # the new manifest was the write that failed
    assert json.loads(body(bucket, "project.json")) == {"revision": 1}
    assert (await storage.read_manifest(FOLDER))["revision"] == 1
    # Another go succeeds and leaves nothing set aside.
    async with storage.stage(FOLDER) as staging:
        await staging.write_bytes("captions/en.vtt", b"WEBVTT second")
        assert await staging.publish(b'{"revision": 2}', []) == []
    assert (await storage.read_manifest(FOLDER))["revision"] == 2
    assert keys(bucket) == ["en.vtt", "project.json"]


async def test_a_removal_that_fails_puts_the_manifest_back(storage, bucket, monkeypatch):
    await publish_first(storage)
    fail_once(storage, monkeypatch, "delete_object", "/captions/en.vtt")
    with pytest.raises(StorageError):
        async with storage.stage(FOLDER) as staging:
            await staging.write_bytes("captions/de.vtt", b"WEBVTT")
            await staging.publish(b'{"revision": 2}', ["captions/en.vtt"])
    assert json.loads(body(bucket, "project.json")) == {"revision": 1}


async def test_a_change_cut_off_while_writing_keeps_the_manifest(storage, bucket):
    await publish_first(storage)

    async def broken():
        yield b"WEBVTT half"
        raise ConnectionError("Iconik hung up")

    with pytest.raises(ConnectionError):
        async with storage.stage(FOLDER) as staging:
            await staging.write_bytes("captions/de.vtt", b"WEBVTT")
            await staging.write_stream("media/m.mp4", broken())
    assert json.loads(body(bucket, "project.json")) == {"revision": 1}


@pytest.mark.slow
async def test_a_manifest_of_20_mib_is_no_manifest_and_is_not_read(storage, bucket, gets):
    await publish_first(storage)
    padding = "x" * (20 * MiB)
    put(bucket, "project.json", json.dumps({"status": "ready", "pad": padding}).encode())
    gets.clear()
    assert await storage.read_manifest(FOLDER) is None
    assert await storage.find_bundles("a1") == []
    assert await storage.list_bundles() == []
    assert [g["key"] for g in gets if g["key"] == "project.json"]
    for get in gets:  # (the one set aside is not there: NoSuchKey, nothing sent)
        assert (get["sent"] or 0) <= MAX_MANIFEST_BYTES + 1 and get["read"] == 0


async def test_setting_a_manifest_aside_does_not_read_it(storage, bucket, gets):
    await publish_first(storage)
    put(bucket, "project.json", b"[" * (20 * MiB))  # a captioner's, not a manifest
    gets.clear()
    async with storage.stage(FOLDER) as staging:
        await staging.write_bytes("captions/en.vtt", b"WEBVTT second")
        await staging.publish(b'{"revision": 2}', [])
    assert gets == []
    assert (await storage.read_manifest(FOLDER))["revision"] == 2
    assert keys(bucket) == ["en.vtt", "project.json"]


async def test_storage_errors_do_not_carry_credentials(bucket, aws, monkeypatch):
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    client = boto3.client(
        "s3",
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key=secret,
        aws_session_token="FwoGZXIvYXdzEXAMPLETOKEN",
    )
    storage = s3_backend.S3Storage(bucket, "shared", client=client)

    def echoing(**kwargs):  # a server that puts what it was sent in <Message>
        message = f"bad signature for AKIAIOSFODNN7EXAMPLE/{secret} FwoGZXIvYXdzEXAMPLETOKEN"
        message += " at https://AKIAIOSFODNN7EXAMPLE:pw0rd@s3.example.com/x"
        raise ClientError({"Error": {"Code": "SignatureDoesNotMatch", "Message": message}}, "Get")

    monkeypatch.setattr(client, "get_object", echoing)
    with pytest.raises(StorageError) as failed:
        await storage.read_file(FOLDER, "project.json", limit=MiB)
    text = str(failed.value)
    assert "SignatureDoesNotMatch" in text and f"s3://{bucket}/shared" in text
    for leaked in (secret, "AKIAIOSFODNN7EXAMPLE", "FwoGZXIvYXdzEXAMPLETOKEN", "pw0rd"):
        assert leaked not in text
    assert failed.value.__cause__ is None
