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
  delivery that failed, a withdrawn project), and is removed once nothing is.

The scan only reads and enqueues, and writes nothing but ERRORS.txt (which no
manifest lists, so no reader can find it torn): everything else in the
bundle changes in the `deliver` task, under the asset's one-task-at-a-time
rule. It runs beside the worker's slots in every worker process
(`Worker.run`); tests drive `step()` one look at a time.
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
from service.logging import get_logger
from service.metrics import Metrics
from service.outtray import Problem
from service.queue import Queue, QueueFull
from service.registry import BundleRegistry
from service.storage import Storage, StorageError, StoredFile

log = get_logger("service.deliver_scan")

# Larger than any caption file; such a file is not read into memory.
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
    ) -> None:
        self.queue = queue
        self.storage = storage
        # Bundles are found in the registry (the queue's store), never by
        # listing the storage root on every look.
        self.registry = BundleRegistry(queue, storage)
        self.metrics = metrics or Metrics()
        self.clock = clock
        self._looks: dict[tuple[str, str], tuple[Any, ...]] = {}  # last look at each file
        self._checked: dict[tuple[str, str], tuple[tuple[Any, ...], Checked]] = {}
        # The delivery key each file's content was stored under, and its request.
        self._stored: dict[tuple[str, str], tuple[str, str]] = {}

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
        for folder in await self.registry.every_folder():
            report.folders += 1
            try:
                await self._look_at(folder, looked, report)
            except (StorageError, OSError) as exc:
                log.warning(
                    "deliver_scan.folder_failed",
                    folder=folder,
                    error=f"bundle storage ({self.storage.description}): {exc}",
                )
        # Forget files that are gone: a file put back is looked at afresh.
        self._looks = {k: v for k, v in self._looks.items() if k in looked}
        self._checked = {k: v for k, v in self._checked.items() if k in looked}
        self._stored = {k: v for k, v in self._stored.items() if k in looked}
        self.metrics.deliver_scans.labels("complete").inc()
        self.metrics.deliver_scan_last.set(self.clock())
        if report.queued:
            log.info("deliver_scan.queued", deliveries=report.queued, folders=report.folders)
        return report

    async def _look_at(self, folder: str, looked: set[tuple[str, str]], report: ScanReport) -> None:
        listed = await self.storage.list_files(folder, outtray.FOLDER)
        theirs = [f for f in listed if outtray.is_captioners(f.name)]
        errors_exist = any(f.name == outtray.ERRORS for f in listed)
        if not theirs:
            await self._write_errors(folder, [], None, errors_exist)
            return
        manifest = await self.storage.read_manifest(folder)
        asset_id = str((manifest or {}).get("asset", {}).get("id") or "")
        if manifest is None or not bundle.is_valid_asset_id(asset_id):
            return  # not a bundle (yet), or one being changed: next time
        stable = []
        for found in theirs:
            key = (folder, found.name)
            looked.add(key)
            if self._looks.get(key) == found.look:
                stable.append(found)
            self._looks[key] = found.look

        if manifest.get("status") != "ready":
            when = (manifest.get("withdrawn") or {}).get("at") or "?"
            note = (
                f"this project was withdrawn on {when}: the asset was deleted in Iconik "
                f"(see {bundle.WITHDRAWN_NOTE} in the project folder)."
            )
            problems = [Problem(f.name, None, "not delivered (withdrawn project)") for f in theirs]
            await self._write_errors(folder, problems, note, errors_exist)
            return

        problems: list[Problem] = []
        by_track: dict[tuple[str, bool], list[tuple[StoredFile, Checked]]] = {}
        duration = manifest.get("asset", {}).get("duration_seconds")
        for found in stable:
            try:
                name = captions.parse_name(found.name)
            except captions.Refused as refused:
                problems.append(Problem(found.name, None, refused.reason))
                continue
            if found.size > MAX_CAPTION_BYTES:
                reason = f"too large for a caption file ({found.size:,} bytes)"
                problems.append(Problem(found.name, None, reason))
                continue
            checked = await self._check(folder, found, name, duration)
            if checked is not None:
                by_track.setdefault((name.language, name.closed_captions), []).append(
                    (found, checked)
                )

        for (language, cc), files in by_track.items():
            if len(files) > 1:
                names = " and ".join(sorted(f.name for f, _ in files))
                track = bundle.caption_label(language, cc)
                reason = f"not delivered: {names} are both the {track} track; keep one"
                problems += [Problem(f.name, None, reason) for f, _ in files]
                continue
            [(found, checked)] = files
            problem = await self._enqueue(folder, manifest, asset_id, found, checked, report)
            if problem is not None:
                problems.append(problem)
        await self._write_errors(folder, problems, None, errors_exist)

    async def _check(
        self, folder: str, found: StoredFile, name: captions.TrackName, duration: Any
    ) -> Checked | None:
        """The file's content and its check, read once per look of the file."""
        key = (folder, found.name)
        cached = self._checked.get(key)
        if cached is not None and cached[0] == (found.look, duration):
            return cached[1]
        data = await self.storage.read_file(
            folder, f"{outtray.FOLDER}/{found.name}", limit=MAX_CAPTION_BYTES
        )
        if data is None:
            return None  # removed since the listing
        refusal = None
        try:
            await anyio.to_thread.run_sync(captions.read, found.name, data, duration)
        except captions.Refused as refused:
            refusal = refused
        checked = Checked(hashlib.sha256(data).hexdigest(), name, refusal)
        self._checked[key] = ((found.look, duration), checked)
        return checked

    async def _enqueue(
        self,
        folder: str,
        manifest: dict[str, Any],
        asset_id: str,
        found: StoredFile,
        checked: Checked,
        report: ScanReport,
    ) -> Problem | None:
        """A delivery for this content unless the track already came from it;
        what ERRORS.txt should say about the file, if anything."""
        name, path = checked.name, f"{outtray.FOLDER}/{found.name}"
        latest = outtray.latest_delivery(
            manifest.get("deliveries", []), name.language, name.closed_captions
        )
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
            title=str(manifest.get("asset", {}).get("title") or ""),
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
        self, folder: str, problems: list[Problem], withdrawn: str | None, exists: bool
    ) -> None:
        text = outtray.errors_text(problems, withdrawn)
        if not text:
            if exists:
                await self.storage.delete_file(folder, outtray.ERRORS_PATH)
            return
        current = (
            await self.storage.read_file(folder, outtray.ERRORS_PATH, limit=len(text) * 4 + 1)
            if exists
            else None
        )
        if current != text.encode():
            await self.storage.put_file(folder, outtray.ERRORS_PATH, text.encode())


def _plain(refusal: captions.Refused) -> str:
    """A refusal as ERRORS.txt words it (its line is in the Problem already)."""
    more = refusal.more
    return refusal.reason + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")
