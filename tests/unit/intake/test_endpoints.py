"""The two POST endpoints (service/intake/endpoints.py), called as the ASGI
apps they are: read, verify, parse, store, answer (docs/http.md).

In-process: each test hands the endpoint a scope, a `receive` that gives the
body in the pieces it chooses and a `send` that records the answer, over a
real SQLite queue in tmp_path. The same routes over a real server on
loopback are in tests/system/intake/test_app.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from service.intake.endpoints import DeliveryEndpoint, accept_webhook, custom_action_intake
from service.intake.services import Services
from service.metrics import Metrics
from service.queue import QueueUnavailable
from service.queue.sqlite import SQLiteQueue
from tests.support.service import (
    PAYLOAD_AUTH_TOKEN,
    custom_action_body,
    make_settings,
    signed,
    webhook_body,
)

pytestmark = pytest.mark.anyio

ASSET = "0a1b2c3d-0000-4000-8000-00000000a001"
OTHER_ASSET = "0a1b2c3d-0000-4000-8000-00000000a002"


@dataclass
class Call:
    """One call of an endpoint: what it read of the body and what it answered."""

    pieces: list[dict[str, Any]]
    received: int = 0
    sent: list[dict[str, Any]] = field(default_factory=list)

    async def receive(self) -> dict[str, Any]:
        message = self.pieces[self.received]
        self.received += 1
        return message

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return self.sent[0]["status"]

    @property
    def headers(self) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.sent[0]["headers"]}

    @property
    def answer(self) -> dict[str, Any]:
        return json.loads(self.sent[1]["body"])


def whole(body: bytes) -> list[dict[str, Any]]:
    return [{"type": "http.request", "body": body, "more_body": False}]


def in_pieces(body: bytes, size: int) -> list[dict[str, Any]]:
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    return [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]


@pytest.fixture
async def queue(tmp_path):
    q = SQLiteQueue(tmp_path / "q.db", max_backlog=2, max_event_backlog=1)
    await q.open()
    yield q
    await q.close()


def services_for(tmp_path, queue, **settings: Any) -> Services:
    return Services(make_settings(tmp_path, **settings), queue, Metrics(), readiness={})


@pytest.fixture
def services(tmp_path, queue) -> Services:
    return services_for(tmp_path, queue, max_body_bytes=4096)


async def call(
    services: Services,
    endpoint: DeliveryEndpoint,
    pieces: list[dict[str, Any]],
    headers: dict[str, str],
) -> Call:
    scope = {
        "type": "http",
        "method": "POST",
        "app": SimpleNamespace(state=SimpleNamespace(services=services)),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    done = Call(pieces)
    await endpoint(scope, done.receive, done.send)
    return done


def click_endpoint(services: Services) -> DeliveryEndpoint:
    return DeliveryEndpoint("custom_action", custom_action_intake(services.settings))


def webhook_endpoint() -> DeliveryEndpoint:
    return DeliveryEndpoint("webhook", accept_webhook)


def counted(services: Services, name: str, **labels: str) -> float:
    return services.metrics.registry.get_sample_value(name, labels) or 0.0


async def test_a_signed_click_is_stored_and_answered_202_with_its_request(services, queue):
    body = custom_action_body()
    done = await call(services, click_endpoint(services), whole(body), signed(body))
    assert (done.status, done.answer["status"]) == (202, "queued")
    assert set(done.answer) == {"request_id", "status"}
    stored = await queue.request_status(done.answer["request_id"])
    assert stored is not None and stored["kind"] == "custom_action"
    assert await queue.backlog() == 1
    assert counted(
        services, "caption_bridge_deliveries_total", route="custom_action", outcome="queued"
    )


async def test_the_same_delivery_again_is_the_same_request(services, queue):
    body = custom_action_body()
    first = await call(services, click_endpoint(services), whole(body), signed(body))
    again = await call(services, click_endpoint(services), whole(body), signed(body))
    assert again.status == 202
    assert again.answer == {**first.answer, "duplicate": True}
    assert await queue.backlog() == 1


async def test_a_declared_body_over_the_limit_is_413_before_a_byte_is_read(services, queue):
    body = custom_action_body(padding="x" * 5000)
    headers = {**signed(body), "Content-Length": str(len(body))}
    done = await call(services, click_endpoint(services), whole(body), headers)
    assert (done.status, done.answer["error"]) == (413, "body_too_large")
    assert "MAX_BODY_BYTES (4096 bytes)" in done.answer["detail"]
    assert done.headers["connection"] == "close"
    assert done.received == 0
    assert await queue.backlog() == 0


async def test_an_undeclared_body_is_read_only_until_past_the_limit(services, queue):
    body = custom_action_body(padding="x" * 20_000)
    pieces = in_pieces(body, 1000)
    done = await call(services, click_endpoint(services), pieces, signed(body))
    assert (done.status, done.answer["error"]) == (413, "body_too_large")
    assert done.received == 5  # 5,000 bytes: the first piece past 4,096, then no more
    assert await queue.backlog() == 0


async def test_a_body_in_pieces_under_the_limit_is_stored_whole(services, queue):
    body = custom_action_body()
    done = await call(services, click_endpoint(services), in_pieces(body, 64), signed(body))
    assert done.status == 202
    assert done.received == len(in_pieces(body, 64))


async def test_a_content_length_that_is_not_a_number_is_400(services, queue):
    body = custom_action_body()
    headers = {**signed(body), "Content-Length": "12; drop"}
    done = await call(services, click_endpoint(services), whole(body), headers)
    assert (done.status, done.answer["error"]) == (400, "bad_request")
    assert await queue.backlog() == 0


async def test_a_bad_signature_is_401_and_stores_nothing(services, queue):
    body = custom_action_body()
    headers = signed(body, secret="not-a-configured-secret")
    done = await call(services, click_endpoint(services), whole(body), headers)
    assert (done.status, done.answer["error"]) == (401, "unauthenticated")
    assert "X-Iconik-Signature" in done.answer["detail"]
    assert await queue.backlog() == 0
    failures = services.metrics.registry.get_sample_value(
        "caption_bridge_auth_failures_total",
        {"route": "custom_action", "reason": "signature_mismatch"},
    )
    assert failures == 1


async def test_a_body_signed_then_changed_is_401(services, queue):
    body = custom_action_body()
    headers = signed(body)
    changed = body.replace(b'"ASSET"', b'"COLLECTION"')
    done = await call(services, click_endpoint(services), whole(changed), headers)
    assert done.status == 401


async def test_a_bad_payload_after_authentication_is_400_naming_it(services, queue):
    body = b'{"asset_ids": []}'
    done = await call(services, click_endpoint(services), whole(body), signed(body))
    assert (done.status, done.answer["error"]) == (400, "bad_payload")
    assert "context" in done.answer["detail"]
    assert await queue.backlog() == 0


async def test_a_client_gone_before_its_body_is_400_and_stores_nothing(services, queue):
    body = custom_action_body()
    pieces = [*in_pieces(body, 64)[:2], {"type": "http.disconnect"}]
    done = await call(services, click_endpoint(services), pieces, signed(body))
    assert (done.status, done.answer["error"]) == (400, "client_disconnected")
    assert await queue.backlog() == 0


async def test_the_click_backlog_full_is_429_naming_its_setting_with_retry_after(tmp_path, queue):
    services = services_for(tmp_path, queue, queue_max_backlog=2)
    answers = []
    for n in range(3):
        body = custom_action_body(action_id=f"0a1b2c3d-0000-4000-8000-00000000000{n}")
        answers.append(await call(services, click_endpoint(services), whole(body), signed(body)))
    assert [a.status for a in answers] == [202, 202, 429]
    full = answers[2]
    assert full.answer["error"] == "queue_full"
    assert "QUEUE_MAX_BACKLOG (2)" in full.answer["detail"]
    assert int(full.headers["retry-after"]) > 0
    assert await queue.backlog() == 2


async def test_the_event_backlog_full_is_429_naming_its_own_setting(tmp_path, queue):
    services = services_for(tmp_path, queue, events_max_backlog=1)
    for asset in (ASSET, OTHER_ASSET):
        await queue.record_bundle(asset, f"Title [{asset}]", "ready")
    answers = []
    for asset in (ASSET, OTHER_ASSET):
        body = webhook_body(object_id=asset, data={"id": asset})
        answers.append(await call(services, webhook_endpoint(), whole(body), signed(body)))
    assert [a.status for a in answers] == [202, 429]
    assert "EVENTS_MAX_BACKLOG (1)" in answers[1].answer["detail"]
    assert "retry-after" in answers[1].headers


async def test_a_store_that_cannot_write_is_503_saying_retry_and_no_more(tmp_path, services):
    class Unavailable:
        async def enqueue(self, delivery, request_id):
            raise QueueUnavailable(f"sqlite:///{tmp_path}/queue.db: disk I/O error")

    services.queue = Unavailable()
    body = custom_action_body()
    done = await call(services, click_endpoint(services), whole(body), signed(body))
    assert (done.status, done.answer["error"]) == (503, "store_unavailable")
    assert done.answer["detail"] == "the delivery could not be stored; retry later"


async def test_an_event_that_changes_no_bundle_is_200_ignored(services, queue):
    body = webhook_body(operation="create", realm="comment")
    done = await call(services, webhook_endpoint(), whole(body), signed(body))
    assert (done.status, done.answer) == (200, {"ignored": True})
    await queue.fill_registry([])  # the registry known, and empty
    body = webhook_body()  # a delete of an asset the service holds no bundle of
    done = await call(services, webhook_endpoint(), whole(body), signed(body))
    assert (done.status, done.answer) == (200, {"ignored": True})
    assert await queue.backlog() == 0


async def test_a_delivery_is_keyed_by_its_raw_body_not_by_iconiks_request_id():
    first = accept_webhook(webhook_body(request_id="same"), {})
    other = accept_webhook(webhook_body(request_id="same", object_id=OTHER_ASSET), {})
    assert first is not None and other is not None
    assert first.key != other.key
    assert first.key == accept_webhook(webhook_body(request_id="same"), {}).key


async def test_a_click_keeps_its_token_only_sealed_and_only_with_click_rights_user(tmp_path):
    body = custom_action_body()
    plain = custom_action_intake(make_settings(tmp_path, click_rights="application"))(body, {})
    assert PAYLOAD_AUTH_TOKEN not in plain.payload
    assert plain.user_token is None
    sealing = custom_action_intake(make_settings(tmp_path, click_rights="user"))
    sealed = sealing(body, {})
    assert PAYLOAD_AUTH_TOKEN not in sealed.payload
    assert sealed.user_token and PAYLOAD_AUTH_TOKEN not in sealed.user_token
