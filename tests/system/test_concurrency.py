"""One writer per bundle, across processes, while a reader watches the folder.

A real `serve` (receiver + worker) and a separate `worker` process share one
queue and one bundle folder; the simulator stands for Iconik over HTTP.
Clicks on the same two assets arrive 150 ms apart, with an update webhook for
each in the middle, while a watcher thread reads the storage in a loop the
way a captioner's tool would.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

import httpx2
import pytest

from simulator import Simulator
from tests.support.polling import until
from tests.support.servers import running, service_env, service_process
from tests.support.service import (
    PAYLOAD_AUTH_TOKEN,
    bearer,
    custom_action_body,
    make_settings,
    signed,
    webhook_body,
)
from tests.support.stack import APP_ID, ICONIK_TOKEN

CLICKS_PER_ASSET = 8


class Watcher(threading.Thread):
    """Reads every bundle over and over; records any manifest it saw whose
    files were missing or differed from their SHA-256.

    A reading counts only when project.json held the same bytes before and
    after the files were read: then no change of the bundle overlapped it.
    """

    def __init__(self, root: Path) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.stop = threading.Event()
        self.consistent_readings = 0
        self.torn_readings = 0
        self.violations: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            if not self.root.is_dir():
                continue
            for folder in self.root.iterdir():
                if not folder.name.startswith("."):
                    self._read(folder)

    def _read(self, folder: Path) -> None:
        try:
            before = (folder / "project.json").read_bytes()
        except FileNotFoundError:
            return
        problems = []
        for entry in json.loads(before)["files"]:
            try:
                data = (folder / entry["path"]).read_bytes()
            except FileNotFoundError:
                problems.append(f"{folder.name}/{entry['path']} missing")
                continue
            if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                problems.append(f"{folder.name}/{entry['path']} differs from the manifest")
        try:
            after = (folder / "project.json").read_bytes()
        except FileNotFoundError:
            after = b""
        if after != before:
            self.torn_readings += 1
            return
        self.consistent_readings += 1
        self.violations += problems


def _wait_for_bundles(root: Path, asset_ids: list[str], timeout: float = 30) -> None:
    until(
        lambda: all(list(root.glob(f"*[[]{a}[]]/project.json")) for a in asset_ids),
        within=timeout,
        every=0.02,
        why="the first bundles were never published",
    )


def _wait_until_done(app_url: str, request_ids: list[str], timeout: float = 90) -> list[dict]:
    with httpx2.Client(base_url=app_url, headers=bearer()) as client:
        states: list[dict] = []

        def all_ended() -> list[dict] | None:
            states[:] = [client.get(f"/requests/{r}").json() for r in request_ids]
            ended = all(s["status"] in ("done", "failed", "done_with_errors") for s in states)
            return states if ended else None

        why = lambda: [s["status"] for s in states]  # noqa: E731
        return until(all_ended, within=timeout, every=0.1, why=why)


@pytest.mark.slow
def test_many_clicks_and_webhooks_on_two_assets_leave_one_sound_bundle_each(tmp_path):
    sim = Simulator(APP_ID, ICONIK_TOKEN)
    sim.add_user(PAYLOAD_AUTH_TOKEN)  # whose auth_token the clicks carry
    seeded = sim.seed(large_proxy_bytes=2 * 1024 * 1024)
    assets = [seeded.normal, seeded.large]
    root = tmp_path / "bundles"
    watcher = Watcher(root)
    with running(sim.app()) as sim_url:
        settings = make_settings(tmp_path, iconik_url=sim_url, metadata_view_ids=seeded.view_id)
        env = service_env(settings, root, WORKER_CONCURRENCY="4", PORT="0")
        with (
            service_process("serve", env=env, cwd=tmp_path) as server,
            service_process("worker", env=env, cwd=tmp_path) as other_worker,
        ):
            app_url = f"http://127.0.0.1:{server.wait_for('service.listening')['port']}"
            other_worker.wait_for("worker.started")
            watcher.start()
            request_ids = []
            with httpx2.Client(base_url=app_url) as client:

                def post(path: str, body: bytes) -> str:
                    answer = client.post(path, content=body, headers=signed(body))
                    assert answer.status_code == 202, answer.text
                    return answer.json()["request_id"]

                for click in range(CLICKS_PER_ASSET):
                    for asset_id in assets:
                        body = custom_action_body(asset_ids=[asset_id], some_future_field=click)
                        request_ids.append(post("/iconik/custom-action", body))
                    if click == CLICKS_PER_ASSET // 2:
                        # An update for an asset with no bundle yet changes
                        # nothing (its build fetches the latest anyway); these
                        # must land on published bundles, mid-way through.
                        _wait_for_bundles(root, assets)
                        for asset_id in assets:
                            event = webhook_body(
                                object_id=asset_id,
                                realm="metadata",
                                operation="update",
                                request_id="one-iconik-call",
                            )
                            request_ids.append(post("/iconik/webhook", event))
                    time.sleep(0.15)  # the pace of the clicks, not a wait for a result
            states = _wait_until_done(app_url, request_ids)
            watcher.stop.set()
            watcher.join(30)

    assert [s["status"] for s in states] == ["done"] * len(request_ids)
    assert watcher.violations == []
    assert watcher.consistent_readings > 0
    folders = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    assert len(folders) == len(assets)
    for asset_id in assets:
        [folder] = [f for f in folders if f.name.endswith(f"[{asset_id}]")]
        manifest = json.loads((folder / "project.json").read_text())
        # Every click rebuilt it once and the webhook refreshed it once: no
        # build was lost to another, none ran twice.
        assert manifest["revision"] == CLICKS_PER_ASSET + 1
        for entry in manifest["files"]:
            digest = hashlib.sha256((folder / entry["path"]).read_bytes()).hexdigest()
            assert digest == entry["sha256"], entry["path"]
    assert [p for p in (root / ".staging").iterdir()] == []
