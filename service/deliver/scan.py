"""The deliver/ scan: finished caption files waiting in the bundles' out-trays.

Every DELIVER_SCAN_SECONDS each bundle's deliver/ folder is looked at, ready
and withdrawn bundles alike:

- a file is taken once it has stopped changing: its size, modification
  time and change tag were the same on two consecutive looks, so a file
  still being copied in is never delivered half-way;
- a file whose content (SHA-256) is not what the track of its language and
  kind was last delivered from becomes one `deliver` task, stored in the
  queue under a delivery key (service.deliver.task.caption_delivery_key): several
  scanning processes, or the same content seen again, enqueue it once;
- deliver/ERRORS.txt says, from the first look that sees a file, what state
  each file is in (waiting, checking, delivered, refused, not delivered),
  then every problem of each (a name the service does not deliver, every
  problem a check found, two files for one track, a delivery that failed,
  an entry that is not a regular file, something in the way of the
  service's own files); it is removed once every file is delivered;
- deliver/REPORT.txt lists the house-style findings (service/captions/house_style.py)
  of each file read; under HOUSE_STYLE=strict they are problems too;
- a README.txt written for another scan interval or house style (the
  manifest's digest of it is not that of the one the scan would write) gets
  a `readme` task that writes it anew (service/deliver/task.py).

The folder is the captioners', and anything in it may be hostile, so:
- which asset a folder delivers to, and whether it is withdrawn, is the
  bundle registry's record (kept by the worker when it publishes), never
  what project.json says; a folder with no record is not looked at;
- every read is bounded and of a regular file only (service/storage);
- at most `outtray.MAX_ENTRIES` entries of one folder are looked at;
- one folder, whatever is in it, never stops the look at the others.

The scan only reads and enqueues, and writes nothing but ERRORS.txt and
REPORT.txt (service/deliver/outtray_files.py): everything else in the bundle
changes in the `deliver` or `readme` task, under the asset's
one-task-at-a-time rule. It runs beside the worker's slots in every worker
process (`Worker.run`); tests drive `step()` one look at a time.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from service.bundle import manifest as bundle
from service.bundle import outtray, readback
from service.bundle.outtray import Problem
from service.bundle.outtray_view import Checked, View, path_of
from service.captions import house_style
from service.captions import track as captions
from service.deliver import task as deliver
from service.deliver.memory import FileMemory, ScanReport
from service.deliver.outtray_files import ReadmeCheck, ScanWrites
from service.logging import get_logger
from service.lru import Lru
from service.metrics import Metrics
from service.queue import Queue, QueueFull, QueueUnavailable
from service.storage import NotRegularFile, Outtray, Storage, StoredFile
from service.work import caption_status
from service.work.bundle_registry import BundleRegistry

log = get_logger("service.deliver.scan")

# The default of MAX_CAPTION_BYTES: larger files are refused unread.
MAX_CAPTION_BYTES = 20 * 1024 * 1024


# Files (and folders) whose last look the scan remembers (DELIVER_CACHE_FILES).
CACHE_FILES = 10_000


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
        registry: BundleRegistry | None = None,
        cache_files: int = CACHE_FILES,
        caption_status: bool = False,
    ) -> None:
        self.queue = queue
        self.storage = storage
        # Which asset each folder delivers to is the registry's (the queue's
        # store); the worker's own, so one process fills it once.
        self.registry = registry or BundleRegistry(queue, storage)
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.max_caption_bytes = max_caption_bytes
        self.style = style or house_style.Style()
        # What each caption file was at the last look, and what came of it.
        self.files = FileMemory(
            queue,
            storage,
            style=self.style,
            max_caption_bytes=max_caption_bytes,
            cache_files=cache_files,
        )
        # Per folder, project.json as last read and the listing's look at it.
        self._manifests: Lru[str, tuple[tuple[Any, ...], dict[str, Any]]] = Lru(cache_files)
        # Folders holding a file seen changing at the last look: looked at
        # again soon (service/deliver/loop.py), so it is taken once it settles.
        self.unsettled: set[str] = set()
        # Every folder the registry had at the last look at everything.
        self.known_folders: frozenset[str] = frozenset()
        self._writes = ScanWrites(storage)
        # README.txt for `readme_every` (DELIVER_SCAN_SECONDS); None: not checked.
        self._readme = ReadmeCheck(queue, self.style, readme_every)
        # CAPTION_STATUS_VIEW_ID is set: a bundle's first file stores its
        # asset's "In captioning" (service/work/caption_status.py), once per folder.
        self.caption_status = caption_status
        self._in_captioning_stored: Lru[str, bool] = Lru(cache_files)

    async def step(self, folders: Iterable[str] | None = None) -> ScanReport:
        """One look at every out-tray (one walk of the storage), or at `folders`'."""
        report = ScanReport()
        if folders is None:
            await self._look_at_everything(report)
        else:
            for folder in sorted(set(folders)):
                owner = await self.registry.owner_of(folder)
                if owner is not None:
                    report.folders += 1
                    await self._look_safely(folder, *owner, set(), report, None)
        self.metrics.deliver_scans.labels("complete").inc()
        self.metrics.deliver_scan_last.set(self.clock())
        if report.queued:
            log.info("deliver_scan.queued", deliveries=report.queued, folders=report.folders)
        return report

    async def _look_at_everything(self, report: ScanReport) -> None:
        looked: set[tuple[str, str]] = set()
        owners: dict[str, list[tuple[str, str]]] = {}
        for asset_id, folder, status in await self.registry.every_bundle():
            owners.setdefault(folder, []).append((asset_id, status))
        self.known_folders = frozenset(owners)
        # One walk of the storage gives every deliver/ (service/storage: on
        # S3 about one request per hundred bundles), folders in name order.
        async for tray in self.storage.outtrays():
            report.present.add(tray.folder)
            records = owners.get(tray.folder)
            if records is None:
                continue  # not a bundle the service made, or not on record yet
            report.folders += 1
            if len(records) != 1:  # never guess which asset a folder delivers to
                log.warning(
                    "deliver_scan.folder_ambiguous", folder=tray.folder, assets=len(records)
                )
                continue
            if tray.problem is not None:
                # Nothing can be written into it either: the operator hears of it.
                log.warning(
                    "deliver_scan.outtray_unusable", folder=tray.folder, reason=tray.problem
                )
                continue
            [(asset_id, status)] = records
            await self._look_safely(tray.folder, asset_id, status, looked, report, tray)
        report.missing = set(owners) - report.present
        # Forget files that are gone: a file put back is looked at afresh.
        self.files.keep_only(looked)
        self._manifests.keep_only(set(owners))
        self._writes.keep_only(set(owners))
        self._readme.keep_only(set(owners))
        self.unsettled &= set(owners)

    async def _look_safely(
        self,
        folder: str,
        asset_id: str,
        status: str,
        looked: set[tuple[str, str]],
        report: ScanReport,
        outtray: Outtray | None,
    ) -> None:
        try:
            await self._look_at(folder, asset_id, status, looked, report, outtray)
        except QueueUnavailable:
            raise  # every folder would fail alike: the look fails once
        except Exception as exc:  # whatever is in one folder, the others go on
            log.warning(
                "deliver_scan.folder_failed",
                folder=folder,
                error=f"bundle storage ({self.storage.description}): "
                f"{str(exc) or type(exc).__name__}",
            )

    async def _manifest(self, folder: str, look: StoredFile | None) -> dict[str, Any] | None:
        """project.json, read again only when the listing shows it changed."""
        cached = self._manifests.get(folder)
        if look is not None and cached is not None and cached[0] == look.look:
            return cached[1]
        manifest = await self.storage.read_manifest(folder)
        if manifest is not None and look is not None:
            self._manifests[folder] = (look.look, manifest)
        return manifest

    async def _look_at(
        self,
        folder: str,
        asset_id: str,
        status: str,
        looked: set[tuple[str, str]],
        report: ScanReport,
        walked: Outtray | None = None,
    ) -> None:
        # "publishing" is a bundle being built, or one whose worker died before
        # recording "ready": its manifest says whether it is complete.
        self.unsettled.discard(folder)
        manifest_look = walked.manifest if walked is not None else None
        if walked is not None:
            listed = walked.files
        else:
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
            manifest = await self._manifest(folder, manifest_look)
            if manifest is not None and readme is not None:
                await self._readme.check(folder, asset_id, manifest, readme)
        if not theirs:
            await self._write(folder, View(), None, notes, own, None)
            return
        manifest = manifest or await self._manifest(folder, manifest_look)
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
        # Facts of the media, as read back (service/bundle/readback.py keeps their shape).
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
            last = self.files.looks.get(key)
            if last is None or last[0] != found.look:
                self.files.looks[key] = (found.look, now)
                changing.append(found)
        if changing:
            self.unsettled.add(folder)

        deliveries = manifest["deliveries"]
        if status == "withdrawn":
            when = manifest.get("withdrawn", {})
            note = (
                f"this project was withdrawn on {str(when.get('at') or '?')[:40]}: the asset was "
                f"deleted in Iconik (see {bundle.WITHDRAWN_NOTE} in the project folder)."
            )
            for found in files:
                entry = await self.files.delivered(folder, found, deliveries, latest=False)
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
                problem = Problem(found.name, None, self.files.too_large(found.size))
                view.say(found.name, "not delivered", problem)
                continue
            if found in changing:
                # First seen (or seen again after a restart): the content it had
                # when delivered is said to be delivered, not to be waiting.
                entry = await self.files.delivered(folder, found, deliveries, latest=True)
                if entry is not None:
                    view.delivered(found.name, entry, None)
                else:
                    view.waiting(found.name, now)
                    if not deliveries:  # the first file of the bundle: "In captioning"
                        await self._in_captioning(folder, asset_id)
                continue
            checked = await self.files.check(folder, found, name, media)
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

    async def _in_captioning(self, folder: str, asset_id: str) -> None:
        """Store the asset's "In captioning" once (its key dedupes across scanners)."""
        if not self.caption_status or folder in self._in_captioning_stored:
            return
        try:
            await self.queue.enqueue(
                caption_status.new_in_captioning(folder, asset_id), uuid.uuid4().hex
            )
        except (QueueFull, QueueUnavailable) as exc:  # the next look tries again
            log.warning("deliver_scan.status_not_queued", folder=folder, error=str(exc))
            return
        self._in_captioning_stored[folder] = True

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
        latest = outtray.latest_caption_delivery(deliveries, name.language, name.closed_captions)
        delivery = deliver.new_caption_delivery(
            folder=folder,
            asset_id=asset_id,
            # The title as the service wrote it into the folder's name.
            title=folder.removesuffix(f" [{asset_id}]"),
            path=path,
            sha256=checked.sha256,
            track=name,
            replaces=(latest or {}).get("sha256"),
        )
        view.stored(found.name, checked, await self.files.store(folder, found, delivery, report))

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
