"""Webhooks keep bundles current: deleted assets withdraw, changed assets refresh."""

import hashlib
import sqlite3

import pytest

from simulator import Blob
from tests.support.service import custom_action_body, webhook_body
from tests.support.stack import stack

CAPTIONER_FILE = "captions/en.work-in-progress.vtt"


def _tree(folder):
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }


def _requests_stored(settings):
    db = sqlite3.connect(settings.sqlite_path)
    try:
        return db.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
    finally:
        db.close()


def test_asset_delete_withdraws_and_deletes_nothing(tmp_path):
    with stack(tmp_path) as s:
        original = s.send(custom_action_body(asset_ids=[s.seeded.normal]))
        s.drain()
        folder = s.bundle_dir(s.seeded.normal)
        (folder / CAPTIONER_FILE).write_text("WEBVTT\n\n00:00.000 --> 00:01.000\nmy work\n")
        before = _tree(folder)

        s.sim.delete_asset(s.seeded.normal)
        event = webhook_body(
            object_id=s.seeded.normal, operation="delete", request_id="iconik-evt-1"
        )
        answer = s.webhook(event)
        assert answer.status_code == 202
        s.drain()

        after = _tree(folder)
        assert set(before) <= set(after)  # nothing removed
        rewritten = {"project.json", "index.html"}  # the manifest, and the page's banner
        for path, digest in before.items():
            if path not in rewritten:
                assert after[path] == digest, path  # nothing else changed
        assert after[CAPTIONER_FILE] == before[CAPTIONER_FILE]
        m = s.manifest(s.seeded.normal)
        assert m["status"] == "withdrawn" and m["revision"] == 2
        assert m["withdrawn"]["event_request_id"] == "iconik-evt-1"
        assert m["request"]["request_id"] == original["request_id"]
        assert "deleted in Iconik" in (folder / "WITHDRAWN.txt").read_text()
        assert "This project has been withdrawn" in (folder / "index.html").read_text()
        for entry in m["files"]:  # the manifest still describes the folder exactly
            assert (
                hashlib.sha256((folder / entry["path"]).read_bytes()).hexdigest()
                == (entry["sha256"])
            )
        assert s.status(answer.json()["request_id"])["status"] == "done"


def test_a_restored_asset_comes_back_ready_without_the_notice(tmp_path):
    with stack(tmp_path) as s:
        s.send(custom_action_body(asset_ids=[s.seeded.normal]))
        s.drain()
        folder = s.bundle_dir(s.seeded.normal)
        (folder / CAPTIONER_FILE).write_text("my work")
        s.sim.delete_asset(s.seeded.normal)
        s.webhook(webhook_body(object_id=s.seeded.normal, operation="delete", request_id="d1"))
        s.drain()
        s.sim.assets[s.seeded.normal].asset["status"] = "ACTIVE"
        s.webhook(webhook_body(object_id=s.seeded.normal, operation="restore", request_id="r1"))
        s.drain()
        m = s.manifest(s.seeded.normal)
        assert (m["status"], m["revision"]) == ("ready", 3)
        assert not (folder / "WITHDRAWN.txt").exists()
        assert "has been withdrawn" not in (folder / "index.html").read_text()
        assert (folder / CAPTIONER_FILE).read_text() == "my work"


def test_subtitle_added_refreshes_in_place_keeping_the_captioners_file(tmp_path):
    with stack(tmp_path) as s:
        form = {"notes": {"field_values": [{"value": "keep me"}]}}
        original = s.send(custom_action_body(asset_ids=[s.seeded.normal], metadata_values=form))
        s.drain()
        folder = s.bundle_dir(s.seeded.normal)
        (folder / CAPTIONER_FILE).write_text("my work")

        subtitle = s.sim.add_subtitle(
            s.sim.assets[s.seeded.normal], "es", "WEBVTT\n\n00:00.000 --> 00:01.000\nHola\n"
        )
        event = webhook_body(
            object_id=subtitle["id"],
            realm="subtitles",
            operation="create",
            data={"asset_id": s.seeded.normal, "language": "es"},
            request_id="iconik-evt-2",
        )
        assert s.webhook(event).status_code == 202
        s.drain()

        m = s.manifest(s.seeded.normal)
        assert m["revision"] == 2 and m["status"] == "ready"
        assert (folder / "captions/es.vtt").read_text().endswith("Hola\n")
        assert "captions/es.vtt" in {f["path"] for f in m["files"]}
        assert (folder / CAPTIONER_FILE).read_text() == "my work"
        # The bundle still credits the request that made it.
        assert m["request"]["request_id"] == original["request_id"]
        assert m["request"]["form_values"] == {"notes": "keep me"}


