"""What the service writes in deliver/, and what it leaves to the captioners. Pure."""

import json

from service.bundle import outtray, outtray_readme, plan
from service.bundle.outtray import Problem


def test_the_service_looks_only_at_the_captioners_files():
    assert outtray.is_captioners("en.vtt") and outtray.is_captioners("notes.docx")
    for name in ("README.txt", "RECEIPT.json", "ERRORS.txt", ".DS_Store", "._en.vtt", "~$en.srt"):
        assert not outtray.is_captioners(name), name
    assert not outtray.is_captioners("README.iconik-r3.txt")
    for litter in ("Thumbs.db", "desktop.ini", "Desktop.ini", "Icon\r"):
        assert outtray.is_litter(litter) and not outtray.is_captioners(litter), litter


def test_a_name_is_shown_on_one_line_with_its_controls_escaped():
    assert outtray.shown("en.vtt") == "en.vtt"
    assert outtray.shown("été.vtt") == "été.vtt"  # letters stay as they are
    assert outtray.shown("a\nb") == "a\\x0ab"
    assert outtray.shown("\x1b[2Jx") == "\\x1b[2Jx"
    assert outtray.shown("evil\u202etxt.vtt") == "evil\\u202etxt.vtt"  # no bidi reordering
    assert outtray.shown("a\\x0ab") == "a\\x5cx0ab"  # a backslash cannot fake an escape
    forged = str(Problem("x.vtt\nde.vtt", 1, "bad\rok"))
    assert "\n" not in forged and "\r" not in forged


def test_notes_about_the_folder_come_first_and_alone_make_a_file():
    text = outtray.errors_text([], None, ["a folder named RECEIPT.json is in the way"])
    assert text == "a folder named RECEIPT.json is in the way\n"
    text = outtray.errors_text([Problem("x.txt", None, "no")], "withdrawn.", ["note"])
    assert text.startswith("Nothing in this folder is delivered: withdrawn.\n\nnote\n\nx.txt: no\n")


def test_deliveries_read_back_keep_only_entries_of_the_written_shape():
    good = {"path": "deliver/en.vtt", "sha256": "ab", "language": "en"}
    assert outtray.trusted_caption_deliveries("not a list") == []
    assert outtray.trusted_caption_deliveries(
        [good, 3, None, {"path": 1}, {**good, "language": 5}]
    ) == [good]
    assert outtray.latest_caption_delivery([{"language": None}, good], "EN", False) == good


def test_readme_says_how_to_name_what_happens_and_where_to_look():
    text = outtray_readme.readme("Harbour Lights", "a1", 2.0, 60)
    for words in (
        "en.vtt",
        "fr.cc.vtt",
        ".srt",
        "every minute",
        "stopped changing",
        "replaces",
        "RECEIPT.json",
        "ERRORS.txt",
        "00:00:02.000",
        "Harbour Lights (a1)",
    ):
        assert words in text, words
    assert "every 15 seconds" in outtray_readme.readme("T", "a1", None, 15)
    assert "turned off" in outtray_readme.readme("T", "a1", None, 0)


def test_errors_list_one_line_per_file_and_nothing_when_all_is_well():
    text = outtray.errors_text(
        [
            Problem("fr.srt", 12, "the cue ends (00:00:01.000) before it starts (00:00:02.000)"),
            Problem("English.vtt", None, "not a name the service delivers"),
        ]
    )
    lines = text.splitlines()
    assert lines[:2] == [
        "English.vtt: not a name the service delivers",
        "fr.srt, line 12: the cue ends (00:00:01.000) before it starts (00:00:02.000)",
    ]
    assert outtray.errors_text([]) == ""
    withdrawn = outtray.errors_text([Problem("en.vtt", None, "not delivered")], "withdrawn")
    assert withdrawn.startswith("Nothing in this folder is delivered: withdrawn\n")


def test_receipt_and_the_latest_delivery_of_a_track():
    first = outtray.caption_delivery_entry(
        path="deliver/en.vtt",
        sha256="a" * 64,
        language="en",
        closed_captions=False,
        subtitle_id="s1",
        delivered_at="t1",
    )
    cc = {**first, "path": "deliver/en.cc.vtt", "closed_captions": True}
    second = {**first, "path": "deliver/en.srt", "sha256": "b" * 64}
    assert json.loads(outtray.receipt_bytes([first])) == {"deliveries": [first]}
    assert outtray.latest_caption_delivery([first, cc, second], "en", False) == second
    assert outtray.latest_caption_delivery([first, cc, second], "EN", True) == cc
    assert outtray.latest_caption_delivery([first], "fr", False) is None


