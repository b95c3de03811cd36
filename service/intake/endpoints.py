"""The two POST endpoints Iconik calls: read, verify, parse, store, answer.

They are the service's hot path (a webhook burst is thousands of them a
second), so each is a plain ASGI app mounted on a Starlette route rather
than a Request/Response handler: the body comes straight from `receive`,
the answer is a few bytes made here, and the fields of the one log line per
delivery are gathered as it goes and passed to that line, not bound to
context variables and merged back. What they answer, log and count is the
same as before; only what it costs changed (bench/ack.py measures it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from starlette.types import Receive, Scope, Send

from service.iconik.user_token import TokenSeal
from service.ids import new_id
from service.intake import auth, payloads
from service.logging import get_logger
from service.queue import (
    Delivery,
    Enqueued,
    Lane,
    NewTask,
    QueueFull,
    QueueUnavailable,
    RequestKind,
    TaskKind,
)

if TYPE_CHECKING:
    from service.intake.services import Services
    from service.settings import Settings

log = get_logger("service.intake.endpoints")

# The delivery to store, or None when the body is fine but asks for nothing;
# it adds what the log line should say about the body to `fields`.
Accept = Callable[[bytes, dict[str, Any]], Delivery | None]

_JSON_HEADERS = [(b"content-type", b"application/json")]

AUTH_HELP = (
    "send X-Iconik-Signature (HMAC-SHA256 of the body with a WEBHOOK_SECRETS key) "
    "or Authorization: Bearer <one of BEARER_TOKENS>"
)


class Refusal(Exception):
    """An answer other than success, raised from inside the endpoint."""

    def __init__(
        self, status: int, code: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers


class _Disconnected(Exception):
    """The client went away before its body was in."""


class DeliveryEndpoint:
    """POST /iconik/custom-action or /iconik/webhook, as an ASGI app."""

    def __init__(self, route: str, accept: Accept) -> None:
        self.route = route
        self.accept = accept

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        services: Services = scope["app"].state.services
        metrics = services.metrics
        started = time.perf_counter()
        fields: dict[str, Any] = {"request_id": new_id(), "route": self.route}
        outcome = "error"
        metrics.in_flight.inc()
        try:
            status, answer, headers, outcome = await self._handle(services, scope, receive, fields)
        except Refusal as refusal:
            outcome = refusal.code
            status, headers = refusal.status, refusal.headers
            answer = {"error": refusal.code, "detail": refusal.detail}
        except _Disconnected:
            outcome = "client_disconnected"
            status, headers = 400, None
            answer = {"error": "client_disconnected", "detail": "the body was not received"}
        finally:
            metrics.in_flight.dec()
            metrics.delivered(self.route, outcome, time.perf_counter() - started)
        await _answer(send, status, answer, headers)

    async def _handle(
        self, services: Services, scope: Scope, receive: Receive, fields: dict[str, Any]
    ) -> tuple[int, dict[str, Any], dict[str, str] | None, str]:
        body = await _read_body(scope, receive, services.settings.max_body_bytes)
        try:
            verified = auth.verify(body, scope["headers"], services.credentials)
        except auth.AuthError as exc:
            services.metrics.auth_failures.labels(self.route, exc.reason).inc()
            log.warning("delivery.unauthenticated", reason=exc.reason, **fields)
            raise Refusal(401, "unauthenticated", AUTH_HELP) from None
        fields["auth"] = verified.method
        try:
            delivery = self.accept(body, fields)
        except payloads.PayloadError as exc:
            log.warning("delivery.bad_payload", detail=str(exc), **fields)
            raise Refusal(400, "bad_payload", str(exc)) from None
        if delivery is None:
            log.info("delivery.ignored", **fields)
            return 200, {"ignored": True}, None, "ignored"
        enqueued = await _store(services, delivery, fields)
        if enqueued.ignored:  # an event about an asset the service does not hold
            return 200, {"ignored": True}, None, "ignored"
        answer: dict[str, Any] = {"request_id": enqueued.request_id, "status": "queued"}
        outcome = "queued"
        if enqueued.duplicate:
            answer["duplicate"], outcome = True, "duplicate"
        if enqueued.coalesced:
            answer["coalesced"], outcome = True, "coalesced"
        return 202, answer, None, outcome


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it is known to exceed `limit`."""
    declared = None
    for name, value in scope["headers"]:
        if name == b"content-length":
            declared = value
            break
    if declared is not None:
        if not declared.isdigit():
            raise Refusal(400, "bad_request", "Content-Length is not a number")
        if int(declared) > limit:
            raise _too_large(limit)
    message = await receive()
    if message["type"] != "http.request":
        raise _Disconnected
    body: bytes = message.get("body", b"")
    if len(body) > limit:
        raise _too_large(limit)
    if not message.get("more_body", False):  # the whole body in one message: the usual case
        return body
    received = bytearray(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] != "http.request":
            raise _Disconnected
        received += message.get("body", b"")
        if len(received) > limit:
            raise _too_large(limit)
    return bytes(received)


