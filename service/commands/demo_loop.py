"""The demo's second half: a captioner's file comes back, and Iconik tells the bundle.

After the bundles are built, the demo registers the service's webhooks with
the simulator (as `caption-bridge register` does, over HTTP), drops a
finished English track into the normal episode's deliver/ folder, and waits
(bounded) for the whole loop: the deliver/ scan takes the file, the deliver
task writes the track to Iconik, the simulator sends its "asset updated"
webhook to the service, and the refresh it causes brings the delivered track
into the bundle's captions/. It also shows the asset's captioning state
(service/work/caption_status.py), written in a view the demo gives the simulator.
"""

from __future__ import annotations

from typing import TextIO

import anyio

from service.commands import register, register_status
from service.iconik.client import IconikClient
from service.storage import Storage, StorageError
from simulator import Simulator

# The view the demo's service writes the captioning state in (CAPTION_STATUS_VIEW_ID).
STATUS_VIEW_ID = "00000000-0000-4000-8000-0000000057a7"
STATUS_FIELD = "caption_status"
DELIVERED_LINE = "Delivered by the demo's captioner, back through the webhook."
DELIVERED_VTT = ("WEBVTT\n\n1\n00:00:00.000 --> 00:00:01.500\n" + DELIVERED_LINE + "\n").encode()


def add_status_view(simulator: Simulator) -> None:
    """The field and view `register` would make, with a known id."""
    simulator.fields[STATUS_FIELD] = register_status.desired_field(STATUS_FIELD)
    simulator.add_view(
        STATUS_VIEW_ID,
        register_status.STATUS_VIEW_NAME,
        [(STATUS_FIELD, register_status.STATUS_LABEL, "string")],
    )


async def close_the_loop(
    simulator: Simulator,
    iconik: IconikClient,
    storage: Storage,
    app_url: str,
    bearer: str,
    asset_id: str,
    out: TextIO,
    max_wait: float,
) -> bool:
    """Deliver a track and see it back in captions/ through the webhook; False on failure."""
    hooks = register.desired_webhooks(app_url, bearer)
    plan = await register.plan_register(iconik, [], hooks)
    await register.apply(iconik, plan.steps)
    print(f"\nWebhooks registered with the simulator: {len(hooks)} -> {app_url}", file=out)
    [folder, *_] = await storage.find_bundles(asset_id)
    await storage.put_file(folder, "deliver/en.vtt", DELIVERED_VTT)
    print(f"A captioner saves {folder}/deliver/en.vtt", file=out)
    step = "the webhook"
    with anyio.move_on_after(max_wait):
        while True:  # polled: the simulator runs in this event loop, its list is plain
            answered = [s for s in simulator.webhook_deliveries if s.status == 202]
            if answered:
                break
            await anyio.sleep(0.1)
        sent = answered[0]
        print(
            f"Track written to Iconik; the simulator sent its webhook "
            f"({sent.body['realm']} {sent.body['operation']}): the service answered 202",
            file=out,
        )
        step = "captions/en.vtt"
        while True:
            if DELIVERED_LINE.encode() in await _captions(storage, folder):
                break
            await anyio.sleep(0.1)
        manifest = await storage.read_manifest(folder) or {}
        print(
            f"{folder}/captions/en.vtt holds the delivered track "
            f"(revision {manifest.get('revision')}, refreshed by the webhook)",
            file=out,
        )
        state = simulator.metadata_value(asset_id, STATUS_VIEW_ID, STATUS_FIELD)
        print(f"The asset's {STATUS_FIELD} in Iconik: {state}", file=out)
        return True
    print(f"demo: the delivered track did not come back: no {step} after {max_wait:.0f}s", file=out)
    print(f"demo: {_webhooks_sent(simulator)}", file=out)
    return False


def _webhooks_sent(simulator: Simulator) -> str:
    """What the simulator's webhooks got back, for a demo that did not close its loop."""
    sent = [
        f"{s.body.get('realm')} {s.body.get('operation')}: "
        + (f"HTTP {s.status}" if s.status is not None else f"not reached ({s.error})")
        for s in simulator.webhook_deliveries
    ]
    if not sent:
        return "the simulator sent no webhook: the track was not written to Iconik"
    return "the simulator's webhooks got " + "; ".join(sent)


async def _captions(storage: Storage, folder: str) -> bytes:
    try:
        return await storage.read_file(folder, "captions/en.vtt", limit=1 << 20) or b""
    except StorageError:
        return b""