def test_a_change_of_the_bundle_never_removes_anything_in_deliver():
    previous = {
        "files": [
            {"path": "deliver/README.txt", "sha256": "r"},
            {"path": "deliver/en.vtt", "sha256": "e"},  # as if listed by mistake
            {"path": "captions/de.vtt", "sha256": "d"},
        ]
    }
    on_disk = {"deliver/README.txt": "r", "deliver/en.vtt": "e", "captions/de.vtt": "d"}
    placement = plan.place(["index.html"], previous=previous, on_disk=on_disk, revision=2)
    assert placement.stale(["index.html"]) == ["captions/de.vtt"]


def test_receipt_and_manifest_mask_a_configured_secret(monkeypatch):
    from service.bundle import manifest as bundle
    from service.logging import redactor

    monkeypatch.setattr(redactor, "secrets", ("s3cr3t-token",))
    entry = {"path": "deliver/en.vtt", "sha256": "ab", "language": "en", "note": "s3cr3t-token"}
    assert b"s3cr3t-token" not in outtray.receipt_bytes([entry])
    assert b"[redacted]" in bundle.manifest_bytes({"asset": {"title": "x s3cr3t-token"}})


def test_every_problem_of_a_refusal_is_listed_then_counted():
    from service.captions.track import MAX_PROBLEMS, Refused

    listed = [(3, "first"), (9, "second"), (None, "third")]
    refused = Refused("first", 3, more=2 + 40, problems=listed)  # 43 problems, 3 listed
    lines = [str(p) for p in outtray.problems_of("fr.srt", refused)]
    assert lines == [
        "fr.srt, line 3: first",
        "fr.srt, line 9: second",
        "fr.srt: third",
        f"fr.srt: and 40 more problems (at most {MAX_PROBLEMS} are listed for one file)",
    ]
    # As main's captions.read refuses today: the first problem, the rest counted.
    today = [str(p) for p in outtray.problems_of("de.vtt", Refused("bad", 7, more=1))]
    assert today == [
        "de.vtt, line 7: bad",
        f"de.vtt: and 1 more problem (at most {MAX_PROBLEMS} are listed for one file)",
    ]
    text = outtray.errors_text(
        outtray.problems_of("fr.srt", refused),
        states=[outtray.State("fr.srt", outtray.refused_words(outtray.problem_count(refused)))],
    )
    assert text.splitlines()[:7] == [
        "THE FILES IN THIS FOLDER",
        "  fr.srt: refused: 43 problems, listed below",
        "",
        "PROBLEMS",
        "fr.srt, line 3: first",
        "fr.srt, line 9: second",
        "fr.srt: third",
    ]


def test_a_folder_of_delivered_files_needs_no_errors_file():
    delivered = [outtray.State("en.vtt", "delivered at x", delivered=True)]
    assert outtray.errors_text([], states=delivered) == ""
    waiting = [
        *delivered,
        outtray.State("fr.vtt", "waiting (seen at 12:03:10 UTC, still changing)"),
    ]
    assert outtray.errors_text([], states=waiting) == (
        "THE FILES IN THIS FOLDER\n"
        "  en.vtt: delivered at x\n"
        "  fr.vtt: waiting (seen at 12:03:10 UTC, still changing)\n"
    )
    forged = str(outtray.State("a\nb.vtt", "x\rdelivered"))
    assert "\n" not in forged and "\r" not in forged


def test_a_delivered_state_says_when_and_what_was_noted():
    from service.bundle.outtray_view import delivered_words

    entry = outtray.caption_delivery_entry(
        path="deliver/en.srt",
        sha256="a" * 64,
        language="en",
        closed_captions=False,
        subtitle_id="s1",
        delivered_at="2027-01-15T08:00:00+00:00",
        notes=("times counted from the start timecode 10:00:00:00",),
        house_style={"line_chars": 1},
    )
    assert entry["notes"] == ["times counted from the start timecode 10:00:00:00"]
    assert entry["house_style"] == {"line_chars": 1}
    assert delivered_words(entry) == (
        "delivered at 2027-01-15 08:00:00 UTC; times counted from the start timecode 10:00:00:00"
    )
    bare = outtray.caption_delivery_entry(
        path="p",
        sha256="s",
        language="en",
        closed_captions=False,
        subtitle_id="i",
        delivered_at="?",
    )
    assert "notes" not in bare and "house_style" not in bare  # only when there is something
    assert delivered_words({**bare, "notes": "not a list"}) == "delivered at ?"
    assert outtray.entry_notes({"notes": ["x" * 1000, 5, None] * 20}) == ["x" * 300] * 4


