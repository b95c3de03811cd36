"""Which bundles' deliver/ changed, as the storage tells it.

Looking at every bundle's deliver/ on a timer costs the same whether
anything changed or not. Both kinds of storage can say where something
changed instead:

- S3 sends an event for each object written or removed to an SQS queue
  (the bucket's event notifications; `DELIVER_EVENTS_QUEUE_URL`);
- a local folder has inotify, through watchfiles (maintained, used by
  uvicorn's reload; a Rust core, so the watching costs no Python thread).

Each source gives sets of bundle folder names, as soon as they are known.
An event says only *where* to look: the scan lists that deliver/ itself and
reads nothing from the event but the folder's name, so a forged or garbled
message can make the service look, never deliver. Events can be lost (an
SQS message deleted once received, a watcher restarted, a full inotify
queue): the scan's slow reconcile finds what they missed.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import anyio
import anyio.to_thread
import boto3

from service.logging import get_logger

log = get_logger("service.deliver.changes")

OUTTRAY = "deliver"
# An SQS message's body is at most 256 KiB; anything longer is not an event.
MAX_MESSAGE_CHARS = 256 * 1024


def folder_of(key: str, prefix: str = "") -> str | None:
    """The bundle folder of a storage key (relative to the storage's root
    `prefix`) when the key is in that folder's deliver/, else None."""
    base = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    if not key.startswith(base):
        return None
    folder, sep, rest = key[len(base) :].partition("/")
    inside, slash, _ = rest.partition("/")
    if not sep or not folder or folder.startswith(".") or inside != OUTTRAY or not slash:
        return None
    return folder


def folders_in_message(body: str, prefix: str = "") -> set[str]:
    """The folders an S3 event notification names (SNS-wrapped or not); none
    for a test event or anything that is not an event notification."""
    if len(body) > MAX_MESSAGE_CHARS:
        return set()
    try:
        message = json.loads(body)
        if isinstance(message, dict) and message.get("Type") == "Notification":
            message = json.loads(message.get("Message", ""))  # delivered through SNS
    except (ValueError, TypeError):
        return set()
    records = message.get("Records") if isinstance(message, dict) else None
    found: set[str] = set()
    for record in records if isinstance(records, list) else []:
        try:
            key = unquote_plus(record["s3"]["object"]["key"])  # keys come URL-encoded
        except (KeyError, TypeError):
            continue
        if isinstance(key, str) and (folder := folder_of(key, prefix)) is not None:
            found.add(folder)
    return found


class SqsEvents:
    """The bucket's event notifications, from the SQS queue they are sent to.

    A message is deleted once its folders are handed on: if the process
    stops before the scan looked, the reconcile finds the file instead.
    """

    def __init__(
        self, queue_url: str, prefix: str = "", *, client: Any = None, wait_seconds: int = 10
    ) -> None:
        self.queue_url, self.prefix, self.wait_seconds = queue_url, prefix, wait_seconds
        self.client = client or boto3.client("sqs")

    async def batches(self) -> AsyncIterator[set[str]]:
        while True:
            # The long poll holds a thread; on cancel the thread is left to
            # finish its poll, which ends within `wait_seconds`.
            messages = await anyio.to_thread.run_sync(self._receive, abandon_on_cancel=True)
            found: set[str] = set()
            for message in messages:
                found |= folders_in_message(str(message.get("Body", "")), self.prefix)
            if messages:
                await anyio.to_thread.run_sync(self._delete, messages)
            if found:
                yield found

    def _receive(self) -> list[dict[str, Any]]:
        answer = self.client.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=self.wait_seconds
        )
        return list(answer.get("Messages", []))

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
        ]
        self.client.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)


