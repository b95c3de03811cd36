"""The events the tasks store with their changes, through the whole product
on loopback (tests/support/stack.py): a bundle published, rebuilt without a change
(no event), refreshed with a new track, captions delivered and refused, the
asset withdrawn."""

import json
import sqlite3

import pytest

from service.queue import DELIVERED, PUBLISHED, REFRESHED, REFUSED, WITHDRAWN
from tests.support.deliver import BROKEN_DE, EN_VTT, take
from tests.support.service import custom_action_body, webhook_body
from tests.support.stack import stack

FORM = {
    "target_languages": {"field_values": [{"value": "en"}, {"value": "fr"}]},
    "due_date": {"field_values": [{"value": "2026-12-01"}]},
}


def outbox(settings):
    db = sqlite3.connect(settings.sqlite_path)
    try:
        rows = db.execute("SELECT event_id, type, asset_id, data FROM outbox_events ORDER BY seq")
        return [(r[0], r[1], r[2], json.loads(r[3])) for r in rows]
    finally:
        db.close()


@pytest.mark.slow
def test_each_change_stores_its_event_and_no_change_stores_none(tmp_path):
    with stack(tmp_path) as s:
        asset = s.seeded.normal
        click = s.send(custom_action_body(asset_ids=[asset], metadata_values=FORM))
        s.drain()
        folder = s.bundle_dir(asset)
        [(_, kind, about, data)] = outbox(s.settings)
        assert (kind, about) == (PUBLISHED, asset)
        assert data == {
            "asset_id": asset,
            "title": "Harbour Lights: Episode 1",
            "folder": folder.name,  # the folder's name, never a path
            "request_id": click["request_id"],
            "languages": ["en", "fr"],
            "due_date": "2026-12-01T23:59:59+00:00",  # the end of that day in DUE_DATE_ZONE
        }

        # The same click again: the bundle is rebuilt, nothing in it changed.
        again = custom_action_body(
            asset_ids=[asset], metadata_values=FORM, date_created="2026-11-21T09:00"
        )
        s.send(again)
        s.drain()
        assert len(outbox(s.settings)) == 1

        # A new track in Iconik: the refresh says what changed.
        s.sim.add_subtitle(s.sim.assets[asset], "de", "WEBVTT\n\n00:00.000 --> 00:01.000\nHallo\n")
        s.webhook(webhook_body(object_id=asset, operation="update", realm="subtitles"))
        s.drain()
        [_, (_, kind, _, data)] = outbox(s.settings)
        assert kind == REFRESHED
        assert data["changes"] == ["captions added: de"]
        assert data["languages"] == ["en", "fr"]  # the request on record, for a webhook

        # A captioner's file goes to Iconik; a broken one is refused.
        (folder / "deliver" / "en.vtt").write_text(EN_VTT)
        take(s)
        s.drain()
        (folder / "deliver" / "de.vtt").write_text(BROKEN_DE)
        take(s)
        s.drain()
        *_, (_, delivered, _, got), (_, refused, _, bad) = outbox(s.settings)
        assert (delivered, got["file"], got["languages"]) == (DELIVERED, "deliver/en.vtt", ["en"])
        assert got["languages_asked"] == ["en", "fr"]
        assert (refused, bad["file"], bad["languages"]) == (REFUSED, "deliver/de.vtt", ["de"])
        assert bad["problem"].startswith("line 7: the cue ends")

        # The asset is deleted in Iconik.
        s.webhook(webhook_body(object_id=asset, operation="delete", request_id="gone-1"))
        s.drain()
        *_, (_, kind, _, data) = outbox(s.settings)
        assert (kind, data["folder"]) == (WITHDRAWN, folder.name)

        events = outbox(s.settings)
        assert [e[1] for e in events] == [PUBLISHED, REFRESHED, DELIVERED, REFUSED, WITHDRAWN]
        assert len({e[0] for e in events}) == 5
        text = json.dumps(events)
        assert s.settings.iconik_url not in text and str(tmp_path) not in text


def _tamper(folder):
    """What a captioner can do to project.json: another title, brief and due
    date, and a caption track whose 'language' is a message of their own."""
    path = folder / "project.json"
    manifest = json.loads(path.read_text())
    manifest["asset"]["title"] = "FREE MONEY http://evil.example"
    manifest["request"]["due_date"] = "2099-01-01T00:00:00+00:00"
    manifest["request"]["form_values"] = {"target_languages": ["zh"]}
    manifest["files"].append(
        {
            "path": "captions/planted.vtt",
            "sha256": "0" * 64,
            "size": 1,
            "kind": "caption",
            "format": "webvtt",
            "language": "call +1 555 0100 now",
        }
    )
    path.write_text(json.dumps(manifest))


@pytest.mark.slow
def test_a_captioners_project_json_never_speaks_in_a_notification(tmp_path):
    """Deliveries, refusals and withdrawals say what the bundle's build
    recorded in the queue; a refresh names no track label a captioner wrote."""
    with stack(tmp_path) as s:
        asset = s.seeded.normal
        s.send(custom_action_body(asset_ids=[asset], metadata_values=FORM))
        s.drain()
        folder = s.bundle_dir(asset)
        built = {"title": "Harbour Lights: Episode 1", "due_date": "2026-12-01T23:59:59+00:00"}

        _tamper(folder)
        (folder / "deliver" / "en.vtt").write_text(EN_VTT)
        take(s)
        s.drain()
        _tamper(folder)
        (folder / "deliver" / "de.vtt").write_text(BROKEN_DE)
        take(s)
        s.drain()
        *_, (_, delivered, _, got), (_, refused, _, bad) = outbox(s.settings)
        assert (delivered, refused) == (DELIVERED, REFUSED)
        for data in (got, bad):
            assert {k: data[k] for k in built} == built
            assert data["languages_asked"] == ["en", "fr"]

        _tamper(folder)
        s.sim.add_subtitle(s.sim.assets[asset], "de", "WEBVTT\n\n00:00.000 --> 00:01.000\nHallo\n")
        s.webhook(webhook_body(object_id=asset, operation="update", realm="subtitles"))
        s.drain()
        *_, (_, kind, _, data) = outbox(s.settings)
        assert kind == REFRESHED
        assert not any("555" in change for change in data["changes"])
        rebuilt = json.loads((folder / "project.json").read_text())["request"]
        assert rebuilt["due_date"] == built["due_date"]  # the brief as the click gave it
        assert rebuilt["form_values"]["target_languages"] == ["en", "fr"]

        _tamper(folder)
        s.webhook(webhook_body(object_id=asset, operation="delete", request_id="gone-1"))
        s.drain()
        *_, (_, kind, _, data) = outbox(s.settings)
        assert kind == WITHDRAWN
        assert {k: data[k] for k in built} == built
        assert data["languages"] == ["en", "fr"]
        assert "evil" not in json.dumps(outbox(s.settings))
