"""The bundle registry: bundles are found in the queue's store, not by listing storage."""

import sqlite3

from tests.support.service import custom_action_body, webhook_body
from tests.support.stack import stack


def _registry(settings):
    db = sqlite3.connect(settings.sqlite_path)
    try:
        return db.execute("SELECT asset_id, folder, status FROM bundles ORDER BY folder").fetchall()
    finally:
        db.close()


def test_publish_and_withdrawal_are_recorded(tmp_path):
    with stack(tmp_path) as s:
        s.send(custom_action_body(asset_ids=[s.seeded.normal]))
        s.drain()
        folder = s.bundle_dir(s.seeded.normal).name
        assert _registry(s.settings) == [(s.seeded.normal, folder, "ready")]
        s.sim.delete_asset(s.seeded.normal)
        s.webhook(webhook_body(object_id=s.seeded.normal, operation="delete", request_id="d"))
        s.drain()
        assert _registry(s.settings) == [(s.seeded.normal, folder, "withdrawn")]


def test_a_renamed_asset_keeps_its_folder_found_through_the_registry(tmp_path):
    with stack(tmp_path) as s:
        s.send(custom_action_body(asset_ids=[s.seeded.normal]))
        s.drain()
        folder = s.bundle_dir(s.seeded.normal).name
        s.sim.assets[s.seeded.normal].asset["title"] = "Harbour Lights: Episode 1 (final)"
        s.send(custom_action_body(asset_ids=[s.seeded.normal], some_future_field="again"))
        s.drain()
        assert [p.name for p in s.root.iterdir() if not p.name.startswith(".")] == [folder]
        assert s.manifest(s.seeded.normal)["revision"] == 2


def test_bundles_made_before_the_registry_are_found_by_one_listing(tmp_path):
    with stack(tmp_path) as s:
        s.send(custom_action_body(context="BULK", asset_ids=[s.seeded.normal, s.seeded.large]))
        s.drain()
        # As a queue from before the registry existed would have it: empty.
        db = sqlite3.connect(s.settings.sqlite_path)
        with db:
            db.execute("DELETE FROM bundles")
            db.execute("DELETE FROM registry_filled")
        db.close()

        s.webhook(
            webhook_body(
                object_id=s.seeded.normal, realm="metadata", operation="update", request_id="u"
            )
        )
        s.drain()
        assert s.manifest(s.seeded.normal)["revision"] == 2  # refreshed, not skipped
        assert {row[0] for row in _registry(s.settings)} == {s.seeded.normal, s.seeded.large}


def test_a_bundle_the_registry_missed_is_refreshed_never_overwritten(tmp_path):
    with stack(tmp_path) as s:
        s.send(custom_action_body(asset_ids=[s.seeded.normal]))
        s.drain()
        folder = s.bundle_dir(s.seeded.normal)
        theirs = b"WEBVTT\n\n00:00.000 --> 00:01.000\nmine\n"
        (folder / "captions" / "en.vtt").write_bytes(theirs)
        # A worker that died between publishing and recording: the registry
        # is filled but does not know this folder.
        db = sqlite3.connect(s.settings.sqlite_path)
        with db:
            db.execute("DELETE FROM bundles")
        db.close()
        s.send(custom_action_body(asset_ids=[s.seeded.normal], some_future_field="again"))
        s.drain()
        assert (folder / "captions" / "en.vtt").read_bytes() == theirs
        assert s.manifest(s.seeded.normal)["revision"] == 2