def test_update_for_an_asset_without_a_bundle_is_ignored_at_intake(tmp_path):
    with stack(tmp_path) as s:
        s.send(custom_action_body(asset_ids=[s.seeded.large]))
        s.drain()  # a worker has run: the registry knows the bundles there are
        answer = s.webhook(webhook_body(object_id=s.seeded.normal, operation="update"))
        assert (answer.status_code, answer.json()) == (200, {"ignored": True})
        assert _requests_stored(s.settings) == 1  # the click alone
        assert not [p for p in s.root.iterdir() if p.name.endswith(f"[{s.seeded.normal}]")]


def test_unrelated_event_is_ignored_and_not_queued(tmp_path):
    with stack(tmp_path) as s:
        answer = s.webhook(webhook_body(event_type="collections", operation="update"))
        assert (answer.status_code, answer.json()) == (200, {"ignored": True})
        assert _requests_stored(s.settings) == 0


def test_webhook_delivered_twice_is_handled_once(tmp_path):
    with stack(tmp_path) as s:
        s.send(custom_action_body(asset_ids=[s.seeded.normal]))
        s.drain()
        event = webhook_body(object_id=s.seeded.normal, operation="delete", request_id="dup-1")
        first, second = s.webhook(event), s.webhook(event)
        assert second.json() == {**first.json(), "duplicate": True}
        s.drain()
        assert s.manifest(s.seeded.normal)["revision"] == 2  # withdrawn once, not twice
        assert _requests_stored(s.settings) == 2  # the custom action and one webhook


@pytest.mark.slow
def test_a_caption_the_captioner_edited_is_never_overwritten(tmp_path):
    with stack(tmp_path) as s:
        s.send(custom_action_body(asset_ids=[s.seeded.normal]))
        s.drain()
        folder = s.bundle_dir(s.seeded.normal)
        theirs = "WEBVTT\n\n00:00.000 --> 00:01.000\nWelcome aboard! [edited by captioner]\n"
        (folder / "captions/en.vtt").write_text(theirs)
        iconik_en = s.sim.assets[s.seeded.normal].webvtt[("en", False)]

        s.webhook(
            webhook_body(
                object_id=s.seeded.normal,
                realm="metadata",
                operation="update",
                request_id="evt-meta-1",
            )
        )
        s.drain()
        m = s.manifest(s.seeded.normal)
        assert m["revision"] == 2
        assert (folder / "captions/en.vtt").read_text() == theirs
        assert (folder / "captions/en.iconik-r2.vtt").read_text() == iconik_en
        assert m["captioner_edits"] == ["captions/en.vtt"]
        paths = {f["path"] for f in m["files"]}
        assert "captions/en.vtt" not in paths and "captions/en.iconik-r2.vtt" in paths
        # The untouched French file was simply refreshed in place.
        assert "captions/fr.cc.vtt" in paths

        s.webhook(
            webhook_body(
                object_id=s.seeded.normal,
                realm="metadata",
                operation="update",
                request_id="evt-meta-2",
            )
        )
        s.drain()
        m = s.manifest(s.seeded.normal)
        assert m["revision"] == 3
        assert (folder / "captions/en.vtt").read_text() == theirs
        assert (folder / "captions/en.iconik-r3.vtt").read_text() == iconik_en
        assert not (folder / "captions/en.iconik-r2.vtt").exists()  # ours, superseded
        assert m["captioner_edits"] == ["captions/en.vtt"]


