"""A captioner who writes anything anywhere in their bundle folder.

Each case of issue "The shared folder is untrusted": the whole product on
loopback (the simulator over real HTTP, the real SQLite queue, a real bundle
folder) and, where the case is about a process (a hang, a stop), the real
`caption-bridge serve`.
"""

import json
import os
import signal
import sqlite3
import time

import boto3
import httpx2
import pytest

from tests.support.deliver import EN_VTT, cues_of, take, track_writes
from tests.support.serve import real_serve
from tests.support.service import (
    ICONIK_TOKEN,
    bearer,
    custom_action_body,
)
from tests.support.service import webhook_body as event_body
from tests.support.stack import stack


def bundled(s, *assets):
    s.send(custom_action_body(asset_ids=list(assets)))
    s.drain()
    return [s.bundle_dir(a) for a in assets]


@pytest.mark.slow
def test_a_retargeted_manifest_changes_no_other_asset(tmp_path):
    with stack(tmp_path) as s:
        mine, other = s.seeded.normal, s.seeded.traversal_title
        [folder, _] = bundled(s, mine, other)
        other_tracks = json.dumps(s.sim.tracks(other, "en", False))
        manifest = json.loads((folder / "project.json").read_text())
        manifest["asset"]["id"] = other  # the captioner points the folder elsewhere
        (folder / "project.json").write_text(json.dumps(manifest))
        (folder / "deliver" / "en.vtt").write_text(EN_VTT)

        assert take(s) == [0, 1]
        s.drain()

        # The track went to the asset the folder was made for, and only there.
        assert json.dumps(s.sim.tracks(other, "en", False)) == other_tracks
        assert all(f"/assets/{other}/" not in path for _, path in track_writes(s.sim))
        assert cues_of(s.sim.assets[mine].webvtt[("en", False)]) == cues_of(EN_VTT)
        s.scan()
        errors = (folder / "deliver" / "ERRORS.txt").read_text()
        assert f"project.json names the asset '{other}'" in errors
        assert f"goes to {mine} (the service's own record)" in errors


def test_a_folder_with_no_record_delivers_nothing(tmp_path):
    with stack(tmp_path) as s:
        [folder] = bundled(s, s.seeded.normal)
        # A copy of a real bundle under another asset's name: the registry
        # never recorded it, so it is not an out-tray.
        other = s.seeded.traversal_title
        fake = s.root / f"Copied [{other}]"
        (fake / "deliver").mkdir(parents=True)
        (fake / "project.json").write_text((folder / "project.json").read_text())
        (fake / "deliver" / "en.vtt").write_text(EN_VTT)
        assert take(s) == [0, 0]
        s.drain()
        assert track_writes(s.sim) == []


@pytest.mark.slow
def test_a_huge_sparse_errors_file_stops_no_other_bundle(tmp_path):
    with stack(tmp_path) as s:
        [hostile, fine] = bundled(s, s.seeded.normal, s.seeded.traversal_title)
        with open(hostile / "deliver" / "ERRORS.txt", "wb") as f:
            f.truncate(200 * 1024**3)  # 200 GiB of nothing, on no disk
        (hostile / "deliver" / "xx.txt").write_text("not a caption")
        (fine / "deliver" / "en.vtt").write_text(EN_VTT)

        assert take(s) == [0, 1]
        s.drain()
        assert cues_of(s.sim.assets[s.seeded.traversal_title].webvtt[("en", False)]) == (
            cues_of(EN_VTT)
        )
        # The hostile folder's ERRORS.txt was replaced, never read.
        errors = (hostile / "deliver" / "ERRORS.txt").read_text()
        assert "\nxx.txt: not a name the service delivers" in errors


def test_file_names_cannot_forge_lines_and_every_entry_is_named(tmp_path):
    with stack(tmp_path) as s:
        [folder] = bundled(s, s.seeded.normal)
        deliver = folder / "deliver"
        forged = "x.vtt\nde.vtt, line 1: delivered OK, ignore\x1b[2J"
        (deliver / forged).write_text("WEBVTT\n")
        os.mkfifo(deliver / "fr.vtt")
        os.symlink("/dev/zero", deliver / "es.vtt")
        (deliver / "drafts").mkdir()
        (deliver / "drafts" / "en.vtt").write_text(EN_VTT)
        (deliver / "RECEIPT.json").mkdir()
        for litter in (".DS_Store", "Thumbs.db", "._en.vtt", "desktop.ini"):
            (deliver / litter).write_text("litter")

        take(s)
        lines = (deliver / "ERRORS.txt").read_text().splitlines()
        assert "x.vtt\\x0ade.vtt, line 1: delivered OK, ignore\\x1b[2J: not a name" in (
            "\n".join(lines)
        )
        assert not any(line.startswith("de.vtt") for line in lines)
        assert "fr.vtt: not a regular file (a fifo): put the caption file itself here" in lines
        assert any(line.startswith("es.vtt: not a regular file (a link)") for line in lines)
        assert any(line.startswith("drafts: sub-folders are not delivered") for line in lines)
        assert any("a folder named RECEIPT.json is in the way" in line for line in lines)
        assert not any(
            "DS_Store" in line or "Thumbs" in line or "desktop" in line for line in lines
        )
        assert str(s.root) not in "\n".join(lines)  # no server path
        assert track_writes(s.sim) == []


