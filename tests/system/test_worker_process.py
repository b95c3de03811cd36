"""`caption-bridge worker` as a real process, killed in the middle of a download."""

import hashlib
import json
import signal
import sqlite3

import anyio
import httpx2
import pytest

from service.intake.app import create_app
from simulator import Simulator
from tests.support.clock import FakeClock
from tests.support.polling import until
from tests.support.servers import running, service_env, service_process
from tests.support.service import (
    ICONIK_TOKEN,
    PAYLOAD_AUTH_TOKEN,
    custom_action_body,
    make_settings,
    signed,
)
from tests.support.stack import APP_ID, STACK_EPOCH, drain

PROXY_BYTES = 4 * 1024 * 1024


def _send(settings, asset_id):
    with running(create_app(settings)) as url:
        body = custom_action_body(asset_ids=[asset_id])
        answer = httpx2.post(url + "/iconik/custom-action", content=body, headers=signed(body))
        assert answer.status_code == 202
        return answer.json()["request_id"]


def _digests(folder):
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.slow
def test_sigkill_mid_download_then_restart_gives_the_same_bundle(tmp_path):
    sim = Simulator(APP_ID, ICONIK_TOKEN)
    sim.add_user(PAYLOAD_AUTH_TOKEN)  # whose auth_token the clicks carry
    seeded = sim.seed(large_proxy_bytes=PROXY_BYTES)
    proxy_id = sim.assets[seeded.large].proxies[0]["id"]
    gate = sim.hold_download(f"proxies/{proxy_id}", after_bytes=PROXY_BYTES // 2)

    with running(sim.app()) as sim_url:
        crash = make_settings(
            tmp_path / "crash", iconik_url=sim_url, metadata_view_ids=seeded.view_id
        )
        (tmp_path / "crash").mkdir()
        crash_root = tmp_path / "crash" / "bundles"
        crash_request = _send(crash, seeded.large)

        try:
            with service_process(
                "worker", env=service_env(crash, crash_root), cwd=tmp_path
            ) as first:
                assert gate.reached.wait(60), "the worker never got half-way through the proxy"
                # Half the proxy has been sent (into the socket buffers, maybe
                # before the worker opened its file: the simulator sends
                # faster than it used to); wait for the partial file.
                until(
                    lambda: list(crash_root.glob(".staging/*/media/feature_1080p.mp4")),
                    within=30,
                    every=0.01,
                    why="the worker never started the file",
                )
                # Whatever reached the disk is only in the hidden staging
                # area, never under the final name.
                visible = [p.name for p in crash_root.iterdir() if not p.name.startswith(".")]
                [staged] = [p for p in (crash_root / ".staging").iterdir() if p.is_dir()]
                # The live build holds the lock beside its staging folder.
                assert (crash_root / ".staging" / f"{staged.name}.lock").exists()
                assert not (staged / "project.json").exists()
                partial = staged / "media" / "feature_1080p.mp4"
                assert partial.stat().st_size < PROXY_BYTES
                first.process.send_signal(signal.SIGKILL)
                first.process.wait(30)
        finally:
            gate.release.set()
        assert visible == []

        # The dead worker's lease would lapse after a while; make it lapse now.
        db = sqlite3.connect(crash.sqlite_path)
        with db:
            db.execute("UPDATE tasks SET lease_until = 0 WHERE state = 'running'")
        db.close()

        with service_process("worker", env=service_env(crash, crash_root), cwd=tmp_path) as second:
            published = second.wait_for("bundle.published")
            second.process.send_signal(signal.SIGTERM)
            assert second.process.wait(30) == 0
        assert published["asset_id"] == seeded.large

        # The same asset, built without interruption, for comparison.
        (tmp_path / "ref").mkdir()
        ref = make_settings(tmp_path / "ref", iconik_url=sim_url, metadata_view_ids=seeded.view_id)
        ref_root = tmp_path / "ref" / "bundles"
        ref_request = _send(ref, seeded.large)
        anyio.run(drain, ref, FakeClock(STACK_EPOCH))

    [crashed] = [p for p in crash_root.iterdir() if not p.name.startswith(".")]
    [reference] = [p for p in ref_root.iterdir() if not p.name.startswith(".")]
    assert crashed.name == reference.name
    assert list((crash_root / ".staging").iterdir()) == []

    def normalised(folder, request_id):
        manifest = json.loads((folder / "project.json").read_text())
        manifest.pop("generated_at")
        manifest["request"].pop("request_id")
        manifest["files"] = [f for f in manifest["files"] if f["path"] != "index.html"]
        page = (folder / "index.html").read_text().replace(request_id, "REQUEST")
        return manifest, page

    crash_digests, ref_digests = _digests(crashed), _digests(reference)
    for digests in (crash_digests, ref_digests):
        digests.pop("index.html")
        digests.pop("project.json")
    assert crash_digests == ref_digests
    assert (
        crash_digests["media/feature_1080p.mp4"]
        == hashlib.sha256(b"".join(sim.blobs[f"proxies/{proxy_id}"].chunks())).hexdigest()
    )
    assert normalised(crashed, crash_request) == normalised(reference, ref_request)
