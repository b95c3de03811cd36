"""Staging for the local backend: a bundle built aside, then published into its folder.

A new bundle is built under `<root>/.staging/` and renamed into place in one
step. A change to a published bundle is applied in place: project.json set
aside, each named file moved in by one rename through folders opened without
following a link, the new manifest last, the old one put back on a failure
(see local.py for the rules and safe_fs.py for the primitives).

Each staging folder has a lock file beside it, held (flock) by the build
that owns it for as long as it runs, so a starting build clears only the
staging of builds that are provably gone.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import anyio
import anyio.to_thread

from service import blocking
from service.bundle.manifest import MANIFEST, MANIFEST_ASIDE
from service.storage import Body, StorageError, check_relative, safe_fs

STAGING_DIR = ".staging"
LOCK_SUFFIX = ".lock"
# The root is the operator's (followed if a symlink); nothing below it is.
ROOT_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def write_chunks(target: Path, chunks: Iterable[bytes]) -> tuple[int, str]:
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
def held_lock(path: Path) -> Iterator[None]:
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


def clear_dead_staging(staging_root: Path, folder: str) -> None:
    """Remove the staging of `folder` left by builds that are provably dead."""
    for entry in staging_root.glob(f"{glob_escape(folder)}.*"):
        if entry.name.endswith(LOCK_SUFFIX):
            continue
        lock = entry.with_name(entry.name + LOCK_SUFFIX)
        if _owner_is_dead(lock):
            shutil.rmtree(entry, ignore_errors=True)
            lock.unlink(missing_ok=True)
    for lock in staging_root.glob(f"{glob_escape(folder)}.*{LOCK_SUFFIX}"):
        unlocked = lock.with_name(lock.name.removesuffix(LOCK_SUFFIX))
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
            functools.partial(write_chunks, target, body.blocking_chunks()),
            body.stop,
            name=f"copy {path}",
            niceness=blocking.COPY_NICENESS,
        )
        self.written.append(path)
        return size, digest

    async def write_bytes(self, path: str, data: bytes) -> tuple[int, str]:
        target = await anyio.to_thread.run_sync(self._target, path)
        size, digest = await anyio.to_thread.run_sync(write_chunks, target, [data])
        self.written.append(path)
        return size, digest

    async def publish(self, manifest: bytes, remove: list[str]) -> list[str]:
        return await anyio.to_thread.run_sync(self._publish, manifest, remove)

    def _publish(self, manifest: bytes, remove: list[str]) -> list[str]:
        write_chunks(self.dir / MANIFEST, [manifest])
        *above, name = self.folder.split("/")
        with safe_fs.opened(os.open(self.root, ROOT_FLAGS)) as root:
            try:
                parent = safe_fs.open_dirs(root, above)
            except safe_fs.NotAFolder as exc:
                raise _not_a_bundle("/".join(above[: exc.depth]), exc.kind) from None
            with safe_fs.opened(parent):
                bundle = self._open_bundle(parent, name)
                if bundle is None:
                    return []  # a new bundle, renamed into place whole
            with safe_fs.opened(bundle), safe_fs.opened(os.open(self.dir, ROOT_FLAGS)) as staged:
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


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in name)
