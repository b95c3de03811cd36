"""A webhook storm never blocks a click: real servers, real queues, both backends."""

from __future__ import annotations

import concurrent.futures
import sqlite3
import uuid

import httpx2
import pytest

from simulator import Simulator
from tests.support.servers import running, service_env, service_process
from tests.support.service import (
    PAYLOAD_AUTH_TOKEN,
    custom_action_body,
    make_settings,
    signed,
    webhook_body,
)
from tests.support.stack import APP_ID, ICONIK_TOKEN, stack

STORM = 3000


@pytest.fixture(params=["sqlite", "postgres"])
def queue_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/queue.db"
    return request.getfixturevalue("pg_url")


def _storm(url: str, bodies: list[bytes]) -> list[httpx2.Response]:
    """POST every body to the webhook endpoint, 8 at a time, as Iconik's burst would."""
    with (
        httpx2.Client(base_url=url, timeout=30) as client,
        concurrent.futures.ThreadPoolExecutor(8) as pool,
    ):
        return list(
            pool.map(
                lambda body: client.post("/iconik/webhook", content=body, headers=signed(body)),
                bodies,
            )
        )


def _update(asset_id: str, n: int) -> bytes:
    return webhook_body(
        object_id=asset_id, realm="metadata", operation="update", request_id=f"edit-{n}"
    )


@pytest.mark.slow
def test_a_storm_about_unknown_assets_is_ignored_and_a_click_still_gets_in(tmp_path, queue_url):
    settings = make_settings(tmp_path, queue_url=queue_url, queue_max_backlog=2000)
    env = service_env(settings, tmp_path / "bundles", PORT="0", QUEUE_MAX_BACKLOG="2000")
    with service_process("serve", "--no-worker", env=env, cwd=tmp_path) as receiver:
        url = f"http://127.0.0.1:{receiver.wait_for('service.listening')['port']}"
        receiver.wait_for("registry.ready")  # filled at start-up, off the request path
        answers = _storm(url, [_update(str(uuid.uuid4()), n) for n in range(STORM)])
        assert {(a.status_code, a.text) for a in answers} == {(200, '{"ignored":true}')}
        metrics = httpx2.get(f"{url}/metrics").text
        body = custom_action_body()
        click = httpx2.post(f"{url}/iconik/custom-action", content=body, headers=signed(body))
    assert 'caption_bridge_queue_depth{lane="event"} 0.0' in metrics
    assert f'caption_bridge_deliveries_total{{outcome="ignored",route="webhook"}} {STORM}.0' in (
        metrics
    )
    assert click.status_code == 202


@pytest.mark.slow
def test_a_storm_over_ten_bundles_refreshes_each_once(tmp_path, queue_url):
    with stack(tmp_path, queue_url=queue_url) as s:
        assets = s.sim.add_tiny_assets(10)
        s.send(custom_action_body(context="BULK", asset_ids=assets))
        s.drain()
        answers = _storm(s.app_url, [_update(assets[n % 10], n) for n in range(STORM)])
        assert {a.status_code for a in answers} == {202}
        pending = {a.json()["request_id"] for a in answers}
        assert len(pending) <= 10  # one pending refresh per asset at most
        assert sum(bool(a.json().get("coalesced")) for a in answers) >= STORM - 10
        s.drain()
        for asset_id in assets:
            assert s.manifest(asset_id)["revision"] == 2, asset_id  # refreshed once, not 300 times
        assert {s.status(r)["status"] for r in pending} == {"done"}


@pytest.mark.slow
def test_a_click_in_the_middle_of_a_storm_is_published_before_the_storm_is_done(tmp_path):
    sim = Simulator(APP_ID, ICONIK_TOKEN)
    sim.add_user(PAYLOAD_AUTH_TOKEN)  # whose auth_token the clicks carry
    stormed = sim.add_tiny_assets(40)
    seeded = sim.seed()
    root = tmp_path / "bundles"
    with running(sim.app()) as sim_url:
        settings = make_settings(tmp_path, iconik_url=sim_url)
        env = service_env(settings, root, PORT="0", WORKER_CONCURRENCY="1")
        with service_process("serve", env=env, cwd=tmp_path) as server:
            url = f"http://127.0.0.1:{server.wait_for('service.listening')['port']}"
            first = custom_action_body(context="BULK", asset_ids=stormed)
            httpx2.post(f"{url}/iconik/custom-action", content=first, headers=signed(first))
            for _ in stormed:
                server.wait_for("bundle.published")
            updates = [_update(stormed[n % len(stormed)], n) for n in range(STORM)]
            before = _storm(url, updates[: STORM // 2])
            body = custom_action_body(asset_ids=[seeded.normal])
            click = httpx2.post(f"{url}/iconik/custom-action", content=body, headers=signed(body))
            after = _storm(url, updates[STORM // 2 :])
            while server.wait_for("bundle.published")["asset_id"] != seeded.normal:
                pass
            for _ in range(5):  # and refreshes still come after it
                assert server.wait_for("bundle.published")["asset_id"] in stormed
    assert click.status_code == 202
    assert {a.status_code for a in before + after} == {202}

    db = sqlite3.connect(settings.sqlite_path)
    try:
        (clicked_at,) = db.execute(
            "SELECT received_at FROM requests WHERE request_id = ?", (click.json()["request_id"],)
        ).fetchone()
        (published_at,) = db.execute(
            "SELECT updated_at FROM tasks WHERE asset_id = ? AND kind = 'build'", (seeded.normal,)
        ).fetchone()
        # Refreshes stored before the click and still waiting when it came.
        waiting = db.execute(
            "SELECT state, updated_at FROM tasks WHERE kind = 'refresh' AND created_at < ?"
            " AND (state != 'done' OR updated_at > ?)",
            (clicked_at, clicked_at),
        ).fetchall()
    finally:
        db.close()
    overtaken = [1 for state, at in waiting if state != "done" or at > published_at]

    assert len(waiting) >= 5, "the storm left no backlog for the click to overtake"
    # Only the refresh already running when the click came may finish first.
    assert len(overtaken) >= len(waiting) - 1, (len(overtaken), len(waiting))
