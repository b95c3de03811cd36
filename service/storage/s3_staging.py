"""Staging for the S3 backend: a bundle's objects uploaded, then its manifest.

S3 has no rename, so the contract's atomicity is the manifest's: every
object of a bundle is uploaded first and `project.json` last, so a reader
that finds the manifest finds everything it lists. A change to a published
bundle first sets its `project.json` aside (copied to a hidden key, then
deleted, known by a HEAD: never read), so no reader pairs the old manifest
with new objects, and puts it back if the change fails. Large media is sent
as a multipart upload in parts of `PART_SIZE`, so memory stays at one part
however large the proxy.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from botocore.exceptions import BotoCoreError, ClientError

from service.bundle.manifest import MANIFEST, MANIFEST_ASIDE
from service.storage import MAX_MANIFEST_BYTES, Body, as_stream, check_relative

if TYPE_CHECKING:
    from service.storage.s3 import S3Storage

PART_SIZE = 8 * 1024 * 1024  # S3's minimum is 5 MiB for every part but the last
# What S3 (and look-alikes) answer for a key that is not there.
MISSING = ("NoSuchKey", "404", "NotFound")


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3Staging:
    def __init__(self, storage: S3Storage, folder: str) -> None:
        self.storage = storage
        self.folder = folder
        self.written: list[str] = []
        self._manifest_set_aside = False
        self._settled = False  # the new manifest is in place, or the old one was put back

    async def _set_manifest_aside(self) -> None:
        """Before the first object of a published bundle changes, hide its manifest.

        Its body is never read (a captioner may have put anything there): a
        HEAD says whether it is there and how large; the copy is the server's.
        """
        if self._manifest_set_aside:
            return
        s3, bucket, storage = self.storage.client, self.storage.bucket, self.storage
        current = storage.key(self.folder, MANIFEST)
        aside = storage.key(self.folder, MANIFEST_ASIDE)

        def set_aside() -> None:
            head = storage.head(current)
            if head is None:
                return  # a new bundle, or one whose change was cut off: aside already
            # Larger than any manifest is a captioner's object, not the service's
            # (and S3 will not copy one over 5 GiB): any earlier one set aside stays.
            if head.get("ContentLength", 0) <= MAX_MANIFEST_BYTES:
                try:
                    s3.copy_object(
                        Bucket=bucket, Key=aside, CopySource={"Bucket": bucket, "Key": current}
                    )
                except ClientError as exc:
                    if error_code(exc) not in MISSING:  # gone since the HEAD: nothing to keep
                        raise
            s3.delete_object(Bucket=bucket, Key=current)

        await storage.call(set_aside)
        self._manifest_set_aside = True

    async def put_manifest_back(self) -> None:
        """After a change that failed part-way: the manifest set aside, in place again.

        The bundle then reads as it did (read_manifest would fall back to the
        one set aside anyway), and a captioner never finds it without one.
        Best effort, shielded from cancellation; the caller re-raises its error.
        """
        if not self._manifest_set_aside or self._settled:
            return
        self._settled = True
        s3, bucket = self.storage.client, self.storage.bucket
        current = self.storage.key(self.folder, MANIFEST)
        aside = self.storage.key(self.folder, MANIFEST_ASIDE)
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(
                lambda: _quietly(  # NoSuchKey: there was none before (a new bundle)
                    s3.copy_object,
                    Bucket=bucket,
                    Key=current,
                    CopySource={"Bucket": bucket, "Key": aside},
                )
            )

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

    async def publish(self, manifest: bytes, remove: list[str]) -> list[str]:
        """Removes `remove`, then writes the manifest. Nothing is ever blocked on
        S3 (no symlinks, no directories in the way of a key): returns []."""
        s3, bucket = self.storage.client, self.storage.bucket
        await self._set_manifest_aside()
        try:
            for path in remove:
                if path not in self.written:
                    key = self.storage.key(self.folder, check_relative(path))
                    await self.storage.call(
                        functools.partial(s3.delete_object, Bucket=bucket, Key=key)
                    )
            key = self.storage.key(self.folder, MANIFEST)
            await self.storage.call(
                lambda: s3.put_object(
                    Bucket=bucket, Key=key, Body=manifest, ContentType="application/json"
                )
            )
        except BaseException:
            await self.put_manifest_back()
            raise
        self._settled = True
        aside = self.storage.key(self.folder, MANIFEST_ASIDE)
        await self.storage.call(lambda: s3.delete_object(Bucket=bucket, Key=aside))
        return []


def _quietly(fn: Callable[..., Any], **kwargs: Any) -> None:
    with suppress(BotoCoreError, ClientError):
        fn(**kwargs)
