"""Bundles in a local (or mounted) folder.

A new bundle is built under `<root>/.staging/` and renamed into place in one
step, so its final name never shows half a bundle. A change to a published
bundle (a refresh, a withdrawal) is staged the same way and then applied in
place: `project.json` is first set aside, so the folder reads as incomplete
while it changes; the service's files are replaced one by one (each an
atomic rename); the new manifest goes in last. Only the paths the caller
names are written or removed, so files a captioner added are never touched.

Captioners may write anything anywhere in a bundle folder, so nothing below
the root is reached by a path string the kernel resolves: every folder is
opened one name at a time without following a link, every file is checked
to be a regular one before it is read and replaced by a rename rather than
opened for writing (safe_fs.py). What is in the way is reported (Blocked,
NotRegularFile, a publish's blocked paths), named as within the bundle.

Staging and publishing are local_staging.py; this module reads, lists and
replaces single files, and hands out the staging.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from service.bundle.manifest import MANIFEST, MANIFEST_ASIDE
from service.storage import (
    Blocked,
    NotRegularFile,
    Outtray,
    StorageError,
    StoredFile,
    TooLarge,
    asset_of_folder,
    changed,
    check_relative,
    probe,
    pulled,
    read_manifest,
    safe_fs,
)
from service.storage.local_staging import (
    LOCK_SUFFIX,
    ROOT_FLAGS,
    STAGING_DIR,
    LocalStaging,
    clear_dead_staging,
    held_lock,
)

OUTTRAY = "deliver"  # the captioners' folder in each bundle (service/bundle/outtray.py)


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

    # -- descriptors ------------------------------------------------------------------
    # The root is the operator's (it may itself be a symlink); everything
    # below it is opened one name at a time, never following a link.

    def _open_root(self, *, create: bool = False) -> int | None:
        # A root that cannot be opened (under a regular file, no permission)
        # is the storage's failure, named as such: callers retry a StorageError.
        try:
            try:
                return os.open(self.root, ROOT_FLAGS)
            except FileNotFoundError:
                if not create:
                    return None
            self.root.mkdir(parents=True, exist_ok=True)
            return os.open(self.root, ROOT_FLAGS)
        except OSError as exc:
            raise StorageError(f"{self.description}: cannot open it: {probe.reason(exc)}") from exc

    def _reading_dir(self, folder: str, inner: list[str]) -> int | None:
        """`folder/inner...` opened; None when absent; NotRegularFile when a
        symlink or a file is on the way (named as within the bundle)."""
        root = self._open_root()
        if root is None:
            return None
        outer = check_relative(folder).split("/")
        with safe_fs.opened(root):
            try:
                return safe_fs.open_dirs(root, [*outer, *inner])
            except FileNotFoundError:
                return None
            except safe_fs.NotAFolder as exc:
                raise NotRegularFile(_on_the_way(outer, inner, exc.depth), exc.kind) from None

    def _writing_dir(self, folder: str, inner: list[str], path: str) -> int:
        """`folder/inner...` opened, made where absent; Blocked by anything else."""
        outer = check_relative(folder).split("/")
        root = self._open_root(create=True)
        assert root is not None
        with safe_fs.opened(root):
            try:
                return safe_fs.open_dirs(root, [*outer, *inner], create=True)
            except safe_fs.NotAFolder as exc:
                where = _on_the_way(outer, inner, exc.depth)
                raise Blocked(path, f"{where} is a {exc.kind}, not a folder") from None

    # -- reading ----------------------------------------------------------------------

    async def read_manifest(self, folder: str) -> dict[str, Any] | None:
        return await read_manifest(self, folder)

    async def read_file(self, folder: str, path: str, *, limit: int) -> bytes | None:
        *inner, name = check_relative(path).split("/")

        def read() -> bytes | None:
            fd = self._open_regular(folder, inner, name, path)
            if fd is None:
                return None
            with safe_fs.opened(fd):
                try:
                    return safe_fs.read_bounded(fd, limit)
                except safe_fs.Oversized as exc:
                    raise TooLarge(path, exc.size, limit) from None

        return await anyio.to_thread.run_sync(read)

    async def file_digest(self, folder: str, path: str, *, size: int | None = None) -> str | None:
        *inner, name = check_relative(path).split("/")

        def digest() -> str | None:
            try:
                fd = self._open_regular(folder, inner, name, path)
            except NotRegularFile:
                return None
            if fd is None:
                return None
            with safe_fs.opened(fd):
                found = os.fstat(fd).st_size
                if size is not None and found != size:
                    return changed(found)
                return safe_fs.sha256_of(fd)

        return await anyio.to_thread.run_sync(digest)

    def _open_regular(self, folder: str, inner: list[str], name: str, path: str) -> int | None:
        folder_fd = self._reading_dir(folder, inner)
        if folder_fd is None:
            return None
        with safe_fs.opened(folder_fd):
            try:
                return safe_fs.open_regular(folder_fd, name)
            except FileNotFoundError:
                return None
            except safe_fs.NotAFile as exc:
                raise NotRegularFile(path, exc.kind) from None

    async def find_bundles(self, asset_id: str) -> list[str]:
        suffix = f"[{asset_id}]"

        def has_manifest(root: int, folder: str) -> bool:
            try:
                fd = safe_fs.open_dir(root, folder)
            except (FileNotFoundError, safe_fs.NotAFolder):
                return False
            with safe_fs.opened(fd):
                return "file" in (
                    safe_fs.kind_at(fd, MANIFEST),
                    safe_fs.kind_at(fd, MANIFEST_ASIDE),
                )

        def scan() -> list[str]:
            root = self._open_root()
            if root is None:
                return []
            with safe_fs.opened(root):
                return [
                    folder
                    for folder in _folders(root)
                    if folder.endswith(suffix) and has_manifest(root, folder)
                ]

        return await anyio.to_thread.run_sync(scan)

    async def list_bundles(self) -> list[tuple[str, str, str]]:
        """Every bundle in the folder, as (asset id, folder, status): one listing."""
        found = []
        for folder in await self.list_folders():
            asset_id = asset_of_folder(folder)
            manifest = await self.read_manifest(folder) if asset_id else None
            if asset_id is not None and manifest is not None:
                found.append((asset_id, folder, str(manifest.get("status", "ready"))))
        return found

    async def list_folders(self) -> list[str]:
        def scan() -> list[str]:
            root = self._open_root()
            if root is None:
                return []
            with safe_fs.opened(root):
                return _folders(root)

        return await anyio.to_thread.run_sync(scan)

    async def list_files(self, folder: str, under: str) -> list[StoredFile]:
        inner = check_relative(under).split("/")
        return await anyio.to_thread.run_sync(self._entries, folder, inner)

    def outtrays(self) -> AsyncIterator[Outtray]:
        return pulled(self._outtray_pages(), anyio.to_thread.run_sync)

    def _outtray_pages(self, per_page: int = 200) -> Iterator[list[Outtray]]:
        """Blocking: every folder's deliver/, `per_page` folders a step (a
        thread hop per folder would cost more than the listing itself)."""
        root = self._open_root()
        if root is None:
            return
        with safe_fs.opened(root):
            folders = _folders(root)
        for start in range(0, len(folders), per_page):
            page = []
            for folder in folders[start : start + per_page]:
                try:
                    manifest = self._manifest_look(folder)
                    page.append(Outtray(folder, self._entries(folder, [OUTTRAY]), None, manifest))
                except NotRegularFile as exc:
                    page.append(Outtray(folder, [], f"{exc.path} is a {exc.kind}"))
                except FileNotFoundError:
                    continue  # removed while listing
            yield page

    def _manifest_look(self, folder: str) -> StoredFile | None:
        """Blocking: project.json as a listing shows it (never followed)."""
        fd = self._reading_dir(folder, [])
        if fd is None:
            return None
        with safe_fs.opened(fd):
            try:
                st = os.stat(MANIFEST, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                return None
        tag = f"{st.st_ino}:{st.st_mtime_ns}:{st.st_ctime_ns}"
        return StoredFile(MANIFEST, st.st_size, st.st_mtime, tag, safe_fs.kind_of(st.st_mode))

    def _entries(self, folder: str, inner: list[str]) -> list[StoredFile]:
        """Blocking: the entries directly in `folder/inner...`, none followed."""
        fd = self._reading_dir(folder, inner)
        if fd is None:
            return []
        found = []
        with safe_fs.opened(fd):
            for entry in list(os.scandir(fd)):
                try:
                    # The entry itself (lstat): a link is shown, never followed.
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # removed while listing
                tag = f"{st.st_ino}:{st.st_mtime_ns}:{st.st_ctime_ns}"
                kind = safe_fs.kind_of(st.st_mode)
                found.append(StoredFile(entry.name, st.st_size, st.st_mtime, tag, kind))
        return sorted(found, key=lambda f: f.name)

    # -- writing ----------------------------------------------------------------------

    async def put_file(self, folder: str, path: str, data: bytes) -> None:
        """One file, replaced atomically: written new beside it (a hidden name)
        and renamed over it. A symlink or FIFO at the name is replaced, never
        opened or followed; a folder there (or on the way) is Blocked."""
        *inner, name = check_relative(path).split("/")

        def write() -> None:
            with safe_fs.opened(self._writing_dir(folder, inner, path)) as fd:
                temporary = safe_fs.write_new(fd, data)
                try:
                    placed = safe_fs.replace_into(fd, temporary, fd, name)
                finally:
                    with contextlib.suppress(FileNotFoundError):  # placed: it is gone
                        os.unlink(temporary, dir_fd=fd)
                if not placed:
                    raise Blocked(path, "a folder is in its place")
                os.fsync(fd)

        await anyio.to_thread.run_sync(write)

    async def delete_file(self, folder: str, path: str) -> None:
        """Remove `path` if it is a regular file; anything else is left alone."""
        *inner, name = check_relative(path).split("/")

        def remove() -> None:
            try:
                fd = self._reading_dir(folder, inner)
            except NotRegularFile:
                return  # a symlink or a file on the way: not the service's file
            if fd is not None:
                with safe_fs.opened(fd):
                    safe_fs.remove_regular(fd, name)

        await anyio.to_thread.run_sync(remove)

    @asynccontextmanager
    async def stage(self, folder: str) -> AsyncIterator[LocalStaging]:
        check_relative(folder)
        staging_root = self.root / STAGING_DIR
        path = staging_root / f"{folder}.{uuid.uuid4().hex}"
        lock = path.with_name(path.name + LOCK_SUFFIX)
        with contextlib.ExitStack() as held:

            def prepare() -> None:
                staging_root.mkdir(parents=True, exist_ok=True)
                held.enter_context(held_lock(lock))
                clear_dead_staging(staging_root, folder)
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


def _folders(root: int) -> list[str]:
    """The folders directly in the root that may be bundles: not hidden, not symlinks."""
    return sorted(
        e.name for e in os.scandir(root) if e.is_dir(follow_symlinks=False) and e.name[0] != "."
    )


def _on_the_way(outer: list[str], inner: list[str], depth: int) -> str:
    """The name of the `depth`th folder walked: within the bundle when it is in it."""
    if depth <= len(outer):
        return "/".join(outer[:depth])
    return "/".join(inner[: depth - len(outer)])
