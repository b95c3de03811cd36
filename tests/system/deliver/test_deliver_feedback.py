"""What deliver/ tells a captioner, end to end: the house style's report, the
states in ERRORS.txt, the receipt's notes, README.txt kept current.

The whole product on loopback (tests/support/stack.py): the simulator over real
HTTP, the real SQLite queue, a real bundle folder, the worker and the
deliver/ scan driven one step at a time.
"""

import dataclasses
import hashlib
import json
import sqlite3

import pytest

from service.captions import track as captions
from service.deliver.scan import DeliverScan
from simulator import Blob, sample_video
from tests.support.deliver import cues_of, delivered_job, hms, take, track_writes
from tests.support.service import custom_action_body
from tests.support.stack import stack

LONG_LINE = "This line is far too long for any streaming style guide"
FAST = "Thirty characters in a second"
OUT_OF_STYLE = (
    "WEBVTT\n"
    "\n"
    "1\n"
    "00:00:01.000 --> 00:00:04.000\n"  # line 4: a 55-character line
    f"{LONG_LINE}\n"
    "\n"
    "2\n"
    "00:00:05.000 --> 00:00:06.000\n"  # line 8: 30 characters in one second
    f"{FAST}.\n"
)


def bundled(s, duration_ms=10_000):
    video = sample_video()
    sim_asset = s.sim.add_asset("styled", "Harbour Lights: Style", duration_ms=duration_ms)
    s.sim.add_proxy(sim_asset, name="style.mp4", blob=Blob(len(video), video))
    asset = sim_asset.asset["id"]
    s.send(custom_action_body(asset_ids=[asset]))
    s.drain()
    return asset, s.bundle_dir(asset) / "deliver"


def test_house_style_is_reported_and_the_file_delivered(tmp_path):
    assert (len(LONG_LINE), len(FAST) + 1) == (55, 30)
    with stack(tmp_path) as s:
        asset, deliver_dir = bundled(s)
        (deliver_dir / "en.vtt").write_text(OUT_OF_STYLE)

        # The first look that sees the file says so at once.
        assert take(s, 1) == [0]
        errors = (deliver_dir / "ERRORS.txt").read_text()
        assert f"  en.vtt: waiting (seen at {hms(s)} UTC, still changing)\n" in errors
        assert take(s, 1) == [1]
        s.drain()
        assert cues_of(s.sim.assets[asset].webvtt[("en", False)]) == cues_of(OUT_OF_STYLE)

        [entry] = json.loads((deliver_dir / "RECEIPT.json").read_text())["deliveries"]
        assert entry["house_style"] == {"line_chars": 1, "chars_per_second": 1}
        assert s.manifest(asset)["deliveries"] == [entry]
        assert take(s, 1) == [0]
        assert not (deliver_dir / "ERRORS.txt").exists()  # delivered: nothing to fix
        report = (deliver_dir / "REPORT.txt").read_text()
        assert "\nen.vtt (delivered at 2027-01-15 08:00:00 UTC): 2 findings\n" in report
        assert (
            "  line 4, cue 1: characters per line: a line of 55 characters (at most 42)\n"
        ) in report
        assert (
            "  line 8, cue 2: characters per second: 30.0 characters per second (at most 20)\n"
        ) in report
        assert "still delivered" in report


def test_under_strict_house_style_the_same_file_is_refused(tmp_path):
    with stack(tmp_path, house_style="strict") as s:
        asset, deliver_dir = bundled(s)
        (deliver_dir / "en.vtt").write_text(OUT_OF_STYLE)
        assert take(s) == [0, 1]  # stored, to fail with its reason in the job
        errors = (deliver_dir / "ERRORS.txt").read_text().splitlines()
        assert errors[:7] == [
            "THE FILES IN THIS FOLDER",
            "  en.vtt: refused: 2 problems, listed below",
            "",
            "PROBLEMS",
            "en.vtt, line 4: house style, characters per line: cue 1: a line of 55 "
            "characters (at most 42)",
            "en.vtt, line 8: house style, characters per second: cue 2: 30.0 characters "
            "per second (at most 20)",
            "",
        ]
        s.drain()
        assert track_writes(s.sim) == [] and s.sim.tracks(asset, "en", False) == []
        [job] = delivered_job(s.sim, "FAILED")
        assert "house style, characters per line" in job["error_message"]
        assert not (deliver_dir / "RECEIPT.json").exists()
        readme = (deliver_dir / "README.txt").read_text()
        assert "REFUSED" in readme


def test_a_delivered_track_notes_reach_its_receipt_and_its_state(tmp_path, monkeypatch):
    """What captions.read notes on the way (here: a start-timecode shift,
    which the captions library decides) is said in RECEIPT.json and ERRORS.txt."""
    note = "times counted from the start timecode 10:00:00:00"
    seen_media = []
    read = captions.read

    def noting(filename, data, media):
        seen_media.append(media)
        track = read(filename, data, media)
        return dataclasses.replace(track, notes=(note,))

    monkeypatch.setattr(captions, "read", noting)
    with stack(tmp_path) as s:
        _asset, deliver_dir = bundled(s)
        (deliver_dir / "en.vtt").write_text(OUT_OF_STYLE)
        (deliver_dir / "fr.vtt").write_text(OUT_OF_STYLE)
        assert take(s) == [0, 2]
        s.drain()
        # The scan and the task both passed the media's facts, as Iconik gave them.
        assert captions.Media(10.0, "10:00:00:00", "25") in seen_media
        receipt = json.loads((deliver_dir / "RECEIPT.json").read_text())
        assert [d["notes"] for d in receipt["deliveries"]] == [[note], [note]]
        (deliver_dir / "de.txt").write_text("keeps ERRORS.txt there")
        take(s, 2)
        errors = (deliver_dir / "ERRORS.txt").read_text()
        assert f"  en.vtt: delivered at 2027-01-15 08:00:00 UTC; {note}\n" in errors


