"""What the service writes in deliver/, and what it leaves to the captioners. Pure."""

import json

from service import outtray, outtray_readme, plan
from service.outtray import Problem


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
    assert outtray.trusted_deliveries("not a list") == []
    assert outtray.trusted_deliveries([good, 3, None, {"path": 1}, {**good, "language": 5}]) == [
        good
    ]
    assert outtray.latest_delivery([{"language": None}, good], "EN", False) == good


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
    first = outtray.delivery_entry(
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
    assert outtray.latest_delivery([first, cc, second], "en", False) == second
    assert outtray.latest_delivery([first, cc, second], "EN", True) == cc
    assert outtray.latest_delivery([first], "fr", False) is None


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
    from service import bundle
    from service.logging import redactor

    monkeypatch.setattr(redactor, "secrets", ("s3cr3t-token",))
    entry = {"path": "deliver/en.vtt", "sha256": "ab", "language": "en", "note": "s3cr3t-token"}
    assert b"s3cr3t-token" not in outtray.receipt_bytes([entry])
    assert b"[redacted]" in bundle.manifest_bytes({"asset": {"title": "x s3cr3t-token"}})
