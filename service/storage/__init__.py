"""Where bundles go: a local folder or S3, chosen by `STORAGE_URL` alone.

Every backend publishes atomically: the bundle's files first, `project.json`
last, so a reader that sees the manifest sees a complete bundle. Paths inside
a bundle are relative and checked; nothing can be written outside its folder.

Everything in the storage may have been written by a captioner, so every
backend holds to the same rules (tests/unit/storage/test_storage_hostile.py):

- a read is of a regular file only, never through a symlink, never blocking
  on a FIFO, and bounded before it starts (`limit`): `NotRegularFile` or
  `TooLarge` say why not, naming the path relative to the bundle;
- a listing shows every entry as it is (`StoredFile.kind`), follows none;
- a write or removal never follows a symlink (at the path or at any folder
  on the way to it) and never opens an existing file for writing: the new
  content is written aside and renamed into place. A path that cannot be
  written that way (a directory or a symlinked folder in the way) is
  `Blocked`; a publish places everything else and says which were blocked.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from service.bundle import readback
from service.bundle.manifest import MANIFEST, MANIFEST_ASIDE


class StorageError(Exception):
    """The bundle storage could not be read or written (the message says where)."""


class NotRegularFile(StorageError):
    """The path holds something other than a regular file (`kind` says what)."""

    def __init__(self, path: str, kind: str) -> None:
        super().__init__(f"{path} is not a regular file (it is a {kind})")
        self.path, self.kind = path, kind


class TooLarge(StorageError):
    """The file is larger than the reader's limit; nothing of it was read."""

    def __init__(self, path: str, size: int, limit: int) -> None:
        super().__init__(f"{path} is too large ({size:,} bytes; the limit is {limit:,})")
        self.path, self.size, self.limit = path, size, limit


