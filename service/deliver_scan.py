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
- deliver/ERRORS.txt says, from the first look that sees a file, what state
  each file is in (waiting, checking, delivered, refused, not delivered),
  then every problem of each (a name the service does not deliver, every
  problem a check found, two files for one track, a delivery that failed,
  an entry that is not a regular file, something in the way of the
  service's own files); it is removed once every file is delivered;
- deliver/REPORT.txt lists the house-style findings (service/house_style.py)
  of each file read; under HOUSE_STYLE=strict they are problems too;
- a README.txt written for another scan interval or house style (the
  manifest's digest of it is not that of the one the scan would write) gets
  a `readme` task that writes it anew (service/deliver.py).

The folder is the captioners', and anything in it may be hostile, so:
- which asset a folder delivers to, and whether it is withdrawn, is the
  bundle registry's record (kept by the worker when it publishes), never
  what project.json says; a folder with no record is not looked at;
- every read is bounded and of a regular file only (service/storage);
- at most `outtray.MAX_ENTRIES` entries of one folder are looked at;
- one folder, whatever is in it, never stops the look at the others.

The scan only reads and enqueues, and writes nothing but ERRORS.txt and
REPORT.txt (service/outtray_files.py): everything else in the bundle
changes in the `deliver` or `readme` task, under the asset's
one-task-at-a-time rule. It runs beside the worker's slots in every worker
process (`Worker.run`); tests drive `step()` one look at a time.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread

from service import bundle, captions, deliver, house_style, outtray, readback
from service.logging import get_logger
from service.metrics import Metrics
from service.outtray import Problem
from service.outtray_files import ReadmeCheck, ScanWrites
from service.outtray_view import Checked, View, check, path_of
from service.queue import Delivery, Queue, QueueFull, QueueUnavailable
from service.registry import BundleRegistry
from service.storage import NotRegularFile, Storage, StoredFile, TooLarge

log = get_logger("service.deliver_scan")

# The default of MAX_CAPTION_BYTES: larger files are refused unread.
MAX_CAPTION_BYTES = 20 * 1024 * 1024


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
        style: house_style.Style | None = None,
        readme_every: float | None = None,
    ) -> None:
        self.queue = queue
        self.storage = storage
        # Bundles are found in the registry (the queue's store), never by
        # listing the storage root on every look.
        self.registry = BundleRegistry(queue, storage)
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.max_caption_bytes = max_caption_bytes
        self.style = style or house_style.Style()
        # The last look at each file, and when that look was first seen.
        self._looks: dict[tuple[str, str], tuple[tuple[Any, ...], float]] = {}
        self._checked: dict[tuple[str, str], tuple[tuple[Any, ...], Checked | Problem]] = {}
        self._digests: dict[tuple[str, str], tuple[tuple[Any, ...], str | None]] = {}
        # The delivery key each file's content was stored under, and its request.
        self._stored: dict[tuple[str, str], tuple[str, str]] = {}
        self._writes = ScanWrites(storage)
        # README.txt for `readme_every` (DELIVER_SCAN_SECONDS); None: not checked.
        self._readme = ReadmeCheck(queue, self.style, readme_every)

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
        self._digests = {k: v for k, v in self._digests.items() if k in looked}
        self._stored = {k: v for k, v in self._stored.items() if k in looked}
        self._writes.keep_only(set(owners))
        self._readme.keep_only(set(owners))
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
        own = {f.name: f for f in listed if f.name in outtray.SERVICE_FILES}
        notes = [
            outtray.blocked(f.name, f.kind)
            for f in own.values()
            if f.name != outtray.ERRORS and f.kind == "directory"
        ]
        theirs = sorted((f for f in listed if outtray.is_captioners(f.name)), key=lambda f: f.name)
        if len(theirs) > outtray.MAX_ENTRIES:
            notes.append(
                f"{len(theirs) - outtray.MAX_ENTRIES} more entries in deliver/ were not looked "
                f"at (at most {outtray.MAX_ENTRIES} at a time, in name order): move what is "
                "delivered or not a caption file out of this folder"
            )
            theirs = theirs[: outtray.MAX_ENTRIES]
        manifest = None
        readme = own.get(outtray.README)
        if status == "ready" and self._readme.due(folder, readme):
            manifest = await self.storage.read_manifest(folder)
            if manifest is not None and readme is not None:
                await self._readme.check(folder, asset_id, manifest, readme)
        if not theirs:
            await self._write(folder, View(), None, notes, own, None)
            return
        manifest = manifest or await self.storage.read_manifest(folder)
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
        # Facts of the media, as read back (service/readback.py keeps their shape).
        media = readback.media_of(said)
        view = View()
        for f in theirs:
            if f.kind != "file":
                view.say(f.name, "not delivered", Problem(f.name, None, outtray.not_a_file(f.kind)))
        files = [f for f in theirs if f.kind == "file"]
        changing = []
        now = self.clock()
        for found in files:
            key = (folder, found.name)
            looked.add(key)
            last = self._looks.get(key)
            if last is None or last[0] != found.look:
                self._looks[key] = (found.look, now)
                changing.append(found)

        deliveries = manifest["deliveries"]
        if status == "withdrawn":
            when = manifest.get("withdrawn", {})
            note = (
                f"this project was withdrawn on {str(when.get('at') or '?')[:40]}: the asset was "
                f"deleted in Iconik (see {bundle.WITHDRAWN_NOTE} in the project folder)."
            )
            for found in files:
                entry = await self._delivered(folder, found, deliveries, latest=False)
                if entry is not None:
                    noted = [*outtray.entry_notes(entry), "before the withdrawal"]
                    view.delivered(found.name, {**entry, "notes": noted}, None)
                else:
                    view.say(found.name, "not delivered: this project was withdrawn")
            await self._write(folder, view, note, notes, own, None)
            return

        # What its name or size says is said at once, changing or not.
        named: list[tuple[StoredFile, captions.TrackName]] = []
        for found in files:
            try:
                named.append((found, captions.parse_name(found.name)))
            except captions.Refused as refused:
                view.say(found.name, "not delivered", Problem(found.name, None, refused.reason))
        by_track: dict[tuple[str, bool], list[tuple[StoredFile, Checked]]] = {}
        for found, name in named:
            if found.size > self.max_caption_bytes:
                problem = Problem(found.name, None, self._too_large(found.size))
                view.say(found.name, "not delivered", problem)
                continue
            if found in changing:
                # First seen (or seen again after a restart): the content it had
                # when delivered is said to be delivered, not to be waiting.
                entry = await self._delivered(folder, found, deliveries, latest=True)
                if entry is not None:
                    view.delivered(found.name, entry, None)
                else:
                    view.waiting(found.name, now)
                continue
            checked = await self._check(folder, found, name, media)
            if isinstance(checked, Problem):
                view.say(found.name, "not delivered", checked)
            elif checked is not None:
                by_track.setdefault((name.language, name.closed_captions), []).append(
                    (found, checked)
                )

        for (language, cc), tracks in by_track.items():
            if len(tracks) == 1:
                [(found, checked)] = tracks
                await self._settle(folder, asset_id, deliveries, found, checked, report, view)
                continue
            view.one_too_many(bundle.caption_label(language, cc), tracks, deliveries)
        await self._write(folder, view, None, notes, own, media.frame_rate)

    def _too_large(self, size: int) -> str:
        return (
            f"too large for a caption file ({size:,} bytes; the limit is "
            f"{self.max_caption_bytes:,}): split it, or ask for the limit to be raised"
        )

    async def _check(
        self, folder: str, found: StoredFile, name: captions.TrackName, media: captions.Media
    ) -> Checked | Problem | None:
        """The file's content and its check, read once per look of the file."""
        key = (folder, found.name)
        cached = self._checked.get(key)
        if cached is not None and cached[0] == (found.look, media):
            return cached[1]
        result: Checked | Problem
        try:
            data = await self.storage.read_file(
                folder, path_of(found), limit=self.max_caption_bytes
            )
        except TooLarge as exc:
            result = Problem(found.name, None, self._too_large(exc.size))
        except NotRegularFile as exc:
            result = Problem(found.name, None, outtray.not_a_file(exc.kind))
        else:
            if data is None:
                return None  # removed since the listing
            result = await anyio.to_thread.run_sync(check, found.name, data, media, self.style)
        self._checked[key] = ((found.look, media), result)
        return result

    async def _delivered(
        self, folder: str, found: StoredFile, deliveries: list[dict[str, Any]], *, latest: bool
    ) -> dict[str, Any] | None:
        """The receipt entry of this file's content, if it was delivered (and,
        with `latest`, is still its track's): read only for a regular file a
        receipt names, once per look."""
        path = path_of(found)
        if found.kind != "file" or found.size > self.max_caption_bytes:
            return None
        if not any(entry["path"] == path for entry in deliveries):
            return None
        key = (folder, found.name)
        cached = self._digests.get(key)
        if cached is None or cached[0] != found.look:
            cached = (found.look, await self.storage.file_digest(folder, path))
            self._digests[key] = cached
        if cached[1] is None:
            return None
        if latest:
            return outtray.delivered_as(deliveries, path, cached[1])
        return next(
            (e for e in reversed(deliveries) if (e["path"], e["sha256"]) == (path, cached[1])),
            None,
        )

    async def _settle(
        self,
        folder: str,
        asset_id: str,
        deliveries: list[dict[str, Any]],
        found: StoredFile,
        checked: Checked,
        report: ScanReport,
        view: View,
    ) -> None:
        """What becomes of one file, the only one of its track: delivered
        already, or a delivery stored for it; its state, problems and findings."""
        name, path = checked.name, path_of(found)
        entry = outtray.delivered_as(deliveries, path, checked.sha256)
        if entry is not None:
            view.delivered(found.name, entry, checked)
            return
        # A refused file is still a delivery (it fails with the reason, in the
        # request's status and the Iconik job); ERRORS.txt says why at once.
        if checked.refusal is not None:
            report.refused += 1
        latest = outtray.latest_delivery(deliveries, name.language, name.closed_captions)
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
        view.stored(found.name, checked, await self._store(folder, found, delivery, report))

    async def _store(
        self, folder: str, found: StoredFile, delivery: Delivery, report: ScanReport
    ) -> str | bool | None:
        """Store the delivery (once); False when the queue is full, the reason
        when it was stored before and failed, else None."""
        stored = self._stored.get((folder, found.name))
        if stored is not None and stored[0] == delivery.key:
            request_id = stored[1]  # stored on an earlier look: no write to repeat
        else:
            try:
                enqueued = await self.queue.enqueue(delivery, uuid.uuid4().hex)
            except QueueFull as exc:
                log.warning(
                    "deliver_scan.queue_full", folder=folder, path=path_of(found), error=str(exc)
                )
                return False
            request_id = enqueued.request_id
            self._stored[(folder, found.name)] = (delivery.key, request_id)
            if not enqueued.duplicate:
                report.queued += 1
                log.info(
                    "deliver_scan.delivery_queued",
                    folder=folder,
                    path=path_of(found),
                    request_id=request_id,
                )
                return None
        status = await self.queue.request_status(request_id)
        failed = [t for t in (status or {}).get("tasks", []) if t["state"] == "failed"]
        if failed:
            return f"not delivered: {failed[0].get('last_error')} (request {request_id})"
        return None

    async def _write(
        self,
        folder: str,
        view: View,
        withdrawn: str | None,
        notes: list[str],
        own: dict[str, StoredFile],
        frame_rate: str | None,
    ) -> None:
        errors = outtray.errors_text(view.problems, withdrawn, notes, view.states)
        if await self._writes.replace(folder, outtray.ERRORS_PATH, errors, own.get(outtray.ERRORS)):
            log.info("deliver_scan.errors_written", folder=folder, problems=len(view.problems))
        findings = outtray.report_text(view.findings, self.style, frame_rate)
        await self._writes.replace(folder, outtray.REPORT_PATH, findings, own.get(outtray.REPORT))
