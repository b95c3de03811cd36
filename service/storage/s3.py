"""Bundles in S3 (or anything that speaks its API): `s3://bucket/prefix`.

S3 has no rename, so the contract's atomicity is the manifest's: every
object of a bundle is uploaded first and `project.json` last, so a reader
that finds the manifest finds everything it lists. A change to a published
bundle first sets its `project.json` aside (copied to a hidden key, then
deleted), so no reader pairs the old manifest with new objects. Large media is sent as a
multipart upload in parts of `PART_SIZE`, so memory stays at one part however
large the proxy. boto3 is configured the usual way (AWS_REGION,
AWS_ENDPOINT_URL, credentials); its blocking calls run in worker threads.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any, TypeVar
from urllib.parse import urlsplit

import anyio.to_thread
import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from service.bundle import MANIFEST, MANIFEST_ASIDE
from service.storage import (
    Body,
    StorageError,
    StoredFile,
    as_stream,
    asset_of_folder,
    check_relative,
    read_manifest,
)

PART_SIZE = 8 * 1024 * 1024  # S3's minimum is 5 MiB for every part but the last
T = TypeVar("T")


class S3Staging:
    def __init__(self, storage: S3Storage, folder: str) -> None:
        self.storage = storage
        self.folder = folder
        self.written: list[str] = []
        self._manifest_set_aside = False

    async def _set_manifest_aside(self) -> None:
        """Before the first object of a published bundle changes, hide its manifest."""
        if self._manifest_set_aside:
            return
        s3, bucket, call = self.storage.client, self.storage.bucket, self.storage.call
        current = self.storage.key(self.folder, MANIFEST)
        aside = self.storage.key(self.folder, MANIFEST_ASIDE)
        if await self.storage.file_digest(self.folder, MANIFEST) is not None:
            await call(
                lambda: s3.copy_object(
                    Bucket=bucket, Key=aside, CopySource={"Bucket": bucket, "Key": current}
                )
            )
            await call(lambda: s3.delete_object(Bucket=bucket, Key=current))
        self._manifest_set_aside = True

    async def write_stream(self, path: str, chunks: AsyncIterator[bytes]) -> tuple[int, str]:
        await self._set_manifest_aside()
        key = self.storage.key(self.folder, check_relative(path))
        s3, bucket, call = self.storage.client, self.storage.bucket, self.storage.call
        digest, size = hashlib.sha256(), 0
        buffer = bytearray()
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []

        async def send_part(data: bytes) -> None:
            nonlocal upload_id
            if upload_id is None:
                created = await call(lambda: s3.create_multipart_upload(Bucket=bucket, Key=key))
                upload_id = created["UploadId"]
            number = len(parts) + 1
            uploaded = await call(
                lambda: s3.upload_part(
                    Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
                )
            )
            parts.append({"PartNumber": number, "ETag": uploaded["ETag"]})

        try:
            async for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                buffer += chunk
                if len(buffer) >= PART_SIZE:
                    await send_part(bytes(buffer))
                    buffer = bytearray()
            if upload_id is None:  # small enough for one request
                body = bytes(buffer)
                await call(lambda: s3.put_object(Bucket=bucket, Key=key, Body=body))
            else:
                if buffer:
                    await send_part(bytes(buffer))
                await call(
                    lambda: s3.complete_multipart_upload(
                        Bucket=bucket,
                        Key=key,
                        UploadId=upload_id,
                        MultipartUpload={"Parts": parts},
                    )
                )
        except BaseException:
            if upload_id is not None:  # no orphaned parts billed forever
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(
                        lambda: _quietly(
                            s3.abort_multipart_upload, Bucket=bucket, Key=key, UploadId=upload_id
                        )
                    )
            raise
        self.written.append(path)
        return size, digest.hexdigest()

    async def write_body(self, path: str, body: Body) -> tuple[int, str]:
        # boto3's calls block; each part goes to a worker thread, as do the chunks.
        return await self.write_stream(path, body.chunks())

    async def write_bytes(self, path: str, data: bytes) -> tuple[int, str]:
        return await self.write_stream(path, as_stream(data))

    async def publish(self, manifest: bytes, remove: list[str]) -> None:
        s3, bucket = self.storage.client, self.storage.bucket
        await self._set_manifest_aside()
        for path in remove:
            if path not in self.written:
                key = self.storage.key(self.folder, check_relative(path))
                await self.storage.call(lambda key=key: s3.delete_object(Bucket=bucket, Key=key))
        key = self.storage.key(self.folder, MANIFEST)
        await self.storage.call(
            lambda: s3.put_object(
                Bucket=bucket, Key=key, Body=manifest, ContentType="application/json"
            )
        )
        aside = self.storage.key(self.folder, MANIFEST_ASIDE)
        await self.storage.call(lambda: s3.delete_object(Bucket=bucket, Key=aside))


def _quietly(fn: Callable[..., Any], **kwargs: Any) -> None:
    with suppress(BotoCoreError, ClientError):
        fn(**kwargs)


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
            raise StorageError(f"{self.description}: {exc}") from exc

    async def ping(self) -> None:
        probe = self.key(".ready", uuid.uuid4().hex)
        await self.call(lambda: self.client.head_bucket(Bucket=self.bucket))
        await self.call(lambda: self.client.put_object(Bucket=self.bucket, Key=probe, Body=b"ok"))
        await self.call(lambda: self.client.delete_object(Bucket=self.bucket, Key=probe))

    async def read_file(self, folder: str, path: str, *, limit: int) -> bytes | None:
        key = self.key(folder, check_relative(path))

        def get() -> bytes | None:
            try:
                return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return None
                raise

        return await self.call(get)

    async def read_manifest(self, folder: str) -> dict[str, Any] | None:
        return await read_manifest(self, folder)

    async def file_digest(self, folder: str, path: str) -> str | None:
        key = self.key(folder, check_relative(path))

        def digest() -> str | None:
            try:
                stream = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return None
                raise
            sha = hashlib.sha256()
            for chunk in stream.iter_chunks(1024 * 1024):
                sha.update(chunk)
            return sha.hexdigest()

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
        base = self.key(check_relative(folder), check_relative(under)) + "/"

        def scan() -> list[StoredFile]:
            found = []
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=base, Delimiter="/"):
                for item in page.get("Contents", []):
                    name = item["Key"][len(base) :]
                    if name:
                        modified = item["LastModified"].timestamp()
                        found.append(StoredFile(name, item["Size"], modified, item["ETag"]))
            return sorted(found, key=lambda f: f.name)

        return await self.call(scan)

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
        yield S3Staging(self, folder)
