"""Finished captions dropped in deliver/ go back to the Iconik asset.

The whole product on loopback (tests/support/stack.py): the simulator over real
HTTP, the real SQLite queue, a real bundle folder, the worker and the
deliver/ scan driven one step at a time.
"""

import functools
import hashlib
import json
import signal
import sqlite3

import anyio
import httpx2
import jsonschema
import pytest

from service.__main__ import main
from service.metrics import Metrics
from simulator import Blob, Simulator, sample_video
from tests.support.deliver import (
    BROKEN_DE,
    EN_VTT,
    cues_of,
    delivered_job,
    hms,
    take,
    track_writes,
)
from tests.support.iconik_api import operation_for, operations, request_schema
from tests.support.servers import running, service_env, service_process
from tests.support.service import (
    ICONIK_TOKEN,
    PAYLOAD_AUTH_TOKEN,
    custom_action_body,
    make_settings,
    signed,
    webhook_body,
)
from tests.support.stack import APP_ID, stack, with_worker

FR_CC_SRT = (
    "1\r\n"
    "00:00:00,120 --> 00:00:01,045\r\n"
    "[Musique]\r\n"
    "Bienvenue à bord,\r\n"
    "mes amis.\r\n"
    "\r\n"
    "2\r\n"
    "00:00:03,000 --> 00:00:04,999\r\n"
    "Fin.\r\n"
)


def stored_deliveries(settings):
    db = sqlite3.connect(settings.sqlite_path)
    try:
        return db.execute("SELECT COUNT(*) FROM requests WHERE kind = 'deliver'").fetchone()[0]
    finally:
        db.close()


