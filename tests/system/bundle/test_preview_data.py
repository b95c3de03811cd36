"""What the preview page shows, through the whole product
(tests/support/stack.py): rewritten with a delivery, never over a
captioner's, and the form's labels read once. The pure part:
tests/unit/bundle/test_preview_data.py."""

import hashlib

from tests.support.service import custom_action_body
from tests.support.stack import stack


def test_a_delivery_rewrites_the_page_but_never_a_captioners(tmp_path):
    with stack(tmp_path) as s:
        asset = s.seeded.normal
        s.send(custom_action_body(asset_ids=[asset]))
        s.drain()
        folder = s.bundle_dir(asset)
        page = folder / "index.html"
        assert 'data-state="waiting"' in page.read_text()
        (folder / "deliver" / "en.vtt").write_text("WEBVTT\n\n00:00.000 --> 00:01.000\nHi.\n")
        s.scan(), s.scan()
        s.drain()
        rewritten = page.read_bytes()
        [entry] = [f for f in s.manifest(asset)["files"] if f["path"] == "index.html"]
        assert entry["sha256"] == hashlib.sha256(rewritten).hexdigest()
        assert b'data-state="delivered"' in rewritten and b"revision 2 " in rewritten

        theirs = b"<p>my own notes</p>"
        page.write_bytes(theirs)
        (folder / "deliver" / "en.vtt").write_text("WEBVTT\n\n00:00.000 --> 00:01.000\nHo.\n")
        s.scan(), s.scan()
        s.drain()
        assert s.manifest(asset)["revision"] == 3
        assert page.read_bytes() == theirs  # the next build writes the service's beside it
        [entry] = [f for f in s.manifest(asset)["files"] if f["path"] == "index.html"]
        assert entry["sha256"] == hashlib.sha256(rewritten).hexdigest()


def test_a_click_of_many_assets_reads_the_forms_labels_once(tmp_path):
    from simulator import FORM_VIEW_ID

    with stack(tmp_path) as s:
        assets = s.sim.add_tiny_assets(4)
        s.send(custom_action_body(context="BULK", asset_ids=assets, metadata_view_id=FORM_VIEW_ID))
        s.drain()
        reads = [p for m, p in s.sim.requests if p == f"/API/metadata/v1/views/{FORM_VIEW_ID}/"]
        assert len(reads) == 1  # one per process every few minutes, not one per asset
        labels = s.manifest(assets[0])["request"].get("form_labels")
        assert labels, "the labels reached the bundle"