def test_two_deletes_from_one_iconik_request_withdraw_both_bundles(tmp_path):
    with stack(tmp_path) as s:
        both = [s.seeded.normal, s.seeded.traversal_title]
        s.send(custom_action_body(context="BULK", asset_ids=both))
        s.drain()
        answers = [
            s.webhook(webhook_body(object_id=a, operation="delete", request_id="bulk-delete-1"))
            for a in both
        ]
        assert [a.status_code for a in answers] == [202, 202]
        assert all("duplicate" not in a.json() for a in answers)
        s.drain()
        for asset_id in both:
            m = s.manifest(asset_id)
            assert (m["status"], m["revision"]) == ("withdrawn", 2), asset_id


def test_a_captioner_file_at_a_path_iconik_later_provides_survives(tmp_path):
    with stack(tmp_path) as s:
        s.send(custom_action_body(asset_ids=[s.seeded.normal]))
        s.drain()
        folder = s.bundle_dir(s.seeded.normal)
        theirs = b"WEBVTT\r\n\r\n00:00.000 --> 00:01.000\r\nHola, su traducci\xc3\xb3n.\r\n"
        (folder / "captions/es.vtt").write_bytes(theirs)
        iconik_es = "WEBVTT\n\n00:00.000 --> 00:00.900\nBienvenidos a bordo.\n"
        s.sim.add_subtitle(s.sim.assets[s.seeded.normal], "es", iconik_es)

        s.webhook(
            webhook_body(
                object_id=s.seeded.normal, realm="subtitles", operation="create", request_id="e1"
            )
        )
        s.drain()
        m = s.manifest(s.seeded.normal)
        assert m["revision"] == 2
        assert (folder / "captions/es.vtt").read_bytes() == theirs  # byte for byte
        assert (folder / "captions/es.iconik-r2.vtt").read_text() == iconik_es
        assert "captions/es.vtt" in m["captioner_edits"]
        paths = {f["path"] for f in m["files"]}
        assert "captions/es.vtt" not in paths and "captions/es.iconik-r2.vtt" in paths
        for entry in m["files"]:
            digest = hashlib.sha256((folder / entry["path"]).read_bytes()).hexdigest()
            assert digest == entry["sha256"], entry["path"]


def _proxy_downloads(sim):
    return sum(1 for key in sim.downloads if key.startswith("proxies/"))


@pytest.mark.slow
def test_a_refresh_reuses_the_media_already_in_the_bundle(tmp_path):
    with stack(tmp_path) as s:
        s.send(custom_action_body(asset_ids=[s.seeded.normal]))
        s.drain()
        assert _proxy_downloads(s.sim) == 1
        folder = s.bundle_dir(s.seeded.normal)
        sim_asset = s.sim.assets[s.seeded.normal]
        for i in range(4):  # four subtitle changes: captions fetched, media kept
            s.sim.add_subtitle(sim_asset, "en", f"WEBVTT\n\n00:00.000 --> 00:00.500\nTake {i}\n")
            s.webhook(
                webhook_body(
                    object_id=s.seeded.normal,
                    realm="subtitles",
                    operation="update",
                    request_id=f"sub-{i}",
                )
            )
            s.drain()
        assert _proxy_downloads(s.sim) == 1
        m = s.manifest(s.seeded.normal)
        assert m["revision"] == 5
        assert "Take 3" in (folder / "captions/en.vtt").read_text()
        [media] = [f for f in m["files"] if f["kind"] == "media"]
        assert hashlib.sha256((folder / media["path"]).read_bytes()).hexdigest() == media["sha256"]

        # A new proxy (another id) is fetched again.
        new_proxy = b"\x00\x00\x00\x18ftypmp42 new transcode"
        sim_asset.proxies[0]["id"] = "1b5e0a3c-0000-4000-8000-0000000000ff"
        s.sim.blobs["proxies/1b5e0a3c-0000-4000-8000-0000000000ff"] = Blob(
            len(new_proxy), new_proxy
        )
        sim_asset.proxies[0]["size"] = len(new_proxy)
        s.webhook(
            webhook_body(
                object_id=s.seeded.normal, realm="proxies", operation="create", request_id="px"
            )
        )
        s.drain()
        assert _proxy_downloads(s.sim) == 2
        assert (folder / media["path"]).read_bytes() == new_proxy
