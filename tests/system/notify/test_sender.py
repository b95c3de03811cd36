"""The notification sender against a real sink on loopback: signed webhooks
(checked by the independent `standardwebhooks` package), Apprise's `json://`
target, order per asset, an endpoint down and back, one destination down
while the other goes on, giving up after the configured time. The queue is
real (SQLite, and PostgreSQL for the order)."""

import functools
import json
from datetime import datetime

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest
import structlog

from service.metrics import Metrics
from service.notify import sender as notify
from service.notify import webhook as notify_webhook
from service.queue import DELIVERED, PUBLISHED, REFRESHED, Event, event_id
from service.queue.outbox import GIVEN_UP, SENT
from service.queue.postgres import PostgresQueue
from service.queue.sqlite import SQLiteQueue
from tests.support.clock import FakeClock
from tests.support.notify_sink import SECRET, Sink
from tests.support.polling import until_async
from tests.support.service import make_settings
from tests.support.stack import STACK_EPOCH

pytestmark = pytest.mark.anyio


@pytest.fixture
def sink():
    s = Sink().start()
    yield s
    s.stop()


def event(name, asset="a1", kind=PUBLISHED, **data):
    payload = {"title": name, "folder": f"{name} [{asset}]", "languages": ["en"], **data}
    return Event(event_id(name, kind), kind, asset, payload, 1_800_000_000.0)


def settings_for(tmp_path, sink, **overrides):
    values = {
        "notify_webhook_url": sink.url + "/hook",
        "notify_webhook_secret": SECRET,
        "notify_urls": f"json://127.0.0.1:{sink.port}/apprise",
        "notify_retry_max_seconds": 0.4,
        **overrides,
    }
    return make_settings(tmp_path, **values)


async def wait(sink, done, within=20):
    await anyio.to_thread.run_sync(functools.partial(sink.wait_until, done, within))


async def sending(queue, settings, group, **options):
    sender = notify.sender_for(settings, queue, options.pop("metrics", Metrics()), **options)
    assert sender is not None
    group.start_soon(sender.run)
    return sender


async def test_each_event_arrives_signed_and_as_a_message_promptly(tmp_path, sink):
    settings = settings_for(tmp_path, sink)
    queue = SQLiteQueue(settings.sqlite_path)
    await queue.open()
    try:
        async with anyio.create_task_group() as group:
            # A poll far longer than the test: only the queue's wake-up can send in time.
            await sending(queue, settings, group, poll_interval=60)
            await anyio.lowlevel.checkpoint()  # the sender is waiting
            sent_at = anyio.current_time()
            await queue.add_events([event("Harbour Lights", due_date="2026-12-01")])
            await wait(sink, lambda s: len(s.hooks()) == 1 and len(s.apprise()) == 1)
            assert anyio.current_time() - sent_at < 2
            group.cancel_scope.cancel()
    finally:
        await queue.close()

    [hook] = sink.hooks()
    assert hook.valid, "standardwebhooks rejected the signature"
    body = hook.json
    assert body["type"] == PUBLISHED
    assert datetime.fromisoformat(body["timestamp"]).timestamp() == 1_800_000_000.0
    assert body["data"] == {
        "asset_id": "a1",
        "title": "Harbour Lights",
        "folder": "Harbour Lights [a1]",
        "languages": ["en"],
        "due_date": "2026-12-01",
    }
    assert hook.id == event_id("Harbour Lights", PUBLISHED)
    assert abs(int(hook.headers["webhook-timestamp"]) - datetime.now().timestamp()) < 60
    [message] = sink.apprise()
    shown = message.json
    assert shown["title"] == "New captioning work: Harbour Lights"
    assert "Languages: en" in shown["message"] and "Due: 2026-12-01" in shown["message"]
    for received in (hook, message):
        assert SECRET not in received.body.decode()
        assert SECRET.removeprefix("whsec_") not in json.dumps(received.headers)


async def test_the_signature_matches_the_spec_by_hand():
    # The spec's construction, independently of the sink: HMAC-SHA256 over
    # "{id}.{timestamp}.{body}" with the base64-decoded key, base64, "v1,".
    import base64
    import hashlib
    import hmac

    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    body = b'{"type":"x"}'
    expected = base64.b64encode(
        hmac.new(key, b"msg_1.1700000000." + body, hashlib.sha256).digest()
    ).decode()
    assert notify_webhook.sign(key, "msg_1", 1700000000, body) == "v1," + expected
    with pytest.raises(ValueError, match="whsec_"):
        notify_webhook.parse_secret("not-a-whsec")
    with pytest.raises(ValueError, match="base64"):
        notify_webhook.parse_secret("whsec_***")


async def recorded(queue, done):
    """Until the outbox's send states (in order) satisfy `done`."""

    async def states_done():
        return done([s["state"] for s in await queue.outbox_sends()])

    await until_async(states_done, within=20, every=0.02)


async def attempted(queue, times):
    """Until the outbox has recorded the first send's `times`-th attempt."""

    async def tried():
        sends = await queue.outbox_sends()
        return sends and sends[0]["attempts"] >= times

    await until_async(tried, within=20, every=0.02)