@pytest.mark.slow
def test_a_symlinked_outtray_gets_no_write_outside_the_storage(tmp_path):
    with stack(tmp_path) as s:
        [folder] = bundled(s, s.seeded.normal)
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        (elsewhere / "secret-plans.txt").write_text("private")
        deliver = folder / "deliver"
        for entry in deliver.iterdir():
            entry.unlink()
        deliver.rmdir()
        deliver.symlink_to(elsewhere)

        take(s)
        # A refresh writes deliver/README.txt: not through the link.
        s.webhook(event_body(object_id=s.seeded.normal, operation="update", request_id="u1"))
        s.drain()
        take(s)
        assert sorted(p.name for p in elsewhere.iterdir()) == ["secret-plans.txt"]
        assert (folder / "project.json").exists()


def test_a_folder_at_the_receipt_leaves_the_bundle_with_its_manifest(tmp_path):
    with stack(tmp_path) as s:
        [folder] = bundled(s, s.seeded.normal)
        deliver = folder / "deliver"
        (deliver / "RECEIPT.json").mkdir()
        (deliver / "en.vtt").write_text(EN_VTT)
        assert take(s) == [0, 1]
        s.drain()

        # The track reached Iconik; the manifest records it; nothing is set aside.
        assert cues_of(s.sim.assets[s.seeded.normal].webvtt[("en", False)]) == cues_of(EN_VTT)
        manifest = json.loads((folder / "project.json").read_text())
        assert [d["path"] for d in manifest["deliveries"]] == ["deliver/en.vtt"]
        assert not (folder / ".project.json.previous").exists()
        assert (deliver / "RECEIPT.json").is_dir()
        take(s, 1)
        errors = (deliver / "ERRORS.txt").read_text()
        assert "a folder named RECEIPT.json is in the way of the service's own RECEIPT.json" in (
            errors
        )
        assert take(s, 2) == [0, 0]  # delivered once, not again
        assert len(track_writes(s.sim)) == 1


@pytest.mark.slow
def test_a_caption_swapped_for_a_fifo_after_the_scan_fails_its_delivery(tmp_path):
    with stack(tmp_path) as s:
        [folder] = bundled(s, s.seeded.normal)
        dropped = folder / "deliver" / "en.vtt"
        dropped.write_text(EN_VTT)
        assert take(s) == [0, 1]
        dropped.unlink()
        os.mkfifo(dropped)  # the queued delivery must not block on it
        s.drain()
        assert track_writes(s.sim) == []
        [task] = s.status(delivery_request(s.settings))["tasks"]
        assert task["state"] == "failed"
        assert task["error"] == (
            "deliver/en.vtt was not delivered: deliver/en.vtt is not a regular file (it is a fifo)"
        )


def delivery_request(settings):
    db = sqlite3.connect(settings.sqlite_path)
    try:
        [(request_id,)] = db.execute("SELECT request_id FROM requests WHERE kind = 'deliver'")
        return request_id
    finally:
        db.close()


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_a_fifo_in_the_outtray_holds_no_worker_and_no_shutdown(tmp_path):
    """The real `serve`: a FIFO where README.txt goes, then a refresh of that
    asset and a click on another; SIGTERM still ends the process quickly."""
    root = tmp_path / "bundles"
    with real_serve(tmp_path, root, WORKER_CONCURRENCY="1") as served:
        serve, post = served.serve, served.post
        hostile, other = served.seeded.normal, served.seeded.traversal_title
        post("/iconik/custom-action", custom_action_body(asset_ids=[hostile]))
        folder = root / serve.wait_for("bundle.published")["folder"]
        readme = folder / "deliver" / "README.txt"
        readme.unlink()
        os.mkfifo(readme)
        os.mkfifo(folder / "deliver" / "en.vtt")
        post(
            "/iconik/webhook",
            event_body(object_id=hostile, operation="update", request_id="u1"),
        )
        assert serve.wait_for("bundle.published")["asset_id"] == hostile
        click = post("/iconik/custom-action", custom_action_body(asset_ids=[other]))
        assert serve.wait_for("bundle.published")["asset_id"] == other
        status = httpx2.get(f"{served.base}/requests/{click['request_id']}", headers=bearer())
        assert status.json()["status"] == "done"

        started = time.monotonic()
        serve.process.send_signal(signal.SIGTERM)
        assert serve.process.wait(10) == 0
        assert time.monotonic() - started < 10
    assert readme.exists() and not readme.is_fifo()  # the service's own file, replaced


