"""Notifications from `caption-bridge worker` as a real process, to a real
sink on loopback: the sink down while changes are made, then back (every
event arrives after, in order per asset, none lost or doubled); and the
worker SIGKILLed between a change and its notification (it arrives once
after a restart, by `webhook-id`)."""

import signal
import sqlite3
from contextlib import contextmanager

import httpx2
import pytest

from service.intake.app import create_app
from service.queue import OVERDUE, PUBLISHED, REFRESHED
from simulator import Simulator
from tests.support.notify_sink import SECRET, Sink
from tests.support.polling import until
from tests.support.servers import running, service_env, service_process
from tests.support.service import (
    ICONIK_TOKEN,
    PAYLOAD_AUTH_TOKEN,
    custom_action_body,
    make_settings,
    signed,
    webhook_body,
)
from tests.support.stack import APP_ID


@pytest.fixture
def sink():
    s = Sink().start()
    yield s
    s.hold.set()
    s.stop()


@contextmanager
def simulated_iconik(tmp_path):
    """The seeded simulator (its API and its signed storage) on loopback, and
    the service's settings pointing at it."""
    sim = Simulator(APP_ID, ICONIK_TOKEN)
    sim.add_user(PAYLOAD_AUTH_TOKEN)
    seeded = sim.seed(large_proxy_bytes=64 * 1024)
    with running(sim.app()) as sim_url, running(sim.storage_app()) as storage_url:
        sim.storage_base = storage_url + "/"
        settings = make_settings(tmp_path, iconik_url=sim_url, metadata_view_ids=seeded.view_id)
        yield sim, seeded, settings


def notify_env(sink):
    return {
        "NOTIFY_WEBHOOK_URL": sink.url + "/hook",
        "NOTIFY_WEBHOOK_SECRET": SECRET,
        "NOTIFY_URLS": f"json://127.0.0.1:{sink.port}/apprise",
        "NOTIFY_RETRY_MAX_SECONDS": "1",
        "DELIVER_SCAN_SECONDS": "0",
    }


def stored_events(settings):
    db = sqlite3.connect(settings.sqlite_path)
    try:
        return db.execute("SELECT event_id, type FROM outbox_events ORDER BY seq").fetchall()
    except sqlite3.OperationalError:  # the worker has not made the tables yet
        return []
    finally:
        db.close()


def failed_sends(settings):
    db = sqlite3.connect(settings.sqlite_path)
    try:
        return db.execute("SELECT count(*) FROM outbox_sends WHERE attempts > 0").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


def leases_held(settings):
    db = sqlite3.connect(settings.sqlite_path)
    try:
        return db.execute("SELECT name FROM leases ORDER BY name").fetchall()
    finally:
        db.close()


def post(app_url, path, body):
    answer = httpx2.post(app_url + path, content=body, headers=signed(body))
    assert answer.status_code == 202, answer.text


def expire_notify_lease(settings):
    """The killed worker's `notify` lease would lapse in 30 s; make it lapse now."""
    db = sqlite3.connect(settings.sqlite_path)
    with db:
        db.execute("UPDATE leases SET expires_at = 0 WHERE name = 'notify'")
    db.close()


@pytest.mark.slow
def test_the_sink_down_then_back_gets_every_change_in_order_once(tmp_path, sink):
    with simulated_iconik(tmp_path) as (sim, seeded, settings):
        first, second = seeded.normal, seeded.large
        root = tmp_path / "bundles"
        env = service_env(settings, root, **notify_env(sink))
        with (
            running(create_app(settings)) as app_url,
            service_process("worker", env=env, cwd=tmp_path) as worker,
        ):
            worker.wait_for("notify.started")
            sink.stop()  # down
            post(app_url, "/iconik/custom-action", custom_action_body(asset_ids=[first]))
            post(app_url, "/iconik/custom-action", custom_action_body(asset_ids=[second]))
            until(lambda: len(stored_events(settings)) == 2)
            # A second change of the first asset, while its first event waits.
            sim.add_subtitle(sim.assets[first], "de", "WEBVTT\n\n00:00.000 --> 00:01.000\nHallo\n")
            post(
                app_url,
                "/iconik/webhook",
                webhook_body(object_id=first, operation="update", realm="subtitles"),
            )
            until(lambda: len(stored_events(settings)) == 3)
            until(lambda: failed_sends(settings) >= 4)  # both destinations, both assets tried
            sink.start()  # back, on the same port
            sink.wait_until(lambda s: len(s.hooks()) == 3 and len(s.apprise()) == 3, 30)
            worker.process.send_signal(signal.SIGTERM)
            assert worker.process.wait(30) == 0

    events = stored_events(settings)
    hooks = sink.hooks()
    assert all(h.valid for h in hooks)
    assert sorted(h.id for h in hooks) == sorted(e[0] for e in events)  # each once
    by_asset: dict[str, list[str]] = {}
    for h in hooks:
        by_asset.setdefault(h.json["data"]["asset_id"], []).append(h.json["type"])
    assert by_asset == {first: [PUBLISHED, REFRESHED], second: [PUBLISHED]}
    titles = [m.json["title"] for m in sink.apprise() if "Harbour" in m.json["title"]]
    assert titles == [
        "New captioning work: Harbour Lights: Episode 1",
        "Captioning work changed: Harbour Lights: Episode 1",
    ]