def per_asset(received):
    order = {}
    for r in received:
        order.setdefault(r.json["data"]["asset_id"], []).append(r.json["data"]["title"])
    return order


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_an_endpoint_down_then_back_gets_everything_in_order_once(
    tmp_path, sink, backend, request
):
    settings = settings_for(tmp_path, sink, notify_urls="")
    if backend == "sqlite":
        queue = SQLiteQueue(settings.sqlite_path)
    else:
        queue = PostgresQueue(request.getfixturevalue("pg_url"))
    await queue.open()
    # Down: connections closed unanswered (test_notify_process.py stops the
    # sink itself: connections refused).
    sink.dropping = True
    try:
        async with anyio.create_task_group() as group:
            await sending(queue, settings, group, poll_interval=0.2)
            await queue.add_events([event(f"a1-{n}", "a1") for n in range(4)])
            await queue.add_events([event(f"a2-{n}", "a2", kind=DELIVERED) for n in range(3)])

            async def failed_twice():
                sends = await queue.outbox_sends()
                heads = [s for s in sends if s["attempts"] >= 2]
                return sends if len(heads) >= 2 else None

            sends = await until_async(failed_twice, within=20)
            # The heads of both lines failed; nothing behind them was tried.
            assert {s["event_id"] for s in sends if s["attempts"]} == {
                event_id("a1-0", PUBLISHED),
                event_id("a2-0", DELIVERED),
            }
            assert all("could not be reached" in s["last_error"] for s in sends if s["attempts"])
            sink.dropping = False  # back
            await wait(sink, lambda s: len(s.hooks()) == 7)
            await recorded(queue, lambda states: set(states) == {SENT})
            group.cancel_scope.cancel()
    finally:
        await queue.close()
    hooks = sink.hooks()
    assert len(hooks) == 7 and len({h.id for h in hooks}) == 7  # none lost, none doubled
    assert all(h.valid for h in hooks)
    assert per_asset(hooks) == {
        "a1": ["a1-0", "a1-1", "a1-2", "a1-3"],
        "a2": ["a2-0", "a2-1", "a2-2"],
    }


async def test_one_destination_down_holds_up_no_other(tmp_path, sink):
    down = Sink().start()
    down.status = 503
    settings = settings_for(
        tmp_path, sink, notify_webhook_url=down.url + "/hook", notify_retry_max_seconds=30
    )
    queue = SQLiteQueue(settings.sqlite_path)
    await queue.open()
    try:
        async with anyio.create_task_group() as group:
            await sending(queue, settings, group, poll_interval=0.2)
            await queue.add_events([event(f"n{n}", "a1") for n in range(3)])
            await wait(sink, lambda s: len(s.apprise()) == 3)
            assert [r.json["title"] for r in sink.apprise()] == [
                f"New captioning work: n{n}" for n in range(3)
            ]
            # The webhook answered 503 to its first event only; the rest wait.
            assert [r.id for r in down.seen] == [event_id("n0", PUBLISHED)]
            sends = await queue.outbox_sends()
            assert next(s["last_error"] for s in sends if s["destination"] == "webhook") == (
                "the webhook answered HTTP 503"
            )
            group.cancel_scope.cancel()
    finally:
        await queue.close()
        down.stop()


async def test_a_send_failing_past_the_give_up_time_is_given_up(tmp_path, sink):
    sink.failing.add(event_id("late", PUBLISHED))
    clock = FakeClock(STACK_EPOCH)
    settings = settings_for(tmp_path, sink, notify_urls="", notify_give_up_hours=2)
    queue = SQLiteQueue(settings.sqlite_path, clock=clock)
    await queue.open()
    metrics = Metrics()
    options = {"poll_interval": 0.05, "clock": clock, "metrics": metrics}
    try:
        with structlog.testing.capture_logs() as logs:
            async with anyio.create_task_group() as group:
                await sending(queue, settings, group, **options)
                await queue.add_events([event("late", "a1"), event("next", "a1", kind=REFRESHED)])
                await attempted(queue, 1)
                clock.now += 1  # its backoff has passed: tried again, and fails again
                await attempted(queue, 2)
                assert sink.hooks() == []  # the next one waits behind it
                clock.now += 2 * 3600  # past NOTIFY_GIVE_UP_HOURS
                await wait(sink, lambda s: len(s.hooks()) == 1)
                await recorded(queue, lambda states: states == [GIVEN_UP, SENT])
                group.cancel_scope.cancel()
        sends = await queue.outbox_sends()
    finally:
        await queue.close()
    assert "the webhook answered HTTP 500 (given up after 3 attempts" in sends[0]["last_error"]
    assert len(sink.seen) == 4  # three tries of the first, one of the next
    # The one behind it went once the first was given up.
    assert sink.hooks()[0].json["type"] == REFRESHED
    [given_up] = [e for e in logs if e["event"] == "notify.given_up"]
    assert given_up["destination"] == "webhook" and "HTTP 500" in given_up["reason"]
    counted = metrics.notifications.labels("webhook", PUBLISHED, "given_up")._value.get()
    assert counted == 1
    failed = [e for e in logs if e["event"] == "notify.failed"]
    assert failed and all(e["retry_in"] <= 0.4 for e in failed)


