"""The receiver through a real uvicorn server on loopback."""

import asyncio
import json
import logging
import socket
import sqlite3
import time

import httpx2
import pytest
import structlog

from service import logging as service_logging
from service.intake.app import create_app
from service.queue.sqlite import SQLiteQueue
from tests.support.polling import until
from tests.support.servers import running
from tests.support.service import (
    BEARER,
    CURRENT_SECRET,
    ICONIK_TOKEN,
    OLD_SECRET,
    PAYLOAD_AUTH_TOKEN,
    RETIRED_SECRET,
    bearer,
    custom_action_body,
    make_settings,
    signed,
    webhook_body,
)


@pytest.fixture
def server(settings):
    with running(create_app(settings)) as url:
        yield url


@pytest.fixture
def client(server):
    with httpx2.Client(base_url=server, timeout=10) as c:
        yield c


ASSET_A, ASSET_B = "0a1b2c3d-0000-4000-8000-00000000000a", "0a1b2c3d-0000-4000-8000-00000000000b"


def bundles_exist(settings, *asset_ids):
    """As the worker records them: events about these assets are then acted on."""
    db = sqlite3.connect(settings.sqlite_path)
    with db:
        db.executemany(
            "INSERT INTO bundles (asset_id, folder, status, updated_at) VALUES (?, ?, 'ready', 0)",
            [(a, f"T [{a}]") for a in asset_ids],
        )
    db.close()


def stored_requests(settings):
    db = sqlite3.connect(settings.sqlite_path)
    try:
        return db.execute("SELECT request_id, kind, payload FROM requests").fetchall()
    finally:
        db.close()


def test_signed_custom_action_is_stored_and_202(client, settings):
    body = custom_action_body()
    r = client.post("/iconik/custom-action", content=body, headers=signed(body))
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "queued"
    [(request_id, kind, payload)] = stored_requests(settings)
    assert request_id == r.json()["request_id"] and kind == "custom_action"
    assert json.loads(payload)["asset_ids"] == ["0a1b2c3d-0000-4000-8000-00000000a001"]
    assert PAYLOAD_AUTH_TOKEN not in payload


def test_bearer_custom_action_is_accepted(client):
    body = custom_action_body()
    r = client.post("/iconik/custom-action", content=body, headers=bearer())
    assert r.status_code == 202


def test_old_key_still_accepted_during_rotation(client):
    body = custom_action_body()
    r = client.post("/iconik/custom-action", content=body, headers=signed(body, OLD_SECRET))
    assert r.status_code == 202


def test_reserialised_body_under_original_signature_is_401(client, settings):
    body = custom_action_body()
    reserialised = json.dumps(json.loads(body)).encode()
    assert reserialised != body
    r = client.post("/iconik/custom-action", content=reserialised, headers=signed(body))
    assert r.status_code == 401
    assert r.json()["error"] == "unauthenticated"
    assert stored_requests(settings) == []


def test_rotated_out_key_is_401(client):
    body = custom_action_body()
    r = client.post("/iconik/custom-action", content=body, headers=signed(body, RETIRED_SECRET))
    assert r.status_code == 401


MALFORMED_HEADERS = [
    [],
    [("X-Iconik-Signature", "")],
    [("X-Iconik-Signature", "not-hex-" * 8)],
    [("X-Iconik-Signature", "ab" * 31)],
    [("X-Iconik-Signature", "ab" * 40)],
    [("X-Iconik-Signature", b"\xc3\xa9" * 32)],
    [("X-Iconik-Signature", "ab" * 32), ("X-Iconik-Signature", "cd" * 32)],
    [("Authorization", "")],
    [("Authorization", "Bearer")],
    [("Authorization", "Token " + BEARER)],
    [("Authorization", b"Bearer \xff\xfe")],
    [("Authorization", f"Bearer {BEARER}"), ("Authorization", f"Bearer {BEARER}")],
]


@pytest.mark.parametrize("headers", MALFORMED_HEADERS)
@pytest.mark.parametrize("path", ["/iconik/custom-action", "/iconik/webhook"])
def test_malformed_credentials_are_401_never_500(client, headers, path):
    body = custom_action_body() if "custom" in path else webhook_body()
    r = client.post(path, content=body, headers=httpx2.Headers(headers))
    assert r.status_code == 401
    assert r.json()["error"] == "unauthenticated"


