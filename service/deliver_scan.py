"""The deliver/ scan: finished caption files waiting in the bundles' out-trays.

Every DELIVER_SCAN_SECONDS each bundle's deliver/ folder is looked at, ready
and withdrawn bundles alike:

- a file is taken once it has stopped changing: its size, modification
  time and change tag were the same on two consecutive looks, so a file
  still being copied in is never delivered half-way;
- a file whose content (SHA-256) is not what the track of its language and
  kind was last delivered from becomes one `deliver` task, stored in the
  queue under a delivery key (service.deliver.delivery_key): several
  scanning processes, or the same content seen again, enqueue it once;
- deliver/ERRORS.txt says what is still wrong (a name the service does not
  deliver, a file that fails its checks, two files for one track, a
  delivery that failed, a withdrawn project, an entry that is not a regular
  file, something in the way of the service's own files), and is removed
  once nothing is.

The folder is the captioners', and anything in it may be hostile, so:
- which asset a folder delivers to, and whether it is withdrawn, is the
  bundle registry's record (kept by the worker when it publishes), never
  what project.json says; a folder with no record is not looked at;
- every read is bounded and of a regular file only (service/storage);
- at most `outtray.MAX_ENTRIES` entries of one folder are looked at;
- one folder, whatever is in it, never stops the look at the others.

The scan only reads and enqueues, and writes nothing but ERRORS.txt (which no
manifest lists, so no reader can find it torn), replaced whole and never read
back: everything else in the bundle changes in the `deliver` task, under the
asset's one-task-at-a-time rule. It runs beside the worker's slots in every
worker process (`Worker.run`); tests drive `step()` one look at a time.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread

from service import bundle, captions, deliver, outtray
from service.logging import get_logger, redact
from service.metrics import Metrics
from service.outtray import Problem
from service.queue import Queue, QueueFull, QueueUnavailable
from service.registry import BundleRegistry
from service.storage import Blocked, NotRegularFile, Storage, StoredFile, TooLarge

log = get_logger("service.deliver_scan")

# The default of MAX_CAPTION_BYTES: larger files are refused unread.
MAX_CAPTION_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class Checked:
    """One content of one file, read and checked (kept while the file stays as it is)."""

    sha256: str
    name: captions.TrackName
    refusal: captions.Refused | None


@dataclass
class ScanReport:
    folders: int = 0
    queued: int = 0
    refused: int = 0


class DeliverScan:
    def __init__(
        self,
        queue: Queue,
        storage: Storage,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
        max_caption_bytes: int = MAX_CAPTION_BYTES,
    ) -> None:
        self.queue = queue
        self.storage = storage
        # Bundles are found in the registry (the queue's store), never by
        # listing the storage root on every look.
        self.registry = BundleRegistry(queue, storage)
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.max_caption_bytes = max_caption_bytes
        self._looks: dict[tuple[str, str], tuple[Any, ...]] = {}  # last look at each file
        self._checked: dict[tuple[str, str], tuple[tuple[Any, ...], Checked | Problem]] = {}
        # The delivery key each file's content was stored under, and its request.
        self._stored: dict[tuple[str, str], tuple[str, str]] = {}
        # Per folder, the digest of the ERRORS.txt last written and how the
        # listing showed it since: unchanged, it is not written again.
        self._errors: dict[str, tuple[str, tuple[Any, ...] | None]] = {}

    async def run(self, every: float) -> None:
        """Look every `every` seconds until cancelled; a failed look is logged and retried."""
        log.info("deliver_scan.started", every=every)
        while True:
            try:
                await self.step()
            except Exception as exc:  # the queue or storage is down, or a bug: next time
                self.metrics.deliver_scans.labels("failed").inc()
                log.warning("deliver_scan.failed", error=str(exc) or type(exc).__name__)
            await anyio.sleep(every)

    async def step(self) -> ScanReport:
        """One look at every out-tray."""
        report = ScanReport()
        looked: set[tuple[str, str]] = set()
        owners: dict[str, list[tuple[str, str]]] = {}
        for asset_id, folder, status in await self.registry.every_bundle():
            owners.setdefault(folder, []).append((asset_id, status))
        for folder, records in owners.items():
            report.folders += 1
            if len(records) != 1:  # never guess which asset a folder delivers to
                log.warning("deliver_scan.folder_ambiguous", folder=folder, assets=len(records))
                continue
            [(asset_id, status)] = records
            try:
                await self._look_at(folder, asset_id, status, looked, report)
            except QueueUnavailable:
                raise  # every folder would fail alike: the look fails once
            except Exception as exc:  # whatever is in one folder, the others go on
                log.warning(
                    "deliver_scan.folder_failed",
                    folder=folder,
                    error=f"bundle storage ({self.storage.description}): "
                    f"{str(exc) or type(exc).__name__}",
                )
        # Forget files that are gone: a file put back is looked at afresh.
        self._looks = {k: v for k, v in self._looks.items() if k in looked}
        self._checked = {k: v for k, v in self._checked.items() if k in looked}
        self._stored = {k: v for k, v in self._stored.items() if k in looked}
        self._errors = {k: v for k, v in self._errors.items() if k in owners}
        self.metrics.deliver_scans.labels("complete").inc()
        self.metrics.deliver_scan_last.set(self.clock())
        if report.queued:
            log.info("deliver_scan.queued", deliveries=report.queued, folders=report.folders)
        return report

    async def _look_at(
        self,
        folder: str,
        asset_id: str,
        status: str,
        looked: set[tuple[str, str]],
        report: ScanReport,
    ) -> None:
        # "publishing" is a bundle being built, or one whose worker died before
        # recording "ready": its manifest says whether it is complete.
        try:
            listed = await self.storage.list_files(folder, outtray.FOLDER)
        except NotRegularFile as exc:
            # Nothing can be written into it either: the operator hears of it.
            log.warning("deliver_scan.outtray_unusable", folder=folder, reason=str(exc))
            return
        errors_file = next((f for f in listed if f.name == outtray.ERRORS), None)
        notes = [
            outtray.blocked(f.name, f.kind)
            for f in listed
            if f.name in (outtray.README, outtray.RECEIPT) and f.kind == "directory"
        ]
        theirs = sorted((f for f in listed if outtray.is_captioners(f.name)), key=lambda f: f.name)
        if len(theirs) > outtray.MAX_ENTRIES:
            notes.append(
                f"{len(theirs) - outtray.MAX_ENTRIES} more entries in deliver/ were not looked "
                f"at (at most {outtray.MAX_ENTRIES} at a time, in name order): move what is "
                "delivered or not a caption file out of this folder"
            )
            theirs = theirs[: outtray.MAX_ENTRIES]
        if not theirs:
            await self._write_errors(folder, [], None, notes, errors_file)
            return
        manifest = await self.storage.read_manifest(folder)
        if manifest is None:
            return  # being changed (or missing until the next refresh): next time
        said = manifest["asset"]  # a dict: storage.read_manifest keeps the written shape
        if said.get("id") != asset_id:
            notes.append(
                f"project.json names the asset {str(said.get('id'))[:80]!r}, but this folder "
                f"was made for the asset {asset_id}: what is delivered here goes to "
                f"{asset_id} (the service's own record), and project.json is written anew "
                "with the next change"
            )
        problems = [
            Problem(f.name, None, outtray.not_a_file(f.kind)) for f in theirs if f.kind != "file"
        ]
        files = [f for f in theirs if f.kind == "file"]
        stable = []
        for found in files:
            key = (folder, found.name)
            looked.add(key)
            if self._looks.get(key) == found.look:
                stable.append(found)
            self._looks[key] = found.look

        if status == "withdrawn":
            when = manifest.get("withdrawn", {})
            note = (
                f"this project was withdrawn on {str(when.get('at') or '?')[:40]}: the asset was "
                f"deleted in Iconik (see {bundle.WITHDRAWN_NOTE} in the project folder)."
            )
            problems += [Problem(f.name, None, "not delivered (withdrawn project)") for f in files]
            await self._write_errors(folder, problems, note, notes, errors_file)
            return

        by_track: dict[tuple[str, bool], list[tuple[StoredFile, Checked]]] = {}
        duration = said.get("duration_seconds")  # a number or None (service/readback.py)
        for found in stable:
            try:
                name = captions.parse_name(found.name)
            except captions.Refused as refused:
                problems.append(Problem(found.name, None, refused.reason))
                continue
            if found.size > self.max_caption_bytes:
                problems.append(Problem(found.name, None, self._too_large(found.size)))
                continue
            checked = await self._check(folder, found, name, duration)
            if isinstance(checked, Problem):
                problems.append(checked)
            elif checked is not None:
                by_track.setdefault((name.language, name.closed_captions), []).append(
                    (found, checked)
                )

        deliveries = manifest["deliveries"]
        for (language, cc), tracks in by_track.items():
            if len(tracks) > 1:
                names = " and ".join(sorted(outtray.shown(f.name) for f, _ in tracks))
                track = bundle.caption_label(language, cc)
                reason = f"not delivered: {names} are both the {track} track; keep one"
                problems += [Problem(f.name, None, reason) for f, _ in tracks]
                continue
            [(found, checked)] = tracks
            problem = await self._enqueue(folder, asset_id, deliveries, found, checked, report)
            if problem is not None:
                problems.append(problem)
        await self._write_errors(folder, problems, None, notes, errors_file)

    def _too_large(self, size: int) -> str:
        return (
            f"too large for a caption file ({size:,} bytes; the limit is "
            f"{self.max_caption_bytes:,}): split it, or ask for the limit to be raised"
        )

    async def _check(
        self, folder: str, found: StoredFile, name: captions.TrackName, duration: Any
    ) -> Checked | Problem | None:
        """The file's content and its check, read once per look of the file."""
        key = (folder, found.name)
        cached = self._checked.get(key)
        if cached is not None and cached[0] == (found.look, duration):
            return cached[1]
        path = f"{outtray.FOLDER}/{found.name}"
        result: Checked | Problem
        try:
            data = await self.storage.read_file(folder, path, limit=self.max_caption_bytes)
        except TooLarge as exc:
            result = Problem(found.name, None, self._too_large(exc.size))
        except NotRegularFile as exc:
            result = Problem(found.name, None, outtray.not_a_file(exc.kind))
        else:
            if data is None:
                return None  # removed since the listing
            refusal = None
            try:
                await anyio.to_thread.run_sync(captions.read, found.name, data, duration)
            except captions.Refused as refused:
                refusal = refused
            except (MemoryError, RecursionError):
                # Not retried while the file stays as it is: no crash loop.
                refusal = captions.Refused(
                    "the file could not be checked: it is too large or too complex to read"
                )
            result = Checked(hashlib.sha256(data).hexdigest(), name, refusal)
        self._checked[key] = ((found.look, duration), result)
        return result

    async def _enqueue(
        self,
        folder: str,
        asset_id: str,
        deliveries: list[dict[str, Any]],
        found: StoredFile,
        checked: Checked,
        report: ScanReport,
    ) -> Problem | None:
        """A delivery for this content unless the track already came from it;
        what ERRORS.txt should say about the file, if anything."""
        name, path = checked.name, f"{outtray.FOLDER}/{found.name}"
        latest = outtray.latest_delivery(deliveries, name.language, name.closed_captions)
        if latest and (latest.get("path"), latest.get("sha256")) == (path, checked.sha256):
            return None  # delivered: the track is this file's content
        # A refused file is still a delivery (it fails with the reason, in the
        # request's status and the Iconik job); ERRORS.txt says why at once.
        problem = None
        if checked.refusal is not None:
            report.refused += 1
            problem = Problem(found.name, checked.refusal.line, _plain(checked.refusal))
        delivery = deliver.new_delivery(
            folder=folder,
            asset_id=asset_id,
            # The title as the service wrote it into the folder's name.
            title=folder.removesuffix(f" [{asset_id}]"),
            path=path,
            sha256=checked.sha256,
            track=name,
            replaces=(latest or {}).get("sha256"),
        )
        stored = self._stored.get((folder, found.name))
        if stored is not None and stored[0] == delivery.key:
            request_id = stored[1]  # stored on an earlier look: no write to repeat
        else:
            try:
                enqueued = await self.queue.enqueue(delivery, uuid.uuid4().hex)
            except QueueFull as exc:
                log.warning("deliver_scan.queue_full", folder=folder, path=path, error=str(exc))
                return problem
            request_id = enqueued.request_id
            self._stored[(folder, found.name)] = (delivery.key, request_id)
            if not enqueued.duplicate:
                report.queued += 1
                log.info(
                    "deliver_scan.delivery_queued",
                    folder=folder,
                    path=path,
                    request_id=request_id,
                    asset_id=asset_id,
                )
                return problem
        if problem is None:  # stored before: say so if it failed for another reason
            status = await self.queue.request_status(request_id)
            failed = [t for t in (status or {}).get("tasks", []) if t["state"] == "failed"]
            if failed:
                reason = f"not delivered: {failed[0].get('last_error')} (request {request_id})"
                problem = Problem(found.name, None, reason)
        return problem

    async def _write_errors(
        self,
        folder: str,
        problems: list[Problem],
        withdrawn: str | None,
        notes: list[str],
        listed: StoredFile | None,
    ) -> None:
        """Replace ERRORS.txt whole (never reading what is there), or remove it."""
        text = redact(outtray.errors_text(problems, withdrawn, notes))
        if not text:
            self._errors.pop(folder, None)
            if listed is not None:  # only a regular file is removed
                await self.storage.delete_file(folder, outtray.ERRORS_PATH)
            return
        data = text.encode()
        digest = hashlib.sha256(data).hexdigest()
        last = self._errors.get(folder)
        # Written by this scan and not changed since (the first look after the
        # write is taken as it is): nothing to do.
        unchanged = (
            listed is not None
            and listed.kind == "file"
            and last is not None
            and last[0] == digest
            and last[1] in (None, listed.look)
        )
        if unchanged and listed is not None:
            self._errors[folder] = (digest, listed.look)
            return
        try:
            await self.storage.put_file(folder, outtray.ERRORS_PATH, data)
        except Blocked as exc:
            log.warning("deliver_scan.errors_blocked", folder=folder, reason=str(exc))
            return
        self._errors[folder] = (digest, None)
        log.info("deliver_scan.errors_written", folder=folder, problems=len(problems))


def _plain(refusal: captions.Refused) -> str:
    """A refusal as ERRORS.txt words it (its line is in the Problem already)."""
    more = refusal.more
    return refusal.reason + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")