async def test_no_url_or_secret_reaches_a_log_line(tmp_path, sink):
    password = "apprise-password-77"
    settings = settings_for(
        tmp_path,
        sink,
        notify_urls=f"json://user:{password}@127.0.0.1:{sink.port}/apprise",
        notify_webhook_url=sink.url + "/hook?token=hook-token-55",
    )
    sink.status = 503
    queue = SQLiteQueue(settings.sqlite_path)
    await queue.open()
    try:
        with structlog.testing.capture_logs() as logs:
            async with anyio.create_task_group() as group:
                await sending(queue, settings, group, poll_interval=0.1)
                await queue.add_events([event("x", "a1")])
                await wait(sink, lambda s: len(s.seen) >= 4)
                group.cancel_scope.cancel()
    finally:
        await queue.close()
    text = json.dumps(logs, default=str)
    assert {e["event"] for e in logs} >= {"notify.started", "notify.failed"}
    for secret in (password, "hook-token-55", SECRET, str(sink.port)):
        assert secret not in text
    started = next(e for e in logs if e["event"] == "notify.started")
    assert started["destinations"] == ["webhook", "apprise-1-json"]


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"notify_webhook_url": "http://127.0.0.1:9/hook"}, "NOTIFY_WEBHOOK_SECRET must be set"),
        (
            {"notify_webhook_url": "ftp://x/", "notify_webhook_secret": SECRET},
            "NOTIFY_WEBHOOK_URL: must be an http(s) URL",
        ),
        ({"notify_webhook_secret": "secret-77"}, "NOTIFY_WEBHOOK_SECRET: must start with whsec_"),
        ({"notify_events": "bundle.published,bundle.exploded"}, "unknown event type"),
        (
            {"notify_urls": "json://127.0.0.1:9/x,nonsense-with-pass-99"},
            "NOTIFY_URLS: entry 2 is not a URL Apprise knows",
        ),
    ],
)
def test_unusable_notification_settings_stop_start_up_naming_the_setting(tmp_path, values, says):
    from service.settings import SettingsError, load_settings

    base = make_settings(tmp_path).model_dump()
    base = {k: v for k, v in base.items() if not k.startswith("notify")}
    with pytest.raises(SettingsError) as refused:
        load_settings(**{**base, "_env_file": None, **values})
    assert says in str(refused.value)
    assert "pass-99" not in str(refused.value) and "secret-77" not in str(refused.value)


async def test_a_destination_removed_from_the_settings_is_given_up_not_held(tmp_path, sink):
    settings = settings_for(tmp_path, sink, notify_urls="")
    queue = SQLiteQueue(settings.sqlite_path)
    await queue.open()
    try:
        # Fanned out while an Apprise URL was configured; the settings lost it since.
        from service.queue.outbox import Destination

        await queue.add_events([event("before", "a1")])
        await queue.fan_out([Destination("webhook"), Destination("apprise-1-slack")])
        async with anyio.create_task_group() as group:
            await sending(queue, settings, group, poll_interval=0.05)
            await wait(sink, lambda s: len(s.hooks()) == 1)
            await recorded(queue, lambda states: sorted(states) == [GIVEN_UP, SENT])
            group.cancel_scope.cancel()
        sends = {s["destination"]: s for s in await queue.outbox_sends()}
    finally:
        await queue.close()
    assert sends["apprise-1-slack"]["last_error"].startswith(
        "the destination is no longer configured"
    )


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_two_replicas_send_through_one_of_them_in_order(tmp_path, sink, backend, request):
    settings = settings_for(tmp_path, sink, notify_urls="")
    if backend == "sqlite":
        queues = [SQLiteQueue(settings.sqlite_path) for _ in range(2)]
    else:
        url = request.getfixturevalue("pg_url")
        queues = [PostgresQueue(url) for _ in range(2)]
    for queue in queues:
        await queue.open()
    metrics = [Metrics(), Metrics()]
    try:
        with structlog.testing.capture_logs() as logs:
            async with anyio.create_task_group() as group:
                for n, queue in enumerate(queues):
                    await sending(queue, settings, group, poll_interval=0.1, metrics=metrics[n])
                for n in range(5):  # stored through either replica, in turn
                    await queues[n % 2].add_events([event(f"e{n}", "a1")])
                await wait(sink, lambda s: len(s.hooks()) == 5)
                await recorded(queues[0], lambda states: states == [SENT] * 5)
                group.cancel_scope.cancel()
    finally:
        for queue in queues:
            await queue.close()
    assert [h.json["data"]["title"] for h in sink.hooks()] == [f"e{n}" for n in range(5)]
    assert len(sink.seen) == 5  # each sent once, by one replica
    assert len({e["event_id"] for e in logs if e["event"] == "notify.sent"}) == 5
    # One replica held the `notify` lease and sent them all.
    sent = sorted(
        m.notifications.labels("webhook", PUBLISHED, "sent")._value.get() for m in metrics
    )
    assert sent == [0, 5]