def _too_large(limit: int) -> Refusal:
    return Refusal(
        413,
        "body_too_large",
        f"request body is larger than MAX_BODY_BYTES ({limit} bytes)",
        # The rest of the body stays unread, so this connection cannot be reused.
        headers={"Connection": "close"},
    )


async def _store(services: Services, delivery: Delivery, fields: dict[str, Any]) -> Enqueued:
    try:
        enqueued = await services.queue.enqueue(delivery, fields["request_id"])
    except QueueFull as exc:
        setting, limit = (
            ("EVENTS_MAX_BACKLOG", services.settings.events_max_backlog)
            if exc.lane == Lane.EVENT
            else ("QUEUE_MAX_BACKLOG", services.settings.queue_max_backlog)
        )
        raise Refusal(
            429,
            "queue_full",
            f"more than {setting} ({limit}) tasks are waiting; retry later",
            headers={"Retry-After": str(exc.retry_after)},
        ) from None
    except QueueUnavailable as exc:
        log.error("delivery.not_stored", error=str(exc), **fields)
        raise Refusal(
            503, "store_unavailable", "the delivery could not be stored; retry later"
        ) from None
    if enqueued.ignored:
        log.info("delivery.ignored", reason="asset has no bundle and no task", **fields)
        return enqueued
    if enqueued.duplicate or enqueued.coalesced:
        fields["request_id"] = enqueued.request_id
    log.info(
        "delivery.stored",
        duplicate=enqueued.duplicate,
        coalesced=enqueued.coalesced,
        task=delivery.first_task.kind,
        **fields,
    )
    return enqueued


async def _answer(
    send: Send, status: int, answer: dict[str, Any], headers: dict[str, str] | None
) -> None:
    body = json.dumps(answer, separators=(",", ":")).encode()
    raw = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    if headers:
        raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def accept_custom_action(body: bytes, fields: dict[str, Any]) -> Delivery:
    """A click, stored without the user's token (CLICK_RIGHTS=application)."""
    action = payloads.parse_custom_action(body)
    fields["context"], fields["action_id"] = action.context, action.action_id
    return _delivery(RequestKind.CUSTOM_ACTION, body, action, NewTask(TaskKind.EXPAND))


def custom_action_intake(settings: Settings) -> Accept:
    """How clicks are accepted under `settings`: with CLICK_RIGHTS=user, the
    clicking user's token is sealed and stored beside the payload for the
    expand task (service/iconik/user_token.py); otherwise it is not kept at all."""
    if settings.click_rights != "user":
        return accept_custom_action
    seal = TokenSeal.from_settings(settings)

    def accept(body: bytes, fields: dict[str, Any]) -> Delivery:
        action = payloads.parse_custom_action(body)
        fields["context"], fields["action_id"] = action.context, action.action_id
        delivery = _delivery(RequestKind.CUSTOM_ACTION, body, action, NewTask(TaskKind.EXPAND))
        token = action.auth_token.get_secret_value() if action.auth_token else ""
        if not token:  # the expand task fails, saying so
            return delivery
        return dataclasses.replace(delivery, user_token=seal.seal(token))

    return accept


def accept_webhook(body: bytes, fields: dict[str, Any]) -> Delivery | None:
    webhook = payloads.parse_webhook(body)
    fields.update(
        iconik_request_id=webhook.request_id,
        event_type=webhook.event_type,
        operation=webhook.operation,
        realm=webhook.realm,
    )
    action = webhook.action()
    if action is None:
        return None
    asset_id = webhook.asset_id.lower() if webhook.asset_id else None  # an Iconik id (checked)
    return _delivery(RequestKind.WEBHOOK, body, webhook, NewTask(TaskKind(action), asset_id))


def _delivery(kind: RequestKind, body: bytes, parsed: BaseModel, first_task: NewTask) -> Delivery:
    # Iconik resends the identical body, and one webhook's request_id can name
    # a call that changed many assets: only the raw body identifies a delivery.
    return Delivery(
        key=f"{kind}:{hashlib.sha256(body).hexdigest()}",
        kind=kind,
        payload=payloads.storable(parsed),
        first_task=first_task,
    )