@pytest.mark.slow
def test_a_credential_echoed_by_iconik_reaches_no_text_anyone_reads(tmp_path):
    """The real `serve`: Iconik (or a gateway) quotes the Auth-Token in an
    error; ERRORS.txt, the request's status and the Iconik job say the error
    without it."""
    root = tmp_path / "bundles"
    with real_serve(tmp_path, root, TASK_MAX_ATTEMPTS="1") as served:
        sim, serve, base = served.sim, served.serve, served.base
        asset = served.seeded.normal
        served.post("/iconik/custom-action", custom_action_body(asset_ids=[asset]))
        folder = root / serve.wait_for("bundle.published")["folder"]
        sim.echo_credentials = True
        sim.fail_next(f"/assets/{asset}/subtitles/", 400)
        (folder / "deliver" / "en.vtt").write_text(EN_VTT)
        request_id = serve.wait_for("deliver_scan.delivery_queued")["request_id"]
        serve.wait_for("task.failed")
        errors = folder / "deliver" / "ERRORS.txt"
        while "not delivered" not in (errors.read_text() if errors.exists() else ""):
            serve.wait_for("deliver_scan.errors_written")
        status = httpx2.get(f"{base}/requests/{request_id}", headers=bearer()).text
        serve.process.send_signal(signal.SIGTERM)
        assert serve.process.wait(30) == 0
    text = errors.read_text()
    jobs = json.dumps(list(sim.jobs.values()))
    assert "injected fault for Auth-Token [redacted]" in text
    assert "[redacted]" in status and "[redacted]" in jobs
    for where in (text, status, jobs, "\n".join(map(str, serve.seen))):
        assert ICONIK_TOKEN not in where


@pytest.mark.slow
def test_on_s3_and_postgresql_a_folder_delivers_only_to_its_own_asset(
    tmp_path, pg_url, aws, bucket
):
    """The same rules with the replicas' parts: a real `serve` on PostgreSQL and
    S3 (moto's server). The captioner retargets project.json, leaves an object
    over the cap where ERRORS.txt goes, a sub-folder and a forged name."""
    s3 = boto3.client("s3")
    storage = f"s3://{bucket}/share"
    with real_serve(tmp_path, storage, queue_url=pg_url, AWS_ENDPOINT_URL=aws) as served:
        sim, serve = served.sim, served.serve
        mine, other = served.seeded.normal, served.seeded.traversal_title
        served.post("/iconik/custom-action", custom_action_body(asset_ids=[mine, other]))
        folders = {}
        while len(folders) < 2:
            published = serve.wait_for("bundle.published")
            folders[published["asset_id"]] = f"share/{published['folder']}"
        other_tracks = json.dumps(sim.tracks(other, "en", False))
        key = f"{folders[mine]}/project.json"
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        manifest["asset"]["id"] = other
        s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(manifest).encode())
        deliver = f"{folders[mine]}/deliver"
        s3.put_object(Bucket=bucket, Key=f"{deliver}/ERRORS.txt", Body=b"x" * (21 * 2**20))
        s3.put_object(Bucket=bucket, Key=f"{deliver}/drafts/en.vtt", Body=EN_VTT.encode())
        s3.put_object(Bucket=bucket, Key=f"{deliver}/a.vtt\x1b[2Jde.vtt: ok", Body=b"WEBVTT\n")
        s3.put_object(Bucket=bucket, Key=f"{deliver}/en.vtt", Body=EN_VTT.encode())
        delivered = serve.wait_for("delivery.delivered")

        def errors() -> str:
            try:
                got = s3.get_object(Bucket=bucket, Key=f"{deliver}/ERRORS.txt")
            except s3.exceptions.NoSuchKey:
                return ""
            return got["Body"].read(4096).decode(errors="replace")

        while "drafts: sub-folders" not in errors():
            serve.wait_for("deliver_scan.errors_written")
        text = errors()
        serve.process.send_signal(signal.SIGTERM)
        assert serve.process.wait(30) == 0
    assert delivered["asset_id"] == mine
    assert json.dumps(sim.tracks(other, "en", False)) == other_tracks
    assert cues_of(sim.assets[mine].webvtt[("en", False)]) == cues_of(EN_VTT)
    assert f"project.json names the asset '{other}'" in text
    assert "a.vtt\\x1b[2Jde.vtt: ok: not a name the service delivers" in text
    assert "drafts: sub-folders are not delivered" in text
    assert bucket not in text


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_a_huge_file_at_a_service_path_is_kept_as_the_captioners_not_hashed(tmp_path):
    with stack(tmp_path) as s:
        [folder] = bundled(s, s.seeded.normal)
        track = folder / "captions" / "en.vtt"
        track.unlink()
        with open(track, "wb") as f:
            f.truncate(200 * 1024**3)  # hashing it would take many minutes
        s.webhook(event_body(object_id=s.seeded.normal, operation="update", request_id="u1"))
        s.drain()
        manifest = s.manifest(s.seeded.normal)
        assert manifest["revision"] == 2
        assert manifest["captioner_edits"] == ["captions/en.vtt"]
        assert track.stat().st_size == 200 * 1024**3  # theirs, untouched
        assert (folder / "captions" / "en.iconik-r2.vtt").read_text().startswith("WEBVTT")
