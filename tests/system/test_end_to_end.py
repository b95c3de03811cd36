"""From a signed "Send to Captioning" to bundles on disk, over real HTTP."""

import hashlib
import json
import re

import anyio
import httpx2
import pytest

from service.work.gather import pick_proxy
from tests.support.service import PAYLOAD_AUTH_TOKEN, custom_action_body, signed
from tests.support.stack import blob_sha256, stack, with_worker


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_bulk_action_builds_a_complete_bundle_per_asset(tmp_path):
    with stack(tmp_path, allow_original_media=True) as s:
        form = {
            "notes": {"field_values": [{"value": "Names in CAPS"}]},
            "target_languages": {"field_values": [{"value": "en"}, {"value": "fr"}]},
        }
        answer = s.send(
            custom_action_body(context="BULK", asset_ids=s.seeded.all, metadata_values=form)
        )
        s.drain()
        status = s.status(answer["request_id"])
        assert status["status"] == "done", status
        assert sorted(t["asset_id"] for t in status["tasks"] if t["kind"] == "build") == sorted(
            s.seeded.all
        )

        normal = s.bundle_dir(s.seeded.normal)
        m = s.manifest(s.seeded.normal)
        assert normal.name == f"Harbour Lights_ Episode 1 [{s.seeded.normal}]"
        assert m["schema"] == "caption-bundle/1" and m["status"] == "ready"
        assert m["revision"] == 1
        assert m["asset"]["id"] == s.seeded.normal
        assert m["asset"]["title"] == "Harbour Lights: Episode 1"
        assert m["asset"]["version_id"]
        assert m["asset"]["duration_seconds"] == 2.0
        assert m["asset"]["frame_rate"] == "25"
        assert m["asset"]["start_timecode"] == "10:00:00:00"
        assert m["asset"]["metadata"] == {
            "Description": "Pilot episode, final cut",
            "Genre": ["Drama", "Coastal"],
        }
        assert m["asset"]["web_url"] == f"{s.sim_url}/asset/{s.seeded.normal}"
        assert m["request"]["request_id"] == answer["request_id"]
        assert m["request"]["action_id"] and m["request"]["requested_by"]
        assert m["request"]["requested_at"].startswith("2026-11-20T10:00:00")
        assert m["request"]["form_values"] == {
            "notes": "Names in CAPS",
            "target_languages": ["en", "fr"],
        }
        assert PAYLOAD_AUTH_TOKEN not in json.dumps(m)

        paths = {f["path"]: f for f in m["files"]}
        assert set(paths) == {
            "media/harbour_lights_ep1_720p.mp4",
            "captions/en.vtt",
            "captions/en.srt",
            "captions/fr.cc.vtt",
            "captions/fr.cc.srt",  # made from Iconik's WebVTT, for SRT-only tools
            "deliver/README.txt",
            "index.html",
        }
        for entry in m["files"]:  # every recorded size and hash is the file's
            on_disk = normal / entry["path"]
            assert on_disk.stat().st_size == entry["size"]
            assert sha256(on_disk) == entry["sha256"]
        proxy = next(
            p
            for p in s.sim.assets[s.seeded.normal].proxies
            if p["height" if False else "resolution"]["height"] == 720
        )
        assert paths["media/harbour_lights_ep1_720p.mp4"]["sha256"] == blob_sha256(
            s.sim, f"proxies/{proxy['id']}"
        )
        assert (normal / "captions/en.vtt").read_text() == (
            s.sim.assets[s.seeded.normal].webvtt[("en", False)]
        )
        assert (normal / "captions/fr.cc.vtt").read_text() == (
            s.sim.assets[s.seeded.normal].webvtt[("fr", True)]
        )
        assert (normal / "captions/en.srt").read_text().startswith("1\n00:00:00,000 -->")
        assert paths["captions/en.srt"]["source"] == "srt"  # Iconik's own, fetched
        assert paths["captions/fr.cc.srt"]["source"] == "webvtt"
        assert (normal / "captions/fr.cc.srt").read_text() == (
            "1\n00:00:00,000 --> 00:00:00,900\n[Musique]\n\n"
            "2\n00:00:01,000 --> 00:00:01,900\nBienvenue à bord.\n"
        )
        readme = (normal / "deliver/README.txt").read_text()
        assert "fr.cc.vtt" in readme and "RECEIPT.json" in readme and "ERRORS.txt" in readme
        assert m["deliveries"] == []
        assert PAYLOAD_AUTH_TOKEN not in (normal / "index.html").read_text()

        # The large proxy streamed through intact; the 2160p one was over the cap.
        large = s.manifest(s.seeded.large)
        [media] = [f for f in large["files"] if f["kind"] == "media"]
        assert media["path"] == "media/feature_1080p.mp4"
        assert media["size"] == 3 * 1024 * 1024
        large_proxy = s.sim.assets[s.seeded.large].proxies[0]
        assert media["sha256"] == blob_sha256(s.sim, f"proxies/{large_proxy['id']}")

        # The hostile title stays one folder inside the root.
        traversal = s.bundle_dir(s.seeded.traversal_title)
        assert traversal.parent == s.root
        assert traversal.resolve().is_relative_to(s.root.resolve())
        assert (traversal / "media" / "escape.mp4").is_file()

        # The original-only asset fell back to its original file.
        original = s.manifest(s.seeded.original_only)
        assert [f["source"] for f in original["files"] if f["kind"] == "media"] == ["original"]
        # Waiting for its proxy cost no subtitle calls, and the fallback listed them once.
        subtitle_lists = [
            p
            for _, p in s.sim.requests
            if p == f"/API/files/v1/assets/{s.seeded.original_only}/subtitles/"
        ]
        assert len(subtitle_lists) == 1

        # Nothing half-built is left around; only complete bundles are visible.
        assert sorted(p.name for p in s.root.iterdir() if p.name.startswith(".")) == [".staging"]
        assert list((s.root / ".staging").iterdir()) == []
        assert all(
            (p / "project.json").exists() for p in s.root.iterdir() if not p.name.startswith(".")
        )


