"""The captioning state on the Iconik asset, and the simulator's webhooks closing the loop.

The whole product on loopback (tests/support/stack.py): the service writes the
`caption_status` field through Iconik's metadata API (the simulator over real
HTTP), once per change, and nothing without CAPTION_STATUS_VIEW_ID; a track a
delivery writes makes the simulator send the webhook registered with it, and
the refresh it causes brings that track into the bundle's captions/.
"""

import httpx2
import jsonschema

from service.commands import register
from tests.support.deliver import BROKEN_DE, EN_VTT, cues_of, take
from tests.support.iconik_api import operation_for, operations, request_schema
from tests.support.service import BEARER, ICONIK_TOKEN, custom_action_body, webhook_body
from tests.support.stack import APP_ID, stack

STATUS_VIEW = "00000000-0000-4000-8000-0000000057a7"


def _status(s, asset):
    return s.sim.metadata_value(asset, STATUS_VIEW, "caption_status")


def _writes(s, asset):
    return [values for written, _, values in s.sim.metadata_writes if written == asset]


def test_the_asset_shows_each_state_once_per_change(tmp_path):
    with stack(tmp_path, caption_status_view_id=STATUS_VIEW) as s:
        s.sim.add_view(STATUS_VIEW, "Captioning", [("caption_status", "Captioning", "string")])
        s.scanner.caption_status = True  # as the worker's scan, with the setting
        asset = s.seeded.normal
        s.send(custom_action_body(asset_ids=[asset]))
        s.drain()
        assert _status(s, asset) == "Sent to captioning (2027-01-15)"
        assert len(_writes(s, asset)) == 1

        deliver = s.bundle_dir(asset) / "deliver"
        (deliver / "en.vtt").write_text(EN_VTT)
        assert take(s, 1) == [0]  # seen, still changing: the captioner is at work
        s.drain()
        assert _status(s, asset) == "In captioning"
        assert take(s, 1) == [1]
        s.drain()
        assert _status(s, asset) == "Delivered: en (2027-01-15)"
        assert len(_writes(s, asset)) == 3

        (deliver / "de.vtt").write_text(BROKEN_DE)  # not "In captioning" again
        assert take(s) == [0, 1]
        s.drain()
        assert _status(s, asset) == "Delivery refused: de (see the bundle)"
        assert len(_writes(s, asset)) == 4

        # Looks and a refresh that change no state write nothing.
        assert take(s, 2) == [0, 0]
        s.webhook(webhook_body(object_id=asset, operation="update", realm="entity"))
        s.drain()
        assert len(_writes(s, asset)) == 4

        s.sim.delete_asset(asset)
        s.webhook(webhook_body(object_id=asset, operation="delete", request_id="gone-1"))
        s.drain()
        assert _status(s, asset) == "Withdrawn"
        assert [w["caption_status"]["field_values"][0]["value"] for w in _writes(s, asset)] == [
            "Sent to captioning (2027-01-15)",
            "In captioning",
            "Delivered: en (2027-01-15)",
            "Delivery refused: de (see the bundle)",
            "Withdrawn",
        ]
        for method, path, body in s.sim.bodies:  # each write is what Iconik's spec accepts
            key = operation_for(method, path)
            if key and key.startswith("PUT /API/metadata/"):
                jsonschema.validate(body, request_schema(operations()[key]["request"]))


def test_without_the_setting_nothing_is_written(tmp_path):
    with stack(tmp_path) as s:
        s.sim.add_view(STATUS_VIEW, "Captioning", [("caption_status", "Captioning", "string")])
        asset = s.seeded.normal
        s.send(custom_action_body(asset_ids=[asset]))
        s.drain()
        deliver = s.bundle_dir(asset) / "deliver"
        (deliver / "en.vtt").write_text(EN_VTT)
        assert take(s) == [0, 1]
        s.drain()
        assert s.sim.tracks(asset, "en", False)  # delivered
        assert s.sim.metadata_writes == []
        assert not any("/metadata/" in p for m, p in s.sim.requests if m == "PUT")


def test_a_delivered_track_comes_back_into_captions_through_the_simulators_webhook(tmp_path):
    with stack(tmp_path) as s:
        # What `caption-bridge register` registers, with its bearer header.
        iconik = {"App-ID": APP_ID, "Auth-Token": ICONIK_TOKEN}
        for hook in register.desired_webhooks(s.app_url, BEARER):
            answer = httpx2.post(s.sim_url + register.WEBHOOKS, json=hook, headers=iconik)
            assert answer.status_code == 201, answer.text
        asset = s.seeded.normal
        s.send(custom_action_body(asset_ids=[asset]))
        s.drain()
        folder = s.bundle_dir(asset)
        assert cues_of((folder / "captions" / "en.vtt").read_text()) != cues_of(EN_VTT)
        (folder / "deliver" / "en.vtt").write_text(EN_VTT)
        assert take(s) == [0, 1]
        s.drain()

        [sent] = s.sim.wait_for_webhooks(1)
        assert sent.status == 202, sent  # stored by the service, authenticated
        assert (sent.body["realm"], sent.body["operation"]) == ("subtitles", "update")
        s.drain()
        m = s.manifest(asset)
        assert m["revision"] == 3  # built, delivered, refreshed by the webhook
        assert cues_of((folder / "captions" / "en.vtt").read_text()) == cues_of(EN_VTT)


def test_a_late_in_captioning_never_overwrites_a_refusal(tmp_path):
    """The scan's `caption_status` task may run after the delivery it preceded
    (retried after an Iconik error): a refusal is a newer state than it."""
    import dataclasses
    import json

    import anyio

    from service.queue.sqlite import SQLiteQueue
    from service.work import caption_status

    with stack(tmp_path, caption_status_view_id=STATUS_VIEW) as s:
        s.sim.add_view(STATUS_VIEW, "Captioning", [("caption_status", "Captioning", "string")])
        s.scanner.caption_status = True
        asset = s.seeded.normal
        s.send(custom_action_body(asset_ids=[asset]))
        s.drain()
        (s.bundle_dir(asset) / "deliver" / "de.vtt").write_text(BROKEN_DE)
        assert take(s) == [0, 1]
        s.drain()
        assert _status(s, asset) == "Delivery refused: de (see the bundle)"
        writes = len(_writes(s, asset))

        late = caption_status.new_in_captioning(s.bundle_dir(asset).name, asset)
        late = dataclasses.replace(late, key=late.key + ":retried")

        async def store() -> None:
            queue = SQLiteQueue(s.settings.sqlite_path, clock=s.clock)
            await queue.open()
            try:
                await queue.enqueue(late, "late-in-captioning")
            finally:
                await queue.close()

        anyio.run(store)
        s.drain()
        assert _status(s, asset) == "Delivery refused: de (see the bundle)"
        assert len(_writes(s, asset)) == writes
        assert json.loads(late.payload)["asset_id"] == asset
