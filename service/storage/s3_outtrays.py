"""Every bundle's deliver/ in S3, from one listing of the whole prefix.

Listing each bundle's deliver/ costs a request per bundle per scan (10,000
bundles, 10,000 requests a look). One listing without a delimiter walks
every key in order instead, 1,000 a request: a bundle the service wrote
has a handful of keys, so a look costs about one request per hundred
bundles, and the deliver/ entries come out grouped by folder.

Captioners can put any number of objects in their folder, so the walk never
reads all of one folder's: past `MAX_LISTED` entries in deliver/, or past
`MAX_OTHER_KEYS` keys elsewhere in the folder (the service writes a few
dozen), the listing starts again after that part (`StartAfter`), and a
folder costs a few requests however much a captioner put there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from service.logging import get_logger
from service.storage import Outtray, StoredFile

log = get_logger("service.storage.s3")

OUTTRAY = "deliver/"
MANIFEST = "project.json"
# Keys of one folder outside deliver/ walked before the rest is skipped.
MAX_OTHER_KEYS = 1_000
PAGE_KEYS = 1_000  # S3's most per listing request


class _Folder:
    """The keys of one folder seen so far in the walk."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.files: dict[str, StoredFile] = {}
        self.directories: set[str] = set()
        self.other_keys = 0
        self.outtray_keys = 0  # keys under deliver/, in sub-folders too
        self.manifest: StoredFile | None = None

    def outtray(self, cap: int) -> Outtray:
        listed = list(self.files.values()) + [
            StoredFile(name, 0, 0.0, "", kind="directory")
            for name in self.directories
            if name not in self.files
        ]
        files = sorted(listed, key=lambda f: f.name)[:cap]
        return Outtray(self.name, files, manifest=self.manifest)


def walk_pages(
    list_page: Callable[..., dict[str, Any]], bucket: str, base: str, max_listed: int
) -> Iterator[list[Outtray]]:
    """The folders under `base`, a page's worth at a time, each complete when
    given (a folder spanning two pages comes with the second). Blocking:
    `list_page` is the S3 client's list_objects_v2."""
    current: _Folder | None = None
    start_after = ""
    token: str | None = None
    while True:
        request: dict[str, Any] = {"Bucket": bucket, "Prefix": base, "MaxKeys": PAGE_KEYS}
        if token:
            request["ContinuationToken"] = token
        elif start_after:
            request["StartAfter"] = start_after
        page = list_page(**request)
        finished: list[Outtray] = []
        skip_to: str | None = None
        for item in page.get("Contents", []):
            folder, sep, rest = item["Key"][len(base) :].partition("/")
            if not sep or not folder or folder.startswith("."):
                continue  # an object at the top, or a hidden folder: not a bundle
            if current is None or current.name != folder:
                if current is not None:
                    finished.append(current.outtray(max_listed))
                current = _Folder(folder)
            skip_to = _take(current, rest, item, max_listed, base)
            if skip_to is not None:
                break
        if finished:
            yield finished
        if skip_to is not None:
            log.warning("storage.listing_skipped", folder=current.name if current else "")
            start_after, token = skip_to, None
            continue
        if not page.get("IsTruncated"):
            break
        token = page.get("NextContinuationToken")
    if current is not None:
        yield [current.outtray(max_listed)]


def _take(
    folder: _Folder, rest: str, item: dict[str, Any], max_listed: int, base: str
) -> str | None:
    """Add one key to its folder; the key to start after when the folder has
    more of this part than the walk looks at."""
    prefix = f"{base}{folder.name}/"
    if rest == MANIFEST:
        modified = item["LastModified"].timestamp()
        folder.manifest = StoredFile(MANIFEST, item["Size"], modified, item["ETag"])
    if not rest.startswith(OUTTRAY):
        folder.other_keys += 1
        if folder.other_keys < MAX_OTHER_KEYS:
            return None
        # Keys sort "captions/" < "deliver/" < "media/" ...: jump to deliver/
        # while it is ahead, else past the whole folder ("0" follows "/").
        # Either target is past the current key, so the walk always moves on.
        folder.other_keys = 0
        return f"{base}{folder.name}0" if rest > OUTTRAY else f"{prefix}{OUTTRAY}"
    name = rest[len(OUTTRAY) :]
    folder.outtray_keys += 1
    head, sep, _ = name.partition("/")
    if sep:
        if head:  # "" is from keys like deliver//x: no name to show
            folder.directories.add(head)
    elif name:  # "" is the folder marker deliver/ itself
        modified = item["LastModified"].timestamp()
        folder.files[name] = StoredFile(name, item["Size"], modified, item["ETag"])
    # Keys, not entries: a million keys in one sub-folder are one entry.
    if folder.outtray_keys < max_listed:
        return None
    return f"{prefix}deliver0"  # past every key under deliver/ ("0" follows "/")