@pytest.mark.slow
def test_readme_follows_the_scan_interval(tmp_path):
    with stack(tmp_path, deliver_scan_seconds=10) as s:
        asset, deliver_dir = bundled(s)
        readme = deliver_dir / "README.txt"
        assert "every 10 seconds" in readme.read_text()
        assert take(s, 2) == [0, 0]  # current: nothing to do
        revision = s.manifest(asset)["revision"]

        # The service comes back with another interval.
        s.settings = s.settings.model_copy(update={"deliver_scan_seconds": 60})
        s.scanner = rescanner(s)
        take(s, 2)
        s.drain()
        text = readme.read_text()
        assert "every minute" in text and "every 10 seconds" not in text
        m = s.manifest(asset)
        assert m["revision"] == revision + 1
        [listed] = [f for f in m["files"] if f["path"] == "deliver/README.txt"]
        assert listed["sha256"] == hashlib.sha256(text.encode()).hexdigest()
        for entry in m["files"]:  # the manifest still says exactly what is there
            data = (deliver_dir.parent / entry["path"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        take(s, 2)
        s.drain()
        assert s.manifest(asset)["revision"] == revision + 1  # once
        # It states the media's facts, and that either timing works.
        assert "start timecode 10:00:00:00, frame rate 25." in text
        assert "both work" in text


def rescanner(s):
    """The scanner of a worker process started anew, with the stack's settings."""
    return DeliverScan(
        s.scanner.queue,
        s.scanner.storage,
        clock=s.clock,
        style=s.settings.style,
        readme_every=s.settings.deliver_scan_seconds,
    )


def test_after_a_restart_a_delivered_file_is_not_said_to_be_waiting(tmp_path):
    with stack(tmp_path) as s:
        _asset, deliver_dir = bundled(s)
        (deliver_dir / "en.vtt").write_text(OUT_OF_STYLE)
        assert take(s) == [0, 1]
        s.drain()
        s.scanner = rescanner(s)  # remembers no look at any file
        (deliver_dir / "fr.vtt").write_text(OUT_OF_STYLE)
        assert take(s, 1) == [0]
        errors = (deliver_dir / "ERRORS.txt").read_text()
        assert errors == (
            "THE FILES IN THIS FOLDER\n"
            "  en.vtt: delivered at 2027-01-15 08:00:00 UTC\n"
            f"  fr.vtt: waiting (seen at {hms(s)} UTC, still changing)\n"
        )


@pytest.mark.slow
def test_readme_rewrites_are_asked_a_few_at_a_time(tmp_path, monkeypatch):
    from service.deliver.outtray_files import ReadmeCheck

    def readme_requests(s):
        db = sqlite3.connect(s.settings.sqlite_path)
        try:
            return db.execute("SELECT COUNT(*) FROM requests WHERE kind = 'readme'").fetchone()[0]
        finally:
            db.close()

    with stack(tmp_path, deliver_scan_seconds=10) as s:
        s.send(custom_action_body(asset_ids=[s.seeded.normal, s.seeded.traversal_title]))
        s.drain()
        monkeypatch.setattr(ReadmeCheck, "PER_LOOK", 1)
        s.settings = s.settings.model_copy(update={"deliver_scan_seconds": 60})
        s.scanner = rescanner(s)
        assert [(s.scan(), readme_requests(s))[1] for _ in range(3)] == [1, 2, 2]
        s.drain()
        for asset in (s.seeded.normal, s.seeded.traversal_title):
            assert "every minute" in (s.bundle_dir(asset) / "deliver" / "README.txt").read_text()


@pytest.mark.slow
def test_workers_with_other_intervals_do_not_rewrite_readme_back_and_forth(tmp_path):
    """During a rolling change, a scan with the new interval asks; a worker
    still on the old one does not write its own text in return."""
    with stack(tmp_path, deliver_scan_seconds=10) as s:
        asset, deliver_dir = bundled(s)
        before = (deliver_dir / "README.txt").read_bytes()
        revision = s.manifest(asset)["revision"]
        s.scanner = DeliverScan(
            s.scanner.queue, s.scanner.storage, clock=s.clock, readme_every=60
        )  # the workers (s.drain) still run with 10 seconds
        for _ in range(3):
            s.scan()
            s.drain()
        assert (deliver_dir / "README.txt").read_bytes() == before
        assert s.manifest(asset)["revision"] == revision
        db = sqlite3.connect(s.settings.sqlite_path)
        try:
            asked = db.execute("SELECT COUNT(*) FROM requests WHERE kind = 'readme'").fetchone()
        finally:
            db.close()
        assert asked == (1,)  # asked once for this revision, not at every look


@pytest.mark.slow
def test_a_file_timed_from_the_start_timecode_reaches_iconik_timed_from_zero(tmp_path):
    """The asset starts at 10:00:00:00 (as Iconik's proxy says) and lasts 10 s:
    a file timed from its timecode is shifted, delivered, and said so."""
    with stack(tmp_path) as s:
        asset, deliver_dir = bundled(s)
        timed = "WEBVTT\n\n10:00:01.000 --> 10:00:02.500\nFrom the timecode.\n"
        (deliver_dir / "en.vtt").write_text(timed)
        assert take(s) == [0, 1]
        s.drain()
        sent = s.sim.assets[asset].webvtt[("en", False)]
        assert "00:00:01.000 --> 00:00:02.500" in sent and "10:00:01" not in sent
        receipt = json.loads((deliver_dir / "RECEIPT.json").read_text())
        note = "times counted from the start timecode 10:00:00:00"
        assert note in receipt["deliveries"][-1]["notes"]
