"""Files in a folder that others write to, reached through directory fds only.

A captioner can put anything anywhere in a bundle folder: a symlink to
/etc or to another bundle, a FIFO that blocks whoever opens it, a sparse
file of terabytes, a folder where the service's file goes. A path string
handed to the kernel follows every symlink on the way, so nothing here takes
one: each folder is opened by a single name inside the one before it
(`dir_fd`), without following a link (O_NOFOLLOW), and a file is looked at
(lstat) before it is opened and again (fstat) once it is, so what is read is
the regular file that was checked.

Pure functions over descriptors; the storage backend (local.py) names the
paths and turns `NotAFolder` into the errors its callers see.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import uuid
from collections.abc import Iterator, Sequence

# A folder: never a symlink to one.
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# A file to read: never through a symlink; a FIFO must not block the open
# (O_NONBLOCK), a terminal must not become ours (O_NOCTTY).
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
# A new file of ours: never an existing one, never through a link.
CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
TEMP_PREFIX = ".cb-tmp-"  # hidden: the deliver/ scan and Finder skip it
CHUNK = 1024 * 1024


class NotAFolder(Exception):
    """`parts[depth - 1]` of a walk is not a real folder: a symlink, a file..."""

    def __init__(self, depth: int, kind: str) -> None:
        super().__init__(f"component {depth} is a {kind}")
        self.depth, self.kind = depth, kind


class NotAFile(Exception):
    """The name holds something other than a regular file (`kind`)."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"not a regular file (a {kind})")
        self.kind = kind


class Oversized(Exception):
    """The file holds more than the limit; `size` is how much at least."""

    def __init__(self, size: int) -> None:
        super().__init__(f"{size} bytes")
        self.size = size


def kind_of(mode: int) -> str:
    """What an lstat's mode says is there, in the words of `StoredFile.kind`."""
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "other"


def kind_at(dir_fd: int, name: str) -> str | None:
    """What `name` in `dir_fd` is (not following it), None when nothing is."""
    try:
        return kind_of(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return None


def _blocker(dir_fd: int, name: str, exc: OSError) -> str:
    """The kind of what made opening `name` as a folder fail with ELOOP/ENOTDIR."""
    kind = kind_at(dir_fd, name)
    if kind in (None, "directory"):  # changed since: say what the open met
        return "symlink" if exc.errno == errno.ELOOP else "other"
    return kind


def open_dir(dir_fd: int, name: str, *, create: bool = False) -> int:
    """The folder `name` in `dir_fd`, opened without following a link.

    FileNotFoundError when it is absent (made first when `create`);
    NotAFolder(1, kind) when something else is at the name.
    """
    try:
        return os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        if not create:
            raise
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise NotAFolder(1, _blocker(dir_fd, name, exc)) from None
        raise
    with contextlib.suppress(FileExistsError):  # made meanwhile: checked below like any
        os.mkdir(name, dir_fd=dir_fd)
    return open_dir(dir_fd, name)


def open_dirs(dir_fd: int, parts: Sequence[str], *, create: bool = False) -> int:
    """The folder `parts` (one name per level) below `dir_fd`; the caller closes it.

    FileNotFoundError when one is absent (unless `create`); NotAFolder with
    the depth of the first that is not a real folder.
    """
    fd = os.dup(dir_fd)  # so the caller closes what it gets back, always
    try:
        for depth, name in enumerate(parts, 1):
            try:
                child = open_dir(fd, name, create=create)
            except NotAFolder as exc:
                raise NotAFolder(depth, exc.kind) from None
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def opened(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


def open_regular(dir_fd: int, name: str) -> int:
    """`name` in `dir_fd` opened for reading, only if it is a regular file.

    Looked at before the open, so a FIFO or a device is never opened, and
    after it, so what was opened is what was looked at. FileNotFoundError
    when absent; NotAFile(kind) otherwise.
    """
    kind = kind_at(dir_fd, name)
    if kind is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)
    if kind != "file":
        raise NotAFile(kind)
    try:
        fd = os.open(name, READ_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # became a symlink since the look
            raise NotAFile("symlink") from None
        if exc.errno == errno.ENXIO:  # a socket
            raise NotAFile(kind_at(dir_fd, name) or "other") from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise NotAFile(kind_of(mode))
    return fd


def read_bounded(fd: int, limit: int) -> bytes:
    """All of the regular file `fd`, or Oversized: never more than `limit` + 1 bytes read.

    The size is checked before reading; a file that grows while it is read
    is stopped at the first byte past the limit.
    """
    size = os.fstat(fd).st_size
    if size > limit:
        raise Oversized(size)
    chunks, total = [], 0
    while total <= limit:
        chunk = os.read(fd, min(CHUNK, limit + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    if total > limit:
        raise Oversized(total)
    return b"".join(chunks)


def sha256_of(fd: int) -> str:
    digest = hashlib.sha256()
    while chunk := os.read(fd, CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def write_new(dir_fd: int, data: bytes) -> str:
    """`data` in a new hidden file in `dir_fd`, fsync'd; its name.

    O_EXCL|O_NOFOLLOW: the name is new, so nothing a captioner made is
    opened for writing. Nothing is left behind when it fails.
    """
    name = f"{TEMP_PREFIX}{uuid.uuid4().hex}"
    fd = os.open(name, CREATE_FLAGS, 0o666, dir_fd=dir_fd)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=dir_fd)
        raise
    os.close(fd)
    return name


# What rename(2) says when a folder holds the target name (EISDIR; ENOTEMPTY
# or EEXIST when the thing moved is a folder too).
FOLDER_IN_THE_WAY = (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST)


def replace_into(src_fd: int, src: str, dir_fd: int, name: str) -> bool:
    """Rename `src` (in `src_fd`) to `name` in `dir_fd`; False when a folder is there.

    rename(2) replaces a symlink, a FIFO or a file at `name` without
    opening or following it; a folder it would not replace is left as it is.
    """
    if kind_at(dir_fd, name) == "directory":
        return False
    try:
        os.replace(src, name, src_dir_fd=src_fd, dst_dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in FOLDER_IN_THE_WAY:  # a folder appeared since the look
            return False
        raise
    return True


def remove_regular(dir_fd: int, name: str) -> str | None:
    """Unlink `name` in `dir_fd` if it is a regular file; else what is there (None: nothing)."""
    kind = kind_at(dir_fd, name)
    if kind != "file":
        return kind
    with contextlib.suppress(FileNotFoundError, IsADirectoryError):
        # Swapped for something else since the look: unlink removes that
        # name itself (a link, never its target) and never a folder.
        os.unlink(name, dir_fd=dir_fd)
    return None