def test_transcoding_asset_waits_without_spending_attempts_then_completes(tmp_path):
    with stack(tmp_path) as s:
        answer = s.send(custom_action_body(asset_ids=[s.seeded.transcoding]))
        assert s.run_once()  # expand
        assert s.run_once()  # first build: proxy still OPEN
        [task] = [t for t in s.status(answer["request_id"])["tasks"] if t["kind"] == "build"]
        assert task["state"] == "queued"
        assert task["attempts"] == 0
        assert "waiting for Iconik to finish the proxy" in task["error"]
        assert s.seeded.transcoding in task["error"]
        s.drain()
        [task] = [t for t in s.status(answer["request_id"])["tasks"] if t["kind"] == "build"]
        assert task["state"] == "done" and task["error"] is None
        assert s.manifest(s.seeded.transcoding)["status"] == "ready"


def test_no_proxy_and_no_fallback_fails_with_a_reason_naming_the_asset(tmp_path):
    with stack(tmp_path, allow_original_media=False, proxy_wait_seconds=30) as s:
        answer = s.send(custom_action_body(asset_ids=[s.seeded.original_only]))
        s.drain()
        status = s.status(answer["request_id"])
        [task] = [t for t in status["tasks"] if t["kind"] == "build"]
        assert task["state"] == "failed"
        assert s.seeded.original_only in task["error"]
        assert "ALLOW_ORIGINAL_MEDIA" in task["error"]
        assert status["status"] == "failed"
        assert not list(s.root.glob(f"*[[]{s.seeded.original_only}[]]"))


