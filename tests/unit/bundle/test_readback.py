"""A project.json read back from the folder keeps only what has the service's shape. Pure."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.bundle import manifest as bundle
from service.bundle import readback
from service.captions.track import Media

FILE = {"path": "captions/en.vtt", "size": 10, "sha256": "ab", "kind": "caption"}
DELIVERY = {"path": "deliver/en.vtt", "sha256": "cd", "language": "en"}


def test_what_the_service_wrote_reads_back_unchanged():
    written = bundle.build_manifest(
        asset=bundle.AssetFacts(id="a1", title="T"),
        request=bundle.RequestFacts(request_id="r1", form_values={"due": "soon"}),
        files=[bundle.BundleFile.from_entry(FILE)],
        revision=3,
        generated_at="2027-01-01T00:00:00+00:00",
        captioner_edits=["captions/fr.vtt"],
        deliveries=[DELIVERY],
    )
    assert readback.manifest(written) == written


def test_edited_parts_are_dropped_or_reset():
    edited = {
        "status": "pwned",
        "revision": "9; rm -rf",
        "asset": ["not", "a", "dict"],
        "files": [FILE, {"path": 3}, "x", {**FILE, "size": -1}],
        "deliveries": [DELIVERY, {"language": None}],
        "captioner_edits": "everything",
        "request": {
            "request_id": "r1",
            "surprise": 1,
            "context": 5,
            "form_values": [],
            "form_labels": {"due": "Due date", "x": ["not", "text"]},
            "due_date": ["2026-12-01"],
        },
        "withdrawn": "yes",
        "extra": {"huge": "x"},
    }
    assert readback.manifest(edited) == {
        "status": "ready",
        "revision": 0,
        "asset": {},
        "files": [FILE],
        "deliveries": [DELIVERY],
        "request": {
            "request_id": "r1",
            "action_id": None,
            "requested_by": None,
            "requested_at": None,
            "due_date_note": None,  # (a due date that is not text is left out)
            "metadata_view_id": None,
            "form_values": {},
            "form_labels": {"due": "Due date"},
        },
    }
    assert readback.manifest([1, 2]) is None


def test_only_a_number_is_taken_for_the_duration():
    for duration, kept in ((90, 90), (1.5, 1.5), (None, None), ("90", None), (True, None)):
        read = readback.manifest({"asset": {"id": "a1", "duration_seconds": duration}})
        assert read["asset"].get("duration_seconds") == kept
        assert read["asset"]["id"] == "a1"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
keys = st.sampled_from(["status", "revision", "asset", "files", "deliveries", "request", "x"])


@pytest.mark.slow
@given(st.dictionaries(keys, json_values))
def test_anything_read_back_can_be_used_as_a_manifest(read):
    kept = readback.manifest(read)
    assert kept is not None
    bundle.withdraw_manifest(kept, withdrawn_at="now", event_request_id=None)
    for entry in kept["files"]:
        bundle.BundleFile.from_entry(entry)
    if "request" in kept:
        bundle.RequestFacts(**kept["request"])


def test_the_start_timecode_and_frame_rate_are_kept_as_short_strings():
    good = {"id": "a1", "start_timecode": "10:00:00:00", "frame_rate": "30000/1001"}
    assert readback.manifest({"asset": good})["asset"] == good
    assert readback.media_of(good) == Media(None, "10:00:00:00", "30000/1001")
    for odd in (25, 29.97, ["10:00:00:00"], "1" * 33, {"x": 1}):
        read = readback.manifest({"asset": {**good, "start_timecode": odd, "frame_rate": odd}})
        assert read["asset"] == {"id": "a1"}  # dropped: never used in another shape
        media = readback.media_of(read["asset"])
        assert media.start_timecode is None and media.frame_rate is None
    assert readback.media_of({"duration_seconds": 5.0, "frame_rate": ""}) == Media(5.0, None, None)
