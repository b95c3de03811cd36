"""Bundles in a local (or mounted) folder.

A new bundle is built under `<root>/.staging/` and renamed into place in one
step, so its final name never shows half a bundle. A change to a published
bundle (a refresh, a withdrawal) is staged the same way and then applied in
place: `project.json` is first set aside, so the folder reads as incomplete
while it changes; the service's files are replaced one by one (each an
atomic rename); the new manifest goes in last. Only the paths the caller
names are written or removed, so files a captioner added are never touched.

Each staging folder has a lock file beside it, held (flock) by the build
that owns it for as long as it runs. A starting build clears only staging
whose lock it can take: a build that still runs, in this process or in
another, is never cut off.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from service import blocking, probe
from service.bundle import MANIFEST, MANIFEST_ASIDE
from service.storage import (
    Body,
    StorageError,
    StoredFile,
    asset_of_folder,
    check_relative,
    read_manifest,
)

STAGING_DIR = ".staging"
_LOCK_SUFFIX = ".lock"
_READ_CHUNK = 1024 * 1024


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_chunks(target: Path, chunks: Iterable[bytes]) -> tuple[int, str]:
    """Write and hash `chunks` into `target`, then fsync it: (size, SHA-256 hex)."""
    digest, size = hashlib.sha256(), 0
    with open(target, "wb", buffering=0) as out:
        for chunk in chunks:
            digest.update(chunk)  # releases the GIL for large chunks, as the write does
            view = memoryview(chunk)
            while view:
                view = view[out.write(view) :]
            size += len(chunk)
        os.fsync(out.fileno())
    return size, digest.hexdigest()


def _sha256_of(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while chunk := f.read(_READ_CHUNK):
                digest.update(chunk)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    return digest.hexdigest()


@contextlib.contextmanager
def _held_lock(path: Path) -> Iterator[None]:
    """Create `path` and hold an exclusive flock on it until the block ends."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock, also when the process dies


def _owner_is_dead(lock: Path) -> bool:
    """True when nobody holds `lock`: the build it belonged to has ended."""
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        # The lock is made before its folder and removed after it, so a
        # folder without one was left by a build that is gone.
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    finally:
        os.close(fd)
    return True


def _clear_dead_staging(staging_root: Path, folder: str) -> None:
    """Remove the staging of `folder` left by builds that are provably dead."""
    for entry in staging_root.glob(f"{glob_escape(folder)}.*"):
        if entry.name.endswith(_LOCK_SUFFIX):
            continue
        lock = entry.with_name(entry.name + _LOCK_SUFFIX)
        if _owner_is_dead(lock):
            shutil.rmtree(entry, ignore_errors=True)
            lock.unlink(missing_ok=True)
    for lock in staging_root.glob(f"{glob_escape(folder)}.*{_LOCK_SUFFIX}"):
        unlocked = lock.with_name(lock.name.removesuffix(_LOCK_SUFFIX))
        if not unlocked.exists() and _owner_is_dead(lock):
            lock.unlink(missing_ok=True)


