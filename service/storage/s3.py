"""Bundles in S3 (or anything that speaks its API): `s3://bucket/prefix`.

Publishing (the manifest last, set aside while a bundle changes) is
s3_staging.py; this module reads, lists and replaces single objects. boto3
is configured the usual way (AWS_REGION, AWS_ENDPOINT_URL, credentials);
its blocking calls run in worker threads.

Captioners can write any object under their bundle's prefix, so nothing the
backend reads is trusted (service/storage/__init__.py): a read asks for at
most `limit + 1` bytes (a ranged GET) and reads none of an object that is
larger; a listing is bounded and shows sub-folders as "directory" entries;
the manifest is set aside without reading it. S3 has no symlinks and
replaces an object atomically, so nothing is ever `Blocked` here.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit

import anyio.to_thread
import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from service.logging import get_logger
from service.storage import (
    NotRegularFile,
    Outtray,
    StorageError,
    StoredFile,
    TooLarge,
    asset_of_folder,
    changed,
    check_relative,
    pulled,
    read_manifest,
    s3_outtrays,
)
from service.storage.s3_staging import MISSING, S3Staging, error_code

# A captioner can put any number of objects under deliver/ (a million costs
# them a script and cents); every scan lists it again, a page of 1,000 per
# request. No real delivery has more than a few dozen files, so past this
# many entries the rest are not looked at (and the log says so): a scan
# stays a few requests and a bounded amount of memory per bundle.
MAX_LISTED = 10_000
# What tools that make "folders" in S3 (s3fs, some consoles) mark them with.
_FOLDER_TYPES = ("application/x-directory",)
_CONTENT_RANGE = re.compile(r"bytes\s+\d+-\d+/(\d+)")
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s\"']*@")
T = TypeVar("T")

log = get_logger("service.storage.s3")


def _is_folder_marker(key: str, response: dict[str, Any]) -> bool:
    """A "folder" some tool made: a key ending in "/" or an x-directory object."""
    content_type = str(response.get("ContentType") or "").split(";")[0].strip().lower()
    return key.endswith("/") or content_type in _FOLDER_TYPES


def _full_size(response: dict[str, Any]) -> int | None:
    """The whole object's size from a (ranged) GET: `bytes 0-N/TOTAL`, or the
    length of the body when the server sent it all; None when it does not say."""
    content_range = response.get("ContentRange")
    if content_range:
        match = _CONTENT_RANGE.fullmatch(content_range.strip())
        return int(match.group(1)) if match else None
    length = response.get("ContentLength")
    return int(length) if length is not None else None


class S3Storage:
    def __init__(self, bucket: str, prefix: str = "", client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.description = f"s3://{bucket}/{self.prefix}"
        self.client = client or boto3.client(
            "s3",
            region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
            config=Config(retries={"mode": "standard", "max_attempts": 5}),
        )

    @classmethod
    def from_url(cls, url: str) -> S3Storage:
        parts = urlsplit(url)
        return cls(parts.netloc, parts.path)

    def key(self, folder: str, path: str) -> str:
        return "/".join(p for p in (self.prefix, folder, path) if p)

    async def call(self, fn: Callable[[], T]) -> T:
        try:
            return await anyio.to_thread.run_sync(fn)
        except (BotoCoreError, ClientError) as exc:
            # Not chained: the cause's text is the one scrubbed here.
            raise StorageError(f"{self.description}: {self.scrub(str(exc))}") from None

    def scrub(self, text: str) -> str:
        """`text` without the client's credentials in it.

        botocore's own messages hold none: a ClientError is the error code,
        the operation and the server's <Message> (AWS puts a signature
        mismatch's details in other fields), a connection error the endpoint
        URL, a proxy error the proxy URL with its password masked. But an
        S3-compatible server may echo anything in <Message>, and an endpoint
        URL may carry a user and password: both are masked here.
        """
        secrets = []
        credentials = getattr(getattr(self.client, "_request_signer", None), "_credentials", None)
        # The values as stored (a refreshable one's properties may make a
        # network call): `access_key` or, when refreshable, `_access_key`.
        stored = vars(credentials) if hasattr(credentials, "__dict__") else {}
        for name in ("access_key", "secret_key", "token"):
            value = stored.get(name) or stored.get(f"_{name}")
            if isinstance(value, str) and len(value) >= 4:
                secrets.append(value)
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            value = os.environ.get(name, "")
            if len(value) >= 4:
                secrets.append(value)
        for secret in sorted(set(secrets), key=len, reverse=True):
            text = text.replace(secret, "[redacted]")
        return _URL_USERINFO.sub(r"\1[redacted]@", text)

    def head(self, key: str) -> dict[str, Any] | None:
        """HEAD of `key` (blocking), or None when there is no such object."""
        try:
            head: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=key)
            return head
        except ClientError as exc:
            if error_code(exc) in MISSING:
                return None
            raise

    def _is_folder(self, key: str) -> bool:
        listing = self.client.list_objects_v2(Bucket=self.bucket, Prefix=key + "/", MaxKeys=1)
        return bool(listing.get("KeyCount") or listing.get("Contents"))

    async def ping(self) -> None:
        probe = self.key(".ready", uuid.uuid4().hex)
        await self.call(lambda: self.client.head_bucket(Bucket=self.bucket))
        await self.call(lambda: self.client.put_object(Bucket=self.bucket, Key=probe, Body=b"ok"))
        await self.call(lambda: self.client.delete_object(Bucket=self.bucket, Key=probe))

    async def read_file(self, folder: str, path: str, *, limit: int) -> bytes | None:
        """At most `limit` bytes, asked for as such: a ranged GET, whose answer
        says the object's full size before any of its body is read."""
        if limit < 0:
            raise ValueError(f"a negative limit ({limit})")
        key = self.key(folder, check_relative(path))
        return await self.call(lambda: self._read(key, path, limit))

    def _read(self, key: str, path: str, limit: int) -> bytes | None:
        # `path` (relative to the bundle) is what NotRegularFile and TooLarge
        # name: their messages may reach a captioner; the bucket is not theirs.
        for _ in range(3):
            try:
                got = self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes=0-{limit}")
            except ClientError as exc:
                if error_code(exc) in MISSING:
                    if self._is_folder(key):  # objects under `key/`: a "folder"
                        raise NotRegularFile(path, "directory") from None
                    return None
                if error_code(exc) != "InvalidRange":
                    raise
                # No byte 0 to send: S3's answer to a range on an empty object.
                head = self.head(key)
                if head is None:
                    return None
                if _is_folder_marker(key, head):
                    raise NotRegularFile(path, "directory") from None
                size = int(head.get("ContentLength", 0))
                if size == 0:
                    return b""
                if size > limit:
                    raise TooLarge(path, size, limit) from None
                continue  # replaced since the GET: read the new one
            stream = got["Body"]
            try:
                if _is_folder_marker(key, got):
                    raise NotRegularFile(path, "directory")
                total = _full_size(got)
                if total is not None and total > limit:
                    raise TooLarge(path, total, limit)  # none of the body read
                # Bounded even if the server sent more than it was asked for.
                data: bytes = stream.read(limit + 1)
            finally:
                stream.close()  # drops the connection if the body was not read
            if len(data) > limit:  # the server did not say how large: at least this
                raise TooLarge(path, len(data), limit)
            if total is not None and len(data) != total:
                raise StorageError(f"{path}: {len(data):,} of {total:,} bytes arrived")
            return data
        raise StorageError(f"{path} kept changing while it was read")

    async def read_manifest(self, folder: str) -> dict[str, Any] | None:
        return await read_manifest(self, folder)

    async def file_digest(self, folder: str, path: str, *, size: int | None = None) -> str | None:
        key = self.key(folder, check_relative(path))

        def digest() -> str | None:
            try:
                got = self.client.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if error_code(exc) in MISSING:
                    return None
                raise
            stream = got["Body"]
            try:
                if _is_folder_marker(key, got):
                    return None  # not a regular file: none of it read
                if size is not None and got.get("ContentLength") != size:
                    return changed(got.get("ContentLength", -1))
                sha = hashlib.sha256()
                for chunk in stream.iter_chunks(1024 * 1024):
                    sha.update(chunk)
                return sha.hexdigest()
            finally:
                stream.close()

        return await self.call(digest)

    async def find_bundles(self, asset_id: str) -> list[str]:
        suffix = f"[{asset_id}]"
        found = [f for f in await self.list_folders() if f.endswith(suffix)]
        return [f for f in found if await self.read_manifest(f) is not None]

    async def list_folders(self) -> list[str]:
        base = f"{self.prefix}/" if self.prefix else ""

        def scan() -> list[str]:
            folders = []
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=base, Delimiter="/"):
                for common in page.get("CommonPrefixes", []):
                    name = common["Prefix"][len(base) :].rstrip("/")
                    if name and not name.startswith("."):
                        folders.append(name)
            return sorted(folders)

        return await self.call(scan)

    async def list_files(self, folder: str, under: str) -> list[StoredFile]:
        """The objects directly under `folder/under/` ("file") and the "folders"
        there (keys with a further "/", kind "directory", size 0), at most
        `MAX_LISTED` of them. S3 has no real folders: `under` is never refused."""
        base = self.key(check_relative(folder), check_relative(under)) + "/"

        def scan() -> list[StoredFile]:
            files: dict[str, StoredFile] = {}
            folders: set[str] = set()
            seen = 0
            paginator = self.client.get_paginator("list_objects_v2")
            pages = paginator.paginate(
                Bucket=self.bucket,
                Prefix=base,
                Delimiter="/",
                PaginationConfig={"PageSize": min(1000, MAX_LISTED)},
            )
            for page in pages:
                for item in page.get("Contents", []):
                    name = item["Key"][len(base) :]
                    if name:  # "" is the folder marker `base` itself
                        modified = item["LastModified"].timestamp()
                        files[name] = StoredFile(name, item["Size"], modified, item["ETag"])
                for common in page.get("CommonPrefixes", []):
                    name = common["Prefix"][len(base) : -1]
                    if name:  # "" is from keys like `deliver//x`: no name to show
                        folders.add(name)
                seen += len(page.get("Contents", [])) + len(page.get("CommonPrefixes", []))
                if seen >= MAX_LISTED:
                    if page.get("IsTruncated"):
                        log.warning("storage.listing_cut_short", folder=folder, under=under)
                    break
            # S3 can hold both an object `x` and objects under `x/`; a listing
            # shows one entry a name, the object (which is what a read gets).
            listed = list(files.values()) + [
                StoredFile(name, 0, 0.0, "", kind="directory")
                for name in folders
                if name not in files
            ]
            return sorted(listed, key=lambda f: f.name)[:MAX_LISTED]

        return await self.call(scan)

    def outtrays(self) -> AsyncIterator[Outtray]:
        base = f"{self.prefix}/" if self.prefix else ""
        walk = s3_outtrays.walk_pages(self.client.list_objects_v2, self.bucket, base, MAX_LISTED)
        return pulled(walk, self.call)

    async def put_file(self, folder: str, path: str, data: bytes) -> None:
        key = self.key(check_relative(folder), check_relative(path))
        await self.call(lambda: self.client.put_object(Bucket=self.bucket, Key=key, Body=data))

    async def delete_file(self, folder: str, path: str) -> None:
        key = self.key(check_relative(folder), check_relative(path))
        await self.call(lambda: self.client.delete_object(Bucket=self.bucket, Key=key))

    async def list_bundles(self) -> list[tuple[str, str, str]]:
        """Every bundle under the prefix, as (asset id, folder, status): one listing."""
        found = []
        for folder in await self.list_folders():
            asset_id = asset_of_folder(folder)
            manifest = await self.read_manifest(folder) if asset_id else None
            if asset_id is not None and manifest is not None:
                found.append((asset_id, folder, str(manifest.get("status", "ready"))))
        return found

    @asynccontextmanager
    async def stage(self, folder: str) -> AsyncIterator[S3Staging]:
        check_relative(folder)
        staging = S3Staging(self, folder)
        try:
            yield staging
        except BaseException:
            # A change cut off by an error: the bundle keeps the manifest it had.
            await staging.put_manifest_back()
            raise