@pytest.mark.slow
def test_a_webvtt_file_becomes_the_assets_english_track(tmp_path):
    with stack(tmp_path) as s:
        asset = s.seeded.normal
        s.send(custom_action_body(asset_ids=[asset]))
        s.drain()
        folder = s.bundle_dir(asset)
        [before] = s.sim.tracks(asset, "en", False)
        dropped = folder / "deliver" / "en.vtt"
        dropped.write_text(EN_VTT)

        assert take(s) == [0, 1]  # first look: maybe still copying; second: taken
        s.drain()

        [after] = s.sim.tracks(asset, "en", False)  # replaced, not added
        assert after["id"] == before["id"]
        assert cues_of(s.sim.assets[asset].webvtt[("en", False)]) == cues_of(EN_VTT)
        assert track_writes(s.sim) == [
            ("PUT", f"/API/files/v1/assets/{asset}/subtitles/{before['id']}/")
        ]
        assert s.sim.tracks(asset, "en", True) == []  # en closed captions untouched
        assert dropped.read_text() == EN_VTT  # the captioner's file, byte for byte

        receipt = json.loads((folder / "deliver" / "RECEIPT.json").read_text())
        entry = {
            "path": "deliver/en.vtt",
            "sha256": hashlib.sha256(EN_VTT.encode()).hexdigest(),
            "language": "en",
            "closed_captions": False,
            "subtitle_id": before["id"],
            "delivered_at": "2027-01-15T08:00:00+00:00",
            # The house style's findings, counted: delivered all the same.
            "house_style": {"chars_per_second": 1, "short_cue": 1, "gap": 1},
        }
        assert receipt == {"deliveries": [entry]}
        m = s.manifest(asset)
        assert m["deliveries"] == [entry] and m["revision"] == 2
        for listed in m["files"]:  # still exactly what the manifest says
            data = (folder / listed["path"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == listed["sha256"]
        # Until the next look, ERRORS.txt says the file is being checked;
        # that look finds every file delivered and removes it.
        assert "en.vtt: checking" in (folder / "deliver" / "ERRORS.txt").read_text()
        assert take(s, 1) == [0]
        assert not (folder / "deliver" / "ERRORS.txt").exists()
        [job] = delivered_job(s.sim, "FINISHED")
        # The title as the service wrote it into the folder's name: nothing a
        # captioner can edit (project.json) reaches Iconik's job list.
        assert job["title"] == "Captions delivered: Harbour Lights_ Episode 1 (en)"
        assert job["object_id"] == asset

        # The same bytes again, even saved anew, are not sent again.
        assert take(s, 3) == [0, 0, 0]
        dropped.write_text(EN_VTT)
        assert take(s) == [0, 0]
        s.drain()
        assert len(track_writes(s.sim)) == 1

        # Changed content goes again, and still one English track remains.
        changed = EN_VTT.replace("never sleeps", "never, ever sleeps")
        dropped.write_text(changed)
        assert take(s) == [0, 1]
        s.drain()
        assert len(s.sim.tracks(asset, "en", False)) == 1
        assert cues_of(s.sim.assets[asset].webvtt[("en", False)]) == cues_of(changed)
        receipt = json.loads((folder / "deliver" / "RECEIPT.json").read_text())
        assert [d["sha256"] for d in receipt["deliveries"]] == [
            entry["sha256"],
            hashlib.sha256(changed.encode()).hexdigest(),
        ]
        assert s.manifest(asset)["revision"] == 3
        assert stored_deliveries(s.settings) == 2


@pytest.mark.slow
def test_closed_captions_in_srt_arrive_as_a_new_webvtt_track_and_survive_a_refresh(tmp_path):
    with stack(tmp_path) as s:
        video = sample_video()
        sim_asset = s.sim.add_asset("deliverable", "Harbour Lights: Extras", duration_ms=5000)
        s.sim.add_proxy(sim_asset, name="extras.mp4", blob=Blob(len(video), video))
        asset = sim_asset.asset["id"]
        s.send(custom_action_body(asset_ids=[asset]))
        s.drain()
        folder = s.bundle_dir(asset)
        (folder / "deliver" / "fr.cc.srt").write_bytes(FR_CC_SRT.encode())
        assert take(s) == [0, 1]
        s.drain()

        [track] = s.sim.tracks(asset, "fr", True)
        assert s.sim.tracks(asset, "fr", False) == []
        sent = s.sim.assets[asset].webvtt[("fr", True)]
        assert sent.startswith("WEBVTT")
        assert (
            cues_of(sent)
            == cues_of(FR_CC_SRT, "srt")
            == [
                (120, 1045, "[Musique]\nBienvenue à bord,\nmes amis."),
                (3000, 4999, "Fin."),
            ]
        )
        [fmt] = s.sim.formats.values()
        assert fmt["id"] == track["format_id"] and fmt["name"] == "SUBTITLES"
        assert fmt["metadata"] == [{"subtitle_language": "fr", "subtitle_closed_captions": "true"}]
        for method, path, body in s.sim.bodies:  # every write is what Iconik's spec accepts
            key = operation_for(method, path)
            if "/formats/" in key or "/subtitles/" in key or key.endswith("/jobs/"):
                jsonschema.validate(body, request_schema(operations()[key]["request"]))

        # Iconik tells of the new subtitle; the refresh brings the track into
        # captions/ and leaves deliver/ and the record of deliveries as they are.
        before = {p.name: p.read_bytes() for p in (folder / "deliver").iterdir()}
        deliveries = s.manifest(asset)["deliveries"]
        s.webhook(webhook_body(object_id=asset, operation="update", realm="subtitles"))
        s.drain()
        m = s.manifest(asset)
        assert m["revision"] == 3 and m["deliveries"] == deliveries
        assert {p.name: p.read_bytes() for p in (folder / "deliver").iterdir()} == before
        assert cues_of((folder / "captions" / "fr.cc.vtt").read_text()) == cues_of(sent)
        assert cues_of((folder / "captions" / "fr.cc.srt").read_text(), "srt") == cues_of(sent)
        assert take(s) == [0, 0]  # and nothing goes again


@pytest.mark.slow
def test_a_broken_file_is_refused_at_its_line_and_left_alone(tmp_path, monkeypatch, capsys):
    with stack(tmp_path) as s:
        asset = s.seeded.normal
        click = s.send(custom_action_body(asset_ids=[asset]))
        s.drain()
        deliver = s.bundle_dir(asset) / "deliver"
        (deliver / "de.vtt").write_text(BROKEN_DE)
        (deliver / "notes.docx").write_bytes(b"PK\x03\x04")
        assert take(s, 1) == [0]
        # At the first look: the name is not a track's, the caption file waits.
        first = (deliver / "ERRORS.txt").read_text()
        assert f"  de.vtt: waiting (seen at {hms(s)} UTC, still changing)\n" in first
        assert "\nnotes.docx: not a name the service delivers" in first
        assert take(s, 1) == [1]
        errors = (deliver / "ERRORS.txt").read_text().splitlines()
        assert errors[:7] == [
            "THE FILES IN THIS FOLDER",
            "  de.vtt: refused: 1 problem, listed below",
            "  notes.docx: not delivered",
            "",
            "PROBLEMS",
            "de.vtt, line 7: the cue ends (00:00:01.200) before it starts (00:00:01.500)",
            errors[6],
        ]
        assert errors[6].startswith("notes.docx: not a name the service delivers")
        s.drain()

        assert track_writes(s.sim) == []  # nothing reached Iconik
        assert "de" not in {t["language"] for t in s.sim.assets[asset].subtitles}
        assert (deliver / "de.vtt").read_text() == BROKEN_DE
        assert (deliver / "notes.docx").read_bytes() == b"PK\x03\x04"
        assert not (deliver / "RECEIPT.json").exists()
        [job] = delivered_job(s.sim, "FAILED")
        assert "line 7" in job["error_message"] and "deliver/de.vtt" in job["error_message"]

        # Operators see it with the request that made the bundle, and on its own.
        [shown] = s.status(click["request_id"])["deliveries"]
        assert (shown["file"], shown["language"], shown["state"]) == (
            "deliver/de.vtt",
            "de",
            "failed",
        )
        assert "line 7: the cue ends" in shown["error"]
        monkeypatch.setenv("QUEUE_URL", s.settings.queue_url)
        monkeypatch.setenv("BEARER_TOKENS", "t0ken")
        capsys.readouterr()  # the stack's own log lines, when nothing configured logging yet
        assert main(["status", shown["request_id"], "--json"]) == 0
        alone = json.loads(capsys.readouterr().out)
        assert alone["kind"] == "deliver" and alone["status"] == "failed"
        [listed] = alone["deliveries"]["items"]
        assert listed == {**shown, "received_at": listed["received_at"]}

        # The captioner fixes it; the error goes, the track comes.
        (deliver / "de.vtt").write_text(BROKEN_DE.replace("01.200", "01.900"))
        (deliver / "notes.docx").unlink()
        assert take(s, 1) == [0]
        # Seen at once: the fixed file waits for the next look, the error is gone.
        assert (deliver / "ERRORS.txt").read_text() == (
            f"THE FILES IN THIS FOLDER\n  de.vtt: waiting (seen at {hms(s)} UTC, still changing)\n"
        )
        assert take(s, 1) == [1]
        assert "de.vtt: checking" in (deliver / "ERRORS.txt").read_text()
        s.drain()
        assert len(s.sim.tracks(asset, "de", False)) == 1
        s.scan()
        assert not (deliver / "ERRORS.txt").exists()


def test_a_file_growing_in_two_steps_is_delivered_only_whole(tmp_path):
    with stack(tmp_path) as s:
        asset = s.seeded.normal
        s.send(custom_action_body(asset_ids=[asset]))
        s.drain()
        dropped = s.bundle_dir(asset) / "deliver" / "en.vtt"
        half = len(EN_VTT) // 2
        dropped.write_text(EN_VTT[:half])
        assert s.scan().queued == 0
        with dropped.open("a") as more:
            more.write(EN_VTT[half:])
        assert take(s) == [0, 1]  # the second look at the whole file takes it
        s.drain()
        assert stored_deliveries(s.settings) == 1
        assert cues_of(s.sim.assets[asset].webvtt[("en", False)]) == cues_of(EN_VTT)


@pytest.mark.slow
def test_a_withdrawn_bundle_delivers_nothing_and_says_why(tmp_path):
    with stack(tmp_path) as s:
        asset = s.seeded.normal
        s.send(custom_action_body(asset_ids=[asset]))
        s.drain()
        deliver = s.bundle_dir(asset) / "deliver"
        (deliver / "fr.srt").write_text(FR_CC_SRT)  # delivered before the withdrawal
        assert take(s) == [0, 1]
        s.drain()
        s.sim.delete_asset(asset)
        s.webhook(webhook_body(object_id=asset, operation="delete", request_id="gone-1"))
        s.drain()
        (deliver / "en.vtt").write_text(EN_VTT)
        assert take(s, 3) == [0, 0, 0]
        s.drain()
        assert stored_deliveries(s.settings) == 1 and len(track_writes(s.sim)) == 2
        errors = (deliver / "ERRORS.txt").read_text()
        assert errors.startswith("Nothing in this folder is delivered: this project was withdrawn")
        # What was delivered before is not an error to fix; the rest is not delivered.
        assert errors.endswith(
            "THE FILES IN THIS FOLDER\n"
            "  en.vtt: not delivered: this project was withdrawn\n"
            "  fr.srt: delivered at 2027-01-15 08:00:00 UTC; before the withdrawal\n"
        )
        assert "fix it" not in errors.lower() and "PROBLEMS" not in errors
        assert (deliver / "en.vtt").read_text() == EN_VTT


@pytest.mark.slow
def test_two_files_for_one_track_and_two_scanners(tmp_path):
    with stack(tmp_path) as s:
        asset = s.seeded.normal
        s.send(custom_action_body(asset_ids=[asset]))
        s.drain()
        deliver = s.bundle_dir(asset) / "deliver"
        (deliver / "en.vtt").write_text(EN_VTT)
        (deliver / "en.srt").write_text(FR_CC_SRT)
        assert take(s) == [0, 0]
        errors = (deliver / "ERRORS.txt").read_text()
        assert "en.srt: not delivered: en.srt and en.vtt are both the en track; keep one" in errors
        (deliver / "en.srt").unlink()

        # Another worker process scans too: the delivery is stored once.
        from service.deliver.scan import DeliverScan

        other = DeliverScan(s.scanner.queue, s.scanner.storage, clock=s.clock)
        original, s.scanner = s.scanner, other
        assert take(s) == [0, 1]
        s.scanner = original
        assert take(s, 1) == [0]
        assert stored_deliveries(s.settings) == 1
        s.drain()
        s.scan()
        assert not (deliver / "ERRORS.txt").exists()

        # en.srt saved beside the delivered en.vtt: en.vtt stays the delivered
        # one (as RECEIPT.json says), en.srt waits, and says why.
        (deliver / "en.srt").write_text(FR_CC_SRT)
        assert take(s) == [0, 0]
        errors = (deliver / "ERRORS.txt").read_text()
        assert errors == (
            "THE FILES IN THIS FOLDER\n"
            "  en.srt: waiting: en.vtt is the en track as delivered; to deliver en.srt "
            "instead, remove en.vtt, or remove this one\n"
            "  en.vtt: delivered at 2027-01-15 08:00:00 UTC\n"
        )
        receipt = json.loads((deliver / "RECEIPT.json").read_text())
        assert [d["path"] for d in receipt["deliveries"]] == ["deliver/en.vtt"]
        (deliver / "en.vtt").unlink()
        assert take(s) == [1, 0]  # en.srt was unchanged for two looks already
        s.drain()
        assert cues_of(s.sim.assets[asset].webvtt[("en", False)]) == cues_of(FR_CC_SRT, "srt")


@pytest.mark.slow
def test_a_delivery_iconik_keeps_refusing_fails_and_errors_say_so(tmp_path):
    with stack(tmp_path, task_max_attempts=2) as s:
        asset = s.seeded.normal
        s.send(custom_action_body(asset_ids=[asset]))
        s.drain()
        deliver = s.bundle_dir(asset) / "deliver"
        (deliver / "en.vtt").write_text(EN_VTT)
        s.sim.fail_next(f"/assets/{asset}/subtitles/", *[503] * 20)
        assert take(s) == [0, 1]
        s.drain()
        assert track_writes(s.sim) == []
        [job] = delivered_job(s.sim, "FAILED")
        assert "gave up after 2 attempts" in job["error_message"]
        s.scan()
        errors = (deliver / "ERRORS.txt").read_text()
        assert "  en.vtt: not delivered: the delivery failed, see below\n" in errors
        assert "\nen.vtt: not delivered: GET /API/files/v1/assets/" in errors
        assert "503" in errors and "request " in errors
        # Whatever failed, no credential reaches the captioners' folder or Iconik's job.
        assert ICONIK_TOKEN not in errors and ICONIK_TOKEN not in json.dumps(job)


def test_only_a_captioners_file_failing_its_checks_counts_as_refused(tmp_path):
    """A delivery Iconik turns down is `failed`, whatever Iconik's answer says;
    `refused` is the captioner's file failing its checks (CaptionRefused). Once
    told apart by the words " was refused: " in the reason, which an answer
    from Iconik quoted in it can have too."""
    with stack(tmp_path, task_max_attempts=1) as s:
        asset = s.seeded.normal
        s.send(custom_action_body(asset_ids=[asset]))
        s.drain()
        deliver = s.bundle_dir(asset) / "deliver"
        (deliver / "en.vtt").write_text(EN_VTT)
        (deliver / "de.vtt").write_text(BROKEN_DE)
        s.sim.fault_message = "the request was refused: subtitle quota exceeded"
        s.sim.fail_next(f"/assets/{asset}/subtitles/", 400)
        assert take(s) == [0, 2]
        metrics = Metrics()

        async def run_all(worker, queue):
            while await worker.run_once():
                pass

        anyio.run(functools.partial(with_worker, s.settings, s.clock, run_all, metrics=metrics))

        def counted(outcome):
            sample = "caption_bridge_caption_deliveries_total"
            return metrics.registry.get_sample_value(sample, {"outcome": outcome})

        assert (counted("refused"), counted("failed")) == (1.0, 1.0)
        failed = {j["title"][-4:]: j["error_message"] for j in delivered_job(s.sim, "FAILED")}
        assert "the request was refused: subtitle quota exceeded" in failed["(en)"]
        assert "line 7" in failed["(de)"]


@pytest.mark.slow
def test_serve_runs_the_scan_beside_the_worker(tmp_path):
    """The real `caption-bridge serve`: no test drives the scan; its own clock does."""
    sim = Simulator(APP_ID, ICONIK_TOKEN)
    sim.add_user(PAYLOAD_AUTH_TOKEN)  # whose auth_token the clicks carry
    seeded = sim.seed(large_proxy_bytes=1024)
    with running(sim.app()) as sim_url:
        settings = make_settings(tmp_path, iconik_url=sim_url)
        env = service_env(settings, tmp_path / "bundles", PORT="0", DELIVER_SCAN_SECONDS="0.2")
        with service_process("serve", env=env, cwd=tmp_path) as serve:
            port = serve.wait_for("service.listening")["port"]
            body = custom_action_body(asset_ids=[seeded.normal])
            url = f"http://127.0.0.1:{port}/iconik/custom-action"
            assert httpx2.post(url, content=body, headers=signed(body)).status_code == 202
            folder = serve.wait_for("bundle.published")["folder"]
            (tmp_path / "bundles" / folder / "deliver" / "en.vtt").write_text(EN_VTT)
            delivered = serve.wait_for("delivery.delivered")
            serve.process.send_signal(signal.SIGTERM)
            assert serve.process.wait(30) == 0
    assert delivered["path"] == "deliver/en.vtt" and delivered["asset_id"] == seeded.normal
    [started] = [
        e for e in serve.seen if isinstance(e, dict) and e["event"] == "deliver_scan.started"
    ]
    assert started["every"] == 0.2
    assert cues_of(sim.assets[seeded.normal].webvtt[("en", False)]) == cues_of(EN_VTT)
