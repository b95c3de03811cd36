"""The captioning state on the Iconik asset: one metadata field Iconik users see.

The field (CAPTION_STATUS_FIELD, default `caption_status`) in the view
CAPTION_STATUS_VIEW_ID holds one line: `Sent to captioning (2026-12-06)`,
`In captioning`, `Delivered: en, fr.cc (2026-12-07)`, `Delivery refused: de
(see the bundle)` or `Withdrawn`. Without CAPTION_STATUS_VIEW_ID nothing is
written. `caption-bridge register` makes the field and the view
(service/commands/register_status.py).

Where it is written, and why that is coalesced and never stale: each state
is written once, by the task of the asset that made the change (build on the
first publish, withdraw, deliver), right after the change is visible. The
queue runs one task of an asset at a time, in order, so the write of a newer
state always follows that of an older one; no second store of "wanted
state" is needed. "In captioning" is seen by the deliver/ scan, which is
not an asset task: it enqueues a `caption_status` task for the asset, keyed
once per bundle folder, so it too runs in the asset's order, and it writes
nothing when a delivery from that folder has ended, taken or refused (a
newer state; the queue records both, the manifest only what was taken).

A status write goes through the worker's Iconik client, and so through its
rate budget. It is bookkeeping: an Iconik error is logged and the bundle work
that caused it stands (the state is written again with the next change).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from service.iconik.client import IconikError, NotFound
from service.iconik.paths import checked_id
from service.logging import get_logger
from service.queue import Delivery, NewTask, RequestKind, Task, TaskKind
from service.work.tasks import TaskContext

log = get_logger("service.work.caption_status")

IN_CAPTIONING = "In captioning"
WITHDRAWN = "Withdrawn"


def _day(iso_or_seconds: float) -> str:
    return datetime.fromtimestamp(iso_or_seconds, UTC).date().isoformat()


def sent(now: float) -> str:
    return f"Sent to captioning ({_day(now)})"


def track_label(language: str, closed_captions: bool) -> str:
    """A track as its delivered file is named: `fr.cc` for French closed captions."""
    return f"{language}.cc" if closed_captions else language


def delivered(deliveries: Iterable[dict[str, Any]], now: float) -> str:
    labels = sorted(
        {track_label(str(d.get("language")), bool(d.get("closed_captions"))) for d in deliveries}
    )
    return f"Delivered: {', '.join(labels)} ({_day(now)})"


def refused(language: str, closed_captions: bool) -> str:
    return f"Delivery refused: {track_label(language, closed_captions)} (see the bundle)"


def values_body(field: str, value: str) -> dict[str, Any]:
    """The body of Iconik's PUT of an asset's values in a view (MetadataValuesSchema)."""
    return {"metadata_values": {field: {"field_values": [{"value": value}]}}}


async def write(ctx: TaskContext, asset_id: str, value: str) -> bool:
    """Set the asset's status field to `value`; False when not written (no
    view configured, or Iconik refused: logged, never raised)."""
    view_id = ctx.settings.caption_status_view_id
    if not view_id:
        return False
    path = (
        f"/API/metadata/v1/assets/{checked_id(asset_id, 'the asset id')}"
        f"/views/{checked_id(view_id, 'CAPTION_STATUS_VIEW_ID')}/"
    )
    body = values_body(ctx.settings.caption_status_field, value)
    try:
        await ctx.iconik.request("PUT", path, json=body)
    except NotFound:
        log.warning("caption_status.not_written", asset_id=asset_id, reason="asset or view gone")
        return False
    except IconikError as exc:
        log.warning("caption_status.not_written", asset_id=asset_id, reason=str(exc))
        return False
    log.info("caption_status.written", asset_id=asset_id, status=value)
    return True


def in_captioning_key(asset_id: str, folder: str) -> str:
    return f"caption_status:{asset_id}:{folder}:in_captioning"


def new_in_captioning(folder: str, asset_id: str) -> Delivery:
    """What the scan stores when a bundle's deliver/ first holds a captioner's file."""
    return Delivery(
        key=in_captioning_key(asset_id, folder),
        kind=RequestKind.CAPTION_STATUS,
        payload=json.dumps({"folder": folder, "asset_id": asset_id}),
        first_task=NewTask(TaskKind.CAPTION_STATUS, asset_id),
    )


async def mark_in_captioning(ctx: TaskContext, task: Task) -> None:
    """The `caption_status` task: "In captioning", unless a newer state is recorded."""
    folder, asset_id = task.payload.get("folder", ""), task.asset_id or ""
    owner = await ctx.registry.owner_of(folder)
    if owner is None or (owner[0], owner[1]) != (asset_id, "ready"):
        return  # withdrawn (its own state), or not a bundle of this asset
    manifest = await ctx.storage.read_manifest(folder)
    if manifest is None or manifest.get("deliveries"):
        return  # delivered already: a newer state than this one
    if await _caption_delivery_ended(ctx, asset_id, folder):
        return  # a delivery of this folder ended (a refusal is not in the manifest)
    await write(ctx, asset_id, IN_CAPTIONING)


async def _caption_delivery_ended(ctx: TaskContext, asset_id: str, folder: str) -> bool:
    """Has a caption file from this folder been taken or refused (the queue's record)?"""
    for delivery in await ctx.registry.queue.caption_deliveries([asset_id]):
        if delivery["payload"].get("folder") == folder and delivery["state"] in ("done", "failed"):
            return True
    return False