def test_oversized_declared_body_is_413_without_reading(tmp_path):
    settings = make_settings(tmp_path, max_body_bytes=1000)
    with running(create_app(settings)) as url:
        body = b"{" + b" " * 5000 + b"}"
        r = httpx2.post(url + "/iconik/custom-action", content=body, headers=signed(body))
        assert r.status_code == 413
        assert r.json()["error"] == "body_too_large"


def test_oversized_chunked_body_is_413(tmp_path):
    settings = make_settings(tmp_path, max_body_bytes=1000)
    sent = []

    def chunks():
        # Far more than the limit; the server must answer long before the end.
        for _ in range(10_000):
            sent.append(1)
            yield b" " * 512

    with running(create_app(settings)) as url:
        try:
            r = httpx2.post(url + "/iconik/custom-action", content=chunks(), headers=bearer())
        except httpx2.TransportError:
            pytest.fail("server hung up without an answer")
        assert r.status_code == 413
        assert len(sent) < 10_000


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b"{}", b'{"context": 7}', b"\xff\xfe\xfd", b"[" * 200_000],
)
def test_bad_payload_after_auth_is_400(client, body, settings):
    r = client.post("/iconik/custom-action", content=body, headers=signed(body))
    assert r.status_code == 400
    assert r.json()["error"] == "bad_payload"
    assert stored_requests(settings) == []


def test_bad_payload_before_auth_is_401_not_400(client):
    r = client.post("/iconik/custom-action", content=b"not json", headers=bearer("wrong"))
    assert r.status_code == 401


def test_repeat_delivery_gets_same_request_id(client, settings):
    body = custom_action_body()
    first = client.post("/iconik/custom-action", content=body, headers=signed(body)).json()
    second = client.post("/iconik/custom-action", content=body, headers=signed(body)).json()
    assert second == {"request_id": first["request_id"], "status": "queued", "duplicate": True}
    assert len(stored_requests(settings)) == 1


@pytest.mark.slow
def test_twenty_concurrent_identical_deliveries_store_one(server, settings):
    body = custom_action_body()

    async def burst():
        async with httpx2.AsyncClient(base_url=server, timeout=30) as c:
            return await asyncio.gather(
                *(
                    c.post("/iconik/custom-action", content=body, headers=signed(body))
                    for _ in range(20)
                )
            )

    answers = asyncio.run(burst())
    assert {r.status_code for r in answers} == {202}
    assert len({r.json()["request_id"] for r in answers}) == 1
    assert sum("duplicate" not in r.json() for r in answers) == 1
    assert len(stored_requests(settings)) == 1


def test_webhook_is_deduplicated_on_its_raw_body_not_on_iconik_request_id(client, settings):
    other_asset = "0a1b2c3d-0000-4000-8000-00000000a002"
    bundles_exist(settings, "0a1b2c3d-0000-4000-8000-00000000a001", other_asset)
    body = webhook_body()
    first = client.post("/iconik/webhook", content=body, headers=signed(body))
    assert first.status_code == 202
    # Iconik resends the identical body: the same delivery.
    again = client.post("/iconik/webhook", content=body, headers=signed(body))
    assert again.json() == {**first.json(), "duplicate": True}
    # One Iconik API call deleting two assets sends two events with one
    # request_id: both count.
    second_event = webhook_body(object_id=other_asset, data={"id": other_asset})
    second = client.post("/iconik/webhook", content=second_event, headers=signed(second_event))
    assert second.status_code == 202 and "duplicate" not in second.json()
    assert second.json()["request_id"] != first.json()["request_id"]
    status = client.get(f"/requests/{first.json()['request_id']}", headers=bearer()).json()
    assert [(t["kind"], t["asset_id"]) for t in status["tasks"]] == [
        ("withdraw", "0a1b2c3d-0000-4000-8000-00000000a001")
    ]


def test_unrelated_webhook_is_ignored_and_not_stored(client, settings):
    body = webhook_body(event_type="collections", operation="update")
    r = client.post("/iconik/webhook", content=body, headers=signed(body))
    assert (r.status_code, r.json()) == (200, {"ignored": True})
    assert stored_requests(settings) == []
    metrics = client.get("/metrics").text
    assert 'caption_bridge_deliveries_total{outcome="ignored",route="webhook"} 1.0' in metrics


