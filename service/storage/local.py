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
    Blocked,
    Body,
    NotRegularFile,
    StorageError,
    StoredFile,
    TooLarge,
    asset_of_folder,
    changed,
    check_relative,
    read_manifest,
    safe_fs,
)

STAGING_DIR = ".staging"
_LOCK_SUFFIX = ".lock"
# The root is the operator's (followed if a symlink); nothing below it is.
_ROOT_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


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
        # The staging folder is the service's own: plain paths are fine here.
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

    async def publish(self, manifest: bytes, remove: list[str]) -> list[str]:
        return await anyio.to_thread.run_sync(self._publish, manifest, remove)

    def _publish(self, manifest: bytes, remove: list[str]) -> list[str]:
        _write_chunks(self.dir / MANIFEST, [manifest])
        *above, name = self.folder.split("/")
        with safe_fs.opened(os.open(self.root, _ROOT_FLAGS)) as root:
            try:
                parent = safe_fs.open_dirs(root, above)
            except safe_fs.NotAFolder as exc:
                raise _not_a_bundle("/".join(above[: exc.depth]), exc.kind) from None
            with safe_fs.opened(parent):
                bundle = self._open_bundle(parent, name)
                if bundle is None:
                    return []  # a new bundle, renamed into place whole
            with safe_fs.opened(bundle), safe_fs.opened(os.open(self.dir, _ROOT_FLAGS)) as staged:
                return self._change(bundle, staged, remove)

    def _open_bundle(self, parent: int, name: str) -> int | None:
        """The published folder, opened; None when this staging became it."""
        try:
            return safe_fs.open_dir(parent, name)
        except safe_fs.NotAFolder as exc:
            raise _not_a_bundle(self.folder, exc.kind) from None
        except FileNotFoundError:
            pass
        try:
            os.rename(self.dir, name, dst_dir_fd=parent)  # the whole bundle appears at once
            os.fsync(parent)
            return None
        except OSError:
            kind = safe_fs.kind_at(parent, name)
            if kind is None:
                raise
            if kind != "directory":
                raise _not_a_bundle(self.folder, kind) from None
        # Another writer published first: change what it published.
        try:
            return safe_fs.open_dir(parent, name)
        except safe_fs.NotAFolder as exc:
            raise _not_a_bundle(self.folder, exc.kind) from None

    def _change(self, bundle: int, staged: int, remove: list[str]) -> list[str]:
        """Apply this staging to the published folder `bundle`; the paths blocked.

        Only the paths the caller names are touched, each through folders
        opened without following a link: whatever a captioner put in the way
        is left as it is and reported. project.json is set aside first (a
        reader never pairs the old manifest with new files) and put back if
        anything fails, so the folder is never left without one.
        """
        _set_aside(bundle)
        try:
            blocked = [p for p in dict.fromkeys(self.written) if not _place(staged, p, bundle)]
            blocked += [p for p in remove if p not in self.written and not _remove(bundle, p)]
            # Last: the bundle is complete.
            if safe_fs.replace_into(staged, MANIFEST, bundle, MANIFEST):
                safe_fs.remove_regular(bundle, MANIFEST_ASIDE)
            else:
                blocked.append(MANIFEST)  # a folder there: the one set aside is kept
            os.fsync(bundle)
        except BaseException:
            _roll_back(bundle)
            raise
        return blocked


def _not_a_bundle(folder: str, kind: str) -> StorageError:
    return StorageError(f"{folder} is a {kind}, not a folder: nothing was published")


def _set_aside(bundle: int) -> None:
    """Move a regular project.json to MANIFEST_ASIDE while the bundle changes."""
    if safe_fs.kind_at(bundle, MANIFEST) != "file":
        return  # absent, or a captioner's: replaced (or blocked) at the end
    try:
        os.replace(MANIFEST, MANIFEST_ASIDE, src_dir_fd=bundle, dst_dir_fd=bundle)
    except FileNotFoundError:
        pass
    except OSError as exc:
        # A folder holds the aside name: change the files with the old
        # manifest in place; the new one still goes in by one rename.
        if exc.errno not in safe_fs.FOLDER_IN_THE_WAY:
            raise


def _roll_back(bundle: int) -> None:
    """After a failure part-way: the manifest set aside goes back, if none is there."""
    with contextlib.suppress(OSError):
        nothing_there = safe_fs.kind_at(bundle, MANIFEST) is None
        if nothing_there and safe_fs.kind_at(bundle, MANIFEST_ASIDE) == "file":
            os.replace(MANIFEST_ASIDE, MANIFEST, src_dir_fd=bundle, dst_dir_fd=bundle)
            os.fsync(bundle)


def _place(staged: int, path: str, bundle: int) -> bool:
    """Move the staged `path` into the bundle; False when something is in the way."""
    *inner, name = path.split("/")
    try:
        folder = safe_fs.open_dirs(bundle, inner, create=True)
    except safe_fs.NotAFolder:
        return False
    with safe_fs.opened(folder):
        if not safe_fs.replace_into(staged, path, folder, name):
            return False
        os.fsync(folder)
    return True


def _remove(bundle: int, path: str) -> bool:
    """Remove the service's file `path` if it is still a regular file; False when
    something else is there (left alone). `path` comes from the previous
    manifest, which a captioner may have edited."""
    try:
        *inner, name = check_relative(path).split("/")
        folder = safe_fs.open_dirs(bundle, inner)
    except FileNotFoundError:
        return True  # gone already
    except (ValueError, safe_fs.NotAFolder):
        return False
    with safe_fs.opened(folder):
        return safe_fs.remove_regular(folder, name) is None


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
        try:
            return os.open(self.root, _ROOT_FLAGS)
        except FileNotFoundError:
            if not create:
                return None
        self.root.mkdir(parents=True, exist_ok=True)
        return os.open(self.root, _ROOT_FLAGS)

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

        def scan() -> list[StoredFile]:
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

        return await anyio.to_thread.run_sync(scan)

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


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in name)
