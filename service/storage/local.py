"""Bundles in a local (or mounted) folder.

A new bundle is built under `<root>/.staging/` and renamed into place in one
step, so its final name never shows half a bundle. A refresh replaces the
service's files one by one (each an atomic rename) and the manifest last;
files a captioner added are never touched because only paths the service
itself wrote are ever replaced or removed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from service import probe
from service.bundle import MANIFEST
from service.storage import StorageError, as_stream, check_relative, parse_manifest

STAGING_DIR = ".staging"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalStaging:
    def __init__(self, root: Path, folder: str, staging: Path) -> None:
        self.root, self.folder, self.dir = root, folder, staging
        self.written: list[str] = []

    def _target(self, path: str) -> Path:
        target = self.dir / check_relative(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    async def write_stream(self, path: str, chunks: AsyncIterator[bytes]) -> tuple[int, str]:
        target = await anyio.to_thread.run_sync(self._target, path)
        digest, size = hashlib.sha256(), 0
        async with await anyio.open_file(target, "wb") as out:
            async for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                await out.write(chunk)
            await out.flush()
            await anyio.to_thread.run_sync(os.fsync, out.wrapped.fileno())
        self.written.append(path)
        return size, digest.hexdigest()

    async def write_bytes(self, path: str, data: bytes) -> tuple[int, str]:
        return await self.write_stream(path, as_stream(data))

    async def publish(self, manifest: bytes, remove: list[str]) -> None:
        await anyio.to_thread.run_sync(self._publish, manifest, remove)

    def _publish(self, manifest: bytes, remove: list[str]) -> None:
        final = self.root / self.folder
        staged_manifest = self.dir / MANIFEST
        staged_manifest.write_bytes(manifest)
        with staged_manifest.open("rb") as f:
            os.fsync(f.fileno())
        if not final.exists():
            try:
                os.rename(self.dir, final)  # the whole bundle appears at once
                _fsync_dir(self.root)
                return
            except OSError:
                if not final.exists():
                    raise
                # Another writer published first: fall through and refresh it.
        for path in self.written:
            target = final / path
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.dir / path, target)
        for path in remove:
            if path not in self.written:
                (final / check_relative(path)).unlink(missing_ok=True)
        os.replace(staged_manifest, final / MANIFEST)  # last: the bundle is complete
        _fsync_dir(final)


class LocalStorage:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()
        self.description = f"folder {self.root}"

    async def ping(self) -> None:
        await anyio.to_thread.run_sync(self._check_publishing)

    def _check_publishing(self) -> None:
        """Publish a tiny bundle the way `stage` and `publish` do, then remove it.

        Writing under `.staging` alone is not enough: with the root read-only
        (or on another file system) staging works and every publish fails.
        So the probe is built under `.staging`, renamed into the root and
        removed; StorageError names the step, the path and the errno.
        """
        staging = self.root / STAGING_DIR
        name = f".ready-{uuid.uuid4().hex}"
        built, published = staging / name, self.root / name
        step = f"create {staging}"
        try:
            staging.mkdir(parents=True, exist_ok=True)
            step = f"write in {staging}"
            built.mkdir()
            probe.write_file(built / "probe")
            step = f"publish into {self.root} (rename from {STAGING_DIR})"
            os.rename(built, published)
            step = f"remove {published}"
            shutil.rmtree(published)
        except OSError as exc:
            raise StorageError(
                f"{self.description} is not writable: cannot {step}: {probe.reason(exc)}"
            ) from exc
        finally:
            # A probe that failed half-way leaves nothing for captioners to find.
            for leftover in (built, published):
                shutil.rmtree(leftover, ignore_errors=True)

    async def read_manifest(self, folder: str) -> dict[str, Any] | None:
        return parse_manifest(await self.read_file(folder, MANIFEST))

    async def read_file(self, folder: str, path: str) -> bytes | None:
        target = self.root / folder / check_relative(path)

        def read() -> bytes | None:
            try:
                return target.read_bytes()
            except FileNotFoundError:
                return None

        return await anyio.to_thread.run_sync(read)

    async def find_bundles(self, asset_id: str) -> list[str]:
        suffix = f"[{asset_id}]"

        def scan() -> list[str]:
            if not self.root.is_dir():
                return []
            return sorted(
                p.name
                for p in self.root.iterdir()
                if p.is_dir() and p.name.endswith(suffix) and (p / MANIFEST).exists()
            )

        return await anyio.to_thread.run_sync(scan)

    @asynccontextmanager
    async def stage(self, folder: str) -> AsyncIterator[LocalStaging]:
        check_relative(folder)
        staging_root = self.root / STAGING_DIR

        def prepare() -> Path:
            staging_root.mkdir(parents=True, exist_ok=True)
            # Leftovers of this folder from a worker that died mid-build.
            for stale in staging_root.glob(f"{glob_escape(folder)}.*"):
                shutil.rmtree(stale, ignore_errors=True)
            path = staging_root / f"{folder}.{uuid.uuid4().hex}"
            path.mkdir()
            return path

        try:
            path = await anyio.to_thread.run_sync(prepare)
        except OSError as exc:
            raise StorageError(f"{self.description}: cannot stage {folder!r}: {exc}") from exc
        try:
            yield LocalStaging(self.root, folder, path)
        finally:
            await anyio.to_thread.run_sync(lambda: shutil.rmtree(path, ignore_errors=True))

    async def write_in_place(self, folder: str, path: str, data: bytes) -> None:
        target = self.root / folder / check_relative(path)

        def write() -> None:
            temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
            temp.write_bytes(data)
            with temp.open("rb") as f:
                os.fsync(f.fileno())
            os.replace(temp, target)

        await anyio.to_thread.run_sync(write)


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in name)