def test_the_delivered_file_is_the_track_latest_delivery_of_that_content():
    vtt = {"path": "deliver/en.vtt", "sha256": "a", "language": "en", "closed_captions": False}
    srt = {**vtt, "path": "deliver/en.srt", "sha256": "b"}
    assert outtray.delivered_as([vtt], "deliver/en.vtt", "a") == vtt
    assert outtray.delivered_as([vtt], "deliver/en.vtt", "changed") is None
    assert outtray.delivered_as([vtt, srt], "deliver/en.vtt", "a") is None  # en.srt replaced it
    assert outtray.delivered_as([vtt, srt], "deliver/en.srt", "b") == srt


def test_the_delivery_history_keeps_the_latest_and_twenty_before_it_per_track():
    deliveries = []
    for n in range(60):
        language = "en" if n % 2 else "fr"
        entry = {"path": f"deliver/{language}.vtt", "sha256": str(n), "language": language}
        deliveries = outtray.with_caption_delivery(deliveries, entry)
    per_track = outtray.HISTORY_PER_TRACK + 1
    assert len(deliveries) == 2 * per_track
    assert [d["sha256"] for d in deliveries][-4:] == ["56", "57", "58", "59"]  # order kept
    assert next(d["sha256"] for d in deliveries if d["language"] == "en") == str(59 - 2 * 20)
    cc = {"path": "deliver/en.cc.vtt", "sha256": "c", "language": "en", "closed_captions": True}
    assert outtray.with_caption_delivery(deliveries, cc)[-1] == cc  # a track of its own
    assert len(outtray.with_caption_delivery(deliveries, cc)) == 2 * per_track + 1


def test_the_house_style_report_lists_findings_by_file():
    from service.captions import house_style
    from service.captions.track import Cue

    cues = [Cue(0, 3000, "x" * 55, 3), Cue(4000, 5000, "y" * 30, 7)]
    report = house_style.check(cues, house_style.Style(), max_listed=1)
    text = outtray.report_text(
        [("en.vtt", "delivered at t", report), ("fr.vtt", "checking", house_style.Report())],
        house_style.Style(),
        "25",
    )
    assert "  - at most 42 characters on a line" in text
    assert "still delivered" in text
    assert "\nen.vtt (delivered at t): 2 findings\n" in text
    assert "  line 3, cue 1: characters per line: a line of 55 characters (at most 42)\n" in text
    assert "  and 1 finding more (at most 100 are listed for one file)" in text
    assert "fr.vtt" not in text  # nothing to say about it
    assert outtray.report_text([], house_style.Style(), None) == ""


def test_readme_states_the_interval_the_timecode_the_frame_rate_and_the_style():
    from service.captions import house_style

    asset = {"title": "T", "duration_seconds": 90.0, "start_timecode": "10:00:00:00"}
    text = outtray_readme.readme_of({**asset, "frame_rate": "25"}, "a1", 10, house_style.Style())
    assert "every 10 seconds" in text
    assert "start timecode 10:00:00:00, frame rate 25." in text
    assert "either from\nzero" in text and "both work" in text
    assert "  - at most 42 characters on a line" in text
    assert "at least 2 frames between cues (25 frames per second)" in text
    assert "is still delivered; REPORT.txt" in text
    strict = outtray_readme.readme_of(asset, "a1", 60, house_style.Style(strict=True))
    assert "every minute" in strict and "REFUSED" in strict and "frame rate not known" in strict
    assert "25 frames per second" in strict  # the default, said
    # What cannot be a timecode is not shown as one.
    odd = outtray_readme.readme_of(
        {**asset, "start_timecode": "9" * 500}, "a1", 60, house_style.Style()
    )
    assert "9" * 40 not in odd and "no start timecode on record" in odd
