import json
from pathlib import PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.bundle import manifest as bundle
from service.bundle import preview

ASSET = "0a1b2c3d-0000-4000-8000-00000000a001"


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Harbour Lights", "Harbour Lights"),
        ("../../etc/passwd", "_._etc_passwd"),
        ("a/b\\c", "a_b_c"),
        ("..", "untitled"),
        ("", "untitled"),
        ("bell\x07 and\ttab\nnewline", "bell and tab newline"),
        ("Ölüm 死亡", "Ölüm 死亡"),
        ("trailing dots...", "trailing dots"),
    ],
)
def test_folder_name_is_safe_and_keeps_the_id(title, expected):
    assert bundle.folder_name(title, ASSET) == f"{expected} [{ASSET}]"


@given(st.text(max_size=400))
def test_any_title_gives_one_harmless_path_component(title):
    name = bundle.folder_name(title, ASSET)
    assert name.endswith(f" [{ASSET}]")
    assert "/" not in name and "\\" not in name and ".." not in name
    assert not any(ord(c) < 32 for c in name)
    assert len(name.encode()) < 255
    assert PurePosixPath(name).name == name


@pytest.mark.parametrize("bad", ["../x", "a/b", "", ".hidden", "x" * 200, "a b"])
def test_asset_ids_that_could_steer_a_path_are_refused(bad):
    with pytest.raises(bundle.BundleError):
        bundle.folder_name("t", bad)


def test_caption_and_media_paths():
    assert bundle.caption_path("en", False) == "captions/en.vtt"
    assert bundle.caption_path("fr", True) == "captions/fr.cc.vtt"
    assert bundle.caption_path("../x", False, "srt") == "captions/___x.srt"
    assert bundle.media_path("../../../escape.mp4", "m") == "media/escape.mp4"
    assert bundle.media_path(None, "proxy.mp4") == "media/proxy.mp4"


def test_flatten_metadata_both_shapes():
    assert bundle.flatten_metadata(
        {
            "one": {"field_values": [{"value": "x"}]},
            "many": {"field_values": [{"value": "a"}, {"value": "b"}]},
            "empty": {"field_values": []},
            "form_list": [{"value": "fr"}],
            "plain": "p",
            "none": None,
        }
    ) == {"one": "x", "many": ["a", "b"], "form_list": "fr", "plain": "p"}
    assert bundle.flatten_metadata(None) == {}


def _manifest(status="ready"):
    facts = bundle.AssetFacts(
        id=ASSET,
        title="T <script>",
        version_id="v",
        duration_seconds=2.0,
        frame_rate="25",
        start_timecode="10:00:00:00",
        metadata={"Genre": "Drama"},
        web_url="https://x/asset/a",
    )
    request = bundle.RequestFacts(
        request_id="r1",
        action_id="a1",
        context="ASSET",
        requested_by="u1",
        requested_at="2026-11-20T10:00:00+00:00",
        form_values={"notes": "</script><b>hi</b>"},
    )
    files = [
        bundle.BundleFile("media/m.mp4", 10, "ab" * 32, "media", source="proxy"),
        bundle.BundleFile("captions/en.vtt", 5, "cd" * 32, "caption", "en", False, "webvtt"),
    ]
    return bundle.build_manifest(
        asset=facts, request=request, files=files, revision=3, generated_at="now", status=status
    )


def test_manifest_has_every_contract_field():
    m = _manifest()
    assert m["schema"] == "caption-bundle/1" and m["status"] == "ready" and m["revision"] == 3
    assert set(m["asset"]) >= {
        "id",
        "title",
        "version_id",
        "duration_seconds",
        "frame_rate",
        "start_timecode",
        "metadata",
        "web_url",
    }
    assert set(m["request"]) >= {
        "request_id",
        "action_id",
        "requested_by",
        "requested_at",
        "form_values",
    }
    assert m["files"][1] == {
        "path": "captions/en.vtt",
        "size": 5,
        "sha256": "cd" * 32,
        "kind": "caption",
        "language": "en",
        "closed_captions": False,
        "format": "webvtt",
    }
    assert m["deliveries"] == []  # filled by deliveries from deliver/, kept by refreshes
    json.loads(bundle.manifest_bytes(m))


def test_withdraw_bumps_revision_and_records_the_event():
    w = bundle.withdraw_manifest(_manifest(), withdrawn_at="t", event_request_id="ev1")
    assert (w["status"], w["revision"], w["withdrawn"]) == (
        "withdrawn",
        4,
        {"at": "t", "event_request_id": "ev1"},
    )
    assert "deleted in Iconik" in bundle.withdrawn_note(w)


def test_preview_escapes_everything_it_shows():
    page = preview.render_preview(_manifest(), {"captions/en.vtt": "WEBVTT\n\n</script>"})
    assert "T &lt;script&gt;" in page
    assert "&lt;/script&gt;&lt;b&gt;hi&lt;/b&gt;" in page
    # The caption text sits in a JSON script element it cannot close early.
    assert page.count("</script>") == 2
    assert 'src="media/m.mp4"' in page
    assert '<a href="captions/en.vtt">' in page