class Blocked(StorageError):
    """A path the service writes is taken by something it will not replace or follow."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"{path} cannot be written: {why}")
        self.path, self.why = path, why


# project.json is rewritten by the service only, but read back as untrusted.
MAX_MANIFEST_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class StoredFile:
    """A file as a listing shows it: enough to tell whether it is still changing."""

    name: str  # relative to the folder listed
    size: int
    modified: float  # seconds since the epoch
    tag: str = ""  # what else the backend knows changes with the content (inode, ETag)
    # "file" (regular), or what else is there: "symlink", "directory", "fifo",
    # "device", "socket", "other". Only a "file" is ever read.
    kind: str = "file"

    @property
    def look(self) -> tuple[int, float, str]:
        return (self.size, self.modified, self.tag)


class Body(Protocol):
    """A body to store, read by blocking calls (service/iconik/transfer.py's `Download`)."""

    def blocking_chunks(self, chunk_size: int | None = None) -> Iterator[bytes]: ...
    def chunks(self) -> AsyncIterator[bytes]: ...
    def stop(self) -> None: ...  # from any thread: blocking_chunks ends soon


class Staging(Protocol):
    """A bundle being built; nothing is visible until `publish`."""

    # Both return (size, SHA-256 hex digest) of what they wrote.
    async def write_body(self, path: str, body: Body) -> tuple[int, str]: ...
    async def write_bytes(self, path: str, data: bytes) -> tuple[int, str]: ...
    # Places what was written, removes `remove`, then writes the manifest
    # (always); returns the paths it could not place or remove (`Blocked`).
    async def publish(self, manifest: bytes, remove: list[str]) -> list[str]: ...


class Storage(Protocol):
    description: str

    async def ping(self) -> None: ...
    async def read_manifest(self, folder: str) -> dict[str, Any] | None: ...
    # None when nothing is there; NotRegularFile, TooLarge (read nothing).
    async def read_file(self, folder: str, path: str, *, limit: int) -> bytes | None: ...
    # None when nothing is there or it is not a regular file (never opened then).
    # With `size` (what the service wrote there), a file of another size is
    # `changed(size)` without being read: a captioner's huge file is not hashed.
    async def file_digest(
        self, folder: str, path: str, *, size: int | None = None
    ) -> str | None: ...
    async def find_bundles(self, asset_id: str) -> list[str]: ...
    async def list_bundles(self) -> list[tuple[str, str, str]]: ...  # (asset id, folder, status)
    def stage(self, folder: str) -> Any: ...  # async context manager yielding a Staging
    # For the deliver/ folders (service/deliver/scan.py): every folder under
    # the root that may be a bundle, every entry directly in one of its
    # subfolders ([] when absent; NotRegularFile when `under` is not a real
    # folder), and single service files replaced (Blocked) or removed in place
    # (a removal leaves anything but a regular file alone).
    async def list_folders(self) -> list[str]: ...
    async def list_files(self, folder: str, under: str) -> list[StoredFile]: ...
    # Every folder with what its deliver/ holds, in folder order, in as few
    # requests as the backend allows (S3: one listing of the whole prefix).
    def outtrays(self) -> AsyncIterator[Outtray]: ...
    async def put_file(self, folder: str, path: str, data: bytes) -> None: ...
    async def delete_file(self, folder: str, path: str) -> None: ...


@dataclass(frozen=True)
class Outtray:
    """A folder under the root and the entries directly in its deliver/
    ([] when it has none); `problem` when deliver/ itself cannot be read
    (a symlink or a file in its place), said as the listing found it."""

    folder: str
    files: list[StoredFile]
    problem: str | None = None
    # project.json as the listing saw it (None: not there, or not looked at):
    # unchanged, the scan need not read it again.
    manifest: StoredFile | None = None


async def pulled(
    pages: Iterator[list[Outtray]], call: Callable[[Callable[[], Any]], Awaitable[Any]]
) -> AsyncIterator[Outtray]:
    """A blocking walk's pages, each fetched by `call` (in a worker thread),
    given one out-tray at a time: the walk never holds every folder at once."""
    done: list[Outtray] = []
    while True:
        page = await call(lambda: next(pages, done))
        if page is done:
            return
        for outtray in page:
            yield outtray


def changed(size: int) -> str:
    """What `file_digest` gives for a file whose size is not the one expected:
    no SHA-256 equals it, so the file reads as changed."""
    return f"size:{size}"


def parse_manifest(data: bytes | None) -> dict[str, Any] | None:
    """A stored project.json, or None when it is absent or unreadable."""
    if data is None:
        return None
    try:
        manifest = json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: nesting a captioner made deep
        return None
    return manifest if isinstance(manifest, dict) else None


async def read_manifest(storage: Storage, folder: str) -> dict[str, Any] | None:
    """A bundle's manifest; after a change that was cut off, the one set aside.

    Reduced to the shape the service writes (service.bundle.readback): a captioner
    may have edited it.
    """
    for name in (MANIFEST, MANIFEST_ASIDE):
        try:
            data = await storage.read_file(folder, name, limit=MAX_MANIFEST_BYTES)
        except (NotRegularFile, TooLarge):
            continue  # a captioner's doing: as good as no manifest
        manifest = readback.manifest(parse_manifest(data))
        if manifest is not None:
            return manifest
    return None


async def as_stream(data: bytes) -> AsyncIterator[bytes]:
    """Bytes already in memory, as the stream `write_stream` takes."""
    yield data


_FOLDER_ASSET = re.compile(r"\[([A-Za-z0-9][A-Za-z0-9_-]{0,127})\]$")


def asset_of_folder(folder: str) -> str | None:
    """The asset id a bundle folder's name ends with (`Title [<asset id>]`)."""
    match = _FOLDER_ASSET.search(folder)
    return match.group(1) if match else None


def check_relative(path: str) -> str:
    """A bundle-relative path, or ValueError: no absolute paths, no `..`, no empties."""
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"unsafe bundle path {path!r}")
    return path


def open_storage(url: str) -> Storage:
    scheme = urlsplit(url).scheme
    if scheme == "s3":
        from service.storage.s3 import S3Storage

        return S3Storage.from_url(url)
    from service.storage.local import LocalStorage

    return LocalStorage(urlsplit(url).path if scheme == "file" else url)
