"""The simulator sends the webhooks registered with it, as Iconik does.

When its state changes through the API (today: a subtitle track written, as
a delivery does), each ENABLED webhook registered for that event
(`event_type` "assets", its `operation`, and its `realm` or any realm) gets
a POST of Iconik's webhook body with the static headers it was registered
with (`caption-bridge register` puts `Authorization: Bearer …` there). With
`webhook_secret` set, the body is also signed (`X-Iconik-Signature`, HMAC
SHA-256 of the raw body), so the signature path of the service is used too.

Registrations are made through `GET/POST /API/notifications/v1/webhooks/`
and `PUT/DELETE .../webhooks/{webhook_id}/`, as `caption-bridge register`
does. The signature is made here, not with the service's code, so the
service's check is tested against a second implementation.

Sent after the API answer (a background task of the response), as Iconik
sends them after the change; each attempt is kept in `webhook_deliveries`
for tests, with the receiver's status or the error.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

import httpx2
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from simulator.state import IconikState, SentWebhook, errors, now


def _matches(hook: dict[str, Any], operation: str, realm: str) -> bool:
    return (
        hook.get("status") == "ENABLED"
        and hook.get("event_type") == "assets"
        and hook.get("operation") in (None, operation)
        and hook.get("realm") in (None, realm)
    )


def signature(secret: str, raw: bytes) -> str:
    """Iconik's `X-Iconik-Signature`: HMAC SHA-256 of the raw body, in hex."""
    return hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def asset_event(
    sim: IconikState,
    asset_id: str,
    operation: str,
    realm: str,
    object_id: str,
    data: dict[str, Any],
) -> BackgroundTask | None:
    """The sending of this event to every webhook registered for it, to run
    after the answer; None when none is."""
    hooks = [dict(h) for h in sim.webhooks.values() if _matches(h, operation, realm)]
    if not hooks:
        return None
    body = {
        "system_domain_id": sim.system_domain_id,
        "event_type": "assets",
        "object_id": object_id,
        "realm": realm,
        "operation": operation,
        "data": {**data, "asset_id": asset_id},
        "request_id": uuid.uuid4().hex,
    }
    return BackgroundTask(_send_all, sim, hooks, body)


async def _send_all(sim: IconikState, hooks: list[dict[str, Any]], body: dict[str, Any]) -> None:
    raw = json.dumps(body, separators=(",", ":")).encode()
    async with httpx2.AsyncClient(timeout=10) as client:
        for hook in hooks:
            headers = {"Content-Type": "application/json", **(hook.get("headers") or {})}
            if sim.webhook_secret:
                headers["X-Iconik-Signature"] = signature(sim.webhook_secret, raw)
            try:
                answer = await client.post(hook["url"], content=raw, headers=headers)
                sent = SentWebhook(hook["url"], body, answer.status_code)
            except httpx2.HTTPError as exc:
                sent = SentWebhook(hook["url"], body, None, type(exc).__name__)
            with sim.webhook_sent:
                sim.webhook_deliveries.append(sent)
                sim.webhook_sent.notify_all()


async def registrations(sim: IconikState, request: Request) -> Response:
    if request.method == "GET":
        return JSONResponse({"objects": list(sim.webhooks.values())})
    body = json.loads(await request.body())
    missing = [k for k in ("event_type", "status", "url") if not body.get(k)]
    if missing:
        return errors(400, f"missing {missing}")
    hook = {**body, "id": str(uuid.uuid4()), "date_created": now(), "date_modified": now()}
    sim.webhooks[hook["id"]] = hook
    return JSONResponse(hook, status_code=201)


async def registration(sim: IconikState, request: Request) -> Response:
    hook = sim.webhooks.get(request.path_params["webhook_id"])
    if hook is None:
        return errors(404, "Webhook does not exist")
    if request.method == "DELETE":
        del sim.webhooks[hook["id"]]
        return Response(status_code=204)
    hook.update(json.loads(await request.body()), id=hook["id"], date_modified=now())
    return JSONResponse(hook)


ENDPOINTS = [
    ("/API/notifications/v1/webhooks/", registrations, ["GET", "POST"]),
    ("/API/notifications/v1/webhooks/{webhook_id}/", registration, ["PUT", "DELETE"]),
]