@pytest.mark.parametrize(
    ("click_rights", "reason"),
    [
        ("user", "the user who clicked may not read this asset in Iconik (or it is gone)"),
        ("application", "not found in Iconik"),
    ],
)
def test_deleted_asset_fails_with_a_readable_reason(tmp_path, click_rights, reason):
    with stack(tmp_path, click_rights=click_rights) as s:
        s.sim.delete_asset(s.seeded.normal)
        answer = s.send(custom_action_body(asset_ids=[s.seeded.normal, s.seeded.large]))
        s.drain()
        errors = {
            t["asset_id"]: t["error"]
            for t in s.status(answer["request_id"])["tasks"]
            if t["kind"] == "build"
        }
        assert reason in errors[s.seeded.normal] and errors[s.seeded.large] is None
        # An id that is not an Iconik id never gets that far: refused at intake.
        bad = custom_action_body(asset_ids=[s.seeded.normal, "not/an-id"])
        refused = httpx2.post(s.app_url + "/iconik/custom-action", content=bad, headers=signed(bad))
        assert refused.status_code == 400 and "not an Iconik id" in refused.json()["detail"]


def test_iconik_errors_are_retried_and_the_bundle_still_completes(tmp_path):
    with stack(tmp_path) as s:
        s.sim.fail_next("/subtitles/", 500, 429, 502)
        s.sim.fail_next(f"/assets/{s.seeded.normal}/", 503)
        answer = s.send(custom_action_body(asset_ids=[s.seeded.normal]))
        s.drain()
        assert s.status(answer["request_id"])["status"] == "done"
        assert s.sim.faults["/subtitles/"] == []


def test_wrong_iconik_token_is_retried_with_a_message_then_fails(tmp_path):
    with stack(tmp_path, task_max_attempts=2) as s:
        s.sim.auth_token = "rotated-in-iconik"
        answer = s.send(custom_action_body(asset_ids=[s.seeded.normal]))
        s.drain()
        [task] = [t for t in s.status(answer["request_id"])["tasks"] if t["kind"] == "build"]
        assert task["state"] == "failed" and task["attempts"] == 2
        assert "check ICONIK_APP_ID and ICONIK_AUTH_TOKEN" in task["error"]


@pytest.mark.slow
def test_second_request_refreshes_the_same_folder(tmp_path):
    with stack(tmp_path) as s:
        s.send(custom_action_body(asset_ids=[s.seeded.normal]))
        s.drain()
        folder = s.bundle_dir(s.seeded.normal)
        (folder / "captions" / "my-notes.txt").write_text("captioner's own file")
        s.sim.add_subtitle(
            s.sim.assets[s.seeded.normal], "de", "WEBVTT\n\n00:00.000 --> 00:01.000\nHallo\n"
        )
        s.send(custom_action_body(asset_ids=[s.seeded.normal], date_created="2026-11-21T09:00"))
        s.drain()
        m = s.manifest(s.seeded.normal)
        assert m["revision"] == 2
        assert "captions/de.vtt" in {f["path"] for f in m["files"]}
        assert (folder / "captions" / "my-notes.txt").read_text() == "captioner's own file"
        assert [p.name for p in s.root.iterdir() if not p.name.startswith(".")] == [folder.name]


def test_no_secret_reaches_a_log_event_in_the_worker(tmp_path):
    import structlog

    from tests.support.service import BEARER, CURRENT_SECRET, ICONIK_TOKEN

    with (
        stack(
            tmp_path, allow_original_media=False, proxy_wait_seconds=10, task_max_attempts=2
        ) as s,
        structlog.testing.capture_logs() as events,
    ):
        s.sim.fail_next("/subtitles/", 500, 429)
        s.send(custom_action_body(context="BULK", asset_ids=s.seeded.all))
        s.drain()
        s.sim.auth_token = "rotated"  # every call now 401
        s.send(custom_action_body(asset_ids=[s.seeded.normal], date_created="2026-11-21"))
        s.drain()
    dumped = json.dumps(events, default=str)
    assert any(e["event"] == "bundle.published" for e in events)
    assert any(e["event"] == "task.failed" for e in events)
    for secret in (ICONIK_TOKEN, BEARER, CURRENT_SECRET, PAYLOAD_AUTH_TOKEN):
        assert secret not in dumped


