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
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import anyio
import anyio.to_thread
import boto3

from service.logging import get_logger

log = get_logger("service.deliver_events")

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

    def renew(self) -> None:
        """Watch the folders `folders()` gives now (at the next change or at once)."""
        self._renew.set()

    def _paths(self) -> list[Path]:
        paths = [self.root]
        for folder in sorted(set(self.folders())):
            path = self.root / folder / OUTTRAY
            try:
                if stat.S_ISDIR(os.lstat(path).st_mode):  # a real folder, not a link
                    paths.append(path)
            except (OSError, ValueError):
                continue
        return paths

    async def batches(self) -> AsyncIterator[set[str]]:
        import watchfiles  # only where a local folder is watched

        while True:
            self._renew = anyio.Event()
            paths = await anyio.to_thread.run_sync(self._paths)
            log.info("deliver_events.watching", folders=len(paths) - 1)
            async for changes in watchfiles.awatch(
                *paths,
                recursive=False,
                stop_event=self._renew,
                debounce=200,
                watch_filter=None,
                ignore_permission_denied=True,
            ):
                found = {f for _, path in changes if (f := self._folder_of(path)) is not None}
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