class LocalWatch:
    """inotify on the root and on each bundle's deliver/, none recursive.

    Not recursive, so that nothing a captioner puts in deliver/ (a folder of
    a million files, a link to /) adds watches. The root's watch sees new
    bundle folders; the watched set is renewed when `folders()` changes
    (the scan asks for it with `renew()`).
    """

    def __init__(self, root: str | os.PathLike[str], folders: Callable[[], Iterable[str]]) -> None:
        self.root = Path(root).absolute()
        self.folders = folders
        self._renew = anyio.Event()
        self._watched: set[str] = set()
        # Folders the root's watch saw appear (a new bundle is renamed into
        # place whole, deliver/ included): watched from then on.
        self._appeared: set[str] = set()
        self._fresh: set[str] = set()  # appeared since the watch was last made
        # A watch is remade with the old one stopped: what happens in between
        # has no event. The root's folders when the watch was last made (a
        # folder since is new, whether or not its event came), and when the
        # old watch was told to stop (a deliver/ changed since is looked at).
        self._listed: set[str] | None = None
        self._stopped_ns: int | None = None

    def renew(self) -> None:
        """Watch the folders `folders()` gives now (at the next change or at once)."""
        self._remake()

    def _remake(self) -> None:
        # Less a second: a directory's time may be coarser than the clock's.
        self._stopped_ns = time.time_ns() - 1_000_000_000
        self._renew.set()

    def _root_folders(self) -> set[str]:
        found = set()
        with os.scandir(self.root) as entries:
            for entry in entries:
                if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False):
                    found.add(entry.name)
        return found

    def _new_folders(self) -> set[str]:
        """Folders at the root since the watch was last made: watched, and named."""
        listed = self._root_folders()
        new = listed - self._listed if self._listed is not None else set()
        self._listed = listed
        self._appeared |= new
        self._fresh |= new
        return new

    def _paths(self) -> list[Path]:
        self.root.mkdir(parents=True, exist_ok=True)  # the service's own folder
        self._new_folders()
        paths = [self.root]
        before, self._watched = self._watched, set()
        for folder in sorted(set(self.folders()) | self._appeared):
            path = self.root / folder / OUTTRAY
            try:
                found = os.lstat(path)
            except (OSError, ValueError):
                continue
            if stat.S_ISDIR(found.st_mode):  # a real folder, not a link
                paths.append(path)
                self._watched.add(folder)
                stopped = self._stopped_ns
                if folder not in before and folder in self._appeared:
                    self._fresh.add(folder)  # a new bundle: what came before its watch
                elif folder in before and stopped is not None and found.st_mtime_ns >= stopped:
                    self._fresh.add(folder)  # a file came or went while no watch was on
        return paths

    async def batches(self) -> AsyncIterator[set[str]]:
        """Folders that changed; an empty set once the first watch is in place:
        what changed before it is for a look at everything to find
        (service/deliver/loop.py does one then). A watch renewed for new
        bundles names them instead: a look at them covers the gap."""
        import watchfiles  # only where a local folder is watched

        first = True
        while True:
            self._renew = anyio.Event()
            paths = await anyio.to_thread.run_sync(self._paths)
            log.info("deliver_events.watching", folders=len(paths) - 1)
            in_place = False
            async for changes in watchfiles.awatch(
                *paths,
                recursive=False,
                stop_event=self._renew,
                debounce=200,
                watch_filter=None,
                # An empty set a second after the watch is made (and each
                # quiet second after, skipped): the sign that it is in place.
                rust_timeout=1000,
                yield_on_timeout=True,
            ):
                if not in_place:
                    in_place = True
                    # A folder that came after the listing, before this watch: no event.
                    if await anyio.to_thread.run_sync(self._new_folders):
                        self._remake()  # watch its deliver/ too
                    fresh, self._fresh = self._fresh, set()
                    if first or fresh:
                        yield set() if first else fresh
                    first = False
                found = {f for _, path in changes if (f := self._folder_of(path)) is not None}
                if found - self._watched:
                    self._appeared |= found - self._watched
                    self._fresh |= found - self._watched
                    self._remake()  # watch their deliver/ too, from the next batch
                if found:
                    yield found

    def _folder_of(self, path: str) -> str | None:
        try:
            relative = Path(path).relative_to(self.root).parts
        except ValueError:
            return None
        if len(relative) == 1 and not relative[0].startswith("."):
            return relative[0]  # a folder made or removed at the root: look at it
        if len(relative) >= 2 and relative[1] == OUTTRAY and not relative[0].startswith("."):
            return relative[0]
        return None


def source_for(
    settings: Any, storage: Any, folders: Callable[[], Iterable[str]]
) -> SqsEvents | LocalWatch | None:
    """The event source the settings and the storage allow, or None (polling)."""
    from service.storage.local import LocalStorage
    from service.storage.s3 import S3Storage

    if isinstance(storage, S3Storage) and settings.deliver_events_queue_url:
        return SqsEvents(settings.deliver_events_queue_url, storage.prefix)
    if isinstance(storage, LocalStorage) and settings.deliver_watch:
        return LocalWatch(storage.root, folders)
    return None