def test_a_refused_signed_url_is_reported_plainly_and_retried_with_a_fresh_one(tmp_path):
    import structlog

    from tests.support.service import ICONIK_TOKEN

    with stack(tmp_path) as s, structlog.testing.capture_logs() as events:
        asset_id = s.seeded.normal
        [proxy] = [p for p in s.sim.assets[asset_id].proxies if p["format"] == "MP4"]
        s.sim.fail_storage_next(f"proxies/{proxy['id']}", 403)  # the signature expired
        answer = s.send(custom_action_body(asset_ids=[asset_id]))
        assert s.run_once()  # expand
        assert s.run_once()  # build: storage refuses the signed URL

        status = s.status(answer["request_id"])
        [task] = [t for t in status["tasks"] if t["kind"] == "build"]
        assert task["state"] == "queued" and task["attempts"] == 1
        assert task["error"] == (
            f"signed storage URL expired or refused (HTTP 403) for the proxy of asset "
            f"{asset_id}; retrying with a fresh one"
        )
        shown = json.dumps(status) + json.dumps(events, default=str)
        for leak in (ICONIK_TOKEN, "ICONIK_AUTH_TOKEN", "Signature="):
            assert leak not in shown

        s.drain()
        assert s.status(answer["request_id"])["status"] == "done"
        [media] = [f for f in s.manifest(asset_id)["files"] if f["kind"] == "media"]
        assert media["sha256"] == blob_sha256(s.sim, f"proxies/{proxy['id']}")
        # The retry asked Iconik for a fresh signed URL rather than reusing the
        # refused one: the search of the click's assets again, which carries
        # each proxy's signed `url` (so no download_url/ call is ever needed).
        searches = [ids for who, ids in s.sim.searches if who == "application"]
        assert searches == [[asset_id], [asset_id]]
        assert not [p for _, p in s.sim.requests if p.endswith("/download_url/")]


@pytest.mark.slow
def test_faults_read_plainly_in_the_request_status(tmp_path):
    with stack(tmp_path, large_proxy_bytes=1024 * 1024) as s:
        assets = [s.seeded.normal, s.seeded.large]
        for asset_id in assets:  # whichever build runs, its download is cut short
            proxy = pick_proxy(s.sim.assets[asset_id].proxies, 1080)
            s.sim.cut_next_download(f"proxies/{proxy['id']}", after_bytes=4096)
        answer = s.send(custom_action_body(context="BULK", asset_ids=assets))
        assert s.run_once()  # expand

        async def claim_and_die(worker, queue):
            return await queue.claim("a-worker-that-was-killed")

        killed = anyio.run(with_worker, s.settings, s.clock, claim_and_die).asset_id
        assert s.run_once()  # the other build
        [cut] = [a for a in assets if a != killed]
        tasks = {t["asset_id"]: t for t in s.status(answer["request_id"])["tasks"]}
        assert tasks[cut]["state"] == "queued"
        assert tasks[cut]["error"].startswith(
            f"download of the proxy of asset {cut} from the signed storage URL"
        )
        assert re.search(r"was interrupted after \d+ (of \d+ )?bytes", tasks[cut]["error"])
        assert tasks[cut]["error"].endswith("will retry")
        assert tasks[killed]["state"] == "running"  # its lease is still live

        s.clock.now += s.settings.task_lease_seconds + 1
        stalled = {t["asset_id"]: t for t in s.status(answer["request_id"])["tasks"]}
        assert stalled[killed]["state"] == "queued"
        assert "stopped renewing the lease" in stalled[killed]["error"]

        s.drain()
        assert s.status(answer["request_id"])["status"] == "done"


def test_unwritable_bundle_storage_is_named_in_the_reason(tmp_path):
    with stack(tmp_path) as s:
        s.root.write_text("not a folder")  # where the bundles should go
        answer = s.send(custom_action_body(asset_ids=[s.seeded.normal]))
        assert s.run_once() and s.run_once()
        [build] = [t for t in s.status(answer["request_id"])["tasks"] if t["kind"] == "build"]
        assert build["state"] == "queued"
        # Named as the bundle storage, without the server's path (Iconik users read it).
        assert build["error"].startswith("the bundle storage: ")
        assert str(s.root) not in build["error"]