def test_backlog_over_limit_is_429_with_retry_after(tmp_path):
    settings = make_settings(tmp_path, queue_max_backlog=1)
    with running(create_app(settings)) as url:
        one, two = custom_action_body(asset_ids=[ASSET_A]), custom_action_body(asset_ids=[ASSET_B])
        assert (
            httpx2.post(url + "/iconik/custom-action", content=one, headers=signed(one)).status_code
            == 202
        )
        r = httpx2.post(url + "/iconik/custom-action", content=two, headers=signed(two))
        assert r.status_code == 429
        assert int(r.headers["Retry-After"]) > 0
        assert r.json()["error"] == "queue_full"


def test_store_that_cannot_be_written_is_503_and_not_ready(settings):
    queue = SQLiteQueue(settings.sqlite_path, busy_timeout=0.05)
    with running(create_app(settings, queue=queue)) as url:
        blocker = sqlite3.connect(settings.sqlite_path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            body = custom_action_body()
            r = httpx2.post(url + "/iconik/custom-action", content=body, headers=signed(body))
            ready = httpx2.get(url + "/readyz")
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
    assert r.status_code == 503 and r.json()["error"] == "store_unavailable"
    assert ready.status_code == 503 and "queue" in ready.json()["failed"]
    assert stored_requests(settings) == []


def test_store_locked_by_another_writer_is_503_within_5_seconds(settings):
    # The queue the app builds itself, with its own lock wait: SQLite's
    # default wait of 10 s would leave Iconik hanging past its deadline.
    with running(create_app(settings)) as url:
        body = custom_action_body()
        assert (
            httpx2.post(url + "/iconik/custom-action", content=body, headers=signed(body))
        ).status_code == 202
        blocker = sqlite3.connect(settings.sqlite_path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            other = custom_action_body(asset_ids=[ASSET_B])
            started = time.monotonic()
            refused = httpx2.post(
                url + "/iconik/custom-action", content=other, headers=signed(other), timeout=30
            )
            waited = time.monotonic() - started
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        again = httpx2.post(url + "/iconik/custom-action", content=other, headers=signed(other))
    assert refused.status_code == 503 and refused.json()["error"] == "store_unavailable"
    assert waited < 5
    assert again.status_code == 202


def test_readiness_names_the_cause_but_no_secret(settings):
    async def leaky() -> None:
        raise RuntimeError(f"cannot reach postgresql://bridge:hunter22@db:5432/q with {BEARER}")

    with running(create_app(settings, readiness={"store": leaky})) as url:
        ready = httpx2.get(url + "/readyz")
    assert ready.status_code == 503
    masked = "cannot reach postgresql://bridge:[redacted]@db:5432/q with [redacted]"
    assert ready.json() == {"status": "unavailable", "failed": {"store": masked}}


def test_request_status_needs_bearer(client):
    body = custom_action_body()
    request_id = client.post("/iconik/custom-action", content=body, headers=signed(body)).json()[
        "request_id"
    ]
    assert client.get(f"/requests/{request_id}").status_code == 401
    assert client.get(f"/requests/{request_id}", headers=bearer("nope")).status_code == 401
    r = client.get(f"/requests/{request_id}", headers=bearer())
    assert r.status_code == 200
    assert r.json()["status"] == "queued"
    assert r.json()["tasks"] == [
        {"kind": "expand", "asset_id": None, "state": "queued", "attempts": 0, "error": None}
    ]
    missing = client.get("/requests/does-not-exist", headers=bearer())
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_health_ready_metrics(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and "queue" in ready.json()["checks"]
    body = custom_action_body()
    client.post("/iconik/custom-action", content=body, headers=signed(body))
    client.post("/iconik/custom-action", content=body, headers=bearer("wrong"))
    text = client.get("/metrics").text
    assert 'caption_bridge_deliveries_total{outcome="queued",route="custom_action"} 1.0' in text
    assert (
        'caption_bridge_auth_failures_total{reason="bearer_mismatch",route="custom_action"}' in text
    )
    assert 'caption_bridge_queue_depth{lane="click"} 1.0' in text
    assert "caption_bridge_http_request_duration_seconds_count" in text


def test_unknown_route_and_method_are_json(client):
    r = client.get("/nope")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = client.get("/iconik/custom-action")
    assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"


def test_no_secret_reaches_any_log_event(client):
    """Across success and every error path, captured before any redaction runs."""
    good = custom_action_body()
    hook = webhook_body()
    cases = [
        ("/iconik/custom-action", good, signed(good)),
        ("/iconik/custom-action", good, signed(good)),  # duplicate
        ("/iconik/custom-action", good, bearer()),
        ("/iconik/custom-action", good, signed(good, RETIRED_SECRET)),
        ("/iconik/custom-action", good, bearer("Bearer-" + BEARER)),
        ("/iconik/custom-action", b"not json " + PAYLOAD_AUTH_TOKEN.encode(), bearer()),
        ("/iconik/custom-action", custom_action_body(context=5), bearer()),
        ("/iconik/custom-action", custom_action_body(asset_ids=PAYLOAD_AUTH_TOKEN), bearer()),
        ("/iconik/webhook", hook, signed(hook)),
        ("/iconik/webhook", webhook_body(event_type="collections"), bearer()),
        ("/iconik/webhook", hook, {"Authorization": "Bearer " + CURRENT_SECRET}),
    ]
    with structlog.testing.capture_logs() as events:
        for path, body, headers in cases:
            r = client.post(path, content=body, headers=headers)
            assert r.status_code < 500
            for secret in (CURRENT_SECRET, OLD_SECRET, BEARER, PAYLOAD_AUTH_TOKEN):
                assert secret not in r.text
        client.get("/requests/x", headers=bearer())
    assert len(events) >= len(cases)
    dumped = json.dumps(events, default=str)
    forbidden = [CURRENT_SECRET, OLD_SECRET, BEARER, ICONIK_TOKEN, PAYLOAD_AUTH_TOKEN]
    forbidden += [signed(b)["X-Iconik-Signature"] for _, b, _ in cases]
    for value in forbidden:
        assert value not in dumped


def test_every_delivery_log_line_carries_the_request_id(settings, capsys):
    service_logging.configure("json", settings.secret_values())
    try:
        with running(create_app(settings)) as url:
            body = custom_action_body()
            answer = httpx2.post(url + "/iconik/custom-action", content=body, headers=signed(body))
            httpx2.post(url + "/iconik/custom-action", content=b"{}", headers=bearer())
        lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    deliveries = [x for x in lines if x["event"].startswith("delivery.")]
    assert {x["event"] for x in deliveries} == {"delivery.stored", "delivery.bad_payload"}
    assert all(len(x.get("request_id", "")) == 32 for x in deliveries)
    stored = next(x for x in deliveries if x["event"] == "delivery.stored")
    assert stored["request_id"] == answer.json()["request_id"]


def test_a_body_in_several_pieces_under_the_limit_is_stored(client, settings):
    body = custom_action_body()

    def pieces():
        for start in range(0, len(body), 50):
            yield body[start : start + 50]

    r = client.post("/iconik/custom-action", content=pieces(), headers=bearer())
    assert r.status_code == 202
    [(request_id, _, payload)] = stored_requests(settings)
    assert r.json()["request_id"] == request_id
    assert json.loads(payload)["asset_ids"] == ["0a1b2c3d-0000-4000-8000-00000000a001"]


def test_text_that_is_not_utf8_is_stored_not_500(client, settings):
    # Half a surrogate pair: Python's json module reads it, UTF-8 cannot hold it.
    body = custom_action_body(metadata_values={"note": "\ud800"})
    r = client.post("/iconik/custom-action", content=body, headers=signed(body))
    assert r.status_code == 202
    [(_, _, payload)] = stored_requests(settings)
    assert json.loads(payload)["metadata_values"] == {"note": "\ud800"}


def test_a_client_gone_before_its_body_is_counted_and_nothing_is_stored(server, settings):
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"POST /iconik/custom-action HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer {BEARER}\r\nContent-Length: 1000\r\n\r\n".encode()
            + b'{"context": '
        )
    # The server noticed: a later delivery on a new connection is answered,
    # and the one cut short is counted, not stored.
    body = custom_action_body()
    assert (
        httpx2.post(
            server + "/iconik/custom-action", content=body, headers=signed(body)
        ).status_code
        == 202
    )

    def counted() -> str | None:
        metrics = httpx2.get(server + "/metrics").text
        return metrics if 'outcome="client_disconnected"' in metrics else None

    metrics = until(counted, within=10, every=0.01)
    assert (
        'caption_bridge_deliveries_total{outcome="client_disconnected",route="custom_action"} 1.0'
        in metrics
    )
    assert len(stored_requests(settings)) == 1
