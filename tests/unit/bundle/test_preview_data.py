"""What the preview page shows, worked out from the manifest (service/bundle/preview_data.py). Pure,
but for the last test: a delivery rewrites the page, never over a captioner's."""

from hypothesis import given
from hypothesis import strategies as st

from service.bundle import manifest as bundle
from service.bundle import preview_data
from service.bundle.preview_data import (
    format_frames,
    media_frame,
    parse_frame_rate,
    timecode_frames,
)


def rate(text):
    found = parse_frame_rate(text)
    assert found is not None
    return found


def test_frame_rates_as_iconik_writes_them():
    assert rate("25").label == "25 fps" and not rate("25").drop_frame
    for ntsc in ("29.97", "30000/1001", "29.970"):
        assert (rate(ntsc).rate, rate(ntsc).nominal, rate(ntsc).drop_frame) == (
            rate("30000/1001").rate,
            30,
            True,
        )
    assert rate("59.94").label == "59.94 fps drop-frame" and rate("59.94").dropped_per_minute == 4
    assert rate("23.976").label == "23.976 fps" and not rate("23.976").drop_frame
    assert rate("30").label == "30 fps" and not rate("30").drop_frame
    for bad in (None, "", "fast", "0", "1/0", "-25", "1e9", True, ["25"], "nan"):
        assert parse_frame_rate(bad) is None


def test_drop_frame_skips_two_frame_numbers_a_minute_but_every_tenth():
    df = rate("29.97")
    start = timecode_frames("10:00:00;00", df)
    assert start == 1_078_920  # 36000 s * 30 - 2 * (600 - 60) dropped numbers
    tc = [format_frames(start + f, df) for f in (1799, 1800, 17981, 17982)]
    assert tc == ["10:00:59;29", "10:01:00;02", "10:09:59;29", "10:10:00;00"]
    assert format_frames(start + media_frame(600.0, df), df) == "10:10:00;00"
    assert format_frames(start + media_frame(60.06, df), df) == "10:01:00;02"
    assert timecode_frames("10:00:00:00", rate("25")) == 900_000
    assert format_frames(900_000 + media_frame(1.9, rate("25")), rate("25")) == "10:00:01:23"


@given(
    frame=st.integers(min_value=0, max_value=10**8),
    name=st.sampled_from(["25", "29.97", "59.94", "24", "23.976"]),
)
def test_a_timecode_names_the_frame_it_was_made_from(frame, name):
    r = rate(name)
    day = (timecode_frames("23:59:59:00", r) or 0) + r.nominal  # timecode wraps at 24 h
    frame %= day
    shown = format_frames(frame, r)
    assert (";" in shown) == r.drop_frame
    assert timecode_frames(shown, r) == frame


def test_bad_timecodes_are_none():
    for bad in (None, "", "10:00:00", "10:61:00:00", "10:00:00:25", "x0:00:00:00", 36000):
        assert timecode_frames(bad, rate("25")) is None
    assert (
        preview_data.timing({"frame_rate": "25", "start_timecode": "junk"})["start_known"] is False
    )
    assert preview_data.timing({"frame_rate": None}) is None


def test_labels_come_from_the_views_definition_and_keys_stay_where_there_is_none():
    definition = {
        "name": "Caption request",
        "view_fields": [
            {"name": "target_languages", "label": "Languages wanted", "field_type": "drop_down"},
            {"name": "odd", "label": 5},
            "junk",
        ],
    }
    labels = preview_data.labels_of(definition)
    assert labels == {"target_languages": "Languages wanted"}
    form = {"target_languages": ["en", "fr"], "notes": "CAPS", "due_date": "2026-12-01", "x": ""}
    assert preview_data.labelled(form, labels, ("due_date",)) == [
        ("Languages wanted", "en, fr"),
        ("notes", "CAPS"),
    ]
    assert preview_data.labels_of(["not", "a", "view"]) == {}
    assert preview_data.due_date({"form_values": form}, "due_date") == "2026-12-01"
    assert preview_data.due_date({"form_values": form}, "deadline") is None
    assert preview_data.due_date({"form_values": "edited"}, "due_date") is None


def test_each_language_has_one_state():
    files = [
        bundle.BundleFile("captions/en.vtt", 1, "a", "caption", "en", False).entry(),
        bundle.BundleFile("captions/fr.cc.vtt", 1, "a", "caption", "fr", True).entry(),
    ]
    deliveries = [
        {"path": "deliver/en.vtt", "sha256": "1", "language": "en", "delivered_at": "d1"},
        {"path": "deliver/EN.srt", "sha256": "2", "language": "en", "delivered_at": "d2"},
        {"path": "deliver/es.vtt", "sha256": "3", "language": "es", "delivered_at": "d3"},
        {"language": None},  # edited: left out
    ]
    errors = (
        "Nothing in this folder is delivered: withdrawn\n\n"
        "es.vtt, line 4: the cue ends before it starts\n"
        "notes.txt: not a name the service delivers\n"
        "de.cc.srt: the file is empty\n"
    )
    states = preview_data.caption_delivery_states(
        {"files": files, "deliveries": deliveries}, errors
    )
    assert [(s["label"], s["state"]) for s in states] == [
        ("de (closed captions)", "refused"),
        ("en", "delivered"),
        ("es", "refused"),
        ("fr (closed captions)", "waiting"),
    ]
    assert states[1]["detail"] == "Delivered d2 from deliver/EN.srt"  # the last one
    assert states[2]["detail"] == (
        "es.vtt, line 4: the cue ends before it starts (last delivered d3 from deliver/es.vtt)"
    )
    assert preview_data.caption_delivery_states({"files": "x", "deliveries": {}}, None) == []