@pytest.mark.slow
def test_a_worker_killed_mid_send_sends_it_once_after_restart(tmp_path, sink):
    with simulated_iconik(tmp_path) as (_, seeded, settings):
        root = tmp_path / "bundles"
        env = service_env(settings, root, **{**notify_env(sink), "NOTIFY_URLS": ""})
        sink.hold.clear()  # the first POST is held, then answered 503: never taken
        sink.status = 503
        with (
            running(create_app(settings)) as app_url,
            service_process("worker", env=env, cwd=tmp_path) as first,
        ):
            post(app_url, "/iconik/custom-action", custom_action_body(asset_ids=[seeded.normal]))
            assert sink.held.wait(60), "the worker never sent the notification"
            first.process.send_signal(signal.SIGKILL)
            first.process.wait(30)
        sink.status = 200
        sink.hold.set()
        [(stored_id, kind)] = stored_events(settings)
        assert kind == PUBLISHED
        expire_notify_lease(settings)
        with service_process("worker", env=env, cwd=tmp_path) as second:
            sent = second.wait_for("notify.sent")
            second.process.send_signal(signal.SIGTERM)
            assert second.process.wait(30) == 0

    assert sent["event_id"] == stored_id
    assert [h.id for h in sink.hooks()] == [stored_id]  # taken once
    assert [r.id for r in sink.seen] == [stored_id, stored_id]  # the same id on the retry
    assert sink.hooks()[0].valid


@pytest.mark.slow
def test_a_worker_killed_before_its_sender_ran_sends_it_once_after_restart(tmp_path, sink):
    with simulated_iconik(tmp_path) as (_, seeded, settings):
        root = tmp_path / "bundles"
        env = service_env(settings, root, **{**notify_env(sink), "NOTIFY_URLS": ""})
        sink.stop()  # nothing can be sent before the kill
        with (
            running(create_app(settings)) as app_url,
            service_process("worker", env=env, cwd=tmp_path) as first,
        ):
            post(app_url, "/iconik/custom-action", custom_action_body(asset_ids=[seeded.normal]))
            until(lambda: stored_events(settings))  # the change is committed with its event
            first.process.send_signal(signal.SIGKILL)
            first.process.wait(30)
        sink.start()
        expire_notify_lease(settings)
        with service_process("worker", env=env, cwd=tmp_path) as second:
            second.wait_for("notify.sent")
            second.process.send_signal(signal.SIGTERM)
            assert second.process.wait(30) == 0

    [(stored_id, _)] = stored_events(settings)
    assert [h.id for h in sink.hooks()] == [stored_id]


@pytest.mark.slow
def test_work_past_its_due_date_is_told_overdue_once_by_the_next_worker(tmp_path, sink):
    """The whole due-date path with real processes: the click's form carries
    a due date already past; the bundle is published (told once); the next
    worker's first look stores `work.overdue`, and the sink gets it once,
    signed, with what is missing; a third worker tells nothing again."""
    form = {
        "due_date": {"field_values": [{"value": "2026-01-15"}]},
        "target_languages": {"field_values": [{"value": "de"}, {"value": "en"}]},
    }
    with simulated_iconik(tmp_path) as (_, seeded, settings):
        body = custom_action_body(
            asset_ids=[seeded.normal], metadata_view_id=seeded.view_id, metadata_values=form
        )
        env = service_env(settings, tmp_path / "bundles", **{**notify_env(sink), "NOTIFY_URLS": ""})
        with running(create_app(settings)) as app_url:
            with service_process("worker", env=env, cwd=tmp_path) as first:
                post(app_url, "/iconik/custom-action", body)
                sink.wait_until(lambda s: len(s.hooks()) == 1, 60)
                first.process.send_signal(signal.SIGTERM)
                assert first.process.wait(30) == 0
            # Stopped, it let go of its leases: the next worker sends at once.
            assert leases_held(settings) == []
            for _ in range(2):  # the second worker tells it; the third finds it told
                with service_process("worker", env=env, cwd=tmp_path) as later:
                    later.wait_for("due_check.looked")
                    sink.wait_until(lambda s: len(s.hooks()) == 2, 60)
                    later.process.send_signal(signal.SIGTERM)
                    assert later.process.wait(30) == 0

    published, overdue = sink.hooks()
    assert published.json["type"] == PUBLISHED
    assert published.json["data"]["due_date"] == "2026-01-15T23:59:59+00:00"
    assert overdue.json["type"] == OVERDUE and overdue.valid
    assert overdue.json["data"]["missing_languages"] == ["de", "en"]
    assert overdue.json["data"]["folder"] == published.json["data"]["folder"]
    assert [e[1] for e in stored_events(settings)] == [PUBLISHED, OVERDUE]