class LocalStaging:
    def __init__(self, root: Path, folder: str, staging: Path) -> None:
        self.root, self.folder, self.dir = root, folder, staging
        self.written: list[str] = []

    def _target(self, path: str) -> Path:
        target = self.dir / check_relative(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    async def write_body(self, path: str, body: Body) -> tuple[int, str]:
        """Receive, hash and write `body` into `path` in one thread of its own; fsync once.

        One thread does it all with blocking calls, chunk after chunk as the
        socket hands them over: the event loop is handed nothing per chunk
        (it answers requests meanwhile), no chunk is copied between threads,
        and memory stays at a chunk. Cancelled, the thread is stopped and
        waited for: nothing writes into the staging folder once it is removed.
        """
        target = await anyio.to_thread.run_sync(self._target, path)
        size, digest = await blocking.run_stoppable(
            functools.partial(_write_chunks, target, body.blocking_chunks()),
            body.stop,
            name=f"copy {path}",
            niceness=blocking.COPY_NICENESS,
        )
        self.written.append(path)
        return size, digest

    async def write_bytes(self, path: str, data: bytes) -> tuple[int, str]:
        target = await anyio.to_thread.run_sync(self._target, path)
        size, digest = await anyio.to_thread.run_sync(_write_chunks, target, [data])
        self.written.append(path)
        return size, digest

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
                # Another writer published first: fall through and change it.
        # No project.json while the service's files change: a reader never
        # pairs the old manifest with new files.
        with contextlib.suppress(FileNotFoundError):
            os.replace(final / MANIFEST, final / MANIFEST_ASIDE)
        for path in self.written:
            target = final / path
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.dir / path, target)
        for path in remove:
            if path not in self.written:
                (final / check_relative(path)).unlink(missing_ok=True)
        os.replace(staged_manifest, final / MANIFEST)  # last: the bundle is complete
        (final / MANIFEST_ASIDE).unlink(missing_ok=True)
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
        return await read_manifest(self, folder)

    async def read_file(self, folder: str, path: str, *, limit: int) -> bytes | None:
        target = self.root / folder / check_relative(path)

        def read() -> bytes | None:
            try:
                return target.read_bytes()[: limit + 1]
            except FileNotFoundError:
                return None

        return await anyio.to_thread.run_sync(read)

    async def file_digest(self, folder: str, path: str) -> str | None:
        target = self.root / folder / check_relative(path)
        return await anyio.to_thread.run_sync(_sha256_of, target)

    async def find_bundles(self, asset_id: str) -> list[str]:
        suffix = f"[{asset_id}]"

        def scan() -> list[str]:
            if not self.root.is_dir():
                return []
            return sorted(
                p.name
                for p in self.root.iterdir()
                if p.is_dir()
                and p.name.endswith(suffix)
                and ((p / MANIFEST).exists() or (p / MANIFEST_ASIDE).exists())
            )

        return await anyio.to_thread.run_sync(scan)

    async def list_bundles(self) -> list[tuple[str, str, str]]:
        """Every bundle in the folder, as (asset id, folder, status): one listing."""
        found = []
        for folder in await self.list_folders():
            asset_id = asset_of_folder(folder)
            manifest = await self.read_manifest(folder)
            if asset_id is not None and manifest is not None:
                found.append((asset_id, folder, str(manifest.get("status", "ready"))))
        return found

    async def list_folders(self) -> list[str]:
        def scan() -> list[str]:
            if not self.root.is_dir():
                return []
            return sorted(
                p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")
            )

        return await anyio.to_thread.run_sync(scan)

    async def list_files(self, folder: str, under: str) -> list[StoredFile]:
        where = self.root / check_relative(folder) / check_relative(under)

        def scan() -> list[StoredFile]:
            found = []
            try:
                entries = list(os.scandir(where))
            except (FileNotFoundError, NotADirectoryError):
                return []
            for entry in entries:
                # Symlinks are not followed: a link in a shared folder must not
                # make the service read (and deliver) a file from elsewhere.
                if not entry.is_file(follow_symlinks=False):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # removed while listing
                tag = f"{st.st_ino}:{st.st_mtime_ns}:{st.st_ctime_ns}"
                found.append(StoredFile(entry.name, st.st_size, st.st_mtime, tag))
            return sorted(found, key=lambda f: f.name)

        return await anyio.to_thread.run_sync(scan)

    async def put_file(self, folder: str, path: str, data: bytes) -> None:
        """One file, replaced atomically; its temporary copy waits in the staging
        area, so nothing but the file itself ever appears beside it."""
        target = self.root / check_relative(folder) / check_relative(path)

        def write() -> None:
            staging_root = self.root / STAGING_DIR
            staging_root.mkdir(parents=True, exist_ok=True)
            temporary = staging_root / f".put-{uuid.uuid4().hex}"
            try:
                with temporary.open("wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(temporary, target)
            finally:
                temporary.unlink(missing_ok=True)

        await anyio.to_thread.run_sync(write)

    async def delete_file(self, folder: str, path: str) -> None:
        target = self.root / check_relative(folder) / check_relative(path)
        await anyio.to_thread.run_sync(lambda: target.unlink(missing_ok=True))

    @asynccontextmanager
    async def stage(self, folder: str) -> AsyncIterator[LocalStaging]:
        check_relative(folder)
        staging_root = self.root / STAGING_DIR
        path = staging_root / f"{folder}.{uuid.uuid4().hex}"
        lock = path.with_name(path.name + _LOCK_SUFFIX)
        with contextlib.ExitStack() as held:

            def prepare() -> None:
                staging_root.mkdir(parents=True, exist_ok=True)
                held.enter_context(_held_lock(lock))
                _clear_dead_staging(staging_root, folder)
                path.mkdir()

            try:
                await anyio.to_thread.run_sync(prepare)
            except OSError as exc:
                lock.unlink(missing_ok=True)
                raise StorageError(f"{self.description}: cannot stage {folder!r}: {exc}") from exc
            try:
                yield LocalStaging(self.root, folder, path)
            finally:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(lambda: shutil.rmtree(path, ignore_errors=True))
                # The folder goes first, then its lock (released as `held` closes).
                lock.unlink(missing_ok=True)


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in name)
